"""Engine creation and the per-dialect settings of the SQL backend.

:func:`create_engine_for` opens a SQLAlchemy engine for a URL: SQLite (a file; WAL, its pragmas
and a ``begin`` hook that issues the ``BEGIN`` a transaction asks for) or PostgreSQL (a pool that
pings only the connections that sat idle). :func:`engines_by_mode` gives the engines, sharing one
pool, that the transaction engine (:mod:`.transactions`) begins its three kinds of transaction
on; :func:`tune_writer` sets up SQLite's one writer connection.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from .execute import driver

__all__ = [
    "BEGIN_SQL",
    "DEFERRED",
    "IMMEDIATE",
    "NO_BEGIN",
    "POSTGRES_PING_AFTER_IDLE_S",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SQLITE_SYNCHRONOUS",
    "WRITER_CACHE_KIB",
    "create_engine_for",
    "engines_by_mode",
    "tune_writer",
]

#: How long a SQLite writer waits for the lock (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: SQLite page cache of the writer connection (KiB; SQLite's default is 2 MiB per connection). A
#: write reads the pages of a user, its person and their index entries wherever they are; with
#: the default cache a deactivation of a random user read four of them back from the file.
WRITER_CACHE_KIB = 32_768
#: PostgreSQL: a pooled connection that sat idle longer than this (seconds) is pinged before
#: it is handed out (one round trip); one in steady use is not (see :func:`_postgres_engine`).
POSTGRES_PING_AFTER_IDLE_S = 10.0

#: The kinds of transaction: a write (SQLite: ``BEGIN IMMEDIATE``, the write lock from the
#: start), a read snapshot (``BEGIN``) and a read of one statement (no ``BEGIN`` at all: a
#: statement is atomic and reads one snapshot; PostgreSQL: autocommit).
IMMEDIATE, DEFERRED, NO_BEGIN = "IMMEDIATE", "DEFERRED", "NONE"
BEGIN_SQL = {IMMEDIATE: "BEGIN IMMEDIATE", DEFERRED: "BEGIN"}
#: The execution option that tells the SQLite ``begin`` hook how to begin a transaction.
_BEGIN_OPTION = "scimcore_begin"


#: SQLite's ``synchronous`` settings a storage accepts (``docs/deployment.md``: what each
#: keeps through a crash or a power loss).
SQLITE_SYNCHRONOUS = ("FULL", "NORMAL")


def create_engine_for(
    url: str, autocheckpoint: int | None = None, synchronous: str = "NORMAL"
) -> Engine:
    """The engine for ``url`` (``sqlite:///file.db`` or ``postgresql+psycopg://...``);
    ``autocheckpoint``: SQLite's ``wal_autocheckpoint`` (``None``: SQLite's default);
    ``synchronous``: SQLite's ``PRAGMA synchronous`` (:data:`SQLITE_SYNCHRONOUS`)."""
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}")
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, autocheckpoint, synchronous)
    if backend == "postgresql":
        return _postgres_engine(url)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


def engines_by_mode(engine: Engine) -> dict[str, Engine]:
    """Engines sharing ``engine``'s pool, one per kind of transaction (:data:`IMMEDIATE`,
    :data:`DEFERRED`, :data:`NO_BEGIN`)."""
    engines: dict[str, Engine] = {
        mode: engine.execution_options(**{_BEGIN_OPTION: mode})
        for mode in (IMMEDIATE, DEFERRED, NO_BEGIN)
    }
    if engine.dialect.name != "sqlite":  # reads of one statement: no BEGIN/COMMIT round trips
        engines[NO_BEGIN] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return engines


def tune_writer(dbapi_conn: Any) -> None:
    """Set up the SQLite connection that every write of a process runs on.

    The savepoints of group commit keep the pages they change in memory (a temporary file by
    default: three times dearer); a larger page cache keeps what writes read from one write to
    the next (:data:`WRITER_CACHE_KIB`). Writer connection only: a reader's large sort still
    spills to disk."""
    dbapi_conn.execute("PRAGMA temp_store=MEMORY")
    dbapi_conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")


def _sqlite_engine(url: str, autocheckpoint: int | None, synchronous: str) -> Engine:
    parsed = make_url(url)
    if parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed):
        raise ValueError("SqlStorage needs a SQLite database file, e.g. sqlite:///scim.db")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # Threads keep a connection each (see .transactions): never make one wait for the
        # pool; five idle connections are kept, the rest closed on check-in.
        pool_size=5,
        max_overflow=-1,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are begun explicitly below (pysqlite's own handling cannot do
        # SAVEPOINT or BEGIN IMMEDIATE correctly).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a process crash (the kill test); only an OS
            # crash or power loss can lose the last commits, never corrupt the file. FULL:
            # the log is synced at every COMMIT (one per group), so a power loss too.
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if autocheckpoint is not None:  # a Checkpointer copies the log (see .checkpoint)
                cursor.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: through SQLAlchemy's statement machinery a BEGIN costs as
        # much CPU as a query. A single-statement read needs no BEGIN (a statement is atomic
        # and reads one snapshot).
        mode = conn.get_execution_options().get(_BEGIN_OPTION, DEFERRED)
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        if mode == NO_BEGIN or dbapi_conn.in_transaction:  # begun on the driver already
            return
        driver(dbapi_conn, BEGIN_SQL[mode])

    return engine


_IDLE_SINCE = "scimcore_idle_since"


def _postgres_engine(url: str) -> Engine:
    """A PostgreSQL engine whose pool pings only connections that were idle.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every check-out: two per SCIM request
    (authentication, then the operation), as many as a GET's own statements. Connections die
    mostly while idle (server restarts, idle timeouts of servers, proxies and firewalls), so
    only a connection idle for more than :data:`POSTGRES_PING_AFTER_IDLE_S` is pinged; a dead
    one is replaced before any statement runs. A connection the server drops while it is in
    steady use fails its request (a 500 the IdP retries, R9.1), and SQLAlchemy then replaces
    every connection of the pool that is older than the failure.
    """
    engine = create_engine(url)

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since <= POSTGRES_PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error:
            alive = False
        if not alive:  # the pool drops this connection and checks out another
            raise DisconnectionError("the server closed an idle connection")

    return engine
