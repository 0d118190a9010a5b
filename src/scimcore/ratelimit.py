"""429 per workspace (issue #22): a token bucket for each workspace.

A workspace may send ``burst`` requests at once and ``rate`` requests per second sustained;
past that it is answered 429 with ``Retry-After`` and a SCIM Error, and nothing it asked is
done. :class:`RateLimit` is the setting (``ServiceConfig.rate_limit``; the servers read it
from ``SCIMCORE_RATE_LIMIT`` with :func:`rate_limit_from_env`). Where the buckets live is the
storage's concern (:class:`RateBuckets`, optional): the SQL storage keeps them in PostgreSQL,
a row per workspace, so that every process of a deployment shares them; a storage without
it (memory, SQLite) gets :class:`LocalBuckets`, shared by the threads of one process.

The core reads no clock here: ``now`` (seconds) comes from :class:`~scimcore.runtime.Runtime`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from attrs import frozen

from .errors import TooManyRequestsError

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "ENV_VAR",
    "LocalBuckets",
    "RateBuckets",
    "RateLimit",
    "parse_rate_limit",
    "rate_limit_from_env",
    "refill",
    "refusal",
]

ENV_VAR = "SCIMCORE_RATE_LIMIT"


@frozen
class RateLimit:
    """``rate`` requests per second sustained, ``burst`` at once, per workspace."""

    rate: float
    burst: int

    def __attrs_post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)) or self.burst < 1:
            raise ValueError("a rate limit needs a positive rate and a burst of at least 1")

    def retry_after(self) -> int:
        """Whole seconds until a refused workspace has a request again (``Retry-After``)."""
        return max(1, math.ceil(1 / self.rate))


#: The servers' default when ``SCIMCORE_RATE_LIMIT`` is unset: eight times the 25 requests per
#: second that Entra's gallery asks a server to take per tenant, with a burst of 1,000 (a
#: conformance checker or an import opens with a few hundred requests in a second).
DEFAULT_RATE_LIMIT = RateLimit(200.0, 1000)


def parse_rate_limit(text: str | None) -> RateLimit | None:
    """``SCIMCORE_RATE_LIMIT``: ``off`` (``None``: no limit), ``RATE/BURST`` (e.g.
    ``200/1000``), or unset/empty (:data:`DEFAULT_RATE_LIMIT`). ``ValueError`` with a one-line
    message otherwise."""
    if text is None or not text.strip():
        return DEFAULT_RATE_LIMIT
    value = text.strip().lower()
    if value == "off":
        return None
    rate, slash, burst = value.partition("/")
    try:
        if not slash:
            raise ValueError
        return RateLimit(float(rate), int(burst))
    except ValueError:
        raise ValueError(
            f"{ENV_VAR} must be 'off' or RATE/BURST with a positive RATE (requests per second) "
            f"and BURST >= 1, e.g. 200/1000; got {text!r}"
        ) from None


def rate_limit_from_env(environ: Mapping[str, str]) -> RateLimit | None:
    """The rate limit ``SCIMCORE_RATE_LIMIT`` of ``environ`` names (:func:`parse_rate_limit`)."""
    return parse_rate_limit(environ.get(ENV_VAR))


def refusal(limit: RateLimit) -> TooManyRequestsError:
    """The 429 for a request past ``limit``, its detail naming the limit."""
    return TooManyRequestsError(
        f"too many requests for this workspace: the limit is {limit.rate:g} requests per "
        f"second with a burst of {limit.burst} (rate_limit, {ENV_VAR}); retry after "
        f"{limit.retry_after()} s",
        limit.retry_after(),
    )


def refill(tokens: float, stamp: float, now: float, limit: RateLimit) -> tuple[bool, float]:
    """One step of a token bucket: whether a request at ``now`` is granted, and the tokens left
    (the bucket held ``tokens`` at ``stamp``; a clock that went back adds nothing)."""
    available = min(float(limit.burst), tokens + max(now - stamp, 0.0) * limit.rate)
    if available >= 1.0:
        return True, available - 1.0
    return False, available


@runtime_checkable
class RateBuckets(Protocol):
    """Optional for a :class:`~scimcore.storage.Storage`: where the buckets live."""

    def take_token(self, workspace_id: str, limit: RateLimit, now: float) -> bool:
        """Take one request from ``workspace_id``'s bucket at ``now`` (seconds); ``False``
        when it is empty. Atomic across every caller that shares the storage, and done in a
        transaction of its own (never the caller's)."""


class LocalBuckets:
    """Buckets in this process's memory, shared by its threads (memory storage, SQLite)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take_token(self, workspace_id: str, limit: RateLimit, now: float) -> bool:
        """:meth:`RateBuckets.take_token`, under a lock."""
        with self._lock:
            tokens, stamp = self._buckets.get(workspace_id, (float(limit.burst), now))
            granted, left = refill(tokens, stamp, now, limit)
            self._buckets[workspace_id] = (left, max(now, stamp))
            return granted
