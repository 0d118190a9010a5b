"""Activation links (R3.7): single use, expiring, issued when the activation mail is delivered.

The link reads ``<public base URL>/activate/<token>``. The token is random
(``Runtime.new_secret``); only its SHA-256 is stored, with an expiry (:data:`ACTIVATION_TTL`)
and the instant it was used. A link is issued when its mail is delivered
(:func:`render_activation`; ``deliver_pending`` calls :func:`render_activations`, which issues
the links of a whole delivery run in one transaction per workspace), so no usable secret sits
in the outbox. The rules (docs/decisions.md): a resend issues a new link and older unused links keep
working until they expire; a link of a deprovisioned or inactive person is refused; a person
who activated already and follows a fresh link reaches their card again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta

import attrs

from .provisioning import ACTIVATION
from .runtime import Runtime
from .storage import ActivationLink, OutboxMail, Person, Storage, UserStore
from .workspaces import WorkspaceError

__all__ = [
    "ACTIVATION_LINK_PLACEHOLDER",
    "ACTIVATION_TTL",
    "REASONS",
    "ActivationError",
    "issue_link",
    "render_activation",
    "render_activations",
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
    with storage.users(workspace_id) as store:
        return _issue(store, runtime, workspace_id, person_id, base_url, ttl)


def _issue(
    store: UserStore,
    runtime: Runtime,
    workspace_id: str,
    person_id: str,
    base_url: str,
    ttl: timedelta,
) -> str:
    """:func:`issue_link` in the open unit of work ``store``; raises before it writes."""
    token = runtime.new_secret()
    now = runtime.now()
    person = usable(store.get_person(person_id))
    store.save_activation_link(
        ActivationLink(token_hash(token), workspace_id, person.id, now, now + ttl)
    )
    return f"{base_url.rstrip('/')}/activate/{token}"


def _with_link(mail: OutboxMail, link: str) -> OutboxMail:
    if ACTIVATION_LINK_PLACEHOLDER in mail.body:
        body = mail.body.replace(ACTIVATION_LINK_PLACEHOLDER, link)
    else:
        body = f"{mail.body.rstrip()}\n\nActivate your card: {link}\n"
    return attrs.evolve(mail, body=body)


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
    return _with_link(
        mail, issue_link(storage, runtime, mail.workspace_id, mail.person_id, base_url, ttl)
    )


def render_activations(
    storage: Storage,
    runtime: Runtime,
    mails: Sequence[OutboxMail],
    base_url: str,
    ttl: timedelta = ACTIVATION_TTL,
) -> list[OutboxMail | Exception]:
    """:func:`render_activation` for each of ``mails``, in their order, with the links of one
    workspace issued in one transaction (a delivery run's mails: one write, not one per mail).
    Each item is the mail to send or why it cannot be: :class:`ActivationError` for that
    person alone, or the storage's error for every activation mail of a workspace whose
    transaction failed (none of its links was stored)."""
    out: list[OutboxMail | Exception] = list(mails)
    by_workspace: dict[str, list[int]] = {}
    for n, mail in enumerate(mails):
        if mail.kind == ACTIVATION:
            by_workspace.setdefault(mail.workspace_id, []).append(n)
    for workspace_id, indexes in by_workspace.items():
        try:
            with storage.users(workspace_id) as store:
                for n in indexes:
                    mail = mails[n]
                    try:
                        link = _issue(store, runtime, workspace_id, mail.person_id, base_url, ttl)
                    except ActivationError as exc:
                        out[n] = exc
                    else:
                        out[n] = _with_link(mail, link)
        except Exception as exc:  # nothing of this workspace was stored: no link may leave
            for n in indexes:
                out[n] = exc
    return out
