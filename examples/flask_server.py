"""A runnable SCIM 2.0 server on Flask, ready for Microsoft Entra ID or Okta.

    python examples/flask_server.py [--port 8000] [--host 127.0.0.1]

prints the Tenant URL and a fresh Secret Token. Any WSGI server can host it too:

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
from scimcore_adapters.bootstrap import StorageOpenError, database_url, ensure_demo, open_storage
from scimcore_adapters.flask import ScimExtension

SCIM_PREFIX = "/scim/v2"


def create_app(service: ScimService | None = None) -> Flask:
    """The Flask app serving SCIM at ``/scim/v2`` on ``$SCIMCORE_DATABASE_URL``."""
    if service is None:
        service = ScimService(open_storage(database_url()))
    app = Flask("scimcore_example")
    # The WSGI mount: SCIM requests skip Flask's routing and request context (this app has no
    # Flask hooks or middleware they would need; see scimcore_adapters.flask).
    ScimExtension(service, app, url_prefix=SCIM_PREFIX, mount="wsgi")
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        service = ScimService(open_storage(database_url()))
    except StorageOpenError as exc:
        raise SystemExit(f"flask_server: error: {exc}") from None
    demo = ensure_demo(service)
    app = create_app(service)
    print(f"Tenant URL: http://{args.host}:{args.port}{SCIM_PREFIX}", flush=True)
    print(f"Secret Token: {demo.token}", flush=True)
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
