"""Console sign-in passwords: argon2id hashes through argon2-cffi (the ``console`` extra).

Used by ``scimcore admin password`` and the example server's password sign-in; the core only
stores the hash (:attr:`scimcore.storage.Admin.password_hash`). Nothing here is hand-written
cryptography: hashing, the salt and the constant-time check are argon2-cffi's.
"""

from __future__ import annotations

import contextlib
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "PasswordError",
    "check_password",
    "hash_password",
    "needs_rehash",
    "verify_password",
]

#: The shortest password accepted (characters).
MIN_PASSWORD_LENGTH = 8
#: The longest (characters): argon2 takes any length, a sign-in form should not.
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 low-memory parameters


class PasswordError(ValueError):
    """A password that cannot be set (too short, too long)."""


def check_password(plain: str) -> None:
    """Raise :class:`PasswordError` when ``plain`` may not be a password."""
    if len(plain) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(plain) > MAX_PASSWORD_LENGTH:
        raise PasswordError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(plain: str) -> str:
    """An argon2id hash of ``plain`` (a fresh random salt each time); :class:`PasswordError`
    when the password is too short or too long."""
    check_password(plain)
    return _hasher.hash(plain)


def verify_password(password_hash: str | None, plain: str) -> bool:
    """Whether ``plain`` is the password of ``password_hash`` (argon2's constant-time check).
    Never raises for a wrong password, a malformed hash or ``None`` (no password set): it
    answers ``False``, after as much work as a real check when there is no hash."""
    if not password_hash:
        _dummy_check(plain)
        return False
    try:
        return _hasher.verify(password_hash, plain)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's (rehash at sign-in)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


@cache
def _dummy() -> str:
    return _hasher.hash("scimcore: no password is set for this admin")


def _dummy_check(plain: str) -> None:
    """Spend a real check's time, so that a missing admin or password does not answer faster
    than a wrong password."""
    with contextlib.suppress(VerificationError):
        _hasher.verify(_dummy(), plain)
