"""Who may do what on which brand: the role rules, as pure functions of a :class:`Principal`.

This module owns the rules and nothing else (no database, no web). The table::

    action    what it allows                                   admin  editor  reviewer
    view      see the brand's jobs, clips and reviews            ✓      ✓       ✓
    render    submit jobs for the brand                          ✓      ✓
    review    comment on a clip, send it back to render          ✓      ✓
    approve   give the verdict: approved / changes requested     ✓      ✓       ✓
    admin     users, brands and roles                            ✓

An agency admin (``User.is_admin``) may do everything on every brand. An editor or a reviewer
(a :class:`~brandstudio.app.db.Membership`) acts on their own brands only: nothing at all on
any other brand, not even ``view``.

Example:
    >>> client = Principal(user_id=7, email="mei@aurora.example", roles={"aurora-coffee": "reviewer"})
    >>> can(client, "approve", "aurora-coffee"), can(client, "render", "aurora-coffee")
    (True, False)
    >>> can(client, "view", "other-brand")
    False
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping
from typing import Literal

from ..errors import AccessDenied
from .db import Brand, User

__all__ = ["ACTIONS", "ROLE_ACTIONS", "Action", "Principal", "allowed", "brands_with", "can", "require"]

Action = Literal["view", "render", "review", "approve", "admin"]
#: every action, in the order of the table above
ACTIONS: tuple[Action, ...] = ("view", "render", "review", "approve", "admin")
#: what each brand role allows on its own brand (an admin: every action on every brand)
ROLE_ACTIONS: Mapping[str, frozenset[Action]] = types.MappingProxyType({
    "editor": frozenset({"view", "render", "review", "approve"}),
    "reviewer": frozenset({"view", "approve"}),
})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Principal:
    """A signed-in user as the rules see them: an admin or not, and a role per brand id.

    Built once per request from the database (:meth:`of`), then checked without it.
    """

    user_id: int
    email: str
    is_admin: bool = False
    roles: Mapping[str, str] = dataclasses.field(default_factory=dict)  # brand id -> "editor" | "reviewer"

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", types.MappingProxyType(dict(self.roles)))

    @classmethod
    def of(cls, user: User) -> Principal:
        """The principal of a :class:`~brandstudio.app.db.User` (reads its memberships)."""
        return cls(user.id, user.email, user.is_admin, {m.brand_id: m.role for m in user.memberships})


def can(principal: Principal, action: Action, brand: str | Brand) -> bool:
    """Whether ``principal`` may do ``action`` on ``brand`` (a brand id or a
    :class:`~brandstudio.app.db.Brand`). An unknown action is a ``ValueError`` (a bug, not a user's
    mistake): a misspelt action must not quietly deny or allow.

    Example:
        >>> editor = Principal(3, "li@agency.example", roles={"aurora-coffee": "editor"})
        >>> [a for a in ACTIONS if can(editor, a, "aurora-coffee")]
        ['view', 'render', 'review', 'approve']
    """
    _check_action(action)
    return action in allowed(principal, brand)


def allowed(principal: Principal, brand: str | Brand) -> frozenset[Action]:
    """Every action ``principal`` may do on ``brand`` (what a page shows buttons for)."""
    if principal.is_admin:
        return frozenset(ACTIONS)
    role = principal.roles.get(_brand_id(brand))
    return ROLE_ACTIONS.get(role, frozenset()) if role else frozenset()


def require(principal: Principal, action: Action, brand: str | Brand) -> None:
    """:func:`can`, or an :class:`~brandstudio.errors.AccessDenied` that says who, what and where.

    Example:
        >>> client = Principal(7, "mei@aurora.example", roles={"aurora-coffee": "reviewer"})
        >>> require(client, "render", "aurora-coffee")
        Traceback (most recent call last):
        ...
        brandstudio.errors.AccessDenied: mei@aurora.example may not render on brand aurora-coffee (role: reviewer)
          field:   action
          fix:     ask an agency admin for the editor role on aurora-coffee
    """
    if can(principal, action, brand):
        return
    brand_id = _brand_id(brand)
    role = principal.roles.get(brand_id)
    roles = [r for r, actions in ROLE_ACTIONS.items() if action in actions]
    raise AccessDenied(
        f"{principal.email} may not {action} on brand {brand_id} (role: {role or 'none'})",
        field="action", value=action,
        fix=f"ask an agency admin for the {' or '.join(roles)} role on {brand_id}" if roles
        else "only an agency admin may do this",
    )  # fmt: skip


def brands_with(principal: Principal, action: Action, brands: Iterable[str | Brand]) -> list[str]:
    """The ids of those ``brands`` on which ``principal`` may do ``action`` (a brand list page)."""
    return [_brand_id(b) for b in brands if can(principal, action, b)]


def _brand_id(brand: str | Brand) -> str:
    return brand if isinstance(brand, str) else brand.id


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
