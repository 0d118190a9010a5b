"""A runnable SCIM 2.0 server on Flask, ready for Microsoft Entra ID or Okta.

    python examples/flask_server.py [--port 8000] [--host 127.0.0.1] [--base-url URL]

prints the Tenant URL, the demo Secret Token (the same one at every start: it is kept in a
0600 file beside the database), and where mail goes: with no SMTP configured, each message is
an ``.eml`` file in ``./scimcore-mail/``. A background worker delivers mail while it runs.
Behind an HTTPS proxy, give the public URL (``--base-url https://scim.example.com`` or
``$SCIMCORE_BASE_URL``) or trust the proxy's ``X-Forwarded-*`` headers (``--trust-proxy 1``).
Any WSGI server can host it too:

    gunicorn 'examples.flask_server:create_app()'

The database comes from ``$SCIMCORE_DATABASE_URL`` (see ``scimcore_adapters.bootstrap``).
"""

from __future__ import annotations

import argparse
import os
import sys

from flask import Flask

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scimcore import ScimService
from scimcore_adapters.bootstrap import (
    StorageOpenError,
    add_rate_limit_argument,
    database_url,
    demo_credentials_path,
    ensure_demo,
    open_storage,
    server_config,
)
from scimcore_adapters.bootstrap import secret_key as kept_secret_key
from scimcore_adapters.mail import (
    MailSettings,
    add_mail_arguments,
    mail_settings,
    mail_settings_from_args,
    start_delivery,
)
from scimcore_adapters.serving import (
    SCIM_PREFIX,
    add_public_url_arguments,
    create_flask_app,
    links_base,
    public_base_url,
    serve_forever,
    trusted_proxies,
)

__all__ = ["SCIM_PREFIX", "create_app", "main"]


def create_app(
    service: ScimService | None = None,
    *,
    base_url: str | None = None,
    trust_proxy: int | None = None,
    mail: MailSettings | None = None,
    deliver_mail: bool | None = None,
    secret_key: str | None = None,
) -> Flask:
    """The Flask app serving SCIM at ``/scim/v2`` and the console at ``/console``, on
    ``$SCIMCORE_DATABASE_URL`` unless a ``service`` is given. ``base_url`` and ``trust_proxy``
    default to ``$SCIMCORE_BASE_URL`` and ``$SCIMCORE_TRUST_PROXY``; ``secret_key`` (the
    console's session cookies) to ``$SCIMCORE_SECRET_KEY``, else the key kept beside the
    database (a new one per process for a ``service`` passed in). ``deliver_mail`` (default:
    when this function opened the database itself, as under gunicorn) starts a background
    delivery worker with ``mail`` (default: the settings from the environment)."""
    own = service is None
    # A service passed in: no database file known, so a key per process ($SCIMCORE_SECRET_KEY
    # aside).
    url = database_url() if own else "memory://"
    if service is None:
        service = ScimService(open_storage(url), config=server_config())
    public = public_base_url(base_url)
    app = create_flask_app(
        service,
        base_url=public,
        trust_proxy=trusted_proxies(trust_proxy),
        secret_key=secret_key or kept_secret_key(url),
        name="scimcore_example",
    )
    if own if deliver_mail is None else deliver_mail:
        mailer = (mail or mail_settings()).mailer()
        links = links_base(app, public)  # without a public URL: mail without a link
        app.extensions["scimcore.mail"] = start_delivery(service, mailer, base_url=links)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free)")
    add_public_url_arguments(parser)
    add_mail_arguments(parser)
    add_rate_limit_argument(parser)
    args = parser.parse_args(argv)
    url = database_url()
    try:
        service = ScimService(open_storage(url), config=server_config(args.rate_limit))
        mail = mail_settings_from_args(args)
        base_url = public_base_url(args.base_url)
        app = create_app(
            service,
            base_url=base_url,
            trust_proxy=args.trust_proxy,
            deliver_mail=False,
            secret_key=kept_secret_key(url),
        )
        demo = ensure_demo(service, keep=demo_credentials_path(url))
        serve_forever(
            app,
            service,
            host=args.host,
            port=args.port,
            base_url=base_url,
            mail=mail,
            demo=demo,
        )
    except (StorageOpenError, ValueError, OSError) as exc:
        raise SystemExit(f"flask_server: error: {exc}") from None


if __name__ == "__main__":
    main()
