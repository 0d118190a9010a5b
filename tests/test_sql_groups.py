"""Group filters on SQL versus the in-memory reference: for random groups, memberships and
filters (``displayName``, ``externalId``, ``members[value eq]``, ``members.value``, and on
users ``groups.value``, ``groups[display eq]``, ``groups.display``, ``groups.type``,
``groups pr``, ``$ref``), with sorting and paging, ``SqlStorage`` returns exactly what
``MemoryStorage`` returns, on SQLite and PostgreSQL. The ``groups`` filters the SQL backend
compiles are exact (no user re-checked in Python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimcore.filters import compile_filter
from scimcore.groups import default_group_registry
from scimcore.storage import SortSpec
from scimcore.testing._records import REGISTRY
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.sql import SqlStorage
from scimcore_adapters.sql import groups as groups_sql
from tests.strategies import database_examples
from tests.strategies.stores import USERS, combined, group_leaves, user_leaves, worlds
from tests.test_sql_compiler import Backend, fresh_workspace, sql_storage

__all__ = ["sql_storage"]

GROUPS = default_group_registry()
#: Filters on ``groups`` that the SQL backend compiles exactly.
EXACT = [
    'groups.value eq "G001"',
    'groups.value ne "g001"',
    'groups[display eq "Sales" and not (value sw "g00")]',
    'groups.display co "ale"',
    'groups.type eq "direct"',
    "groups pr",
    "not (groups pr)",
    "groups.value eq null",
    'groups[display eq "Ops"] or userName sw "user1"',
]


def load(storage: Backend, groups: list[dict[str, Any]], members: list[list[str]]) -> str:
    workspace = fresh_workspace(storage)
    with storage.users(workspace) as store:
        for n, uid in enumerate(USERS):
            doc: dict[str, Any] = {"id": uid, "userName": f"user{n}@x.test"}
            if n % 2:
                doc["title"] = "Boss"
            store.insert({**doc, "meta": {"version": 'W/"1"'}})
        for doc, ids in zip(groups, members, strict=True):
            store.insert_group(doc)
            store.add_members(doc["id"], ids)
    return workspace


@given(
    world=worlds(),
    text=combined(group_leaves),
    sort=st.none() | st.sampled_from(["displayName", "externalId", "id"]),
    descending=st.booleans(),
    start=st.integers(1, 4),
    count=st.integers(0, 4),
    users_text=combined(user_leaves),
    users_sort=st.none() | st.sampled_from(["userName", "title"]),
    users_start=st.integers(1, 3),
)
@settings(
    max_examples=database_examples(),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_group_filters_sql_equal_memory(
    sql_storage: SqlStorage,
    world: tuple[list[dict[str, Any]], list[list[str]]],
    text: str,
    sort: str | None,
    descending: bool,
    start: int,
    count: int,
    users_text: str,
    users_sort: str | None,
    users_start: int,
) -> None:
    memory = MemoryStorage()
    spec = SortSpec((sort,), descending, case_exact=sort == "id") if sort else None
    group_filter = compile_filter(text, GROUPS)
    user_filter = compile_filter(users_text, REGISTRY)
    results = []
    for storage in (memory, sql_storage):
        workspace = load(storage, *world)
        with storage.users(workspace, readonly=True) as store:
            page = store.query_groups(group_filter, spec, start, count)
            users = store.query(user_filter, None, 1, 10)
            ordered = store.query(
                user_filter,
                SortSpec((users_sort,), descending) if users_sort else None,
                users_start,
                2,
            )
        results.append(
            (
                page.total,
                [d["id"] for d in page.documents],
                users.total,
                [d["id"] for d in users.documents],
                ordered.total,
                [d["id"] for d in ordered.documents],
            )
        )
    assert results[0] == results[1], (text, users_text)


@pytest.mark.parametrize("text", EXACT)
def test_groups_filters_compile_exactly(sql_storage: SqlStorage, text: str) -> None:
    """``groups`` filters are answered in SQL (the matching ``groups``, then their members in
    ``group_members``), never by reading every user into Python."""
    with sql_storage.users(fresh_workspace(sql_storage), readonly=True) as store:
        translation = store.translate(compile_filter(text, REGISTRY))
    assert translation.exact, text
    assert "group_members" in str(translation.clause), text


def test_groups_ref_is_rechecked_in_python(sql_storage: SqlStorage) -> None:
    """``$ref`` is not stored (responses add it): such a filter stays a superset, re-checked
    in Python with the groups attached, and matches what the reference backend matches."""
    with sql_storage.users(fresh_workspace(sql_storage), readonly=True) as store:
        translation = store.translate(compile_filter('groups[$ref sw "x"]', REGISTRY))
    assert not translation.exact


def test_sqlite_reads_a_members_groups_by_the_member(tmp_path: Path) -> None:
    """``User.groups`` of one user and of a page search ``group_members`` by the member
    (index ``(workspace_id, member_id)``), never scanning the workspace's memberships (what
    SQLite's planner did before migration 12 gave it statistics for the table)."""
    storage = SqlStorage(f"sqlite:///{tmp_path / 'plan.db'}", checkpoint_interval=None)
    try:
        params = {"b_ws": "w", "b_id": "u", "b_ids": ["u", "v"]}
        with storage.engine.connect() as conn:
            for stmt in (groups_sql._GROUPS_OF, groups_sql._GROUPS_OF_MANY):
                bound = stmt.params(**params)
                sql = str(
                    bound.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
                )
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                plan = " ".join(str(row[3]) for row in rows)
                assert "(workspace_id=? AND member_id=?)" in plan, plan
    finally:
        storage.close()
