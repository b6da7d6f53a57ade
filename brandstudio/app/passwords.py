"""Passwords: argon2id hashes (argon2-cffi's ``PasswordHasher``), checked and upgraded.

This module owns what a password may be and how it is stored; it never sees the database.
A password is NFKC-normalised first (the same password typed on another keyboard or input
method matches), must be :data:`MIN_LENGTH` to :data:`MAX_LENGTH` characters, and is stored
as argon2id with the library's defaults (RFC 9106's low-memory profile: 3 passes over 64 MiB,
4 lanes). When those defaults grow, a sign-in with a hash made under older parameters gives
back a new hash to store (:attr:`PasswordCheck.new_hash`).

Example:
    >>> stored = hash_password("correct horse battery")
    >>> verify_password(stored, "correct horse battery").ok
    True
    >>> verify_password(stored, "Correct horse battery").ok
    False
    >>> verify_password(None, "anything at all").ok   # no such user: as slow as a wrong password
    False
"""

from __future__ import annotations

import dataclasses
import functools
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import AppError

__all__ = ["HASHER", "MAX_LENGTH", "MIN_LENGTH", "PasswordCheck", "hash_password", "verify_password"]

#: the shortest password accepted (NIST SP 800-63B asks for at least 8)
MIN_LENGTH = 10
#: the longest: argon2 takes any length, but hashing a megabyte of "password" is a denial of service
MAX_LENGTH = 1024
#: argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile)
HASHER = PasswordHasher()


@dataclasses.dataclass(frozen=True)
class PasswordCheck:
    """What checking a password gave: ``ok``, and where the stored hash was made with weaker
    parameters than the hasher's, ``new_hash``: the password hashed again, to store in its place."""

    ok: bool
    new_hash: str | None = None


def hash_password(password: str, *, hasher: PasswordHasher = HASHER) -> str:
    """The argon2id hash to store for ``password``; an :class:`~brandstudio.errors.AppError` if it
    is too short or too long.

    Example:
        >>> hash_password("correct horse battery").startswith("$argon2id$")
        True
    """
    password = _normalise(password)
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise AppError(
            f"a password must be {MIN_LENGTH} to {MAX_LENGTH} characters long, this one has {len(password)}",
            field="password", fix=f"choose a passphrase of at least {MIN_LENGTH} characters",
        )  # fmt: skip
    return hasher.hash(password)


def verify_password(stored: str | None, password: str, *, hasher: PasswordHasher = HASHER) -> PasswordCheck:
    """Whether ``password`` matches the ``stored`` hash; never raises. ``stored=None`` (no such
    user) checks against a dummy hash, so that an unknown e-mail takes as long as a wrong
    password. A damaged stored hash does not match anything.

    Example:
        >>> weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        >>> check = verify_password(hash_password("correct horse battery", hasher=weak), "correct horse battery")
        >>> check.ok, check.new_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        (True, True)
    """
    password = _normalise(password)
    if len(password) > MAX_LENGTH:
        return PasswordCheck(False)
    if stored is None:
        _verifies(_dummy_hash(hasher), password, hasher)
        return PasswordCheck(False)
    if not _verifies(stored, password, hasher):
        return PasswordCheck(False)
    return PasswordCheck(True, hasher.hash(password) if hasher.check_needs_rehash(stored) else None)


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def _verifies(stored: str, password: str, hasher: PasswordHasher) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):  # a mismatch, or a hash that is not argon2's
        return False


@functools.lru_cache(maxsize=4)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("no such user: a password nobody has")
