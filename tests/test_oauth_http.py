"""OAuth 2.0 client credentials over real HTTP (issue 20): the example server (Flask, WSGI
mount), the Flask blueprint mount and the ASGI adapter, each on a free port, over a SQLite
file; the refusals with RFC 6749 §5.2 and RFC 6750 §3 errors; and nothing secret in plain
text in the log, the provisioning log, error bodies or any table of the database."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest
from examples.flask_server import create_app
from flask import Flask

from scimcore import Runtime, ScimService, system_runtime
from scimcore.oauth_clients import IssuedSecret
from scimcore_adapters.asgi import ScimASGIApp
from scimcore_adapters.flask import ScimExtension
from scimcore_adapters.sql import SqlStorage
from tests.conftest import serve_asgi, serve_wsgi

ADMIN = "admin@acme.example"
PREFIX = "/scim/v2"


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(timezone.utc)

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    url: str
    service: ScimService
    clock: Clock
    db: Path
    #: Every error body read, for the plain-text check.
    errors: list[bytes] = field(default_factory=list)

    def send(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        request = Request(self.url + path, data=body or None, method=method, headers=headers or {})
        try:
            with urlopen(request, timeout=10) as response:
                reply = Reply(response.status, _lower(response.headers), response.read())
        except HTTPError as error:
            reply = Reply(error.code, _lower(error.headers), error.read())
        if reply.status >= 400:
            self.errors.append(reply.body)
        return reply

    def token(
        self, issued: IssuedSecret, *, post: bool = False, secret: str | None = None
    ) -> Reply:
        secret = issued.plaintext if secret is None else secret
        form = {"grant_type": "client_credentials"}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if post:
            form.update(client_id=issued.client.id, client_secret=secret)
        else:
            pair = f"{issued.client.id}:{secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return self.send("POST", "/oauth/token", urlencode(form).encode(), headers)

    def scim(self, token: str, method: str = "GET", path: str = "/Users", doc: Any = None) -> Reply:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        body = json.dumps(doc).encode() if doc is not None else b""
        return self.send(method, PREFIX + path, body, headers)


def _blueprint(service: ScimService) -> Flask:
    app = Flask("host")
    ScimExtension(service, app, url_prefix=PREFIX, mount="blueprint")
    return app


ADAPTERS: dict[str, tuple[Callable[[ScimService], Any], Callable[[Any], Iterator[int]]]] = {
    "example-server": (create_app, serve_wsgi),
    "flask-blueprint": (_blueprint, serve_wsgi),
    "asgi": (lambda service: ScimASGIApp(service, PREFIX), serve_asgi),
}


@pytest.fixture(params=["example-server"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    build, serve = ADAPTERS[request.param]
    clock = Clock()
    real = system_runtime()
    runtime = Runtime(now=clock.now, new_id=real.new_id, new_secret=real.new_secret)
    db = tmp_path / "scim.db"
    storage = SqlStorage(f"sqlite:///{db}", checkpoint_interval=None)
    service = ScimService(storage, runtime=runtime)
    service.workspaces.create("acme", ADMIN)
    try:
        for port in serve(build(service)):
            yield Server(f"http://127.0.0.1:{port}", service, clock, db)
    finally:
        storage.close()


def user(name: str) -> dict[str, Any]:
    return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}


def oauth_error(reply: Reply) -> str:
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["cache-control"] == "no-store"
    return str(reply.json()["error"])


@pytest.mark.parametrize("server", list(ADAPTERS), indirect=True)
def test_client_credentials_then_scim_over_http(server: Server) -> None:
    # R2.6, RFC 6749 §4.4, RFC 8414
    metadata = server.send("GET", "/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == server.url
    assert metadata["token_endpoint"] == server.url + "/oauth/token"
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",  # client assertions of a federated identity (test_federation_http)
    }
    issued = server.service.oauth_clients.create("acme", ADMIN, "entra")
    for n, post in enumerate((False, True)):
        reply = server.token(issued, post=post)
        assert reply.status == 200
        assert (reply.headers["cache-control"], reply.headers["pragma"]) == ("no-store", "no-cache")
        body = reply.json()
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
        created = server.scim(body["access_token"], "POST", doc=user(f"u{n}@acme.test"))
        assert created.status == 201
    assert server.scim(body["access_token"]).json()["totalResults"] == 2
    spc = server.send("GET", PREFIX + "/ServiceProviderConfig").json()
    assert len(spc["authenticationSchemes"]) == 2


def test_refusals_over_http(server: Server) -> None:
    # RFC 6749 §5.2 and RFC 6750 §3; R2.3, R2.5, R1.2
    service, clients = server.service, server.service.oauth_clients
    issued = clients.create("acme", ADMIN, secret_days=1)

    wrong = server.token(issued, secret="not-the-secret-" * 3)
    assert (wrong.status, oauth_error(wrong)) == (401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic")
    wrong_post = server.token(issued, post=True, secret="not-the-secret")
    assert (wrong_post.status, oauth_error(wrong_post)) == (401, "invalid_client")

    token = server.token(issued).json()["access_token"]
    server.clock.advance(hours=1, seconds=1)
    expired = server.scim(token)
    assert expired.status == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]

    server.clock.advance(days=1)  # the secret has expired too
    stale = server.token(issued)
    assert (stale.status, oauth_error(stale)) == (401, "invalid_client")

    fresh = clients.create("acme", ADMIN)
    token = server.token(fresh).json()["access_token"]
    assert server.scim(token, "POST", doc=user("ann@acme.test")).status == 201
    clients.delete("acme", fresh.client.id)
    gone = server.scim(token)
    assert gone.status == 401 and "invalid_token" in gone.headers["www-authenticate"]

    service.workspaces.create("beta", "root@beta.example")
    beta = clients.create("beta", "root@beta.example")
    beta_token = server.token(beta).json()["access_token"]
    listed = server.scim(beta_token, path="/Users?filter=userName%20eq%20%22ann@acme.test%22")
    assert (listed.status, listed.json()["totalResults"]) == (200, 0)

    service.workspaces.add_admin("acme", "it@acme.example")
    theirs = clients.create("acme", "it@acme.example")
    their_token = server.token(theirs).json()["access_token"]
    service.workspaces.deactivate_admin("acme", "it@acme.example")
    assert server.scim(their_token).status == 401
    assert oauth_error(server.token(theirs)) == "invalid_client"
    service.workspaces.add_admin("acme", "it@acme.example")
    assert server.scim(their_token).status == 401  # dead for good (R2.5)
    assert server.token(theirs).status == 401


def test_no_secret_or_token_in_plain_text_anywhere(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service, clients = server.service, server.service.oauth_clients
    scim_token = service.workspaces.generate_token("acme", ADMIN, "bearer").plaintext
    issued = clients.create("acme", ADMIN, "entra")
    rotated = clients.add_secret("acme", issued.client.id)
    secrets = [scim_token, issued.plaintext, rotated.plaintext]
    for post in (False, True):
        token = server.token(issued, post=post).json()["access_token"]
        secrets.append(token)
        assert server.scim(token, "POST", doc=user(f"p{post}@acme.test")).status == 201
        assert server.scim(token, "GET", "/Users/missing").status == 404
    assert server.scim(scim_token).status == 200
    server.token(issued, secret=rotated.plaintext + "x")  # refused: a near miss
    server.scim(secrets[-1] + "x")
    server.clock.advance(hours=2)
    assert server.scim(secrets[-1]).status == 401
    clients.delete_secret("acme", issued.client.id, issued.secret.id)
    clients.delete("acme", issued.client.id)

    # a token's secret part follows its prefix and its 32-digit id
    parts = set(secrets) | {s.partition("_")[2][33:] for s in secrets if s.startswith("scim")}
    assert all(len(p) >= 40 for p in parts)
    places = {
        "log": caplog.text,
        "provisioning log": repr(service.product.log("acme", 1000)),
        "error bodies": b"\n".join(server.errors).decode("utf-8", "replace"),
    }
    with sqlite3.connect(server.db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert {"oauth_clients", "oauth_client_secrets", "oauth_access_tokens"} <= set(tables)
        places["database"] = "\n".join(conn.iterdump())
    assert "client.create" in places["provisioning log"] and len(server.errors) == 5
    assert issued.client.id in places["database"]  # the log names the client, not its secrets
    for where, text in places.items():
        for secret in parts:
            assert secret not in text, f"a secret in plain text in the {where}"


def test_a_storage_without_oauth_clients_serves_no_token_endpoint() -> None:
    from scimcore import ScimRequest
    from scimcore_adapters.memory import MemoryStorage

    class BearerOnly(MemoryStorage):
        access_grant = None  # type: ignore[assignment]  # not an OAuthStorage

    service = ScimService(BearerOnly())
    service.workspaces.create("acme", ADMIN)
    form = b"grant_type=client_credentials&client_id=x&client_secret=y"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    reply = service.oauth.handle(ScimRequest("POST", "/oauth/token", {}, headers, form))
    assert (reply.status, reply.json()["error"]) == (404, "invalid_request")
    spc = service.handle(ScimRequest("GET", "/ServiceProviderConfig")).json()
    assert len(spc["authenticationSchemes"]) == 1
    refused = service.handle(
        ScimRequest("GET", "/Users", {}, {"Authorization": "Bearer scimat_" + "0" * 32 + "_x"})
    )
    assert refused.status == 401 and "invalid_token" not in refused.headers["WWW-Authenticate"]
