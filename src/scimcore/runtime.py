"""The clock and the random sources the core is handed (it reads no other).

Tests pass a deterministic :class:`Runtime`; hosts normally use :func:`system_runtime`.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
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


#: Random bytes drawn per ``os.urandom`` call by :func:`_new_id` (409 ids).
_POOL_BYTES = 4096
#: Random bytes per id (80, of which the version and variant fields take 6 bits).
_RANDOM_BYTES = 10


class _RandomPool(threading.local):
    """A thread's unused random bytes (per thread: no lock to wait for)."""

    def __init__(self) -> None:
        self.data = b""
        self.at = 0
        self.generation = -1


_pool = _RandomPool()
#: Bumped in a forked child, so that it never hands out ids its parent drew too.
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _new_id() -> str:
    """A version 7 UUID (RFC 9562) as 32 hex digits: 48 bits of Unix time in milliseconds,
    then 74 random bits. Ids made one after another sort one after another, so a database
    index over them grows at its end, as an index over an insertion counter does, instead of
    at random places (a create writes fewer index pages; see docs/decisions.md). What the
    time part tells, ``meta.created`` already tells.

    The random bytes come from ``os.urandom``, drawn 4 KiB at a time: each ``os.urandom``
    call releases the GIL, and under a threaded server each release can cost a thread switch
    (see docs/performance.md)."""
    pool = _pool
    at = pool.at
    if at + _RANDOM_BYTES > len(pool.data) or pool.generation != _generation:
        pool.data = os.urandom(_POOL_BYTES)
        pool.generation = _generation
        at = 0
    pool.at = at + _RANDOM_BYTES
    raw = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big"))
    raw += pool.data[at : at + _RANDOM_BYTES]
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    return raw.hex()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def system_runtime() -> Runtime:
    """The real clock, time-ordered random ids (UUID version 7) and ``secrets`` for tokens."""
    return Runtime(now=_now, new_id=_new_id, new_secret=_new_secret)
