"""The product part of the SQL storage (R3-R9): people, settings, templates, rules, outbox, log.

:class:`ProductStore` holds the per-workspace methods of :class:`~scimcore.storage.UserStore`;
:class:`~.storage.SqlUserStore` inherits them, so they run on the operation's connection, in the
same transaction as the user writes (a user, their card and their activation mail are committed
together or not at all, R3.6). Each method is one indexed statement; ``add_log`` adds a pruning
``DELETE`` on a fraction of calls (:func:`prune_every`).

:func:`claim_mail` and :func:`finish_mail` work across workspaces for the delivery worker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, false, func, select, true
from sqlalchemy.dialects import postgresql, sqlite

from scimcore.storage import LogEntry, OutboxMail, Person, Settings
from scimcore.templates import Rule, Template

from .tables import LOG, OUTBOX, PEOPLE, RULES, SETTINGS, TEMPLATES

__all__ = ["PRUNE_EVERY_MAX", "ProductStore", "claim_mail", "finish_mail", "prune_every", "upsert"]

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


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def upsert(conn: Connection, table: Table, keys: Sequence[str], values: Mapping[str, Any]) -> None:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE``: one atomic statement on both engines."""
    rest = [k for k in values if k not in keys]
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(table).values(**values)
        conn.execute(
            pg.on_conflict_do_update(
                index_elements=list(keys), set_={k: pg.excluded[k] for k in rest}
            )
        )
    else:
        lite = sqlite.insert(table).values(**values)
        conn.execute(
            lite.on_conflict_do_update(
                index_elements=list(keys), set_={k: lite.excluded[k] for k in rest}
            )
        )


def _insert_unless(
    conn: Connection, table: Table, keys: Sequence[str], values: Mapping[str, Any]
) -> bool:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING``; ``False`` if a row with those
    keys exists (a returned row is the only portable signal: ``rowcount`` is not)."""
    key = table.c[keys[0]]
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(table).values(**values)
        result = conn.execute(pg.on_conflict_do_nothing(index_elements=list(keys)).returning(key))
    else:
        lite = sqlite.insert(table).values(**values)
        result = conn.execute(lite.on_conflict_do_nothing(index_elements=list(keys)).returning(key))
    return result.first() is not None


def _person(row: Any) -> Person:
    return Person(
        id=row.id,
        user_name=row.user_name,
        email=row.email,
        active=row.active,
        deprovisioned=row.deprovisioned,
        card=json.loads(row.card),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


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


_MAIL_COLUMNS = [c for c in OUTBOX.c if c.name != "seq"]
_LOG_COLUMNS = [c for c in LOG.c if c.name not in ("seq", "ordinal", "workspace_id")]


class ProductStore:
    """The product methods of a :class:`~scimcore.storage.UserStore` over one connection."""

    _conn: Connection
    _ws: str

    # --- people --------------------------------------------------------------------------------

    def get_person(self, person_id: str) -> Person | None:
        row = self._conn.execute(
            select(PEOPLE).where(PEOPLE.c.workspace_id == self._ws, PEOPLE.c.id == person_id)
        ).first()
        return _person(row) if row is not None else None

    def save_person(self, person: Person) -> None:
        """Insert or update the person with this ``id``."""
        upsert(
            self._conn,
            PEOPLE,
            ("workspace_id", "id"),
            {
                "workspace_id": self._ws,
                "id": person.id,
                "user_name": person.user_name,
                "user_name_folded": person.user_name.casefold(),
                "email": person.email,
                "active": person.active,
                "deprovisioned": person.deprovisioned,
                "card": _json(person.card),
                "created_at": person.created_at,
                "updated_at": person.updated_at,
            },
        )

    def list_people(self) -> Sequence[Person]:
        """Every person of the workspace, deprovisioned ones included, oldest first."""
        rows = self._conn.execute(
            select(PEOPLE)
            .where(PEOPLE.c.workspace_id == self._ws)
            .order_by(PEOPLE.c.created_at, PEOPLE.c.id)
        )
        return [_person(r) for r in rows]

    def count_seats(self) -> int:
        """People who are active and not deprovisioned (R5.1), from the seats index."""
        count: int = self._conn.execute(
            select(func.count())
            .select_from(PEOPLE)
            .where(
                PEOPLE.c.workspace_id == self._ws,
                PEOPLE.c.active == true(),
                PEOPLE.c.deprovisioned == false(),
            )
        ).scalar_one()
        return count

    # --- settings ------------------------------------------------------------------------------

    def get_settings(self) -> Settings:
        row = self._conn.execute(
            select(SETTINGS.c.activation_email, SETTINGS.c.mapping).where(
                SETTINGS.c.workspace_id == self._ws
            )
        ).first()
        if row is None:
            return Settings()
        mapping = json.loads(row.mapping) if row.mapping is not None else None
        return Settings(activation_email=row.activation_email, mapping=mapping)

    def save_settings(self, settings: Settings) -> None:
        upsert(
            self._conn,
            SETTINGS,
            ("workspace_id",),
            {
                "workspace_id": self._ws,
                "activation_email": settings.activation_email,
                "mapping": _json(settings.mapping) if settings.mapping is not None else None,
            },
        )

    # --- templates and rules -------------------------------------------------------------------

    def list_templates(self) -> Sequence[Template]:
        """Templates by name (code-point order)."""
        rows = self._conn.execute(
            select(TEMPLATES.c.name, TEMPLATES.c.fields)
            .where(TEMPLATES.c.workspace_id == self._ws)
            .order_by(TEMPLATES.c.name)
        )
        return [Template(r.name, json.loads(r.fields)) for r in rows]

    def save_template(self, template: Template) -> None:
        """Insert or update the template with this name."""
        upsert(
            self._conn,
            TEMPLATES,
            ("workspace_id", "name"),
            {
                "workspace_id": self._ws,
                "name": template.name,
                "fields": _json(dict(template.fields)),
            },
        )

    def delete_template(self, name: str) -> bool:
        result = self._conn.execute(
            delete(TEMPLATES).where(TEMPLATES.c.workspace_id == self._ws, TEMPLATES.c.name == name)
        )
        return bool(result.rowcount)

    def list_rules(self) -> Sequence[Rule]:
        """Card Settings rules in ``position`` order (ties by ``id``)."""
        rows = self._conn.execute(
            select(RULES.c.id, RULES.c.filter, RULES.c.template, RULES.c.position)
            .where(RULES.c.workspace_id == self._ws)
            .order_by(RULES.c.position, RULES.c.id)
        )
        return [Rule(r.id, r.filter, r.template, r.position) for r in rows]

    def save_rule(self, rule: Rule) -> None:
        upsert(
            self._conn,
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
        result = self._conn.execute(
            delete(RULES).where(RULES.c.workspace_id == self._ws, RULES.c.id == rule_id)
        )
        return bool(result.rowcount)

    # --- outbox --------------------------------------------------------------------------------

    def enqueue_mail(self, mail: OutboxMail) -> bool:
        """Queue a mail; ``False`` (and nothing queued) if its ``dedupe_key`` was used before in
        this workspace. The unique index decides, so concurrent enqueues have one winner."""
        return _insert_unless(
            self._conn,
            OUTBOX,
            ("workspace_id", "dedupe_key"),
            {
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
            },
        )

    def list_outbox(self) -> Sequence[OutboxMail]:
        """The workspace's mail, oldest first."""
        rows = self._conn.execute(
            select(*_MAIL_COLUMNS)
            .where(OUTBOX.c.workspace_id == self._ws)
            .order_by(OUTBOX.c.created_at, OUTBOX.c.id)
        )
        return [_mail(r) for r in rows]

    # --- log -----------------------------------------------------------------------------------

    def add_log(self, entry: LogEntry, keep: int) -> None:
        """Append an entry; retention is bounded, not exact: see :func:`prune_every`.

        The entry gets the workspace's next ordinal in the ``INSERT`` itself (an index lookup of
        the current maximum). Every :func:`prune_every`-th ordinal, one range ``DELETE`` on the
        same index removes what is older than the ``keep`` newest.
        """
        ws = LOG.c.workspace_id == self._ws
        next_ordinal = (
            select(func.coalesce(func.max(LOG.c.ordinal), 0) + 1).where(ws).scalar_subquery()
        )
        ordinal: int = self._conn.execute(
            LOG.insert()
            .values(
                workspace_id=self._ws,
                ordinal=next_ordinal,
                id=entry.id,
                at=entry.at,
                operation=entry.operation,
                resource_id=entry.resource_id,
                status=entry.status,
                detail=entry.detail,
                token_id=entry.token_id,
                actor=entry.actor,
            )
            .returning(LOG.c.ordinal)
        ).scalar_one()
        if ordinal % prune_every(keep) == 0:
            self._conn.execute(delete(LOG).where(ws, LOG.c.ordinal <= ordinal - keep))

    def list_log(self, limit: int) -> Sequence[LogEntry]:
        """Newest first."""
        if limit <= 0:
            return []
        rows = self._conn.execute(
            select(*_LOG_COLUMNS)
            .where(LOG.c.workspace_id == self._ws)
            .order_by(LOG.c.ordinal.desc(), LOG.c.seq.desc())
            .limit(limit)
        )
        return [_log_entry(r) for r in rows]


# --- delivery (across workspaces) ----------------------------------------------------------------


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
    due = (
        select(OUTBOX.c.seq)
        .where(
            OUTBOX.c.status.in_(("pending", "sending")),
            OUTBOX.c.next_attempt_at <= now,
        )
        .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(
        OUTBOX.update()
        .where(OUTBOX.c.seq.in_(due))
        .values(status="sending", next_attempt_at=lease_until)
        .returning(*_MAIL_COLUMNS)
    ).all()
    return sorted((_mail(r) for r in rows), key=lambda m: (m.created_at, m.id))


def finish_mail(conn: Connection, mail: OutboxMail) -> None:
    """Store the outcome of a delivery attempt of a claimed mail."""
    conn.execute(
        OUTBOX.update()
        .where(OUTBOX.c.workspace_id == mail.workspace_id, OUTBOX.c.id == mail.id)
        .values(
            status=mail.status,
            attempts=mail.attempts,
            sent_at=mail.sent_at,
            last_error=mail.last_error,
            next_attempt_at=mail.next_attempt_at,
        )
    )
