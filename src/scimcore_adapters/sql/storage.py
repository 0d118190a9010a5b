"""The SQL :class:`~scimcore.storage.Storage`: SQLite (embedded default) and PostgreSQL.

One code path (SQLAlchemy Core) for both engines. Every :meth:`SqlStorage.users` block is one
database transaction: committed on a clean exit, rolled back when an exception escapes. On
SQLite it starts with ``BEGIN IMMEDIATE`` (the single writer lock is taken up front, so a
read-then-write operation never fails with a stale snapshot; waiting is bounded by
``busy_timeout``). Uniqueness is enforced by the database's unique indexes, so concurrent
creates of one ``userName`` from different threads or processes yield exactly one winner.

The product methods of the unit of work (people and cards, settings, templates, rules, outbox,
log) live in :mod:`.product` and run in the same transaction as the user writes (R3.6).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from scimcore.errors import NotFoundError, PreconditionFailedError, UniquenessError
from scimcore.filters import Filter, matches, validate
from scimcore.schema import SchemaRegistry, default_registry
from scimcore.storage import (
    Admin,
    Grant,
    OutboxMail,
    Page,
    SortSpec,
    TokenRecord,
    Workspace,
    sort_key,
)

from .compiler import Translation, compile_where, order_by, parse_datetime
from .migrations import migrate
from .product import ProductStore, claim_mail, finish_mail
from .tables import ADMINS, TOKENS, USER_EMAILS, USERS, WORKSPACES

__all__ = ["SqlStorage", "SqlUserStore", "create_storage"]

#: How long a SQLite writer waits for the lock (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
_BATCH = 500


def _python_sort(docs: list[dict[str, Any]], sort: SortSpec) -> list[dict[str, Any]]:
    """Stable sort of ``docs`` (already in insertion order); missing values last ascending."""
    keyed = [(sort_key(d, sort.path, sort.case_exact), d) for d in docs]
    present = [(k, d) for k, d in keyed if k is not None]
    absent = [d for k, d in keyed if k is None]
    present.sort(key=lambda kd: kd[0], reverse=sort.descending)
    ordered = [d for _, d in present]
    return absent + ordered if sort.descending else ordered + absent


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _folded(value: Any) -> str | None:
    return value.casefold() if isinstance(value, str) else None


def _user_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of ``users`` derived from a canonical document."""
    meta = doc.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}
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
        "created_key": _folded(created),
        "last_modified_key": _folded(modified),
        "version": version,
        "document": json.dumps(doc, separators=(",", ":")),
    }


def _email_rows(workspace_id: str, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One ``user_emails`` row per complex value of ``emails`` (as the evaluator sees them)."""
    raw = doc.get("emails")
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    rows = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
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


class SqlUserStore(ProductStore):
    """A :class:`~scimcore.storage.UserStore` over one connection inside one transaction.

    Obtain it from :meth:`SqlStorage.users`; it is valid only inside that ``with`` block. The
    product methods (``get_person`` ... ``list_log``) come from :class:`.product.ProductStore`.
    """

    def __init__(self, conn: Connection, workspace_id: str, registry: SchemaRegistry) -> None:
        self._conn = conn
        self._ws = workspace_id
        self._registry = registry

    def _mine(self, user_id: str) -> Any:
        return and_(USERS.c.workspace_id == self._ws, USERS.c.id == user_id)

    def get(self, user_id: str) -> dict[str, Any] | None:
        text = self._conn.execute(select(USERS.c.document).where(self._mine(user_id))).scalar()
        if text is None:
            return None
        doc: dict[str, Any] = json.loads(text)
        return doc

    def _write_emails(self, doc: Mapping[str, Any]) -> None:
        rows = _email_rows(self._ws, doc)
        if rows:
            self._conn.execute(USER_EMAILS.insert(), rows)

    def _delete_emails(self, user_id: str) -> None:
        self._conn.execute(
            delete(USER_EMAILS).where(
                USER_EMAILS.c.workspace_id == self._ws, USER_EMAILS.c.user_id == user_id
            )
        )

    @staticmethod
    def _uniqueness(exc: IntegrityError, doc: Mapping[str, Any]) -> UniquenessError:
        if "user_name" in str(exc.orig):
            return UniquenessError(f"userName {doc['userName']!r} is already taken")
        return UniquenessError(f"id {doc['id']!r} is already taken")

    def insert(self, document: dict[str, Any]) -> None:
        row = _user_row(document)
        try:
            with self._conn.begin_nested():
                self._conn.execute(
                    USERS.insert().values(workspace_id=self._ws, id=document["id"], **row)
                )
                self._write_emails(document)
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise self._uniqueness(exc, document) from None
            raise

    def replace(self, document: dict[str, Any], expected_version: str) -> None:
        user_id = document["id"]
        row = _user_row(document)
        try:
            with self._conn.begin_nested():
                result = self._conn.execute(
                    USERS.update()
                    .where(self._mine(user_id), USERS.c.version == expected_version)
                    .values(**row)
                )
                if result.rowcount == 0:
                    exists = self._conn.execute(
                        select(USERS.c.seq).where(self._mine(user_id))
                    ).first()
                    if exists is None:
                        raise NotFoundError(f"resource {user_id} not found")
                    raise PreconditionFailedError("the resource was changed by another request")
                self._delete_emails(user_id)
                self._write_emails(document)
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise self._uniqueness(exc, document) from None
            raise

    def delete(self, user_id: str) -> bool:
        self._delete_emails(user_id)
        result = self._conn.execute(delete(USERS).where(self._mine(user_id)))
        return bool(result.rowcount)

    def translate(self, filter: Filter | None) -> Translation:
        """The ``WHERE`` clause of a query (workspace included) and whether it is exact."""
        if filter is None:
            return Translation(USERS.c.workspace_id == self._ws, True)
        validate(filter, self._registry)
        t = compile_where(filter, self._registry, self._ws)
        return Translation(and_(USERS.c.workspace_id == self._ws, t.clause), t.exact)

    def query(
        self, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
    ) -> Page:
        start, count = max(start_index, 1) - 1, max(count, 0)
        where = self.translate(filter)
        order = order_by(sort)
        if where.exact:
            total = self._conn.execute(
                select(func.count()).select_from(USERS).where(where.clause)
            ).scalar_one()
            if order is not None:
                if count == 0 or start >= total:
                    return Page(total, [])
                stmt = (
                    select(USERS.c.document)
                    .where(where.clause)
                    .order_by(*order)
                    .offset(start)
                    .limit(count)
                )
                docs = [json.loads(t) for t in self._conn.execute(stmt).scalars()]
                return Page(total, docs)
            assert sort is not None
            docs = _python_sort(list(self._stream(where.clause, [USERS.c.seq.asc()])), sort)
            return Page(total, docs[start : start + count])
        assert filter is not None
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
        docs = _python_sort(list(found), sort)
        return Page(len(docs), docs[start : start + count])

    def _stream(self, where: Any, order: list[Any]) -> Iterator[dict[str, Any]]:
        stmt = (
            select(USERS.c.document)
            .where(where)
            .order_by(*order)
            .execution_options(yield_per=_BATCH)
        )
        result = self._conn.execute(stmt)
        for text in result.scalars():
            yield json.loads(text)


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed):
        raise ValueError("SqlStorage needs a SQLite database file, e.g. sqlite:///scim.db")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
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
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("scimcore_begin", "DEFERRED")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")

    return engine


def _engine(url: str) -> Engine:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


class SqlStorage:
    """A :class:`~scimcore.storage.Storage` on SQLite or PostgreSQL.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/to/scim.db`` (a file; WAL mode, foreign keys
    on, ``busy_timeout``) or ``postgresql+psycopg://user@host/db``. The schema is migrated to
    the current version on construction (idempotent). Call :meth:`close` when done.
    """

    def __init__(self, url: str, registry: SchemaRegistry | None = None) -> None:
        self.registry = registry or default_registry()
        self.engine = _engine(url)
        try:
            self.schema_version = migrate(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def _tx(self, immediate: bool) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if immediate:
                conn.execution_options(scimcore_begin="IMMEDIATE")
            with conn.begin():
                yield conn

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
            with self._tx(immediate=True) as conn:
                if rows:
                    conn.execute(USERS.insert(), rows)
                if emails:
                    conn.execute(USER_EMAILS.insert(), emails)
        except IntegrityError as exc:
            if _is_unique_violation(exc):
                raise UniquenessError("an imported userName or id is already taken") from None
            raise

    @contextmanager
    def users(self, workspace_id: str) -> Iterator[SqlUserStore]:
        """One transaction over one workspace's users: commit on success, roll back on error."""
        with self._tx(immediate=True) as conn:
            yield SqlUserStore(conn, workspace_id, self.registry)

    # --- workspaces ----------------------------------------------------------------------------

    def create_workspace(self, workspace: Workspace) -> None:
        """Add a workspace; ``ValueError`` if its slug (or id) exists."""
        try:
            with self._tx(immediate=True) as conn:
                conn.execute(
                    WORKSPACES.insert().values(
                        id=workspace.id, slug=workspace.slug, created_at=workspace.created_at
                    )
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
            row = conn.execute(select(WORKSPACES).where(WORKSPACES.c.slug == slug)).first()
        return self._workspace(row) if row is not None else None

    def get_workspace_by_id(self, workspace_id: str) -> Workspace | None:
        with self._tx(immediate=False) as conn:
            row = conn.execute(select(WORKSPACES).where(WORKSPACES.c.id == workspace_id)).first()
        return self._workspace(row) if row is not None else None

    def list_workspaces(self) -> Sequence[Workspace]:
        with self._tx(immediate=False) as conn:
            rows = conn.execute(select(WORKSPACES).order_by(WORKSPACES.c.slug)).all()
        return [self._workspace(r) for r in rows]

    # --- admins --------------------------------------------------------------------------------

    def save_admin(self, admin: Admin) -> None:
        """Insert or update an admin, keyed by workspace and e-mail (case-insensitive)."""
        key = admin.email.lower()
        values = {"email": admin.email, "active": admin.active, "created_at": admin.created_at}
        mine = and_(ADMINS.c.workspace_id == admin.workspace_id, ADMINS.c.email_key == key)
        with self._tx(immediate=True) as conn:
            if conn.execute(ADMINS.update().where(mine).values(**values)).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(
                        ADMINS.insert().values(
                            workspace_id=admin.workspace_id, email_key=key, **values
                        )
                    )
            except IntegrityError as exc:  # inserted concurrently: update that row
                if not _is_unique_violation(exc):
                    raise
                conn.execute(ADMINS.update().where(mine).values(**values))

    def get_admin(self, workspace_id: str, email: str) -> Admin | None:
        with self._tx(immediate=False) as conn:
            row = conn.execute(
                select(ADMINS).where(
                    ADMINS.c.workspace_id == workspace_id, ADMINS.c.email_key == email.lower()
                )
            ).first()
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
            "workspace_id": token.workspace_id,
            "secret_hash": token.secret_hash,
            "label": token.label,
            "created_by": token.created_by,
            "created_at": token.created_at,
            "last_used_at": token.last_used_at,
        }
        with self._tx(immediate=True) as conn:
            updated = conn.execute(
                TOKENS.update().where(TOKENS.c.id == token.id).values(**values)
            ).rowcount
            if not updated:
                conn.execute(TOKENS.insert().values(id=token.id, **values))

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._tx(immediate=False) as conn:
            row = conn.execute(select(TOKENS).where(TOKENS.c.id == token_id)).first()
        return self._token(row) if row is not None else None

    def authenticate(self, token_id: str) -> Grant | None:
        """Token, workspace and the creator's state in one indexed join."""
        with self.engine.connect() as conn:
            row = conn.execute(_AUTHENTICATE, {"token_id": token_id}).first()
            conn.rollback()
        if row is None:
            return None
        workspace = Workspace(row.ws_id, row.ws_slug, row.ws_created_at)
        return Grant(self._token(row), workspace, bool(row.admin_active))

    def list_tokens(self, workspace_id: str) -> Sequence[TokenRecord]:
        with self._tx(immediate=False) as conn:
            rows = conn.execute(
                select(TOKENS)
                .where(TOKENS.c.workspace_id == workspace_id)
                .order_by(TOKENS.c.created_at, TOKENS.c.id)
            ).all()
        return [self._token(r) for r in rows]

    def delete_token(self, workspace_id: str, token_id: str) -> bool:
        with self._tx(immediate=True) as conn:
            result = conn.execute(
                delete(TOKENS).where(TOKENS.c.id == token_id, TOKENS.c.workspace_id == workspace_id)
            )
        return bool(result.rowcount)

    def touch_token(self, token_id: str, when: datetime) -> None:
        """Record that the token was just used (``last_used_at``)."""
        with self._tx(immediate=True) as conn:
            conn.execute(TOKENS.update().where(TOKENS.c.id == token_id).values(last_used_at=when))

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


def create_storage(url: str, registry: SchemaRegistry | None = None) -> SqlStorage:
    """Open (and migrate) the database at ``url``: ``sqlite:///file.db`` or PostgreSQL."""
    return SqlStorage(url, registry)
