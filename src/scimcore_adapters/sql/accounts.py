"""Accounts: workspaces, admins and tokens, and the statements that authenticate a request.

:class:`Accounts` holds the :class:`~scimcore.storage.Storage` methods of workspaces, admins and
tokens, each in a transaction of its own. Authentication is one indexed join (token, workspace,
the creator's admin row: :data:`_AUTHENTICATE`), and the fast paths read what the request reads
next *in the same statement*, joined only on the token's workspace and only where the stored
secret hash equals the presented one (the caller still compares the hashes in constant time):

- :meth:`Accounts.authenticate_read`: for ``GET /Users/{id}``, the user; for Entra's
  ``userName eq`` lookup, the user; for every read that answers users (those two, a page, any
  other filter), whether the workspace has groups at all;
- :meth:`Accounts.authenticate_write` (SQLite writes): for an update, the user, its person, the
  settings (:func:`with_user_for_update`); for a create, the settings and the rules
  (:func:`with_settings_and_rules`);
  :func:`prime` hands them to the write's store, which then reads none of them again.

One statement instead of two or three per request. Measured (docs/performance.md): a
``GET /Users/{id}`` 0.71 -> 0.62 ms side by side, Entra's lookup 0.90 -> 0.81 ms, a create
2.10 -> 1.83 ms of server CPU (-13 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Label,
    Select,
    and_,
    bindparam,
    exists,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError

from scimcore._json import loads
from scimcore.filters import compile_filter
from scimcore.schema import SchemaRegistry
from scimcore.storage import (
    ActivationLink,
    Admin,
    Authenticated,
    Grant,
    Intent,
    Page,
    TokenRecord,
    Workspace,
)
from scimcore.templates import Rule

from . import activation, admin_accounts
from .compiler import user_name_key
from .engines import IMMEDIATE, NO_BEGIN
from .execute import Runner, is_unique_violation, listened, run, run_dbapi
from .product import ProductStore
from .queries import NAMED
from .rows import TOKEN, WORKSPACE, WORKSPACE_OF_GRANT, stored_settings
from .statements import upsert_statement
from .tables import (
    ADMINS,
    GROUPS,
    LOG,
    PEOPLE,
    RULES,
    SETTINGS,
    TOKENS,
    USERS,
    WORKSPACES,
)
from .transactions import Transactions

__all__ = ["Accounts", "grant_of", "prime", "with_settings_and_rules", "with_user_for_update"]

# --- what a write reads with its authentication ---------------------------------------------------


def _log_max(workspace: ColumnElement[str], gate: ColumnElement[bool]) -> Label[Any]:
    """The workspace's highest log ordinal (``NULL``: no entry yet), where ``gate`` holds: a
    SQLite write holds the write lock from its first statement on, so its log entry can take
    the next ordinal without a lookup or a ``RETURNING`` of its own
    (:meth:`.product.ProductStore.prime_log`)."""
    return (
        select(func.max(LOG.c.ordinal))
        .where(LOG.c.workspace_id == workspace, gate)
        .scalar_subquery()
        .label("log_max")
    )


def with_user_for_update(
    base: Select[Any], workspace: ColumnElement[str], gate: ColumnElement[bool]
) -> Select[Any]:
    """``base`` (an authentication: one row per token) with what an update of the user
    ``b_user`` reads first (:data:`.product._GET_USER_WITH_PERSON`): the user's document, its
    person (columns named ``p_*``), the settings of ``workspace``, whether it has any group
    (``has_groups``: without, the response's ``User.groups`` is not read) and its highest log
    ordinal, each only where ``gate`` holds."""
    return (
        base.add_columns(
            _log_max(workspace, gate),
            USERS.c.document.label("user_document"),
            exists().where(GROUPS.c.workspace_id == workspace, gate).label("has_groups"),
            *(c.label(f"p_{c.name}") for c in PEOPLE.c),
            exists().where(SETTINGS.c.workspace_id == workspace, gate).label("s_found"),
            select(SETTINGS.c.activation_email)
            .where(SETTINGS.c.workspace_id == workspace, gate)
            .scalar_subquery()
            .label("s_activation_email"),
            select(SETTINGS.c.mapping)
            .where(SETTINGS.c.workspace_id == workspace, gate)
            .scalar_subquery()
            .label("s_mapping"),
        )
        .outerjoin(
            USERS,
            and_(USERS.c.workspace_id == workspace, USERS.c.id == bindparam("b_user"), gate),
        )
        .outerjoin(
            PEOPLE, and_(PEOPLE.c.workspace_id == USERS.c.workspace_id, PEOPLE.c.id == USERS.c.id)
        )
    )


def with_settings_and_rules(
    base: Select[Any], workspace: ColumnElement[str], gate: ColumnElement[bool]
) -> Select[Any]:
    """``base`` (an authentication: one row per token) with what a create reads
    (:data:`.product._GET_SETTINGS`): the settings of ``workspace``, one row per rule and its
    highest log ordinal, each only where ``gate`` holds."""
    return (
        base.add_columns(
            _log_max(workspace, gate),
            SETTINGS.c.workspace_id.label("s_ws"),
            SETTINGS.c.activation_email.label("s_activation_email"),
            SETTINGS.c.mapping.label("s_mapping"),
            RULES.c.id.label("r_id"),
            RULES.c.filter.label("r_filter"),
            RULES.c.template.label("r_template"),
            RULES.c.position.label("r_position"),
        )
        .outerjoin(SETTINGS, and_(SETTINGS.c.workspace_id == workspace, gate))
        .outerjoin(RULES, and_(RULES.c.workspace_id == workspace, gate))
        .order_by(RULES.c.position, RULES.c.id)
    )


#: A row of :func:`with_user_for_update` to the values of a :data:`.product.UserAhead`.
_USER_AHEAD_COLUMNS = attrgetter(
    "user_document",
    *(f"p_{c.name}" for c in PEOPLE.c),
    "s_found",
    "s_activation_email",
    "s_mapping",
)


def grant_of(row: Any) -> Grant:
    """The grant of an authentication row (token columns, ``ws_*``, ``admin_active``)."""
    return Grant(TOKEN.from_row(row), WORKSPACE_OF_GRANT.from_row(row), bool(row.admin_active))


def prime(product: ProductStore, rows: Sequence[Any], user_id: str | None) -> None:
    """Hand what :meth:`Accounts.authenticate_write` read ahead to the write's product store:
    an update's user, person and settings (``user_id``), or a create's settings and rules,
    which the store then does not read again, and the workspace's highest log ordinal."""
    first = rows[0]
    product.prime_log(first.log_max)
    if user_id is not None:
        product.prime_update(user_id, _USER_AHEAD_COLUMNS(first))
        return
    settings = stored_settings(first.s_ws, first.s_activation_email, first.s_mapping)
    rules = [
        Rule(r.r_id, r.r_filter, r.r_template, r.r_position) for r in rows if r.r_id is not None
    ]
    product.prime_create(settings, rules)


class Accounts:
    """Workspaces, admins and tokens of a storage, on its transaction engine."""

    def __init__(
        self, engine: Engine, transactions: Transactions, registry: SchemaRegistry
    ) -> None:
        self._engine = engine
        self._transactions = transactions
        self._registry = registry
        self._sqlite = engine.dialect.name == "sqlite"

    def _begin(self, immediate: bool) -> AbstractContextManager[Connection]:
        """A transaction: a writing one (``immediate``) or one that reads with one statement."""
        return self._transactions.begin(IMMEDIATE if immediate else NO_BEGIN)

    # --- workspaces ----------------------------------------------------------------------------

    def create_workspace(self, workspace: Workspace) -> None:
        """Add a workspace; ``ValueError`` if its slug (or id) exists."""
        try:
            with self._begin(immediate=True) as conn:
                conn.execute(_INSERT_WORKSPACE, WORKSPACE.to_row(workspace))
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise ValueError(f"workspace {workspace.slug!r} exists") from None
            raise

    def get_workspace(self, slug: str) -> Workspace | None:
        with self._begin(immediate=False) as conn:
            row = conn.execute(_WORKSPACE_BY_SLUG, {"b_slug": slug}).first()
        return WORKSPACE.from_row(row) if row is not None else None

    def get_workspace_by_id(self, workspace_id: str) -> Workspace | None:
        with self._begin(immediate=False) as conn:
            row = conn.execute(_WORKSPACE_BY_ID, {"b_id": workspace_id}).first()
        return WORKSPACE.from_row(row) if row is not None else None

    def list_workspaces(self) -> Sequence[Workspace]:
        with self._begin(immediate=False) as conn:
            rows = conn.execute(select(WORKSPACES).order_by(WORKSPACES.c.slug)).all()
        return [WORKSPACE.from_row(r) for r in rows]

    # --- admins (statements in .admin_accounts) -----------------------------------------------

    def save_admin(self, admin: Admin) -> None:
        """Insert or update an admin, keyed by workspace and e-mail (case-insensitive)."""
        with self._begin(immediate=True) as conn:
            admin_accounts.save_admin(conn, admin)

    def get_admin(self, workspace_id: str, email: str) -> Admin | None:
        with self._begin(immediate=False) as conn:
            return admin_accounts.get_admin(conn, workspace_id, email)

    def list_admins(self, workspace_id: str) -> Sequence[Admin]:
        with self._begin(immediate=False) as conn:
            return admin_accounts.list_admins(conn, workspace_id)

    def deactivate_admin(self, workspace_id: str, email: str, reason: str) -> Admin | None:
        with self._begin(immediate=True) as conn:
            return admin_accounts.deactivate_admin(conn, workspace_id, email, reason)

    # --- tokens --------------------------------------------------------------------------------

    def add_token(self, token: TokenRecord) -> None:
        """Store a token record (only the hash of the secret); an existing id is overwritten."""
        values = TOKEN.to_row(token)
        with self._begin(immediate=True) as conn:
            stmt = upsert_statement(conn.dialect.name, TOKENS, ("id",), tuple(values))
            conn.execute(stmt, values)

    def get_token(self, token_id: str) -> TokenRecord | None:
        with self._begin(immediate=False) as conn:
            row = conn.execute(_GET_TOKEN, {"b_id": token_id}).first()
        return TOKEN.from_row(row) if row is not None else None

    def list_tokens(self, workspace_id: str) -> Sequence[TokenRecord]:
        with self._begin(immediate=False) as conn:
            return admin_accounts.list_tokens(conn, workspace_id)

    def delete_token(self, workspace_id: str, token_id: str) -> bool:
        with self._begin(immediate=True) as conn:
            return admin_accounts.delete_token(conn, workspace_id, token_id)

    def get_tombstone(self, token_id: str) -> TokenRecord | None:
        with self._begin(immediate=False) as conn:
            return admin_accounts.get_tombstone(conn, token_id)

    def claim_refusal(self, token_id: str, when: datetime, interval: timedelta) -> bool:
        with self._begin(immediate=True) as conn:
            return admin_accounts.claim_refusal(conn, token_id, when, interval)

    def get_activation_link(self, token_hash: str) -> ActivationLink | None:
        with self._begin(immediate=False) as conn:
            return activation.get_activation_link(conn, token_hash)

    def touch_token(self, token_id: str, when: datetime) -> None:
        """Record that the token was just used (``last_used_at``)."""
        with self._begin(immediate=True) as conn:
            conn.execute(_TOUCH_TOKEN, {"b_id": token_id, "last_used_at": when})

    # --- authentication ------------------------------------------------------------------------

    def authenticate(self, token_id: str) -> Grant | None:
        """Token, workspace and the creator's state in one indexed join."""
        row = self._read_one(_AUTHENTICATE, {"token_id": token_id})
        return grant_of(row) if row is not None else None

    def authenticate_read(self, token_id: str, secret_hash: str, intent: Intent) -> Authenticated:
        """The authentication of a read request and, in the same statement, what its
        ``intent`` reads first: the user it names, or the user of Entra's lookup
        ``userName eq "..."`` (the only filter read so), and, for any read that answers users,
        whether the workspace has a group (``has_groups``). Data is joined only on the token's
        workspace and only when the stored secret hash equals ``secret_hash``.

        Fast path of ``GET /Users/{id}``, of the lookup Entra makes before each create and of
        a page of users: one statement instead of two or three (see the module's
        documentation for what it saves)."""
        params = {"token_id": token_id, "b_hash": secret_hash}
        if intent.user_id is not None:
            statement, params["b_user"] = _AUTHENTICATE_AND_GET, intent.user_id
        elif (name := self._lookup_name(intent.filter)) is not None:
            statement, params["b_name"] = _AUTHENTICATE_AND_FIND, name
        elif intent.filter is not None or intent.listing:
            statement = _AUTHENTICATE_USERS
        else:
            return Authenticated(self.authenticate(token_id))
        rows = self._read(statement, params)
        if not rows:
            return Authenticated(None)
        row = rows[0]
        grant = grant_of(row)
        if statement is _AUTHENTICATE_USERS:
            return Authenticated(grant, has_groups=row.has_groups)
        user = loads(row.user_document) if row.user_document is not None else None
        if intent.user_id is not None:
            return Authenticated(grant, user=user, has_groups=row.has_groups)
        found = [user] if user is not None else []
        return Authenticated(grant, has_groups=row.has_groups, found=Page(len(found), found))

    def _lookup_name(self, filter: str | None) -> str | None:
        """The user name a ``userName eq "..."`` filter looks up (folded as stored), else
        ``None`` (another filter, or a bad one: the request's own query reports it, once
        authenticated)."""
        if filter is None:
            return None
        try:
            return user_name_key(compile_filter(filter, self._registry), self._registry)
        except Exception:
            return None

    def authenticate_write(
        self, runner: Runner, token_id: str, secret_hash: str, user_id: str | None
    ) -> list[Any]:
        """The rows of a write's authentication, run first in its transaction: SQLite reads
        ahead (see the module's documentation), PostgreSQL authenticates only (and reads the
        rest as a store does, locking it). No row: no such token.

        Fast path of every SCIM write: one statement fewer (a create 2.10 -> 1.83 ms of server
        CPU)."""
        params = {"token_id": token_id, "b_hash": secret_hash}
        if not self._sqlite:
            stmt: Executable = _AUTHENTICATE
        elif user_id is None:
            stmt = _AUTHENTICATE_FOR_CREATE
        else:
            stmt = _AUTHENTICATE_FOR_UPDATE
            params["b_user"] = user_id
        rows: list[Any] = runner(stmt, params).rows
        return rows

    def _read_one(self, stmt: Executable, params: dict[str, Any]) -> Any:
        """The first row of :meth:`_read`, ``None`` if none."""
        rows = self._read(stmt, params)
        return rows[0] if rows else None

    def _read(self, stmt: Executable, params: dict[str, Any]) -> list[Any]:
        """The rows of a read of one statement, outside any transaction block: on SQLite,
        straight on the thread's held connection (autocommit: one statement, one snapshot)."""
        held = self._transactions.thread_connection()  # PostgreSQL: None
        if held is not None and not listened(self._engine):
            dbapi_conn = held.connection.dbapi_connection
            rows: list[Any] = run_dbapi(dbapi_conn, self._engine.dialect, stmt, params).rows
            return rows
        with self._transactions.begin(NO_BEGIN) as conn:  # PostgreSQL: autocommit
            rows = run(conn, stmt, params).rows
            return rows


# --- statements (built once: see .statements) -----------------------------------------------------

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


#: Whether the token's workspace has any group (read only for the stored secret hash). In a
#: workspace without groups no user is in one: every ``User.groups`` is known empty, and the
#: core runs no statement of the memberships (a GET on SQLite 487k -> 366k instructions
#: in-process, session 16; a page of 100 users 10.9M -> 9.4M, session 17; benchmarks/NOTES.md).
#: With groups, the core reads them as before (a join here would scan the workspace's
#: memberships: SQLite's planner, without statistics for them, picks the wrong index; see
#: groups.py).
_HAS_GROUPS = (
    exists()
    .where(GROUPS.c.workspace_id == TOKENS.c.workspace_id, _SECRET_MATCHES)
    .label("has_groups")
)
#: A read that answers users (a page or a filter other than a ``userName`` lookup).
_AUTHENTICATE_USERS = _AUTHENTICATE.add_columns(_HAS_GROUPS)
#: ``GET /Users/{id}``: the user and whether its workspace has any group.
_AUTHENTICATE_AND_GET = _authenticate_and_read(USERS.c.id == bindparam("b_user")).add_columns(
    _HAS_GROUPS
)
_AUTHENTICATE_AND_FIND = _authenticate_and_read(NAMED).add_columns(_HAS_GROUPS)  # one row
#: A write's authentication with what the write reads next (SQLite; see
#: :meth:`Accounts.authenticate_write`).
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
