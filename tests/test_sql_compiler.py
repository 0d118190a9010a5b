"""The SQL filter compiler: differential tests against the in-memory reference backend.

For random users and random filters (and random sorting and paging), ``SqlStorage.query`` must
return exactly what ``MemoryStorage.query`` returns: the same total and the same ids in the same
order, on SQLite and, when ``SCIMCORE_TEST_POSTGRES_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimcore.filters import (
    Filter,
    compile_filter,
    render,
    validate,
)
from scimcore.storage import SortSpec, Workspace
from scimcore.testing._records import REGISTRY, T0
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.sql import SqlStorage
from scimcore_adapters.sql.compiler import escape_like
from tests.conftest import postgres_schema_url
from tests.strategies import database_examples
from tests.strategies.stores import documents, filters, sorts


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sql_storage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlStorage]:
    """One database per module and engine; every example uses a fresh workspace in it."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sql") / "diff.db"
        storage = SqlStorage(f"sqlite:///{path}")
        try:
            yield storage
        finally:
            storage.close()
    else:
        with postgres_schema_url() as url:
            storage = SqlStorage(url)
            try:
                yield storage
            finally:
                storage.close()


Backend = SqlStorage | MemoryStorage


def fresh_workspace(storage: Backend) -> str:
    slug = uuid.uuid4().hex
    storage.create_workspace(Workspace(id=f"ws-{slug}", slug=slug, created_at=T0))
    return f"ws-{slug}"


def load(storage: Backend, docs: list[dict[str, Any]]) -> str:
    workspace = fresh_workspace(storage)
    with storage.users(workspace) as store:
        for doc in docs:
            store.insert(doc)
    return workspace


def ids(storage: Backend, workspace: str, f: Filter | None, sort: SortSpec | None = None,
        start: int = 1, count: int = 100) -> tuple[int, list[str]]:  # fmt: skip
    with storage.users(workspace) as store:
        page = store.query(f, sort, start, count)
    return page.total, [d["id"] for d in page.documents]


# --- the differential property -----------------------------------------------------------------


@settings(
    max_examples=database_examples(),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    docs=documents(),
    f=st.one_of(st.none(), filters),
    sort=sorts,
    start=st.integers(1, 4),
    count=st.integers(0, 5),
)
def test_sql_query_equals_memory_query(
    sql_storage: SqlStorage,
    docs: list[dict[str, Any]],
    f: Filter | None,
    sort: SortSpec | None,
    start: int,
    count: int,
) -> None:
    if f is not None:
        validate(f, REGISTRY)
    memory = MemoryStorage()
    mem_ws, sql_ws = load(memory, docs), load(sql_storage, docs)
    expected = ids(memory, mem_ws, f, sort, start, count)
    label = render(f) if f is not None else None
    assert ids(sql_storage, sql_ws, f, sort, start, count) == expected, (label, sort)
    assert ids(sql_storage, sql_ws, f) == ids(memory, mem_ws, f), label


# --- targeted: LIKE escaping and case rules ----------------------------------------------------


def test_escape_like() -> None:
    assert escape_like("a%b_c\\d") == "a\\%b\\_c\\\\d"


WILD = ["a%b", "axb", "a_b", "a\\b", "ab", "A%B", "%", "_", "\\", "a\\\\b"]


@pytest.mark.parametrize(
    "text",
    [
        'displayName co "%"',
        'displayName co "_"',
        'displayName co "\\\\"',
        'displayName sw "a%"',
        'displayName ew "_b"',
        'displayName eq "A%b"',
        'displayName co "\\\\\\\\"',
        'externalId co "%"',
        'externalId co "_"',
        'externalId sw "a\\\\"',
        'externalId ew "%B"',
        'externalId co "%b"',
        'externalId sw "A"',
        'emails.value co "_"',
        'emails[value ew "\\\\b"]',
        'emails[value sw "%"]',
    ],
)
def test_like_wildcards_are_literal(sql_storage: SqlStorage, text: str) -> None:
    docs = [
        {
            "id": f"{n:04x}",
            "userName": f"u{n}",
            "displayName": value,
            "externalId": value,
            "emails": [{"value": value, "type": "work"}],
            "meta": {"created": "2026-01-01T00:00:00Z", "version": 'W/"1"'},
        }
        for n, value in enumerate(WILD)
    ]
    f = compile_filter(text, REGISTRY)
    memory = MemoryStorage()
    mem_ws, sql_ws = load(memory, docs), load(sql_storage, docs)
    expected = ids(memory, mem_ws, f)
    assert expected[0] > 0, "the case should match something"
    with sql_storage.users(sql_ws) as store:
        assert store.translate(f).exact, text
    assert ids(sql_storage, sql_ws, f) == expected, text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # userName is caseExact false: folded on both sides, full Unicode case folding.
        ('userName eq "ALICE@X.TEST"', ["alice"]),
        ('userName eq "STRASSE"', ["strasse"]),
        ('userName sw "STR"', ["strasse"]),
        ('userName co "\u212a"', ["kelvin"]),
        ('displayName eq "ALICE"', ["alice"]),
        # externalId and id are caseExact: SQLite's ASCII-insensitive LIKE must not leak in.
        ('externalId eq "ABC"', ["kelvin"]),
        ('externalId eq "abc"', ["alice"]),
        ('externalId co "B"', ["kelvin"]),
        ('externalId sw "a"', ["alice"]),
        ('externalId ew "C"', ["kelvin"]),
        ('externalId gt "Z"', ["alice", "strasse"]),
        ('id eq "00AA"', ["strasse"]),
        ('id co "a"', ["alice"]),
        ('emails[type eq "WORK" and value eq "A@X.TEST"]', ["alice"]),
        ('not (externalId co "b")', ["strasse", "kelvin"]),
    ],
)
def test_case_rules(sql_storage: SqlStorage, text: str, expected: list[str]) -> None:
    docs: list[dict[str, Any]] = [
        {
            "id": "00aa",
            "userName": "Alice@x.test",
            "displayName": "Alice",
            "externalId": "abc",
            "emails": [{"value": "a@x.test", "type": "Work"}],
        },
        {"id": "00AA", "userName": "Straße", "externalId": "xyz"},
        {"id": "00BB", "userName": "kelvin", "externalId": "ABC"},
    ]
    names = {"alice": "00aa", "strasse": "00AA", "kelvin": "00BB"}
    for doc in docs:
        doc["meta"] = {"created": "2026-01-01T00:00:00Z", "version": 'W/"1"'}
    f = compile_filter(text, REGISTRY)
    memory = MemoryStorage()
    mem_ws, sql_ws = load(memory, docs), load(sql_storage, docs)
    want = [names[n] for n in expected]
    assert ids(memory, mem_ws, f)[1] == want, "the reference disagrees with the test"
    with sql_storage.users(sql_ws) as store:
        assert store.translate(f).exact, text
    assert ids(sql_storage, sql_ws, f)[1] == want, text


def test_datetime_filters_compare_chronologically(sql_storage: SqlStorage) -> None:
    docs = [
        {
            "id": f"{n:04x}",
            "userName": f"u{n}",
            "meta": {"created": created, "lastModified": created, "version": 'W/"1"'},
        }
        for n, created in enumerate(
            ["2026-01-01T10:00:00Z", "2026-01-01T11:30:00+02:00", "2026-01-01T09:00:00.5-01:00"]
        )
    ]
    memory = MemoryStorage()
    mem_ws, sql_ws = load(memory, docs), load(sql_storage, docs)
    for text in (
        'meta.created gt "2026-01-01T09:30:00Z"',
        'meta.lastModified le "2026-01-01T10:00:00+00:00"',
        'meta.created eq "2026-01-01T12:00:00+02:00"',
        'not (meta.created lt "2026-01-01T10:00:00.5Z")',
    ):
        f = compile_filter(text, REGISTRY)
        with sql_storage.users(sql_ws) as store:
            assert store.translate(f).exact, text
        assert ids(sql_storage, sql_ws, f) == ids(memory, mem_ws, f), text
        assert ids(memory, mem_ws, f)[0] > 0, text
