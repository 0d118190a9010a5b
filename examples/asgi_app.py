"""The same SCIM server for any ASGI server: ``uvicorn examples.asgi_app:app``.

The database comes from ``$SCIMCORE_DATABASE_URL``; create a token with
``scimcore token generate`` on the same database (or set ``SCIMCORE_DEMO=1`` to create the demo
workspace and print a fresh token at start-up).
"""

from __future__ import annotations

import os

from scimcore import ScimService
from scimcore_adapters.asgi import ScimASGIApp
from scimcore_adapters.bootstrap import database_url, ensure_demo, open_storage


def create_app() -> ScimASGIApp:
    """An ASGI app serving SCIM at ``/scim/v2``."""
    service = ScimService(open_storage(database_url()))
    if os.environ.get("SCIMCORE_DEMO") == "1":
        demo = ensure_demo(service, label="asgi example")
        print(f"Secret Token: {demo.token}", flush=True)
    return ScimASGIApp(service, prefix="/scim/v2")


app = create_app()
