"""Setting the app up: brands seeded from a folder of profiles, users and their roles, API tokens.

What ``brandstudio serve`` does before it listens, and what a test or an admin script calls.
Tokens are ``bst_`` + 32 random bytes (URL-safe base64); only their SHA-256 is stored (a token
is as random as a key: no slow hash is needed), so a database leak gives no usable token.

Example:
    >>> seed_brands(Session, Path("brand_profiles"))                             # doctest: +SKIP
    ['aurora-coffee', 'qinglan-tea']
    >>> token = create_api_token(Session, user_id=1, name="ci")                  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import AppError, BrandStudioError
from ..profile import PROFILE_FILE, load_profile
from .db import ROLES, ApiToken, AuditEvent, Brand, Membership, User, utcnow
from .passwords import hash_password

__all__ = ["TOKEN_PREFIX", "create_api_token", "create_user", "hash_token", "seed_brands", "set_role", "user_for_token"]

TOKEN_PREFIX = "bst_"

SessionFactory = Callable[[], Session]


def seed_brands(session_factory: SessionFactory, profiles_dir: Path) -> list[str]:
    """Add (or update the name and folder of) a brand for every profile folder under
    ``profiles_dir``; the ids seen. A profile that does not load is an error naming it."""
    seen = []
    folders = sorted(p.parent for p in Path(profiles_dir).glob(f"*/{PROFILE_FILE}"))
    with session_factory() as session:
        for folder in folders:
            try:
                profile = load_profile(folder)
            except BrandStudioError as exc:
                raise AppError(f"the brand profile in {folder} does not load: {exc.message}",
                               file=str(folder), fix="fix the profile (brandstudio profile validate), or move "
                               "it out of the profiles folder") from None  # fmt: skip
            brand = session.get(Brand, profile.id)
            if brand is None:
                session.add(Brand(id=profile.id, name=profile.name, profile_path=str(folder.resolve())))
                session.flush()
                session.add(AuditEvent(brand_id=profile.id, action="brand.add", target=f"brand:{profile.id}"))
            else:
                brand.name, brand.profile_path = profile.name, str(folder.resolve())
            seen.append(profile.id)
        session.commit()
    return seen


def create_user(
    session_factory: SessionFactory,
    email: str,
    password: str,
    *,
    display_name: str | None = None,
    is_admin: bool = False,
    roles: Mapping[str, str] | None = None,
    actor: int | None = None,
) -> int:
    """Add a user (admin, or with a role per brand id); the new user's id. An existing e-mail
    address is an :class:`~brandstudio.errors.AppError`. ``actor``: the admin who added them (for
    the audit log; None when the system did, as ``serve`` does for the first admin)."""
    email = email.strip().lower()
    if "@" not in email:
        raise AppError(f"{email!r} is not an e-mail address", field="email", value=email)
    with session_factory() as session:
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise AppError(f"there is already a user {email}", field="email", value=email)
        user = User(email=email, display_name=display_name or email.split("@")[0],
                    password_hash=hash_password(password), is_admin=is_admin)  # fmt: skip
        session.add(user)
        session.flush()
        for brand, role in (roles or {}).items():
            session.add(Membership(user_id=user.id, brand_id=brand, role=role))
        session.add(AuditEvent(user_id=actor, action="user.add", target=f"user:{user.id}",
                               details={"email": email, "admin": is_admin, "roles": dict(roles or {})}))  # fmt: skip
        session.commit()
        return user.id


def set_role(session_factory: SessionFactory, actor: int, user_id: int, brand_id: str, role: str | None) -> str | None:
    """Give ``user_id`` the ``role`` ("editor" or "reviewer") on ``brand_id``, or none (``None``):
    one transaction with its ``role.change`` audit event (who, when, from, to); the role held
    before. The change applies from the user's next request (a principal is read per request).

    Example:
        >>> set_role(Session, actor=1, user_id=7, brand_id="qinglan-tea", role="reviewer")  # doctest: +SKIP
        'editor'
    """
    if role is not None and role not in ROLES:
        raise AppError(f"role must be one of {', '.join(ROLES)} (or none), got {role!r}", field="role", value=role,
                       fix="editor: render and review; reviewer: view and approve")  # fmt: skip
    with session_factory() as session:
        user = session.get(User, user_id)
        if user is None:
            raise AppError(f"no user {user_id}", field="user", value=user_id)
        if session.get(Brand, brand_id) is None:
            raise AppError(f"no brand {brand_id!r}", field="brand", value=brand_id)
        membership = session.scalar(select(Membership).where(Membership.user_id == user_id,
                                                             Membership.brand_id == brand_id))  # fmt: skip
        before = membership.role if membership is not None else None
        if before == role:
            return before
        if membership is None:
            session.add(Membership(user_id=user_id, brand_id=brand_id, role=role))
        elif role is None:
            session.delete(membership)
        else:
            membership.role = role
        session.add(AuditEvent(user_id=actor, brand_id=brand_id, action="role.change", target=f"user:{user_id}",
                               details={"email": user.email, "from": before, "to": role}))  # fmt: skip
        session.commit()
        return before


def hash_token(token: str) -> str:
    """What is stored of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_token(session_factory: SessionFactory, user_id: int, name: str) -> str:
    """A new API token acting as ``user_id``: the token itself, which is not stored (show it once)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with session_factory() as session:
        session.add(ApiToken(user_id=user_id, name=name[:200] or "token", token_hash=hash_token(token)))
        session.add(AuditEvent(user_id=user_id, action="token.create", target=f"user:{user_id}",
                               details={"name": name[:200]}))  # fmt: skip
        session.commit()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    """The user an API token acts as, or None (unknown, revoked); notes when it was last used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked.is_(False)))
    if row is None:
        return None
    row.last_used_at = utcnow()
    return row.user
