"""The in-memory reference :class:`~scimcore.storage.Storage` (tests, demos, the contract).

Transactions are serialised by one lock. Each begins with a shallow snapshot of the workspace's
containers (stored values are never mutated in place, only replaced) and restores it when an
exception escapes, so a failed operation leaves nothing half-written, as a database would.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import attrs

from scimcore.errors import NotFoundError, PreconditionFailedError, UniquenessError
from scimcore.filters import Filter, matches
from scimcore.groups import default_group_registry, filter_mentions
from scimcore.schema import SchemaRegistry, default_registry
from scimcore.storage import (
    TOKEN_DEAD,
    TOKEN_DELETED,
    ActivationLink,
    Admin,
    Grant,
    Image,
    LogEntry,
    OutboxMail,
    Page,
    Person,
    Settings,
    SortSpec,
    TokenRecord,
    UserStore,
    Workspace,
    person_matches,
    sort_documents,
)
from scimcore.templates import Rule, Template

from .memory_authorization import AuthorizationStoreMixin
from .memory_federation import FederationStoreMixin
from .memory_groups import GroupData, GroupStoreMixin
from .memory_oauth import OAuthStoreMixin

__all__ = ["MemoryStorage"]


@attrs.define
class _Data:
    by_id: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    by_name: dict[str, str] = attrs.field(factory=dict)
    seq: dict[str, int] = attrs.field(factory=dict)
    counter: int = 0
    people: dict[str, Person] = attrs.field(factory=dict)
    settings: Settings = attrs.field(factory=Settings)
    templates: dict[str, Template] = attrs.field(factory=dict)
    rules: dict[str, Rule] = attrs.field(factory=dict)
    outbox: dict[str, OutboxMail] = attrs.field(factory=dict)
    dedupe: set[str] = attrs.field(factory=set)
    images: dict[str, Image] = attrs.field(factory=dict)
    links: dict[str, ActivationLink] = attrs.field(factory=dict)
    log: list[LogEntry] = attrs.field(factory=list)
    groups: GroupData = attrs.field(factory=GroupData)  # copied by GroupData.__copy__

    def snapshot(self) -> _Data:
        return _Data(**{k: copy.copy(v) for k, v in attrs.asdict(self, recurse=False).items()})


class _Store(GroupStoreMixin):
    """A :class:`UserStore` over one workspace while the storage lock is held."""

    def __init__(self, data: _Data, registry: SchemaRegistry, groups: SchemaRegistry) -> None:
        self._d = data
        self._registry = registry
        self._gd = data.groups
        self._users = data.by_id
        self._group_registry = groups

    # --- users ------------------------------------------------------------------------------

    def get(self, user_id: str) -> dict[str, Any] | None:
        doc = self._d.by_id.get(user_id)
        return copy.deepcopy(doc) if doc is not None else None

    def _check_name(self, doc: dict[str, Any]) -> None:
        owner = self._d.by_name.get(doc["userName"].casefold())
        if owner is not None and owner != doc["id"]:
            raise UniquenessError(f"userName {doc['userName']!r} is already taken")

    def _put(self, doc: dict[str, Any]) -> None:
        old = self._d.by_id.get(doc["id"])
        if old is not None:
            self._d.by_name.pop(old["userName"].casefold(), None)
        self._d.by_id[doc["id"]] = copy.deepcopy(doc)
        self._d.by_name[doc["userName"].casefold()] = doc["id"]

    def insert(self, document: dict[str, Any]) -> None:
        if document["id"] in self._d.by_id:
            raise UniquenessError(f"id {document['id']!r} is already taken")
        self._check_name(document)
        self._d.counter += 1
        self._d.seq[document["id"]] = self._d.counter
        self._put(document)

    def replace(self, document: dict[str, Any], expected_version: str) -> None:
        current = self._d.by_id.get(document["id"])
        if current is None:
            raise NotFoundError(f"resource {document['id']} not found")
        if current["meta"]["version"] != expected_version:
            raise PreconditionFailedError("the resource was changed by another request")
        self._check_name(document)
        self._put(document)

    def delete(self, user_id: str) -> bool:
        doc = self._d.by_id.pop(user_id, None)
        if doc is None:
            return False
        self._d.by_name.pop(doc["userName"].casefold(), None)
        del self._d.seq[user_id]
        self.forget_member(user_id)
        return True

    def query(
        self, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
    ) -> Page:
        docs = list(self._d.by_id.values())
        if filter is not None and filter_mentions(filter, "groups"):  # User.groups, derived
            groups = self.groups_of([d["id"] for d in docs])
            docs = [
                d
                for d in docs
                if matches(filter, {**d, "groups": groups.get(d["id"])}, self._registry)
            ]
        elif filter is not None:
            docs = [d for d in docs if matches(filter, d, self._registry)]
        seq = self._d.seq
        docs.sort(key=lambda d: (seq[d["id"]], d["id"]))
        if sort is not None:
            docs = sort_documents(docs, sort)
        start = max(start_index, 1) - 1
        return Page(len(docs), [copy.deepcopy(d) for d in docs[start : start + max(count, 0)]])

    # --- the product --------------------------------------------------------------------------

    def get_person(self, person_id: str) -> Person | None:
        return self._d.people.get(person_id)

    def save_person(self, person: Person) -> None:
        self._d.people[person.id] = attrs.evolve(person, card=copy.deepcopy(person.card))

    def list_people(self) -> Sequence[Person]:
        return sorted(self._d.people.values(), key=lambda p: (p.created_at, p.id))

    def page_people(
        self, search: str, state: str | None, offset: int, limit: int, group: str | None = None
    ) -> tuple[int, Sequence[Person]]:
        people: Iterable[Person] = self._d.people.values()
        if group is not None:
            members = self._gd.members.get(group, {})
            people = [p for p in people if p.id in members]
        found = [p for p in people if person_matches(p, search, state)]
        found.sort(key=lambda p: (p.user_name.casefold(), p.id))
        return len(found), found[max(offset, 0) : max(offset, 0) + max(limit, 0)]

    def count_seats(self) -> int:
        return sum(1 for p in self._d.people.values() if p.active and not p.deprovisioned)

    def get_settings(self) -> Settings:
        return self._d.settings

    def save_settings(self, settings: Settings) -> None:
        self._d.settings = settings

    def list_templates(self) -> Sequence[Template]:
        return [self._d.templates[k] for k in sorted(self._d.templates)]

    def save_template(self, template: Template) -> None:
        self._d.templates[template.name] = template

    def delete_template(self, name: str) -> bool:
        return self._d.templates.pop(name, None) is not None

    def list_rules(self) -> Sequence[Rule]:
        return sorted(self._d.rules.values(), key=lambda r: (r.position, r.id))

    def save_rule(self, rule: Rule) -> None:
        self._d.rules[rule.id] = rule

    def delete_rule(self, rule_id: str) -> bool:
        return self._d.rules.pop(rule_id, None) is not None

    def save_image(self, image: Image) -> None:
        self._d.images[image.id] = image

    def get_image(self, image_id: str) -> Image | None:
        return self._d.images.get(image_id)

    def save_activation_link(self, link: ActivationLink) -> None:
        self._d.links[link.token_hash] = link

    def use_activation_link(self, token_hash: str, when: datetime) -> bool:
        link = self._d.links.get(token_hash)
        if link is None or link.used_at is not None:
            return False
        self._d.links[token_hash] = attrs.evolve(link, used_at=when)
        return True

    def enqueue_mail(self, mail: OutboxMail) -> bool:
        if mail.dedupe_key is not None:
            if mail.dedupe_key in self._d.dedupe:
                return False
            self._d.dedupe.add(mail.dedupe_key)
        self._d.outbox[mail.id] = mail
        return True

    def list_outbox(self) -> Sequence[OutboxMail]:
        return sorted(self._d.outbox.values(), key=lambda m: (m.created_at, m.id))

    def add_log(self, entry: LogEntry, keep: int) -> None:
        self._d.log.append(entry)
        if len(self._d.log) > keep:
            del self._d.log[: len(self._d.log) - keep]

    def list_log(self, limit: int) -> Sequence[LogEntry]:
        return list(reversed(self._d.log[-limit:])) if limit > 0 else []


class MemoryStorage(OAuthStoreMixin, FederationStoreMixin, AuthorizationStoreMixin):
    """Everything in dicts; thread-safe; the reference for the storage contract.

    ``registry`` / ``group_registry``: the User and Group schemas (a host's extensions
    included) its filters are checked against; a service over this storage serves them."""

    def __init__(
        self, registry: SchemaRegistry | None = None, group_registry: SchemaRegistry | None = None
    ) -> None:
        self.registry = registry or default_registry()
        self.group_registry = group_registry or default_group_registry()
        self._lock = threading.RLock()
        self._data: dict[str, _Data] = {}
        self._workspaces: dict[str, Workspace] = {}
        self._admins: dict[tuple[str, str], Admin] = {}
        self._tokens: dict[str, TokenRecord] = {}
        #: Dead and deleted tokens (R2.5), with when a refused request last used each.
        self._tombstones: dict[str, TokenRecord] = {}
        self._refused_at: dict[str, datetime] = {}
        self._oauth_state()
        self._federation_state()
        self._authorization_state()

    @contextmanager
    def users(
        self, workspace_id: str, *, readonly: bool = False, one_read: bool = False
    ) -> Iterator[UserStore]:
        with self._lock:
            data = self._data.setdefault(workspace_id, _Data())
            if readonly or one_read:  # nothing to roll back
                yield _Store(data, self.registry, self.group_registry)
                return
            saved = data.snapshot()
            try:
                yield _Store(data, self.registry, self.group_registry)
            except BaseException:
                self._data[workspace_id] = saved
                raise

    def create_workspace(self, workspace: Workspace) -> None:
        with self._lock:
            if any(w.slug == workspace.slug for w in self._workspaces.values()):
                raise ValueError(f"workspace {workspace.slug!r} exists")
            self._workspaces[workspace.id] = workspace

    def get_workspace(self, slug: str) -> Workspace | None:
        return next((w for w in self._workspaces.values() if w.slug == slug), None)

    def get_workspace_by_id(self, workspace_id: str) -> Workspace | None:
        return self._workspaces.get(workspace_id)

    def list_workspaces(self) -> Sequence[Workspace]:
        return sorted(self._workspaces.values(), key=lambda w: w.slug)

    def save_admin(self, admin: Admin) -> None:
        self._admins[(admin.workspace_id, admin.email.lower())] = admin

    def get_admin(self, workspace_id: str, email: str) -> Admin | None:
        return self._admins.get((workspace_id, email.lower()))

    def list_admins(self, workspace_id: str) -> Sequence[Admin]:
        return sorted(
            (a for (w, _), a in self._admins.items() if w == workspace_id),
            key=lambda a: a.email.lower(),
        )

    def deactivate_admin(self, workspace_id: str, email: str, reason: str) -> Admin | None:
        with self._lock:
            admin = self._admins.get((workspace_id, email.lower()))
            if admin is None:
                return None
            admin = attrs.evolve(admin, active=False)
            self._admins[(workspace_id, email.lower())] = admin
            for token in list(self._tokens.values()):
                if token.workspace_id == workspace_id and token.created_by.lower() == email.lower():
                    del self._tokens[token.id]
                    self._tombstones[token.id] = attrs.evolve(
                        token, state=TOKEN_DEAD, dead_reason=reason
                    )
            self.bury_admin_clients(workspace_id, email, reason)
            self.revoke_admin_grants(workspace_id, email)
            return admin

    def delete_client(self, workspace_id: str, client_id: str) -> bool:
        with self._lock:
            if not super().delete_client(workspace_id, client_id):
                return False
            self._drop_client_authorization(client_id)
            return True

    def add_token(self, token: TokenRecord) -> None:
        self._tokens[token.id] = token

    def get_token(self, token_id: str) -> TokenRecord | None:
        return self._tokens.get(token_id)

    def authenticate(self, token_id: str) -> Grant | None:
        token = self._tokens.get(token_id)
        workspace = self._workspaces.get(token.workspace_id) if token else None
        if token is None or workspace is None:
            return None
        admin = self._admins.get((token.workspace_id, token.created_by.lower()))
        return Grant(token, workspace, admin is not None and admin.active)

    def list_tokens(self, workspace_id: str) -> Sequence[TokenRecord]:
        dead = (t for t in self._tombstones.values() if t.state == TOKEN_DEAD)
        return sorted(
            (t for t in (*self._tokens.values(), *dead) if t.workspace_id == workspace_id),
            key=lambda t: (t.created_at, t.id),
        )

    def delete_token(self, workspace_id: str, token_id: str) -> bool:
        with self._lock:
            token = self._tokens.get(token_id) or self._tombstones.get(token_id)
            if token is None or token.workspace_id != workspace_id:
                return False
            if token.state == TOKEN_DELETED:
                return False
            self._tokens.pop(token_id, None)
            self._tombstones[token_id] = attrs.evolve(token, state=TOKEN_DELETED)
            return True

    def get_tombstone(self, token_id: str) -> TokenRecord | None:
        return self._tombstones.get(token_id)

    def claim_refusal(self, token_id: str, when: datetime, interval: timedelta) -> bool:
        with self._lock:
            last = self._refused_at.get(token_id)
            if token_id not in self._tombstones or (last is not None and when - last < interval):
                return False
            self._refused_at[token_id] = when
            return True

    def touch_token(self, token_id: str, when: datetime) -> None:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is not None:
                self._tokens[token_id] = attrs.evolve(token, last_used_at=when)

    def get_activation_link(self, token_hash: str) -> ActivationLink | None:
        with self._lock:
            for data in self._data.values():
                link = data.links.get(token_hash)
                if link is not None:
                    return link
        return None

    def claim_mail(self, now: datetime, lease_until: datetime, limit: int) -> Sequence[OutboxMail]:
        claimed: list[OutboxMail] = []
        with self._lock:
            for data in self._data.values():
                for mail in sorted(data.outbox.values(), key=lambda m: (m.created_at, m.id)):
                    if len(claimed) >= limit:
                        return claimed
                    if mail.status in ("pending", "sending") and mail.next_attempt_at <= now:
                        taken = attrs.evolve(mail, status="sending", next_attempt_at=lease_until)
                        data.outbox[mail.id] = taken
                        claimed.append(taken)
        return claimed

    def finish_mail(self, mail: OutboxMail) -> None:
        self.finish_mails((mail,))

    def finish_mails(self, mails: Sequence[OutboxMail]) -> None:
        with self._lock:
            for mail in mails:
                data = self._data.get(mail.workspace_id)
                stored = data.outbox.get(mail.id) if data is not None else None
                if data is not None and stored is not None and stored.status != "sent":
                    data.outbox[mail.id] = mail
