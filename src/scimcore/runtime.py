"""The clock and the random sources the core is handed (it reads no other).

Tests pass a deterministic :class:`Runtime`; hosts normally use :func:`system_runtime`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import datetime, timezone

from attrs import frozen

__all__ = ["Runtime", "system_runtime"]


@frozen
class Runtime:
    """``now`` returns an aware UTC datetime; ``new_id`` a resource id; ``new_secret`` a token
    secret with at least 256 bits of entropy."""

    now: Callable[[], datetime]
    new_id: Callable[[], str]
    new_secret: Callable[[], str]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _new_id() -> str:
    """A random (version 4) UUID as 32 hex digits, what ``uuid.uuid4().hex`` gives, without
    building a ``UUID`` object (a create draws three ids)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def system_runtime() -> Runtime:
    """The real clock, UUID4 ids and ``secrets`` for tokens."""
    return Runtime(now=_now, new_id=_new_id, new_secret=_new_secret)
