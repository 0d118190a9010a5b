"""The product API for host apps and the CLI: Card Settings, templates, cards, activation
emails, seats and the provisioning log (R3 to R9).

Every method works on one workspace (by slug) inside one storage transaction, and every card
change is logged with who made it (R8.4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

import attrs
from attrs import frozen

from .activation import ActivationError, token_hash, usable
from .card_admin import CardAdmin, CardView, PeoplePage
from .cards import (
    Card,
    FieldMapping,
    apply_template,
    assign_template,
    extract,
)
from .patch import parse_path
from .provisioning import Event, mapping_for
from .storage import (
    ActivationLink,
    LogEntry,
    OutboxMail,
    Settings,
    UserStore,
    Workspace,
)
from .templates import Rule, Template, compile_rule
from .workspaces import WorkspaceError

__all__ = ["ActivationView", "CardView", "PeoplePage", "Product", "TemplateUpdate"]


@frozen
class ActivationView:
    """What an activation link opens (R3.7): the workspace, the person and their card, and
    until when the link works."""

    workspace_slug: str
    person_id: str
    card: CardView
    expires_at: datetime


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


class Product(CardAdmin):
    """Administration of the card product over a :class:`~scimcore.storage.Storage`: Card
    Settings, templates and rules, activation, seats and the log; people and cards come from
    :class:`~scimcore.card_admin.CardAdmin`.

    A change made by an admin takes ``actor``: who the provisioning log names (R8.4, R9.2).
    The console passes the signed-in admin's e-mail; the default, ``"admin"``, is for callers
    that know no more (the CLI)."""

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
        actor: str = "admin",
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
            self._log(store, actor, "settings", None, f"activation_email={state} fields={keys}")
            return settings

    def mapping(self, slug: str) -> FieldMapping:
        """The workspace's card field mapping (R6)."""
        return mapping_for(self.settings(slug))

    # --- templates and rules (R7) -------------------------------------------------------------

    def templates(self, slug: str) -> Sequence[Template]:
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.list_templates()

    def create_template(
        self, slug: str, name: str, fields: Mapping[str, str], *, actor: str = "admin"
    ) -> Template:
        if not name.strip():
            raise WorkspaceError("a template needs a name")
        with self.storage.users(self._workspace(slug).id) as store:
            if any(t.name == name for t in store.list_templates()):
                raise WorkspaceError(f"template {name!r} already exists")
            self._check_keys(store, fields)
            template = Template(name, dict(fields))
            store.save_template(template)
            self._log(store, actor, "template.create", None, f"template {name}")
            return template

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

    def set_template(
        self, slug: str, name: str, fields: Mapping[str, str], *, actor: str = "admin"
    ) -> TemplateUpdate:
        """Change template fields (an empty value removes the field) and update every card that
        still inherits them (R7.1); the result tells how many cards changed."""
        ws = self._workspace(slug)
        with self.storage.users(ws.id) as store:
            old = self._template(store, slug, name)
            self._check_keys(store, (k for k, v in fields.items() if v != ""))
            merged = {**old.fields, **fields}
            new = Template(name, {k: v for k, v in merged.items() if v != ""})
            store.save_template(new)
            self._log(store, actor, "template.set", None, f"template {name}")
            events = self._retemplate(
                store,
                ws,
                name,
                lambda card, idp: apply_template(card, name, old.fields, new.fields, idp),
            )
        self._emit(events)
        return TemplateUpdate(new.name, new.fields, len(events))

    def delete_template(self, slug: str, name: str, *, actor: str = "admin") -> int:
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
                store, actor, "template.delete", None, f"template {name} ({len(events)} cards)"
            )
        self._emit(events)
        return len(events)

    def rules(self, slug: str) -> Sequence[Rule]:
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.list_rules()

    def add_rule(self, slug: str, template: str, filter: str, *, actor: str = "admin") -> Rule:
        """Append a rule; the filter is validated now (R7.4)."""
        with self.storage.users(self._workspace(slug).id) as store:
            self._template(store, slug, template)
            compile_rule(filter, mapping_for(store.get_settings()), self.registry)
            existing = store.list_rules()
            position = max((r.position for r in existing), default=0) + 1
            rule = Rule(self.runtime.new_id(), filter, template, position)
            store.save_rule(rule)
            self._log(store, actor, "rule.add", None, f"{filter} -> {template}")
            return rule

    def remove_rule(self, slug: str, rule_id: str, *, actor: str = "admin") -> None:
        with self.storage.users(self._workspace(slug).id) as store:
            if not store.delete_rule(rule_id):
                raise WorkspaceError(f"no rule {rule_id!r} in {slug!r}")
            self._log(store, actor, "rule.remove", None, rule_id)

    def move_rule(
        self, slug: str, rule_id: str, position: int, *, actor: str = "admin"
    ) -> Sequence[Rule]:
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
            self._log(store, actor, "rule.move", None, f"{rule_id} to {position}")
            return ordered

    # --- activation links (R3.7) -------------------------------------------------------------

    def _activation_link(self, token: str) -> tuple[ActivationLink, Workspace]:
        """The stored link of ``token`` and its workspace, if it can still be used."""
        link = None
        if token and len(token) <= 256:
            link = self.storage.get_activation_link(token_hash(token))
        workspace = self.storage.get_workspace_by_id(link.workspace_id) if link else None
        if link is None or workspace is None:
            raise ActivationError("unknown", "this activation link is not valid")
        if link.used_at is not None:
            raise ActivationError("used", "this activation link was used already")
        if self.runtime.now() >= link.expires_at:
            raise ActivationError("expired", "this activation link has expired")
        return link, workspace

    def activation_status(self, token: str) -> ActivationView:
        """What the activation link ``token`` opens, without using it; raises
        :class:`~scimcore.activation.ActivationError` with ``reason`` ``"unknown"``,
        ``"used"``, ``"expired"`` or ``"inactive"``."""
        link, ws = self._activation_link(token)
        with self.storage.users(ws.id, readonly=True) as store:
            person = usable(store.get_person(link.person_id))
        return ActivationView(ws.slug, person.id, CardView.of(person), link.expires_at)

    def activate(self, token: str) -> ActivationView:
        """Use the activation link ``token`` (once): the person is activated (their first
        activation is kept as ``activated_at``) and what the owner's page needs is returned.
        Raises :class:`~scimcore.activation.ActivationError` as :meth:`activation_status`;
        of two concurrent uses, one fails with ``"used"``."""
        link, ws = self._activation_link(token)
        now = self.runtime.now()
        with self.storage.users(ws.id) as store:
            person = usable(store.get_person(link.person_id))
            if not store.use_activation_link(link.token_hash, now):
                raise ActivationError("used", "this activation link was used already")
            if person.activated_at is None:
                person = attrs.evolve(person, activated_at=now)
                store.save_person(person)
            self._log(store, "owner", "activation.activate", person.id, person.user_name)
        return ActivationView(ws.slug, person.id, CardView.of(person), link.expires_at)

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
