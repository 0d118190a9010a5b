"""What the console tests share: the app as the example server mounts it, a service with two
workspaces, and the moves of a browser (a form with its CSRF token, an upload, a delivered link)."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from scimcore import Runtime, ScimRequest, ScimService
from scimcore.outbox import RecordingMailer, deliver_pending
from scimcore.runtime import system_runtime
from scimcore_adapters.bootstrap import open_storage
from scimcore_adapters.console.signin import mount_console
from scimcore_adapters.flask import ScimExtension
from scimcore_adapters.passwords import hash_password

PASSWORD = "correct horse battery staple"
ADMIN = "it@acme.example"
OTHER = "boss@globex.example"


class Clock:
    """A settable clock for the service's runtime (activation links expire)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def create_console_app(service: ScimService) -> Flask:
    """What the example server mounts: SCIM at /scim/v2, the console with its password
    sign-in at /console, the activation pages at /activate."""
    app = Flask("console_test")
    app.config["SECRET_KEY"] = "test secret key, not a real one"
    ScimExtension(service, app, url_prefix="/scim/v2")
    mount_console(app, service)
    return app


def make_service(path: Path, clock: Clock | None = None) -> ScimService:
    """A service on a SQLite file with workspaces acme and globex, each with a
    password-holding admin."""
    system = system_runtime()
    runtime = Runtime(clock or system.now, system.new_id, system.new_secret)
    service = ScimService(open_storage(f"sqlite:///{path / 'console.db'}"), runtime=runtime)
    for slug, email in (("acme", ADMIN), ("globex", OTHER)):
        service.workspaces.create(slug, email)
        service.workspaces.set_password_hash(slug, email, hash_password(PASSWORD))
    return service


def csrf(page: bytes) -> str:
    """The CSRF token of the first form of a page."""
    match = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1).decode()


def sign_in(client: FlaskClient, workspace: str = "acme", email: str = ADMIN) -> Any:
    token = csrf(client.get("/console/sign-in").data)
    form = {"workspace": workspace, "email": email, "password": PASSWORD, "csrf_token": token}
    return client.post("/console/sign-in", data=form)


def post(client: FlaskClient, page: str, action: str, data: dict[str, Any] | None = None) -> Any:
    """Submit a form of ``page`` to ``action`` the way a browser does (with its CSRF token)."""
    token = csrf(client.get(page).data)
    return client.post(action, data={**(data or {}), "csrf_token": token})


def scim(service: ScimService, token: str, method: str, path: str, body: Any = None) -> Any:
    """A SCIM request as an IdP makes it; the response."""
    return service.handle(
        ScimRequest(
            method,
            path,
            {},
            {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
            json.dumps(body).encode() if body is not None else b"",
            "https://scim.example/scim/v2",
        )
    )


def scim_create(service: ScimService, token: str, user_name: str, **extra: Any) -> str:
    """Provision ``user_name`` (its work e-mail is the user name); the person id."""
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "emails": [{"type": "work", "value": user_name, "primary": True}],
        **extra,
    }
    response = scim(service, token, "POST", "/Users", body)
    assert response.status == 201, response.body
    return str(json.loads(response.body)["id"])


def token_for(service: ScimService, slug: str = "acme", email: str = ADMIN) -> str:
    return service.workspaces.generate_token(slug, email, label="IdP").plaintext


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def upload(client: FlaskClient, page: str, action: str, data: bytes, name: str) -> Any:
    token = csrf(client.get(page).data)
    form = {"csrf_token": token, "image": (io.BytesIO(data), name)}
    return client.post(action, data=form, content_type="multipart/form-data")


def delivered_links(service: ScimService) -> dict[str, str]:
    """Deliver the outbox as the server's worker does: each recipient's activation link."""
    mailer = RecordingMailer()
    deliver_pending(service.storage, mailer, service.runtime, base_url="http://localhost")
    links = {}
    for to, _, body in mailer.sent:
        found = re.search(r"http://localhost(/activate/\S+)", body)
        assert found, body
        links[to] = found.group(1)
    return links
