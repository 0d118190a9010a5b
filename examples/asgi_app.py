"""The same SCIM server for any ASGI server: ``uvicorn examples.asgi_app:app``
(``pip install 'scimcore[server,sql]'``).

The database comes from ``$SCIMCORE_DATABASE_URL``; create a token with
``scimcore token generate`` on the same database (or set ``SCIMCORE_DEMO=1`` to create the demo
workspace and print its token at start-up: the same one at every start). Mail is delivered in
a background thread with the settings of ``$SCIMCORE_SMTP_URL`` (else ``.eml`` files in
``./scimcore-mail/``). Behind an HTTPS proxy set ``$SCIMCORE_BASE_URL`` to the public URL, or
run uvicorn with ``--proxy-headers`` and let the proxy pass the ``Host`` header on.
"""

from __future__ import annotations

import os

from scimcore import ScimService
from scimcore_adapters.asgi import ScimASGIApp
from scimcore_adapters.bootstrap import (
    database_url,
    demo_credentials_path,
    ensure_demo,
    open_storage,
    server_config,
)
from scimcore_adapters.mail import mail_settings, start_delivery
from scimcore_adapters.serving import SCIM_PREFIX, ASGIApp, PublicURLASGI, public_base_url


def create_app() -> ASGIApp:
    """An ASGI app serving SCIM at ``/scim/v2``, delivering mail while it runs."""
    url = database_url()
    service = ScimService(open_storage(url), config=server_config())
    base_url = public_base_url()
    mail = mail_settings()
    if os.environ.get("SCIMCORE_DEMO") == "1":
        demo = ensure_demo(service, label="asgi example", keep=demo_credentials_path(url))
        print(f"Secret Token: {demo.token}", flush=True)
        print(f"Mail: {mail.describe()}", flush=True)
    # This app serves SCIM only: no activation pages for links in the mail to lead to.
    start_delivery(service, mail.mailer())
    app = ScimASGIApp(service, prefix=SCIM_PREFIX)
    return PublicURLASGI(app, base_url) if base_url else app


app = create_app()
