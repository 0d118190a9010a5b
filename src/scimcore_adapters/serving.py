"""Serving: the public URL behind a proxy, the Flask app of ``scimcore serve`` and the example
server, and the server loop that prints their start-up lines and runs the mail worker.

Behind an HTTPS proxy, the Tenant URL, ``Location`` headers and the links in e-mails must be
the public ones. Either configure the public base URL (``--base-url``,
``$SCIMCORE_BASE_URL``), which wins, or trust the ``X-Forwarded-*`` headers of a known number
of proxies (``--trust-proxy N``, ``$SCIMCORE_TRUST_PROXY``; werkzeug's ``ProxyFix``).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from scimcore import ScimService
from scimcore.oauth import TOKEN_PATH
from scimcore.oauth_clients import OAuthStorage

from ._http import Receive, Scope, Send
from .bootstrap import DemoCredentials

if TYPE_CHECKING:
    from flask import Flask

    from .mail import MailSettings

__all__ = [
    "CONSOLE_PREFIX",
    "SCIM_PREFIX",
    "ASGIApp",
    "PublicURL",
    "PublicURLASGI",
    "add_public_url_arguments",
    "behind_proxy",
    "create_flask_app",
    "has_console",
    "links_base",
    "listening_url",
    "public_base_url",
    "serve_forever",
    "tenant_url",
    "trusted_proxies",
]

#: Where the example server and ``scimcore serve`` mount SCIM, and the console.
SCIM_PREFIX = "/scim/v2"
CONSOLE_PREFIX = "/console"

#: A WSGI application: ``app(environ, start_response) -> iterable of bytes``.
_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: An ASGI 3 application.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CHANGED = "(changed since: scimcore admin password demo admin@demo.example)"


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


def add_public_url_arguments(
    parser: argparse.ArgumentParser, *, trust_proxy: bool = True, inherit: bool = False
) -> None:
    """``--base-url`` (and with ``trust_proxy``, ``--trust-proxy N``) for a server or a
    command that prints the Tenant URL. ``inherit``: a subcommand whose ``--base-url``, when
    not given, leaves the value of the same global option alone."""
    parser.add_argument(
        "--base-url",
        metavar="URL",
        default=argparse.SUPPRESS if inherit else None,
        help="the server's public URL, e.g. https://scim.acme.example behind an HTTPS proxy "
        "(default $SCIMCORE_BASE_URL); the Tenant URL is <base URL>/scim/v2",
    )
    if trust_proxy:
        parser.add_argument(
            "--trust-proxy",
            type=int,
            metavar="N",
            help="believe the X-Forwarded-* headers of N proxies in front (default "
            "$SCIMCORE_TRUST_PROXY, else 0)",
        )


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


class PublicURLASGI:
    """ASGI middleware: :class:`PublicURL` for an ASGI application (scope ``scheme``, the
    ``host`` header and ``root_path``). Behind a proxy without a configured URL, run uvicorn
    with ``--proxy-headers --forwarded-allow-ips ADDR`` and let the proxy pass ``Host`` on."""

    def __init__(self, app: ASGIApp, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.app = app
        self.scheme = parts.scheme
        self.host = parts.netloc.encode("latin-1")
        self.prefix = parts.path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope.get("headers", ()) if k.lower() != b"host"]
            scope = {
                **scope,
                "scheme": self.scheme,
                "headers": [*headers, (b"host", self.host)],
                "root_path": self.prefix + scope.get("root_path", ""),
            }
        await self.app(scope, receive, send)


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
    secret_key: str | None = None,
    name: str = "scimcore",
) -> Flask:
    """A Flask app serving ``service``: SCIM at ``/scim/v2`` (the fast WSGI mount), the
    console at ``/console`` with its password sign-in and the card owners' activation pages
    at ``/activate`` when the ``console`` extra is installed and a ``secret_key`` (signing
    the session cookies) is given, all seen from the public side (:func:`behind_proxy`,
    applied last, so that it covers every mount)."""
    from flask import Flask

    from .flask import ScimExtension

    app = Flask(name)
    # The WSGI mount: SCIM requests skip Flask's routing and request context (this app has no
    # Flask hooks or middleware they would need; see scimcore_adapters.flask).
    ScimExtension(service, app, url_prefix=SCIM_PREFIX, mount="wsgi")
    if secret_key is not None and _console_installed():
        from .console.signin import mount_console

        app.config["SECRET_KEY"] = secret_key
        mount_console(app, service, url_prefix=CONSOLE_PREFIX, scim_path=SCIM_PREFIX)
    app.wsgi_app = behind_proxy(  # type: ignore[method-assign,assignment]
        app.wsgi_app, base_url=base_url, trust_proxy=trust_proxy
    )
    return app


def _console_installed() -> bool:
    """Whether the ``console`` extra (Flask-WTF, argon2-cffi) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("flask_wtf", "argon2"))


def has_console(app: Flask) -> bool:
    """Whether :func:`create_flask_app` mounted the console on ``app``."""
    return "scimcore_console" in app.blueprints  # console_blueprint's name


def links_base(app: Flask, public: str | None) -> str | None:
    """The base URL for activation links in mail: ``public`` when ``app`` serves the
    activation pages (they come with the console), else ``None`` (mail without a link)."""
    return public if has_console(app) else None


def serve_forever(
    app: Flask,
    service: ScimService,
    *,
    host: str,
    port: int,
    base_url: str | None,
    mail: MailSettings,
    demo: DemoCredentials | None = None,
    out: TextIO = sys.stdout,
) -> None:
    """Serve ``app`` on ``host:port`` (werkzeug's threaded server) with a mail delivery worker,
    until interrupted. Once the socket is bound (``port`` 0 takes a free one), prints one per
    line ``Tenant URL:``, the ``demo``'s ``Secret Token:``, ``Console:`` (when the app has the
    console), ``Token endpoint:`` (when the storage keeps OAuth clients), the demo's
    ``Console sign-in:``, and ``Mail:``; the public URL is
    ``base_url``, else the address really bound. ``OSError`` when the address cannot be
    bound."""
    from werkzeug.serving import make_server, select_address_family

    from .mail import start_delivery

    # Bound here, so that a taken port is an OSError (werkzeug would print and exit).
    family = select_address_family(host, port)
    with socket.create_server((host, port), family=family, backlog=128) as bound:
        server = make_server(host, port, app, threaded=True, fd=bound.fileno())  # a dup of it
    public = base_url or listening_url(host, server.port)
    worker = start_delivery(service, mail.mailer(), base_url=links_base(app, public))
    lines = [f"Tenant URL: {tenant_url(public)}"]
    if demo is not None:
        lines.append(f"Secret Token: {demo.token}")
    if has_console(app):
        lines.append(f"Console: {public}{CONSOLE_PREFIX}")
    if isinstance(service.storage, OAuthStorage):
        lines.append(f"Token endpoint: {public}{TOKEN_PATH}")
    if has_console(app) and demo is not None:
        lines.append(f"Console sign-in: {demo.admin} / {demo.password or _CHANGED}")
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
