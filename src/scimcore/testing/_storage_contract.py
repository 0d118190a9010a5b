"""The storage contract: every backend inherits :class:`StorageContract` and must pass it.

A backend's test module subclasses it and provides the ``storage`` fixture (a fresh, empty
backend per test), like fsspec's ``tests/abstract``; see :mod:`scimcore.testing`. The helpers
below (``user``, ``ws``, ``person``...) build the records the tests store; scimcore's own
backend tests use them too.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from scimcore import Admin, NotFoundError, PreconditionFailedError, Storage, TokenRecord, Workspace
from scimcore.errors import UniquenessError
from scimcore.filters import compile_filter
from scimcore.storage import SortSpec
from scimcore.testing._console_contract import ConsoleContract
from scimcore.testing._fast_path_contract import FastPathContract
from scimcore.testing._federation_contract import FederationContract
from scimcore.testing._group_contract import GroupContract
from scimcore.testing._oauth_contract import OAuthContract
from scimcore.testing._product_contract import ProductContract
from scimcore.testing._records import ENT, REGISTRY, T0, bumped, user, ws


class StorageContract(
    ProductContract,
    ConsoleContract,
    GroupContract,
    OAuthContract,
    FederationContract,
    FastPathContract,
):
    """Behaviour every :class:`scimcore.Storage` implementation must have (its parts: see
    :class:`ProductContract`, :class:`ConsoleContract`, :class:`GroupContract`,
    :class:`OAuthContract`, :class:`FederationContract`, :class:`FastPathContract`)."""

    def test_insert_get_roundtrip(self, storage: Storage) -> None:
        w = ws(storage)
        doc = user(1, emails=[{"value": "a@x.test", "type": "work"}], **{ENT: {"department": "R"}})
        with storage.users(w.id) as store:
            store.insert(doc)
        with storage.users(w.id) as store:
            assert store.get(doc["id"]) == doc
            assert store.get("missing") is None

    def test_one_read_blocks_answer_like_transactions(self, storage: Storage) -> None:
        """``one_read`` (one get or one query per block) gives what a readonly block gives."""
        w = ws(storage)
        with storage.users(w.id) as store:
            for n in range(1, 6):
                store.insert(user(n, f"user{n}@x.test", title="t" if n % 2 else "u"))
        by_name = compile_filter('userName eq "USER3@x.test"', REGISTRY)
        by_title = compile_filter('title eq "t"', REGISTRY)
        cases = [
            (None, None, 1, 2),
            (None, None, 5, 10),
            (None, None, 9, 10),
            (by_name, None, 1, 10),
            (by_name, None, 1, 1),
            (by_name, None, 2, 10),
            (by_name, None, 1, 0),
            (by_title, None, 1, 2),
            (None, SortSpec(("userName",), True, False), 2, 2),
        ]
        shapes = []
        for flt, sort, start, count in cases:
            with storage.users(w.id, readonly=True) as store:
                expected = store.query(flt, sort, start, count)
            with storage.users(w.id, one_read=True) as store:
                assert store.query(flt, sort, start, count) == expected, (flt, start, count)
            shapes.append((expected.total, len(expected.documents)))
        assert shapes == [(5, 2), (5, 1), (5, 0), (1, 1), (1, 1), (1, 0), (1, 0), (3, 2), (5, 2)]
        with storage.users(w.id, one_read=True) as store:
            assert store.get(user(2)["id"]) == user(2, "user2@x.test", title="u")
        with storage.users(w.id, one_read=True) as store:
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

    def test_date_times_sort_by_the_instant_they_name(self, storage: Storage) -> None:
        """RFC 7644 §3.4.2.3: sort "according to the attribute type": a dateTime by its
        instant, not its text (10:00+02:00 is 08:00Z, before 09:00Z); a value that is not a
        date-time sorts as unassigned (last ascending, first descending); equal instants keep
        insertion order in both directions."""
        stamps = {
            1: "2026-01-01T09:00:00Z",
            2: "2026-01-01T10:00:00+02:00",  # 08:00Z
            3: "not a date",
            4: "2026-01-01T08:00:00.000Z",  # the same instant as 2
            5: "2025-12-31T23:30:00-01:00",  # 2026-01-01T00:30Z
        }
        w = ws(storage)
        with storage.users(w.id) as store:
            for n, stamp in stamps.items():
                doc = user(n)
                doc["meta"] = {**doc["meta"], "lastModified": stamp, "created": stamp}
                store.insert(doc)
        with storage.users(w.id, readonly=True) as store:
            for attribute in ("lastModified", "created"):
                for descending, expected in ((False, [5, 2, 4, 1, 3]), (True, [3, 1, 2, 4, 5])):
                    sort = SortSpec(("meta", attribute), descending, chronological=True)
                    page = store.query(None, sort, 1, 10)
                    assert [d["id"] for d in page.documents] == [user(n)["id"] for n in expected]
                    second = store.query(None, sort, 2, 2)  # paged in the same order
                    assert [d["id"] for d in second.documents] == [
                        user(n)["id"] for n in expected[1:3]
                    ]

    def test_total_follows_inserts_deletes_and_rollbacks(self, storage: Storage) -> None:
        w = ws(storage)
        with storage.users(w.id) as store:
            for n in range(1, 6):
                store.insert(user(n))
            store.delete(user(2)["id"])
            store.delete("missing")
        with pytest.raises(RuntimeError), storage.users(w.id) as store:
            store.insert(user(9))
            store.delete(user(3)["id"])
            raise RuntimeError("rolled back")
        with storage.users(w.id, readonly=True) as store:
            assert store.query(None, None, 1, 0).total == 4
            assert store.query(None, None, 1, 2).total == 4  # a full page: total from storage
            assert store.query(None, None, 3, 2).total == 4
        other = ws(storage, "other")
        with storage.users(other.id, readonly=True) as store:
            assert store.query(None, None, 1, 0).total == 0

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
