"""The SQL :class:`~scimcore.storage.Storage`: SQLite (embedded default) and PostgreSQL.

One code path (SQLAlchemy Core) for both engines. Every :meth:`SqlStorage.users` block is one
unit of work: committed on a clean exit, rolled back when an exception escapes. On SQLite a
writing block holds the write lock from its start (``BEGIN IMMEDIATE``, so a read-then-write
operation never fails with a stale snapshot; waiting is bounded by ``busy_timeout``), and
writing blocks of one process queued behind one another share one transaction, each in a
savepoint of its own, and return once its ``COMMIT`` is done (group commit, see
:meth:`SqlStorage._sqlite_write`). Uniqueness is enforced by the database's unique indexes, so
concurrent creates of one ``userName`` from different threads or processes yield exactly one
winner.

The product methods of the unit of work (people and cards, settings, templates, rules, outbox,
log) live in :mod:`.product` and run in the same transaction as the user writes (R3.6).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Select,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError

from scimcore._json import dumps_text, loads
from scimcore.errors import (
    InvalidValueError,
    NotFoundError,
    PreconditionFailedError,
    UniquenessError,
)
from scimcore.filters import Filter, compile_filter, matches, validate
from scimcore.schema import MAPPING, SchemaRegistry, default_registry
from scimcore.storage import (
    Grant,
    OutboxMail,
    Page,
    SortSpec,
    TokenRecord,
    Workspace,
    sort_documents,
)

from .accounts import AccountsMixin  # product:
from .activation import ActivationLookupMixin  # product:
from .checkpoint import BACKSTOP_PAGES, Checkpointer
from .compiler import Translation, compile_where, order_by, parse_datetime, user_name_key
from .migrations import migrate
from .product import (
    ProductStore,
    claim_mail,
    dialect_insert,
    finish_mail,
    insert_unless_statement,
    upsert_statement,
    with_settings_and_rules,
    with_user_for_update,
)
from .raw import Runner, run, run_dbapi
from .tables import ADMINS, TOKENS, USER_COUNTS, USER_EMAILS, USERS, WORKSPACES

__all__ = ["GroupCommitError", "SqlStorage", "SqlUserStore", "create_storage"]

log = logging.getLogger(__name__)

#: How long a SQLite writer waits for the lock (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: SQLite page cache of the writer connection (KiB; SQLite's default is 2 MiB per connection). A
#: write reads the pages of a user, its person and their index entries wherever they are; with
#: the default cache a deactivation of a random user read four of them back from the file.
WRITER_CACHE_KIB = 32_768
#: PostgreSQL: a pooled connection that sat idle longer than this (seconds) is pinged before
#: it is handed out (one round trip); one in steady use is not (see :func:`_postgres_engine`).
POSTGRES_PING_AFTER_IDLE_S = 10.0
_BATCH = 500


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _folded(value: Any) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def _user_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of ``users`` derived from a canonical document."""
    row = _user_columns(doc)
    row["document"] = dumps_text(doc)
    return row


def _user_columns(doc: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`_user_row` without the document: what an update compares."""
    meta = doc.get("meta")
    meta = meta if isinstance(meta, MAPPING) else {}
    user_name = doc["userName"]
    version = meta.get("version")
    if not isinstance(user_name, str) or not isinstance(version, str):
        raise TypeError("a stored document needs a string userName and meta.version")
    active = doc.get("active")
    created, modified = meta.get("created"), meta.get("lastModified")
    return {
        "user_name": user_name,
        "user_name_folded": user_name.casefold(),
        "external_id": _str_or_none(doc.get("externalId")),
        "display_name": _str_or_none(doc.get("displayName")),
        "display_name_folded": _folded(doc.get("displayName")),
        "active": active if isinstance(active, bool) else None,
        "created": parse_datetime(created) if isinstance(created, str) else None,
        "last_modified": parse_datetime(modified) if isinstance(modified, str) else None,
        "version": version,
    }


def _email_rows(workspace_id: str, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One ``user_emails`` row per complex value of ``emails`` (as the evaluator sees them)."""
    raw = doc.get("emails")
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    rows = []
    for position, item in enumerate(items):
        if not isinstance(item, MAPPING):
            continue
        primary = item.get("primary")
        rows.append(
            {
                "workspace_id": workspace_id,
                "user_id": doc["id"],
                "position": position,
                "value_folded": _folded(item.get("value")),
                "type": _folded(item.get("type")),
                "is_primary": primary if isinstance(primary, bool) else None,
            }
        )
    return rows


def _is_unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    name = getattr(orig, "sqlite_errorname", None)  # sqlite3 (Python 3.11+)
    if name is not None:
        return name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
    text = str(orig)
    return "UNIQUE constraint failed" in text or "duplicate key" in text


#: PostgreSQL's SQLSTATE for an index entry over its B-tree limit (about 2,700 bytes).
_PROGRAM_LIMIT_EXCEEDED = "54000"


@contextmanager
def _indexable() -> Iterator[None]:
    """A user's indexed values that PostgreSQL cannot index (an entry over about 2,700 bytes
    after compression: a ``userName``, ``externalId``, ``displayName`` or e-mail value of
    thousands of characters) are bad input, 400 ``invalidValue``, not a server error. SQLite
    has no such limit. The transaction is rolled back as after any error."""
    try:
        yield
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == _PROGRAM_LIMIT_EXCEEDED:
            raise InvalidValueError(
                "a userName, externalId, displayName or e-mail value is too long to be indexed "
                "(PostgreSQL allows about 2,700 bytes per index entry)"
            ) from None
        raise


# --- statements ----------------------------------------------------------------------------------
#
# Built once with ``bindparam`` placeholders (``b_*``: never a column name) and executed with a
# parameter dict, so no request pays for building a statement or for its cache key; see
# :mod:`.product`. Parameters named like columns fill an ``INSERT`` or the ``SET`` of an
# ``UPDATE``.

_OTHER = USERS.alias("other")
_MINE = and_(USERS.c.workspace_id == bindparam("b_ws"), USERS.c.id == bindparam("b_id"))
_GET_USER = select(USERS.c.document).where(_MINE)
#: PostgreSQL, in a writing transaction: the row stays locked until the commit, so concurrent
#: updates of one user take turns instead of failing their compare-and-set (SQLite's
#: ``BEGIN IMMEDIATE`` already makes writers take turns).
_GET_USER_FOR_UPDATE = _GET_USER.with_for_update()
_GET_VERSION = select(USERS.c.version).where(_MINE)
#: Compare-and-set, and only if no other user of the workspace has the new userName: a taken
#: name updates nothing instead of failing, so the transaction stays usable (PostgreSQL aborts a
#: transaction on an error) without a savepoint.
_REPLACE_USER = USERS.update().where(
    _MINE,
    USERS.c.version == bindparam("b_version"),
    ~exists().where(
        _OTHER.c.workspace_id == bindparam("b_ws"),
        _OTHER.c.user_name_folded == bindparam("b_name"),
        _OTHER.c.id != bindparam("b_id"),
    ),
)
_DELETE_USER = delete(USERS).where(_MINE)
_INSERT_EMAILS = USER_EMAILS.insert()
_DELETE_EMAILS = delete(USER_EMAILS).where(
    USER_EMAILS.c.workspace_id == bindparam("b_ws"), USER_EMAILS.c.user_id == bindparam("b_id")
)
_INSERT_USERS = USERS.insert()
_IN_WORKSPACE = USERS.c.workspace_id == bindparam("b_ws")
_COUNT_ALL = select(USER_COUNTS.c.n).where(USER_COUNTS.c.workspace_id == bindparam("b_ws"))
"""The workspace's number of users, kept by :func:`_bump_statement` (O(1), not count(*))."""


@lru_cache(maxsize=4)
def _bump_statement(dialect_name: str) -> Executable:
    """Add ``b_delta`` to the workspace's user count (``INSERT ... ON CONFLICT DO UPDATE``)."""
    stmt = dialect_insert(dialect_name)(USER_COUNTS).values(
        workspace_id=bindparam("b_ws"), n=bindparam("b_delta")
    )
    built: Executable = stmt.on_conflict_do_update(
        index_elements=[USER_COUNTS.c.workspace_id],
        set_={"n": USER_COUNTS.c.n + stmt.excluded.n},
    )
    return built


@lru_cache(maxsize=64)
def _paging(sort: SortSpec | None) -> Select[str] | None:
    """A page of documents in the order of ``sort`` (``None``: not expressible in SQL), to be
    completed with a ``WHERE`` clause; offset and limit are the parameters ``b_offset`` and
    ``b_limit``."""
    order = order_by(sort)
    if order is None:
        return None
    return (
        select(USERS.c.document)
        .order_by(*order)
        .offset(bindparam("b_offset"))
        .limit(bindparam("b_limit"))
    )


_DEFAULT_PAGING = _paging(None)
assert _DEFAULT_PAGING is not None
_PAGE_ALL = _DEFAULT_PAGING.where(_IN_WORKSPACE)
#: ``userName eq "..."`` (see :func:`.compiler.user_name_key`), as :func:`.compiler.compile_where`
#: translates it, prebuilt.
_NAMED = and_(
    USERS.c.user_name_folded.is_not(None), USERS.c.user_name_folded == bindparam("b_name")
)
_PAGE_NAMED = _DEFAULT_PAGING.where(_IN_WORKSPACE, _NAMED)
_COUNT_NAMED = select(func.count()).select_from(USERS).where(_IN_WORKSPACE, _NAMED)


@lru_cache(maxsize=1024)
def _in_workspace(workspace_id: str) -> ColumnElement[bool]:
    """``users.workspace_id = ...`` (immutable, so built once per workspace)."""
    return USERS.c.workspace_id == workspace_id


def _ends_the_result(start: int, count: int, page: Sequence[Any]) -> bool:
    """Whether a page of at most ``count`` rows from ``start`` shows where the result ends (a
    short page, or an empty first page): then ``start + len(page)`` is the total and no
    ``count(*)`` is needed."""
    return len(page) < count and (bool(page) or start == 0)


def _name_taken(doc: Mapping[str, Any]) -> UniquenessError:
    return UniquenessError(f"userName {doc['userName']!r} is already taken")


class SqlUserStore(ProductStore):
    """A :class:`~scimcore.storage.UserStore` over one connection inside one transaction.

    Obtain it from :meth:`SqlStorage.users`; it is valid only inside that ``with`` block. The
    product methods (``get_person`` ... ``list_log``) come from :class:`.product.ProductStore`.

    ``exclusive``: the transaction has held the database's write lock since it began (SQLite's
    ``BEGIN IMMEDIATE``), so nothing it reads can change under it. The store then remembers the
    columns and ``user_emails`` rows of the users (and the people) it has read or written:
    :meth:`replace` and ``save_person`` write only the columns that change (SQLite rewrites
    an index entry for every column named in an ``UPDATE``, changed or not: a ``PATCH`` of
    ``title`` would dirty all eight pages of the users' indexes), and the e-mail rows only
    when they change (two statements fewer).

    ``lazy``: no transaction was begun (SQLite, a ``one_read`` block): :meth:`get` and a
    ``userName eq`` lookup run one statement; every other query begins the snapshot first.

    ``runner``: the transaction's :class:`.raw.Runner`, when its first statement ran before
    the store was made (the authentication of a write).
    """

    def __init__(
        self,
        conn: Connection,
        workspace_id: str,
        registry: SchemaRegistry,
        *,
        exclusive: bool = False,
        lazy: bool = False,
        for_update: bool = False,
        runner: Runner | None = None,
    ) -> None:
        self._conn = conn
        self._run = runner or Runner(conn)
        self._for_update = for_update
        self._ws = workspace_id
        self._registry = registry
        self._known: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] | None = (
            {} if exclusive else None
        )
        self._known_people: dict[str, dict[str, Any]] | None = {} if exclusive else None
        self._lazy = lazy
        #: A ``lazy`` PostgreSQL store began a transaction of its own (see :meth:`_snapshot`).
        self.server_snapshot = False

    def _snapshot(self) -> None:
        """In a ``lazy`` store: begin the read transaction (one snapshot) now, before the first
        of several statements; it ends with the block."""
        if self._lazy:
            self._lazy = False
            if self._conn.dialect.name == "sqlite":
                dbapi_conn = self._conn.connection.dbapi_connection
                assert dbapi_conn is not None
                _driver(dbapi_conn, _BEGIN_SQL[_DEFERRED])
            else:  # an autocommit connection: the server's transaction, ended by users()
                self._conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                self.server_snapshot = True

    def _mine(self, user_id: str) -> dict[str, Any]:
        return {"b_ws": self._ws, "b_id": user_id}

    def get(self, user_id: str) -> dict[str, Any] | None:
        if self._known is not None:  # an exclusive write: its person too, in one statement
            text = self._user_with_person(user_id)
        else:
            stmt = _GET_USER_FOR_UPDATE if self._for_update else _GET_USER
            text = self._run(stmt, self._mine(user_id)).scalar()
        if text is None:
            return None
        doc: dict[str, Any] = loads(text)
        if self._known is not None:
            self._known[user_id] = (_user_columns(doc), _email_rows(self._ws, doc))
        return doc

    def _write_emails(self, user_id: str, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._run(_INSERT_EMAILS, row, columns=True, fetch=False)

    def _delete_emails(self, user_id: str) -> None:
        self._run(_DELETE_EMAILS, self._mine(user_id), fetch=False)

    @staticmethod
    def _uniqueness(exc: IntegrityError, doc: Mapping[str, Any]) -> UniquenessError:
        if "user_name" in str(exc.orig):
            return _name_taken(doc)
        return UniquenessError(f"id {doc['id']!r} is already taken")

    def insert(self, document: dict[str, Any]) -> None:
        """``INSERT ... ON CONFLICT DO NOTHING``: a taken ``id`` or ``userName`` inserts nothing
        (no error, so the transaction stays usable without a savepoint)."""
        user_id = document["id"]
        row = _user_row(document)
        row["workspace_id"] = self._ws
        row["id"] = user_id
        stmt = insert_unless_statement(self._conn.dialect.name, USERS, ())
        with _indexable():
            try:
                inserted = self._run(stmt, row, columns=True, fetch=False).rowcount == 1
            except IntegrityError as exc:
                if _is_unique_violation(exc):
                    raise self._uniqueness(exc, document) from None
                raise
            if not inserted:
                if self._run(_GET_VERSION, self._mine(user_id)).first() is not None:
                    raise UniquenessError(f"id {user_id!r} is already taken")
                raise _name_taken(document)
            self._write_emails(user_id, _email_rows(self._ws, document))
        self._bump(1)

    def _bump(self, delta: int) -> None:
        stmt = _bump_statement(self._conn.dialect.name)
        self._run(stmt, {"b_ws": self._ws, "b_delta": delta}, fetch=False)

    def replace(self, document: dict[str, Any], expected_version: str) -> None:
        user_id = document["id"]
        row = _user_row(document)
        known = self._known.pop(user_id, None) if self._known is not None else None
        if known is not None:  # only what changes (see the class documentation)
            before = known[0]
            params = {k: v for k, v in row.items() if k == "document" or before.get(k) != v}
        else:
            params = dict(row)
        params["b_ws"] = self._ws
        params["b_id"] = user_id
        params["b_version"] = expected_version
        params["b_name"] = row["user_name_folded"]
        with _indexable():
            try:
                result = self._run(_REPLACE_USER, params, columns=True, fetch=False)
            except IntegrityError as exc:  # PostgreSQL: a concurrent rename to the same userName
                if _is_unique_violation(exc):
                    raise self._uniqueness(exc, document) from None
                raise
            if result.rowcount == 0:
                version = self._run(_GET_VERSION, self._mine(user_id)).scalar()
                if version is None:
                    raise NotFoundError(f"resource {user_id} not found")
                if version != expected_version:
                    raise PreconditionFailedError("the resource was changed by another request")
                raise _name_taken(document)
            rows = _email_rows(self._ws, document)
            if known is None or known[1] != rows:
                self._delete_emails(user_id)
                self._write_emails(user_id, rows)
        if self._known is not None:
            del row["document"]
            self._known[user_id] = (row, rows)

    def delete(self, user_id: str) -> bool:
        if self._known is not None:
            self._known.pop(user_id, None)
        self._delete_emails(user_id)
        result = self._run(_DELETE_USER, self._mine(user_id), fetch=False)
        if result.rowcount:
            self._bump(-1)
        return bool(result.rowcount)

    def translate(self, filter: Filter | None) -> Translation:
        """The ``WHERE`` clause of a query (workspace included) and whether it is exact."""
        if filter is None:
            return Translation(_in_workspace(self._ws), True)
        validate(filter, self._registry)
        return self._translate(filter)

    def _translate(self, filter: Filter) -> Translation:
        t = compile_where(filter, self._registry, self._ws)
        return Translation(and_(_in_workspace(self._ws), t.clause), t.exact)

    def query(
        self, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
    ) -> Page:
        start, count = max(start_index, 1) - 1, max(count, 0)
        if filter is None:
            if sort is None:
                self._snapshot()
                return self._paged(_PAGE_ALL, _COUNT_ALL, {"b_ws": self._ws}, start, count)
            where = self.translate(None)
        else:
            validate(filter, self._registry)
            name = user_name_key(filter, self._registry) if sort is None else None
            if name is not None:
                params = {"b_ws": self._ws, "b_name": name}
                if start == 0 and count > 0:  # userName is unique: the page is the result
                    one = {**params, "b_offset": 0, "b_limit": 1}
                    docs = [loads(t) for (t,) in self._run(_PAGE_NAMED, one).rows]
                    return Page(len(docs), docs)
                self._snapshot()
                return self._paged(_PAGE_NAMED, _COUNT_NAMED, params, start, count)
            where = self._translate(filter)
        self._snapshot()
        paging = _paging(sort)
        if where.exact:
            if filter is None:  # every user: the kept count, not a count(*)
                total = self._run(_COUNT_ALL, {"b_ws": self._ws}).scalar() or 0
            if paging is not None:
                if count == 0:
                    return Page(total if filter is None else self._count(where.clause), [])
                texts = self._conn.execute(
                    paging.where(where.clause), {"b_offset": start, "b_limit": count}
                )
                docs = [loads(t) for t in texts.scalars()]
                if filter is None:
                    return Page(total, docs)
                if _ends_the_result(start, count, docs):
                    return Page(start + len(docs), docs)
                return Page(self._count(where.clause), docs)
            if filter is not None:
                total = self._count(where.clause)
            assert sort is not None
            docs = sort_documents(list(self._stream(where.clause, [USERS.c.seq.asc()])), sort)
            return Page(total, docs[start : start + count])
        assert filter is not None
        order = order_by(sort)
        candidates = self._stream(where.clause, order or [USERS.c.seq.asc()])
        found = (d for d in candidates if matches(filter, d, self._registry))
        if order is not None:  # already in the final order: keep only the page
            total, page = 0, []
            for doc in found:
                if start <= total < start + count:
                    page.append(doc)
                total += 1
            return Page(total, page)
        assert sort is not None
        docs = sort_documents(list(found), sort)
        return Page(len(docs), docs[start : start + count])

    def _count(self, where: Any) -> int:
        total: int = self._conn.execute(
            select(func.count()).select_from(USERS).where(where)
        ).scalar_one()
        return total

    def _paged(
        self,
        page: Executable,
        count_all: Executable,
        params: dict[str, Any],
        start: int,
        count: int,
    ) -> Page:
        """A page in insertion order with prebuilt statements: ``page`` (``b_offset``,
        ``b_limit`` and ``params``) and ``count_all`` (``params``) when the page does not show
        the total."""
        if count == 0:
            return Page(self._run(count_all, params).scalar() or 0, [])
        texts = self._run(page, {**params, "b_offset": start, "b_limit": count}).rows
        docs = [loads(t) for (t,) in texts]
        if _ends_the_result(start, count, docs):
            return Page(start + len(docs), docs)
        return Page(self._run(count_all, params).scalar() or 0, docs)

    def _stream(self, where: Any, order: list[Any]) -> Iterator[dict[str, Any]]:
        stmt = (
            select(USERS.c.document)
            .where(where)
            .order_by(*order)
            .execution_options(yield_per=_BATCH)
        )
        result = self._conn.execute(stmt)
        for text in result.scalars():
            yield loads(text)


#: The execution option that tells the SQLite ``begin`` hook how to begin a transaction.
_BEGIN_OPTION = "scimcore_begin"
_IMMEDIATE, _DEFERRED, _NO_BEGIN = "IMMEDIATE", "DEFERRED", "NONE"
_BEGIN_SQL = {_IMMEDIATE: "BEGIN IMMEDIATE", _DEFERRED: "BEGIN"}
#: The savepoint of a write that joins an open group (see SqlStorage._sqlite_write).
_SAVEPOINT = "SAVEPOINT scimcore_write"
_RELEASE = "RELEASE scimcore_write"
_ROLLBACK_TO = "ROLLBACK TO scimcore_write"


def _sqlite_engine(url: str, autocheckpoint: int | None) -> Engine:
    parsed = make_url(url)
    if parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed):
        raise ValueError("SqlStorage needs a SQLite database file, e.g. sqlite:///scim.db")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # Threads keep a connection each (see SqlStorage._held): never make one wait for the
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
            # crash or power loss can lose the last commits, never corrupt the file.
            cursor.execute("PRAGMA synchronous=NORMAL")
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
        mode = conn.get_execution_options().get(_BEGIN_OPTION, _DEFERRED)
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        if mode == _NO_BEGIN or dbapi_conn.in_transaction:  # see SqlStorage._sqlite_transaction
            return
        _driver(dbapi_conn, _BEGIN_SQL[mode])

    return engine


def _engine(url: str, autocheckpoint: int | None = None) -> Engine:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, autocheckpoint)
    if backend == "postgresql":
        return _postgres_engine(url)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


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


def _driver(dbapi_conn: Any, sql: str) -> None:
    """``BEGIN``, ``COMMIT`` or ``ROLLBACK`` on a SQLite driver connection, its errors wrapped
    as SQLAlchemy wraps them."""
    try:
        dbapi_conn.execute(sql)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, (), exc, sqlite3.Error) from exc


def _finish(conn: Connection, dbapi_conn: Any, *, commit: bool) -> None:
    """End a transaction of :meth:`SqlStorage._sqlite_transaction`: through SQLAlchemy when a
    statement autobegan its transaction, else on the driver."""
    if conn.in_transaction():
        conn.commit() if commit else conn.rollback()
    elif dbapi_conn.in_transaction:
        _driver(dbapi_conn, "COMMIT" if commit else "ROLLBACK")


#: Seconds a write of a group waits for its ``COMMIT`` before it looks for an orphaned group.
_GROUP_ORPHAN_S = 1.0
#: The most writes one group ``COMMIT`` carries (each waits for the ones after it).
_GROUP_LIMIT = 32


class GroupCommitError(RuntimeError):
    """The shared ``COMMIT`` of a group of SQLite writes failed (see
    :meth:`SqlStorage._sqlite_write`): nothing of this write was stored. Raised, like any
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


class _HeldConnection:
    """A connection a thread keeps (:meth:`SqlStorage._thread_connection`), closed when the
    thread ends (its ``threading.local`` is cleared), or by :meth:`SqlStorage.close`."""

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
            _INHERITED.append(conn)
        elif conn is not None:
            try:
                conn.close()
            except Exception:  # pragma: no cover - a broken connection is dropped all the same
                log.debug("closing a thread's SQLite connection failed", exc_info=True)

    def __del__(self) -> None:
        self.close()


#: Connections a forked child inherited from threads of its parent (see
#: :meth:`SqlStorage._after_fork_in_child`).
_INHERITED: list[Connection] = []


def _forget_connections_at_fork(storage: SqlStorage) -> None:
    """Register ``storage``'s fork hooks (holding it weakly: a dropped storage is skipped)."""
    ref = weakref.ref(storage)

    def before() -> None:
        alive = ref()
        if alive is not None:
            alive._before_fork()

    def after_in_child() -> None:
        alive = ref()
        if alive is not None:
            alive._after_fork_in_child()

    os.register_at_fork(before=before, after_in_child=after_in_child)


# product: admin accounts and tombstones in .accounts, activation link lookup in .activation
class SqlStorage(AccountsMixin, ActivationLookupMixin):
    """A :class:`~scimcore.storage.Storage` on SQLite or PostgreSQL.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/to/scim.db`` (a file; WAL mode, foreign keys
    on, ``busy_timeout``) or ``postgresql+psycopg://user@host/db``. The schema is migrated to
    the current version on construction (idempotent). Call :meth:`close` when done.

    ``checkpoint_interval`` (SQLite): seconds between background WAL checkpoints after writes
    (:mod:`.checkpoint`); ``None`` leaves checkpoints to SQLite, inside commits.
    ``read_turns`` (SQLite): SCIM read requests of this process take turns (:meth:`read_turn`);
    ``False``: they run side by side.
    ``group_commit`` (SQLite): writes of this process queued behind one another share one
    ``COMMIT``, each in a savepoint of its own (:meth:`_sqlite_write`); ``False``: one
    ``COMMIT`` per write.
    """

    def __init__(
        self,
        url: str,
        registry: SchemaRegistry | None = None,
        *,
        checkpoint_interval: float | None = 1.0,
        read_turns: bool = True,
        group_commit: bool = True,
    ) -> None:
        if checkpoint_interval is not None and checkpoint_interval <= 0:
            raise ValueError("the checkpoint interval must be positive (or None)")
        self.registry = registry or default_registry()
        self.engine = _engine(url, BACKSTOP_PAGES if checkpoint_interval is not None else None)
        self._sqlite = self.engine.dialect.name == "sqlite"
        #: SQLite: WAL checkpoints in a background thread (``checkpoint_interval`` seconds
        #: apart, after writes), not in requests' COMMITs; ``None``: SQLite's own. See
        #: :mod:`.checkpoint`.
        self.checkpointer = (
            Checkpointer(self.engine, checkpoint_interval)
            if checkpoint_interval is not None and self._sqlite
            else None
        )
        if self.checkpointer is not None:  # a storage dropped without close() stops it too
            weakref.finalize(self, self.checkpointer.stop)
        # Engines sharing the pool, for writes (SQLite: ``BEGIN IMMEDIATE``), read snapshots
        # (``BEGIN``) and reads of one statement (no ``BEGIN``; PostgreSQL: autocommit).
        self._engines = {
            mode: self.engine.execution_options(**{_BEGIN_OPTION: mode})
            for mode in (_IMMEDIATE, _DEFERRED, _NO_BEGIN)
        }
        if not self._sqlite:  # PostgreSQL reads of one statement: no BEGIN/COMMIT round trips
            self._engines[_NO_BEGIN] = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._local = threading.local()
        self._held: weakref.WeakSet[_HeldConnection] = weakref.WeakSet()
        self._held_lock = threading.Lock()
        #: SQLite has one writer at a time: the threads of this process queue for it here,
        #: woken in turn, instead of polling the file lock in SQLite's busy handler (which
        #: sleeps up to 100 ms between tries). Other processes still wait in ``busy_timeout``.
        self._write_lock = threading.RLock()
        #: SQLite: what :meth:`read_turn` holds (``read_turns``).
        self._read_lock = threading.RLock()
        self._read_turns = self._sqlite and read_turns
        #: SQLite: the connection every write transaction of this process runs on (under
        #: ``_write_lock``). A connection's page cache is only valid until another connection
        #: commits: with one writer connection the pages a write needs stay cached from one
        #: write to the next instead of being read again from the file by whichever thread's
        #: connection writes next.
        self._writer: _HeldConnection | None = None
        #: SQLite group commit (:meth:`_sqlite_write`): the open group, how many threads are
        #: queued for ``_write_lock``, and the most writes one ``COMMIT`` may carry.
        self._group: _Group | None = None
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._group_limit = _GROUP_LIMIT if group_commit else 1
        if self._sqlite:
            _forget_connections_at_fork(self)
        try:
            self.schema_version = migrate(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def read_turn(self) -> AbstractContextManager[object]:
        """:class:`~scimcore.storage.ReadTurns`: on SQLite (``read_turns``), one read request
        of this process at a time; on PostgreSQL, no turns.

        A SQLite read is CPU-bound: its statement costs microseconds, but the ``sqlite3``
        module releases the GIL two or three times per statement, and under a threaded server
        another request thread takes it each time, which costs more CPU than the statement
        (measured in docs/performance.md). Readers that wait for their turn on a lock are not
        waiting for the GIL. Writes queue on their own lock (:attr:`_write_lock`), so a read
        and a write still run side by side. The price: a long read (a deep page of a million
        users) delays the other reads of its process, which without turns would run their
        Python while it is in SQLite."""
        return self._read_lock if self._read_turns else nullcontext()

    def close(self) -> None:
        """Close every connection, pooled or held by a thread (after committing an open
        group of writes, which are waiting for it)."""
        if self._sqlite:
            with self._write_lock:
                writer = self._writer
                if self._group is not None and writer is not None and not writer.busy:
                    try:
                        self._commit_group(writer)
                    except Exception:  # its writes raise it; closing goes on
                        log.debug("committing the open group at close failed", exc_info=True)
        if self.checkpointer is not None:
            self.checkpointer.close()
        with self._held_lock:
            held = list(self._held)
        for connection in held:
            connection.close()
        self.engine.dispose()

    def _thread_connection(self) -> Connection | None:
        """SQLite: the connection this thread keeps between transactions (``None`` while it is
        in a transaction already: a nested block takes a pooled connection).

        A SQLite connection is a handle on a local file, so keeping one per thread costs
        nothing, and it spares each SCIM request two pool check-outs and check-ins.
        """
        held = self._held_connection(_NO_BEGIN)
        return held.conn if held is not None else None

    def _held_connection(self, mode: str) -> _HeldConnection | None:
        """The kept connection for a transaction of ``mode``: the process's writer connection
        for writes (call with ``_write_lock`` held), else the thread's own; ``None`` while it
        is in a transaction already."""
        held = self._writer if mode == _IMMEDIATE else getattr(self._local, "held", None)
        if held is None or held.conn is None or held.conn.closed or held.conn.invalidated:
            if held is not None:
                held.close()
            if mode == _IMMEDIATE and self._group is not None:
                # The open group's transaction went with the connection: its writes are lost.
                group, self._group = self._group, None
                group.finish(GroupCommitError("the writer connection was lost before COMMIT"))
            conn = self._engines[_NO_BEGIN].connect()
            held = _HeldConnection(conn)
            if mode == _IMMEDIATE:
                # The savepoints of group commit keep the pages they change in memory (a
                # temporary file by default: three times dearer). Writer connection only: a
                # reader's large sort still spills to disk.
                dbapi_conn = conn.connection.dbapi_connection
                assert dbapi_conn is not None
                dbapi_conn.execute("PRAGMA temp_store=MEMORY")
                dbapi_conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
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
        held: _HeldConnection | None = getattr(self._local, "held", None)
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
        thread connections are never used or closed here (see :class:`_HeldConnection`)."""
        for held in list(self._held):
            held.close()  # in the child: kept in _INHERITED, not closed
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

    def _drop(self, held: _HeldConnection) -> None:
        """Close a kept connection (the next transaction opens a new one)."""
        if held is self._writer:
            self._writer = None
        elif held is getattr(self._local, "held", None):
            self._local.held = None
        held.close()

    def _begin(self, mode: str, *, joins: bool = True) -> AbstractContextManager[Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` (writes), ``BEGIN`` (a read snapshot) or none
        (a read of one statement) on SQLite; a plain transaction on PostgreSQL. A SQLite write
        may share its ``COMMIT`` with the writes queued behind it (:meth:`_sqlite_write`;
        ``joins=False``: never)."""
        if self._sqlite and mode == _IMMEDIATE:
            return self._sqlite_write(joins)  # not wrapped: every write passes here
        return self._begin_other(mode)

    @contextmanager
    def _begin_other(self, mode: str) -> Iterator[Connection]:
        """:meth:`_begin` for everything but a SQLite write (PostgreSQL, and SQLite reads)."""
        if not self._sqlite:
            with self._engines[mode].connect() as pooled, pooled.begin():
                yield pooled
            return
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
        (measured in docs/performance.md). A write that is not first pays for its savepoint:
        SQLite keeps the pages it changes as they were (in memory on the writer connection,
        ``temp_store=MEMORY``).

        ``joins=False`` (a bulk import): commit any open group first and run alone."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            self._write_lock.acquire()
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        committing: _Group | None = None
        try:
            held = self._held_connection(_IMMEDIATE)
            if held is None:  # a write nested in a write of this thread: a pooled connection
                with self._engines[_IMMEDIATE].connect() as pooled, pooled.begin():
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
                    _driver(dbapi_conn, _BEGIN_SQL[_IMMEDIATE] if first else _SAVEPOINT)
                    yield conn
                    if not first:
                        _driver(dbapi_conn, _RELEASE)
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

    def _undo_write(self, held: _HeldConnection, group: _Group, first: bool) -> None:
        """A write of the open group failed (``_write_lock`` held): roll back its changes (the
        whole transaction when it began it), and commit the group's earlier writes unless
        another thread is queued to carry it on."""
        assert held.conn is not None
        dbapi_conn = held.conn.connection.dbapi_connection
        if first:
            self._group = None
            try:
                _finish(held.conn, dbapi_conn, commit=False)
            except BaseException:
                self._drop(held)  # state unknown: never reuse it
            return
        try:
            _driver(dbapi_conn, _ROLLBACK_TO)
            _driver(dbapi_conn, _RELEASE)
        except BaseException as exc:  # the transaction is unusable: the group fails
            self._group = None
            group.finish(exc)
            self._drop(held)
            return
        if not self._waiting:
            try:
                self._commit_group(held)
            except BaseException:  # the group's writes learn it; this one raises its own error
                log.debug("a group commit after a failed write failed", exc_info=True)

    def _commit_group(self, held: _HeldConnection) -> None:
        """``COMMIT`` the open group (``_write_lock`` held) and release its waiting writes."""
        group, self._group = self._group, None
        assert group is not None and held.conn is not None
        try:
            _finish(held.conn, held.conn.connection.dbapi_connection, commit=True)
        except BaseException as exc:
            group.finish(exc)
            self._drop(held)  # a failed COMMIT leaves the transaction open
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
    def _sqlite_transaction(self, held: _HeldConnection, mode: str) -> Iterator[None]:
        """``BEGIN`` and ``COMMIT`` (or ``ROLLBACK``) straight on the driver connection, under
        SQLAlchemy: its transaction bookkeeping costs more CPU than an indexed read. A statement
        that goes through ``Connection.execute`` (listeners, statements built per request)
        autobegins SQLAlchemy's transaction inside this one (the ``begin`` hook then issues no
        second ``BEGIN``), and is committed or rolled back through SQLAlchemy."""
        conn = held.conn
        assert conn is not None
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        if mode != _NO_BEGIN:
            _driver(dbapi_conn, _BEGIN_SQL[mode])
        try:
            yield
        except BaseException:
            try:
                _finish(conn, dbapi_conn, commit=False)
            except BaseException:
                self._drop(held)  # state unknown: never reuse it
            raise
        try:
            _finish(conn, dbapi_conn, commit=True)
        except BaseException:
            self._drop(held)  # a failed COMMIT leaves the transaction open
            raise

    def _tx(self, immediate: bool) -> AbstractContextManager[Connection]:
        """A transaction: a writing one (``immediate``) or one that reads with one statement."""
        return self._begin(_IMMEDIATE if immediate else _NO_BEGIN)

    def import_users(self, workspace_id: str, documents: Sequence[dict[str, Any]]) -> None:
        """Insert many canonical documents in one transaction with multi-row statements.

        For migrations from another system and for benchmarks: much faster than one SCIM
        create per user, and all-or-nothing (a taken ``userName`` raises
        :class:`~scimcore.errors.UniquenessError` and imports nothing). No card, mail or log
        entry is written: people are adopted on their first SCIM update.
        """
        rows = [{"workspace_id": workspace_id, "id": d["id"], **_user_row(d)} for d in documents]
        emails = [e for d in documents for e in _email_rows(workspace_id, d)]
        try:
            with _indexable(), self._begin(_IMMEDIATE, joins=False) as conn:
                if rows:
                    conn.execute(_INSERT_USERS, rows)
                if emails:
                    conn.execute(_INSERT_EMAILS, emails)
                if rows:
                    stmt = _bump_statement(conn.dialect.name)
                    conn.execute(stmt, {"b_ws": workspace_id, "b_delta": len(rows)})
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise UniquenessError("an imported userName or id is already taken") from None
            raise

    @contextmanager
    def users(
        self, workspace_id: str, *, readonly: bool = False, one_read: bool = False
    ) -> Iterator[SqlUserStore]:
        """One transaction over one workspace's users: commit on success, roll back on error.

        ``readonly``: SQLite begins a deferred transaction (a consistent WAL snapshot that
        waits for no writer) instead of ``BEGIN IMMEDIATE``. ``one_read`` (see
        :meth:`scimcore.storage.Storage.users`): nothing is begun (PostgreSQL: an autocommit
        connection); the store's one call runs one statement, or begins its snapshot before
        the first of several (PostgreSQL: ``REPEATABLE READ``, ended here)."""
        mode = _NO_BEGIN if one_read else _DEFERRED if readonly else _IMMEDIATE
        with self._begin(mode) as conn:
            writing = mode == _IMMEDIATE
            store = SqlUserStore(
                conn,
                workspace_id,
                self.registry,
                exclusive=writing and self._sqlite,  # BEGIN IMMEDIATE: no other writer
                lazy=mode == _NO_BEGIN,
                for_update=writing and not self._sqlite,  # PostgreSQL: lock what is read
            )
            try:
                yield store
            finally:
                if store.server_snapshot:  # read only: COMMIT ends it, after an error too
                    conn.exec_driver_sql("COMMIT")

    # --- workspaces ----------------------------------------------------------------------------

    def create_workspace(self, workspace: Workspace) -> None:
        """Add a workspace; ``ValueError`` if its slug (or id) exists."""
        try:
            with self._tx(immediate=True) as conn:
                conn.execute(
                    _INSERT_WORKSPACE,
                    {
                        "id": workspace.id,
                        "slug": workspace.slug,
                        "created_at": workspace.created_at,
                    },
                )
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise ValueError(f"workspace {workspace.slug!r} exists") from None
            raise

    @staticmethod
    def _workspace(row: Any) -> Workspace:
        return Workspace(id=row.id, slug=row.slug, created_at=row.created_at)

    def get_workspace(self, slug: str) -> Workspace | None:
        with self._tx(immediate=False) as conn:
            row = conn.execute(_WORKSPACE_BY_SLUG, {"b_slug": slug}).first()
        return self._workspace(row) if row is not None else None

    def get_workspace_by_id(self, workspace_id: str) -> Workspace | None:
        with self._tx(immediate=False) as conn:
            row = conn.execute(_WORKSPACE_BY_ID, {"b_id": workspace_id}).first()
        return self._workspace(row) if row is not None else None

    def list_workspaces(self) -> Sequence[Workspace]:
        with self._tx(immediate=False) as conn:
            rows = conn.execute(select(WORKSPACES).order_by(WORKSPACES.c.slug)).all()
        return [self._workspace(r) for r in rows]

    # product: save_admin, get_admin (and list_admins, deactivate_admin) are in .accounts

    # --- tokens --------------------------------------------------------------------------------

    @staticmethod
    def _token(row: Any) -> TokenRecord:
        return TokenRecord(
            id=row.id,
            workspace_id=row.workspace_id,
            secret_hash=row.secret_hash,
            label=row.label,
            created_by=row.created_by,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
        )

    def add_token(self, token: TokenRecord) -> None:
        """Store a token record (only the hash of the secret); an existing id is overwritten."""
        values = {
            "id": token.id,
            "workspace_id": token.workspace_id,
            "secret_hash": token.secret_hash,
            "label": token.label,
            "created_by": token.created_by,
            "created_at": token.created_at,
            "last_used_at": token.last_used_at,
        }
        with self._tx(immediate=True) as conn:
            stmt = upsert_statement(conn.dialect.name, TOKENS, ("id",), tuple(values))
            conn.execute(stmt, values)

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._tx(immediate=False) as conn:
            row = conn.execute(_GET_TOKEN, {"b_id": token_id}).first()
        return self._token(row) if row is not None else None

    def authenticate(self, token_id: str) -> Grant | None:
        """Token, workspace and the creator's state in one indexed join."""
        row = self._read_one(_AUTHENTICATE, {"token_id": token_id})
        return self._grant(row) if row is not None else None

    def authenticate_and_get(
        self, token_id: str, secret_hash: str, user_id: str
    ) -> tuple[Grant | None, dict[str, Any] | None]:
        """:meth:`authenticate` and the user, in one statement (see
        :class:`~scimcore.storage.UserReadAhead`): the user is joined only on the token's
        workspace and only when the stored secret hash equals ``secret_hash``."""
        params = {"token_id": token_id, "b_hash": secret_hash, "b_user": user_id}
        return self._grant_and_user(_AUTHENTICATE_AND_GET, params)

    @contextmanager
    def authenticated_users(
        self, token_id: str, secret_hash: str, user_id: str | None = None
    ) -> Iterator[tuple[Grant | None, SqlUserStore | None]]:
        """A writing transaction that authenticates first (see
        :class:`~scimcore.storage.AuthenticatedWrites`). SQLite reads, in the authentication's
        statement and only where the stored secret hash equals ``secret_hash``, what the write
        reads next: the user ``user_id`` with its person and the settings (an update or a
        delete), or the settings and rules (a create). PostgreSQL authenticates with the
        transaction's first statement and reads the rest as in :meth:`users`, locking it."""
        with self._begin(_IMMEDIATE) as conn:
            params = {"token_id": token_id, "b_hash": secret_hash}
            if not self._sqlite:
                stmt: Executable = _AUTHENTICATE
            elif user_id is None:
                stmt = _AUTHENTICATE_FOR_CREATE
            else:
                stmt = _AUTHENTICATE_FOR_UPDATE
                params["b_user"] = user_id
            runner = Runner(conn)
            rows = runner(stmt, params).rows
            if not rows:
                yield None, None
                return
            grant = self._grant(rows[0])
            store = SqlUserStore(
                conn,
                grant.workspace.id,
                self.registry,
                exclusive=self._sqlite,
                for_update=not self._sqlite,
                runner=runner,
            )
            if self._sqlite and grant.token.secret_hash == secret_hash:
                if user_id is None:
                    store.prime_create(rows)
                else:
                    store.prime_update(user_id, rows[0])
            yield grant, store

    def authenticate_and_find(
        self, token_id: str, secret_hash: str, filter: str
    ) -> tuple[Grant | None, Page | None]:
        """:meth:`authenticate` and, for Entra's lookup ``userName eq "..."`` (the only filter
        read ahead), the user of that name, in one statement (see
        :class:`~scimcore.storage.UserReadAhead`)."""
        try:
            name = user_name_key(compile_filter(filter, self.registry), self.registry)
        except Exception:  # a bad filter: the request's own query reports it, once authenticated
            name = None
        if name is None:
            return self.authenticate(token_id), None
        params = {"token_id": token_id, "b_hash": secret_hash, "b_name": name}
        grant, document = self._grant_and_user(_AUTHENTICATE_AND_FIND, params)
        if grant is None:
            return None, None
        documents = [document] if document is not None else []
        return grant, Page(len(documents), documents)

    def _grant_and_user(
        self, stmt: Executable, params: dict[str, Any]
    ) -> tuple[Grant | None, dict[str, Any] | None]:
        """A statement of :func:`_authenticate_and_read`: the grant and the joined user."""
        row = self._read_one(stmt, params)
        if row is None:
            return None, None
        document = loads(row.user_document) if row.user_document is not None else None
        return self._grant(row), document

    def _read_one(self, stmt: Executable, params: dict[str, Any]) -> Any:
        """The first row of a read of one statement, outside any transaction block."""
        listened = bool(self.engine.dispatch.before_cursor_execute)
        held = self._thread_connection() if self._sqlite else None
        if held is not None and not listened:  # SQLite autocommit: one statement, one snapshot
            dbapi_conn = held.connection.dbapi_connection
            return run_dbapi(dbapi_conn, self.engine.dialect, stmt, params).first()
        with self._begin(_NO_BEGIN) as conn:  # no transaction (PostgreSQL: autocommit)
            return run(conn, stmt, params).first()

    def _grant(self, row: Any) -> Grant:
        workspace = Workspace(row.ws_id, row.ws_slug, row.ws_created_at)
        return Grant(self._token(row), workspace, bool(row.admin_active))

    # product: list_tokens, delete_token (and the tombstones) are in .accounts

    def touch_token(self, token_id: str, when: datetime) -> None:
        """Record that the token was just used (``last_used_at``)."""
        with self._tx(immediate=True) as conn:
            conn.execute(_TOUCH_TOKEN, {"b_id": token_id, "last_used_at": when})

    # --- mail delivery -------------------------------------------------------------------------

    def claim_mail(self, now: datetime, lease_until: datetime, limit: int) -> Sequence[OutboxMail]:
        """Atomically mark up to ``limit`` due mails ``sending`` until ``lease_until``, across
        workspaces, and return them (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: under
        ``BEGIN IMMEDIATE``). Two concurrent callers never get the same mail."""
        with self._tx(immediate=True) as conn:
            return claim_mail(conn, now, lease_until, limit)

    def finish_mail(self, mail: OutboxMail) -> None:
        """Store the outcome of a delivery attempt of a claimed mail."""
        with self._tx(immediate=True) as conn:
            finish_mail(conn, mail)


_AUTHENTICATE = (
    select(
        TOKENS,
        WORKSPACES.c.id.label("ws_id"),
        WORKSPACES.c.slug.label("ws_slug"),
        WORKSPACES.c.created_at.label("ws_created_at"),
        ADMINS.c.active.label("admin_active"),
    )
    .join(WORKSPACES, WORKSPACES.c.id == TOKENS.c.workspace_id)
    .outerjoin(
        ADMINS,
        and_(
            ADMINS.c.workspace_id == TOKENS.c.workspace_id,
            ADMINS.c.email_key == func.lower(TOKENS.c.created_by),
        ),
    )
    .where(TOKENS.c.id == bindparam("token_id"))
)


#: The presented secret's hash is the stored one: the condition of every read joined to an
#: authentication.
_SECRET_MATCHES = TOKENS.c.secret_hash == bindparam("b_hash")


def _authenticate_and_read(user: ColumnElement[bool]) -> Select[Any]:
    """Authentication and the user that ``user`` selects, in one statement: the user only
    from the token's workspace, and only when the presented secret's hash is the stored one."""
    return _AUTHENTICATE.add_columns(USERS.c.document.label("user_document")).outerjoin(
        USERS, and_(USERS.c.workspace_id == TOKENS.c.workspace_id, user, _SECRET_MATCHES)
    )


_AUTHENTICATE_AND_GET = _authenticate_and_read(USERS.c.id == bindparam("b_user"))
_AUTHENTICATE_AND_FIND = _authenticate_and_read(_NAMED)  # userName unique: one row
#: A write's authentication with what the write reads next (SQLite; see
#: :meth:`SqlStorage.authenticated_users`).
_AUTHENTICATE_FOR_UPDATE = with_user_for_update(
    _AUTHENTICATE, TOKENS.c.workspace_id, _SECRET_MATCHES
)
_AUTHENTICATE_FOR_CREATE = with_settings_and_rules(
    _AUTHENTICATE, TOKENS.c.workspace_id, _SECRET_MATCHES
)
_INSERT_WORKSPACE = WORKSPACES.insert()
_WORKSPACE_BY_SLUG = select(WORKSPACES).where(WORKSPACES.c.slug == bindparam("b_slug"))
_WORKSPACE_BY_ID = select(WORKSPACES).where(WORKSPACES.c.id == bindparam("b_id"))
_GET_TOKEN = select(TOKENS).where(TOKENS.c.id == bindparam("b_id"))
_TOUCH_TOKEN = TOKENS.update().where(TOKENS.c.id == bindparam("b_id"))


def create_storage(url: str, registry: SchemaRegistry | None = None) -> SqlStorage:
    """Open (and migrate) the database at ``url``: ``sqlite:///file.db`` or PostgreSQL."""
    return SqlStorage(url, registry)
