"""A small, versioned migration runner.

The database records every applied step in ``schema_version``. :func:`migrate` applies the
missing steps of :data:`MIGRATIONS` in order, each in its own transaction together with its
``schema_version`` row, so a crash leaves the database at a step boundary and re-running is
safe (opening an up-to-date database applies nothing).

A step is a function taking a :class:`~sqlalchemy.engine.Connection`. Steps are append-only:
never edit a released step; add a new one (``ALTER TABLE ...``, new indexes, backfills).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from attrs import frozen
from sqlalchemy import Connection, Engine, Table, bindparam, exists, func, inspect, literal, select

from scimcore._json import loads
from scimcore.storage import TOKEN_DEAD, card_name

from .oauth_tables import (
    OAUTH_ACCESS_TOKENS,
    OAUTH_ASSERTION_IDS,
    OAUTH_CLIENT_FEDERATIONS,
    OAUTH_CLIENT_SECRETS,
    OAUTH_CLIENTS,
    OAUTH_CODES,
    OAUTH_GRANTS,
    OAUTH_REDIRECT_URIS,
    OAUTH_REFRESH_TOKENS,
)
from .planner_stats import GROUP_STATS, USER_STATS, pin_sqlite_statistics, sqlite_statistics
from .tables import (
    ACTIVATION_LINKS,
    ADMINS,
    GROUP_MEMBERS,
    GROUPS,
    IMAGES,
    LOG,
    OUTBOX,
    PEOPLE,
    RATE_BUCKETS,
    RULES,
    SCHEMA_VERSION,
    SETTINGS,
    TEMPLATES,
    TOKEN_TOMBSTONES,
    TOKENS,
    USER_COUNTS,
    USER_EMAILS,
    USERS,
    WORKSPACES,
)

__all__ = ["MIGRATIONS", "Migration", "SchemaTooNewError", "current_version", "migrate"]


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer scimcore than this one: nothing is changed."""


@frozen
class Migration:
    """One step: the version it brings the database to, a description and the change."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    for table in (WORKSPACES, ADMINS, TOKENS, USERS, USER_EMAILS):
        table.create(conn)


def _v2_product(conn: Connection) -> None:
    """The product (R3-R9): people and cards, settings, templates, rules, outbox, log.

    Existing users get no ``people`` row: the core adopts them on their next update.
    """
    for table in (PEOPLE, SETTINGS, TEMPLATES, RULES, OUTBOX, LOG):
        table.create(conn)


def _v3_counts_and_stats(conn: Connection) -> None:
    """``user_counts`` (filled from ``users``) and, on SQLite, pinned planner statistics
    (:mod:`.planner_stats`)."""
    USER_COUNTS.create(conn)
    conn.execute(
        USER_COUNTS.insert().from_select(
            ["workspace_id", "n"],
            select(USERS.c.workspace_id, func.count()).group_by(USERS.c.workspace_id),
        )
    )
    pin_sqlite_statistics(conn, USER_STATS)


def _v4_drop_people_name_index(conn: Connection) -> None:
    """Drop the index of ``people`` on ``(workspace_id, user_name_folded)``: no query used it,
    and every create and rename paid for it (a B-tree page more in each write's ``COMMIT``)."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_people_workspace_id_user_name_folded")


#: The indexes version 5 replaced: sort keys of folded text, and ``last_modified`` alone.
_V5_DROPPED_INDEXES = (
    "ix_users_workspace_id_created_key_seq",
    "ix_users_workspace_id_last_modified_key_seq",
    "ix_users_workspace_id_last_modified",
)


def _v5_chronological_meta(conn: Connection) -> None:
    """``meta.created`` and ``meta.lastModified`` sort chronologically, on the date-time columns
    that filters already compare: one index ``(workspace_id, column, seq)`` each serves both,
    where there were three indexes and two columns of folded text (every PATCH rewrote two
    index entries for ``lastModified``)."""
    for name in _V5_DROPPED_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
    for index in USERS.indexes:
        if [c.name for c in index.columns] in (
            ["workspace_id", "created", "seq"],
            ["workspace_id", "last_modified", "seq"],
        ):
            index.create(conn, checkfirst=True)
    present = {column["name"] for column in inspect(conn).get_columns(USERS.name)}
    for column in ("created_key", "last_modified_key"):
        if column in present:
            conn.exec_driver_sql(f"ALTER TABLE {USERS.name} DROP COLUMN {column}")
    pin_sqlite_statistics(conn, USER_STATS)


def _add_missing_columns(conn: Connection, table: Table, names: Sequence[str]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for the columns of ``table`` (as :mod:`.tables` declares
    them) that the database lacks: a database made at version 1 or 2 from today's table
    definitions has them already."""
    present = {column["name"] for column in inspect(conn).get_columns(table.name)}
    for name in names:
        if name not in present:
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")


def _backfill_people_search(conn: Connection, batch: int = 1000) -> None:
    """Fill ``people.email_folded`` and ``name_folded`` of the people stored before version 6
    (what a people search matches: :func:`scimcore.storage.search_texts`)."""
    keys = select(PEOPLE.c.workspace_id, PEOPLE.c.id, PEOPLE.c.email, PEOPLE.c.card).order_by(
        PEOPLE.c.workspace_id, PEOPLE.c.id
    )
    update = (
        PEOPLE.update()
        .where(PEOPLE.c.workspace_id == bindparam("b_ws"), PEOPLE.c.id == bindparam("b_id"))
        .values(email_folded=bindparam("b_email"), name_folded=bindparam("b_name"))
    )
    rows = conn.execute(keys).all()
    for start in range(0, len(rows), batch):
        params = []
        for row in rows[start : start + batch]:
            name = card_name(loads(row.card))
            params.append(
                {
                    "b_ws": row.workspace_id,
                    "b_id": row.id,
                    "b_email": row.email.casefold() if row.email else None,
                    "b_name": name.casefold() if name is not None else None,
                }
            )
        conn.execute(update, params)


def _v6_console(conn: Connection) -> None:
    """The console (issue 17): admins' password hashes and token tombstones. Tokens whose
    admin is inactive (deactivated before tombstones existed) are buried as dead now, so that
    re-adding their admin cannot revive them (R2.5)."""
    _add_missing_columns(conn, ADMINS, ["password_hash"])
    _add_missing_columns(conn, PEOPLE, ["email_folded", "name_folded", "activated_at"])
    _backfill_people_search(conn)
    for index in PEOPLE.indexes:
        index.create(conn, checkfirst=True)
    TOKEN_TOMBSTONES.create(conn, checkfirst=True)
    IMAGES.create(conn, checkfirst=True)
    ACTIVATION_LINKS.create(conn, checkfirst=True)
    pin_sqlite_statistics(conn, USER_STATS)
    orphaned = ~exists().where(  # no active admin of that e-mail in the token's workspace
        ADMINS.c.workspace_id == TOKENS.c.workspace_id,
        ADMINS.c.email_key == func.lower(TOKENS.c.created_by),
        ADMINS.c.active.is_(True),
    )
    columns = [c.name for c in TOKENS.c]
    conn.execute(
        TOKEN_TOMBSTONES.insert().from_select(
            [*columns, "state", "dead_reason"],
            select(
                *TOKENS.c,
                literal(TOKEN_DEAD).label("state"),
                literal("admin deactivated").label("dead_reason"),
            ).where(orphaned),
        )
    )
    conn.execute(TOKENS.delete().where(orphaned))


def _v7_groups(conn: Connection) -> None:
    """Groups (R5.3) and their memberships, one row per (group, member)."""
    for table in (GROUPS, GROUP_MEMBERS):
        table.create(conn)


def _v8_rate_buckets(conn: Connection) -> None:
    """A token bucket per workspace for the rate limit (issue #22; used on PostgreSQL).
    PostgreSQL: ``UNLOGGED``, so taking a token writes no WAL and waits for no flush; a crash
    empties the table, which only gives every workspace a full bucket again."""
    RATE_BUCKETS.create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ALTER TABLE {RATE_BUCKETS.name} SET UNLOGGED")


def _v9_oauth_clients(conn: Connection) -> None:
    """OAuth 2.0 clients, their secrets and access tokens (issue 20)."""
    for table in (OAUTH_CLIENTS, OAUTH_CLIENT_SECRETS, OAUTH_ACCESS_TOKENS):
        table.create(conn, checkfirst=True)


def _v10_oauth_federation(conn: Connection) -> None:
    """Federated identities of OAuth clients and the used assertion ids (issue 20)."""
    for table in (OAUTH_CLIENT_FEDERATIONS, OAUTH_ASSERTION_IDS):
        table.create(conn, checkfirst=True)


def _v11_authorization_code(conn: Connection) -> None:
    """The authorization-code grant (issue 20): redirect URIs, approvals (grants), their codes
    and refresh tokens."""
    for table in (OAUTH_REDIRECT_URIS, OAUTH_GRANTS, OAUTH_CODES, OAUTH_REFRESH_TOKENS):
        table.create(conn, checkfirst=True)


def _v12_group_statistics(conn: Connection) -> None:
    """SQLite: pinned planner statistics for ``groups`` and ``group_members``
    (:data:`.planner_stats.GROUP_STATS`); PostgreSQL has measured ones, nothing is done."""
    pin_sqlite_statistics(conn, GROUP_STATS)


def _v13_fewer_people_indexes(conn: Connection) -> None:
    """Two people index entries fewer per write: seats are counted from the Team Cards index,
    which has the state columns (the seats index ``(workspace_id, active, deprovisioned)``
    goes), and the e-mail index holds only e-mails other than the user name (rebuilt). On
    SQLite the people's planner figures stay what they were, pinned or measured."""
    figures = sqlite_statistics(conn, PEOPLE.name)
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_people_workspace_id_active_deprovisioned")
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_people_workspace_id_email_folded")
    for index in PEOPLE.indexes:
        index.create(conn, checkfirst=True)
    pin_sqlite_statistics(conn, {PEOPLE.name: figures})


#: Every step, in order; versions are 1, 2, 3, ...
MIGRATIONS: Sequence[Migration] = (
    Migration(1, "workspaces, admins, tokens, users, user_emails", _v1_initial),
    Migration(2, "people, settings, templates, rules, outbox, log", _v2_product),
    Migration(3, "user_counts; pinned SQLite planner statistics", _v3_counts_and_stats),
    Migration(
        4,
        "drop the unused people (workspace_id, user_name_folded) index",
        _v4_drop_people_name_index,
    ),
    Migration(
        5,
        "meta.created and meta.lastModified sorted chronologically, one index each",
        _v5_chronological_meta,
    ),
    Migration(
        6,
        "the console: admin passwords, token tombstones, people search and activation",
        _v6_console,
    ),
    Migration(7, "groups and group_members", _v7_groups),
    Migration(8, "rate_buckets: the rate limit's token bucket per workspace", _v8_rate_buckets),
    Migration(9, "OAuth 2.0 clients, their secrets and access tokens", _v9_oauth_clients),
    Migration(
        10,
        "federated identities of OAuth clients and used client assertion ids",
        _v10_oauth_federation,
    ),
    Migration(
        11,
        "OAuth authorization-code grant: redirect URIs, grants, codes, refresh tokens",
        _v11_authorization_code,
    ),
    Migration(
        12, "pinned SQLite planner statistics for groups and group_members", _v12_group_statistics
    ),
    Migration(
        13,
        "people: seats counted from the Team Cards index; e-mails other than the user name indexed",
        _v13_fewer_people_indexes,
    ),
)

_LOCK_KEY = zlib.crc32(b"scimcore.schema_version")


def current_version(conn: Connection) -> int:
    """The highest applied version, 0 for an empty database."""
    if not conn.dialect.has_table(conn, SCHEMA_VERSION.name):
        return 0
    versions = conn.execute(select(SCHEMA_VERSION.c.version)).scalars().all()
    return max(versions, default=0)


def _lock(conn: Connection) -> None:
    """Serialise concurrent migrators (SQLite: the write lock taken by ``BEGIN IMMEDIATE``)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")


def migrate(engine: Engine, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to the last step of ``migrations``; return the resulting version.

    Raises ``RuntimeError`` if the database is newer than this code (a downgrade).
    """
    expected = list(range(1, len(migrations) + 1))
    if [m.version for m in migrations] != expected:
        raise ValueError("migration versions must be 1, 2, 3, ... in order")
    with engine.connect() as conn:
        conn.execution_options(scimcore_begin="IMMEDIATE")
        with conn.begin():
            _lock(conn)
            if not conn.dialect.has_table(conn, SCHEMA_VERSION.name):
                SCHEMA_VERSION.create(conn)
        version = 0
        for step in migrations:
            with conn.begin():
                _lock(conn)
                version = current_version(conn)
                if step.version <= version:
                    continue
                step.apply(conn)
                conn.execute(
                    SCHEMA_VERSION.insert().values(
                        version=step.version,
                        description=step.description,
                        applied_at=datetime.now(timezone.utc),
                    )
                )
                version = step.version
        with conn.begin():
            version = current_version(conn)
    if version > len(migrations):
        raise SchemaTooNewError(
            f"the database schema is at version {version}, newer than this code "
            f"({len(migrations)}); upgrade scimcore"
        )
    return version
