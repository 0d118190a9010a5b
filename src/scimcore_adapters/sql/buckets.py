"""The rate limit's token buckets (:mod:`scimcore.ratelimit`) of a SQL storage.

PostgreSQL: a row per workspace in ``rate_buckets`` (an ``UNLOGGED`` table: no WAL, no flush
to wait for), taken from in one autocommitted statement (``INSERT ... ON CONFLICT DO UPDATE
... WHERE`` a token is left: atomic, the row locked for that statement only), so every process
of a deployment shares the bucket and two requests never take the same token. SQLite: the
buckets of :class:`~scimcore.ratelimit.LocalBuckets`, in the process (shared by its threads):
a row would make every read request a write, and SQLite has one writer at a time.
"""

from __future__ import annotations

from sqlalchemy import Integer, column, text

from scimcore.ratelimit import LocalBuckets, RateLimit

from .engines import NO_BEGIN
from .execute import run
from .transactions import Transactions

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
    """``take_token`` of :class:`~scimcore.ratelimit.RateBuckets` for one SQL storage."""

    def __init__(self, transactions: Transactions, sqlite: bool) -> None:
        self._transactions = transactions
        self._local = LocalBuckets() if sqlite else None

    def take_token(self, workspace_id: str, limit: RateLimit, now: float) -> bool:
        """One request from ``workspace_id``'s bucket; ``False`` when it is empty."""
        if self._local is not None:
            return self._local.take_token(workspace_id, limit, now)
        params = {"w": workspace_id, "burst": float(limit.burst), "now": now, "rate": limit.rate}
        with self._transactions.begin(NO_BEGIN) as conn:  # PostgreSQL: autocommit
            return run(conn, _TAKE, params).first() is not None
