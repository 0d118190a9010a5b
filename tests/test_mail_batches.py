"""A delivery run in a few transactions (session 17): the activation links of a run issued
together, its outcomes recorded together (``MailBatches.finish_mails``, or ``finish_mail`` per
mail on a storage without it), what a crash in a run leaves, and the worker's wake-ups
coalescing within its gap; the ``.eml`` folder's plain messages written without the ``email``
package."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from email import policy
from pathlib import Path
from typing import Any

import attrs
import pytest

from scimcore import ScimService
from scimcore.activation import ActivationError, token_hash
from scimcore.outbox import DeliveryReport, RecordingMailer, deliver_pending
from scimcore.storage import MailBatches, OutboxMail
from scimcore_adapters.mail import DeliveryWorker, plain_message
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.smtp import compose
from scimcore_adapters.sql import SqlStorage
from scimcore_adapters.sql.users import SqlUserStore
from tests.conftest import Client, counting_runtime, wait_until

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class CountingSql(SqlStorage):
    """A real SQLite storage that counts the units of work and outcome batches asked of it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.units = 0
        self.batches: list[int] = []
        self.singles = 0

    @contextmanager
    def users(
        self, workspace_id: str, *, readonly: bool = False, one_read: bool = False
    ) -> Iterator[SqlUserStore]:
        self.units += 1
        with super().users(workspace_id, readonly=readonly, one_read=one_read) as store:
            yield store

    def finish_mails(self, mails: Sequence[OutboxMail]) -> None:
        self.batches.append(len(mails))
        super().finish_mails(mails)

    def finish_mail(self, mail: OutboxMail) -> None:
        self.singles += 1
        super().finish_mail(mail)


class OneAtATime:
    """A host's storage that has no ``finish_mails``: everything else from a MemoryStorage."""

    def __init__(self) -> None:
        self._inner = MemoryStorage()
        self.finished: list[str] = []

    def finish_mail(self, mail: OutboxMail) -> None:
        self.finished.append(mail.id)
        self._inner.finish_mail(mail)

    def __getattr__(self, name: str) -> Any:
        if name == "finish_mails":
            raise AttributeError(name)
        return getattr(self._inner, name)


def _serve(storage: Any) -> tuple[ScimService, Client]:
    service = ScimService(storage, runtime=counting_runtime())
    service.workspaces.create("acme", "admin@acme.example")
    token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    return service, Client(service, token)


@pytest.fixture
def counting(tmp_path: Path) -> Iterator[tuple[ScimService, Client, CountingSql]]:
    storage = CountingSql(f"sqlite:///{tmp_path / 'scim.db'}")
    service, client = _serve(storage)
    yield service, client, storage
    storage.close()


def test_a_run_issues_its_links_in_one_unit_of_work_and_records_in_one_batch(
    counting: tuple[ScimService, Client, CountingSql],
) -> None:
    # R3.7: a fresh single-use link per mail, each stored; R3.5: each mail sent once
    service, client, storage = counting
    for name in ("ann", "bob", "cy"):
        client.create(f"{name}@contoso.com")
    bob = client("GET", "/Users", query={"filter": 'userName eq "bob@contoso.com"'}).json()
    ops = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert client("PATCH", f"/Users/{bob['Resources'][0]['id']}", ops).status == 200
    storage.units, mailer = 0, RecordingMailer()
    report = deliver_pending(  # a run that records its outcomes together (finish_every)
        service.storage, mailer, service.runtime, base_url="https://x", finish_every=60.0
    )
    assert (report.sent, report.failed) == (2, 1)  # bob is inactive: no link, given up
    assert report.failures[0].to == "bob@contoso.com"
    assert report.failures[0].reason.startswith(ActivationError.__name__)
    assert storage.units == 1 and storage.batches == [3] and storage.singles == 0
    tokens = [re.search(r"/activate/(\S+)", body)[1] for _, _, body in mailer.sent]  # type: ignore[index]
    assert sorted(to for to, _, _ in mailer.sent) == ["ann@contoso.com", "cy@contoso.com"]
    assert len(set(tokens)) == 2
    assert all(storage.get_activation_link(token_hash(t)) is not None for t in tokens)
    statuses = sorted((m.to, m.status) for m in service.product.outbox("acme"))
    assert statuses == [
        ("ann@contoso.com", "sent"),
        ("bob@contoso.com", "failed"),
        ("cy@contoso.com", "sent"),
    ]
    assert deliver_pending(service.storage, mailer, service.runtime) == DeliveryReport()


def test_a_storage_without_mail_batches_records_each_outcome_by_itself() -> None:
    storage = OneAtATime()
    assert not isinstance(storage, MailBatches) and isinstance(MemoryStorage(), MailBatches)
    service, client = _serve(storage)
    client.create("ann@contoso.com")
    client.create("bob@contoso.com")
    report = deliver_pending(storage, RecordingMailer(), service.runtime)
    assert report.sent == 2 and len(storage.finished) == 2
    assert {m.status for m in service.product.outbox("acme")} == {"sent"}


class Crash(BaseException):
    """The process dies (not an ``Exception``: the run does not survive it)."""


class CrashingMailer(RecordingMailer):
    """Hands ``survive`` mails over, then the process "dies" in the next ``send``."""

    def __init__(self, survive: int) -> None:
        super().__init__()
        self.survive = survive

    def send(self, to: str, subject: str, body: str) -> None:
        if len(self.sent) == self.survive:
            raise Crash
        super().send(to, subject, body)


@pytest.mark.parametrize(("finish_every", "recorded_sent"), [(0.0, 2), (3600.0, 0)])
def test_a_crash_in_a_run_never_reports_unsent_mail_and_resends_the_unrecorded(
    counting: tuple[ScimService, Client, CountingSql],
    finish_every: float,
    recorded_sent: int,
) -> None:
    # R3.5 at least once: what was handed over but not recorded goes again after the lease
    service, client, storage = counting
    for name in ("ann", "bob", "cy"):
        client.create(f"{name}@contoso.com")
    with pytest.raises(Crash):
        deliver_pending(
            storage, CrashingMailer(survive=2), service.runtime, finish_every=finish_every
        )
    statuses = [m.status for m in service.product.outbox("acme")]
    assert statuses.count("sent") == recorded_sent  # each after its send, or none yet
    assert statuses.count("sending") == 3 - recorded_sent  # the crashed one is never "sent"
    later, clock = RecordingMailer(), service.runtime.now
    after_lease = attrs.evolve(service.runtime, now=lambda: clock() + timedelta(minutes=6))
    report = deliver_pending(storage, later, after_lease)
    assert report.sent == 3 - recorded_sent == len(later.sent)
    assert {m.status for m in service.product.outbox("acme")} == {"sent"}


def test_the_worker_coalesces_wakes_within_its_gap() -> None:
    # a burst's wake-ups make one more run, no sooner than `gap` after the last one began
    gap = 0.2
    starts: list[float] = []
    first_done, release = threading.Event(), threading.Event()

    def deliver() -> DeliveryReport:
        starts.append(time.monotonic())
        if len(starts) == 1:
            release.wait(10)
            first_done.set()
        return DeliveryReport()

    worker = DeliveryWorker(deliver, interval=60, gap=gap).start()
    try:
        wait_until(lambda: len(starts) == 1, "the first run")
        for _ in range(20):  # mail keeps coming while the first run lasts
            worker.wake()
        release.set()
        assert first_done.wait(10)
        wait_until(lambda: len(starts) == 2, "the coalesced run")
    finally:
        worker.stop()
    assert not worker.running
    assert len(starts) == 2  # twenty wakes, one run
    assert starts[1] - starts[0] >= gap


def test_the_worker_goes_on_while_runs_find_mail() -> None:
    # a backlog (more than a run's limit) leaves run after run, not one run per interval
    runs: list[DeliveryReport] = []
    reports = [DeliveryReport(sent=100), DeliveryReport(sent=100), DeliveryReport(sent=7)]

    def deliver() -> DeliveryReport:
        runs.append(reports.pop(0) if reports else DeliveryReport())
        return runs[-1]

    worker = DeliveryWorker(deliver, interval=60, gap=0).start()
    try:
        wait_until(lambda: len(runs) == 4, "the runs of the backlog and an empty one")
    finally:
        worker.stop()
    assert [r.sent for r in runs] == [100, 100, 7, 0]  # the empty run ends it: no wake, no run


def test_the_worker_refuses_a_gap_outside_zero_to_interval() -> None:
    for gap in (-1.0, 6.0):
        with pytest.raises(ValueError, match="gap"):
            DeliveryWorker(DeliveryReport, interval=5, gap=gap)
    assert DeliveryWorker(DeliveryReport, interval=5, gap=0).gap == 0


_SENDERS = [
    "scimcore@localhost",
    "Acme Cards <cards@acme.example>",
    "a.b+c@x-y.example",
    "Acme  Cards <c@x>",
    '"Q" <q@x>',
    "ünï@x",
    "a..b@x",
    ".a@x",
    "a@x.",
]
_TOS = ["ann@contoso.com", "Ann Lee <ann@contoso.com>", "ann@contoso.com, bob@x", "ann@"]
_SUBJECTS = [
    "Your card",
    "x" * 69,
    "x" * 70,
    "y " * 34 + "z",
    " lead",
    "trail ",
    "two  spaces",
    "=?utf-8?q?x?=",
    "café",
    '(comment) [x] <y> "q" a:b; c,d',
    "",
]
_BODIES = [
    "Hello\n",
    "Hello",
    "",
    "\n",
    "\n\n",
    "a\n\nb\n\n",
    "tab\there\n",
    "x" * 998 + "\n",
    "x" * 999,
    "a\r\nb",
    "a\x0bb",
    "From me\n.\n",
    "é",
    "trailing space \n",
    "  \n",
]


def _same_but_stamps(data: bytes) -> bytes:
    """The message with its instant and unique id blanked (their forms still checked)."""
    data, dates = re.subn(
        rb"Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000\r",
        b"Date: -\r",
        data,
    )
    data, ids = re.subn(rb"Message-ID: <\d+\.\d+\.\d+@", b"Message-ID: <-@", data)
    assert dates == ids == 1, data
    return data


def test_a_plain_message_is_byte_for_byte_what_the_email_package_writes() -> None:
    # the .eml folder's shortcut: the same file, or None (then the email package writes it)
    written = 0
    for sender in _SENDERS:
        for to in _TOS:
            for subject in _SUBJECTS:
                for body in _BODIES:
                    got = plain_message(sender, to, subject, body)
                    if got is None:
                        continue
                    written += 1
                    want = compose(sender, to, subject, body).as_bytes(policy=policy.SMTP)
                    assert _same_but_stamps(got) == _same_but_stamps(want), (sender, subject, body)
    assert written >= 200  # the common shapes take the shortcut
    assert plain_message("scimcore@localhost", "ann@contoso.com", "Your card", "Hi\n")
    for odd in ("café", "x" * 70, "=?utf-8?q?x?=", " lead", ""):
        assert plain_message("scimcore@localhost", "ann@contoso.com", odd, "Hi\n") is None
    for odd in ("é\n", "x" * 999, "a\r\nb", "a\x0bb"):
        assert plain_message("scimcore@localhost", "ann@contoso.com", "Hi", odd) is None
