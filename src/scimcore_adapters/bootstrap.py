"""One place where the pieces are wired: storage from a URL, a service, a demo workspace
(serving them is :mod:`scimcore_adapters.serving`).

Used by the example servers and the ``scimcore`` command.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import attrs
from attrs import frozen

from scimcore import ScimService, ServiceConfig, Storage, Workspaces
from scimcore.ratelimit import ENV_VAR as RATE_LIMIT_ENV
from scimcore.ratelimit import parse_rate_limit
from scimcore.schema import SchemaRegistry, default_registry
from scimcore.storage import TOKEN_ACTIVE

from .memory import MemoryStorage

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEMO_ADMIN",
    "DEMO_SLUG",
    "DemoCredentials",
    "StorageOpenError",
    "add_rate_limit_argument",
    "database_url",
    "demo_credentials_path",
    "ensure_demo",
    "open_storage",
    "secret_key",
    "server_config",
]

DEFAULT_DATABASE_URL = "sqlite:///scimcore.db"
DEMO_SLUG = "demo"
DEMO_ADMIN = "admin@demo.example"


def server_config(rate_limit: str | None = None) -> ServiceConfig:
    """The service configuration of the servers (``scimcore serve``, the example servers):
    the rate limit per workspace from ``rate_limit`` (a ``--rate-limit`` value), else
    ``$SCIMCORE_RATE_LIMIT``, else the documented default (``docs/limits.md``). ``ValueError``
    with a one-line message for a value that does not parse."""
    text = rate_limit if rate_limit is not None else os.environ.get(RATE_LIMIT_ENV)
    return ServiceConfig(rate_limit=parse_rate_limit(text))


def add_rate_limit_argument(parser: argparse.ArgumentParser) -> None:
    """``--rate-limit`` for a server's command line (read by :func:`server_config`)."""
    parser.add_argument(
        "--rate-limit",
        metavar="RATE/BURST",
        help="requests per second per workspace and the burst above it, or 'off' "
        f"(default: ${RATE_LIMIT_ENV}, else 200/1000)",
    )


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


# --- the demo workspace -------------------------------------------------------------------------


@frozen
class DemoCredentials:
    """The demo workspace's slug, the demo token (plaintext, kept in the credentials file so
    that every start shows the same one), its admin, and the admin's console password (``None``
    when it cannot be shown: changed since, or the ``console`` extra is not installed)."""

    slug: str
    token: str
    admin: str = DEMO_ADMIN
    password: str | None = attrs.field(default=None, repr=False)


def _beside_database(url: str, suffix: str) -> Path | None:
    """A file of the server's own beside the SQLite file of ``url`` (its name plus
    ``suffix``), ``./scimcore<suffix>`` for a server database (PostgreSQL), ``None`` for a
    database that does not outlive the process (``memory://``, SQLite in memory)."""
    if url.startswith("memory:"):
        return None
    if not url.startswith("sqlite"):
        return Path(f"scimcore{suffix}")
    try:
        from sqlalchemy.engine import make_url

        database = make_url(url).database
    except Exception:
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database + suffix)


def demo_credentials_path(url: str) -> Path | None:
    """Where the example server keeps its demo credentials for the database ``url``: beside
    a SQLite file (``scimcore.db`` -> ``scimcore.db.demo.json``), ``./scimcore.demo.json``
    for a server database, ``None`` for ``memory://`` (nothing outlives the process)."""
    return _beside_database(url, ".demo.json")


def secret_key(url: str, environ: Mapping[str, str] | None = None) -> str:
    """The key that signs the console's session cookies: ``$SCIMCORE_SECRET_KEY``, else one
    generated once and kept (0600) beside the database (``scimcore.db.secret-key``;
    ``./scimcore.secret-key`` for a server database), so that sign-ins survive a restart and
    every process of a deployment on this machine shares it; for ``memory://``, a new one per
    process. Processes on several hosts must share ``$SCIMCORE_SECRET_KEY``."""
    env = os.environ if environ is None else environ
    if env.get("SCIMCORE_SECRET_KEY"):
        return env["SCIMCORE_SECRET_KEY"]
    path = _beside_database(url, ".secret-key")
    if path is None:
        return secrets.token_urlsafe(32)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    partial = _write_private(path, secrets.token_urlsafe(32))
    try:
        os.link(partial, path)  # fails if another process made it first: theirs is used
    except FileExistsError:
        pass
    finally:
        partial.unlink()
    return path.read_text().strip()


def _read_credentials(path: Path | None) -> dict[str, str]:
    try:
        data = json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _write_private(path: Path, text: str) -> Path:
    """``text`` in a new file beside ``path`` readable by the owner only (0600); its name."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return partial


def _write_credentials(path: Path, data: Mapping[str, str]) -> None:
    """Write ``data`` as JSON readable by the owner only (0600), atomically."""
    os.replace(_write_private(path, json.dumps(dict(data), indent=2) + "\n"), path)


def _token_works(workspaces: Workspaces, slug: str, token: str | None) -> bool:
    """Whether ``token`` is a live token of ``slug`` made by an active admin (checked without
    using it, so that its "last used" stays the IdP's)."""
    if not token or not token.startswith("scim_"):
        return False
    token_id, _, secret = token[len("scim_") :].partition("_")
    record = next((t for t in workspaces.list_tokens(slug) if t.id == token_id), None)
    if record is None or record.state != TOKEN_ACTIVE:
        return False
    admin = workspaces.get_admin(slug, record.created_by)
    presented = hashlib.sha256(secret.encode()).hexdigest()
    return admin is not None and admin.active and hmac.compare_digest(presented, record.secret_hash)


def _demo_password(workspaces: Workspaces, kept: dict[str, str]) -> str | None:
    """The demo admin's console password: the kept one while it still signs in, a new one
    when the admin has none yet; ``None`` when an operator changed it (theirs stays) or the
    ``console`` extra (argon2-cffi) is not installed. Updates ``kept``."""
    try:
        from .passwords import hash_password, verify_password
    except ModuleNotFoundError:
        return None
    admin = workspaces.get_admin(DEMO_SLUG, DEMO_ADMIN)
    current = admin.password_hash if admin is not None else None
    password = kept.get("password")
    if current is not None:
        return password if password and verify_password(current, password) else None
    password = secrets.token_urlsafe(12)
    workspaces.set_password_hash(
        DEMO_SLUG, DEMO_ADMIN, hash_password(password), actor="example server"
    )
    kept["password"] = password
    return password


def ensure_demo(
    service: ScimService, label: str = "example server", keep: Path | None = None
) -> DemoCredentials:
    """The demo workspace and its active admin, created if missing; the demo token: the one
    kept in the credentials file ``keep`` while it still works, else a new one; the demo
    admin's console password, set once (see :func:`_demo_password`). What is new is written
    to ``keep`` (0600). Without ``keep``, a new token and password each call."""
    workspaces = Workspaces(service.storage, service.runtime)
    if service.storage.get_workspace(DEMO_SLUG) is None:
        workspaces.create(DEMO_SLUG, DEMO_ADMIN)
    else:
        admin = workspaces.get_admin(DEMO_SLUG, DEMO_ADMIN)
        if admin is None or not admin.active:
            workspaces.add_admin(DEMO_SLUG, DEMO_ADMIN, actor="example server")
    kept = _read_credentials(keep)
    before = dict(kept)
    token = kept.get("token")
    if token is None or not _token_works(workspaces, DEMO_SLUG, token):
        token = workspaces.generate_token(DEMO_SLUG, DEMO_ADMIN, label=label).plaintext
        kept.update(workspace=DEMO_SLUG, admin=DEMO_ADMIN, token=token)
    password = _demo_password(workspaces, kept)
    if keep is not None and kept != before:
        _write_credentials(keep, kept)
    return DemoCredentials(DEMO_SLUG, token, DEMO_ADMIN, password)
