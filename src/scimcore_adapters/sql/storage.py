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
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError

from scimcore._json import dumps_text, loads
from scimcore.errors import (
    NotFoundError,
    PreconditionFailedError,
    UniquenessError,
)
from scimcore.filters import Filter, compile_filter, matches, validate
from scimcore.schema import MAPPING, SchemaRegistry, default_registry
from scimcore.storage import (
    Admin,
    Grant,
    OutboxMail,
    Page,
    SortSpec,
    TokenRecord,
    Workspace,
    sort_documents,
)

from .checkpoint import BACKSTOP_PAGES, Checkpointer
from .compiler import Translation, compile_where, order_by, parse_datetime, user_name_key
from .engines import BEGIN_SQL, DEFERRED, IMMEDIATE, NO_BEGIN, create_engine_for
from .execute import Runner, driver, indexable, is_unique_violation, run, run_dbapi
from .execute import listened as listened_to
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
from .tables import ADMINS, TOKENS, USER_COUNTS, USER_EMAILS, USERS, WORKSPACES
from .transactions import (
    GroupCommitError,
    PostgresTransactions,
    SqliteTransactions,
    Transactions,
)

__all__ = ["GroupCommitError", "SqlStorage", "SqlUserStore", "create_storage"]

log = logging.getLogger(__name__)

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

    ``runner``: the transaction's :class:`.execute.Runner`, when its first statement ran before
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
                driver(dbapi_conn, BEGIN_SQL[DEFERRED])
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
        with indexable():
            try:
                inserted = self._run(stmt, row, columns=True, fetch=False).rowcount == 1
            except IntegrityError as exc:
                if is_unique_violation(exc):
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
        with indexable():
            try:
                result = self._run(_REPLACE_USER, params, columns=True, fetch=False)
            except IntegrityError as exc:  # PostgreSQL: a concurrent rename to the same userName
                if is_unique_violation(exc):
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


class SqlStorage:
    """A :class:`~scimcore.storage.Storage` on SQLite or PostgreSQL.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/to/scim.db`` (a file; WAL mode, foreign keys
    on, ``busy_timeout``) or ``postgresql+psycopg://user@host/db``. The schema is migrated to
    the current version on construction (idempotent). Call :meth:`close` when done.

    ``checkpoint_interval`` (SQLite): seconds between background WAL checkpoints after writes
    (:mod:`.checkpoint`); ``None`` leaves checkpoints to SQLite, inside commits.
    ``read_turns`` (SQLite): SCIM read requests of this process take turns (:meth:`read_turn`);
    ``False``: they run side by side.
    ``group_commit`` (SQLite): writes of this process queued behind one another share one
    ``COMMIT``, each in a savepoint of its own (:meth:`.SqliteTransactions.begin`); ``False``: one
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
        self.engine = create_engine_for(
            url, BACKSTOP_PAGES if checkpoint_interval is not None else None
        )
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
        #: The transaction engine (:mod:`.transactions`): how a block becomes a transaction.
        self.transactions: Transactions = (
            SqliteTransactions(
                self.engine,
                group_commit=group_commit,
                read_turns=read_turns,
                checkpointer=self.checkpointer,
            )
            if self._sqlite
            else PostgresTransactions(self.engine)
        )
        try:
            self.schema_version = migrate(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def read_turn(self) -> AbstractContextManager[object]:
        """:class:`~scimcore.storage.ReadTurns`: on SQLite (``read_turns``), one read request
        of this process at a time (see :meth:`.SqliteTransactions.read_turn` for why); on
        PostgreSQL, no turns."""
        return self.transactions.read_turn()

    def close(self) -> None:
        """Close every connection, pooled or held by a thread (after committing an open
        group of writes, which are waiting for it)."""
        self.transactions.close()
        self.engine.dispose()

    def _tx(self, immediate: bool) -> AbstractContextManager[Connection]:
        """A transaction: a writing one (``immediate``) or one that reads with one statement."""
        return self.transactions.begin(IMMEDIATE if immediate else NO_BEGIN)

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
            with indexable(), self.transactions.begin(IMMEDIATE, joins=False) as conn:
                if rows:
                    conn.execute(_INSERT_USERS, rows)
                if emails:
                    conn.execute(_INSERT_EMAILS, emails)
                if rows:
                    stmt = _bump_statement(conn.dialect.name)
                    conn.execute(stmt, {"b_ws": workspace_id, "b_delta": len(rows)})
        except IntegrityError as exc:
            if is_unique_violation(exc):
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
        mode = NO_BEGIN if one_read else DEFERRED if readonly else IMMEDIATE
        with self.transactions.begin(mode) as conn:
            writing = mode == IMMEDIATE
            store = SqlUserStore(
                conn,
                workspace_id,
                self.registry,
                exclusive=writing and self._sqlite,  # BEGIN IMMEDIATE: no other writer
                lazy=mode == NO_BEGIN,
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
            if is_unique_violation(exc):
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

    # --- admins --------------------------------------------------------------------------------

    def save_admin(self, admin: Admin) -> None:
        """Insert or update an admin, keyed by workspace and e-mail (case-insensitive)."""
        values = {
            "workspace_id": admin.workspace_id,
            "email_key": admin.email.lower(),
            "email": admin.email,
            "active": admin.active,
            "created_at": admin.created_at,
        }
        with self._tx(immediate=True) as conn:
            stmt = upsert_statement(conn.dialect.name, ADMINS, _ADMIN_KEYS, tuple(values))
            conn.execute(stmt, values)

    def get_admin(self, workspace_id: str, email: str) -> Admin | None:
        with self._tx(immediate=False) as conn:
            row = conn.execute(_GET_ADMIN, {"b_ws": workspace_id, "b_key": email.lower()}).first()
        if row is None:
            return None
        return Admin(row.workspace_id, row.email, row.active, row.created_at)

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
        with self.transactions.begin(IMMEDIATE) as conn:
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
        listened = listened_to(self.engine)
        held = self.transactions.thread_connection() if self._sqlite else None
        if held is not None and not listened:  # SQLite autocommit: one statement, one snapshot
            dbapi_conn = held.connection.dbapi_connection
            return run_dbapi(dbapi_conn, self.engine.dialect, stmt, params).first()
        with self.transactions.begin(NO_BEGIN) as conn:  # no transaction (PostgreSQL: autocommit)
            return run(conn, stmt, params).first()

    def _grant(self, row: Any) -> Grant:
        workspace = Workspace(row.ws_id, row.ws_slug, row.ws_created_at)
        return Grant(self._token(row), workspace, bool(row.admin_active))

    def list_tokens(self, workspace_id: str) -> Sequence[TokenRecord]:
        with self._tx(immediate=False) as conn:
            rows = conn.execute(_LIST_TOKENS, {"b_ws": workspace_id}).all()
        return [self._token(r) for r in rows]

    def delete_token(self, workspace_id: str, token_id: str) -> bool:
        with self._tx(immediate=True) as conn:
            result = conn.execute(_DELETE_TOKEN, {"b_id": token_id, "b_ws": workspace_id})
        return bool(result.rowcount)

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
_ADMIN_KEYS = ("workspace_id", "email_key")
_GET_ADMIN = select(ADMINS).where(
    ADMINS.c.workspace_id == bindparam("b_ws"), ADMINS.c.email_key == bindparam("b_key")
)
_GET_TOKEN = select(TOKENS).where(TOKENS.c.id == bindparam("b_id"))
_LIST_TOKENS = (
    select(TOKENS)
    .where(TOKENS.c.workspace_id == bindparam("b_ws"))
    .order_by(TOKENS.c.created_at, TOKENS.c.id)
)
_DELETE_TOKEN = delete(TOKENS).where(
    TOKENS.c.id == bindparam("b_id"), TOKENS.c.workspace_id == bindparam("b_ws")
)
_TOUCH_TOKEN = TOKENS.update().where(TOKENS.c.id == bindparam("b_id"))


def create_storage(url: str, registry: SchemaRegistry | None = None) -> SqlStorage:
    """Open (and migrate) the database at ``url``: ``sqlite:///file.db`` or PostgreSQL."""
    return SqlStorage(url, registry)
