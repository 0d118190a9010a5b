"""The storage contract: every backend inherits :class:`StorageContract` and must pass it.

A backend's test module subclasses it and provides the ``storage`` fixture (a fresh, empty
backend per test), like fsspec's ``tests/abstract``; see :mod:`scimcore.testing`. The helpers
below (``user``, ``ws``, ``person``...) build the records the tests store; scimcore's own
backend tests use them too.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from scimcore import Admin, NotFoundError, PreconditionFailedError, Storage, TokenRecord, Workspace
from scimcore.errors import UniquenessError
from scimcore.filters import compile_filter
from scimcore.schema import default_registry
from scimcore.storage import LogEntry, OutboxMail, Person, Settings, SortSpec
from scimcore.templates import Rule, Template
from scimcore.testing._console_contract import ConsoleContract
from scimcore.testing._fast_path_contract import FastPathContract
from scimcore.testing._federation_contract import FederationContract
from scimcore.testing._group_contract import GroupContract
from scimcore.testing._oauth_contract import OAuthContract

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


def person(n: int, /, **changes: Any) -> Person:
    values: dict[str, Any] = {
        "id": f"{n:032x}",
        "user_name": f"user{n}@x.test",
        "email": f"user{n}@x.test",
        "active": True,
        "deprovisioned": False,
        "card": {
            "fields": {"job_title": {"value": f"T{n}", "locked": True, "linked": True}},
            "template": None,
            "active": True,
        },
        "created_at": T0 + timedelta(seconds=n),
        "updated_at": T0 + timedelta(seconds=n),
    }
    values.update(changes)
    return Person(**values)


def mail(n: int, workspace_id: str, dedupe_key: str | None = None, /, **changes: Any) -> OutboxMail:
    values: dict[str, Any] = {
        "id": f"m{n:031x}",
        "workspace_id": workspace_id,
        "person_id": f"{n:032x}",
        "to": f"user{n}@x.test",
        "kind": "activation",
        "subject": f"Welcome {n}",
        "body": f"Hello {n} \u2013 here is your card",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": T0 + timedelta(seconds=n),
        "created_at": T0 + timedelta(seconds=n),
        "dedupe_key": dedupe_key,
    }
    values.update(changes)
    return OutboxMail(**values)


def entry(n: int, /, **changes: Any) -> LogEntry:
    values: dict[str, Any] = {
        "id": f"l{n:031x}",
        "at": T0 + timedelta(seconds=n),
        "operation": "create",
        "resource_id": f"{n:032x}",
        "status": 201,
        "detail": "",
        "token_id": "t1",
    }
    values.update(changes)
    return LogEntry(**values)


class StorageContract(
    ConsoleContract, GroupContract, OAuthContract, FederationContract, FastPathContract
):
    """Behaviour every :class:`scimcore.Storage` implementation must have (its parts: see
    :class:`ConsoleContract`, :class:`GroupContract`, :class:`OAuthContract`,
    :class:`FederationContract`, :class:`FastPathContract`)."""

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

    # --- the product ----------------------------------------------------------------------------

    def test_person_upsert_order_and_seats(self, storage: Storage) -> None:
        w, other = ws(storage), ws(storage, "other")
        with storage.users(w.id) as store:
            assert store.get_person(person(1).id) is None
            assert store.list_people() == [] and store.count_seats() == 0
            # oldest first by (created_at, id), whatever the insertion order
            store.save_person(person(3))
            store.save_person(person(1))
            store.save_person(person(2, created_at=T0 + timedelta(seconds=3)))
            store.save_person(person(4, active=False))
            store.save_person(person(5, active=False, deprovisioned=True))
            store.save_person(person(6, deprovisioned=True))
        with storage.users(w.id) as store:
            assert store.get_person(person(1).id) == person(1)
            assert [p.id for p in store.list_people()] == [person(n).id for n in (1, 2, 3, 4, 5, 6)]
            assert store.count_seats() == 3  # 1, 2, 3: active and not deprovisioned
            # an update replaces every field but keeps the person's place
            changed = person(1, user_name="Ann@X.test", email=None, active=False, card={"a": [1]})
            store.save_person(changed)
            assert store.get_person(changed.id) == changed
            assert len(store.list_people()) == 6
            assert store.count_seats() == 2
        with storage.users(other.id) as store:
            assert store.list_people() == [] and store.count_seats() == 0
            assert store.get_person(person(1).id) is None

    def test_person_card_is_a_copy(self, storage: Storage) -> None:
        w = ws(storage)
        card: dict[str, Any] = {"fields": {"a": {"value": "x"}}}
        with storage.users(w.id) as store:
            store.save_person(person(1, card=card))
        card["fields"]["a"]["value"] = "changed"
        with storage.users(w.id) as store:
            got = store.get_person(person(1).id)
            assert got is not None and got.card == {"fields": {"a": {"value": "x"}}}

    def test_settings_default_and_roundtrip(self, storage: Storage) -> None:
        w, other = ws(storage), ws(storage, "other")
        with storage.users(w.id) as store:
            assert store.get_settings() == Settings()
            mapping = [
                {"key": "job_title", "label": "Job title", "source": "title"},
                {"key": "department", "label": "Department", "source": f"{ENT}:department"},
            ]
            store.save_settings(Settings(activation_email=False, mapping=mapping))
        with storage.users(w.id) as store:
            assert store.get_settings() == Settings(activation_email=False, mapping=mapping)
            store.save_settings(Settings(activation_email=True, mapping=None))
            assert store.get_settings() == Settings()
            store.save_settings(Settings(activation_email=False, mapping=[]))
            assert store.get_settings() == Settings(activation_email=False, mapping=[])
        with storage.users(other.id) as store:
            assert store.get_settings() == Settings()

    def test_settings_rules_and_people_read_together_stay_current(self, storage: Storage) -> None:
        """Backends may read settings with a person, and rules with settings (one statement):
        every read in a block still sees the block's own writes, and only its workspace."""
        w, other = ws(storage), ws(storage, "other")
        with storage.users(w.id) as store:
            store.save_settings(Settings(activation_email=False))
            store.save_rule(Rule("r1", 'title eq "a"', "T", 0))
            store.save_person(person(1))
        with storage.users(other.id) as store:
            store.save_person(person(1))  # the same id in another workspace
        with storage.users(w.id) as store:
            assert store.get_person(person(1).id) is not None
            assert store.get_settings() == Settings(activation_email=False)
            assert [r.id for r in store.list_rules()] == ["r1"]
            store.save_rule(Rule("r2", 'title eq "b"', "T", 1))
            assert [r.id for r in store.list_rules()] == ["r1", "r2"]
            store.save_settings(Settings(activation_email=True))
            assert store.get_settings() == Settings(activation_email=True)
            assert store.delete_rule("r1") is True
            assert [r.id for r in store.list_rules()] == ["r2"]
        with storage.users(other.id) as store:
            assert store.get_person(person(1).id) is not None
            assert store.get_settings() == Settings()
            assert store.list_rules() == []
        with storage.users(w.id) as store:  # rules first, then settings
            rules = store.list_rules()
            assert isinstance(rules, list)
            rules.clear()  # a caller's list is its own
            assert [r.id for r in store.list_rules()] == ["r2"]
            assert store.get_settings() == Settings(activation_email=True)
        with storage.users(w.id) as store:  # settings first, then rules
            assert store.get_settings() == Settings(activation_email=True)
            assert [r.id for r in store.list_rules()] == ["r2"]

    def test_templates_upsert_list_delete(self, storage: Storage) -> None:
        w, other = ws(storage), ws(storage, "other")
        with storage.users(w.id) as store:
            assert store.list_templates() == []
            store.save_template(Template("b", {"company": "B"}))
            store.save_template(Template("B", {}))
            store.save_template(Template("a", {"company": "A", "logo": "a.png"}))
            store.save_template(Template("b", {"company": "B2"}))
        with storage.users(w.id) as store:
            assert store.list_templates() == [
                Template("B", {}),  # code-point order: upper case first
                Template("a", {"company": "A", "logo": "a.png"}),
                Template("b", {"company": "B2"}),
            ]
            assert store.delete_template("a") is True
            assert store.delete_template("a") is False
            assert [t.name for t in store.list_templates()] == ["B", "b"]
        with storage.users(other.id) as store:
            assert store.list_templates() == []
            assert store.delete_template("b") is False

    def test_rules_in_position_order(self, storage: Storage) -> None:
        w, other = ws(storage), ws(storage, "other")
        with storage.users(w.id) as store:
            assert store.list_rules() == []
            store.save_rule(Rule("r3", 'department eq "C"', "T3", 2))
            store.save_rule(Rule("r1", 'department eq "A"', "T1", 0))
            store.save_rule(Rule("r2b", 'department eq "B"', "T2", 1))
            store.save_rule(Rule("r2a", 'department eq "B2"', "T2", 1))
        with storage.users(w.id) as store:
            assert [r.id for r in store.list_rules()] == ["r1", "r2a", "r2b", "r3"]
            store.save_rule(Rule("r3", 'title eq "x"', "T9", -1))
            assert store.list_rules()[0] == Rule("r3", 'title eq "x"', "T9", -1)
            assert store.delete_rule("r1") is True
            assert store.delete_rule("r1") is False
            assert [r.id for r in store.list_rules()] == ["r3", "r2a", "r2b"]
        with storage.users(other.id) as store:
            assert store.list_rules() == []
            assert store.delete_rule("r3") is False

    def test_enqueue_mail_dedupes_per_workspace(self, storage: Storage) -> None:
        w, other = ws(storage), ws(storage, "other")
        with storage.users(w.id) as store:
            assert store.list_outbox() == []
            assert store.enqueue_mail(mail(2, w.id, "activation:2")) is True
            assert store.enqueue_mail(mail(1, w.id)) is True
            assert store.enqueue_mail(mail(3, w.id)) is True  # None keys never collide
        with storage.users(w.id) as store:
            # the IdP retries: same key, new mail id -> refused, nothing queued
            assert store.enqueue_mail(mail(4, w.id, "activation:2")) is False
            assert store.list_outbox() == [
                mail(1, w.id),
                mail(2, w.id, "activation:2"),
                mail(3, w.id),
            ]
        with storage.users(other.id) as store:
            assert store.list_outbox() == []
            assert store.enqueue_mail(mail(5, other.id, "activation:2")) is True
            assert store.list_outbox() == [mail(5, other.id, "activation:2")]

    def test_claim_mail_due_lease_and_limit(self, storage: Storage) -> None:
        w, other = ws(storage), ws(storage, "other")
        now = T0 + timedelta(seconds=10)
        lease = now + timedelta(minutes=5)
        with storage.users(w.id) as store:
            store.enqueue_mail(mail(1, w.id))
            store.enqueue_mail(mail(2, w.id, next_attempt_at=now))  # due exactly now
            store.enqueue_mail(mail(3, w.id, next_attempt_at=now + timedelta(seconds=1)))
            store.enqueue_mail(mail(4, w.id, status="sent"))
            store.enqueue_mail(mail(5, w.id, status="failed"))
        with storage.users(other.id) as store:
            store.enqueue_mail(mail(6, other.id))
        assert storage.claim_mail(now, lease, 0) == []
        first = storage.claim_mail(now, lease, 2)
        assert len(first) == 2
        rest = storage.claim_mail(now, lease, 10)
        claimed = {m.id: m for m in [*first, *rest]}
        assert sorted(claimed) == sorted(mail(n, "").id for n in (1, 2, 6))  # across workspaces
        assert len(claimed) == len(first) + len(rest)
        for m in claimed.values():
            assert m.status == "sending" and m.next_attempt_at == lease
        assert claimed[mail(6, "").id] == mail(6, other.id, status="sending", next_attempt_at=lease)
        # leased: nothing more is due until the lease expires
        assert storage.claim_mail(now, lease, 10) == []
        with storage.users(w.id) as store:
            statuses = {m.id: (m.status, m.next_attempt_at) for m in store.list_outbox()}
            assert statuses[mail(1, "").id] == ("sending", lease)
            assert statuses[mail(3, "").id] == ("pending", now + timedelta(seconds=1))
        # a second later only mail 3 has become due
        soon = [m.id for m in storage.claim_mail(now + timedelta(seconds=1), lease, 10)]
        assert soon == [mail(3, "").id]
        # an expired lease (the worker died) is claimable again
        later = lease + timedelta(seconds=1)
        again = storage.claim_mail(lease, later, 10)
        assert sorted(m.id for m in again) == sorted(mail(n, "").id for n in (1, 2, 3, 6))

    def test_claim_mail_never_twice_concurrently(self, storage: Storage) -> None:
        w, other = ws(storage), ws(storage, "other")
        with storage.users(w.id) as store:
            for n in range(1, 31):
                store.enqueue_mail(mail(n, w.id))
        with storage.users(other.id) as store:
            for n in range(31, 41):
                store.enqueue_mail(mail(n, other.id))
        now = T0 + timedelta(hours=1)
        lease = now + timedelta(minutes=5)
        results: list[list[str]] = []
        barrier = threading.Barrier(4)

        def claim() -> None:
            barrier.wait()
            got: list[str] = []
            for _ in range(4):
                got.extend(m.id for m in storage.claim_mail(now, lease, 3))
            results.append(got)

        threads = [threading.Thread(target=claim) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [i for got in results for i in got]
        assert len(results) == 4
        assert len(ids) == len(set(ids))  # never the same mail twice
        ids.extend(m.id for m in storage.claim_mail(now, lease, 100))
        assert sorted(ids) == sorted(mail(n, "").id for n in range(1, 41))

    def test_finish_mail_roundtrip(self, storage: Storage) -> None:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.enqueue_mail(mail(1, w.id, "k1"))
            store.enqueue_mail(mail(2, w.id))
        now = T0 + timedelta(seconds=10)
        lease = now + timedelta(minutes=5)
        claimed = {m.id: m for m in storage.claim_mail(now, lease, 10)}
        sent = OutboxMail(
            **{
                **vars_of(claimed[mail(1, "").id]),
                "status": "sent",
                "attempts": 1,
                "sent_at": now + timedelta(seconds=1),
            }
        )
        retry = OutboxMail(
            **{
                **vars_of(claimed[mail(2, "").id]),
                "status": "pending",
                "attempts": 1,
                "last_error": "SMTPError: 451 try later",
                "next_attempt_at": now + timedelta(minutes=1),
            }
        )
        storage.finish_mail(sent)
        storage.finish_mail(retry)
        with storage.users(w.id) as store:
            assert store.list_outbox() == [sent, retry]
        assert storage.claim_mail(now + timedelta(seconds=59), lease, 10) == []
        assert [m.id for m in storage.claim_mail(now + timedelta(minutes=1), lease, 10)] == [
            retry.id
        ]

    def test_log_retention_and_limit(self, storage: Storage) -> None:
        w, other = ws(storage), ws(storage, "other")
        with storage.users(w.id) as store:
            assert store.list_log(10) == []
            for n in range(1, 6):
                store.add_log(entry(n, actor="admin" if n == 4 else "idp"), keep=3)
        with storage.users(w.id) as store:
            assert store.list_log(10) == [entry(5), entry(4, actor="admin"), entry(3)]
            assert store.list_log(2) == [entry(5), entry(4, actor="admin")]
            assert store.list_log(0) == []
        with storage.users(other.id) as store:
            assert store.list_log(10) == []
            for n in range(6, 9):
                store.add_log(entry(n, resource_id=None, token_id=None, status=401), keep=10)
            # newest first is insertion order, not the entries' timestamps
            store.add_log(entry(0, detail="clock went back"), keep=10)
            assert [e.id for e in store.list_log(10)] == [entry(n).id for n in (0, 8, 7, 6)]
            assert store.list_log(10)[1] == entry(8, resource_id=None, token_id=None, status=401)
        with storage.users(w.id) as store:
            assert len(store.list_log(10)) == 3

    def test_product_writes_roll_back(self, storage: Storage) -> None:
        w = ws(storage)
        with storage.users(w.id) as store:
            store.save_person(person(1))
            store.save_settings(Settings(activation_email=False))
            store.save_template(Template("T", {"company": "C"}))
            store.save_rule(Rule("r1", 'title eq "x"', "T"))
            store.add_log(entry(1), keep=10)
        with pytest.raises(RuntimeError), storage.users(w.id) as store:
            store.insert(user(2))
            store.save_person(person(2))
            store.save_person(person(1, active=False))
            assert store.enqueue_mail(mail(2, w.id, "activation:2")) is True
            store.add_log(entry(2), keep=1)
            store.save_settings(Settings(mapping=[{"key": "x"}]))
            store.save_template(Template("U", {}))
            store.delete_template("T")
            store.delete_rule("r1")
            assert store.count_seats() == 1
            raise RuntimeError("boom")
        with storage.users(w.id) as store:
            assert store.get(user(2)["id"]) is None
            assert store.list_people() == [person(1)]
            assert store.list_outbox() == []
            assert store.list_log(10) == [entry(1)]
            assert store.get_settings() == Settings(activation_email=False)
            assert store.list_templates() == [Template("T", {"company": "C"})]
            assert [r.id for r in store.list_rules()] == ["r1"]
            # the dedupe key of the rolled-back mail is free again
            assert store.enqueue_mail(mail(2, w.id, "activation:2")) is True
        assert [m.id for m in storage.claim_mail(T0 + timedelta(hours=1), T0, 10)] == [
            mail(2, "").id
        ]


def vars_of(record: Any) -> dict[str, Any]:
    """The fields of an attrs record, to rebuild it with changes."""
    return dict(attrs.asdict(record, recurse=False))
