"""The product part of the SQL storage (R3-R9): people, settings, templates, rules, outbox, log.

:class:`ProductStore` holds the per-workspace methods of :class:`~scimcore.storage.UserStore`;
:class:`~.storage.SqlUserStore` inherits them, so they run on the operation's connection, in the
same transaction as the user writes (a user, their card and their activation mail are committed
together or not at all, R3.6). Each method is one indexed statement; ``add_log`` adds a pruning
``DELETE`` on a fraction of calls (:func:`prune_every`).

:func:`claim_mail` and :func:`finish_mail` work across workspaces for the delivery worker.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    String,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    false,
    func,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite

from scimcore._json import dumps_text, loads
from scimcore.storage import LogEntry, OutboxMail, Person, Settings, card_name
from scimcore.templates import Rule, Template

from .activation import ActivationStoreMixin
from .images import ImagesMixin
from .people import PeopleMixin, person_from_row
from .raw import Runner
from .tables import LOG, OUTBOX, PEOPLE, RULES, SETTINGS, TEMPLATES, USERS

__all__ = [
    "PRUNE_EVERY_MAX",
    "ProductStore",
    "claim_mail",
    "dialect_insert",
    "finish_mail",
    "insert_unless_statement",
    "prune_every",
    "upsert",
    "upsert_statement",
    "with_settings_and_rules",
    "with_user_for_update",
]

#: The log of a workspace is pruned at most every this many entries (see :func:`prune_every`).
PRUNE_EVERY_MAX = 64


def prune_every(keep: int) -> int:
    """How often ``add_log`` prunes: every ``n``-th entry of a workspace (by its ordinal).

    A prune deletes every entry older than the ``keep`` newest, so a workspace holds at most
    ``keep + prune_every(keep) - 1`` entries: the slack is under ``keep / 16`` and under
    :data:`PRUNE_EVERY_MAX` (for the default retention of 10 000: at most 10 063 entries), and
    zero for ``keep < 32``, where retention is exact.
    """
    return max(1, min(PRUNE_EVERY_MAX, keep // 16))


# --- statements ----------------------------------------------------------------------------------
#
# Every per-request statement is built once, with ``bindparam`` placeholders (named ``b_*`` so that
# they never collide with a column: a parameter named like a column fills that column of an
# ``INSERT`` or the ``SET`` clause of an ``UPDATE``), and executed with a parameter dict. Building
# a statement and computing its cache key over embedded literals costs far more CPU than running
# it; a prebuilt statement memoizes its cache key, so SQLAlchemy goes straight to the compiled
# form. The dialect-specific ``INSERT ... ON CONFLICT`` statements are built once per dialect.


def dialect_insert(dialect_name: str) -> Callable[[Table], Any]:
    """The ``insert`` constructor with ``ON CONFLICT`` support for a dialect."""
    if dialect_name == "postgresql":
        return postgresql.insert
    if dialect_name == "sqlite":
        return sqlite.insert
    raise ValueError(f"unsupported dialect {dialect_name!r}")


@lru_cache(maxsize=256)
def upsert_statement(
    dialect_name: str, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]
) -> Executable:
    """``INSERT (columns) ... ON CONFLICT (keys) DO UPDATE`` of the other columns."""
    stmt = dialect_insert(dialect_name)(table)
    rest = [k for k in columns if k not in keys]
    built: Executable = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={k: stmt.excluded[k] for k in rest}
    )
    return built


@lru_cache(maxsize=256)
def insert_unless_statement(dialect_name: str, table: Table, keys: tuple[str, ...]) -> Executable:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` (every unique constraint when ``keys`` is
    empty): its row count (0 or 1) tells whether the row went in, with no ``RETURNING`` row to
    fetch."""
    stmt = dialect_insert(dialect_name)(table)
    if keys:
        built: Executable = stmt.on_conflict_do_nothing(index_elements=list(keys))
    else:
        built = stmt.on_conflict_do_nothing()
    return built


def upsert(conn: Connection, table: Table, keys: Sequence[str], values: Mapping[str, Any]) -> None:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE``: one atomic statement on both engines."""
    stmt = upsert_statement(conn.dialect.name, table, tuple(keys), tuple(values))
    conn.execute(stmt, dict(values))


_WS_PARAM = "b_ws"


def _ws(table: Table) -> Any:
    return table.c.workspace_id == bindparam(_WS_PARAM)


def _setting(column: Any) -> Any:
    return select(column).where(_ws(SETTINGS)).scalar_subquery()


#: A person and, in the same statement, the workspace's settings (the next thing an update
#: reads): ``s_found`` tells a missing settings row from one with NULLs.
_GET_PERSON = select(
    PEOPLE,
    exists().where(_ws(SETTINGS)).label("s_found"),
    _setting(SETTINGS.c.activation_email).label("s_activation_email"),
    _setting(SETTINGS.c.mapping).label("s_mapping"),
).where(_ws(PEOPLE), PEOPLE.c.id == bindparam("b_id"))
_GET_PERSON_FOR_UPDATE = _GET_PERSON.with_for_update(of=PEOPLE)  # see SqlUserStore.get
#: SQLite writing transactions (nobody else writes until the commit): a user's document and,
#: in the same statement, the person and settings an update of the user reads next.
_GET_USER_WITH_PERSON = (
    select(USERS.c.document, *_GET_PERSON.selected_columns)
    .select_from(
        USERS.outerjoin(
            PEOPLE, and_(PEOPLE.c.workspace_id == USERS.c.workspace_id, PEOPLE.c.id == USERS.c.id)
        )
    )
    .where(USERS.c.workspace_id == bindparam(_WS_PARAM), USERS.c.id == bindparam("b_id"))
)


def _log_max(workspace: ColumnElement[str], gate: ColumnElement[bool]) -> Any:
    """The workspace's highest log ordinal (``NULL``: no entry yet), where ``gate`` holds: read
    with a write's authentication so that its log entry needs no lookup of its own."""
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
    ``b_user`` reads first (:data:`_GET_USER_WITH_PERSON`): the user's document, its person
    (columns named ``p_*``), the settings of ``workspace`` and its highest log ordinal, each
    only where ``gate`` holds."""
    return (
        base.add_columns(
            _log_max(workspace, gate),
            USERS.c.document.label("user_document"),
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
    (:data:`_GET_SETTINGS`): the settings of ``workspace``, one row per rule and the highest
    log ordinal, each only where ``gate`` holds."""
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


_PEOPLE_KEYS = ("workspace_id", "id")
_PERSON_COLUMNS = tuple(c.name for c in PEOPLE.c if c.name not in _PEOPLE_KEYS)
#: A user and its person read with the authentication, as :meth:`ProductStore.get_person` reads
#: a row of :data:`_GET_USER_WITH_PERSON`.
_UserAhead = namedtuple(  # type: ignore[misc]
    "_UserAhead",
    ["document", *(c.name for c in PEOPLE.c), "s_found", "s_activation_email", "s_mapping"],
)
#: A row of :func:`with_user_for_update` to the values of a :data:`_UserAhead`.
_USER_AHEAD_COLUMNS = attrgetter(
    "user_document",
    *(f"p_{c.name}" for c in PEOPLE.c),
    "s_found",
    "s_activation_email",
    "s_mapping",
)
_UPDATE_PERSON = PEOPLE.update().where(_ws(PEOPLE), PEOPLE.c.id == bindparam("b_id"))
_LIST_PEOPLE = select(PEOPLE).where(_ws(PEOPLE)).order_by(PEOPLE.c.created_at, PEOPLE.c.id)
_COUNT_SEATS = (
    select(func.count())
    .select_from(PEOPLE)
    .where(_ws(PEOPLE), PEOPLE.c.active == true(), PEOPLE.c.deprovisioned == false())
)
_THE_WORKSPACE = select(cast(bindparam(_WS_PARAM), String).label("w")).subquery("k")
#: The settings and, in the same statement, the rules (the next thing a create reads): one row
#: per rule, or one row with no rule; ``s_ws`` tells a missing settings row from NULLs.
_GET_SETTINGS = (
    select(
        SETTINGS.c.workspace_id.label("s_ws"),
        SETTINGS.c.activation_email,
        SETTINGS.c.mapping,
        RULES.c.id,
        RULES.c.filter,
        RULES.c.template,
        RULES.c.position,
    )
    .select_from(
        _THE_WORKSPACE.outerjoin(SETTINGS, SETTINGS.c.workspace_id == _THE_WORKSPACE.c.w).outerjoin(
            RULES, RULES.c.workspace_id == _THE_WORKSPACE.c.w
        )
    )
    .order_by(RULES.c.position, RULES.c.id)
)
_LIST_TEMPLATES = (
    select(TEMPLATES.c.name, TEMPLATES.c.fields).where(_ws(TEMPLATES)).order_by(TEMPLATES.c.name)
)
_DELETE_TEMPLATE = delete(TEMPLATES).where(_ws(TEMPLATES), TEMPLATES.c.name == bindparam("b_name"))
_LIST_RULES = (
    select(RULES.c.id, RULES.c.filter, RULES.c.template, RULES.c.position)
    .where(_ws(RULES))
    .order_by(RULES.c.position, RULES.c.id)
)
_DELETE_RULE = delete(RULES).where(_ws(RULES), RULES.c.id == bindparam("b_id"))
_MAIL_DEDUPE_KEYS = ("workspace_id", "dedupe_key")
_MAIL_COLUMNS = [c for c in OUTBOX.c if c.name != "seq"]
_LIST_OUTBOX = select(*_MAIL_COLUMNS).where(_ws(OUTBOX)).order_by(OUTBOX.c.created_at, OUTBOX.c.id)
_LOG_COLUMNS = [c for c in LOG.c if c.name not in ("seq", "ordinal", "workspace_id")]
#: The entry gets the workspace's next ordinal in the ``INSERT`` itself (an index lookup of the
#: current maximum); the other columns come from the parameters.
_ADD_LOG = (
    LOG.insert()
    .values(
        ordinal=select(func.coalesce(func.max(LOG.c.ordinal), 0) + 1)
        .where(_ws(LOG))
        .scalar_subquery()
    )
    .returning(LOG.c.ordinal)
)
#: A log entry whose ordinal the transaction knows (see :meth:`ProductStore.add_log`).
_ADD_LOG_AT = LOG.insert()
_PRUNE_LOG = delete(LOG).where(_ws(LOG), LOG.c.ordinal <= bindparam("b_upto"))
_LIST_LOG = (
    select(*_LOG_COLUMNS)
    .where(_ws(LOG))
    .order_by(LOG.c.ordinal.desc(), LOG.c.seq.desc())
    .limit(bindparam("b_limit"))
)


def _search_columns(person: Person) -> dict[str, str | None]:
    """The ``people`` columns a search matches besides ``user_name_folded`` (see
    :func:`scimcore.storage.search_texts`)."""
    name = card_name(person.card)
    return {
        "email_folded": person.email.casefold() if person.email else None,
        "name_folded": name.casefold() if name is not None else None,
    }


def _mail(row: Any) -> OutboxMail:
    return OutboxMail(
        id=row.id,
        workspace_id=row.workspace_id,
        person_id=row.person_id,
        to=row.to_address,
        kind=row.kind,
        subject=row.subject,
        body=row.body,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        dedupe_key=row.dedupe_key,
        sent_at=row.sent_at,
        last_error=row.last_error,
    )


def _log_entry(row: Any) -> LogEntry:
    return LogEntry(
        id=row.id,
        at=row.at,
        operation=row.operation,
        resource_id=row.resource_id,
        status=row.status,
        detail=row.detail,
        token_id=row.token_id,
        actor=row.actor,
    )


def _rule(row: Any) -> Rule:
    return Rule(row.id, row.filter, row.template, row.position)


def _settings(found: Any, activation_email: Any, mapping: Any) -> Settings:
    if not found:
        return Settings()
    return Settings(
        activation_email=bool(activation_email),
        mapping=loads(mapping) if mapping is not None else None,
    )


class ProductStore(PeopleMixin, ImagesMixin, ActivationStoreMixin):
    """The product methods of a :class:`~scimcore.storage.UserStore` over one connection.

    Settings and rules read once are kept for the rest of the transaction (its own writes
    update them): a SCIM update reads them with the person, a create with each other.
    """

    _conn: Connection
    #: The transaction's statements: :func:`.raw.run` bound to ``_conn``.
    _run: Runner
    _ws: str
    _settings_cache: Settings | None = None
    _rules_cache: list[Rule] | None = None
    #: The stored columns of the people read or written (exclusive transactions only).
    _known_people: dict[str, dict[str, Any]] | None = None
    #: PostgreSQL writing transactions: reads lock the rows they return until the commit.
    _for_update: bool = False
    #: Person rows read ahead with their user (:meth:`_user_with_person`), by person id.
    _read_ahead: dict[str, Any] | None = None
    #: A user id and its :data:`_UserAhead` row, read with the authentication
    #: (:meth:`prime_update`).
    _primed: tuple[str, Any] | None = None
    #: The ordinal of the workspace's next log entry, when read with the authentication of an
    #: exclusive transaction (SQLite: nothing else can add an entry before it commits).
    _log_next: int | None = None

    def _upsert(self, table: Table, keys: tuple[str, ...], values: dict[str, Any]) -> None:
        stmt = upsert_statement(self._conn.dialect.name, table, keys, tuple(values))
        self._run(stmt, values, columns=True, fetch=False)

    # --- people --------------------------------------------------------------------------------

    def prime_update(self, user_id: str, row: Any) -> None:
        """Keep what :func:`with_user_for_update` read with the authentication: the next
        :meth:`_user_with_person` of ``user_id`` reads it instead of the database."""
        self._primed = (user_id, _UserAhead._make(_USER_AHEAD_COLUMNS(row)))
        self._log_next = (row.log_max or 0) + 1

    def prime_create(self, rows: Sequence[Any]) -> None:
        """Keep the settings and rules that :func:`with_settings_and_rules` read with the
        authentication (what :meth:`get_settings` and :meth:`list_rules` return)."""
        first = rows[0]
        self._log_next = (first.log_max or 0) + 1
        self._settings_cache = _settings(first.s_ws, first.s_activation_email, first.s_mapping)
        self._rules_cache = [
            Rule(r.r_id, r.r_filter, r.r_template, r.r_position) for r in rows if r.r_id is not None
        ]

    def _user_with_person(self, user_id: str) -> str | None:
        """The stored document of a user, its person row kept for :meth:`get_person` (exclusive
        transactions: nothing changes the row in between but this transaction)."""
        primed, self._primed = self._primed, None
        if primed is not None and primed[0] == user_id:
            row = primed[1]
        else:
            params = {_WS_PARAM: self._ws, "b_id": user_id}
            row = self._run(_GET_USER_WITH_PERSON, params).first()
        if row is None or row.document is None:
            return None
        if self._read_ahead is None:
            self._read_ahead = {}
        self._read_ahead[user_id] = row
        document: str = row.document
        return document

    def get_person(self, person_id: str) -> Person | None:
        row = self._read_ahead.pop(person_id, None) if self._read_ahead else None
        if row is None:
            stmt = _GET_PERSON_FOR_UPDATE if self._for_update else _GET_PERSON
            row = self._run(stmt, {_WS_PARAM: self._ws, "b_id": person_id}).first()
            if row is None:
                return None
        if self._settings_cache is None:
            self._settings_cache = _settings(row.s_found, row.s_activation_email, row.s_mapping)
        if row.id is None:  # read ahead with its user: the outer join found no person
            return None
        if self._known_people is not None:
            self._known_people[person_id] = {k: getattr(row, k) for k in _PERSON_COLUMNS}
        return person_from_row(row)

    def save_person(self, person: Person) -> None:
        """Insert or update the person with this ``id`` (a person read in this exclusive
        transaction: an ``UPDATE`` of the columns that change)."""
        values = {
            "workspace_id": self._ws,
            "id": person.id,
            "user_name": person.user_name,
            "user_name_folded": person.user_name.casefold(),
            "email": person.email,
            "active": person.active,
            "deprovisioned": person.deprovisioned,
            "card": dumps_text(person.card),
            "created_at": person.created_at,
            "updated_at": person.updated_at,
            **_search_columns(person),
            "activated_at": person.activated_at,
        }
        if self._read_ahead:
            self._read_ahead.pop(person.id, None)
        known = self._known_people
        before = known.get(person.id) if known is not None else None
        if known is None or before is None:
            self._upsert(PEOPLE, _PEOPLE_KEYS, values)
        else:
            changed = {k: values[k] for k in _PERSON_COLUMNS if values[k] != before[k]}
            if changed:
                params = {**changed, _WS_PARAM: self._ws, "b_id": person.id}
                self._run(_UPDATE_PERSON, params, columns=True, fetch=False)
        if known is not None:
            known[person.id] = {k: values[k] for k in _PERSON_COLUMNS}

    def list_people(self) -> Sequence[Person]:
        """Every person of the workspace, deprovisioned ones included, oldest first."""
        rows = self._conn.execute(_LIST_PEOPLE, {_WS_PARAM: self._ws})
        return [person_from_row(r) for r in rows]

    def count_seats(self) -> int:
        """People who are active and not deprovisioned (R5.1), from the seats index."""
        count: int = self._run(_COUNT_SEATS, {_WS_PARAM: self._ws}).scalar()
        return count

    # --- settings ------------------------------------------------------------------------------

    def get_settings(self) -> Settings:
        if self._settings_cache is not None:
            return self._settings_cache
        rows = self._run(_GET_SETTINGS, {_WS_PARAM: self._ws}).rows
        first = rows[0]
        self._settings_cache = _settings(first.s_ws, first.activation_email, first.mapping)
        self._rules_cache = [_rule(r) for r in rows if r.id is not None]
        return self._settings_cache

    def save_settings(self, settings: Settings) -> None:
        self._settings_cache = settings
        self._upsert(
            SETTINGS,
            ("workspace_id",),
            {
                "workspace_id": self._ws,
                "activation_email": settings.activation_email,
                "mapping": dumps_text(settings.mapping) if settings.mapping is not None else None,
            },
        )

    # --- templates and rules -------------------------------------------------------------------

    def list_templates(self) -> Sequence[Template]:
        """Templates by name (code-point order)."""
        rows = self._run(_LIST_TEMPLATES, {_WS_PARAM: self._ws}).rows
        return [Template(r.name, loads(r.fields)) for r in rows]

    def save_template(self, template: Template) -> None:
        """Insert or update the template with this name."""
        self._upsert(
            TEMPLATES,
            ("workspace_id", "name"),
            {
                "workspace_id": self._ws,
                "name": template.name,
                "fields": dumps_text(dict(template.fields)),
            },
        )

    def delete_template(self, name: str) -> bool:
        result = self._run(_DELETE_TEMPLATE, {_WS_PARAM: self._ws, "b_name": name}, fetch=False)
        return bool(result.rowcount)

    def list_rules(self) -> Sequence[Rule]:
        """Card Settings rules in ``position`` order (ties by ``id``)."""
        if self._rules_cache is None:
            rows = self._run(_LIST_RULES, {_WS_PARAM: self._ws}).rows
            self._rules_cache = [_rule(r) for r in rows]
        return list(self._rules_cache)

    def save_rule(self, rule: Rule) -> None:
        self._rules_cache = None
        self._upsert(
            RULES,
            ("workspace_id", "id"),
            {
                "workspace_id": self._ws,
                "id": rule.id,
                "filter": rule.filter,
                "template": rule.template,
                "position": rule.position,
            },
        )

    def delete_rule(self, rule_id: str) -> bool:
        self._rules_cache = None
        result = self._run(_DELETE_RULE, {_WS_PARAM: self._ws, "b_id": rule_id}, fetch=False)
        return bool(result.rowcount)

    # --- outbox --------------------------------------------------------------------------------

    def enqueue_mail(self, mail: OutboxMail) -> bool:
        """Queue a mail; ``False`` (and nothing queued) if its ``dedupe_key`` was used before in
        this workspace. The unique index decides, so concurrent enqueues have one winner."""
        stmt = insert_unless_statement(self._conn.dialect.name, OUTBOX, _MAIL_DEDUPE_KEYS)
        values = {
            "workspace_id": self._ws,
            "id": mail.id,
            "person_id": mail.person_id,
            "to_address": mail.to,
            "kind": mail.kind,
            "subject": mail.subject,
            "body": mail.body,
            "status": mail.status,
            "attempts": mail.attempts,
            "next_attempt_at": mail.next_attempt_at,
            "created_at": mail.created_at,
            "dedupe_key": mail.dedupe_key,
            "sent_at": mail.sent_at,
            "last_error": mail.last_error,
        }
        return self._run(stmt, values, columns=True, fetch=False).rowcount == 1

    def list_outbox(self) -> Sequence[OutboxMail]:
        """The workspace's mail, oldest first."""
        rows = self._conn.execute(_LIST_OUTBOX, {_WS_PARAM: self._ws})
        return [_mail(r) for r in rows]

    # --- log -----------------------------------------------------------------------------------

    def add_log(self, entry: LogEntry, keep: int) -> None:
        """Append an entry; retention is bounded, not exact: see :func:`prune_every`.

        The entry gets the workspace's next ordinal in the ``INSERT`` itself (an index lookup of
        the current maximum, returned): one statement. A SQLite write that read the maximum with
        its authentication (:func:`with_user_for_update`, :func:`with_settings_and_rules`)
        inserts the ordinal it knows: no lookup, nothing returned. Only every
        :func:`prune_every`-th ordinal, one range ``DELETE`` on the same index removes what is
        older than the ``keep`` newest.
        """
        values = {
            "workspace_id": self._ws,
            "id": entry.id,
            "at": entry.at,
            "operation": entry.operation,
            "resource_id": entry.resource_id,
            "status": entry.status,
            "detail": entry.detail,
            "token_id": entry.token_id,
            "actor": entry.actor,
        }
        ordinal: int
        if self._log_next is not None:
            ordinal = values["ordinal"] = self._log_next
            self._run(_ADD_LOG_AT, values, columns=True, fetch=False)
            self._log_next = ordinal + 1
        else:
            ordinal = self._run(_ADD_LOG, {_WS_PARAM: self._ws, **values}, columns=True).scalar()
        if ordinal % prune_every(keep) == 0:
            self._run(_PRUNE_LOG, {_WS_PARAM: self._ws, "b_upto": ordinal - keep}, fetch=False)

    def list_log(self, limit: int) -> Sequence[LogEntry]:
        """Newest first."""
        if limit <= 0:
            return []
        rows = self._conn.execute(_LIST_LOG, {_WS_PARAM: self._ws, "b_limit": limit})
        return [_log_entry(r) for r in rows]


# --- delivery (across workspaces) ----------------------------------------------------------------

_CLAIM_MAIL = (
    OUTBOX.update()
    .where(
        OUTBOX.c.seq.in_(
            select(OUTBOX.c.seq)
            .where(
                OUTBOX.c.status.in_(("pending", "sending")),
                OUTBOX.c.next_attempt_at <= bindparam("b_now", type_=OUTBOX.c.next_attempt_at.type),
            )
            .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.seq)
            .limit(bindparam("b_limit"))
            .with_for_update(skip_locked=True)
        )
    )
    .values(status="sending")
    .returning(*_MAIL_COLUMNS)
)
_FINISH_MAIL = OUTBOX.update().where(_ws(OUTBOX), OUTBOX.c.id == bindparam("b_id"))


def claim_mail(
    conn: Connection, now: datetime, lease_until: datetime, limit: int
) -> Sequence[OutboxMail]:
    """Mark up to ``limit`` due mails ``sending`` until ``lease_until`` and return them.

    One ``UPDATE ... WHERE seq IN (SELECT ... LIMIT n) RETURNING``. On PostgreSQL the inner
    select is ``FOR UPDATE SKIP LOCKED``: a concurrent claimer skips rows being claimed, and a row
    claimed (and committed) meanwhile fails the re-checked ``WHERE`` (its lease is in the future).
    On SQLite the caller's ``BEGIN IMMEDIATE`` serialises claimers. Oldest due first.
    """
    if limit <= 0:
        return []
    rows = conn.execute(
        _CLAIM_MAIL, {"b_now": now, "b_limit": limit, "next_attempt_at": lease_until}
    ).all()
    return sorted((_mail(r) for r in rows), key=lambda m: (m.created_at, m.id))


def finish_mail(conn: Connection, mail: OutboxMail) -> None:
    """Store the outcome of a delivery attempt of a claimed mail."""
    conn.execute(
        _FINISH_MAIL,
        {
            _WS_PARAM: mail.workspace_id,
            "b_id": mail.id,
            "status": mail.status,
            "attempts": mail.attempts,
            "sent_at": mail.sent_at,
            "last_error": mail.last_error,
            "next_attempt_at": mail.next_attempt_at,
        },
    )
