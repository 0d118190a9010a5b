"""The product API for host apps and the CLI: Card Settings, templates, cards, activation
emails, seats and the provisioning log (R3 to R9).

Every method works on one workspace (by slug) inside one storage transaction, and every card
change is logged with who made it (R8.4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
from attrs import frozen

from .cards import (
    Card,
    CardError,
    FieldMapping,
    admin_edit,
    admin_lock,
    admin_unlock,
    apply_template,
    assign_template,
    extract,
    known_fields,
    owner_edit,
)
from .patch import parse_path
from .provisioning import Event, Provisioner, mapping_for
from .runtime import Runtime
from .schema import SchemaRegistry
from .storage import (
    PEOPLE_STATES,
    LogEntry,
    OutboxMail,
    Person,
    Settings,
    Storage,
    UserStore,
    Workspace,
)
from .templates import Rule, Template, compile_rule
from .workspaces import WorkspaceError

__all__ = ["CardView", "PeoplePage", "Product", "TemplateUpdate"]


@frozen
class CardView:
    """A person and their card, as listed by ``scimcore cards`` and the console.

    ``user_id`` is the person's id (the SCIM id they were provisioned with; it stays after a
    SCIM DELETE, R5.2): :attr:`person_id` names it so. ``activated_at``: when the person
    followed an activation link (R3.7), ``None`` if never."""

    user_id: str
    user_name: str
    active: bool
    deprovisioned: bool
    card: Card
    email: str | None = None
    activated_at: datetime | None = None

    @property
    def person_id(self) -> str:
        """The id that addresses this card unambiguously (user names can repeat, R5.2)."""
        return self.user_id

    @property
    def state(self) -> str:
        """``active``, ``inactive`` or ``deprovisioned`` (R5.1, R5.2)."""
        if self.deprovisioned:
            return "deprovisioned"
        return "active" if self.active else "inactive"

    @classmethod
    def of(cls, person: Person) -> CardView:
        """The view of a stored person."""
        return cls(
            person.id,
            person.user_name,
            person.active,
            person.deprovisioned,
            Card.from_dict(person.card),
            person.email,
            person.activated_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "user_name": self.user_name,
            "email": self.email,
            "active": self.active,
            "deprovisioned": self.deprovisioned,
            "activated_at": self.activated_at.isoformat() if self.activated_at else None,
            "template": self.card.template,
            "fields": self.card.to_dict()["fields"],
        }


@frozen
class PeoplePage:
    """One page of :meth:`Product.people`: how many people match, and this page's cards."""

    total: int
    items: Sequence[CardView]


@frozen
class TemplateUpdate:
    """What :meth:`Product.set_template` did: the template as saved and how many cards the
    change updated (R7.1)."""

    name: str
    fields: Mapping[str, str]
    cards_updated: int

    @property
    def template(self) -> Template:
        return Template(self.name, self.fields)


class Product:
    """Administration of the card product over a :class:`~scimcore.storage.Storage`."""

    def __init__(
        self,
        storage: Storage,
        registry: SchemaRegistry,
        runtime: Runtime,
        provisioner: Provisioner,
        emit: Callable[[list[Event]], None],
        log_retention: int = 10_000,
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.runtime = runtime
        self.provisioner = provisioner
        self._emit = emit
        self._retention = log_retention

    def _workspace(self, slug: str) -> Workspace:
        ws = self.storage.get_workspace(slug)
        if ws is None:
            raise WorkspaceError(f"no workspace {slug!r}")
        return ws

    def _log(
        self, store: UserStore, actor: str, operation: str, target: str | None, detail: str
    ) -> None:
        store.add_log(
            LogEntry(
                id=self.runtime.new_id(),
                at=self.runtime.now(),
                operation=operation,
                resource_id=target,
                status=200,
                detail=detail,
                token_id=None,
                actor=actor,
            ),
            self._retention,
        )

    # --- settings (R3.5, R6) --------------------------------------------------------------------

    def settings(self, slug: str) -> Settings:
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.get_settings()

    def update_settings(
        self,
        slug: str,
        *,
        activation_email: bool | None = None,
        mapping: FieldMapping | None = None,
    ) -> Settings:
        """Change Card Settings; ``None`` leaves a setting as it is.

        ``mapping`` replaces the workspace's R6 mapping (derive it from
        :data:`~scimcore.cards.DEFAULT_MAPPING` with ``restrict``/``extend``). Every path is
        checked now: a path that names no attribute raises
        :class:`~scimcore.errors.InvalidPathError`.
        """
        if mapping is not None:
            for rule in mapping.rules:
                for path in (rule.path, rule.fallback):
                    if path is not None:
                        parse_path(path, self.registry)
        with self.storage.users(self._workspace(slug).id) as store:
            settings = store.get_settings()
            if activation_email is not None:
                settings = attrs.evolve(settings, activation_email=activation_email)
            if mapping is not None:
                settings = attrs.evolve(settings, mapping=mapping.to_list())
            store.save_settings(settings)
            keys = ",".join(mapping_for(settings).field_keys())
            state = "on" if settings.activation_email else "off"
            self._log(store, "admin", "settings", None, f"activation_email={state} fields={keys}")
            return settings

    def mapping(self, slug: str) -> FieldMapping:
        """The workspace's card field mapping (R6)."""
        return mapping_for(self.settings(slug))

    # --- templates and rules (R7) -------------------------------------------------------------

    @staticmethod
    def _check_keys(store: UserStore, keys: Iterable[str]) -> None:
        """Refuse a card field key the workspace does not know (never create one)."""
        known = known_fields(mapping_for(store.get_settings()))
        unknown = sorted(k for k in keys if k not in known)
        if unknown:
            raise WorkspaceError(
                f"unknown card field {', '.join(map(repr, unknown))}: "
                f"the fields are {', '.join(known)}"
            )

    def templates(self, slug: str) -> Sequence[Template]:
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.list_templates()

    def create_template(self, slug: str, name: str, fields: Mapping[str, str]) -> Template:
        if not name.strip():
            raise WorkspaceError("a template needs a name")
        with self.storage.users(self._workspace(slug).id) as store:
            if any(t.name == name for t in store.list_templates()):
                raise WorkspaceError(f"template {name!r} already exists")
            self._check_keys(store, fields)
            template = Template(name, dict(fields))
            store.save_template(template)
            self._log(store, "admin", "template.create", None, f"template {name}")
            return template

    @staticmethod
    def _template(store: UserStore, slug: str, name: str) -> Template:
        found = next((t for t in store.list_templates() if t.name == name), None)
        if found is None:
            raise WorkspaceError(f"no template {name!r} in {slug!r}")
        return found

    def _retemplate(
        self,
        store: UserStore,
        ws: Workspace,
        name: str,
        change: Callable[[Card, Mapping[str, str]], Card],
    ) -> list[Event]:
        """Apply ``change`` (given a card and its IdP values) to every card of template
        ``name``; one log entry and event per card changed."""
        events: list[Event] = []
        mapping = mapping_for(store.get_settings())
        for listed in store.list_people():
            if Card.from_dict(listed.card).template != name:
                continue
            # The user, then the person, read again: a backend may lock the rows it
            # returns (PostgreSQL; in the IdP's order), so that an IdP update of this card
            # in between waits instead of being overwritten.
            doc = store.get(listed.id)
            person = store.get_person(listed.id)
            if person is None:
                continue
            card = Card.from_dict(person.card)
            if card.template != name:
                continue
            idp = extract(doc, mapping, self.registry) if doc is not None else {}
            updated = change(card, idp)
            if updated is not card and updated != card:
                store.save_person(self._with_card(person, updated))
                self._log(store, "template", "card.update", person.id, f"template {name}")
                events.append(Event("card.changed", ws.id, person.id, "template"))
        return events

    def set_template(self, slug: str, name: str, fields: Mapping[str, str]) -> TemplateUpdate:
        """Change template fields (an empty value removes the field) and update every card that
        still inherits them (R7.1); the result tells how many cards changed."""
        ws = self._workspace(slug)
        with self.storage.users(ws.id) as store:
            old = self._template(store, slug, name)
            self._check_keys(store, (k for k, v in fields.items() if v != ""))
            merged = {**old.fields, **fields}
            new = Template(name, {k: v for k, v in merged.items() if v != ""})
            store.save_template(new)
            self._log(store, "admin", "template.set", None, f"template {name}")
            events = self._retemplate(
                store,
                ws,
                name,
                lambda card, idp: apply_template(card, name, old.fields, new.fields, idp),
            )
        self._emit(events)
        return TemplateUpdate(new.name, new.fields, len(events))

    def delete_template(self, slug: str, name: str) -> int:
        """Delete a template that no rule uses; the cards it was applied to lose it: their
        inherited fields fall back to the IdP's values or disappear (as R7.1 does for a field
        removed from a template). Returns how many cards changed."""
        ws = self._workspace(slug)
        with self.storage.users(ws.id) as store:
            old = self._template(store, slug, name)
            users = [r.id for r in store.list_rules() if r.template == name]
            if users:
                raise WorkspaceError(
                    f"template {name!r} is used by rule {', '.join(users)}: remove the rule first"
                )
            events = self._retemplate(
                store,
                ws,
                name,
                lambda card, idp: assign_template(card, old.fields, None, {}, idp),
            )
            store.delete_template(name)
            self._log(
                store, "admin", "template.delete", None, f"template {name} ({len(events)} cards)"
            )
        self._emit(events)
        return len(events)

    def rules(self, slug: str) -> Sequence[Rule]:
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.list_rules()

    def add_rule(self, slug: str, template: str, filter: str) -> Rule:
        """Append a rule; the filter is validated now (R7.4)."""
        with self.storage.users(self._workspace(slug).id) as store:
            self._template(store, slug, template)
            compile_rule(filter, mapping_for(store.get_settings()), self.registry)
            existing = store.list_rules()
            position = max((r.position for r in existing), default=0) + 1
            rule = Rule(self.runtime.new_id(), filter, template, position)
            store.save_rule(rule)
            self._log(store, "admin", "rule.add", None, f"{filter} -> {template}")
            return rule

    def remove_rule(self, slug: str, rule_id: str) -> None:
        with self.storage.users(self._workspace(slug).id) as store:
            if not store.delete_rule(rule_id):
                raise WorkspaceError(f"no rule {rule_id!r} in {slug!r}")
            self._log(store, "admin", "rule.remove", None, rule_id)

    def move_rule(self, slug: str, rule_id: str, position: int) -> Sequence[Rule]:
        """Move a rule to ``position`` (1 = evaluated first; beyond the end: last) and number
        the rules 1, 2, 3 ... in their new order (R7.2). Returns the rules in order."""
        with self.storage.users(self._workspace(slug).id) as store:
            rules = list(store.list_rules())
            moving = next((r for r in rules if r.id == rule_id), None)
            if moving is None:
                raise WorkspaceError(f"no rule {rule_id!r} in {slug!r}")
            if position < 1:
                raise WorkspaceError("a rule's position is 1 or more")
            rules.remove(moving)
            rules.insert(min(position, len(rules) + 1) - 1, moving)
            ordered = [attrs.evolve(r, position=n) for n, r in enumerate(rules, start=1)]
            for rule in ordered:
                store.save_rule(rule)
            self._log(store, "admin", "rule.move", None, f"{rule_id} to {position}")
            return ordered

    # --- people and cards (R5, R8) ------------------------------------------------------------

    def cards(self, slug: str) -> list[CardView]:
        """Every person's card, inactive and deprovisioned people included (oldest first)."""
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return [CardView.of(p) for p in store.list_people()]

    def people(
        self,
        slug: str,
        *,
        search: str = "",
        state: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> PeoplePage:
        """A page of the Team Cards view, ordered by user name (case-insensitive).

        ``search`` matches people whose user name, e-mail or card name starts with it,
        case-insensitively (a prefix, so that an index answers at any size); ``state``:
        ``None`` (everyone), ``"active"``, ``"inactive"`` or ``"deprovisioned"``."""
        if state is not None and state not in PEOPLE_STATES:
            raise WorkspaceError(f"state must be one of {', '.join(PEOPLE_STATES)}")
        if offset < 0 or not 0 <= limit <= 1000:
            raise WorkspaceError("offset is 0 or more and limit between 0 and 1000")
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            total, people = store.page_people(search.strip().casefold(), state, offset, limit)
        return PeoplePage(total, [CardView.of(p) for p in people])

    def card(self, slug: str, person_id: str) -> CardView:
        """One person's card by person id; :class:`WorkspaceError` if the workspace has none
        (another workspace's ids included)."""
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return CardView.of(self._locate(store, None, person_id))

    @staticmethod
    def _locate(store: UserStore, user_name: str | None, person_id: str | None) -> Person:
        """The person with ``person_id``, else the one with ``user_name`` (case-insensitive;
        a live one before a deprovisioned one, R5.2)."""
        if person_id is not None:
            person = store.get_person(person_id)
            if person is None:
                raise WorkspaceError(f"no person {person_id!r}")
            return person
        if user_name is None:
            raise WorkspaceError("name the card by user name or person id")
        folded = user_name.casefold()
        _, candidates = store.page_people(folded, None, 0, 1000)
        found = [p for p in candidates if p.user_name.casefold() == folded]
        live = [p for p in found if not p.deprovisioned]
        if not found:
            raise WorkspaceError(f"no user {user_name!r}")
        return max(live or found, key=lambda p: (p.created_at, p.id))

    def _with_card(self, person: Person, card: Card) -> Person:
        return attrs.evolve(person, card=card.to_dict(), updated_at=self.runtime.now())

    def _edit(
        self,
        slug: str,
        who: tuple[str | None, str | None],
        actor: str,
        key: str,
        change: Callable[[Card, UserStore, Person], Card],
    ) -> Card:
        ws = self._workspace(slug)
        with self.storage.users(ws.id) as store:
            # Read again by id: a backend may lock the row it returns (PostgreSQL), so that an
            # IdP update of the same card in between waits instead of being overwritten.
            person = store.get_person(self._locate(store, *who).id)
            assert person is not None
            card = Card.from_dict(person.card)
            try:
                updated = change(card, store, person)
            except CardError as exc:
                raise WorkspaceError(str(exc)) from None
            if updated != card:
                store.save_person(self._with_card(person, updated))
                self._log(store, actor, "card.update", person.id, f"{key} by {actor}")
        if updated != card:
            self._emit([Event("card.changed", ws.id, person.id, actor, {"fields": [key]})])
        return updated

    def _field_edit(
        self,
        slug: str,
        who: tuple[str | None, str | None],
        actor: str,
        key: str,
        change: Callable[[Card], Card],
    ) -> Card:
        """An edit of one field ``key``, which the workspace must know."""

        def checked(card: Card, store: UserStore, _: Person) -> Card:
            self._check_keys(store, [key])
            return change(card)

        return self._edit(slug, who, actor, key, checked)

    def admin_edit(
        self,
        slug: str,
        user_name: str | None,
        key: str,
        value: str,
        *,
        person_id: str | None = None,
    ) -> Card:
        """An admin edits a field: it is unlinked (R8.1). The card: ``person_id``, else
        ``user_name``."""
        return self._field_edit(
            slug, (user_name, person_id), "admin", key, lambda c: admin_edit(c, key, value)
        )

    def unlock(
        self, slug: str, user_name: str | None, key: str, *, person_id: str | None = None
    ) -> Card:
        """An admin unlocks a field for the owner: it is unlinked (R8.2)."""
        return self._field_edit(
            slug, (user_name, person_id), "admin", key, lambda c: admin_unlock(c, key)
        )

    def lock(
        self, slug: str, user_name: str | None, key: str, *, person_id: str | None = None
    ) -> Card:
        """An admin locks a field again (R8.5); it stays unlinked."""
        return self._field_edit(
            slug, (user_name, person_id), "admin", key, lambda c: admin_lock(c, key)
        )

    def owner_edit(
        self,
        slug: str,
        user_name: str | None,
        key: str,
        value: str,
        *,
        person_id: str | None = None,
    ) -> Card:
        """The owner edits an unlocked field; locked fields are refused (R8.3)."""
        return self._field_edit(
            slug, (user_name, person_id), "owner", key, lambda c: owner_edit(c, key, value)
        )

    def assign_template(
        self,
        slug: str,
        user_name: str | None,
        template: str | None,
        *,
        person_id: str | None = None,
    ) -> Card:
        """An admin assigns a template to an existing card by hand (R7.6), or removes it
        (``None``): the card inherits the template's fields as in R7.1 and R7.3."""

        def change(card: Card, store: UserStore, person: Person) -> Card:
            new = self._template(store, slug, template) if template is not None else None
            templates = {t.name: t for t in store.list_templates()}
            old = templates.get(card.template) if card.template is not None else None
            doc = store.get(person.id)  # None after a SCIM DELETE: no IdP values
            idp = extract(doc, mapping_for(store.get_settings()), self.registry) if doc else {}
            return assign_template(
                card,
                old.fields if old is not None else {},
                template,
                new.fields if new is not None else {},
                idp,
            )

        return self._edit(slug, (user_name, person_id), "admin", "template", change)

    # --- activation email, seats, log (R3.5, R5.1, R9.2) ------------------------------------------

    def send_activation(
        self,
        slug: str,
        user_names: Iterable[str] = (),
        *,
        person_ids: Iterable[str] = (),
        actor: str = "admin",
    ) -> list[OutboxMail]:
        """Queue activation emails by hand (R3.5), for one or many people (by user name or
        person id): all of them or, when one cannot get one, none."""
        ws = self._workspace(slug)
        queued: list[OutboxMail] = []
        who = [(n, None) for n in user_names] + [(None, i) for i in person_ids]
        with self.storage.users(ws.id) as store:
            for user_name, person_id in who:
                person = self._locate(store, user_name, person_id)
                name = person.user_name
                if person.deprovisioned or not person.active:
                    raise WorkspaceError(f"{name!r} is not an active user")
                mail = self.provisioner.queue_activation(store, ws, person, automatic=False)
                if mail is None:
                    raise WorkspaceError(f"{name!r} has no email address")
                queued.append(mail)
                self._log(store, actor, "activation.send", person.id, mail.to)
        return queued

    def outbox(self, slug: str) -> Sequence[OutboxMail]:
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.list_outbox()

    def seats(self, slug: str) -> int:
        """Active users: deactivated and deprovisioned people do not count (R5.1, R5.2)."""
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.count_seats()

    def log(self, slug: str, limit: int = 100) -> Sequence[LogEntry]:
        """The provisioning log, newest first (R9.2)."""
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.list_log(limit)
