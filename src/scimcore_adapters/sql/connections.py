"""The SQLite connections the transaction engine (:mod:`.transactions`) keeps.

A thread keeps its connection between transactions (:class:`HeldConnection`): a handle on a
local file costs nothing to keep, and each request is spared two pool check-outs and
check-ins. This module says how a transaction on such a connection is ended (:func:`finish`),
what is done with one whose ``COMMIT`` failed (:func:`roll_back_or_invalidate`), and what a
forked child does with the connections of its parent (:data:`INHERITED`,
:func:`forget_connections_at_fork`).
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Any, Protocol

from sqlalchemy import Connection

from .execute import driver

__all__ = [
    "INHERITED",
    "HeldConnection",
    "finish",
    "forget_connections_at_fork",
    "roll_back_or_invalidate",
]

_log = logging.getLogger(__name__)


class _ForkAware(Protocol):
    def _before_fork(self) -> None: ...

    def _after_fork_in_child(self) -> None: ...


def finish(conn: Connection, dbapi_conn: Any, *, commit: bool) -> None:
    """End a transaction of :meth:`.SqliteTransactions._sqlite_transaction`: through SQLAlchemy
    when a statement autobegan its transaction, else on the driver."""
    if conn.in_transaction():
        conn.commit() if commit else conn.rollback()
    elif dbapi_conn.in_transaction:
        driver(dbapi_conn, "COMMIT" if commit else "ROLLBACK")


def roll_back_or_invalidate(conn: Connection) -> None:
    """End what a failed ``COMMIT`` left open on ``conn``'s driver connection; if even that
    fails, close the driver connection for good (closing rolls back and frees the lock)."""
    if conn.invalidated:
        return
    dbapi_conn = conn.connection.dbapi_connection
    try:
        if dbapi_conn is not None and dbapi_conn.in_transaction:
            driver(dbapi_conn, "ROLLBACK")
    except Exception:
        conn.invalidate()


class HeldConnection:
    """A connection a thread keeps (:meth:`.SqliteTransactions.thread_connection`), closed when
    the thread ends (its ``threading.local`` is cleared), or by
    :meth:`.SqliteTransactions.close`."""

    __slots__ = ("__weakref__", "busy", "conn", "pid")

    def __init__(self, conn: Connection) -> None:
        self.conn: Connection | None = conn
        self.busy = False  # in a transaction: a nested block takes a pooled connection
        self.pid = os.getpid()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and self.pid != os.getpid():
            # A forked child freeing the parent's thread-locals: never close a SQLite handle
            # of the parent here (that would release the parent's file locks); keep it.
            INHERITED.append(conn)
        elif conn is not None:
            try:
                conn.close()
            except Exception:  # pragma: no cover - a broken connection is dropped all the same
                _log.debug("closing a thread's SQLite connection failed", exc_info=True)

    def __del__(self) -> None:
        self.close()


#: Connections a forked child inherited from threads of its parent (see
#: :meth:`.SqliteTransactions._after_fork_in_child`).
INHERITED: list[Connection] = []


def forget_connections_at_fork(transactions: _ForkAware) -> None:
    """Register fork hooks of ``transactions`` (held weakly: a dropped one is skipped)."""
    ref = weakref.ref(transactions)

    def before() -> None:
        alive = ref()
        if alive is not None:
            alive._before_fork()

    def after_in_child() -> None:
        alive = ref()
        if alive is not None:
            alive._after_fork_in_child()

    os.register_at_fork(before=before, after_in_child=after_in_child)
