"""One place where the pieces are wired: storage from a URL, a service, the public URL
behind a proxy, a demo workspace.

Used by the example servers and the ``scimcore`` command.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from attrs import frozen

from scimcore import ScimService, Storage, Workspaces
from scimcore.schema import SchemaRegistry, default_registry

from .memory import MemoryStorage

if TYPE_CHECKING:
    from flask import Flask

    from .mail import MailSettings

__all__ = [
    "DEFAULT_DATABASE_URL",
    "SCIM_PREFIX",
    "DemoCredentials",
    "PublicURL",
    "StorageOpenError",
    "behind_proxy",
    "create_flask_app",
    "database_url",
    "demo_credentials_path",
    "ensure_demo",
    "listening_url",
    "open_storage",
    "public_base_url",
    "serve_forever",
    "tenant_url",
    "trusted_proxies",
]

DEFAULT_DATABASE_URL = "sqlite:///scimcore.db"
DEMO_SLUG = "demo"
DEMO_ADMIN = "admin@demo.example"
#: Where the example server and ``scimcore serve`` mount SCIM.
SCIM_PREFIX = "/scim/v2"

#: A WSGI application: ``app(environ, start_response) -> iterable of bytes``.
_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


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


# --- the public URL (behind a proxy) -----------------------------------------------------------


def public_base_url(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The configured public base URL of the server (``explicit``, else
    ``$SCIMCORE_BASE_URL``), e.g. ``https://scim.acme.example``, without a trailing slash;
    ``None`` when none is configured. ``ValueError`` (one line) for a URL that is not
    ``http(s)://host[:port][/path]``."""
    env = os.environ if environ is None else environ
    url = (explicit or env.get("SCIMCORE_BASE_URL") or "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"the base URL {url!r} does not parse") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the base URL must be http(s)://host[:port][/path], not {url!r}")
    if parts.query or parts.fragment or parts.username is not None:
        raise ValueError(f"the base URL takes no user, query or fragment: {url!r}")
    return url.rstrip("/")


def tenant_url(base_url: str) -> str:
    """The Tenant URL (SCIM base) under a public base URL: ``<base>/scim/v2``; a base that
    already ends with ``/scim/v2`` is taken as the Tenant URL itself."""
    base = base_url.rstrip("/")
    return base if base.endswith(SCIM_PREFIX) else base + SCIM_PREFIX


def listening_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL of a server listening on ``host:port`` (a wildcard address is reached at the
    loopback address; an IPv6 address is bracketed)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def trusted_proxies(explicit: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """How many proxies in front of the server to trust (``explicit``, else
    ``$SCIMCORE_TRUST_PROXY``, else 0). ``ValueError`` for anything but a count."""
    env = os.environ if environ is None else environ
    value: Any = explicit if explicit is not None else env.get("SCIMCORE_TRUST_PROXY", "0")
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise ValueError(f"the number of trusted proxies must be 0 or more, not {value!r}")
    return count


class PublicURL:
    """WSGI middleware: every request is seen as addressed to ``base_url`` (scheme, host and
    port; its path, if any, as the mount point the proxy strips, like ``X-Forwarded-Prefix``).
    So the Tenant URL, ``Location`` headers and links are built from it, whatever ``Host``
    header arrived."""

    def __init__(self, app: _WSGIApp, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.app = app
        self.scheme = parts.scheme
        self.host = parts.netloc
        self.server_name = parts.hostname or ""
        self.server_port = str(parts.port or (443 if parts.scheme == "https" else 80))
        self.prefix = parts.path.rstrip("/")

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        environ["wsgi.url_scheme"] = self.scheme
        environ["HTTP_HOST"] = self.host
        environ["SERVER_NAME"] = self.server_name
        environ["SERVER_PORT"] = self.server_port
        # The server's own SCRIPT_NAME, not one an X-Forwarded-Prefix made (ProxyFix keeps
        # the original values in this documented key): the configured path replaces it.
        script = environ.get("werkzeug.proxy_fix.orig", environ).get("SCRIPT_NAME", "")
        environ["SCRIPT_NAME"] = self.prefix + script
        return self.app(environ, start_response)


def behind_proxy(app: _WSGIApp, *, base_url: str | None = None, trust_proxy: int = 0) -> _WSGIApp:
    """``app`` seen from the public side: ``trust_proxy`` proxies' ``X-Forwarded-For``,
    ``-Proto``, ``-Host``, ``-Port`` and ``-Prefix`` headers are believed (werkzeug's
    ``ProxyFix``; headers from anyone else are ignored), and a configured ``base_url`` wins
    over them for scheme, host and path. Wrap the outermost WSGI application: for a Flask app,
    ``app.wsgi_app = behind_proxy(app.wsgi_app, ...)`` after every ``init_app`` (the SCIM
    extension's ``mount="wsgi"`` answers SCIM in ``app.wsgi_app`` itself)."""
    if base_url:
        app = PublicURL(app, base_url)
    if trust_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = trust_proxy
        app = ProxyFix(
            _default_port_dropped(app), x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
        )
    return app


def _default_port_dropped(app: _WSGIApp) -> _WSGIApp:
    """``app`` seeing ``Host: h`` for the ``h:443`` (https) or ``h:80`` (http) that ProxyFix
    makes of ``X-Forwarded-Port``, as Flask's own URLs do: one spelling of the Tenant URL."""

    def dropped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST", "")
        default = ":443" if environ.get("wsgi.url_scheme") == "https" else ":80"
        if host.endswith(default):
            environ["HTTP_HOST"] = host[: -len(default)]
        return app(environ, start_response)

    return dropped


# --- the Flask app and its server --------------------------------------------------------------


def create_flask_app(
    service: ScimService,
    *,
    base_url: str | None = None,
    trust_proxy: int = 0,
    name: str = "scimcore",
) -> Flask:
    """A Flask app serving ``service``: SCIM at ``/scim/v2`` (the fast WSGI mount), seen
    from the public side (:func:`behind_proxy`, applied last, so that it covers every mount).
    """
    from flask import Flask

    from .flask import ScimExtension

    app = Flask(name)
    # The WSGI mount: SCIM requests skip Flask's routing and request context (this app has no
    # Flask hooks or middleware they would need; see scimcore_adapters.flask).
    ScimExtension(service, app, url_prefix=SCIM_PREFIX, mount="wsgi")
    # TODO(lead, console merge): register scimcore_adapters.console's console_blueprint at
    # /console and activation_blueprint at /activate here (the example server's own sign-in:
    # scimcore_adapters.console.signin.PasswordSignIn); serve_forever then prints "Console:".
    app.wsgi_app = behind_proxy(  # type: ignore[method-assign,assignment]
        app.wsgi_app, base_url=base_url, trust_proxy=trust_proxy
    )
    return app


def serve_forever(
    app: Flask,
    service: ScimService,
    *,
    host: str,
    port: int,
    base_url: str | None,
    mail: MailSettings,
    extra_lines: Callable[[str], Sequence[str]] = lambda public: (),
    out: TextIO = sys.stdout,
) -> None:
    """Serve ``app`` on ``host:port`` (werkzeug's threaded server) with a mail delivery worker,
    until interrupted. Once the socket is bound (``port`` 0 takes a free one), prints one per
    line ``Tenant URL:``, ``extra_lines(public_url)``, ``Console:`` (when the app has the
    console) and ``Mail:``; the public URL is ``base_url``, else the address really bound.
    ``OSError`` when the address cannot be bound."""
    from werkzeug.serving import make_server, select_address_family

    from .mail import start_delivery

    # Bound here, so that a taken port is an OSError (werkzeug would print and exit).
    family = select_address_family(host, port)
    with socket.create_server((host, port), family=family, backlog=128) as bound:
        server = make_server(host, port, app, threaded=True, fd=bound.fileno())  # a dup of it
    public = base_url or listening_url(host, server.port)
    worker = start_delivery(service, mail.mailer(), base_url=public)
    lines = [f"Tenant URL: {tenant_url(public)}", *extra_lines(public)]
    if "console" in app.blueprints:
        lines.append(f"Console: {public}/console")
    lines.append(f"Mail: {mail.describe()}")
    for line in lines:
        print(line, file=out, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
        server.server_close()


# --- the demo workspace -------------------------------------------------------------------------


@frozen
class DemoCredentials:
    """The demo workspace's slug, its admin, and the demo token (plaintext, kept in the
    credentials file so that every start shows the same one)."""

    slug: str
    token: str
    admin: str = DEMO_ADMIN


def demo_credentials_path(url: str) -> Path | None:
    """Where the example server keeps its demo credentials for the database ``url``: beside
    a SQLite file (``scimcore.db`` -> ``scimcore.db.demo.json``), ``./scimcore-demo.json``
    for a server database, ``None`` for ``memory://`` (nothing outlives the process)."""
    if url.startswith("memory:"):
        return None
    if url.startswith("sqlite"):
        try:
            from sqlalchemy.engine import make_url

            database = make_url(url).database
        except Exception:
            return None
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database + ".demo.json")
    return Path("scimcore-demo.json")


def _read_credentials(path: Path | None) -> dict[str, str]:
    try:
        data = json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _write_credentials(path: Path, data: Mapping[str, str]) -> None:
    """Write ``data`` as JSON readable by the owner only (0600), atomically."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(data), f, indent=2)
        f.write("\n")
    os.replace(partial, path)


def _token_works(workspaces: Workspaces, slug: str, token: str | None) -> bool:
    """Whether ``token`` is a live token of ``slug`` made by an active admin (checked without
    using it, so that its "last used" stays the IdP's)."""
    if not token or not token.startswith("scim_"):
        return False
    token_id, _, secret = token[len("scim_") :].partition("_")
    record = next((t for t in workspaces.list_tokens(slug) if t.id == token_id), None)
    if record is None or getattr(record, "state", "active") != "active":
        return False
    ws = workspaces.get(slug)
    admin = workspaces.storage.get_admin(ws.id, record.created_by)
    presented = hashlib.sha256(secret.encode()).hexdigest()
    return admin is not None and admin.active and hmac.compare_digest(presented, record.secret_hash)


def ensure_demo(
    service: ScimService, label: str = "example server", keep: Path | None = None
) -> DemoCredentials:
    """The demo workspace and its active admin, created if missing, and the demo token: the
    one kept in the credentials file ``keep`` while it still works, else a new one, written
    there (0600). Without ``keep``, a new token each call."""
    workspaces = Workspaces(service.storage, service.runtime)
    if service.storage.get_workspace(DEMO_SLUG) is None:
        workspaces.create(DEMO_SLUG, DEMO_ADMIN)
    else:
        admin = service.storage.get_admin(workspaces.get(DEMO_SLUG).id, DEMO_ADMIN)
        if admin is None or not admin.active:
            workspaces.add_admin(DEMO_SLUG, DEMO_ADMIN)
    kept = _read_credentials(keep)
    token = kept.get("token")
    if not _token_works(workspaces, DEMO_SLUG, token):
        token = workspaces.generate_token(DEMO_SLUG, DEMO_ADMIN, label=label).plaintext
        if keep is not None:
            _write_credentials(keep, {**kept, "workspace": DEMO_SLUG, "token": token})
    assert token is not None
    return DemoCredentials(DEMO_SLUG, token)
