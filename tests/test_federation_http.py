"""Entra workload identity federation over real HTTP (issue 20 item 3; RFC 7521, RFC 7523
§2.2): the example server on a free port over a SQLite file (and PostgreSQL for the plain-text
check), a local issuer whose OpenID configuration and JWKS a second HTTP server publishes,
client assertions signed with keys the test generates; every refusal with its RFC error, the
key refresh on an unknown ``kid`` (fetched once, rate limited), PyJWT absent, and no assertion
in plain text in the log, the provisioning log, error bodies or the database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from examples.flask_server import create_app
from sqlalchemy import select

from scimcore import Runtime, ScimService, system_runtime
from scimcore.federation import ASSERTION_TYPE
from scimcore.testing._federation_contract import AUDIENCE, SUBJECT, Issuer
from scimcore_adapters.asgi import ScimASGIApp
from scimcore_adapters.jwks import JwksKeySource
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.sql import SqlStorage
from scimcore_adapters.sql.tables import METADATA
from scimcore_adapters.wsgi import ScimWSGIApp
from tests.conftest import postgres_schema_url, serve_wsgi
from tests.test_oauth_http import ADMIN, PREFIX, Clock, Reply, Server, user

pytest.importorskip("jwt", reason="federation tests need the federation extra (PyJWT)")

DISCOVERY = "/.well-known/openid-configuration"


class KeyServer:
    """An issuer's HTTP side: its OpenID configuration and its JWKS (``keys``, replaced to
    rotate), counting each path's requests."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {"keys": []}
        self.hits: Counter[str] = Counter()
        #: Paths answered with a 302 to another URL.
        self.redirects: dict[str, str] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits[self.path] += 1
                if self.path in owner.redirects:
                    self.send_response(302)
                    self.send_header("Location", owner.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                documents = {DISCOVERY: owner.discovery(), "/keys": owner.keys}
                body = json.dumps(documents.get(self.path, {"error": "no"})).encode()
                self.send_response(200 if self.path in documents else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def discovery(self) -> dict[str, str]:
        return {"issuer": self.url, "jwks_uri": self.url + "/keys"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@dataclass
class Federated:
    server: Server
    keys: KeyServer
    issuer: Issuer
    client_id: str
    #: The key source's monotonic clock, moved by hand.
    ticks: list[float]

    def token(self, assertion: str, client_id: str | None = "", **extra: str) -> Reply:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            **extra,
        }
        chosen = self.client_id if client_id == "" else client_id
        if chosen is not None:
            form["client_id"] = chosen
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.server.send("POST", "/oauth/token", urlencode(form).encode(), headers)

    def assertion(self, lifetime: int = 3900, **override: Any) -> str:
        return self.issuer.assertion(self.server.clock.now(), lifetime, **override)


def _federated(url: str, db: Path) -> Iterator[Federated]:
    keys = KeyServer()
    issuer = Issuer(url=keys.url)
    keys.keys = issuer.jwks()
    clock = Clock()
    real = system_runtime()
    runtime = Runtime(now=clock.now, new_id=real.new_id, new_secret=real.new_secret)
    storage = SqlStorage(url, checkpoint_interval=None)
    service = ScimService(storage, runtime=runtime)
    service.workspaces.create("acme", ADMIN)
    ticks = [0.0]
    service.oauth.assertions.key_source = JwksKeySource(clock=lambda: ticks[0])
    client = service.oauth_clients.create_without_secret("acme", ADMIN, "entra wif")
    service.oauth_clients.federate("acme", client.id, keys.url, SUBJECT, AUDIENCE)
    try:
        for port in serve_wsgi(create_app(service)):
            server = Server(f"http://127.0.0.1:{port}", service, clock, db)
            yield Federated(server, keys, issuer, client.id, ticks)
    finally:
        storage.close()
        keys.close()


@pytest.fixture
def fed(tmp_path: Path) -> Iterator[Federated]:
    db = tmp_path / "scim.db"
    yield from _federated(f"sqlite:///{db}", db)


def oauth_error(reply: Reply) -> str:
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["cache-control"] == "no-store"
    if reply.status == 401:
        assert reply.headers["www-authenticate"].startswith("Basic")
    return str(reply.json()["error"])


def test_federated_client_then_scim_call_over_http(fed: Federated) -> None:
    # RFC 7523 §2.2; discovery from the issuer, then an explicit JWKS URL
    metadata = fed.server.send("GET", "/.well-known/oauth-authorization-server").json()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    algs = metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert "RS256" in algs and "EdDSA" in algs and not {"none", "HS256"} & set(algs)
    spc = fed.server.send("GET", PREFIX + "/ServiceProviderConfig").json()
    assert "JWT" in spc["authenticationSchemes"][1]["description"]

    reply = fed.token(fed.assertion(), scope="scim")
    assert reply.status == 200, reply.body
    assert (reply.headers["cache-control"], reply.headers["pragma"]) == ("no-store", "no-cache")
    body = reply.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "scim")
    assert fed.server.scim(body["access_token"], "POST", doc=user("wif@acme.test")).status == 201
    assert fed.token(fed.assertion(), client_id=None).status == 200  # found by iss and sub
    assert (fed.keys.hits[DISCOVERY], fed.keys.hits["/keys"]) == (1, 1)  # then cached

    # an EC key (ES256) at an explicit JWKS URL, for a second client
    clients = fed.server.service.oauth_clients
    second = clients.create_without_secret("acme", ADMIN)
    ec = Issuer(url="https://issuer.example/other", kid="ec-1", alg="ES256")
    fed.keys.keys = {"keys": [*fed.issuer.jwks()["keys"], ec.jwk()]}
    clients.federate("acme", second.id, ec.url, "ec-sub", AUDIENCE, fed.keys.url + "/keys")
    fed.ticks[0] += 3600  # the cached set has gone stale
    signed = ec.assertion(fed.server.clock.now(), sub="ec-sub")
    reply = fed.token(signed, client_id=second.id)
    assert reply.status == 200, reply.body
    assert fed.server.scim(reply.json()["access_token"]).json()["totalResults"] == 1
    assert fed.keys.hits["/keys"] == 2


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HS256 JWT made by hand (PyJWT refuses a PEM key as an HMAC secret: the attack)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def _unsigned(claims: dict[str, Any], kid: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode()
    return f"{b64(header)}.{b64(json.dumps(claims).encode())}."


def test_refusals_over_http(fed: Federated) -> None:
    # RFC 7521 §4.2.1 (invalid_client), RFC 6749 §5.2
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    now = fed.server.clock.now()
    kid = fed.issuer.kid
    pem = fed.issuer.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    stranger = Issuer(url=fed.keys.url, kid="not-published")
    replayed = fed.assertion()
    assert fed.token(replayed).status == 200
    secret_client = fed.server.service.oauth_clients.create("acme", ADMIN)
    cases: list[tuple[str, str | None, str]] = [
        (fed.assertion(aud="api://another-app"), "", "audience"),
        (fed.assertion(iss="https://login.example/other-tenant/v2.0"), "", "issuer"),
        (fed.assertion(sub="someone-else"), "", "subject"),
        (fed.assertion(lifetime=-61), "", "expired"),
        (fed.assertion(nbf=int(now.timestamp()) + 120), "", "not valid yet"),
        (fed.assertion(iat=int(now.timestamp()) + 120), "", "future"),
        (fed.assertion(exp=None), "", "no exp claim"),
        (stranger.assertion(now), "", "signing key"),
        (_unsigned(fed.issuer.claims(now), kid), "", "'none'"),
        (_hs256(fed.issuer.claims(now), b"a shared secret", kid), "", "'HS256'"),
        (_hs256(fed.issuer.claims(now), pem, kid), "", "'HS256'"),  # public key as HMAC key
        (replayed, "", "used already"),
        (fed.assertion(), secret_client.client.id, "no client"),  # a client with no federation
        (fed.assertion(sub="nobody-trusts-this"), None, "no client"),
        ("not.a.jwt", "", "well-formed"),
        (fed.assertion()[:-8] + "AAAAAAAA", "", "signature"),
    ]
    for assertion, client_id, expected in cases:
        reply = fed.token(assertion, client_id=client_id)
        assert (reply.status, oauth_error(reply)) == (401, "invalid_client"), expected
        description = reply.json()["error_description"]
        assert expected in description, (expected, description)
        assert assertion not in reply.body.decode()
    assert fed.keys.hits["/keys"] == 1  # the unknown kid fetched nothing within a minute

    wrong_type = fed.token(fed.assertion(), client_assertion_type="urn:other")
    assert (wrong_type.status, oauth_error(wrong_type)) == (401, "invalid_client")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
    missing = fed.server.send("POST", "/oauth/token", urlencode(form).encode(), headers)
    assert (missing.status, oauth_error(missing)) == (400, "invalid_request")
    basic = "Basic " + base64.b64encode(f"{fed.client_id}:x".encode()).decode()
    both = {**form, "client_assertion": fed.assertion()}
    two = fed.server.send(
        "POST", "/oauth/token", urlencode(both).encode(), {**headers, "Authorization": basic}
    )
    assert (two.status, oauth_error(two)) == (400, "invalid_request")

    log = fed.server.service.product.log("acme", 100)
    refusals = [e for e in log if e.operation == "auth.refused"]
    assert len(refusals) == 1 and refusals[0].status == 401  # once a minute per client
    assert "refused: client assertion for OAuth client 'entra wif'" in refusals[0].detail


def test_unknown_kid_fetches_the_new_key_once(fed: Federated) -> None:
    # a key rotation: fetched again on an unknown kid, at most once a minute per JWKS URL
    assert fed.token(fed.assertion()).status == 200
    assert fed.keys.hits["/keys"] == 1
    rotated = Issuer(url=fed.keys.url, kid="key-2")
    fed.keys.keys = rotated.jwks()
    now = fed.server.clock.now
    fed.ticks[0] = 30.0
    early = fed.token(rotated.assertion(now()))
    assert (early.status, oauth_error(early)) == (401, "invalid_client")
    for n in range(5):  # made-up kids never make the server fetch
        forged = Issuer(url=fed.keys.url, kid=f"made-up-{n}")
        assert fed.token(forged.assertion(now())).status == 401
    assert fed.keys.hits["/keys"] == 1
    fed.ticks[0] = 61.0
    assert fed.token(rotated.assertion(now())).status == 200
    assert fed.keys.hits["/keys"] == 2
    assert fed.token(rotated.assertion(now())).status == 200
    assert fed.token(Issuer(url=fed.keys.url, kid="key-3").assertion(now())).status == 401
    assert fed.token(fed.assertion()).status == 401  # key-1 is no longer published
    assert (fed.keys.hits["/keys"], fed.keys.hits[DISCOVERY]) == (2, 1)


def test_without_pyjwt_assertions_are_refused_clearly(
    fed: Federated, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the federation extra is optional: importing PyJWT fails as it does where it is absent
    assertion = fed.assertion()
    monkeypatch.setitem(sys.modules, "jwt", None)
    reply = fed.token(assertion)
    assert (reply.status, oauth_error(reply)) == (401, "invalid_client")
    assert reply.json()["error_description"] == "this server cannot verify client assertions now"
    assert "pip install 'scimcore[federation]'" in caplog.text
    metadata = fed.server.send("GET", "/.well-known/oauth-authorization-server").json()
    assert "private_key_jwt" not in metadata["token_endpoint_auth_methods_supported"]
    issued = fed.server.service.oauth_clients.create("acme", ADMIN)
    assert fed.server.token(issued).status == 200  # secrets work without PyJWT
    monkeypatch.undo()
    assert fed.token(assertion).status == 200


def test_the_adapters_give_the_token_endpoint_a_jwks_key_source() -> None:
    for build in (
        lambda s: create_app(s),
        lambda s: ScimWSGIApp(s),
        lambda s: ScimASGIApp(s),
    ):
        service = ScimService(MemoryStorage())
        build(service)
        assert isinstance(service.oauth.assertions.key_source, JwksKeySource)
    service = ScimService(MemoryStorage())
    ScimWSGIApp(service, oauth=False)
    assert service.oauth.assertions.key_source is None
    own = JwksKeySource(ttl=60)
    service.oauth.assertions.key_source = own
    create_app(service)
    assert service.oauth.assertions.key_source is own


@pytest.fixture(params=["sqlite", "postgresql"])
def any_fed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federated]:
    db = tmp_path / "scim.db"
    if request.param == "sqlite":
        yield from _federated(f"sqlite:///{db}", db)
    else:
        with postgres_schema_url() as url:
            yield from _federated(url, db)


def _database_text(fed: Federated) -> str:
    storage = fed.server.service.storage
    assert isinstance(storage, SqlStorage)
    if storage.engine.dialect.name == "sqlite":
        with sqlite3.connect(fed.server.db) as conn:
            return "\n".join(conn.iterdump())
    rows: list[str] = []
    with storage.engine.connect() as conn:
        for table in METADATA.sorted_tables:
            rows.extend(repr(tuple(r)) for r in conn.execute(select(table)))
    return "\n".join(rows)


def test_no_assertion_in_plain_text_anywhere(
    any_fed: Federated, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fed = any_fed
    used = fed.assertion()
    reply = fed.token(used)
    assert reply.status == 200
    token = reply.json()["access_token"]
    assert fed.server.scim(token, "POST", doc=user("p@acme.test")).status == 201
    refused = [
        used,  # replayed
        fed.assertion(aud="api://another-app"),
        fed.assertion(lifetime=-120),
        fed.assertion(sub="someone-else"),
        Issuer(url=fed.keys.url, kid="unknown").assertion(fed.server.clock.now()),
    ]
    for assertion in refused:
        assert fed.token(assertion).status == 401
        fed.server.clock.advance(minutes=1)  # each refusal is logged
    secrets = {token}
    for assertion in [used, *refused]:
        secrets |= {assertion, assertion.split(".")[2], assertion.split(".")[1]}
    places = {
        "log": caplog.text,
        "provisioning log": repr(fed.server.service.product.log("acme", 1000)),
        "error bodies": b"\n".join(fed.server.errors).decode("utf-8", "replace"),
        "database": _database_text(fed),
    }
    assert places["provisioning log"].count("refused: client assertion") == len(refused)
    # the used assertion's jti is kept as a hash only
    jti = json.loads(base64.urlsafe_b64decode(used.split(".")[1] + "==="))["jti"]
    assert jti not in places["database"]
    kept = hashlib.sha256(f"{fed.keys.url}\n{jti}".encode()).hexdigest()
    assert fed.client_id in places["database"] and kept in places["database"]
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"an assertion or token in plain text in the {where}"
