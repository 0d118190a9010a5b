"""One place where the pieces are wired: storage from a URL, a service, a demo workspace.

Used by the example servers and the ``scimcore`` command.
"""

from __future__ import annotations

import os

from attrs import frozen

from scimcore import ScimService, Storage, Workspaces
from scimcore.schema import SchemaRegistry, default_registry

from .memory import MemoryStorage

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEMO_ADMIN",
    "DEMO_SLUG",
    "DemoCredentials",
    "StorageOpenError",
    "database_url",
    "ensure_demo",
    "open_storage",
]

DEFAULT_DATABASE_URL = "sqlite:///scimcore.db"
DEMO_SLUG = "demo"
DEMO_ADMIN = "admin@demo.example"


def database_url(explicit: str | None = None) -> str:
    """``explicit``, else ``$SCIMCORE_DATABASE_URL``, else the embedded default."""
    return explicit or os.environ.get("SCIMCORE_DATABASE_URL") or DEFAULT_DATABASE_URL


#: The extra that brings each module a database URL may need.
_EXTRAS = {"sqlalchemy": "sql", "psycopg": "postgres"}


class StorageOpenError(RuntimeError):
    """:func:`open_storage` could not open the database: a driver is not installed, the file
    cannot be opened, the server does not answer, a newer scimcore migrated it. The message
    says which, and what to do; it shows the URL without its password."""


def open_storage(url: str, registry: SchemaRegistry | None = None) -> Storage:
    """A storage backend for a database URL: ``sqlite:///file.db``,
    ``postgresql+psycopg://...`` (needs the ``postgres`` extra) or ``memory://`` (the
    in-memory reference, gone when the process ends). Raises :class:`StorageOpenError` when
    the database cannot be opened, ``ValueError`` for a URL of another kind."""
    if url.startswith("memory:"):
        return MemoryStorage(registry or default_registry())
    try:
        from .sql import SqlStorage  # needs sqlalchemy; the URL's driver is imported on open

        return SqlStorage(url, registry or default_registry())
    except ModuleNotFoundError as exc:
        raise _missing(exc) from None
    except Exception as exc:
        from sqlalchemy.exc import ArgumentError, DBAPIError  # a bad URL; the driver's errors

        from .sql import SchemaTooNewError

        if isinstance(exc, SchemaTooNewError):
            reason = str(exc)
        elif isinstance(exc, (ArgumentError, DBAPIError)):
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        else:
            raise
        raise StorageOpenError(f"cannot open the database {_shown(url)}: {reason}") from None


def _missing(exc: ModuleNotFoundError) -> StorageOpenError:
    module = (exc.name or "").partition(".")[0]
    extra = _EXTRAS.get(module)
    if extra is None:
        return StorageOpenError(f"a module this database needs is not installed: {module}")
    return StorageOpenError(
        f"this database needs {module}, which is not installed: pip install 'scimcore[{extra}]'"
    )


def _shown(url: str) -> str:
    """``url`` as it may be printed: without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(a URL that does not parse)"


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
