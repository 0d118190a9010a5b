"""The product part of a unit of work (R3-R9): people, settings, templates, rules, outbox, log.

:class:`ProductStore` runs on the operation's connection, in the same transaction as the user
writes (a user, their card and their activation mail are committed together or not at all,
R3.6); :class:`~.users.SqlUserStore` holds one and hands its product methods to it. Each
method is one indexed statement; ``add_log`` adds a pruning ``DELETE`` on a fraction of calls
(:func:`prune_every`).

:func:`claim_mail` and :func:`finish_mails` work across workspaces for the delivery worker.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    false,
    func,
    literal_column,
    select,
    true,
)

from scimcore._json import dumps_text, loads
from scimcore.storage import LogEntry, OutboxMail, Person, Settings, card_name
from scimcore.templates import Rule, Template

from .execute import Runner
from .rows import LOG_ENTRY, MAIL, PERSON, RULE, stored_settings
from .statements import WS_PARAM, in_workspace, insert_unless_statement, upsert_statement
from .tables import LOG, OUTBOX, PEOPLE, RULES, SETTINGS, TEMPLATES, USERS

__all__ = [
    "PRUNE_EVERY_MAX",
    "ProductStore",
    "UserAhead",
    "claim_mail",
    "finish_mails",
    "prune_every",
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


# --- statements (built once: see .statements) ----------------------------------------------------


def _setting(column: Any) -> Any:
    return select(column).where(in_workspace(SETTINGS)).scalar_subquery()


#: A person and, in the same statement, the workspace's settings (the next thing an update
#: reads): ``s_found`` tells a missing settings row from one with NULLs.
_GET_PERSON = select(
    PEOPLE,
    exists().where(in_workspace(SETTINGS)).label("s_found"),
    _setting(SETTINGS.c.activation_email).label("s_activation_email"),
    _setting(SETTINGS.c.mapping).label("s_mapping"),
).where(in_workspace(PEOPLE), PEOPLE.c.id == bindparam("b_id"))
_GET_PERSON_FOR_UPDATE = _GET_PERSON.with_for_update(of=PEOPLE)  # see ProductStore.get_person
#: SQLite writing transactions (nobody else writes until the commit): a user's document and,
#: in the same statement, the person and settings an update of the user reads next.
_GET_USER_WITH_PERSON = (
    select(USERS.c.document, *_GET_PERSON.selected_columns)
    .select_from(
        USERS.outerjoin(
            PEOPLE, and_(PEOPLE.c.workspace_id == USERS.c.workspace_id, PEOPLE.c.id == USERS.c.id)
        )
    )
    .where(USERS.c.workspace_id == bindparam(WS_PARAM), USERS.c.id == bindparam("b_id"))
)


_PEOPLE_KEYS = ("workspace_id", "id")
_PERSON_COLUMNS = tuple(c.name for c in PEOPLE.c if c.name not in _PEOPLE_KEYS)
#: A user and its person read with the authentication, as :meth:`ProductStore.get_person` reads
#: a row of :data:`_GET_USER_WITH_PERSON` (see :meth:`ProductStore.prime_update`).
UserAhead = namedtuple(  # type: ignore[misc]
    "UserAhead",
    ["document", *(c.name for c in PEOPLE.c), "s_found", "s_activation_email", "s_mapping"],
)
_UPDATE_PERSON = PEOPLE.update().where(in_workspace(PEOPLE), PEOPLE.c.id == bindparam("b_id"))
_LIST_PEOPLE = select(PEOPLE).where(in_workspace(PEOPLE)).order_by(PEOPLE.c.created_at, PEOPLE.c.id)
_COUNT_SEATS = (
    select(func.count())
    .select_from(PEOPLE)
    .where(in_workspace(PEOPLE), PEOPLE.c.active == true(), PEOPLE.c.deprovisioned == false())
)
_THE_WORKSPACE = select(cast(bindparam(WS_PARAM), String).label("w")).subquery("k")
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
    select(TEMPLATES.c.name, TEMPLATES.c.fields)
    .where(in_workspace(TEMPLATES))
    .order_by(TEMPLATES.c.name)
)
_DELETE_TEMPLATE = delete(TEMPLATES).where(
    in_workspace(TEMPLATES), TEMPLATES.c.name == bindparam("b_name")
)
_LIST_RULES = (
    select(RULES.c.id, RULES.c.filter, RULES.c.template, RULES.c.position)
    .where(in_workspace(RULES))
    .order_by(RULES.c.position, RULES.c.id)
)
_DELETE_RULE = delete(RULES).where(in_workspace(RULES), RULES.c.id == bindparam("b_id"))
_MAIL_DEDUPE_KEYS = ("workspace_id", "dedupe_key")
_MAIL_COLUMNS = [c for c in OUTBOX.c if c.name != "seq"]
_LIST_OUTBOX = (
    select(*_MAIL_COLUMNS).where(in_workspace(OUTBOX)).order_by(OUTBOX.c.created_at, OUTBOX.c.id)
)
_LOG_COLUMNS = [c for c in LOG.c if c.name not in ("seq", "ordinal", "workspace_id")]
#: The entry gets the workspace's next ordinal in the ``INSERT`` itself (an index lookup of the
#: current maximum); the other columns come from the parameters. The constants are written
#: into the SQL (``literal_column``), not bound: a bound constant is a parameter with a
#: default, which sends every execution down the binding's slow path (``execute.Prepared``;
#: 270 of a create's 12,800 bytecodes; benchmarks/NOTES.md, session 17).
_ADD_LOG = (
    LOG.insert()
    .values(
        ordinal=select(
            func.coalesce(func.max(LOG.c.ordinal), literal_column("0")) + literal_column("1")
        )
        .where(in_workspace(LOG))
        .scalar_subquery()
    )
    .returning(LOG.c.ordinal)
)
#: The entry with an ordinal known from the write's authentication (SQLite, see
#: :meth:`ProductStore.prime_log`): no lookup, nothing returned.
_ADD_LOG_AT = LOG.insert()
_PRUNE_LOG = delete(LOG).where(in_workspace(LOG), LOG.c.ordinal <= bindparam("b_upto"))
_LIST_LOG = (
    select(*_LOG_COLUMNS)
    .where(in_workspace(LOG))
    .order_by(LOG.c.ordinal.desc(), LOG.c.seq.desc())
    .limit(bindparam("b_limit"))
)


def _search_columns(person: Person) -> dict[str, str | None]:
    """The ``people`` columns a people search matches besides ``user_name_folded`` (see
    :func:`scimcore.storage.search_texts`; the pages are in :mod:`.people`)."""
    name = card_name(person.card)
    return {
        "email_folded": person.email.casefold() if person.email else None,
        "name_folded": name.casefold() if name is not None else None,
    }


class ProductStore:
    """The product methods of a :class:`~scimcore.storage.UserStore` over one connection.

    Settings and rules read once are kept for the rest of the transaction (its own writes
    update them): a SCIM update reads them with the person, a create with each other.

    ``run``: the transaction's statements (:class:`.execute.Runner` bound to ``conn``).
    ``exclusive``: nothing else writes until the commit (SQLite's ``BEGIN IMMEDIATE``), so the
    store remembers the columns of the people it read or wrote and writes only what changes.
    ``for_update``: PostgreSQL writing transactions: reads lock the rows they return.
    """

    __slots__ = (
        "_conn",
        "_for_update",
        "_known_people",
        "_log_next",
        "_primed",
        "_read_ahead",
        "_rules_cache",
        "_run",
        "_settings_cache",
        "_ws",
    )

    def __init__(
        self,
        conn: Connection,
        run: Runner,
        workspace_id: str,
        *,
        exclusive: bool = False,
        for_update: bool = False,
    ) -> None:
        self._conn = conn
        self._run = run
        self._ws = workspace_id
        self._for_update = for_update
        self._settings_cache: Settings | None = None
        self._rules_cache: list[Rule] | None = None
        #: The stored columns of the people read or written (exclusive transactions only).
        self._known_people: dict[str, dict[str, Any]] | None = {} if exclusive else None
        #: Person rows read ahead with their user (:meth:`user_with_person`), by person id.
        self._read_ahead: dict[str, Any] | None = None
        #: A user id and its :data:`UserAhead` row, read with the authentication
        #: (:meth:`prime_update`).
        self._primed: tuple[str, Any] | None = None
        #: The next log ordinal, known from the authentication (:meth:`prime_log`).
        self._log_next: int | None = None

    def _upsert(self, table: Table, keys: tuple[str, ...], values: dict[str, Any]) -> None:
        stmt = upsert_statement(self._conn.dialect.name, table, keys, tuple(values))
        self._run(stmt, values, columns=True, fetch=False)

    # --- people --------------------------------------------------------------------------------

    def prime_update(self, user_id: str, ahead: Sequence[Any]) -> None:
        """Keep what was read with the authentication (:func:`.accounts.with_user_for_update`):
        ``ahead``, the values of a :data:`UserAhead` (the next :meth:`user_with_person` of
        ``user_id`` reads them instead of the database)."""
        self._primed = (user_id, UserAhead._make(ahead))

    def prime_log(self, log_max: int | None) -> None:
        """Keep the workspace's highest log ordinal (``None``: no entry yet), read with the
        authentication of a SQLite write (:func:`.accounts.with_user_for_update`,
        :func:`.accounts.with_settings_and_rules`), which holds the write lock from that
        statement to its end: the entries it adds take the next ordinals (:meth:`add_log`)."""
        self._log_next = (log_max or 0) + 1

    def prime_create(self, settings: Settings, rules: list[Rule]) -> None:
        """Keep the settings and rules read with the authentication
        (:func:`.accounts.with_settings_and_rules`: what :meth:`get_settings` and
        :meth:`list_rules` return)."""
        self._settings_cache = settings
        self._rules_cache = rules

    def user_with_person(self, user_id: str) -> str | None:
        """The stored document of a user, its person row kept for :meth:`get_person` (exclusive
        transactions: nothing changes the row in between but this transaction)."""
        primed, self._primed = self._primed, None
        if primed is not None and primed[0] == user_id:
            row = primed[1]
        else:
            params = {WS_PARAM: self._ws, "b_id": user_id}
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
            row = self._run(stmt, {WS_PARAM: self._ws, "b_id": person_id}).first()
            if row is None:
                return None
        if self._settings_cache is None:
            self._settings_cache = stored_settings(
                row.s_found, row.s_activation_email, row.s_mapping
            )
        if row.id is None:  # read ahead with its user: the outer join found no person
            return None
        if self._known_people is not None:
            self._known_people[person_id] = {k: getattr(row, k) for k in _PERSON_COLUMNS}
        return PERSON.from_row(row)

    def save_person(self, person: Person) -> None:
        """Insert or update the person with this ``id`` (a person read in this exclusive
        transaction: an ``UPDATE`` of the columns that change)."""
        values = PERSON.to_row(
            person,
            workspace_id=self._ws,
            user_name_folded=person.user_name.casefold(),
            **_search_columns(person),
        )
        if self._read_ahead:
            self._read_ahead.pop(person.id, None)
        known = self._known_people
        before = known.get(person.id) if known is not None else None
        if known is None or before is None:
            self._upsert(PEOPLE, _PEOPLE_KEYS, values)
        else:
            changed = {k: values[k] for k in _PERSON_COLUMNS if values[k] != before[k]}
            if changed:
                params = {**changed, WS_PARAM: self._ws, "b_id": person.id}
                self._run(_UPDATE_PERSON, params, columns=True, fetch=False)
        if known is not None:
            known[person.id] = {k: values[k] for k in _PERSON_COLUMNS}

    def list_people(self) -> Sequence[Person]:
        """Every person of the workspace, deprovisioned ones included, oldest first."""
        rows = self._conn.execute(_LIST_PEOPLE, {WS_PARAM: self._ws})
        return [PERSON.from_row(r) for r in rows]

    def count_seats(self) -> int:
        """People who are active and not deprovisioned (R5.1), from the Team Cards index (its
        state columns)."""
        count: int = self._run(_COUNT_SEATS, {WS_PARAM: self._ws}).scalar()
        return count

    # --- settings ------------------------------------------------------------------------------

    def get_settings(self) -> Settings:
        if self._settings_cache is not None:
            return self._settings_cache
        rows = self._run(_GET_SETTINGS, {WS_PARAM: self._ws}).rows
        first = rows[0]
        self._settings_cache = stored_settings(first.s_ws, first.activation_email, first.mapping)
        self._rules_cache = [RULE.from_row(r) for r in rows if r.id is not None]
        return self._settings_cache

    def save_settings(self, settings: Settings) -> None:
        self._settings_cache = settings
        mapping = settings.mapping
        self._upsert(
            SETTINGS,
            ("workspace_id",),
            {
                "workspace_id": self._ws,
                "activation_email": settings.activation_email,
                "mapping": dumps_text(mapping) if mapping is not None else None,
            },
        )

    # --- templates and rules -------------------------------------------------------------------

    def list_templates(self) -> Sequence[Template]:
        """Templates by name (code-point order)."""
        rows = self._run(_LIST_TEMPLATES, {WS_PARAM: self._ws}).rows
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
        result = self._run(_DELETE_TEMPLATE, {WS_PARAM: self._ws, "b_name": name}, fetch=False)
        return bool(result.rowcount)

    def list_rules(self) -> Sequence[Rule]:
        """Card Settings rules in ``position`` order (ties by ``id``)."""
        if self._rules_cache is None:
            rows = self._run(_LIST_RULES, {WS_PARAM: self._ws}).rows
            self._rules_cache = [RULE.from_row(r) for r in rows]
        return list(self._rules_cache)

    def save_rule(self, rule: Rule) -> None:
        self._rules_cache = None
        self._upsert(RULES, ("workspace_id", "id"), RULE.to_row(rule, workspace_id=self._ws))

    def delete_rule(self, rule_id: str) -> bool:
        self._rules_cache = None
        result = self._run(_DELETE_RULE, {WS_PARAM: self._ws, "b_id": rule_id}, fetch=False)
        return bool(result.rowcount)

    # --- outbox --------------------------------------------------------------------------------

    def enqueue_mail(self, mail: OutboxMail) -> bool:
        """Queue a mail; ``False`` (and nothing queued) if its ``dedupe_key`` was used before in
        this workspace. The unique index decides, so concurrent enqueues have one winner."""
        stmt = insert_unless_statement(self._conn.dialect.name, OUTBOX, _MAIL_DEDUPE_KEYS)
        values = MAIL.to_row(mail, workspace_id=self._ws)
        return self._run(stmt, values, columns=True, fetch=False).rowcount == 1

    def list_outbox(self) -> Sequence[OutboxMail]:
        """The workspace's mail, oldest first."""
        rows = self._conn.execute(_LIST_OUTBOX, {WS_PARAM: self._ws})
        return [MAIL.from_row(r) for r in rows]

    # --- log -----------------------------------------------------------------------------------

    def add_log(self, entry: LogEntry, keep: int) -> None:
        """Append an entry; retention is bounded, not exact: see :func:`prune_every`.

        The entry gets the workspace's next ordinal in the ``INSERT`` itself (an index lookup of
        the current maximum, returned): one statement. A SQLite write that read the maximum with
        its authentication (:meth:`prime_log`) inserts the ordinal it knows instead: SQLite
        runs a ``RETURNING`` through a table of its own, which made the entry cost 22 µs
        against 10 µs (a PATCH 5 % of its CPU; benchmarks/NOTES.md, session 18). Only every
        :func:`prune_every`-th ordinal, one range ``DELETE`` on the same index removes what is
        older than the ``keep`` newest.
        """
        values = LOG_ENTRY.to_row(entry, workspace_id=self._ws)
        ordinal: int
        if self._log_next is not None:
            ordinal = values["ordinal"] = self._log_next
            self._run(_ADD_LOG_AT, values, columns=True, fetch=False)
            self._log_next = ordinal + 1
        else:
            ordinal = self._run(_ADD_LOG, {WS_PARAM: self._ws, **values}, columns=True).scalar()
        if ordinal % prune_every(keep) == 0:
            self._run(_PRUNE_LOG, {WS_PARAM: self._ws, "b_upto": ordinal - keep}, fetch=False)

    def list_log(self, limit: int) -> Sequence[LogEntry]:
        """Newest first."""
        if limit <= 0:
            return []
        rows = self._conn.execute(_LIST_LOG, {WS_PARAM: self._ws, "b_limit": limit})
        return [LOG_ENTRY.from_row(r) for r in rows]


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
#: An outcome never changes a mail already recorded ``sent`` (:meth:`Storage.finish_mail`).
_FINISH_MAIL = OUTBOX.update().where(
    in_workspace(OUTBOX), OUTBOX.c.id == bindparam("b_id"), OUTBOX.c.status != "sent"
)


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
    return sorted((MAIL.from_row(r) for r in rows), key=lambda m: (m.created_at, m.id))


def finish_mails(conn: Connection, mails: Sequence[OutboxMail]) -> None:
    """Store the outcomes of delivery attempts of claimed mails (one ``UPDATE`` executed with
    the parameters of each)."""
    conn.execute(
        _FINISH_MAIL,
        [
            {
                WS_PARAM: mail.workspace_id,
                "b_id": mail.id,
                "status": mail.status,
                "attempts": mail.attempts,
                "sent_at": mail.sent_at,
                "last_error": mail.last_error,
                "next_attempt_at": mail.next_attempt_at,
            }
            for mail in mails
        ],
    )
