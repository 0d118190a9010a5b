"""Activation links (R3.7): single use, expiring, issued when the activation mail is delivered.

The link reads ``<public base URL>/activate/<token>``. The token is random
(``Runtime.new_secret``); only its SHA-256 is stored, with an expiry (:data:`ACTIVATION_TTL`)
and the instant it was used. A link is issued when its mail is delivered
(:func:`render_activation`, which ``deliver_pending`` calls), so no usable secret sits in the
outbox. The rules (docs/decisions.md): a resend issues a new link and older unused links keep
working until they expire; a link of a deprovisioned or inactive person is refused; a person
who activated already and follows a fresh link reaches their card again.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import attrs

from .provisioning import ACTIVATION
from .runtime import Runtime
from .storage import ActivationLink, OutboxMail, Person, Storage
from .workspaces import WorkspaceError

__all__ = [
    "ACTIVATION_LINK_PLACEHOLDER",
    "ACTIVATION_TTL",
    "REASONS",
    "ActivationError",
    "issue_link",
    "render_activation",
    "token_hash",
    "usable",
]

ACTIVATION_TTL = timedelta(days=7)
"""How long an activation link works."""

ACTIVATION_LINK_PLACEHOLDER = "{activation_link}"
"""Where a mail composer wants the link in the body; without it the link is appended."""

#: ``ActivationError.reason`` values.
REASONS = ("unknown", "expired", "used", "inactive")


class ActivationError(WorkspaceError):
    """An activation link that cannot be used; ``reason`` is ``"unknown"``, ``"expired"``,
    ``"used"`` or ``"inactive"`` (the person was deactivated or deprovisioned)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def token_hash(token: str) -> str:
    """What is stored of a link's token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def usable(person: Person | None) -> Person:
    """``person`` if an activation link may open their card; else
    :class:`ActivationError` (``"inactive"``)."""
    if person is None or person.deprovisioned or not person.active:
        raise ActivationError("inactive", "this account is not active any more")
    return person


def issue_link(
    storage: Storage,
    runtime: Runtime,
    workspace_id: str,
    person_id: str,
    base_url: str,
    ttl: timedelta = ACTIVATION_TTL,
) -> str:
    """A new activation link for the person (stored hashed, single use, expiring after
    ``ttl``). :class:`ActivationError` (``"inactive"``) for a deactivated or deprovisioned
    person. ``base_url``: the public URL the activation pages are mounted under."""
    token = runtime.new_secret()
    now = runtime.now()
    with storage.users(workspace_id) as store:
        person = usable(store.get_person(person_id))
        store.save_activation_link(
            ActivationLink(token_hash(token), workspace_id, person.id, now, now + ttl)
        )
    return f"{base_url.rstrip('/')}/activate/{token}"


def render_activation(
    storage: Storage,
    runtime: Runtime,
    mail: OutboxMail,
    base_url: str,
    ttl: timedelta = ACTIVATION_TTL,
) -> OutboxMail:
    """The mail to send for a claimed outbox mail: an activation mail gets a fresh link
    (:func:`issue_link`) in its body, at :data:`ACTIVATION_LINK_PLACEHOLDER` or appended;
    other mail is returned as it is. The hook ``deliver_pending(base_url=...)`` calls."""
    if mail.kind != ACTIVATION:
        return mail
    link = issue_link(storage, runtime, mail.workspace_id, mail.person_id, base_url, ttl)
    if ACTIVATION_LINK_PLACEHOLDER in mail.body:
        body = mail.body.replace(ACTIVATION_LINK_PLACEHOLDER, link)
    else:
        body = f"{mail.body.rstrip()}\n\nActivate your card: {link}\n"
    return attrs.evolve(mail, body=body)
