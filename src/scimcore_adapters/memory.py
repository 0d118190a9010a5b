"""The in-memory reference :class:`~scimcore.storage.Storage` (tests, demos, the contract).

Transactions are serialised by one lock and undone from an undo log when an exception escapes,
so a failed operation leaves nothing half-written, exactly as a database would.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs

from scimcore.errors import NotFoundError, PreconditionFailedError, UniquenessError
from scimcore.filters import Filter, matches
from scimcore.schema import SchemaRegistry, default_registry
from scimcore.storage import Admin, Page, SortSpec, TokenRecord, UserStore, Workspace

__all__ = ["MemoryStorage"]


class _Users:
    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_name: dict[str, str] = {}
        self.seq: dict[str, int] = {}
        self.counter = 0


def _sort_value(doc: dict[str, Any], path: tuple[str, ...], case_exact: bool) -> Any:
    value: Any = doc
    for key in path:
        if isinstance(value, list):
            primary = [v for v in value if isinstance(v, dict) and v.get("primary")]
            value = (primary or value)[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, str) and not case_exact:
        return value.casefold()
    return value


class _Store:
    """A :class:`UserStore` over one workspace while the storage lock is held."""

    def __init__(self, users: _Users, registry: SchemaRegistry) -> None:
        self._u = users
        self._registry = registry
        self.undo: list[tuple[str, dict[str, Any] | None, int | None]] = []

    def _remember(self, user_id: str) -> None:
        self.undo.append((user_id, self._u.by_id.get(user_id), self._u.seq.get(user_id)))

    def get(self, user_id: str) -> dict[str, Any] | None:
        doc = self._u.by_id.get(user_id)
        return copy.deepcopy(doc) if doc is not None else None

    def _check_name(self, doc: dict[str, Any]) -> None:
        owner = self._u.by_name.get(doc["userName"].casefold())
        if owner is not None and owner != doc["id"]:
            raise UniquenessError(f"userName {doc['userName']!r} is already taken")

    def _put(self, doc: dict[str, Any]) -> None:
        old = self._u.by_id.get(doc["id"])
        if old is not None:
            self._u.by_name.pop(old["userName"].casefold(), None)
        self._u.by_id[doc["id"]] = copy.deepcopy(doc)
        self._u.by_name[doc["userName"].casefold()] = doc["id"]

    def insert(self, document: dict[str, Any]) -> None:
        if document["id"] in self._u.by_id:
            raise UniquenessError(f"id {document['id']!r} is already taken")
        self._check_name(document)
        self._remember(document["id"])
        self._u.counter += 1
        self._u.seq[document["id"]] = self._u.counter
        self._put(document)

    def replace(self, document: dict[str, Any], expected_version: str) -> None:
        current = self._u.by_id.get(document["id"])
        if current is None:
            raise NotFoundError(f"resource {document['id']} not found")
        if current["meta"]["version"] != expected_version:
            raise PreconditionFailedError("the resource was changed by another request")
        self._check_name(document)
        self._remember(document["id"])
        self._put(document)

    def delete(self, user_id: str) -> bool:
        doc = self._u.by_id.get(user_id)
        if doc is None:
            return False
        self._remember(user_id)
        del self._u.by_id[user_id]
        self._u.by_name.pop(doc["userName"].casefold(), None)
        del self._u.seq[user_id]
        return True

    def query(
        self, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
    ) -> Page:
        docs = list(self._u.by_id.values())
        if filter is not None:
            docs = [d for d in docs if matches(filter, d, self._registry)]
        seq = self._u.seq
        docs.sort(key=lambda d: (seq[d["id"]], d["id"]))
        if sort is not None:
            present = [d for d in docs if _sort_value(d, sort.path, sort.case_exact) is not None]
            absent = [d for d in docs if _sort_value(d, sort.path, sort.case_exact) is None]
            present.sort(
                key=lambda d: _sort_value(d, sort.path, sort.case_exact),
                reverse=sort.descending,
            )
            # RFC 7644 §3.4.2.3: unassigned values sort last in ascending order, first in
            # descending order.
            docs = absent + present if sort.descending else present + absent
        start = max(start_index, 1) - 1
        return Page(len(docs), [copy.deepcopy(d) for d in docs[start : start + max(count, 0)]])


class MemoryStorage:
    """Everything in dicts; thread-safe; the reference for the storage contract."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self._registry = registry or default_registry()
        self._lock = threading.RLock()
        self._users: dict[str, _Users] = {}
        self._workspaces: dict[str, Workspace] = {}
        self._admins: dict[tuple[str, str], Admin] = {}
        self._tokens: dict[str, TokenRecord] = {}

    @contextmanager
    def users(self, workspace_id: str) -> Iterator[UserStore]:
        with self._lock:
            store = _Store(self._users.setdefault(workspace_id, _Users()), self._registry)
            try:
                yield store
            except BaseException:
                u = self._users[workspace_id]
                for user_id, doc, seq in reversed(store.undo):
                    current = u.by_id.pop(user_id, None)
                    if current is not None:
                        u.by_name.pop(current["userName"].casefold(), None)
                    u.seq.pop(user_id, None)
                    if doc is not None and seq is not None:
                        u.by_id[user_id] = doc
                        u.by_name[doc["userName"].casefold()] = user_id
                        u.seq[user_id] = seq
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

    def add_token(self, token: TokenRecord) -> None:
        self._tokens[token.id] = token

    def get_token(self, token_id: str) -> TokenRecord | None:
        return self._tokens.get(token_id)

    def list_tokens(self, workspace_id: str) -> Sequence[TokenRecord]:
        return sorted(
            (t for t in self._tokens.values() if t.workspace_id == workspace_id),
            key=lambda t: (t.created_at, t.id),
        )

    def delete_token(self, workspace_id: str, token_id: str) -> bool:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None or token.workspace_id != workspace_id:
                return False
            del self._tokens[token_id]
            return True

    def touch_token(self, token_id: str, when: datetime) -> None:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is not None:
                self._tokens[token_id] = attrs.evolve(token, last_used_at=when)
