"""The product API for host apps and the CLI: Card Settings, templates, cards, activation
emails, seats and the provisioning log (R3 to R9).

Every method works on one workspace (by slug) inside one storage transaction, and every card
change is logged with who made it (R8.4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
from attrs import frozen

from .cards import (
    Card,
    CardError,
    FieldMapping,
    admin_edit,
    admin_unlock,
    apply_template,
    extract,
    owner_edit,
)
from .patch import parse_path
from .provisioning import Event, Provisioner, mapping_for
from .runtime import Runtime
from .schema import SchemaRegistry
from .storage import LogEntry, OutboxMail, Person, Settings, Storage, UserStore, Workspace
from .templates import Rule, Template, compile_rule
from .workspaces import WorkspaceError

__all__ = ["CardView", "Product"]


@frozen
class CardView:
    """A person and their card, as listed by ``scimcore cards``."""

    user_id: str
    user_name: str
    active: bool
    deprovisioned: bool
    card: Card

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "user_name": self.user_name,
            "active": self.active,
            "deprovisioned": self.deprovisioned,
            "template": self.card.template,
            "fields": self.card.to_dict()["fields"],
        }


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

    def templates(self, slug: str) -> Sequence[Template]:
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.list_templates()

    def create_template(self, slug: str, name: str, fields: Mapping[str, str]) -> Template:
        if not name.strip():
            raise WorkspaceError("a template needs a name")
        with self.storage.users(self._workspace(slug).id) as store:
            if any(t.name == name for t in store.list_templates()):
                raise WorkspaceError(f"template {name!r} already exists")
            template = Template(name, dict(fields))
            store.save_template(template)
            self._log(store, "admin", "template.create", None, f"template {name}")
            return template

    def set_template(self, slug: str, name: str, fields: Mapping[str, str]) -> Template:
        """Change template fields (an empty value removes the field) and update every card that
        still inherits them (R7.1)."""
        ws = self._workspace(slug)
        events: list[Event] = []
        with self.storage.users(ws.id) as store:
            old = next((t for t in store.list_templates() if t.name == name), None)
            if old is None:
                raise WorkspaceError(f"no template {name!r} in {slug!r}")
            merged = {**old.fields, **fields}
            new = Template(name, {k: v for k, v in merged.items() if v != ""})
            store.save_template(new)
            self._log(store, "admin", "template.set", None, f"template {name}")
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
                updated = apply_template(card, name, old.fields, new.fields, idp)
                if updated is not card:
                    store.save_person(self._with_card(person, updated))
                    self._log(store, "template", "card.update", person.id, f"template {name}")
                    events.append(Event("card.changed", ws.id, person.id, "template"))
        self._emit(events)
        return new

    def rules(self, slug: str) -> Sequence[Rule]:
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.list_rules()

    def add_rule(self, slug: str, template: str, filter: str) -> Rule:
        """Append a rule; the filter is validated now (R7.4)."""
        with self.storage.users(self._workspace(slug).id) as store:
            if not any(t.name == template for t in store.list_templates()):
                raise WorkspaceError(f"no template {template!r} in {slug!r}")
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

    # --- cards (R8) ---------------------------------------------------------------------------

    def cards(self, slug: str) -> list[CardView]:
        """Every person's card, inactive and deprovisioned people included."""
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return [
                CardView(p.id, p.user_name, p.active, p.deprovisioned, Card.from_dict(p.card))
                for p in store.list_people()
            ]

    @staticmethod
    def _find(store: UserStore, user_name: str) -> Person:
        folded = user_name.casefold()
        found = [p for p in store.list_people() if p.user_name.casefold() == folded]
        live = [p for p in found if not p.deprovisioned]
        if not found:
            raise WorkspaceError(f"no user {user_name!r}")
        return (live or found)[-1]

    def _with_card(self, person: Person, card: Card) -> Person:
        return attrs.evolve(person, card=card.to_dict(), updated_at=self.runtime.now())

    def _edit(
        self, slug: str, user_name: str, actor: str, key: str, change: Callable[[Card], Card]
    ) -> Card:
        ws = self._workspace(slug)
        with self.storage.users(ws.id) as store:
            # Read again by id: a backend may lock the row it returns (PostgreSQL), so that an
            # IdP update of the same card in between waits instead of being overwritten.
            person = store.get_person(self._find(store, user_name).id)
            assert person is not None
            card = Card.from_dict(person.card)
            try:
                updated = change(card)
            except CardError as exc:
                raise WorkspaceError(str(exc)) from None
            if updated != card:
                store.save_person(self._with_card(person, updated))
                self._log(store, actor, "card.update", person.id, f"{key} by {actor}")
        if updated != card:
            self._emit([Event("card.changed", ws.id, person.id, actor, {"fields": [key]})])
        return updated

    def admin_edit(self, slug: str, user_name: str, key: str, value: str) -> Card:
        """An admin edits a field: it is unlinked (R8.1)."""
        return self._edit(slug, user_name, "admin", key, lambda c: admin_edit(c, key, value))

    def unlock(self, slug: str, user_name: str, key: str) -> Card:
        """An admin unlocks a field for the owner: it is unlinked (R8.2)."""
        return self._edit(slug, user_name, "admin", key, lambda c: admin_unlock(c, key))

    def owner_edit(self, slug: str, user_name: str, key: str, value: str) -> Card:
        """The owner edits an unlocked field; locked fields are refused (R8.3)."""
        return self._edit(slug, user_name, "owner", key, lambda c: owner_edit(c, key, value))

    # --- activation email, seats, log (R3.5, R5.1, R9.2) ------------------------------------------

    def send_activation(self, slug: str, user_names: Iterable[str]) -> list[OutboxMail]:
        """Queue activation emails by hand (R3.5), for one or many users."""
        ws = self._workspace(slug)
        queued: list[OutboxMail] = []
        with self.storage.users(ws.id) as store:
            for name in user_names:
                person = self._find(store, name)
                if person.deprovisioned or not person.active:
                    raise WorkspaceError(f"{name!r} is not an active user")
                mail = self.provisioner.queue_activation(store, ws, person, automatic=False)
                if mail is None:
                    raise WorkspaceError(f"{name!r} has no email address")
                queued.append(mail)
                self._log(store, "admin", "activation.send", person.id, mail.to)
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
