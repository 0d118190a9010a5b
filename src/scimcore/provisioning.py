"""What a SCIM write does to the product, inside the same transaction (R3, R4, R5, R9).

:class:`Provisioner` is called by :class:`scimcore.service.ScimService` with the open
:class:`~scimcore.storage.UserStore` of the operation, so user, card, template application,
outbox row and log entry are written together or not at all (R3.6). It returns the
:class:`Event` values that the service hands to subscribers after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from attrs import frozen

from .cards import (
    DEFAULT_MAPPING,
    Card,
    FieldMapping,
    FieldRule,
    assign_template,
    extract,
    new_card,
    sync_card,
)
from .runtime import Runtime
from .schema import MAPPING, SchemaRegistry
from .storage import LogEntry, OutboxMail, Person, Settings, UserStore, Workspace
from .templates import Template, choose_template

__all__ = [
    "ACTIVATION",
    "Event",
    "MailComposer",
    "Provisioner",
    "default_composer",
    "mapping_for",
    "person_email",
]

ACTIVATION = "activation"


@frozen
class Event:
    """Something that happened, delivered to subscribers after the commit.

    ``kind`` is one of ``user.provisioned``, ``user.updated``, ``user.deprovisioned`` (active
    set to false), ``user.reactivated``, ``user.deleted`` (SCIM DELETE) and ``card.changed``.
    """

    kind: str
    workspace_id: str
    person_id: str
    actor: str
    data: Mapping[str, Any] = attrs.field(factory=dict)


MailComposer = Callable[[Workspace, Person], tuple[str, str]]
"""Builds the (subject, body) of an activation email for a person."""


def default_composer(workspace: Workspace, person: Person) -> tuple[str, str]:
    """A plain activation email; hosts pass their own :data:`MailComposer`."""
    field = person.card.get("fields", {}).get("name")  # Card.from_dict(...).values()["name"]
    name = (str(field["value"]) if isinstance(field, MAPPING) else "") or person.user_name
    subject = "Activate your card"
    body = (
        f"Hello {name},\n\n"
        f"Your organisation ({workspace.slug}) has created a card for you.\n"
        "Sign in with this email address to activate your account.\n"
    )
    return subject, body


def mapping_for(settings: Settings) -> FieldMapping:
    """The workspace's R6 mapping: the default unless Card Settings restrict or extend it."""
    if settings.mapping is None:
        return DEFAULT_MAPPING
    return FieldMapping(tuple(FieldRule(**r) for r in settings.mapping))


def person_email(card: Card, user_name: str) -> str | None:
    """Where the activation email goes: the card's email, else a userName shaped like one."""
    email = card.values().get("email")
    if email:
        return email
    return user_name if "@" in user_name else None


def _active(doc: Mapping[str, Any]) -> bool:
    return doc.get("active", True) is not False


class Provisioner:
    """The product side of SCIM writes, over one open transaction."""

    def __init__(
        self,
        registry: SchemaRegistry,
        runtime: Runtime,
        composer: MailComposer = default_composer,
        log_retention: int = 10_000,
    ) -> None:
        self.registry = registry
        self.runtime = runtime
        self.composer = composer
        self.log_retention = log_retention

    def _now(self, now: datetime | None) -> datetime:
        return now if now is not None else self.runtime.now()

    def created(
        self,
        store: UserStore,
        workspace: Workspace,
        doc: Mapping[str, Any],
        now: datetime | None = None,
    ) -> list[Event]:
        """A SCIM create: card, template (R3.4), activation email (R3.5). ``now``: the
        operation's instant (default: the runtime's clock), which the person and the mail
        record."""
        settings = store.get_settings()
        mapping = mapping_for(settings)
        idp = extract(doc, mapping, self.registry)
        template = self._rule_template(store, doc, mapping)
        active = _active(doc)
        card = new_card(
            idp,
            template.name if template else None,
            dict(template.fields) if template else None,
            active=active,
        )
        now = self._now(now)
        person = Person(
            id=doc["id"],
            user_name=doc["userName"],
            email=person_email(card, doc["userName"]),
            active=active,
            deprovisioned=False,
            card=card.to_dict(),
            created_at=now,
            updated_at=now,
        )
        store.save_person(person)
        events = [
            Event("user.provisioned", workspace.id, person.id, "idp", {"template": card.template})
        ]
        if settings.activation_email:
            queued = self.queue_activation(store, workspace, person, automatic=True, now=now)
            if queued is not None:
                events.append(
                    Event("mail.queued", workspace.id, person.id, "idp", {"mail_id": queued.id})
                )
        return events

    def _rule_template(
        self, store: UserStore, doc: Mapping[str, Any], mapping: FieldMapping
    ) -> Template | None:
        """The template of the first Card Settings rule that matches the user ``doc`` with
        its current groups (R7.2, R7.5), or ``None``."""
        rules = store.list_rules()
        if not rules:
            return None
        groups = store.groups_of([doc["id"]]).get(doc["id"], [])
        name = choose_template(rules, {**doc, "groups": groups}, mapping, self.registry)
        if name is None:
            return None
        return next((t for t in store.list_templates() if t.name == name), None)

    def memberships_added(
        self,
        store: UserStore,
        workspace: Workspace,
        user_ids: Sequence[str],
        now: datetime | None = None,
    ) -> list[Event]:
        """People just added to a group: each card that has no template yet is evaluated
        again with the person's groups, and gets the template of the first rule that now
        matches (R7.5); a card that has one keeps it (R4.2). Logged with actor ``template``."""
        if not user_ids or not store.list_rules():
            return []
        mapping = mapping_for(store.get_settings())
        events: list[Event] = []
        now = self._now(now)
        for uid in user_ids:
            person = store.get_person(uid)
            if person is None or Card.from_dict(person.card).template is not None:
                continue
            doc = store.get(uid)
            template = self._rule_template(store, doc, mapping) if doc is not None else None
            if doc is None or template is None:
                continue
            card = Card.from_dict(person.card)
            idp = extract(doc, mapping, self.registry)
            assigned = assign_template(card, {}, template.name, dict(template.fields), idp)
            store.save_person(attrs.evolve(person, card=assigned.to_dict(), updated_at=now))
            store.add_log(
                LogEntry(
                    id=self.runtime.new_id(),
                    at=now,
                    operation="card.update",
                    resource_id=uid,
                    status=200,
                    detail=f"template {template.name} (group membership)",
                    token_id=None,
                    actor="template",
                ),
                self.log_retention,
            )
            events.append(
                Event(
                    "card.changed",
                    workspace.id,
                    uid,
                    "template",
                    {"fields": sorted(_changed(card, assigned)), "template": template.name},
                )
            )
        return events

    def queue_activation(
        self,
        store: UserStore,
        workspace: Workspace,
        person: Person,
        *,
        automatic: bool,
        now: datetime | None = None,
    ) -> OutboxMail | None:
        """Queue an activation email. The automatic one is unique per person (R3.5, R3.6);
        manual ones (an admin's "send activation") are not deduplicated."""
        if person.email is None:
            return None
        subject, body = self.composer(workspace, person)
        now = self._now(now)
        mail = OutboxMail(
            id=self.runtime.new_id(),
            workspace_id=workspace.id,
            person_id=person.id,
            to=person.email,
            kind=ACTIVATION,
            subject=subject,
            body=body,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            dedupe_key=f"{ACTIVATION}:{person.id}" if automatic else None,
        )
        return mail if store.enqueue_mail(mail) else None

    def updated(
        self,
        store: UserStore,
        workspace: Workspace,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        now: datetime | None = None,
    ) -> list[Event]:
        """A SCIM PUT/PATCH that changed the resource: linked fields follow (R4.1, R4.3),
        templates are not re-evaluated (R4.2), ``active`` drives the seat (R5.1)."""
        person = store.get_person(after["id"])
        if person is None:  # provisioned before the product existed: adopt it now
            return self.created(store, workspace, after, now)
        mapping = mapping_for(store.get_settings())
        card = Card.from_dict(person.card)
        synced = sync_card(card, extract(after, mapping, self.registry), mapping)
        fields_changed = synced is not card  # sync_card returns the card itself if none did
        active = _active(after)
        if synced.active != active:
            synced = Card(synced.fields, synced.template, active)
        events: list[Event] = [Event("user.updated", workspace.id, person.id, "idp")]
        if active != person.active:
            kind = "user.reactivated" if active else "user.deprovisioned"
            events.append(Event(kind, workspace.id, person.id, "idp"))
        if fields_changed or synced.active != card.active:
            changed = sorted(_changed(card, synced)) if fields_changed else []
            events.append(
                Event("card.changed", workspace.id, person.id, "idp", {"fields": changed})
            )
        store.save_person(
            attrs.evolve(
                person,
                user_name=after["userName"],
                email=person_email(synced, after["userName"]),
                active=active,
                card=synced.to_dict(),
                updated_at=self._now(now),
            )
        )
        return events

    def deleted(
        self,
        store: UserStore,
        workspace: Workspace,
        doc: Mapping[str, Any],
        now: datetime | None = None,
    ) -> list[Event]:
        """SCIM DELETE: the person stays, inactive and deprovisioned, with their card (R5.2)."""
        person = store.get_person(doc["id"])
        if person is None:
            return []
        card = attrs.evolve(Card.from_dict(person.card), active=False)
        store.save_person(
            attrs.evolve(
                person,
                active=False,
                deprovisioned=True,
                card=card.to_dict(),
                updated_at=self._now(now),
            )
        )
        return [Event("user.deleted", workspace.id, person.id, "idp")]


def _changed(a: Card, b: Card) -> set[str]:
    """The keys of the fields that differ. A field the edit kept is the same object in both
    cards and is not compared (``CardField``'s ``!=`` is two Python calls: comparing every
    field was 2 % of a PATCH's bytecodes)."""
    changed = set()
    for key in a.fields.keys() | b.fields.keys():
        old, new = a.fields.get(key), b.fields.get(key)
        if old is not new and old != new:
            changed.add(key)
    return changed
