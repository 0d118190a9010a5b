"""The storage contract: every backend inherits :class:`StorageContract` and must pass it.

A backend's test module subclasses it and provides the ``storage`` fixture (a fresh, empty
backend per test), like fsspec's ``tests/abstract``.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from scimcore import Admin, NotFoundError, PreconditionFailedError, Storage, TokenRecord, Workspace
from scimcore.errors import UniquenessError
from scimcore.filters import compile_filter
from scimcore.schema import default_registry
from scimcore.storage import SortSpec

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
REGISTRY = default_registry()
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def user(n: int, name: str | None = None, /, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": f"{n:032x}",
        "userName": name or f"user{n}@x.test",
        "meta": {
            "resourceType": "User",
            "created": (T0 + timedelta(seconds=n)).isoformat(),
            "lastModified": (T0 + timedelta(seconds=n)).isoformat(),
            "version": 'W/"1"',
        },
    }
    doc.update(extra)
    return doc


def bumped(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**doc, **changes}
    version = int(doc["meta"]["version"][3:-1]) + 1
    out["meta"] = {**doc["meta"], "version": f'W/"{version}"'}
    return out


def ws(storage: Storage, slug: str = "acme") -> Workspace:
    w = Workspace(id=f"ws-{slug}", slug=slug, created_at=T0)
    storage.create_workspace(w)
    return w


class StorageContract:
    """Behaviour every :class:`scimcore.Storage` implementation must have."""

    def test_insert_get_roundtrip(self, storage: Storage) -> None:
        w = ws(storage)
        doc = user(1, emails=[{"value": "a@x.test", "type": "work"}], **{ENT: {"department": "R"}})
        with storage.users(w.id) as store:
            store.insert(doc)
        with storage.users(w.id) as store:
            assert store.get(doc["id"]) == doc
            assert store.get("missing") is None

    def test_returned_documents_are_copies(self, storage: Storage) -> None:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1, title="a"))
        with storage.users(w.id) as store:
            got = store.get(user(1)["id"])
            assert got is not None
            got["title"] = "changed"
        with storage.users(w.id) as store:
            again = store.get(user(1)["id"])
            assert again is not None and again["title"] == "a"

    def test_username_unique_case_insensitive_per_workspace(self, storage: Storage) -> None:
        a, b = ws(storage, "a"), ws(storage, "b")
        with storage.users(a.id) as store:
            store.insert(user(1, "Ann@X.test"))
        with pytest.raises(UniquenessError), storage.users(a.id) as store:
            store.insert(user(2, "ann@x.TEST"))
        with storage.users(b.id) as store:
            store.insert(user(3, "ann@x.test"))
        with storage.users(a.id) as store:
            assert store.query(None, None, 1, 10).total == 1

    def test_rollback_on_error_leaves_nothing(self, storage: Storage) -> None:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1, title="before"))
        with pytest.raises(RuntimeError), storage.users(w.id) as store:
            store.insert(user(2))
            current = store.get(user(1)["id"])
            assert current is not None
            store.replace(bumped(current, title="after"), current["meta"]["version"])
            store.delete(user(1)["id"])
            raise RuntimeError("boom")
        with storage.users(w.id) as store:
            assert store.get(user(2)["id"]) is None
            kept = store.get(user(1)["id"])
            assert kept is not None and kept["title"] == "before"
            assert store.query(None, None, 1, 10).total == 1

    def test_replace_is_compare_and_set(self, storage: Storage) -> None:
        w = ws(storage)
        doc = user(1)
        with storage.users(w.id) as store:
            store.insert(doc)
            store.replace(bumped(doc, title="x"), 'W/"1"')
            with pytest.raises(PreconditionFailedError):
                store.replace(bumped(doc, title="y"), 'W/"1"')
            with pytest.raises(NotFoundError):
                store.replace(user(9), 'W/"1"')
            got = store.get(doc["id"])
            assert got is not None and got["title"] == "x"

    def test_replace_checks_username_uniqueness(self, storage: Storage) -> None:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1, "a@x.test"))
            store.insert(user(2, "b@x.test"))
        with pytest.raises(UniquenessError), storage.users(w.id) as store:
            store.replace(bumped(user(2, "b@x.test"), userName="A@x.test"), 'W/"1"')
        with storage.users(w.id) as store:
            # renaming to a different case of one's own name is fine, and frees the old one
            store.replace(bumped(user(2, "b@x.test"), userName="B@x.test"), 'W/"1"')
            store.insert(user(3, "c@x.test"))
            got = store.get(user(2)["id"])
            assert got is not None and got["userName"] == "B@x.test"

    def test_delete_frees_username(self, storage: Storage) -> None:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.insert(user(1, "a@x.test"))
            assert store.delete(user(1)["id"]) is True
            assert store.delete(user(1)["id"]) is False
            store.insert(user(2, "A@x.test"))
            assert store.query(None, None, 1, 10).total == 1

    def test_query_filters_sorts_and_pages(self, storage: Storage) -> None:
        w = ws(storage)
        with storage.users(w.id) as store:
            for n in range(1, 31):
                store.insert(
                    user(
                        n,
                        displayName=f"name{(n * 7) % 31:02}",
                        active=n % 2 == 0,
                        emails=[{"type": "work", "value": f"u{n}@corp.test"}],
                        **{ENT: {"department": "Sales" if n % 3 == 0 else "Ops"}},
                    )
                )
        f = compile_filter(f'{ENT}:department eq "sales" and active eq true', REGISTRY)
        with storage.users(w.id) as store:
            page = store.query(f, None, 1, 3)
            assert page.total == 5  # n in 6, 12, 18, 24, 30
            assert [d["id"] for d in page.documents] == [user(n)["id"] for n in (6, 12, 18)]
            page2 = store.query(f, None, 4, 3)
            assert [d["id"] for d in page2.documents] == [user(n)["id"] for n in (24, 30)]
            by_name = store.query(None, SortSpec(("displayName",)), 1, 30)
            names = [d["displayName"] for d in by_name.documents]
            assert names == sorted(names)
            desc = store.query(None, SortSpec(("displayName",), descending=True), 1, 2)
            assert [d["displayName"] for d in desc.documents] == sorted(names, reverse=True)[:2]
            email = compile_filter('emails[type eq "work"].value eq "U7@CORP.test"', REGISTRY)
            assert [d["id"] for d in store.query(email, None, 1, 10).documents] == [user(7)["id"]]
            assert store.query(None, None, 31, 10).documents == []

    def test_default_order_is_insertion_order(self, storage: Storage) -> None:
        w = ws(storage)
        order = [5, 3, 9, 1]
        with storage.users(w.id) as store:
            for n in order:
                store.insert(user(n))
            ids = [d["id"] for d in store.query(None, None, 1, 10).documents]
        assert ids == [user(n)["id"] for n in order]

    def test_workspaces_admins_tokens(self, storage: Storage) -> None:
        w = ws(storage)
        with pytest.raises(ValueError):
            storage.create_workspace(Workspace(id="other-id", slug="acme", created_at=T0))
        assert storage.get_workspace("acme") == w
        assert storage.get_workspace_by_id(w.id) == w
        assert storage.get_workspace("nope") is None
        assert [x.slug for x in storage.list_workspaces()] == ["acme"]
        storage.save_admin(Admin(w.id, "a@x.test", True, T0))
        storage.save_admin(Admin(w.id, "a@x.test", False, T0))
        admin = storage.get_admin(w.id, "A@X.test")
        assert admin is not None and admin.active is False
        token = TokenRecord("t1", w.id, "h" * 64, "label", "a@x.test", T0)
        storage.add_token(token)
        assert storage.get_token("t1") == token
        storage.touch_token("t1", T0 + timedelta(hours=1))
        touched = storage.get_token("t1")
        assert touched is not None and touched.last_used_at == T0 + timedelta(hours=1)
        assert [t.id for t in storage.list_tokens(w.id)] == ["t1"]
        assert storage.delete_token("other-ws", "t1") is False
        assert storage.delete_token(w.id, "t1") is True
        assert storage.get_token("t1") is None

    def test_concurrent_creates_of_one_username(self, storage: Storage) -> None:
        w = ws(storage)
        outcomes: list[str] = []
        barrier = threading.Barrier(4)

        def create(n: int) -> None:
            barrier.wait()
            try:
                with storage.users(w.id) as store:
                    store.insert(user(n, "same@x.test"))
                outcomes.append("created")
            except UniquenessError:
                outcomes.append("conflict")

        threads = [threading.Thread(target=create, args=(n,)) for n in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict", "conflict", "conflict", "created"]
