"""The transaction engine of the SQL backend: how a block of statements becomes one transaction.

It knows connections, transactions and locks, nothing of SCIM: ``tests/test_sql_transactions.py``
drives it on a table of its own. :meth:`SqliteTransactions.begin` and
:meth:`PostgresTransactions.begin` give a connection inside one transaction of a kind
(:data:`.engines.IMMEDIATE`: a write, :data:`.engines.DEFERRED`: a read snapshot,
:data:`.engines.NO_BEGIN`: a read of one statement), committed when the block ends, rolled back
when an exception escapes it.

PostgreSQL needs nothing more than a pooled connection per transaction. SQLite, in one process,
has a few mechanisms, each explained where it lives: **held connections** (a thread keeps its
connection; ``BEGIN``/``COMMIT`` straight on the driver, :meth:`_sqlite_transaction`), **one
writer connection** and the queue of writers (:attr:`_writer`, :attr:`_write_lock`), **group
commit** (:meth:`_sqlite_write`, :class:`_Group`), **read turns** (:meth:`read_turn`) and
**fork safety** (:meth:`_before_fork`, :meth:`_after_fork_in_child`).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress

from sqlalchemy import Connection, Engine

from .checkpoint import Checkpointer
from .connections import (
    HeldConnection,
    finish,
    forget_connections_at_fork,
    roll_back_or_invalidate,
)
from .engines import BEGIN_SQL, IMMEDIATE, NO_BEGIN, engines_by_mode, tune_writer
from .execute import driver

__all__ = ["GroupCommitError", "PostgresTransactions", "SqliteTransactions", "Transactions"]

_log = logging.getLogger(__name__)

#: The savepoint of a write that joins an open group (see SqliteTransactions._sqlite_write).
_SAVEPOINT = "SAVEPOINT scimcore_write"
_RELEASE = "RELEASE scimcore_write"
_ROLLBACK_TO = "ROLLBACK TO scimcore_write"


#: Seconds a write of a group waits for its ``COMMIT`` before it looks for an orphaned group.
_GROUP_ORPHAN_S = 1.0
#: The most writes one group ``COMMIT`` carries (each waits for the ones after it).
_GROUP_LIMIT = 32


class GroupCommitError(RuntimeError):
    """The shared ``COMMIT`` of a group of SQLite writes failed (see
    :meth:`SqliteTransactions._sqlite_write`): nothing of this write was stored. Raised, like any
    database error, out of the write's block; the service answers it 500 (the IdP retries).
    ``__cause__`` is the database's error."""


class _Group:
    """Writes sharing one SQLite transaction (group commit).

    Most groups have one write, which commits it itself: the latch that writes waiting for
    the ``COMMIT`` block on is made only when one waits (a ``threading.Event`` per write cost
    2 % of a create)."""

    __slots__ = ("error", "finished", "latch", "members")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.finished = False
        self.latch: threading.Lock | None = None
        self.members = 0

    def waiting(self) -> None:
        """A write will wait for this group's ``COMMIT`` (call with ``_write_lock`` held)."""
        if self.latch is None:
            self.latch = threading.Lock()
            self.latch.acquire()

    def finish(self, error: BaseException | None) -> None:
        self.error = error
        self.finished = True
        if self.latch is not None:
            self.latch.release()

    def wait(self, timeout: float) -> bool:
        """Whether the group finished within ``timeout`` seconds (the latch is passed on to
        the next waiting write)."""
        assert self.latch is not None
        if not self.latch.acquire(timeout=timeout):
            return self.finished
        self.latch.release()
        return True


class SqliteTransactions:
    """The transactions of one SQLite file in this process (see the module's documentation).

    ``group_commit``: writes queued behind one another share one ``COMMIT``; ``False``: one
    ``COMMIT`` per write. ``read_turns``: :meth:`read_turn` makes reads take turns; ``False``:
    they run side by side. ``checkpointer``: told of each ``COMMIT`` (and of a fork).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        group_commit: bool = True,
        read_turns: bool = True,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self.engine = engine
        self.checkpointer = checkpointer
        self._engines = engines_by_mode(engine)
        self._local = threading.local()
        self._held: weakref.WeakSet[HeldConnection] = weakref.WeakSet()
        self._held_lock = threading.Lock()
        #: SQLite has one writer at a time: the threads of this process queue for it here,
        #: woken in turn, instead of polling the file lock in SQLite's busy handler (which
        #: sleeps up to 100 ms between tries). Other processes still wait in ``busy_timeout``.
        self._write_lock = threading.RLock()
        #: What :meth:`read_turn` holds (``read_turns``).
        self._read_lock = threading.RLock()
        self._read_turns = read_turns
        #: The connection every write transaction of this process runs on (under
        #: ``_write_lock``). A connection's page cache is only valid until another connection
        #: commits: with one writer connection the pages a write needs stay cached from one
        #: write to the next instead of being read again from the file by whichever thread's
        #: connection writes next.
        self._writer: HeldConnection | None = None
        #: Group commit (:meth:`_sqlite_write`): the open group, how many threads are queued
        #: for ``_write_lock``, and the most writes one ``COMMIT`` may carry.
        self._group: _Group | None = None
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._group_limit = _GROUP_LIMIT if group_commit else 1
        forget_connections_at_fork(self)

    def read_turn(self) -> AbstractContextManager[object]:
        """One read of this process at a time (``read_turns``): the lock a read holds.

        A SQLite read is CPU-bound: its statement costs microseconds, but the ``sqlite3``
        module releases the GIL two or three times per statement, and under a threaded server
        another request thread takes it each time, which costs more CPU than the statement
        (measured in docs/performance.md). Readers that wait for their turn on a lock are not
        waiting for the GIL. Writes queue on their own lock (:attr:`_write_lock`), so a read
        and a write still run side by side. The price: a long read (a deep page of a million
        users) delays the other reads of its process, which without turns would run their
        Python while it is in SQLite. Measured: a GET 0.60 -> 0.53-0.56 ms of server CPU."""
        return self._read_lock if self._read_turns else nullcontext()

    def close(self) -> None:
        """Close every connection held by a thread (after committing an open group of writes,
        which are waiting for it) and stop the checkpointer; the engine's owner disposes of
        the pool."""
        with self._write_lock:
            writer = self._writer
            if self._group is not None and writer is not None and not writer.busy:
                try:
                    self._commit_group(writer)
                except Exception:  # its writes raise it; closing goes on
                    _log.debug("committing the open group at close failed", exc_info=True)
        if self.checkpointer is not None:
            self.checkpointer.close()
        with self._held_lock:
            held = list(self._held)
        for connection in held:
            connection.close()

    def thread_connection(self) -> Connection | None:
        """The connection this thread keeps between transactions (``None`` while it is
        in a transaction already: a nested block takes a pooled connection).

        A SQLite connection is a handle on a local file, so keeping one per thread costs
        nothing, and it spares each request two pool check-outs and check-ins.
        """
        held = self._held_connection(NO_BEGIN)
        return held.conn if held is not None else None

    def _held_connection(self, mode: str) -> HeldConnection | None:
        """The kept connection for a transaction of ``mode``: the process's writer connection
        for writes (call with ``_write_lock`` held), else the thread's own; ``None`` while it
        is in a transaction already."""
        held = self._writer if mode == IMMEDIATE else getattr(self._local, "held", None)
        if held is None or held.conn is None or held.conn.closed or held.conn.invalidated:
            if held is not None:
                held.close()
            if mode == IMMEDIATE and self._group is not None:
                # The open group's transaction went with the connection: its writes are lost.
                group, self._group = self._group, None
                group.finish(GroupCommitError("the writer connection was lost before COMMIT"))
            conn = self._engines[NO_BEGIN].connect()
            held = HeldConnection(conn)
            if mode == IMMEDIATE:
                tune_writer(conn.connection.dbapi_connection)
                self._writer = held
            else:
                self._local.held = held
            with self._held_lock:
                self._held.add(held)
        return None if held.busy else held

    def _before_fork(self) -> None:
        """In the parent, before ``os.fork()`` (a server preloading the app, then forking its
        workers): close the idle connections, so that no child inherits an open SQLite
        connection (SQLite forbids using one across ``fork``). The parent reopens them."""
        held: HeldConnection | None = getattr(self._local, "held", None)
        if held is not None and not held.busy:
            self._drop(held)
        if self._write_lock.acquire(blocking=False):  # else another thread is writing
            try:
                if self._writer is not None and not self._writer.busy:
                    if self._group is not None:  # writes waiting for their COMMIT: do it now
                        self._commit_group(self._writer)
                    self._drop(self._writer)
            finally:
                self._write_lock.release()
        self.engine.dispose()

    def _after_fork_in_child(self) -> None:
        """In the child: fresh locks and thread connections, and a fresh pool. The parent's
        thread connections are never used or closed here (see :class:`HeldConnection`)."""
        for held in list(self._held):
            held.close()  # in the child: kept in INHERITED, not closed
        self._local = threading.local()
        self._held = weakref.WeakSet()
        self._held_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._read_lock = threading.RLock()
        self._writer = None
        self._group = None  # the parent's waiting writes are not in this process
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        if self.checkpointer is not None:
            self.checkpointer.after_fork_in_child()
        self.engine.dispose(close=False)

    def _drop(self, held: HeldConnection, *, broken: bool = False) -> None:
        """Close a kept connection (the next transaction opens a new one). ``broken``: a
        ``COMMIT`` or ``ROLLBACK`` failed on it, and SQLite keeps a transaction open after a
        failed ``COMMIT``, holding the write lock: it is rolled back here (the pool does not
        roll back a transaction that SQLAlchemy saw end), or the connection invalidated."""
        if broken and held.conn is not None and not held.conn.closed:
            roll_back_or_invalidate(held.conn)
        if held is self._writer:
            self._writer = None
        elif held is getattr(self._local, "held", None):
            self._local.held = None
        held.close()

    def begin(self, mode: str, *, joins: bool = True) -> AbstractContextManager[Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` (:data:`.engines.IMMEDIATE`, a write),
        ``BEGIN`` (:data:`.engines.DEFERRED`, a read snapshot) or none
        (:data:`.engines.NO_BEGIN`, a read of one statement). A write may share its ``COMMIT``
        with the writes queued behind it (:meth:`_sqlite_write`; ``joins=False``: never)."""
        if mode == IMMEDIATE:
            return self._sqlite_write(joins)  # not wrapped: every write passes here
        return self._read(mode)

    @contextmanager
    def _read(self, mode: str) -> Iterator[Connection]:
        """:meth:`begin` for a read: on the thread's held connection."""
        held = self._held_connection(mode)
        if held is None:  # a block nested in another of this thread: a pooled connection
            with self._engines[mode].connect() as pooled, pooled.begin():
                yield pooled
            return
        assert held.conn is not None
        held.busy = True
        try:
            with self._sqlite_transaction(held, mode):
                yield held.conn
        finally:
            held.busy = False

    @contextmanager
    def _sqlite_write(self, joins: bool) -> Iterator[Connection]:
        """A SQLite write on the writer connection, under ``_write_lock``: group commit.

        The first write of a group begins the transaction (``BEGIN IMMEDIATE``). When it is
        done and other threads of this process are queued for the write lock, it does not
        commit: it hands the open transaction on and waits. The next write runs inside it, in
        a savepoint of its own (its failure rolls back its own changes and no one else's), and
        so on; the write that finds no one queued (or the group full) commits the group, and
        every write of it returns (or raises, when that ``COMMIT`` failed) only then. No write
        returns before it is durable, and each is all-or-nothing as before; what the group
        shares is the ``COMMIT``: a page that several writes changed (the end of the users'
        table, of the log, of their indexes) is written to the WAL once, not once per write
        (docs/performance.md: 138 -> 74 KB written to the log per create, 0.840 -> 0.795 ms of
        server CPU per create under four threads). A write that is not first pays for its savepoint:
        SQLite keeps the pages it changes as they were (in memory on the writer connection,
        ``temp_store=MEMORY``).

        ``joins=False`` (a bulk import): commit any open group first and run alone."""
        # Counted in _waiting only while queued: a write that takes the lock at once (most
        # of them) never was, and skips the count's two turns of _waiting_lock.
        if not self._write_lock.acquire(blocking=False):
            with self._waiting_lock:
                self._waiting += 1
            try:
                self._write_lock.acquire()
            finally:
                with self._waiting_lock:
                    self._waiting -= 1
        committing: _Group | None = None
        try:
            held = self._held_connection(IMMEDIATE)
            if held is None:  # a write nested in a write of this thread: a pooled connection
                with self._engines[IMMEDIATE].connect() as pooled, pooled.begin():
                    yield pooled
                return
            conn = held.conn
            assert conn is not None
            dbapi_conn = conn.connection.dbapi_connection
            assert dbapi_conn is not None
            if self._group is not None and not joins:
                self._commit_group(held)
            held.busy = True
            try:
                group = self._group
                first = group is None
                if group is None:
                    group = self._group = _Group()
                try:
                    driver(dbapi_conn, BEGIN_SQL[IMMEDIATE] if first else _SAVEPOINT)
                    yield conn
                    if not first:
                        driver(dbapi_conn, _RELEASE)
                except BaseException:  # a failed BEGIN or SAVEPOINT too
                    self._undo_write(held, group, first)
                    raise
                group.members += 1
                if joins and self._waiting and group.members < self._group_limit:
                    group.waiting()
                    committing = group  # the write that ends the group commits it
                else:
                    self._commit_group(held)
            finally:
                held.busy = False
        finally:
            self._write_lock.release()
        if committing is not None:
            self._await_commit(committing)

    def _undo_write(self, held: HeldConnection, group: _Group, first: bool) -> None:
        """A write of the open group failed (``_write_lock`` held): roll back its changes (the
        whole transaction when it began it), and commit the group's earlier writes unless
        another thread is queued to carry it on."""
        assert held.conn is not None
        dbapi_conn = held.conn.connection.dbapi_connection
        if first:
            self._group = None
            try:
                finish(held.conn, dbapi_conn, commit=False)
            except BaseException:
                self._drop(held, broken=True)  # state unknown: never reuse it
            return
        try:
            driver(dbapi_conn, _ROLLBACK_TO)
            driver(dbapi_conn, _RELEASE)
        except BaseException as exc:  # the transaction is unusable: the group fails
            self._group = None
            group.finish(exc)
            self._drop(held, broken=True)
            return
        if not self._waiting:
            try:
                self._commit_group(held)
            except BaseException:  # the group's writes learn it; this one raises its own error
                _log.debug("a group commit after a failed write failed", exc_info=True)

    def _commit_group(self, held: HeldConnection) -> None:
        """``COMMIT`` the open group (``_write_lock`` held) and release its waiting writes."""
        group, self._group = self._group, None
        assert group is not None and held.conn is not None
        try:
            finish(held.conn, held.conn.connection.dbapi_connection, commit=True)
        except BaseException as exc:
            group.finish(exc)
            self._drop(held, broken=True)  # a failed COMMIT leaves the transaction open
            raise
        group.finish(None)
        if self.checkpointer is not None:
            self.checkpointer.wrote()

    def _await_commit(self, group: _Group) -> None:
        """Wait until ``group`` is committed; raise if its ``COMMIT`` failed. A safety net: a
        group left open with no one to end it (a queued thread that never took the lock) is
        committed here after :data:`_GROUP_ORPHAN_S` seconds."""
        while not group.wait(_GROUP_ORPHAN_S):
            with self._write_lock:
                writer = self._writer
                if self._group is group and writer is not None and not writer.busy:
                    with suppress(Exception):  # group.error holds it: raised below
                        self._commit_group(writer)
        if group.error is not None:
            raise GroupCommitError(
                "the transaction this write was committed in failed"
            ) from group.error

    @contextmanager
    def _sqlite_transaction(self, held: HeldConnection, mode: str) -> Iterator[None]:
        """``BEGIN`` and ``COMMIT`` (or ``ROLLBACK``) straight on the driver connection, under
        SQLAlchemy: its transaction bookkeeping costs more CPU than an indexed read. A statement
        that goes through ``Connection.execute`` (listeners, statements built per request)
        autobegins SQLAlchemy's transaction inside this one (the ``begin`` hook then issues no
        second ``BEGIN``), and is committed or rolled back through SQLAlchemy."""
        conn = held.conn
        assert conn is not None
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        if mode != NO_BEGIN:
            driver(dbapi_conn, BEGIN_SQL[mode])
        try:
            yield
        except BaseException:
            try:
                finish(conn, dbapi_conn, commit=False)
            except BaseException:
                self._drop(held, broken=True)  # state unknown: never reuse it
            raise
        try:
            finish(conn, dbapi_conn, commit=True)
        except BaseException:
            self._drop(held, broken=True)  # a failed COMMIT leaves the transaction open
            raise


class PostgresTransactions:
    """The transactions of a PostgreSQL database: one pooled connection each (a read of one
    statement: an autocommit connection, no ``BEGIN``/``COMMIT`` round trips)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.checkpointer: Checkpointer | None = None
        self._engines = engines_by_mode(engine)

    @contextmanager
    def begin(self, mode: str, *, joins: bool = True) -> Iterator[Connection]:
        """One transaction of ``mode`` on a pooled connection (``joins``: no meaning here)."""
        with self._engines[mode].connect() as pooled, pooled.begin():
            yield pooled

    def read_turn(self) -> AbstractContextManager[object]:
        """No turns: PostgreSQL's reads run side by side."""
        return nullcontext()

    def thread_connection(self) -> Connection | None:
        """``None``: no connection is held between transactions."""
        return None

    def close(self) -> None:
        """Nothing to close but the pool (the engine's owner disposes of it)."""


#: The transaction engine of a storage.
Transactions = SqliteTransactions | PostgresTransactions
