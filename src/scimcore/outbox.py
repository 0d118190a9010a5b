"""Mail delivery from the transactional outbox (R3.5, R3.6).

SCIM creates write an :class:`~scimcore.storage.OutboxMail` row in the same transaction as the
user and card. :func:`deliver_pending` (run by ``scimcore mail deliver``, by the servers'
background worker, or from a host app's own worker) claims due rows, sends them through a
:class:`Mailer`, and records the outcome: ``sent``, or a retry with exponential backoff, or
``failed`` after ``max_attempts``. Its :class:`DeliveryReport` names every failed attempt with
its reason. :func:`retry_mail` puts a ``failed`` mail back in the queue.

Queueing is exactly once per person (the outbox row is unique per person and written in the
user's transaction). Delivery is at least once at the SMTP boundary: a process killed after the
SMTP server accepted a mail but before ``sent`` was recorded sends it again when the claim's
lease expires; nothing short of a two-phase protocol with the SMTP server can do better.

A run claims its mail in one transaction and issues the activation links of each workspace in
one (:func:`~scimcore.activation.render_activations`). Each outcome is recorded right after
its send, so a crash resends at most the one mail in flight (R3.6); ``finish_every`` lets a
host trade that for fewer transactions: outcomes then go together
(``MailBatches.finish_mails``) that often (docs/decisions.md, session 17).

The time of a failed attempt is kept with its reason: ``last_error`` reads
``"<ISO 8601 time> <reason>"`` (no column of its own, so no schema change); :func:`last_attempt`
splits it again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import attrs
from attrs import frozen

from .activation import ActivationError, render_activations
from .runtime import Runtime
from .storage import MailBatches, OutboxMail, Storage
from .workspaces import WorkspaceError

__all__ = [
    "DeliveryFailure",
    "DeliveryReport",
    "LastAttempt",
    "Mailer",
    "RecordingMailer",
    "deliver_pending",
    "finish_mails",
    "last_attempt",
    "retry_mail",
]

#: A reason is cut to this many characters (the SMTP server's reply can be long).
_MAX_REASON = 480


class Mailer(Protocol):
    """Sends one email; raises any exception on failure (the delivery step retries)."""

    def send(self, to: str, subject: str, body: str) -> None: ...


class RecordingMailer:
    """A :class:`Mailer` that keeps what it was asked to send (tests, dry runs)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append((to, subject, body))


@frozen
class DeliveryFailure:
    """One attempt that failed: which mail, why, and whether it will be tried again
    (``final`` false: at ``next_attempt_at``) or was given up (``final``: status ``failed``,
    until :func:`retry_mail`). ``reason`` is the exception's type and message, never a
    credential (the mailers put none in their errors)."""

    mail_id: str
    workspace_id: str
    to: str
    attempts: int
    reason: str
    final: bool
    at: datetime
    next_attempt_at: datetime | None = None


@frozen
class DeliveryReport:
    """What one delivery run did: counts, and each failed attempt (``failures``)."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    failures: tuple[DeliveryFailure, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no attempt of this run failed."""
        return not self.failures


@frozen
class LastAttempt:
    """When a mail was last tried and, if that attempt failed, why (see :func:`last_attempt`)."""

    at: datetime | None
    error: str | None


def last_attempt(mail: OutboxMail) -> LastAttempt:
    """The time and error of ``mail``'s last delivery attempt: ``sent_at`` for a sent mail,
    the time recorded with ``last_error`` for a failed attempt, ``None`` when never tried."""
    if mail.status == "sent":
        return LastAttempt(mail.sent_at, None)
    if not mail.last_error:
        return LastAttempt(None, None)
    stamp, _, reason = mail.last_error.partition(" ")
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:  # a reason recorded without its time (before this format)
        return LastAttempt(None, mail.last_error)
    return LastAttempt(at, reason)


def deliver_pending(
    storage: Storage,
    mailer: Mailer,
    runtime: Runtime,
    *,
    limit: int = 100,
    max_attempts: int = 5,
    base_delay: timedelta = timedelta(minutes=1),
    lease: timedelta = timedelta(minutes=5),
    base_url: str | None = None,
    finish_every: float = 0.0,
) -> DeliveryReport:
    """Send due mail once; returns what happened, failures with their reasons. Safe to run
    from several processes at once: a mail is claimed by one of them (``Storage.claim_mail``).
    A failed attempt is retried after ``base_delay``, doubling each time; the
    ``max_attempts``-th failure marks the mail ``failed``. ``base_url`` (the public URL of the
    activation pages): an activation mail gets a fresh single-use link in its body when it is
    sent (:func:`scimcore.activation.render_activations`: the run's links in one transaction
    per workspace); without it, it is sent as queued.
    An activation mail whose person is no longer active fails at once (no link is issued;
    :func:`retry_mail` after a reactivation). ``finish_every``: seconds the run keeps outcomes
    before it records them, together (0: each right after its send, so that a crash resends
    at most the mail in flight; more: fewer transactions, but a crash resends every mail
    handed over since the last record; keep it well under ``lease``)."""
    now = runtime.now()
    claimed: Sequence[OutboxMail] = storage.claim_mail(now, now + lease, limit)
    if not claimed:
        return DeliveryReport()
    ready = render_activations(storage, runtime, claimed, base_url) if base_url else claimed
    sent = retrying = 0
    failures: list[DeliveryFailure] = []
    outcomes: list[OutboxMail] = []
    since = time.monotonic()
    for mail, outgoing in zip(claimed, ready, strict=True):
        attempts = mail.attempts + 1
        try:
            if isinstance(outgoing, Exception):  # no link could be issued
                raise outgoing
            mailer.send(outgoing.to, outgoing.subject, outgoing.body)
        except Exception as exc:  # any failure of the transport is retried
            at = runtime.now()
            reason = f"{type(exc).__name__}: {exc}"[:_MAX_REASON]
            final = attempts >= max_attempts or isinstance(exc, ActivationError)
            outcome = attrs.evolve(
                mail,
                status="failed" if final else "pending",
                attempts=attempts,
                last_error=f"{at.isoformat()} {reason}",
                next_attempt_at=at if final else at + base_delay * (2 ** (attempts - 1)),
            )
            retrying += not final
            failures.append(
                DeliveryFailure(
                    mail.id,
                    mail.workspace_id,
                    mail.to,
                    attempts,
                    reason,
                    final,
                    at,
                    None if final else outcome.next_attempt_at,
                )
            )
        else:
            outcome = attrs.evolve(
                mail, status="sent", attempts=attempts, sent_at=runtime.now(), last_error=None
            )
            sent += 1
        outcomes.append(outcome)
        if time.monotonic() - since >= finish_every:
            finish_mails(storage, outcomes)
            outcomes, since = [], time.monotonic()
    finish_mails(storage, outcomes)
    return DeliveryReport(sent, retrying, len(failures) - retrying, tuple(failures))


def finish_mails(storage: Storage, mails: Sequence[OutboxMail]) -> None:
    """Record delivery outcomes: in one transaction on a storage with
    :class:`~scimcore.storage.MailBatches`, else ``storage.finish_mail`` for each."""
    if not mails:
        return
    if isinstance(storage, MailBatches):
        storage.finish_mails(mails)
        return
    for mail in mails:
        storage.finish_mail(mail)


def retry_mail(storage: Storage, runtime: Runtime, slug: str, mail_id: str) -> OutboxMail:
    """Queue a ``failed`` mail of workspace ``slug`` again, due now, with a fresh series of
    ``max_attempts`` attempts (its last error stays visible until the next attempt).
    Raises :class:`~scimcore.workspaces.WorkspaceError` for an unknown workspace or mail, or
    a mail that is not ``failed`` (a pending one is already queued; a sent one is not sent
    twice)."""
    workspace = storage.get_workspace(slug)
    if workspace is None:
        raise WorkspaceError(f"no workspace {slug!r}")
    with storage.users(workspace.id, readonly=True) as store:
        mail = next((m for m in store.list_outbox() if m.id == mail_id), None)
    if mail is None:
        raise WorkspaceError(f"no mail {mail_id!r} in workspace {slug!r}")
    if mail.status != "failed":
        raise WorkspaceError(f"mail {mail_id} is {mail.status}: only a failed mail is retried")
    queued = attrs.evolve(mail, status="pending", attempts=0, next_attempt_at=runtime.now())
    storage.finish_mail(queued)
    return queued
