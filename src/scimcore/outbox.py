"""Mail delivery from the transactional outbox (R3.5, R3.6).

SCIM creates write an :class:`~scimcore.storage.OutboxMail` row in the same transaction as the
user and card. :func:`deliver_pending` (run by ``scimcore mail deliver``, or from a host app's
own worker) claims due rows, sends them through a :class:`Mailer`, and records the outcome:
``sent``, or a retry with exponential backoff, or ``failed`` after ``max_attempts``.

Queueing is exactly once per person (the outbox row is unique per person and written in the
user's transaction). Delivery is at least once at the SMTP boundary: a process killed after the
SMTP server accepted a mail but before ``sent`` was recorded sends it again when the claim's
lease expires; nothing short of a two-phase protocol with the SMTP server can do better.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

import attrs
from attrs import frozen

from .activation import render_activation
from .runtime import Runtime
from .storage import OutboxMail, Storage

__all__ = ["DeliveryReport", "Mailer", "RecordingMailer", "deliver_pending"]


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
class DeliveryReport:
    """What one delivery run did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0


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
) -> DeliveryReport:
    """Send due mail once; returns counts. Safe to run from several processes at once: a mail
    is claimed by one of them (``Storage.claim_mail``). ``base_url`` (the public URL of the
    activation pages): an activation mail gets a fresh single-use link in its body when it is
    sent (:func:`scimcore.activation.render_activation`); without it, it is sent as queued."""
    now = runtime.now()
    claimed: Sequence[OutboxMail] = storage.claim_mail(now, now + lease, limit)
    report = DeliveryReport()
    for mail in claimed:
        attempts = mail.attempts + 1
        try:
            outgoing = render_activation(storage, runtime, mail, base_url) if base_url else mail
            mailer.send(outgoing.to, outgoing.subject, outgoing.body)
        except Exception as exc:  # any failure of the transport is retried
            error = f"{type(exc).__name__}: {exc}"[:500]
            if attempts >= max_attempts:
                outcome = attrs.evolve(mail, status="failed", attempts=attempts, last_error=error)
                report = attrs.evolve(report, failed=report.failed + 1)
            else:
                delay = base_delay * (2 ** (attempts - 1))
                outcome = attrs.evolve(
                    mail,
                    status="pending",
                    attempts=attempts,
                    last_error=error,
                    next_attempt_at=runtime.now() + delay,
                )
                report = attrs.evolve(report, retrying=report.retrying + 1)
        else:
            outcome = attrs.evolve(
                mail, status="sent", attempts=attempts, sent_at=runtime.now(), last_error=None
            )
            report = attrs.evolve(report, sent=report.sent + 1)
        storage.finish_mail(outcome)
    return report
