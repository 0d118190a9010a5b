"""The product part of the storage contract (people and cards, settings, templates and rules,
the outbox, the provisioning log): a base of :class:`scimcore.testing.StorageContract`.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import attrs
import pytest

from scimcore import Storage
from scimcore.storage import MailBatches, OutboxMail, Settings
from scimcore.templates import Rule, Template
from scimcore.testing._records import ENT, T0, entry, mail, person, user, ws


class ProductContract:
    """What a storage keeps for the product: people, settings, templates, rules, mail, log."""

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
        sent = attrs.evolve(
            claimed[mail(1, "").id], status="sent", attempts=1, sent_at=now + timedelta(seconds=1)
        )
        retry = attrs.evolve(
            claimed[mail(2, "").id],
            status="pending",
            attempts=1,
            last_error="SMTPError: 451 try later",
            next_attempt_at=now + timedelta(minutes=1),
        )
        storage.finish_mail(sent)
        storage.finish_mail(retry)
        with storage.users(w.id) as store:
            assert store.list_outbox() == [sent, retry]
        assert storage.claim_mail(now + timedelta(seconds=59), lease, 10) == []
        assert [m.id for m in storage.claim_mail(now + timedelta(minutes=1), lease, 10)] == [
            retry.id
        ]

    def test_a_late_outcome_never_changes_a_sent_mail(self, storage: Storage) -> None:
        # R3.6: process A's claim ran out (a slow SMTP server), B claimed the mail again and
        # sent it; A's late failure must not queue it a third time
        w = ws(storage)
        with storage.users(w.id) as store:
            store.enqueue_mail(mail(1, w.id, "k1"))
        now = T0 + timedelta(seconds=10)
        (first,) = storage.claim_mail(now, now + timedelta(minutes=5), 10)
        later = now + timedelta(minutes=6)
        (second,) = storage.claim_mail(later, later + timedelta(minutes=5), 10)
        assert second.id == first.id
        sent = attrs.evolve(second, status="sent", attempts=1, sent_at=later)
        storage.finish_mail(sent)
        late_failure = attrs.evolve(
            first,
            status="pending",
            attempts=1,
            last_error="TimeoutError: timed out",
            next_attempt_at=later + timedelta(minutes=1),
        )
        storage.finish_mail(late_failure)
        with storage.users(w.id) as store:
            assert store.list_outbox() == [sent]
        assert storage.claim_mail(later + timedelta(hours=1), later + timedelta(hours=2), 10) == []

    def test_finish_mails_stores_many_outcomes_at_once(self, storage: Storage) -> None:
        # optional capability (MailBatches); a storage that has it stores each like finish_mail
        if not isinstance(storage, MailBatches):
            pytest.skip("this storage records outcomes one at a time (finish_mail)")
        w, other = ws(storage), ws(storage, "other")
        with storage.users(w.id) as store:
            for n in (1, 2, 3):
                store.enqueue_mail(mail(n, w.id, f"k{n}"))
        with storage.users(other.id) as store:
            store.enqueue_mail(mail(4, other.id, "k4"))
        now = T0 + timedelta(seconds=10)
        lease = now + timedelta(minutes=5)
        claimed = {m.id: m for m in storage.claim_mail(now, lease, 10)}
        assert len(claimed) == 4
        storage.finish_mails([])  # nothing to record: no transaction, no error

        def outcome(n: int, **changes: Any) -> OutboxMail:
            return attrs.evolve(claimed[mail(n, "").id], attempts=1, **changes)

        sent = outcome(1, status="sent", sent_at=now + timedelta(seconds=1))
        retry = outcome(
            2, status="pending", last_error="x 451", next_attempt_at=now + timedelta(minutes=1)
        )
        given_up = outcome(4, status="failed", last_error="x gone", next_attempt_at=now)
        storage.finish_mails([sent, retry, given_up])
        with storage.users(w.id) as store:
            by_id = {m.id: m for m in store.list_outbox()}
        assert by_id[sent.id] == sent and by_id[retry.id] == retry
        assert by_id[mail(3, "").id] == claimed[mail(3, "").id]  # not in the batch: leased
        with storage.users(other.id) as store:
            assert store.list_outbox() == [given_up]  # across workspaces, in the same call
        due = storage.claim_mail(now + timedelta(minutes=1), lease + timedelta(minutes=1), 10)
        assert [m.id for m in due] == [retry.id]

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
