"""Group filters on SQL versus the in-memory reference: for random groups, memberships and
filters (``displayName``, ``externalId``, ``members[value eq]``, ``members.value``, and on
users ``groups.value``, ``groups[display eq]``), with sorting and paging, ``SqlStorage``
returns exactly what ``MemoryStorage`` returns, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimcore.filters import compile_filter
from scimcore.groups import default_group_registry
from scimcore.storage import SortSpec
from scimcore.testing._storage_contract import REGISTRY
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.sql import SqlStorage
from tests.strategies import database_examples
from tests.strategies.stores import USERS, combined, group_leaves, user_leaves, worlds
from tests.test_sql_compiler import Backend, fresh_workspace, sql_storage

__all__ = ["sql_storage"]

GROUPS = default_group_registry()


def load(storage: Backend, groups: list[dict[str, Any]], members: list[list[str]]) -> str:
    workspace = fresh_workspace(storage)
    with storage.users(workspace) as store:
        for n, uid in enumerate(USERS):
            store.insert({"id": uid, "userName": f"user{n}@x.test", "meta": {"version": 'W/"1"'}})
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
        results.append(
            (
                page.total,
                [d["id"] for d in page.documents],
                users.total,
                [d["id"] for d in users.documents],
            )
        )
    assert results[0] == results[1], (text, users_text)
