"""The user store: one workspace's SCIM users inside one transaction, and a bulk import.

:class:`SqlUserStore` is the :class:`~scimcore.storage.UserStore` of :meth:`.SqlStorage.users`.
It writes users (their indexed columns and ``user_emails`` rows, :mod:`.rows`), reads them, and
hands queries to the planner (:mod:`.queries`) and the product methods (people, settings,
templates, rules, outbox, log) to its :class:`.product.ProductStore`, on the same connection and
in the same transaction (R3.6). Uniqueness is the database's: the unique indexes decide, so
concurrent creates of one ``userName`` have exactly one winner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Executable, and_, bindparam, delete, exists, select
from sqlalchemy.exc import IntegrityError

from scimcore._json import loads
from scimcore.errors import NotFoundError, PreconditionFailedError, UniquenessError
from scimcore.filters import Filter
from scimcore.groups import default_group_registry
from scimcore.schema import SchemaRegistry
from scimcore.storage import (
    ActivationLink,
    Image,
    LogEntry,
    OutboxMail,
    Page,
    Person,
    Settings,
    SortSpec,
)
from scimcore.templates import Rule, Template

from . import activation, images, people, queries
from .compiler import Translation
from .engines import BEGIN_SQL, DEFERRED
from .execute import Runner, driver, indexable, is_unique_violation
from .groups import SqlGroupStore
from .product import ProductStore
from .rows import email_rows, user_columns, user_row
from .statements import dialect_insert, insert_unless_statement
from .tables import USER_COUNTS, USER_EMAILS, USERS

__all__ = ["SqlUserStore", "import_users"]

# --- prebuilt statements (see .statements) --------------------------------------------------------

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


@lru_cache(maxsize=4)
def _bump_statement(dialect_name: str) -> Executable:
    """Add ``b_delta`` to the workspace's kept user count (``INSERT ... ON CONFLICT DO
    UPDATE``): the total of an unfiltered list is this count, not a ``count(*)``."""
    stmt = dialect_insert(dialect_name)(USER_COUNTS).values(
        workspace_id=bindparam("b_ws"), n=bindparam("b_delta")
    )
    built: Executable = stmt.on_conflict_do_update(
        index_elements=[USER_COUNTS.c.workspace_id],
        set_={"n": USER_COUNTS.c.n + stmt.excluded.n},
    )
    return built


def _name_taken(doc: Mapping[str, Any]) -> UniquenessError:
    return UniquenessError(f"userName {doc['userName']!r} is already taken")


def _uniqueness(exc: IntegrityError, doc: Mapping[str, Any]) -> UniquenessError:
    if "user_name" in str(exc.orig):
        return _name_taken(doc)
    return UniquenessError(f"id {doc['id']!r} is already taken")


class SqlUserStore:
    """A :class:`~scimcore.storage.UserStore` over one connection inside one transaction.

    Obtain it from :meth:`.SqlStorage.users`; it is valid only inside that ``with`` block. The
    product methods (``get_person`` ... ``list_log``) are its :attr:`product`'s.

    ``exclusive``: the transaction has held the database's write lock since it began (SQLite's
    ``BEGIN IMMEDIATE``), so nothing it reads can change under it. The store then remembers the
    columns and ``user_emails`` rows of the users (and the people) it has read or written:
    :meth:`replace` and ``save_person`` write only the columns that change (SQLite rewrites
    an index entry for every column named in an ``UPDATE``, changed or not: a ``PATCH`` of
    ``title`` would dirty all eight pages of the users' indexes), and the e-mail rows only
    when they change (two statements fewer). :meth:`get` then reads the user's person and the
    settings in the same statement (what an update reads next).

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
        group_registry: SchemaRegistry | None = None,
    ) -> None:
        self._conn = conn
        self._run = runner or Runner(conn)
        self._for_update = for_update
        self._ws = workspace_id
        self._registry = registry
        self._known: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] | None = (
            {} if exclusive else None
        )
        self._lazy = lazy
        #: A ``lazy`` PostgreSQL store began a transaction of its own (see :meth:`_snapshot`).
        self.server_snapshot = False
        self._group_registry = group_registry
        self._group_store: SqlGroupStore | None = None
        #: The workspace has no group, as an update's authentication read (``.facade``): the
        #: user's groups are not read (deactivate: one statement less, see
        #: benchmarks/NOTES.md, session 16). A group inserted here clears it.
        self.no_groups = False
        #: The product part of this unit of work, on the same connection.
        self.product = ProductStore(
            conn, self._run, workspace_id, exclusive=exclusive, for_update=for_update
        )

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

    # --- users ---------------------------------------------------------------------------------

    def get(self, user_id: str) -> dict[str, Any] | None:
        if self._known is not None:  # an exclusive write: its person too, in one statement
            text = self.product.user_with_person(user_id)
        else:
            stmt = _GET_USER_FOR_UPDATE if self._for_update else _GET_USER
            text = self._run(stmt, self._mine(user_id)).scalar()
        if text is None:
            return None
        doc: dict[str, Any] = loads(text)
        if self._known is not None:
            self._known[user_id] = (user_columns(doc), email_rows(self._ws, doc))
        return doc

    def _write_emails(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._run(_INSERT_EMAILS, row, columns=True, fetch=False)

    def insert(self, document: dict[str, Any]) -> None:
        """``INSERT ... ON CONFLICT DO NOTHING``: a taken ``id`` or ``userName`` inserts nothing
        (no error, so the transaction stays usable without a savepoint)."""
        user_id = document["id"]
        row = user_row(document)
        row["workspace_id"] = self._ws
        row["id"] = user_id
        stmt = insert_unless_statement(self._conn.dialect.name, USERS, ())
        with indexable():
            try:
                inserted = self._run(stmt, row, columns=True, fetch=False).rowcount == 1
            except IntegrityError as exc:
                if is_unique_violation(exc):
                    raise _uniqueness(exc, document) from None
                raise
            if not inserted:
                if self._run(_GET_VERSION, self._mine(user_id)).first() is not None:
                    raise UniquenessError(f"id {user_id!r} is already taken")
                raise _name_taken(document)
            self._write_emails(email_rows(self._ws, document))
        self._bump(1)

    def _bump(self, delta: int) -> None:
        stmt = _bump_statement(self._conn.dialect.name)
        self._run(stmt, {"b_ws": self._ws, "b_delta": delta}, fetch=False)

    def replace(self, document: dict[str, Any], expected_version: str) -> None:
        user_id = document["id"]
        row = user_row(document)
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
                    raise _uniqueness(exc, document) from None
                raise
            if result.rowcount == 0:
                version = self._run(_GET_VERSION, self._mine(user_id)).scalar()
                if version is None:
                    raise NotFoundError(f"resource {user_id} not found")
                if version != expected_version:
                    raise PreconditionFailedError("the resource was changed by another request")
                raise _name_taken(document)
            rows = email_rows(self._ws, document)
            if known is None or known[1] != rows:
                self._run(_DELETE_EMAILS, self._mine(user_id), fetch=False)
                self._write_emails(rows)
        if self._known is not None:
            del row["document"]
            self._known[user_id] = (row, rows)

    def delete(self, user_id: str) -> bool:
        if self._known is not None:
            self._known.pop(user_id, None)
        self._run(_DELETE_EMAILS, self._mine(user_id), fetch=False)
        result = self._run(_DELETE_USER, self._mine(user_id), fetch=False)
        if result.rowcount:
            self._bump(-1)
        return bool(result.rowcount)

    def translate(self, filter: Filter | None) -> Translation:
        """The ``WHERE`` clause of a query (workspace included) and whether it is exact."""
        return queries.translate(filter, self._registry, self._ws)

    def query(
        self, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
    ) -> Page:
        """A page of users: see :mod:`.queries` for how it is planned (``groups`` filters
        too, from the memberships)."""
        src = queries.Source(
            self._conn, self._run, self._ws, self._registry, self._snapshot, self.groups_of
        )
        return queries.query(src, filter, sort, start_index, count)

    # --- groups (see .groups) ------------------------------------------------------------------

    @property
    def groups(self) -> SqlGroupStore:
        """The group part of this unit of work, on the same connection (made on first use)."""
        if self._group_store is None:
            registry = self._group_registry or default_group_registry()
            self._group_store = SqlGroupStore(
                self._conn,
                self._run,
                self._ws,
                registry,
                self._snapshot,
                for_update=self._for_update,
            )
        return self._group_store

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        return self.groups.get_group(group_id)

    def insert_group(self, document: dict[str, Any]) -> None:
        self.no_groups = False
        self.groups.insert_group(document)

    def replace_group(self, document: dict[str, Any], expected_version: str) -> None:
        self.groups.replace_group(document, expected_version)

    def delete_group(self, group_id: str) -> bool:
        return self.groups.delete_group(group_id)

    def query_groups(
        self, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
    ) -> Page:
        return self.groups.query_groups(filter, sort, start_index, count)

    def group_members(self, group_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return self.groups.group_members(group_ids)

    def existing_users(self, user_ids: Sequence[str]) -> set[str]:
        return self.groups.existing_users(user_ids)

    def add_members(self, group_id: str, member_ids: Sequence[str]) -> list[str]:
        return self.groups.add_members(group_id, member_ids)

    def remove_members(self, group_id: str, member_ids: Sequence[str] | None) -> list[str]:
        return self.groups.remove_members(group_id, member_ids)

    def groups_of(self, user_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return {} if self.no_groups else self.groups.groups_of(user_ids)

    # --- the product part (see .product) -------------------------------------------------------

    def get_person(self, person_id: str) -> Person | None:
        return self.product.get_person(person_id)

    def save_person(self, person: Person) -> None:
        self.product.save_person(person)

    def list_people(self) -> Sequence[Person]:
        return self.product.list_people()

    def count_seats(self) -> int:
        return self.product.count_seats()

    def get_settings(self) -> Settings:
        return self.product.get_settings()

    def save_settings(self, settings: Settings) -> None:
        self.product.save_settings(settings)

    def list_templates(self) -> Sequence[Template]:
        return self.product.list_templates()

    def save_template(self, template: Template) -> None:
        self.product.save_template(template)

    def delete_template(self, name: str) -> bool:
        return self.product.delete_template(name)

    def list_rules(self) -> Sequence[Rule]:
        return self.product.list_rules()

    def save_rule(self, rule: Rule) -> None:
        self.product.save_rule(rule)

    def delete_rule(self, rule_id: str) -> bool:
        return self.product.delete_rule(rule_id)

    def enqueue_mail(self, mail: OutboxMail) -> bool:
        return self.product.enqueue_mail(mail)

    def list_outbox(self) -> Sequence[OutboxMail]:
        return self.product.list_outbox()

    def add_log(self, entry: LogEntry, keep: int) -> None:
        self.product.add_log(entry, keep)

    def list_log(self, limit: int) -> Sequence[LogEntry]:
        return self.product.list_log(limit)

    # --- the console's tables (statements in .people, .images, .activation) --------------------

    def page_people(
        self, search: str, state: str | None, offset: int, limit: int, group: str | None = None
    ) -> tuple[int, Sequence[Person]]:
        return people.page_people(self._conn, self._ws, search, state, offset, limit, group)

    def save_image(self, image: Image) -> None:
        images.save_image(self._conn, self._ws, image)

    def get_image(self, image_id: str) -> Image | None:
        return images.get_image(self._conn, self._ws, image_id)

    def save_activation_link(self, link: ActivationLink) -> None:
        activation.save_activation_link(self._conn, self._ws, link)

    def use_activation_link(self, token_hash: str, when: datetime) -> bool:
        return activation.use_activation_link(self._conn, self._ws, token_hash, when)


def import_users(
    transaction: AbstractContextManager[Connection],
    workspace_id: str,
    documents: Sequence[dict[str, Any]],
) -> None:
    """Insert many canonical documents in ``transaction`` (not yet entered) with multi-row
    statements; a taken ``userName`` or ``id`` raises :class:`~scimcore.errors.UniquenessError`
    and imports nothing (see :meth:`.SqlStorage.import_users`)."""
    rows = [{"workspace_id": workspace_id, "id": d["id"], **user_row(d)} for d in documents]
    emails = [e for d in documents for e in email_rows(workspace_id, d)]
    try:
        with indexable(), transaction as conn:
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
