"""One place where the pieces are wired: storage from a URL, a service, a demo workspace.

Used by the example servers and the ``scimcore`` command.
"""

from __future__ import annotations

import os

from attrs import frozen

from scimcore import ScimService, Storage, Workspaces
from scimcore.schema import SchemaRegistry, default_registry

from .memory import MemoryStorage

__all__ = ["DEFAULT_DATABASE_URL", "DemoCredentials", "database_url", "ensure_demo", "open_storage"]

DEFAULT_DATABASE_URL = "sqlite:///scimcore.db"
DEMO_SLUG = "demo"
DEMO_ADMIN = "admin@demo.example"


def database_url(explicit: str | None = None) -> str:
    """``explicit``, else ``$SCIMCORE_DATABASE_URL``, else the embedded default."""
    return explicit or os.environ.get("SCIMCORE_DATABASE_URL") or DEFAULT_DATABASE_URL


def open_storage(url: str, registry: SchemaRegistry | None = None) -> Storage:
    """A storage backend for a database URL: ``sqlite:///file.db``,
    ``postgresql+psycopg://...`` (needs the ``postgres`` extra) or ``memory://`` (the
    in-memory reference, gone when the process ends)."""
    if url.startswith("memory:"):
        return MemoryStorage(registry or default_registry())
    from .sql import SqlStorage

    return SqlStorage(url, registry or default_registry())


@frozen
class DemoCredentials:
    """The demo workspace's slug and a freshly generated token (plaintext, shown once)."""

    slug: str
    token: str


def ensure_demo(service: ScimService, label: str = "example server") -> DemoCredentials:
    """Create the demo workspace and admin if missing, and generate a fresh token."""
    workspaces = Workspaces(service.storage, service.runtime)
    if service.storage.get_workspace(DEMO_SLUG) is None:
        workspaces.create(DEMO_SLUG, DEMO_ADMIN)
    else:
        workspaces.add_admin(DEMO_SLUG, DEMO_ADMIN)
    token = workspaces.generate_token(DEMO_SLUG, DEMO_ADMIN, label=label)
    return DemoCredentials(DEMO_SLUG, token.plaintext)
