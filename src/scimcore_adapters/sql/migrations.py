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
from sqlalchemy import Connection, Engine, select

from .tables import (
    ADMINS,
    LOG,
    OUTBOX,
    PEOPLE,
    RULES,
    SCHEMA_VERSION,
    SETTINGS,
    TEMPLATES,
    TOKENS,
    USER_EMAILS,
    USERS,
    WORKSPACES,
)

__all__ = ["MIGRATIONS", "Migration", "current_version", "migrate"]


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


#: Every step, in order; versions are 1, 2, 3, ...
MIGRATIONS: Sequence[Migration] = (
    Migration(1, "workspaces, admins, tokens, users, user_emails", _v1_initial),
    Migration(2, "people, settings, templates, rules, outbox, log", _v2_product),
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
        raise RuntimeError(
            f"the database schema is at version {version}, newer than this code "
            f"({len(migrations)}); upgrade scimcore"
        )
    return version
