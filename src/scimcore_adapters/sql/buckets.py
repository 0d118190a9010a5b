"""The rate limit's token buckets (:mod:`scimcore.ratelimit`) of a SQL storage.

PostgreSQL: a row per workspace in ``rate_buckets`` (an ``UNLOGGED`` table: no WAL, no flush
to wait for), taken from in one autocommitted statement (``INSERT ... ON CONFLICT DO UPDATE
... WHERE`` a token is left: atomic, the row locked for that statement only), so every process
of a deployment shares the bucket and two requests never take the same token. SQLite: the
buckets of :class:`~scimcore.ratelimit.LocalBuckets`, in the process (shared by its threads):
a row would make every read request a write, and SQLite has one writer at a time.
"""

from __future__ import annotations

from sqlalchemy import Engine, Integer, column, text

from scimcore.ratelimit import LocalBuckets, RateLimit

from .execute import run

__all__ = ["SqlBuckets"]

# The bucket's tokens now: what it held at ``stamp``, refilled at ``rate`` (a clock that went
# back adds nothing), at most ``burst``; granted when one is left (scimcore.ratelimit.refill).
_AVAILABLE = (
    "least(CAST(:burst AS double precision), rate_buckets.tokens"
    " + greatest(CAST(:now AS double precision) - rate_buckets.stamp, 0) * :rate)"
)
_TAKE = text(
    "INSERT INTO rate_buckets (workspace_id, tokens, stamp) VALUES (:w, :burst - 1, :now) "
    f"ON CONFLICT (workspace_id) DO UPDATE SET tokens = {_AVAILABLE} - 1, "
    "stamp = greatest(CAST(:now AS double precision), rate_buckets.stamp) "
    f"WHERE {_AVAILABLE} >= 1 "
    "RETURNING 1 AS granted"
).columns(column("granted", Integer))


class SqlBuckets:
    """``take_token`` of :class:`~scimcore.ratelimit.RateBuckets` for one SQL storage.

    PostgreSQL: on a pool of its own (``engine``, autocommit), because a write takes its token
    while it holds a connection of the storage's pool: taking a second one from the same pool
    could leave every connection held by a thread waiting for another."""

    def __init__(self, engine: Engine | None) -> None:
        self._engine = engine
        self._local = LocalBuckets() if engine is None else None

    def take_token(self, workspace_id: str, limit: RateLimit, now: float) -> bool:
        """One request from ``workspace_id``'s bucket; ``False`` when it is empty."""
        if self._engine is None:
            assert self._local is not None
            return self._local.take_token(workspace_id, limit, now)
        params = {"w": workspace_id, "burst": float(limit.burst), "now": now, "rate": limit.rate}
        with self._engine.connect() as conn:
            return run(conn, _TAKE, params).first() is not None

    def close(self) -> None:
        """Close the pool's connections (PostgreSQL)."""
        if self._engine is not None:
            self._engine.dispose()
