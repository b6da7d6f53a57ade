"""The role rules, every role × action × own / other brand, against a table written out here."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from brandstudio.app.access import ACTIONS, Principal, allowed, brands_with, can, require
from brandstudio.app.db import Brand, Membership, User
from brandstudio.errors import AccessDenied

OWN, OTHER = "aurora-coffee", "qinglan-tea"
PRINCIPALS = {
    "admin": Principal(1, "boss@agency.example", is_admin=True),
    "editor": Principal(2, "li@agency.example", roles={OWN: "editor"}),
    "reviewer": Principal(3, "mei@aurora.example", roles={OWN: "reviewer"}),
    "no role": Principal(4, "new@agency.example"),
}
#: what each may do on its own brand (the admin: on every brand); on another brand only the admin may do anything
ON_OWN_BRAND = {
    "admin": {"view", "render", "review", "approve", "admin"},
    "editor": {"view", "render", "review", "approve"},
    "reviewer": {"view", "approve"},
    "no role": set(),
}
CASES = [
    (who, action, where, action in ON_OWN_BRAND[who] if where == "own" else who == "admin")
    for who in PRINCIPALS
    for action in ("view", "render", "review", "approve", "admin")
    for where in ("own", "other")
]


def test_the_table_covers_every_role_action_and_brand():
    assert len(CASES) == 4 * 5 * 2 and set(ACTIONS) == {"view", "render", "review", "approve", "admin"}


@pytest.mark.parametrize(("who", "action", "where", "expected"), CASES, ids=lambda v: str(v))
def test_can(who, action, where, expected):
    principal, brand = PRINCIPALS[who], OWN if where == "own" else OTHER
    assert can(principal, action, brand) is expected
    assert can(principal, action, Brand(id=brand, name=brand, profile_path=".")) is expected
    assert (action in allowed(principal, brand)) is expected
    if expected:
        require(principal, action, brand)
    else:
        with pytest.raises(AccessDenied, match=f"{principal.email} may not {action} on brand {brand}"):
            require(principal, action, brand)


def test_roles_on_two_brands_are_separate():
    both = Principal(5, "zhang@agency.example", roles={OWN: "reviewer", OTHER: "editor"})
    assert allowed(both, OWN) == {"view", "approve"}
    assert allowed(both, OTHER) == {"view", "render", "review", "approve"}
    assert allowed(both, "third-brand") == frozenset()
    assert brands_with(both, "render", [OWN, OTHER, "third-brand"]) == [OTHER]
    assert brands_with(both, "view", [OWN, OTHER, "third-brand"]) == [OWN, OTHER]


def test_a_refusal_says_which_role_to_ask_for():
    with pytest.raises(AccessDenied) as err:
        require(PRINCIPALS["reviewer"], "render", OWN)
    assert (
        "(role: reviewer)" in err.value.message
        and err.value.fix == f"ask an agency admin for the editor role on {OWN}"
    )
    with pytest.raises(AccessDenied) as err:
        require(PRINCIPALS["no role"], "approve", OTHER)
    assert err.value.fix == f"ask an agency admin for the editor or reviewer role on {OTHER}"
    with pytest.raises(AccessDenied) as err:
        require(PRINCIPALS["editor"], "admin", OWN)
    assert err.value.fix == "only an agency admin may do this"


def test_an_unknown_action_is_a_bug_not_a_refusal():
    with pytest.raises(ValueError, match="unknown action 'aprove'"):
        can(PRINCIPALS["admin"], "aprove", OWN)


def test_a_principal_is_read_from_the_database_and_cannot_be_changed(Session, brand):
    with Session() as session:
        session.add(Brand(id=OTHER, name="青岚茶", profile_path="brand_profiles/qinglan-tea"))
        user = User(email="mei@aurora.example", display_name="李梅", password_hash="x")
        user.memberships = [
            Membership(brand_id=brand, role="reviewer"),
            Membership(brand_id=OTHER, role="editor"),
        ]
        session.add(user)
        session.commit()
    with Session() as session:
        principal = Principal.of(session.scalar(select(User)))
    assert principal == Principal(
        principal.user_id, "mei@aurora.example", False, {brand: "reviewer", OTHER: "editor"}
    )
    assert can(principal, "render", OTHER) and not can(principal, "render", brand)
    with pytest.raises(TypeError):
        principal.roles[brand] = "editor"  # type: ignore[index]
