"""The clock and the random sources the core is handed (it reads no other).

Tests pass a deterministic :class:`Runtime`; hosts normally use :func:`system_runtime`.
"""

from __future__ import annotations

import secrets
import uuid
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
    return uuid.uuid4().hex


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def system_runtime() -> Runtime:
    """The real clock, UUID4 ids and ``secrets`` for tokens."""
    return Runtime(now=_now, new_id=_new_id, new_secret=_new_secret)
