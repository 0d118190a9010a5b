"""The storage contract and SQL-specific behaviour on SQLite (a real file) and PostgreSQL.

PostgreSQL tests need ``SCIMCORE_TEST_POSTGRES_URL`` (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and are skipped, with that reason,
when it is unset. Each PostgreSQL test runs in its own, uniquely named schema, dropped after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from sqlalchemy import ColumnElement, Select, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from scimcore.errors import UniquenessError
from scimcore.filters import compile_filter
from scimcore.storage import Settings, SortSpec, Storage, Workspace
from scimcore.templates import Rule, Template
from scimcore.testing._records import REGISTRY, T0, entry, mail, person, user, ws
from scimcore.testing._storage_contract import StorageContract
from scimcore_adapters.cli import main as cli_main
from scimcore_adapters.sql import (
    MIGRATIONS,
    GroupCommitError,
    SchemaTooNewError,
    SqlStorage,
    create_storage,
    current_version,
    migrate,
)
from scimcore_adapters.sql.compiler import order_by
from scimcore_adapters.sql.planner_stats import USER_STATS
from scimcore_adapters.sql.product import prune_every
from scimcore_adapters.sql.rows import email_rows as _email_rows
from scimcore_adapters.sql.rows import user_row as _user_row
from scimcore_adapters.sql.tables import (
    LOG,
    PEOPLE,
    SCHEMA_VERSION,
    USER_EMAILS,
    USERS,
    WORKSPACES,
)
from scimcore_adapters.sql.transactions import SqliteTransactions
from tests.conftest import NO_POSTGRES, POSTGRES_ENV, joined, postgres_schema_url, wait_until


def sqlite_tx(storage: SqlStorage) -> SqliteTransactions:
    """The SQLite transaction engine of ``storage`` (the tests below look at its state)."""
    transactions = storage.transactions
    assert isinstance(transactions, SqliteTransactions)
    return transactions


@contextmanager
def opened(url: str) -> Iterator[SqlStorage]:
    storage = SqlStorage(url)
    try:
        yield storage
    finally:
        storage.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'scim.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


class TestSqliteStorage(StorageContract):
    @pytest.fixture
    def storage(self, sqlite_url: str) -> Iterator[SqlStorage]:
        with opened(sqlite_url) as storage:
            yield storage


@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=NO_POSTGRES)
class TestPostgresStorage(StorageContract):
    @pytest.fixture
    def storage(self, postgres_url: str) -> Iterator[SqlStorage]:
        with opened(postgres_url) as storage:
            yield storage


# --- migrations --------------------------------------------------------------------------------


def test_migrates_from_empty_and_reopens_idempotently(any_url: str) -> None:
    with opened(any_url) as first:
        assert first.schema_version == len(MIGRATIONS)
        w = ws(first)
        with first.users(w.id) as store:
            store.insert(user(1))
        tables = set(inspect(first.engine).get_table_names())
        assert {
            "schema_version",
            "workspaces",
            "admins",
            "tokens",
            "users",
            "user_emails",
            "people",
            "settings",
            "templates",
            "rules",
            "outbox",
            "log",
        } <= tables
    for _ in range(2):
        with opened(any_url) as again:
            assert again.schema_version == len(MIGRATIONS)
            with again.engine.connect() as conn:
                assert current_version(conn) == len(MIGRATIONS)
                rows = conn.execute(select(SCHEMA_VERSION.c.version)).scalars().all()
                assert sorted(rows) == list(range(1, len(MIGRATIONS) + 1))
            with again.users("ws-acme") as store:
                assert store.get(user(1)["id"]) == user(1)


def test_migrates_a_version_1_database_keeping_its_data(any_url: str) -> None:
    engine = create_engine(any_url)
    try:
        assert migrate(engine, MIGRATIONS[:1]) == 1
        with engine.begin() as conn:
            conn.execute(WORKSPACES.insert().values(id="ws-acme", slug="acme", created_at=T0))
            # rows as version 1 wrote them (the current store also keeps user_counts)
            old = user(1, emails=[{"value": "a@x"}])
            conn.execute(
                USERS.insert().values(workspace_id="ws-acme", id=old["id"], **_user_row(old))
            )
            conn.execute(USER_EMAILS.insert(), _email_rows("ws-acme", old))
        assert "people" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with opened(any_url) as storage:
        assert storage.schema_version == len(MIGRATIONS) >= 2
        with storage.engine.connect() as conn:
            rows = conn.execute(select(SCHEMA_VERSION.c.version)).scalars().all()
            assert sorted(rows) == list(range(1, len(MIGRATIONS) + 1))
        shared: Storage = storage
        assert shared.get_workspace("acme") is not None
        with shared.users("ws-acme") as store:
            assert store.get(user(1)["id"]) == user(1, emails=[{"value": "a@x"}])
            email = compile_filter('emails.value eq "A@X"', REGISTRY)
            assert store.query(email, None, 1, 10).total == 1
            assert store.query(None, None, 1, 0).total == 1  # user_counts filled by step 3
            # the product tables exist and start empty
            assert store.list_people() == [] and store.get_settings() == Settings()
            store.save_person(person(1))
            assert store.enqueue_mail(mail(1, "ws-acme", "activation:1")) is True
            store.add_log(entry(1), keep=10)
        with shared.users("ws-acme") as store:
            assert store.list_people() == [person(1)]
            assert len(store.list_outbox()) == 1 and len(store.list_log(10)) == 1


def test_migration_4_drops_the_unused_people_name_index_keeping_people(any_url: str) -> None:
    """A version-3 database (people indexed on ``user_name_folded``, as version 3 created
    them) opens at the current version without that index, its people intact."""
    name = "ix_people_workspace_id_user_name_folded"
    ann = person(1)
    engine = create_engine(any_url)
    try:
        assert migrate(engine, MIGRATIONS[:3]) == 3
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE INDEX {name} ON people (workspace_id, user_name_folded)")
            conn.execute(WORKSPACES.insert().values(id="ws-acme", slug="acme", created_at=T0))
            row = {k: getattr(ann, k) for k in ("id", "user_name", "email", "active")}
            conn.execute(
                PEOPLE.insert().values(
                    workspace_id="ws-acme",
                    user_name_folded=ann.user_name.casefold(),
                    deprovisioned=ann.deprovisioned,
                    card=json.dumps(ann.card),
                    created_at=ann.created_at,
                    updated_at=ann.updated_at,
                    **row,
                )
            )
        assert name in {ix["name"] for ix in inspect(engine).get_indexes("people")}
    finally:
        engine.dispose()
    with opened(any_url) as storage:
        assert storage.schema_version == len(MIGRATIONS) >= 4
        indexes = {ix["name"] for ix in inspect(storage.engine).get_indexes("people")}
        assert name not in indexes
        assert "ix_people_workspace_id_user_name_folded_id_active_deprovisioned" in indexes
        with storage.users("ws-acme") as store:
            assert store.list_people() == [ann]
            assert store.count_seats() == 1


def test_migration_13_counts_seats_without_their_index_and_indexes_other_emails(
    any_url: str,
) -> None:
    """A version-12 database (a seats index, every e-mail in the e-mail index, as version 12
    made them) opens at the current version without the seats index; seats, states and
    e-mail searches answer as before, for e-mails that are the user name and for others."""
    seats, email = (
        "ix_people_workspace_id_active_deprovisioned",
        "ix_people_workspace_id_email_folded",
    )
    people = [
        person(1),  # e-mail = user name
        person(2, email="Boss@Corp.test"),
        person(3, email=None, active=False),
        person(4, deprovisioned=True),
    ]
    engine = create_engine(any_url)
    try:
        assert migrate(engine, MIGRATIONS[:12]) == 12
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP INDEX {email}")
            conn.exec_driver_sql(f"CREATE INDEX {email} ON people (workspace_id, email_folded)")
            conn.exec_driver_sql(
                f"CREATE INDEX {seats} ON people (workspace_id, active, deprovisioned)"
            )
            if any_url.startswith("sqlite"):  # their figures, pinned by version 6
                for index, figure in (
                    (email, "1000000 100000 1"),
                    (seats, "1000000 100000 50000 30000"),
                ):
                    conn.exec_driver_sql(
                        "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('people', ?, ?)",
                        (index, figure),
                    )
            conn.execute(WORKSPACES.insert().values(id="ws-acme", slug="acme", created_at=T0))
            for p in people:
                conn.execute(
                    PEOPLE.insert().values(
                        workspace_id="ws-acme",
                        id=p.id,
                        user_name=p.user_name,
                        user_name_folded=p.user_name.casefold(),
                        email=p.email,
                        email_folded=p.email.casefold() if p.email else None,
                        active=p.active,
                        deprovisioned=p.deprovisioned,
                        card=json.dumps(p.card),
                        created_at=p.created_at,
                        updated_at=p.updated_at,
                    )
                )
    finally:
        engine.dispose()
    with opened(any_url) as storage:
        assert storage.schema_version == len(MIGRATIONS) >= 13
        indexes = {ix["name"] for ix in inspect(storage.engine).get_indexes("people")}
        assert seats not in indexes and email in indexes
        if any_url.startswith("sqlite"):  # partial, with the figures it had (pinned)
            with storage.engine.connect() as conn:
                (sql,) = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (email,)
                ).one()
                (figure,) = conn.exec_driver_sql(
                    "SELECT stat FROM sqlite_stat1 WHERE idx = ?", (email,)
                ).one()
            assert sql.endswith("WHERE email_folded != user_name_folded")
            assert figure == USER_STATS["people"][email]
            assert seats not in USER_STATS["people"]
        with storage.users("ws-acme") as store:
            assert store.list_people() == people
            assert store.count_seats() == 2
            for search, state, found in [
                ("user1@", None, ["user1"]),
                ("boss@corp", None, ["user2"]),
                ("user2@", None, ["user2"]),
                ("user", "active", ["user1", "user2"]),
                ("user", "inactive", ["user3"]),
                ("user", "deprovisioned", ["user4"]),
                ("nobody", None, []),
            ]:
                total, page = store.page_people(search, state, 0, 10)
                assert [p.user_name.split("@")[0] for p in page] == found, (search, state)
                assert total == len(found)


def test_migration_5_sorts_meta_date_times_on_their_date_time_columns(any_url: str) -> None:
    """A version-4 database (sort keys of folded text in two columns, three indexes for
    meta's date-times) opens at the current version with one index per date-time and no key
    columns, its users intact and sorted chronologically."""
    old_indexes = {
        "ix_users_workspace_id_created_key_seq": "(workspace_id, created_key, seq)",
        "ix_users_workspace_id_last_modified_key_seq": "(workspace_id, last_modified_key, seq)",
        "ix_users_workspace_id_last_modified": "(workspace_id, last_modified)",
    }
    new_indexes = {"ix_users_workspace_id_created_seq", "ix_users_workspace_id_last_modified_seq"}
    early, late = user(1), user(2)
    early["meta"] = {**early["meta"], "lastModified": "2026-01-01T10:00:00+02:00"}  # 08:00Z
    late["meta"] = {**late["meta"], "lastModified": "2026-01-01T09:00:00Z"}
    engine = create_engine(any_url)
    try:
        assert migrate(engine, MIGRATIONS[:4]) == 4
        with engine.begin() as conn:
            for name in new_indexes:  # version 4 had the old shape: rebuild it
                conn.exec_driver_sql(f"DROP INDEX {name}")
            for column in ("created_key", "last_modified_key"):
                conn.exec_driver_sql(f"ALTER TABLE users ADD COLUMN {column} TEXT")
            for name, key in old_indexes.items():
                conn.exec_driver_sql(f"CREATE INDEX {name} ON users {key}")
            conn.execute(WORKSPACES.insert().values(id="ws-acme", slug="acme", created_at=T0))
            for doc in (late, early):
                conn.execute(
                    USERS.insert().values(workspace_id="ws-acme", id=doc["id"], **_user_row(doc))
                )
    finally:
        engine.dispose()
    with opened(any_url) as storage:
        assert storage.schema_version == len(MIGRATIONS) >= 5
        inspector = inspect(storage.engine)
        indexes = {ix["name"] for ix in inspector.get_indexes("users")}
        assert new_indexes <= indexes and not set(old_indexes) & indexes
        columns = {c["name"] for c in inspector.get_columns("users")}
        assert not {"created_key", "last_modified_key"} & columns
        with storage.users("ws-acme") as store:
            sort = SortSpec(("meta", "lastModified"), chronological=True)
            ordered = store.query(None, sort, 1, 10).documents
            assert [d["id"] for d in ordered] == [early["id"], late["id"]]
            store.insert(user(3))  # writes go on without the dropped columns
            assert store.get(user(3)["id"]) == user(3)


def test_refuses_a_newer_database(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with opened(sqlite_url) as storage, storage.engine.begin() as conn:
        conn.execute(
            SCHEMA_VERSION.insert().values(
                version=len(MIGRATIONS) + 1, description="future", applied_at=T0
            )
        )
    with pytest.raises(SchemaTooNewError, match="newer"):
        SqlStorage(sqlite_url)
    # The command says so in one line, and the database is left as it was.
    assert cli_main(["--database-url", sqlite_url, "workspace", "list"]) == 1
    assert "newer than this code" in capsys.readouterr().err
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert current_version(conn) == len(MIGRATIONS) + 1
    finally:
        engine.dispose()


def test_sqlite_pragmas(sqlite_url: str, tmp_path: Path) -> None:
    with opened(sqlite_url) as storage, storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert isinstance(timeout, int) and timeout >= 1000
    with sqlite3.connect(tmp_path / "scim.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_synchronous_setting(tmp_path: Path) -> None:
    """Issue 22: ``synchronous`` is the storage's (NORMAL by default, see docs/decisions.md);
    FULL syncs the log at every COMMIT; another value is refused."""
    for setting, pragma in ((None, 1), ("FULL", 2), ("NORMAL", 1)):
        url = f"sqlite:///{tmp_path / f'sync-{setting}.db'}"
        storage = SqlStorage(url) if setting is None else SqlStorage(url, synchronous=setting)
        try:
            with storage.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == pragma
        finally:
            storage.close()
    with pytest.raises(ValueError, match="synchronous"):
        SqlStorage(f"sqlite:///{tmp_path / 'bad.db'}", synchronous="OFF")


def test_sqlite_writer_connection_keeps_a_larger_page_cache(sqlite_url: str) -> None:
    """The writer connection (every write of the process) keeps ``WRITER_CACHE_KIB`` of pages
    and its savepoints in memory; a reader keeps SQLite's default cache."""
    from scimcore_adapters.sql.engines import WRITER_CACHE_KIB

    with opened(sqlite_url) as storage:
        tx = sqlite_tx(storage)
        with storage.users(ws(storage).id):
            pass
        assert tx._writer is not None and tx._writer.conn is not None
        writer = tx._writer.conn.connection.dbapi_connection
        assert writer is not None
        assert writer.execute("PRAGMA cache_size").fetchone() == (-WRITER_CACHE_KIB,)
        assert writer.execute("PRAGMA temp_store").fetchone() == (2,)  # MEMORY
        with storage.engine.connect() as reader:
            assert reader.exec_driver_sql("PRAGMA cache_size").scalar() == -2000


def test_rejects_unsupported_urls() -> None:
    with pytest.raises(ValueError):
        create_storage("sqlite://")
    with pytest.raises(ValueError):
        create_storage("mysql://x@y/z")


# --- SQL specifics -----------------------------------------------------------------------------


def test_uniqueness_error_keeps_the_transaction_usable(any_url: str) -> None:
    with opened(any_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1, "a@x.test"))
            with pytest.raises(UniquenessError):
                store.insert(user(2, "A@X.TEST"))
            store.insert(user(3, "b@x.test"))
        with storage.users(w.id) as store:
            assert store.query(None, None, 1, 10).total == 2


def test_workspaces_are_isolated(any_url: str) -> None:
    with opened(any_url) as storage:
        a, b = ws(storage, "a"), ws(storage, "b")
        with storage.users(a.id) as store:
            store.insert(user(1, "same@x.test", emails=[{"value": "e@x.test"}]))
        with storage.users(b.id) as store:
            assert store.get(user(1)["id"]) is None
            f = compile_filter('emails.value eq "e@x.test" or userName pr', REGISTRY)
            assert store.query(f, None, 1, 10).total == 0
            assert store.delete(user(1)["id"]) is False
            store.insert(user(1, "same@x.test"))
        with storage.users(a.id) as store:
            assert store.query(None, None, 1, 10).total == 1


def test_not_matches_rows_with_null_columns(any_url: str) -> None:
    """``not (x eq v)`` and ``x ne v`` match users without ``x`` (three-valued logic)."""
    with opened(any_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1, externalId="e1", displayName="One", active=True))
            store.insert(user(2))  # no externalId, displayName, active, emails
            store.insert(user(3, emails=[{"value": "x@y.test"}]))  # email without type
            cases = {
                'not (externalId eq "e1")': [2, 3],
                'externalId ne "e1"': [2, 3],
                "not (active eq true)": [2, 3],
                'not (displayName sw "o")': [2, 3],
                "not (externalId pr)": [2, 3],
                "externalId eq null": [2, 3],
                'not (emails[type eq "work"])': [1, 2, 3],
                'emails[not (type eq "work")]': [3],
                'not (emails.value co "@")': [1, 2],
                'not (not (externalId eq "e1") and active eq true)': [1, 2, 3],
            }
            for text, expected in cases.items():
                f = compile_filter(text, REGISTRY)
                assert store.translate(f).exact, text
                page = store.query(f, None, 1, 10)
                assert [d["id"] for d in page.documents] == [user(n)["id"] for n in expected], text


def test_untranslatable_filters_are_evaluated_in_python(any_url: str) -> None:
    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    with opened(any_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            for n in range(1, 11):
                store.insert(user(n, title=f"t{n % 3}", **{ent: {"department": f"d{n % 2}"}}))
            f = compile_filter(f'title eq "T1" or not ({ent}:department eq "d0")', REGISTRY)
            assert not store.translate(f).exact
            page = store.query(f, SortSpec(("userName",), descending=True), 2, 3)
            expected = sorted(
                (n for n in range(1, 11) if n % 3 == 1 or n % 2 == 1),
                key=lambda n: f"user{n}@x.test",
                reverse=True,
            )
            assert page.total == len(expected)
            assert [d["id"] for d in page.documents] == [user(n)["id"] for n in expected[1:4]]
            by_title = store.query(None, SortSpec(("title",)), 1, 4)
            assert [d["title"] for d in by_title.documents] == ["t0", "t0", "t0", "t1"]


@pytest.mark.parametrize(
    ("text", "plan_fragment"),
    [
        ('userName eq "user5@x.test"', "user_name_folded=?"),
        (
            'externalId eq "e5"',
            "ix_users_workspace_id_external_id (workspace_id=? AND external_id=?)",
        ),
        (
            'emails[type eq "work" and value eq "u5@corp.test"]',
            "(workspace_id=? AND value_folded=?)",
        ),
        ('emails.value eq "u5@corp.test"', "(workspace_id=? AND value_folded=?)"),
    ],
)
def test_lookups_use_an_index_on_sqlite(sqlite_url: str, text: str, plan_fragment: str) -> None:
    with opened(sqlite_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            for n in range(1, 30):
                store.insert(
                    user(
                        n, externalId=f"e{n}", emails=[{"type": "work", "value": f"u{n}@corp.test"}]
                    )
                )
            where = store.translate(compile_filter(text, REGISTRY))
            assert where.exact
            assert [
                d["id"] for d in store.query(compile_filter(text, REGISTRY), None, 1, 5).documents
            ] == [user(5)["id"]]
        plan = explain_sqlite(storage, where.clause)
        assert plan_fragment in plan, plan
        assert "SCAN users" not in plan, plan


def test_first_page_uses_the_insertion_order_index_on_sqlite(sqlite_url: str) -> None:
    with opened(sqlite_url) as storage:
        stmt = (
            select(USERS.c.document)
            .where(USERS.c.workspace_id == "w")
            .order_by(*(order_by(None) or []))
            .limit(10)
        )
        plan = explain_statement(storage, stmt)
        assert "ix_users_workspace_id_seq" in plan and "TEMP B-TREE" not in plan, plan
        stmt = (
            select(USERS.c.document)
            .where(USERS.c.workspace_id == "w")
            .order_by(*(order_by(SortSpec(("userName",))) or []))
            .limit(10)
        )
        plan = explain_statement(storage, stmt)
        assert "SCAN users" not in plan, plan


@pytest.mark.parametrize("attribute", ["created", "lastModified"])
def test_meta_date_times_sort_and_filter_on_one_index_on_sqlite(
    sqlite_url: str, attribute: str
) -> None:
    """One index per meta date-time serves the chronological sort (ascending: no temporary
    B-tree; descending, ties in insertion order: only for the ties, as before version 5) and
    the range filters."""
    column = {"created": "created", "lastModified": "last_modified"}[attribute]
    index = f"ix_users_workspace_id_{column}_seq"
    with opened(sqlite_url) as storage:
        for descending in (False, True):
            sort = SortSpec(("meta", attribute), descending, chronological=True)
            stmt = (
                select(USERS.c.document)
                .where(USERS.c.workspace_id == "w")
                .order_by(*(order_by(sort) or []))
                .limit(10)
            )
            plan = explain_statement(storage, stmt)
            assert index in plan, plan
            assert ("TEMP B-TREE" not in plan) if not descending else ("RIGHT PART" in plan), plan
        ranged = compile_filter(f'meta.{attribute} gt "2026-01-01T00:00:00Z"', REGISTRY)
        with storage.users("w", readonly=True) as store:
            translation = store.translate(ranged)
        assert translation.exact
        plan = explain_sqlite(storage, translation.clause)
        assert index in plan, plan


def explain_sqlite(storage: SqlStorage, clause: ColumnElement[bool]) -> str:
    return explain_statement(storage, select(USERS.c.document).where(clause))


def explain_statement(storage: SqlStorage, stmt: Select[Any]) -> str:
    compiled = stmt.compile(dialect=storage.engine.dialect, compile_kwargs={"literal_binds": True})
    with storage.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
    return "\n".join(str(r[-1]) for r in rows)


# --- the product on SQL ------------------------------------------------------------------------


def test_log_retention_is_bounded_with_documented_slack(sqlite_url: str) -> None:
    keep = 100
    every = prune_every(keep)
    assert prune_every(3) == 1 and prune_every(31) == 1
    assert 1 < every <= keep // 16 and prune_every(10_000) == 64
    with opened(sqlite_url) as storage:
        w = ws(storage)
        counts = []
        for n in range(1, 3 * keep):
            with storage.users(w.id) as store:
                store.add_log(entry(n), keep)
            with storage.engine.connect() as conn:
                counts.append(
                    len(conn.execute(select(LOG.c.seq).where(LOG.c.workspace_id == w.id)).all())
                )
        assert max(counts) == keep + every - 1
        assert min(counts[keep:]) == keep
        with storage.users(w.id) as store:
            newest = store.list_log(keep)
            assert [e.id for e in newest] == [
                entry(n).id for n in range(3 * keep - 1, 2 * keep - 1, -1)
            ]


_PRODUCT_TABLES = "people|settings|templates|rules|outbox|log"


def test_product_statements_use_indexes_on_sqlite(sqlite_url: str) -> None:
    """Every statement of the per-request product methods is an index search, never a scan."""
    with opened(sqlite_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:  # some rows, so that plans are realistic
            for n in range(1, 20):
                store.save_person(person(n))
                store.enqueue_mail(mail(n, w.id, f"activation:{n}"))
                store.add_log(entry(n), keep=5)
        statements: list[tuple[str, Any]] = []

        def record(*args: Any) -> None:
            statements.append((args[2], args[3]))

        event.listen(storage.engine, "before_cursor_execute", record)
        try:
            with storage.users(w.id) as store:
                store.get_settings()
                store.save_settings(Settings(activation_email=True))
                store.list_rules()
                store.save_rule(Rule("r1", 'title eq "x"', "T"))
                store.delete_rule("r0")
                store.list_templates()
                store.save_template(Template("T", {}))
                store.delete_template("U")
                store.get_person(person(1).id)
                store.save_person(person(30))
                store.list_people()
                store.count_seats()
                store.enqueue_mail(mail(30, w.id, "activation:30"))
                store.list_outbox()
                for n in range(30, 40):
                    store.add_log(entry(n), keep=5)
                store.list_log(10)
            claimed = storage.claim_mail(T0 + timedelta(hours=1), T0 + timedelta(hours=2), 5)
            storage.finish_mail(claimed[0])
        finally:
            event.remove(storage.engine, "before_cursor_execute", record)
        checked = 0
        with storage.engine.connect() as conn:
            for statement, parameters in statements:
                if not re.search(rf"\b({_PRODUCT_TABLES})\b", statement):
                    continue
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
                plan = "\n".join(str(r[-1]) for r in rows)
                assert not re.search(rf"SCAN ({_PRODUCT_TABLES})\b", plan), (statement, plan)
                checked += 1
        assert checked >= 25


def test_import_users_is_all_or_nothing(tmp_path: Path) -> None:
    storage = SqlStorage(f"sqlite:///{tmp_path / 'import.db'}")
    try:
        w = ws(storage)
        docs = [user(n, emails=[{"type": "work", "value": f"u{n}@x.test"}]) for n in range(1, 51)]
        storage.import_users(w.id, docs)
        with pytest.raises(UniquenessError):
            storage.import_users(w.id, [user(100), user(101, "USER1@x.test")])
        with storage.users(w.id) as store:
            assert store.query(None, None, 1, 100).total == 50
            assert store.get(user(100)["id"]) is None
            f = compile_filter('emails[type eq "work"].value eq "u7@x.test"', REGISTRY)
            assert [d["id"] for d in store.query(f, None, 1, 10).documents] == [user(7)["id"]]
    finally:
        storage.close()


# --- SQLite: one connection per thread, one writer queue per process ---------------------------


def _dbapi_of(store: Any) -> Any:
    return store._conn.connection.dbapi_connection


def test_sqlite_thread_keeps_one_connection_and_releases_it(sqlite_url: str) -> None:
    import gc
    import threading

    # No background checkpoints: the checkpointer borrows a pool connection now and then, and
    # the pool's count below would catch it mid-checkpoint (a flaky failure on a busy machine).
    storage = SqlStorage(sqlite_url, checkpoint_interval=None)
    with contextlib.closing(storage):
        w = ws(storage)
        with storage.users(w.id) as store:  # the writer connection: kept by the storage
            store.insert(user(1))
        pool = storage.engine.pool
        seen: list[Any] = []
        during: list[int] = []

        def work() -> None:
            with storage.users(w.id, readonly=True) as store:
                assert store.get(user(1)["id"]) is not None
                seen.append(_dbapi_of(store))
            storage.authenticate("no-such-token")
            with storage.users(w.id, one_read=True) as store:
                assert store.get(user(1)["id"]) is not None
                seen.append(_dbapi_of(store))
            during.append(pool.checkedout())  # type: ignore[attr-defined]

        before = pool.checkedout()  # type: ignore[attr-defined]
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        del thread
        gc.collect()
        assert len(seen) == 2 and seen[0] is seen[1]  # one connection for both transactions
        assert during == [before + 1]  # kept between them ...
        assert pool.checkedout() == before  # type: ignore[attr-defined]  # ... and released


def test_sqlite_writes_of_every_thread_run_on_one_connection(sqlite_url: str) -> None:
    """Writers queue for SQLite's one write lock anyway; doing it on one connection keeps its
    page cache valid from one write to the next (another connection's commit would void it)."""
    import threading

    with opened(sqlite_url) as storage:
        w = ws(storage)
        writers: list[Any] = []

        def write(n: int) -> None:
            with storage.users(w.id) as store:
                store.insert(user(n))
                writers.append(_dbapi_of(store))

        threads = [threading.Thread(target=write, args=(n,)) for n in range(1, 4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        write(4)
        assert len(writers) == 4 and all(c is writers[0] for c in writers)
        with storage.users(w.id, readonly=True) as store:  # reads: the thread's own
            assert _dbapi_of(store) is not writers[0]
            assert store.query(None, None, 1, 10).total == 4
        # a read nested in a write: the thread's connection, not the writer
        with storage.users(w.id) as outer, storage.users(w.id, readonly=True) as inner:
            assert _dbapi_of(inner) is not _dbapi_of(outer)
            assert inner.get(user(1)["id"]) is not None


def test_sqlite_nested_blocks_on_one_thread_use_another_connection(sqlite_url: str) -> None:
    with opened(sqlite_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1))
        with storage.users(w.id, readonly=True) as outer:
            with storage.users(w.id, readonly=True) as inner:
                assert _dbapi_of(inner) is not _dbapi_of(outer)
                assert inner.get(user(1)["id"]) == outer.get(user(1)["id"])
            assert storage.get_workspace(w.slug) == w  # a read inside a transaction
        with storage.users(w.id) as store:  # the thread's connection is usable again
            store.insert(user(2))
            assert store.query(None, None, 1, 10).total == 2


def test_sqlite_close_closes_thread_connections(sqlite_url: str) -> None:
    storage = SqlStorage(sqlite_url)
    w = ws(storage)
    with storage.users(w.id) as store:
        store.insert(user(1))
        held = _dbapi_of(store)
    storage.close()
    with pytest.raises(sqlite3.ProgrammingError):  # closed, not just returned to a pool
        held.execute("select 1")


def test_sqlite_writers_of_one_process_queue_in_order(sqlite_url: str) -> None:
    """A second writer waits for the first (no busy error, no lost write) and sees its data."""
    with opened(sqlite_url) as storage:
        w = ws(storage)
        order: list[str] = []
        seen: list[bool] = []

        def second() -> None:
            with storage.users(w.id) as store:
                order.append("second in")
                seen.append(store.get(user(1)["id"]) is not None)
                store.insert(user(2))

        with storage.users(w.id) as store:
            store.insert(user(1))
            thread = _queued_write(storage, second)  # queued behind this transaction
            order.append("first out")
        joined(thread)
        assert order == ["first out", "second in"] and seen == [True]
        with storage.users(w.id, readonly=True) as store:
            assert store.query(None, None, 1, 10).total == 2


def _started(action: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def _finishes(action: Callable[[], object]) -> bool:
    """Run ``action`` in a thread: whether it finished (within a generous bound)."""
    thread = _started(action)
    thread.join(timeout=10)
    return not thread.is_alive()


class _AnnouncedLock:
    """A storage's read-turn lock that announces each thread coming to take it, so that a
    test waits for a reader to be at the lock instead of for some time."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.arrived = threading.Event()

    def __enter__(self) -> object:
        self.arrived.set()
        return self.lock.__enter__()

    def __exit__(self, *exc: object) -> object:
        return self.lock.__exit__(*exc)


def _announce_readers(storage: SqlStorage, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """From now on, set when a thread comes for the read turn (whoever holds the turn now
    releases the lock itself)."""
    tx = sqlite_tx(storage)
    announced = _AnnouncedLock(tx._read_lock)
    monkeypatch.setattr(tx, "_read_lock", announced)
    return announced.arrived


def test_sqlite_reads_take_turns_and_writes_do_not_wait_for_them(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: one read turn per process at a time; a write runs while a read holds its turn."""
    with opened(sqlite_url) as storage:
        w = ws(storage)
        order: list[str] = []

        def read() -> None:
            with storage.read_turn():
                order.append("second reader in")

        def write() -> None:
            with storage.users(w.id) as store:
                store.insert(user(1))
            order.append("writer done")

        with storage.read_turn():
            arrived = _announce_readers(storage, monkeypatch)
            reader = _started(read)
            assert arrived.wait(10)  # the second reader is at the lock this read turn holds
            assert _finishes(write)  # writes queue on their own lock
            order.append("first reader out")
        joined(reader)
        assert order == ["writer done", "first reader out", "second reader in"]
        with storage.users(w.id, readonly=True) as store:
            assert store.get(user(1)["id"]) is not None


def test_read_turns_can_be_turned_off_and_postgres_has_none(any_url: str) -> None:
    """``read_turns=False`` (and PostgreSQL, whose reads wait on the server): reads run side
    by side."""
    storage = SqlStorage(any_url, read_turns=False)
    try:
        with storage.read_turn():
            assert _finishes(lambda: storage.read_turn().__enter__())
    finally:
        storage.close()
    if any_url.startswith("postgresql"):
        with opened(any_url) as storage, storage.read_turn():
            assert _finishes(lambda: storage.read_turn().__enter__())


def test_sqlite_scim_reads_run_in_a_read_turn_and_writes_do_not(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service holds the storage's read turn around a GET (authentication included), not
    around a create."""
    with opened(sqlite_url) as storage:
        send = _scim_sender(storage)
        created = send("POST", "/Users", json.dumps({"userName": "first@x.test"}).encode())
        assert created.status == 201
        uid = json.loads(created.body)["id"]
        answers: dict[str, int] = {}

        def get() -> None:
            answers["get"] = send("GET", f"/Users/{uid}").status

        def create() -> None:
            body = json.dumps({"userName": "second@x.test"}).encode()
            answers["create"] = send("POST", "/Users", body).status

        with storage.read_turn():
            arrived = _announce_readers(storage, monkeypatch)
            getter = _started(get)
            assert arrived.wait(10) and "get" not in answers  # the GET waits for its turn
            assert _finishes(create) and answers["create"] == 201
            assert "get" not in answers
        joined(getter)
        assert answers["get"] == 200


def _statements_of_writer(storage: SqlStorage) -> list[str]:
    """Every statement the writer connection runs from now on (it is opened by a write)."""
    tx = sqlite_tx(storage)
    with storage.users(ws(storage, "tracer").id):
        pass
    assert tx._writer is not None and tx._writer.conn is not None
    seen: list[str] = []
    dbapi = tx._writer.conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.set_trace_callback(seen.append)
    return seen


def _stored(url: str, workspace: Workspace) -> set[str]:
    """The ids committed to the file, read on a connection of its own."""
    path = make_url(url).database
    assert path is not None
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id FROM users WHERE workspace_id = ?", (workspace.id,))
        return {row[0] for row in rows}


@pytest.fixture
def patient_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """A write waiting for its group's COMMIT does not commit the group itself after the
    usual second (the safety net for orphaned groups): on a slow machine it could, and these
    tests count the COMMITs."""
    import scimcore_adapters.sql.transactions as sql_transactions

    monkeypatch.setattr(sql_transactions, "_GROUP_ORPHAN_S", 60.0)


def _queued_write(storage: SqlStorage, action: Callable[[], object]) -> threading.Thread:
    """Start ``action`` (a write) in a thread and return once it is queued for the write lock
    (call with a write of this thread open)."""
    tx = sqlite_tx(storage)
    before = tx._waiting
    thread = _started(action)
    wait_until(lambda: tx._waiting > before, "the write to queue")
    return thread


@pytest.mark.usefixtures("patient_groups")
def test_sqlite_writes_queued_behind_one_another_share_one_commit(sqlite_url: str) -> None:
    """Group commit: a write that ends while another is queued hands it the open transaction
    and returns only once that one has committed both; neither is visible before."""
    with opened(sqlite_url) as storage:
        w = ws(storage)
        seen = _statements_of_writer(storage)
        during: dict[str, object] = {}

        def second() -> None:
            with storage.users(w.id) as store:
                during["sees the first"] = store.get(user(1)["id"]) is not None
                store.insert(user(2))
                during["committed meanwhile"] = _stored(sqlite_url, w)

        with storage.users(w.id) as store:
            store.insert(user(1))
            thread = _queued_write(storage, second)
        thread.join(timeout=10)  # the first block returned: the second one committed both
        assert not thread.is_alive()
        assert during == {"sees the first": True, "committed meanwhile": set()}
        assert _stored(sqlite_url, w) == {user(1)["id"], user(2)["id"]}
        assert [s for s in seen if s in ("COMMIT", "SAVEPOINT scimcore_write")] == [
            "SAVEPOINT scimcore_write",
            "COMMIT",
        ]


@pytest.mark.usefixtures("patient_groups")
def test_sqlite_a_failed_write_of_a_group_undoes_only_itself(sqlite_url: str) -> None:
    with opened(sqlite_url) as storage:
        w = ws(storage)
        failures: list[BaseException] = []

        def failing() -> None:
            try:
                with storage.users(w.id) as store:
                    store.insert(user(2))
                    raise RuntimeError("the second write fails after writing")
            except RuntimeError as exc:
                failures.append(exc)

        with storage.users(w.id) as store:
            store.insert(user(1))
            thread = _queued_write(storage, failing)
        thread.join(timeout=10)
        assert [str(f) for f in failures] == ["the second write fails after writing"]
        assert _stored(sqlite_url, w) == {user(1)["id"]}
        with storage.users(w.id) as store:  # the writer goes on
            store.insert(user(3))
        assert _stored(sqlite_url, w) == {user(1)["id"], user(3)["id"]}


@pytest.mark.usefixtures("patient_groups")
def test_sqlite_a_failed_group_commit_fails_every_write_of_it(sqlite_url: str) -> None:
    """The shared COMMIT fails (a deferred foreign key): the write that ran it raises the
    database's error, the earlier write a GroupCommitError; nothing of either is stored."""
    from sqlalchemy.exc import IntegrityError

    with opened(sqlite_url) as storage:
        w = ws(storage)
        errors: list[BaseException] = []

        def breaks_the_commit() -> None:
            try:
                with storage.users(w.id) as store:
                    store.insert(user(2))
                    dbapi = _dbapi_of(store)
                    dbapi.execute("PRAGMA defer_foreign_keys=ON")
                    dbapi.execute("INSERT INTO user_counts (workspace_id, n) VALUES ('none', 1)")
            except IntegrityError as exc:
                errors.append(exc)

        with pytest.raises(GroupCommitError) as raised, storage.users(w.id) as store:
            store.insert(user(1))
            thread = _queued_write(storage, breaks_the_commit)
        thread.join(timeout=10)
        assert len(errors) == 1 and isinstance(raised.value.__cause__, IntegrityError)
        assert _stored(sqlite_url, w) == set()
        with storage.users(w.id) as store:
            store.insert(user(3))
        assert _stored(sqlite_url, w) == {user(3)["id"]}


@pytest.mark.usefixtures("patient_groups")
def test_sqlite_a_bulk_import_commits_the_open_group_and_runs_alone(sqlite_url: str) -> None:
    with opened(sqlite_url) as storage:
        w = ws(storage)
        seen = _statements_of_writer(storage)
        with storage.users(w.id) as store:
            store.insert(user(1))
            thread = _queued_write(storage, lambda: storage.import_users(w.id, [user(2)]))
        thread.join(timeout=10)
        assert _stored(sqlite_url, w) == {user(1)["id"], user(2)["id"]}
        assert "SAVEPOINT scimcore_write" not in seen
        assert seen.count("COMMIT") == 2


def test_sqlite_a_write_that_cannot_begin_leaves_no_group_open(sqlite_url: str) -> None:
    """Another process holds SQLite's write lock past the busy timeout: the write fails with
    the database's error, no group is left open, and the next write goes through."""
    from sqlalchemy.exc import OperationalError

    with opened(sqlite_url) as storage:
        tx = sqlite_tx(storage)
        w = ws(storage)
        assert tx._writer is not None and tx._writer.conn is not None
        writer = tx._writer.conn.connection.dbapi_connection
        assert writer is not None
        writer.execute("PRAGMA busy_timeout=50")
        path = make_url(sqlite_url).database
        assert path is not None
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(OperationalError), storage.users(w.id) as store:
                store.insert(user(1))
            assert tx._group is None
        finally:
            other.execute("ROLLBACK")
            other.close()
        with storage.users(w.id) as store:
            store.insert(user(2))
        assert _stored(sqlite_url, w) == {user(2)["id"]}


def test_sqlite_group_commit_off_commits_every_write(sqlite_url: str) -> None:
    storage = SqlStorage(sqlite_url, group_commit=False)
    try:
        w = ws(storage)
        seen = _statements_of_writer(storage)
        with storage.users(w.id) as store:
            store.insert(user(1))
            thread = _queued_write(storage, lambda: storage.import_users(w.id, [user(2)]))
            thread2 = _queued_write(storage, lambda: ws(storage, "other"))
        thread.join(timeout=10)
        thread2.join(timeout=10)
        assert seen.count("COMMIT") == 3 and "SAVEPOINT scimcore_write" not in seen
    finally:
        storage.close()


def test_sqlite_a_write_left_waiting_commits_its_group_itself(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: a write hands its group on to a queued thread that never comes (here:
    a miscount); after _GROUP_ORPHAN_S it commits the group itself."""
    import scimcore_adapters.sql.transactions as sql_transactions

    monkeypatch.setattr(sql_transactions, "_GROUP_ORPHAN_S", 0.05)
    with opened(sqlite_url) as storage:
        tx = sqlite_tx(storage)
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1))
            tx._waiting += 1  # a thread that seems queued but never takes the lock
        tx._waiting -= 1
        assert tx._group is None
        assert _stored(sqlite_url, w) == {user(1)["id"]}


@pytest.mark.usefixtures("patient_groups")
def test_sqlite_a_group_whose_connection_is_lost_fails_its_writes(sqlite_url: str) -> None:
    """A writer connection lost with a group open (invalidated, as SQLAlchemy does on a
    disconnect): the waiting writes raise GroupCommitError, never a success for rolled-back
    data, and the next write runs on a new connection."""
    with opened(sqlite_url) as storage:
        tx = sqlite_tx(storage)
        w = ws(storage)
        errors: list[BaseException] = []

        def first() -> None:
            try:
                with storage.users(w.id) as store:
                    store.insert(user(1))
                    tx._waiting += 1  # seems queued: the write hands its group on
            except GroupCommitError as exc:
                errors.append(exc)

        thread = _started(first)
        wait_until(
            lambda: tx._group is not None and tx._group.latch is not None,
            "the first write to hand its group on",
        )
        tx._waiting -= 1
        assert tx._writer is not None and tx._writer.conn is not None
        tx._writer.conn.invalidate()
        with storage.users(w.id) as store:
            store.insert(user(2))
        thread.join(timeout=10)
        assert len(errors) == 1
        assert _stored(sqlite_url, w) == {user(2)["id"]}


def test_sqlite_failed_transaction_leaves_the_thread_connection_usable(sqlite_url: str) -> None:
    with opened(sqlite_url) as storage:
        w = ws(storage)
        with pytest.raises(RuntimeError), storage.users(w.id) as store:
            store.insert(user(1))
            raise RuntimeError("boom")
        with storage.users(w.id) as store:
            assert store.get(user(1)["id"]) is None  # rolled back
            store.insert(user(1))
        with storage.users(w.id, readonly=True) as store:
            assert store.get(user(1)["id"]) is not None


def test_sqlite_statement_listeners_leave_no_transaction_open(sqlite_url: str) -> None:
    """With a ``before_cursor_execute`` listener every statement goes through SQLAlchemy,
    which autobegins; an authentication outside a block must not leave the thread's
    connection holding a transaction (the next write would then wait for itself)."""
    with opened(sqlite_url) as storage:
        w = ws(storage)
        seen: list[str] = []
        event.listen(storage.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        assert storage.authenticate("0" * 32) is None
        assert storage.transactions.thread_connection() is not None  # idle, not in a transaction
        with storage.users(w.id) as store:
            store.insert(user(1))
        with storage.users(w.id, readonly=True) as store:
            assert store.get(user(1)["id"]) is not None
        assert any("FROM tokens" in s for s in seen)
        assert any(s.startswith("INSERT INTO users") for s in seen)


def test_statement_listeners_are_seen_from_the_next_transaction(any_url: str) -> None:
    """A store decides once, when it is made, whether statements go through SQLAlchemy's
    events: a listener attached inside a transaction sees the statements of the next one,
    every one of them; through SQLAlchemy an INSERT's row count still says whether the row
    went in."""
    with opened(any_url) as storage:
        w = ws(storage)
        seen: list[str] = []
        with storage.users(w.id) as store:
            event.listen(storage.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
            store.insert(user(1))
        assert not any(s.startswith("INSERT INTO users") for s in seen)
        with storage.users(w.id) as store:
            store.insert(user(2))  # its row count says it went in (PostgreSQL: it said -1)
            assert store.enqueue_mail(mail(1, w.id, "activation:1")) is True
            assert store.enqueue_mail(mail(2, w.id, "activation:1")) is False
            store.add_log(entry(1), keep=10)
        assert sum(s.startswith("INSERT INTO users") for s in seen) == 1
        assert any(s.startswith("INSERT INTO log") for s in seen)
        with storage.users(w.id, readonly=True) as store:
            assert store.get(user(2)["id"]) == user(2) and len(store.list_outbox()) == 1


def test_sqlite_failed_commit_drops_the_thread_connection(sqlite_url: str) -> None:
    """A COMMIT that fails (here: a deferred foreign key) leaves SQLite's transaction open;
    the connection is dropped (the pool rolls it back), the error is SQLAlchemy's, and the
    thread goes on."""
    from sqlalchemy.exc import IntegrityError

    with opened(sqlite_url) as storage:
        w = ws(storage)
        with pytest.raises(IntegrityError), storage.users(w.id) as store:
            dbapi = _dbapi_of(store)
            store.insert(user(1))
            dbapi.execute("PRAGMA defer_foreign_keys=ON")
            dbapi.execute("INSERT INTO user_counts (workspace_id, n) VALUES ('ws-none', 1)")
        assert not dbapi.in_transaction
        with storage.users(w.id) as store:
            assert store.get(user(1)["id"]) is None  # nothing of the failed unit remains
            store.insert(user(2))
        with storage.users(w.id, readonly=True) as store:
            assert store.query(None, None, 1, 10).total == 1


def test_sqlite_one_read_begins_a_snapshot_only_for_several_statements(sqlite_url: str) -> None:
    """A GET and a ``userName eq`` lookup run one statement and no transaction; a list page,
    which may need a count too, begins its snapshot before its first statement."""
    with opened(sqlite_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            for n in range(1, 4):
                store.insert(user(n))
        name = compile_filter('userName eq "user2@x.test"', REGISTRY)
        with storage.users(w.id, one_read=True) as store:
            assert store.get(user(1)["id"]) is not None
            assert not _dbapi_of(store).in_transaction
        with storage.users(w.id, one_read=True) as store:
            assert store.query(name, None, 1, 100).total == 1
            assert not _dbapi_of(store).in_transaction
        with storage.users(w.id, one_read=True) as store:
            page = store.query(None, None, 1, 2)
            assert (page.total, len(page.documents)) == (3, 2)
            assert _dbapi_of(store).in_transaction
            dbapi = _dbapi_of(store)
        assert not dbapi.in_transaction  # ended with the block
        with storage.users(w.id) as store:  # and the connection writes again
            store.insert(user(4))


def test_updates_write_only_changed_columns_and_stay_findable(any_url: str) -> None:
    """A user read and replaced in one transaction is updated column by column (on SQLite an
    index entry is rewritten for every column an UPDATE names); every index still finds it."""
    with opened(any_url) as storage:
        w = ws(storage)
        seen: list[str] = []
        with storage.users(w.id) as store:
            store.insert(user(1, "ann@x.test", externalId="e1", displayName="Ann"))
            store.insert(user(2, "bob@x.test", externalId="e2", displayName="Bob"))
        event.listen(storage.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        changes: list[dict[str, Any]] = [
            {"title": "Lead"},
            {"userName": "ANNA@x.test"},
            {"externalId": "e1b"},
            {"displayName": "Anna"},
            {"active": False},
            {"emails": [{"value": "anna@x.test", "type": "work"}]},
        ]
        for n, change in enumerate(changes, start=2):
            with storage.users(w.id) as store:
                doc = store.get(user(1)["id"])
                assert doc is not None
                new = {**doc, **change, "meta": {**doc["meta"], "version": f'W/"{n}"'}}
                store.replace(new, doc["meta"]["version"])
        updates = [s.split("WHERE")[0] for s in seen if s.startswith("UPDATE users")]
        assert len(updates) == len(changes)
        sqlite = any_url.startswith("sqlite")
        if sqlite:  # only what changed (PostgreSQL keeps the full update: HOT handles it)
            assert "user_name_folded" not in updates[0] and "external_id" not in updates[0]
            assert "user_name_folded" in updates[1] and "display_name" not in updates[1]
            assert "external_id" in updates[2] and "user_name" not in updates[2]
        with storage.users(w.id, readonly=True) as store:
            for text in (
                'userName eq "anna@x.test"',
                'externalId eq "e1b"',
                'displayName eq "anna"',
                'emails[type eq "work"].value eq "ANNA@x.test"',
                "active eq false",
                'title eq "lead"',
            ):
                page = store.query(compile_filter(text, REGISTRY), None, 1, 10)
                assert [d["id"] for d in page.documents] == [user(1)["id"]], text
            for text in ('userName eq "ann@x.test"', 'externalId eq "e1"', 'displayName eq "Ann"'):
                assert store.query(compile_filter(text, REGISTRY), None, 1, 10).total == 0
            by_name = store.query(None, SortSpec(("displayName",), False, False), 1, 10)
            assert [d["displayName"] for d in by_name.documents] == ["Anna", "Bob"]


def test_people_updates_write_only_changed_columns(sqlite_url: str) -> None:
    with opened(sqlite_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.save_person(person(1))
            store.save_person(person(2))
        seen: list[str] = []
        event.listen(storage.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        with storage.users(w.id) as store:
            before = store.get_person(person(1).id)
            assert before is not None
            store.save_person(attrs.evolve(before, active=False))
            store.save_person(attrs.evolve(before, active=False, user_name="Renamed@x.test"))
        updates = [s.split("WHERE")[0] for s in seen if s.startswith("UPDATE people")]
        assert len(updates) == 2
        assert "active" in updates[0] and "user_name" not in updates[0]
        assert "user_name_folded" in updates[1] and "active" not in updates[1]
        with storage.users(w.id, readonly=True) as store:
            got = store.get_person(person(1).id)
            assert got is not None and (got.active, got.user_name) == (False, "Renamed@x.test")
            assert store.count_seats() == 1
            other = store.get_person(person(2).id)
            assert other is not None and other.active


def test_sqlite_fast_datetime_processors_match_sqlalchemy() -> None:
    """The prepared statements' SQLite date-time conversion writes the text SQLAlchemy writes
    (stored data and ordering stay the same) and reads back the same aware UTC value."""
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from scimcore_adapters.sql.execute import _sqlite_utc_datetime, _sqlite_utc_text
    from scimcore_adapters.sql.tables import UtcDateTime

    dialect = sqlite_dialect.dialect()
    kind = UtcDateTime().dialect_impl(dialect)  # what compiled statements use
    bind = kind.bind_processor(dialect)
    result = kind.result_processor(dialect, None)
    assert bind is not None and result is not None
    plus2 = timezone(timedelta(hours=2))
    values = [
        datetime(2026, 11, 29, 10, 0, 0, tzinfo=timezone.utc),
        datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=plus2),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc),
        datetime(2026, 1, 1, 0, 0, 0, 1),  # naive: taken as UTC
        None,
    ]
    for value in values:
        text = _sqlite_utc_text(value)
        assert text == bind(value)
        assert _sqlite_utc_datetime(text) == result(text)
    assert _sqlite_utc_datetime("2026-11-29T12:00:00+02:00") == datetime(
        2026, 11, 29, 10, 0, tzinfo=timezone.utc
    )


def test_sqlite_fast_boolean_processor_matches_sqlalchemy() -> None:
    """The prepared statements' SQLite boolean parameter binds what SQLAlchemy binds, and
    refuses what it refuses."""
    from sqlalchemy import Boolean
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from scimcore_adapters.sql.execute import _sqlite_boolean

    dialect = sqlite_dialect.dialect()
    bind = Boolean().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    for value in (None, False, True, 0, 1):
        assert _sqlite_boolean(value) == bind(value)
        assert type(_sqlite_boolean(value)) is type(bind(value))
    for bad in ("true", 2, "0"):
        with pytest.raises((TypeError, ValueError)):
            bind(bad)
        with pytest.raises(KeyError):
            _sqlite_boolean(bad)


def test_prepared_parameters_in_order_with_defaults_and_processors() -> None:
    """A prepared statement's DBAPI parameters: in the statement's order, a parameter left out
    takes its default, date-times go through the SQLite conversion, a missing required
    parameter is a ``KeyError`` (nothing is executed with a wrong tuple)."""
    from sqlalchemy import bindparam
    from sqlalchemy.dialects import postgresql as postgresql_dialect
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from scimcore_adapters.sql.execute import prepared

    sqlite = sqlite_dialect.dialect()
    when = datetime(2026, 11, 29, 12, 0, 0, 5, tzinfo=timezone.utc)
    stmt = (
        select(LOG.c.id)
        .where(LOG.c.at > bindparam("b_at", type_=LOG.c.at.type))
        .where(LOG.c.operation == bindparam("b_op", value="create"))
        .where(LOG.c.workspace_id == bindparam("b_ws"))
    )
    prep = prepared(stmt, sqlite)
    assert prep.args({"b_ws": "w1", "b_at": when, "b_op": "patch"}) == (
        "2026-11-29 12:00:00.000005",
        "patch",
        "w1",
    )
    assert prep.args({"b_ws": "w1", "b_at": when}) == ("2026-11-29 12:00:00.000005", "create", "w1")
    with pytest.raises(KeyError):
        prep.args({"b_at": when})
    one = prepared(select(LOG.c.id).where(LOG.c.workspace_id == bindparam("b_ws")), sqlite)
    assert one.args({"b_ws": "w2", "unused": 1}) == ("w2",)
    named = prepared(stmt, postgresql_dialect.psycopg.dialect())  # type: ignore[no-untyped-call]
    args = named.args({"b_ws": "w1", "b_at": when})
    assert args == {"b_at": when.replace(tzinfo=None), "b_op": "create", "b_ws": "w1"}


def _fill(storage: SqlStorage, count: int) -> None:
    w = ws(storage)
    for n in range(1, count + 1):
        with storage.users(w.id) as store:
            store.insert(user(n, emails=[{"value": f"u{n}@x.test", "type": "work"}]))


def test_sqlite_background_checkpoints_copy_the_log_into_the_file(tmp_path: Path) -> None:
    """Commits leave checkpoints to the background thread: the database file grows (pages
    copied from the WAL) without any request running a checkpoint."""
    db = tmp_path / "scim.db"
    storage = SqlStorage(f"sqlite:///{db}", checkpoint_interval=0.05)
    try:
        before = db.stat().st_size
        _fill(storage, 150)  # ~2,000 WAL pages: under the 10,000-page backstop
        checkpointer = storage.checkpointer
        assert checkpointer is not None
        wait_until(
            lambda: checkpointer.runs >= 1 and db.stat().st_size > before,
            "a background checkpoint",
        )
        assert checkpointer.runs >= 1
        assert db.stat().st_size > before
    finally:
        storage.close()
    assert checkpointer._thread is not None and not checkpointer._thread.is_alive()
    with opened(f"sqlite:///{db}") as again:  # every committed user is there
        with again.users(ws(again, "other").id) as store:
            assert store.query(None, None, 1, 1).total == 0
        w = again.get_workspace("acme")
        assert w is not None
        with again.users(w.id, readonly=True) as store:
            assert store.query(None, None, 1, 1).total == 150


def test_sqlite_commits_run_no_checkpoint_below_the_backstop(tmp_path: Path) -> None:
    """With the thread idle (a long interval), no commit copies the log: the file stays as
    it was (SQLite alone would have checkpointed at 1,000 pages)."""
    db = tmp_path / "scim.db"
    storage = SqlStorage(f"sqlite:///{db}", checkpoint_interval=3600)
    try:
        before = db.stat().st_size
        _fill(storage, 150)
        assert db.stat().st_size == before
        assert (tmp_path / "scim.db-wal").stat().st_size > 1_000 * 4096
    finally:
        storage.close()
    plain = SqlStorage(f"sqlite:///{tmp_path / 'plain.db'}", checkpoint_interval=None)
    try:
        assert plain.checkpointer is None
        before = (tmp_path / "plain.db").stat().st_size
        _fill(plain, 150)
        assert (tmp_path / "plain.db").stat().st_size > before  # SQLite's own checkpoints
    finally:
        plain.close()


def test_checkpoint_interval_must_be_positive(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="positive"):
        SqlStorage(sqlite_url, checkpoint_interval=0)


def test_sqlite_checkpoint_thread_stops_with_a_dropped_storage(tmp_path: Path) -> None:
    import gc

    storage = SqlStorage(f"sqlite:///{tmp_path / 'scim.db'}", checkpoint_interval=0.05)
    _fill(storage, 2)
    checkpointer = storage.checkpointer
    assert checkpointer is not None and checkpointer._thread is not None
    thread = checkpointer._thread
    del storage
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sqlite_storage_survives_fork_without_sharing_connections(sqlite_url: str) -> None:
    """A server that opens the storage and then forks its workers (gunicorn --preload): the
    child opens its own connections (none is carried across the fork) and both processes
    keep working on the file."""
    import threading

    with opened(sqlite_url) as storage:
        tx = sqlite_tx(storage)
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1))
        parent_conn = storage.transactions.thread_connection()
        assert parent_conn is not None
        parent_dbapi = parent_conn.connection.dbapi_connection
        # Another thread of the parent holds a connection across the fork.
        ready, go_on, errors = threading.Event(), threading.Event(), []

        def other() -> None:
            try:
                with storage.users(w.id) as store:
                    store.insert(user(10))
                with storage.users(w.id, readonly=True) as store:  # a connection of its own
                    assert store.get(user(10)["id"]) is not None
                with storage.read_turn():  # held across the fork
                    ready.set()
                    go_on.wait()
                with storage.users(w.id) as store:  # its connection still works
                    store.insert(user(11))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
                ready.set()

        thread = threading.Thread(target=other)
        thread.start()
        ready.wait()
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code, never return into pytest
            code = 1
            try:
                assert tx._read_lock.acquire(timeout=5)  # a fresh lock, not the parent's
                tx._read_lock.release()
                mine = storage.transactions.thread_connection()
                assert mine is not None
                assert mine.connection.dbapi_connection is not parent_dbapi
                with storage.users(w.id) as store:
                    assert store.get(user(1)["id"]) is not None
                    store.insert(user(2))
                assert storage.checkpointer is not None
                assert storage.checkpointer._pid == os.getpid()  # its own checkpoint thread
                import gc

                from scimcore_adapters.sql.connections import INHERITED as _INHERITED

                gc.collect()  # the other thread's connection: kept, never closed in the child
                assert _INHERITED and not any(c.closed for c in _INHERITED)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        go_on.set()
        thread.join()
        assert not errors
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        with storage.users(w.id) as store:  # the parent reopened what it closed at the fork
            assert store.get(user(2)["id"]) is not None
            store.insert(user(3))
        with storage.users(w.id, readonly=True) as store:
            assert store.query(None, None, 1, 10).total == 5


@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=NO_POSTGRES)
def test_postgres_one_read_runs_in_autocommit_unless_it_needs_a_snapshot(
    postgres_url: str,
) -> None:
    """PostgreSQL: a GET and a lookup send no BEGIN/COMMIT (an autocommit connection); a list
    page, which may need a count too, reads in one REPEATABLE READ snapshot, ended with the
    block."""
    from psycopg.pq import TransactionStatus

    with opened(postgres_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            for n in range(1, 4):
                store.insert(user(n))

        def status(store: Any) -> TransactionStatus:
            current: TransactionStatus = (
                store._conn.connection.dbapi_connection.info.transaction_status
            )
            return current

        name = compile_filter('userName eq "user2@x.test"', REGISTRY)
        with storage.users(w.id, one_read=True) as store:
            assert store.get(user(1)["id"]) is not None
            assert status(store) == TransactionStatus.IDLE
        with storage.users(w.id, one_read=True) as store:
            assert store.query(name, None, 1, 100).total == 1
            assert status(store) == TransactionStatus.IDLE
        with storage.users(w.id, one_read=True) as store:
            page = store.query(None, None, 1, 2)
            assert (page.total, len(page.documents)) == (3, 2)
            assert status(store) == TransactionStatus.INTRANS
            level = store._conn.exec_driver_sql("SHOW transaction_isolation").scalar()
            assert level == "repeatable read"
            raw: Any = store._conn.connection.dbapi_connection
        assert raw.info.transaction_status == TransactionStatus.IDLE  # ended with the block
        assert storage.authenticate("0" * 32) is None
        with storage.users(w.id) as store:  # writes still run in a transaction
            store.insert(user(4))
            assert status(store) == TransactionStatus.INTRANS


@contextmanager
def _named_with_user(url: str, prefix: str) -> Iterator[tuple[SqlStorage, Workspace, str]]:
    """A storage whose PostgreSQL connections carry a unique ``application_name`` (``prefix``
    and a random suffix, so that :func:`_kill_backends` finds them), with workspace "acme"
    holding user 1: the storage, the workspace and the name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    named = make_url(url).update_query_dict({"application_name": name})
    with opened(named.render_as_string(hide_password=False)) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1))
        yield storage, w, name


def _kill_backends(url: str, application_name: str) -> int:
    """Terminate the server processes of every connection named ``application_name`` (as a
    server restart or an idle timeout would); the number terminated."""
    admin = create_engine(url)
    try:
        with admin.begin() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": application_name},
            ).scalar()
    finally:
        admin.dispose()
    return int(killed or 0)


@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=NO_POSTGRES)
def test_postgres_pings_only_idle_connections_and_replaces_dead_ones(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection in steady use is not pinged (no extra round trip per block); one idle for
    longer than POSTGRES_PING_AFTER_IDLE_S is, and if the server dropped it meanwhile the
    pool hands out a new one: the caller never sees the dead connection."""
    import scimcore_adapters.sql.engines as sql_engines

    with _named_with_user(postgres_url, "scimcore-ping") as (storage, w, name):
        pings: list[bool] = []
        dialect: Any = storage.engine.dialect
        real_ping = dialect.do_ping

        def counting_ping(dbapi_conn: Any) -> bool:
            try:
                alive: bool = real_ping(dbapi_conn)
            except Exception:
                pings.append(False)
                raise
            pings.append(alive)
            return alive

        monkeypatch.setattr(dialect, "do_ping", counting_ping)
        for _ in range(5):  # busy: checked out again at once
            assert storage.authenticate("0" * 32) is None
            with storage.users(w.id, one_read=True) as store:
                assert store.get(user(1)["id"]) is not None
        assert pings == []

        assert _kill_backends(postgres_url, name) >= 1
        monkeypatch.setattr(sql_engines, "POSTGRES_PING_AFTER_IDLE_S", 0.0)  # all are idle now
        with storage.users(w.id, one_read=True) as store:
            assert store.get(user(1)["id"]) is not None  # on a fresh connection
        assert False in pings  # the dead one was found by its ping ...
        with storage.users(w.id) as store:  # ... and writes work too
            store.insert(user(2))


@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=NO_POSTGRES)
def test_postgres_connection_dropped_while_busy_fails_one_request_then_recovers(
    postgres_url: str,
) -> None:
    """Without a ping (the connection was in use a moment ago) the first statement on a dead
    connection fails, with SQLAlchemy's error (the service answers 500, the IdP retries); the
    pool then replaces its older connections and the next request succeeds."""
    with _named_with_user(postgres_url, "scimcore-busy") as (storage, w, name):
        assert _kill_backends(postgres_url, name) >= 1
        with pytest.raises(DBAPIError) as failure, storage.users(w.id, one_read=True) as store:
            store.get(user(1)["id"])
        assert failure.value.connection_invalidated
        with storage.users(w.id, one_read=True) as store:
            assert store.get(user(1)["id"]) is not None
        with storage.users(w.id) as store:
            store.insert(user(2))


def test_sqlite_write_reads_the_person_with_the_user(sqlite_url: str) -> None:
    """In a SQLite write, ``get`` reads the user's person and the settings in the same
    statement; ``get_person`` then runs none, and a person written meanwhile is read back as
    written (the read-ahead is dropped)."""
    with opened(sqlite_url) as storage:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1))
            store.insert(user(2))
            store.save_person(person(1))
        with storage.users(w.id, readonly=True) as store:
            expected = store.get_person(person(1).id)
        seen: list[str] = []
        event.listen(storage.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        with storage.users(w.id) as store:
            assert store.get(user(1)["id"]) is not None
            assert store.get_person(person(1).id) == expected
            assert store.get_settings() == Settings()
        assert len([s for s in seen if s.lstrip().startswith("SELECT")]) == 1
        with storage.users(w.id) as store:  # user 2 has no person yet
            assert store.get(user(2)["id"]) is not None
            assert store.get_person(person(2).id) is None
            store.save_person(person(2, email="new@x.test"))
            found = store.get_person(person(2).id)
            assert found is not None and found.email == "new@x.test"


def _token_and_two_workspaces(storage: SqlStorage) -> None:
    """Token ``t1`` (secret hash ``"h" * 64``) of an active admin of workspace "acme", which
    holds user 1; workspace "other" holds user 2."""
    from scimcore.storage import Admin, TokenRecord

    a, b = ws(storage, "acme"), ws(storage, "other")
    storage.save_admin(Admin(a.id, "a@x.test", True, T0))
    storage.add_token(TokenRecord("t1", a.id, "h" * 64, "label", "a@x.test", T0))
    with storage.users(a.id) as store:
        store.insert(user(1))
    with storage.users(b.id) as store:
        store.insert(user(2))


def _scim_sender(storage: SqlStorage) -> Callable[..., Any]:
    """A :class:`~scimcore.ScimService` on ``storage`` with workspace "acme" and a token of
    its admin: ``send(method, path, body=b"", query=None)`` answers one SCIM request."""
    from scimcore import ScimRequest, ScimService

    service = ScimService(storage)
    service.workspaces.create("acme", "a@x.test")
    token = service.workspaces.generate_token("acme", "a@x.test").plaintext
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

    def send(method: str, path: str, body: bytes = b"", query: dict[str, str] | None = None) -> Any:
        return service.handle(ScimRequest(method, path, query or {}, headers, body, "http://x"))

    return send


def _read_ahead(storage: SqlStorage, token_id: str, secret_hash: str, **intent: Any) -> Any:
    """What the fast path of a read returns (:meth:`SqlStorage.authenticated`)."""
    from scimcore.storage import Intent

    with storage.authenticated(token_id, secret_hash, Intent(**intent)) as first:
        return first


def test_authenticate_and_get_reads_the_user_only_with_the_right_secret(any_url: str) -> None:
    """R1.1, R2.4: the fast path of ``GET /Users/{id}`` returns the grant as
    ``authenticate`` does, and the user only from the token's workspace and only for the
    stored secret hash: a wrong secret reads no user data."""
    from scimcore.storage import FastPath

    with opened(any_url) as storage:
        assert isinstance(storage, FastPath)
        _token_and_two_workspaces(storage)
        first = _read_ahead(storage, "t1", "h" * 64, user_id=user(1)["id"])
        grant = storage.authenticate("t1")
        assert first.grant == grant and grant is not None
        assert first.user is not None and first.user["userName"] == "user1@x.test"
        for wrong in (
            _read_ahead(storage, "t1", "x" * 64, user_id=user(1)["id"]),
            _read_ahead(storage, "t1", "h" * 64, user_id=user(2)["id"]),
            _read_ahead(storage, "t1", "h" * 64, user_id="no-such-id"),
        ):
            assert (wrong.grant, wrong.user) == (grant, None)
        unknown = _read_ahead(storage, "t9", "h" * 64, user_id=user(1)["id"])
        assert (unknown.grant, unknown.user) == (None, None)


def test_sqlite_get_by_id_and_lookup_are_one_statement(sqlite_url: str) -> None:
    """``GET /Users/{id}``, Entra's ``userName eq`` lookup and a page of users on SQL
    storage: authentication and the read in one statement, which also reads whether the
    workspace has a group; without one, no user's ``User.groups`` costs a statement. Once a
    group exists, each read has the one indexed lookup of its users' groups after it."""
    with opened(sqlite_url) as storage:
        send = _scim_sender(storage)
        uid = send("POST", "/Users", b'{"userName": "ann@x.test"}').json()["id"]
        send("GET", f"/Users/{uid}")
        seen: list[str] = []
        event.listen(storage.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))

        def reads() -> tuple[list[str], list[str], list[str]]:
            statements = [s for s in seen if s.lstrip().startswith("SELECT")]
            seen.clear()
            auth = [s for s in statements if "FROM tokens" in s]
            return statements, auth, [s for s in statements if "group_members" in s]

        found = send("GET", f"/Users/{uid}")
        missing = send("GET", "/Users/nope")
        listed = send("GET", "/Users", query={"filter": 'userName eq "ann@x.test"'})
        assert (found.status, found.json()["userName"]) == (200, "ann@x.test")
        assert missing.status == 404
        assert listed.json()["Resources"][0]["id"] == uid
        statements, auth, groups = reads()  # (the 404 is logged)
        assert len(auth) == 3 and len(statements) == 3 and not groups
        assert all("FROM groups" in s for s in auth)
        page = send("GET", "/Users", query={"count": "10"})
        assert page.json()["totalResults"] == 1 and "groups" not in page.json()["Resources"][0]
        statements, auth, groups = reads()  # the page, then its users (no groups statement)
        assert len(auth) == 1 and "FROM groups" in auth[0] and len(statements) == 2
        assert not groups

        group = b'{"displayName": "G", "members": [{"value": "%s"}]}' % uid.encode()
        assert send("POST", "/Groups", group).status == 201
        seen.clear()
        assert [g["display"] for g in send("GET", f"/Users/{uid}").json()["groups"]] == ["G"]
        listed = send("GET", "/Users", query={"filter": 'userName eq "ann@x.test"'})
        assert [g["display"] for g in listed.json()["Resources"][0]["groups"]] == ["G"]
        page = send("GET", "/Users", query={"count": "10"})
        assert [g["display"] for g in page.json()["Resources"][0]["groups"]] == ["G"]
        statements, auth, groups = reads()
        assert len(auth) == 3 and len(groups) == 3 and len(statements) == 7


def test_sqlite_writes_authenticate_in_their_first_statement(sqlite_url: str) -> None:
    """SCIM writes on SQLite: the authentication is the transaction's first statement and
    reads what the write reads next (a create: settings and rules; an update: the user, its
    person and the settings), so a create and a PATCH read once each."""
    with opened(sqlite_url) as storage:
        send = _scim_sender(storage)
        send("POST", "/Users", b'{"userName": "warm@x.test"}')  # the token's first use
        seen: list[str] = []
        event.listen(storage.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        created = send("POST", "/Users", b'{"userName": "ann@x.test", "title": "Eng"}')
        assert created.status == 201
        create_reads = [s for s in seen if s.lstrip().startswith("SELECT")]
        seen.clear()
        op = b'{"Operations": [{"op": "replace", "path": "active", "value": "False"}]}'
        patched = send("PATCH", f"/Users/{created.json()['id']}", op)
        assert (patched.status, patched.json()["active"]) == (200, False)
        patch_reads = [s for s in seen if s.lstrip().startswith("SELECT")]
        assert len(create_reads) == 1 and "FROM tokens" in create_reads[0]
        assert "settings" in create_reads[0] and "rules" in create_reads[0]
        assert len(patch_reads) == 1 and "FROM tokens" in patch_reads[0]
        assert "people" in patch_reads[0] and "users" in patch_reads[0]
        assert "FROM groups" in patch_reads[0]  # none in the workspace: User.groups is empty
        uid = created.json()["id"]
        group = b'{"displayName": "G", "members": [{"value": "%s"}]}' % uid.encode()
        assert send("POST", "/Groups", group).status == 201
        seen.clear()
        patched = send("PATCH", f"/Users/{uid}", op)
        assert [g["display"] for g in patched.json()["groups"]] == ["G"]
        patch_reads = [s for s in seen if s.lstrip().startswith("SELECT")]
        assert len(patch_reads) == 2 and "group_members" in patch_reads[1]  # User.groups read


def test_write_authentication_reads_data_only_with_the_right_secret(any_url: str) -> None:
    """R1.1, R2.4: what a write reads with its authentication comes only from the token's
    workspace and only for the stored secret hash; the grant is returned either way (the
    caller's constant-time check refuses it)."""
    from scimcore.storage import Intent
    from scimcore.templates import Rule
    from scimcore_adapters.sql.accounts import _AUTHENTICATE_FOR_CREATE, _AUTHENTICATE_FOR_UPDATE

    with opened(any_url) as storage:
        _token_and_two_workspaces(storage)
        with storage.users("ws-acme") as store:
            store.save_person(person(1))  # the person of user 1 (the same id)
            store.save_rule(Rule("r1", 'title eq "Eng"', "eng", 0))
            store.save_settings(Settings(activation_email=True))
        right, wrong = "h" * 64, "x" * 64
        with storage.engine.connect() as conn:

            def update(user_id: str, secret_hash: str) -> Any:
                params = {"token_id": "t1", "b_user": user_id, "b_hash": secret_hash}
                return conn.execute(_AUTHENTICATE_FOR_UPDATE, params).one()

            def create(secret_hash: str) -> list[Any]:
                params = {"token_id": "t1", "b_hash": secret_hash}
                return list(conn.execute(_AUTHENTICATE_FOR_CREATE, params).all())

            good, bad = update(user(1)["id"], right), update(user(1)["id"], wrong)
            other = update(user(2)["id"], right)  # user 2 is in the other workspace
            good_rows, bad_rows = create(right), create(wrong)
        assert good.user_document is not None and good.p_id == user(1)["id"] and good.s_found
        for refused in (bad, other):
            assert refused.id == "t1"  # the grant, for the caller to check
            assert (refused.user_document, refused.p_id, refused.p_card) == (None, None, None)
        assert not bad.s_found and other.s_found
        assert [r.r_id for r in good_rows] == ["r1"] and good_rows[0].s_ws == "ws-acme"
        assert [(r.r_id, r.s_ws) for r in bad_rows] == [(None, None)]
        writing = Intent(writes=True, user_id=user(1)["id"])
        with storage.authenticated("t1", wrong, writing) as first:
            assert first.grant is not None and first.grant.workspace.id == "ws-acme"
            assert first.store is not None
        with storage.authenticated("t9", right, writing) as unknown:
            assert (unknown.grant, unknown.store) == (None, None)


def test_authenticate_and_find_reads_a_username_lookup_only_with_the_right_secret(
    any_url: str,
) -> None:
    """R1.1, R2.4: Entra's ``userName eq`` lookup read with the authentication: only from the
    token's workspace, only for the stored secret hash, case-insensitively like the query;
    other filters are not read ahead."""
    from scimcore.storage import Page

    with opened(any_url) as storage:
        _token_and_two_workspaces(storage)
        grant = storage.authenticate("t1")
        assert grant is not None

        def lookup(secret_hash: str, text: str, token_id: str = "t1") -> tuple[Any, Any]:
            first = _read_ahead(storage, token_id, secret_hash, filter=text)
            return first.grant, first.found

        assert lookup("h" * 64, 'userName eq "USER1@x.test"') == (grant, Page(1, [user(1)]))
        assert lookup("x" * 64, 'userName eq "user1@x.test"') == (grant, Page(0, []))
        assert lookup("h" * 64, 'userName eq "user2@x.test"') == (grant, Page(0, []))
        for not_a_lookup in ('title eq "x"', 'userName eq "a" or userName eq "b"', "((("):
            assert lookup("h" * 64, not_a_lookup) == (grant, None)
        assert lookup("h" * 64, 'userName eq "x"', "t9") == (None, None)


def test_sqlite_packed_reads_return_what_sqlalchemy_reads(sqlite_url: str) -> None:
    """On SQLite the wide reads (a write's authentication with its read-ahead, a GET's) come
    back as one JSON array plus the documents (``raw``, to spare GIL releases): every value
    read that way equals what SQLAlchemy reads from the same statement, text with quotes,
    backslashes, control characters and a NUL, non-ASCII text, NULLs, booleans and
    date-times included."""
    from scimcore.storage import Admin, Settings, TokenRecord
    from scimcore_adapters.sql import accounts as sql_storage
    from scimcore_adapters.sql.execute import prepared, run_dbapi

    odd = 'Zoë "q" \\ \n\t\x01\x00 ☃'
    with opened(sqlite_url) as storage:
        a = ws(storage, "a")
        storage.save_admin(Admin(a.id, "a@x.test", True, T0))
        storage.add_token(TokenRecord("t1", a.id, "h" * 64, odd, "a@x.test", T0))
        doc = user(1, displayName=odd)
        with storage.users(a.id) as store:
            store.insert(doc)
            store.save_person(person(1, user_name=odd))
            store.save_settings(Settings(activation_email=True))
        base = {"token_id": "t1", "b_hash": "h" * 64}
        reads = {
            "_AUTHENTICATE": {"token_id": "t1"},
            "_AUTHENTICATE_AND_GET": {**base, "b_user": doc["id"]},
            "_AUTHENTICATE_FOR_UPDATE": {**base, "b_user": doc["id"]},
            "_AUTHENTICATE_FOR_CREATE": base,
            "_AUTHENTICATE_AND_FIND": {**base, "b_name": "nobody"},  # the user columns NULL
        }
        with storage.engine.connect() as conn:
            dbapi_conn = conn.connection.dbapi_connection
            for name, params in reads.items():
                stmt = getattr(sql_storage, name)
                prep = prepared(stmt, conn.dialect)
                assert prep.packed and "json_array(" in prep.sql, name
                packed = run_dbapi(dbapi_conn, conn.dialect, stmt, params).rows
                plain = conn.execute(stmt, params).all()
                assert [r._asdict() for r in packed] == [r._asdict() for r in plain], name
                assert packed and packed[0].label == odd, name
            conn.rollback()
        first = _read_ahead(storage, "t1", "h" * 64, user_id=doc["id"])
        grant, got = first.grant, first.user
        assert grant is not None and grant.token.label == odd and grant.token.created_at == T0
        assert got == doc


def test_sqlite_writes_without_rows_keep_their_row_counts(sqlite_url: str) -> None:
    """SQLite writes that return no rows run through ``executemany`` (no last row id asked
    for): an ``INSERT ... ON CONFLICT DO NOTHING`` still counts 1 row inserted, then 0."""
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from scimcore_adapters.sql.execute import prepared, run_dbapi

    with opened(sqlite_url) as storage, storage.engine.connect() as conn:
        stmt = sqlite_insert(WORKSPACES).on_conflict_do_nothing()
        row = {"id": "w-x", "slug": "x", "created_at": T0}
        assert prepared(stmt, conn.dialect, tuple(row)).many
        dbapi_conn = conn.connection.dbapi_connection
        counts = [run_dbapi(dbapi_conn, conn.dialect, stmt, row, columns=True).rowcount]
        counts.append(run_dbapi(dbapi_conn, conn.dialect, stmt, row, columns=True).rowcount)
        assert counts == [1, 0]
        assert conn.execute(select(WORKSPACES.c.slug).where(WORKSPACES.c.id == "w-x")).all() == [
            ("x",)
        ]


def test_sqlite_writes_number_their_log_entries_in_order(sqlite_url: str) -> None:
    """R9.2: each log entry takes its workspace's next ordinal: a write's from the maximum read
    with its authentication (it holds the write lock from then on), a failed write's entry, in
    a transaction of its own, by a lookup in its ``INSERT`` (returned). Writes of four threads
    (sharing commits) and failures in between: the ordinals stay 1, 2, 3 ... in insertion
    order."""
    with opened(sqlite_url) as storage:
        send = _scim_sender(storage)
        seen = _statements_of_writer(storage)

        def creates(t: int) -> None:
            for k in range(8):
                body = json.dumps({"userName": f"u{t}-{k}@x.test"}).encode()
                assert send("POST", "/Users", body).status == 201

        threads = [threading.Thread(target=creates, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert send("POST", "/Users", b'{"userName": "u0-0@x.test"}').status == 409
        uid = send("GET", "/Users", query={"filter": 'userName eq "u1-1@x.test"'}).json()
        rid = uid["Resources"][0]["id"]
        patch = b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], '
        patch += b'"Operations": [{"op": "replace", "path": "active", "value": "False"}]}'
        assert send("PATCH", f"/Users/{rid}", patch).status == 200
        with storage.engine.connect() as conn:
            query = select(LOG.c.ordinal, LOG.c.operation, LOG.c.status).order_by(LOG.c.seq)
            rows = conn.execute(query).all()
        # the first entry: the token's generation, logged before the writes
        assert rows[0].operation == "token.generate"
        assert [r.ordinal for r in rows] == list(range(1, 36))
        assert [(r.operation, r.status) for r in rows][-2:] == [("create", 409), ("patch", 200)]
        inserts = [s for s in seen if s.startswith("INSERT INTO log")]
        looked_up = [s for s in inserts if "max(" in s and "RETURNING" in s]
        assert len(inserts) == 34 and len(looked_up) == 1 and " 409, " in looked_up[0]


def test_sqlite_reads_are_not_packed_without_orjson(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the ``speed`` extra (no orjson) SQLite reads stay column by column, and the
    storage reads what it read packed: the token, its workspace, the user."""
    from scimcore.storage import Admin, TokenRecord
    from scimcore_adapters.sql import accounts as sql_storage
    from scimcore_adapters.sql import execute as raw

    monkeypatch.setattr(raw, "_array", None)
    raw.prepared.cache_clear()
    try:
        with opened(sqlite_url) as storage:
            a = ws(storage, "a")
            storage.save_admin(Admin(a.id, "a@x.test", True, T0))
            storage.add_token(TokenRecord("t1", a.id, "h" * 64, "label", "a@x.test", T0))
            with storage.users(a.id) as store:
                store.insert(user(1))
            with storage.engine.connect() as conn:
                prep = raw.prepared(sql_storage._AUTHENTICATE_AND_GET, conn.dialect)
            assert not prep.packed and "json_array(" not in prep.sql
            first = _read_ahead(storage, "t1", "h" * 64, user_id=user(1)["id"])
            grant, doc = first.grant, first.user
            assert grant is not None and grant.token.label == "label"
            assert grant.token.created_at == T0 and grant.workspace.slug == "a"
            assert doc == user(1)
    finally:
        raw.prepared.cache_clear()  # the next test prepares its statements packed again
