"""The records a :class:`~scimcore.storage.Storage` stores and returns: frozen attrs values
(workspaces, admins, tokens, people and their cards, settings, mail, log entries, pages), and
the reference semantics of a people search. :mod:`scimcore.storage` re-exports every name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from attrs import frozen

__all__ = [
    "PEOPLE_STATES",
    "TOKEN_ACTIVE",
    "TOKEN_DEAD",
    "TOKEN_DELETED",
    "ActivationLink",
    "Admin",
    "Grant",
    "Image",
    "LogEntry",
    "OutboxMail",
    "Page",
    "Person",
    "Settings",
    "SortSpec",
    "TokenRecord",
    "Workspace",
    "card_name",
    "person_matches",
    "search_texts",
]


@frozen
class Workspace:
    """A tenant (R1.1). ``slug`` is its public, unique name."""

    id: str
    slug: str
    created_at: datetime


@frozen
class Admin:
    """An administrator of one workspace (R2.3: tokens live only while their admin does)."""

    workspace_id: str
    email: str
    active: bool
    created_at: datetime
    #: An argon2id hash of the console sign-in password (``scimcore_adapters.passwords``);
    #: ``None``: the admin cannot sign in with a password.
    password_hash: str | None = None


#: :attr:`TokenRecord.state` of a token that works (while its admin is active, R2.3).
TOKEN_ACTIVE = "active"
#: A token whose admin was deactivated: dead for good (R2.5), listed until deleted.
TOKEN_DEAD = "dead"
#: A deleted token: not listed; its tombstone only attributes refused requests (R9.2).
TOKEN_DELETED = "deleted"


@frozen
class TokenRecord:
    """A stored bearer token: never the secret, only its SHA-256 hash (R2.1).

    ``state`` is :data:`TOKEN_ACTIVE`, or, for a tombstone, :data:`TOKEN_DEAD` (its admin was
    deactivated: it never works again, R2.5; ``dead_reason`` says why) or
    :data:`TOKEN_DELETED`."""

    id: str
    workspace_id: str
    secret_hash: str
    label: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None = None
    state: str = TOKEN_ACTIVE
    dead_reason: str | None = None


@frozen
class Grant:
    """What a bearer token grants, read in one step: the token, its workspace, and whether
    the admin who created it is still an active admin (R2.3)."""

    token: TokenRecord
    workspace: Workspace
    admin_active: bool


@frozen
class Person:
    """A provisioned person and their card (R3.2, R5).

    ``id`` is the SCIM resource id. The person outlives the SCIM resource: after a SCIM DELETE
    ``deprovisioned`` is true and ``active`` false (R5.2). ``card`` is
    :meth:`scimcore.cards.Card.to_dict` output. Seats are people who are active and not
    deprovisioned (R5.1).
    """

    id: str
    user_name: str
    email: str | None
    active: bool
    deprovisioned: bool
    card: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    #: When the person followed an activation link (R3.7); ``None``: not activated.
    activated_at: datetime | None = None


#: ``state`` of :meth:`UserStore.page_people`: who is listed.
PEOPLE_STATES = ("active", "inactive", "deprovisioned")


def person_matches(person: Person, search: str, state: str | None) -> bool:
    """Whether :meth:`UserStore.page_people` lists ``person`` for ``search`` (already
    casefolded) and ``state``: the reference semantics every backend follows. ``search``
    matches when the user name, the e-mail or the card's ``name`` starts with it, compared
    casefolded; ``state`` ``active``: active and not deprovisioned; ``inactive``: inactive and
    not deprovisioned; ``deprovisioned``: deleted by SCIM (R5.2)."""
    if state == "active" and not (person.active and not person.deprovisioned):
        return False
    if state == "inactive" and (person.active or person.deprovisioned):
        return False
    if state == "deprovisioned" and not person.deprovisioned:
        return False
    if not search:
        return True
    return any(text.startswith(search) for text in search_texts(person))


def card_name(card: Mapping[str, Any]) -> str | None:
    """The value of a card's field ``name`` (R6; ``card`` as :attr:`Person.card` holds it),
    ``None`` when empty or absent."""
    field = card.get("fields", {}).get("name")
    name = field.get("value") if isinstance(field, dict) else None
    return name if isinstance(name, str) and name else None


def search_texts(person: Person) -> tuple[str, ...]:
    """What a people search matches, casefolded: user name, e-mail, the card's ``name``."""
    texts = [person.user_name.casefold()]
    name = card_name(person.card)
    if person.email:
        texts.append(person.email.casefold())
    if name is not None:
        texts.append(name.casefold())
    return tuple(texts)


@frozen
class ActivationLink:
    """An activation link (R3.7): only the SHA-256 of its random token is stored. Single use
    (``used_at``), expiring (``expires_at``)."""

    token_hash: str
    workspace_id: str
    person_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@frozen
class Image:
    """An image stored in a workspace (a profile photo or a logo; see :mod:`scimcore.images`).
    ``content_type`` is what its bytes are (PNG, JPEG, GIF or WebP)."""

    id: str
    content_type: str
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    created_at: datetime | None = None


@frozen
class Settings:
    """A workspace's Card Settings (R3.5, R6, R7.2): activation email on/off, and the
    field mapping when the workspace restricts or extends the default (``None``: default)."""

    activation_email: bool = True
    mapping: list[dict[str, Any]] | None = None


@frozen
class OutboxMail:
    """A queued email (transactional outbox, R3.5, R3.6).

    ``dedupe_key`` makes the automatic activation email unique per person: a second enqueue
    with the same key is refused by the storage. ``status`` is ``pending``, ``sending``,
    ``sent`` or ``failed``.
    """

    id: str
    workspace_id: str
    person_id: str
    to: str
    kind: str
    subject: str
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    dedupe_key: str | None = None
    sent_at: datetime | None = None
    last_error: str | None = None


@frozen
class LogEntry:
    """One provisioning log entry (R8.4, R9.2): never a secret."""

    id: str
    at: datetime
    operation: str
    resource_id: str | None
    status: int
    detail: str
    token_id: str | None
    actor: str = "idp"


@frozen
class SortSpec:
    """``sortBy`` resolved to a document path, and ``sortOrder`` (RFC 7644 §3.4.2.3).

    ``case_exact``: strings compare as they are, else casefolded. ``chronological``: the
    attribute is a ``dateTime``, values compare as the instants they name (a value that is
    not a date-time counts as unassigned)."""

    path: tuple[str, ...]
    descending: bool = False
    case_exact: bool = False
    chronological: bool = False


@frozen
class Page:
    """One page of a query: the total number of matches and the documents of the page."""

    total: int
    documents: Sequence[dict[str, Any]]
