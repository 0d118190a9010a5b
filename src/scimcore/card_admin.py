"""Card administration for host apps, the CLI and the console: people and cards, found by
person id or user name, edited by admins and owners (R5, R7.6, R8), and their images.

:class:`CardAdmin` is the base of :class:`scimcore.product.Product`; use it through
``service.product``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import attrs
from attrs import frozen

from .cards import (
    Card,
    CardError,
    admin_edit,
    admin_lock,
    admin_unlock,
    assign_template,
    extract,
    known_fields,
    owner_edit,
)
from .images import check_image, image_ref
from .provisioning import Event, Provisioner, mapping_for
from .runtime import Runtime
from .schema import SchemaRegistry
from .storage import (
    PEOPLE_STATES,
    Image,
    LogEntry,
    Person,
    SortSpec,
    Storage,
    UserStore,
    Workspace,
)
from .templates import Template
from .workspaces import WorkspaceError

__all__ = ["CardAdmin", "CardView", "GroupRef", "PeoplePage"]


@frozen
class GroupRef:
    """A group as the Team Cards view names it: its SCIM ``id`` and ``displayName``."""

    id: str
    display_name: str | None


@frozen
class CardView:
    """A person and their card, as listed by ``scimcore cards`` and the console.

    ``user_id`` is the person's id (the SCIM id they were provisioned with; it stays after a
    SCIM DELETE, R5.2): :attr:`person_id` names it so. ``activated_at``: when the person
    followed an activation link (R3.7), ``None`` if never. ``groups``: the groups the person
    belongs to, in :meth:`CardAdmin.people` pages (empty elsewhere)."""

    user_id: str
    user_name: str
    active: bool
    deprovisioned: bool
    card: Card
    email: str | None = None
    activated_at: datetime | None = None
    groups: tuple[GroupRef, ...] = ()

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
            "groups": [{"id": g.id, "display": g.display_name} for g in self.groups],
        }


@frozen
class PeoplePage:
    """One page of :meth:`Product.people`: how many people match, and this page's cards."""

    total: int
    items: Sequence[CardView]


class CardAdmin:
    """People and cards of a workspace over a :class:`~scimcore.storage.Storage` (the base of
    :class:`~scimcore.product.Product`)."""

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

    @staticmethod
    def _template(store: UserStore, slug: str, name: str) -> Template:
        """The template ``name``; :class:`WorkspaceError` if the workspace has none."""
        found = next((t for t in store.list_templates() if t.name == name), None)
        if found is None:
            raise WorkspaceError(f"no template {name!r} in {slug!r}")
        return found

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
        group: str | None = None,
    ) -> PeoplePage:
        """A page of the Team Cards view, ordered by user name (case-insensitive), each
        person with their groups.

        ``search`` matches people whose user name, e-mail or card name starts with it,
        case-insensitively (a prefix, so that an index answers at any size); ``state``:
        ``None`` (everyone), ``"active"``, ``"inactive"`` or ``"deprovisioned"``; ``group``:
        only the members of the group with this id (see :meth:`groups`; an id the workspace
        has no group with lists nobody)."""
        if state is not None and state not in PEOPLE_STATES:
            raise WorkspaceError(f"state must be one of {', '.join(PEOPLE_STATES)}")
        if offset < 0 or not 0 <= limit <= 1000:
            raise WorkspaceError("offset is 0 or more and limit between 0 and 1000")
        folded = search.strip().casefold()
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            total, people = store.page_people(folded, state, offset, limit, group)
            found = store.groups_of([p.id for p in people]) if people else {}
        return PeoplePage(
            total,
            [
                attrs.evolve(
                    CardView.of(p),
                    groups=tuple(
                        GroupRef(g["value"], g.get("display")) for g in found.get(p.id, [])
                    ),
                )
                for p in people
            ],
        )

    def groups(self, slug: str, limit: int = 1000) -> list[GroupRef]:
        """The workspace's groups (at most ``limit``), by display name (case-insensitive):
        what the Team Cards view filters by."""
        spec = SortSpec(("displayName",))
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            page = store.query_groups(None, spec, 1, limit)
        return [GroupRef(d["id"], d.get("displayName")) for d in page.documents]

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
        actor: str = "admin",
    ) -> Card:
        """An admin edits a field: it is unlinked (R8.1). The card: ``person_id``, else
        ``user_name``; ``actor``: who the log names (the console: the admin's e-mail)."""
        return self._field_edit(
            slug, (user_name, person_id), actor, key, lambda c: admin_edit(c, key, value)
        )

    def unlock(
        self,
        slug: str,
        user_name: str | None,
        key: str,
        *,
        person_id: str | None = None,
        actor: str = "admin",
    ) -> Card:
        """An admin unlocks a field for the owner: it is unlinked (R8.2)."""
        return self._field_edit(
            slug, (user_name, person_id), actor, key, lambda c: admin_unlock(c, key)
        )

    def lock(
        self,
        slug: str,
        user_name: str | None,
        key: str,
        *,
        person_id: str | None = None,
        actor: str = "admin",
    ) -> Card:
        """An admin locks a field again (R8.5); it stays unlinked."""
        return self._field_edit(
            slug, (user_name, person_id), actor, key, lambda c: admin_lock(c, key)
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
        actor: str = "admin",
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

        return self._edit(slug, (user_name, person_id), actor, "template", change)

    # --- images (photos R8.5, logos) -----------------------------------------------------------

    def store_image(self, slug: str, content_type: str | None, data: bytes) -> str:
        """Store an image (PNG, JPEG, GIF or WebP by its bytes, at most 2 MiB; else
        :class:`~scimcore.images.ImageError`) and return its id; a card's ``photo`` or a
        template's ``logo`` refers to it as ``image:<id>`` (:func:`~scimcore.images.image_ref`)."""
        kind = check_image(content_type, data)
        image = Image(self.runtime.new_id(), kind, bytes(data), self.runtime.now())
        with self.storage.users(self._workspace(slug).id) as store:
            store.save_image(image)
        return image.id

    def image(self, slug: str, image_id: str) -> Image | None:
        """The workspace's image with this id, ``None`` if it has none (R1.1)."""
        with self.storage.users(self._workspace(slug).id, readonly=True) as store:
            return store.get_image(image_id)

    def set_photo(
        self,
        slug: str,
        user_name: str | None,
        image_id: str,
        *,
        person_id: str | None = None,
        actor: str = "admin",
    ) -> Card:
        """Set a card's ``photo`` to a stored image (R8.5), as the admin (the field is then
        unlinked, R8.1) or as the owner (``actor="owner"``: allowed while the card has no
        photo or the field is unlocked, R8.3)."""
        value = image_ref(image_id)
        editor = owner_edit if actor == "owner" else admin_edit

        def change(card: Card, store: UserStore, _: Person) -> Card:
            if store.get_image(image_id) is None:
                raise WorkspaceError(f"no image {image_id!r}")
            return editor(card, "photo", value)

        return self._edit(slug, (user_name, person_id), actor, "photo", change)
