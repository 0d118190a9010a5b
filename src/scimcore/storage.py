"""The Storage protocol: what the core needs from a backend.

The core never does I/O. It asks a :class:`Storage` for a unit of work scoped to one workspace
(:meth:`Storage.users`), does everything one SCIM operation needs inside it, and the backend
commits on a clean exit or rolls back when an exception escapes: one transaction per SCIM
operation (architecture: "one transaction per operation").

Backends: ``scimcore_adapters.memory.MemoryStorage`` (the reference implementation) and, later,
the SQL backend. Every backend must pass ``tests/storage_contract.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from attrs import frozen

from .filters import Filter

__all__ = [
    "Admin",
    "Page",
    "SortSpec",
    "Storage",
    "TokenRecord",
    "UserStore",
    "Workspace",
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


@frozen
class TokenRecord:
    """A stored bearer token: never the secret, only its SHA-256 hash (R2.1)."""

    id: str
    workspace_id: str
    secret_hash: str
    label: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None = None


@frozen
class SortSpec:
    """``sortBy`` resolved to a document path, and ``sortOrder`` (RFC 7644 §3.4.2.3)."""

    path: tuple[str, ...]
    descending: bool = False
    case_exact: bool = False


@frozen
class Page:
    """One page of a query: the total number of matches and the documents of the page."""

    total: int
    documents: Sequence[dict[str, Any]]


class UserStore(Protocol):
    """The users of one workspace, inside one transaction."""

    def get(self, user_id: str) -> dict[str, Any] | None:
        """The document with this ``id``, or ``None``."""

    def insert(self, document: dict[str, Any]) -> None:
        """Add a new document. Raises ``UniquenessError`` if its userName (case-insensitive)
        is taken in this workspace."""

    def replace(self, document: dict[str, Any], expected_version: str) -> None:
        """Overwrite the document with the same ``id`` if its stored ``meta.version`` is still
        ``expected_version`` (compare-and-set). Raises ``PreconditionFailedError`` if it changed,
        ``NotFoundError`` if it is gone, ``UniquenessError`` if the new userName is taken."""

    def delete(self, user_id: str) -> bool:
        """Remove the document; ``False`` if there was none."""

    def query(
        self,
        filter: Filter | None,
        sort: SortSpec | None,
        start_index: int,
        count: int,
    ) -> Page:
        """Filter first, then sort, then page (1-based ``start_index``). Without ``sort`` the
        order is stable: creation order, ties broken by ``id``."""


class Storage(Protocol):
    """A backend: workspaces, admins and tokens, and a unit of work per SCIM operation."""

    def users(self, workspace_id: str) -> AbstractContextManager[UserStore]:
        """A transaction over one workspace's users: commit on success, roll back on error."""

    def create_workspace(self, workspace: Workspace) -> None:
        """Add a workspace; ``ValueError`` if the slug exists."""

    def get_workspace(self, slug: str) -> Workspace | None: ...

    def get_workspace_by_id(self, workspace_id: str) -> Workspace | None: ...

    def list_workspaces(self) -> Sequence[Workspace]: ...

    def save_admin(self, admin: Admin) -> None:
        """Insert or update an admin (keyed by workspace and email, case-insensitive)."""

    def get_admin(self, workspace_id: str, email: str) -> Admin | None: ...

    def add_token(self, token: TokenRecord) -> None: ...

    def get_token(self, token_id: str) -> TokenRecord | None: ...

    def list_tokens(self, workspace_id: str) -> Sequence[TokenRecord]: ...

    def delete_token(self, workspace_id: str, token_id: str) -> bool: ...

    def touch_token(self, token_id: str, when: datetime) -> None:
        """Record that the token was just used (``last_used_at``)."""


def iter_pages(store: UserStore, page_size: int = 500) -> Iterator[dict[str, Any]]:
    """Every document of a workspace, in the stable default order (a helper for tools)."""
    start = 1
    while True:
        page = store.query(None, None, start, page_size)
        yield from page.documents
        if start + len(page.documents) > page.total or not page.documents:
            return
        start += len(page.documents)
