"""The storage contract's part for groups and memberships (RFC 7643 §4.2, R5.3): every
backend's :class:`~scimcore.testing.StorageContract` inherits :class:`GroupContract`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from scimcore import NotFoundError, PreconditionFailedError, Storage, Workspace
from scimcore.errors import UniquenessError
from scimcore.filters import compile_filter
from scimcore.groups import default_group_registry
from scimcore.storage import SortSpec

GROUPS = default_group_registry()
_T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def group(n: int, name: str | None = None, /, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": f"g{n:031x}",
        "displayName": name or f"Group {n}",
        "meta": {"resourceType": "Group", "version": 'W/"1"'},
    }
    doc.update(extra)
    return doc


def _user(n: int) -> dict[str, Any]:
    return {"id": f"{n:032x}", "userName": f"user{n}@x.test", "meta": {"version": 'W/"1"'}}


def _ws(storage: Storage, slug: str = "acme") -> str:
    storage.create_workspace(Workspace(id=f"ws-{slug}", slug=slug, created_at=_T0))
    return f"ws-{slug}"


def _setup(storage: Storage, users: int = 4) -> tuple[str, list[str]]:
    w = _ws(storage)
    with storage.users(w) as store:
        for n in range(1, users + 1):
            store.insert(_user(n))
    return w, [_user(n)["id"] for n in range(1, users + 1)]


class GroupContract:
    """Behaviour every storage must have for groups."""

    def test_group_roundtrip_compare_and_set_and_delete(self, storage: Storage) -> None:
        w, _ = _setup(storage, 0)
        g = group(1, externalId="e1")
        with storage.users(w) as store:
            store.insert_group(g)
            with pytest.raises(UniquenessError):
                store.insert_group(g)
        with storage.users(w) as store:
            assert store.get_group(g["id"]) == g
            new = {**g, "displayName": "Renamed", "meta": {**g["meta"], "version": 'W/"2"'}}
            store.replace_group(new, 'W/"1"')
            with pytest.raises(PreconditionFailedError):
                store.replace_group(new, 'W/"1"')
            with pytest.raises(NotFoundError):
                store.replace_group(group(9), 'W/"1"')
        with storage.users(w) as store:
            assert store.get_group(g["id"]) == new
            assert store.delete_group(g["id"]) and not store.delete_group(g["id"])
            assert store.get_group(g["id"]) is None

    def test_memberships_are_rows_added_and_removed_once(self, storage: Storage) -> None:
        # R4.4: adding a member already there, or removing one that is not, changes nothing
        w, u = _setup(storage)
        gid = group(1)["id"]
        with storage.users(w) as store:
            store.insert_group(group(1))
            assert store.add_members(gid, [u[2], u[0], u[2]]) == [u[2], u[0]]
            assert store.add_members(gid, [u[0], u[1]]) == [u[1]]
            assert store.remove_members(gid, [u[3], u[0]]) == [u[0]]
        with storage.users(w, readonly=True) as store:
            listed = store.group_members([gid, "nope"])
            assert list(listed) == [gid]
            assert [m["value"] for m in listed[gid]] == [u[2], u[1]]  # the order of addition
            assert listed[gid][0] == {"value": u[2], "type": "User"}
        with storage.users(w) as store:
            assert sorted(store.remove_members(gid, None)) == sorted([u[2], u[1]])
            assert store.group_members([gid]) == {}

    def test_existing_users_are_this_workspaces_only(self, storage: Storage) -> None:
        w, u = _setup(storage, 2)
        other = _ws(storage, "other")
        with storage.users(other) as store:
            store.insert(_user(7))
        with storage.users(w, readonly=True) as store:
            assert store.existing_users([u[0], _user(7)["id"], "nope", u[1]]) == {u[0], u[1]}

    def test_memberships_follow_deletes_on_either_side(self, storage: Storage) -> None:
        w, u = _setup(storage, 3)
        g1, g2 = group(1, "One"), group(2, "Two")
        with storage.users(w) as store:
            store.insert_group(g1)
            store.insert_group(g2)
            store.add_members(g1["id"], u)
            store.add_members(g2["id"], [u[0]])
        with storage.users(w) as store:
            found = store.groups_of([u[0], u[1], "nope"])
            assert found[u[0]] == [
                {"value": g1["id"], "display": "One", "type": "direct"},
                {"value": g2["id"], "display": "Two", "type": "direct"},
            ]
            assert [x["value"] for x in found[u[1]]] == [g1["id"]] and "nope" not in found
            assert store.delete(u[0])
            assert store.delete_group(g1["id"])
        with storage.users(w, readonly=True) as store:
            assert store.groups_of([u[0], u[1]]) == {}
            assert store.group_members([g1["id"], g2["id"]]) == {}
        with storage.users(w) as store:  # a re-created group id starts empty
            store.insert_group(g1)
            assert store.group_members([g1["id"]]) == {}

    def test_group_writes_roll_back(self, storage: Storage) -> None:
        w, u = _setup(storage, 3)
        gid = group(1)["id"]
        with storage.users(w) as store:
            store.insert_group(group(1))
            store.add_members(gid, [u[0]])
        with pytest.raises(RuntimeError), storage.users(w) as store:
            store.add_members(gid, [u[1], u[2]])
            store.remove_members(gid, [u[0]])
            store.insert_group(group(2))
            raise RuntimeError("boom")
        with storage.users(w, readonly=True) as store:
            assert [m["value"] for m in store.group_members([gid])[gid]] == [u[0]]
            assert store.get_group(group(2)["id"]) is None

    def test_query_groups_filters_sorts_and_pages(self, storage: Storage) -> None:
        w, u = _setup(storage, 2)
        with storage.users(w) as store:
            for n, name in enumerate(["beta", "Alpha", "gamma", "ALPHA"], start=1):
                store.insert_group(group(n, name, externalId=f"e{n}"))
            store.add_members(group(3)["id"], [u[1]])
            store.add_members(group(1)["id"], [u[0], u[1]])

        def ids(text: str | None, sort: SortSpec | None = None, start: int = 1) -> list[str]:
            f = compile_filter(text, GROUPS) if text else None
            with storage.users(w, readonly=True) as store:
                page = store.query_groups(f, sort, start, 2)
                assert all("members" not in d for d in page.documents)
                return [d["displayName"] for d in page.documents]

        assert ids('displayName eq "alpha"') == ["Alpha", "ALPHA"]
        assert ids('externalId eq "e3"') == ["gamma"]
        assert ids(f'members[value eq "{u[1]}"]') == ["beta", "gamma"]
        assert ids(f'members.value eq "{u[0]}" or displayName eq "gamma"') == ["beta", "gamma"]
        assert ids(f'displayName sw "a" and not (members.value eq "{u[0]}")') == ["Alpha", "ALPHA"]
        assert ids(None, SortSpec(("displayName",), descending=True), 2) == ["beta", "Alpha"]
        assert ids(None, None, 3) == ["gamma", "ALPHA"]

    def test_users_filter_on_derived_groups(self, storage: Storage) -> None:
        from scimcore.schema import default_registry

        w, u = _setup(storage, 3)
        with storage.users(w) as store:
            store.insert_group(group(1, "Marketing"))
            store.add_members(group(1)["id"], [u[2], u[0]])
        users = default_registry()
        for text, expected in [
            (f'groups.value eq "{group(1)["id"]}"', [u[0], u[2]]),
            ('groups[display eq "marketing"]', [u[0], u[2]]),
            ("not (groups pr)", [u[1]]),
        ]:
            with storage.users(w, one_read=True) as store:
                page = store.query(compile_filter(text, users), None, 1, 10)
            assert [d["id"] for d in page.documents] == expected, text
