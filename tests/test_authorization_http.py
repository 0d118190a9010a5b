"""Okta's authorization-code grant over real HTTP on the example server (issue 20 item 4): the
authorize page with the console's sign-in (cookies, CSRF), approve and deny, the code
exchanged with PKCE, refresh token rotation, a SCIM call; every refusal with its RFC 6749
error; and no code or token in plain text in the log, the provisioning log, error bodies or
the database."""

from __future__ import annotations

import base64
import logging
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import HTTPCookieProcessor, HTTPRedirectHandler, Request, build_opener

import pytest
from examples.flask_server import create_app

from scimcore import Runtime, ScimService, system_runtime
from scimcore.authorization_tokens import pkce_challenge
from scimcore.oauth_clients import IssuedSecret
from scimcore_adapters.passwords import hash_password
from scimcore_adapters.sql import SqlStorage
from tests import test_oauth_http as oauth_http
from tests.conftest import serve_wsgi
from tests.test_oauth_http import Clock

ADMIN = "it@acme.example"
OTHER = "root@beta.example"
PASSWORD = "correct horse battery staple"
CALLBACK = "http://127.0.0.1:9/okta/callback"  # never followed: the tests read Location
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


class Reply(oauth_http.Reply):
    def query(self) -> dict[str, str]:
        """The parameters of the redirect's Location."""
        location = self.headers["location"]
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class _Stay(HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the test reads each redirect itself


@dataclass
class Server:
    url: str
    service: ScimService
    clock: Clock
    db: Path
    errors: list[bytes] = field(default_factory=list)

    def browser(self) -> Browser:
        return Browser(self)

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
             opener: Any = None) -> Reply:  # fmt: skip
        url = path if path.startswith("http") else self.url + path
        request = Request(url, data=body or None, method=method, headers=headers or {})
        try:
            with (opener or build_opener(_Stay)).open(request, timeout=10) as response:
                reply = Reply(response.status, _lower(response.headers), response.read())
        except HTTPError as error:
            reply = Reply(error.code, _lower(error.headers), error.read())
        if reply.status >= 400:
            self.errors.append(reply.body)
        return reply

    def token(self, issued: IssuedSecret, form: dict[str, str], post: bool = False) -> Reply:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if post:
            form = {**form, "client_id": issued.client.id, "client_secret": issued.plaintext}
        else:
            pair = f"{issued.client.id}:{issued.plaintext}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return self.send("POST", "/oauth/token", urlencode(form).encode(), headers)

    def exchange(self, issued: IssuedSecret, code: str, **extra: str) -> Reply:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
        return self.token(issued, {**form, **extra})

    def refresh(self, issued: IssuedSecret, token: str, post: bool = False) -> Reply:
        return self.token(issued, {"grant_type": "refresh_token", "refresh_token": token}, post)

    def scim(self, token: str) -> int:
        return self.send(
            "GET", "/scim/v2/Users", headers={"Authorization": f"Bearer {token}"}
        ).status


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


class Browser:
    """A browser without JavaScript: cookies kept, redirects read one by one."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.opener = build_opener(HTTPCookieProcessor(CookieJar()), _Stay)

    def get(self, path: str) -> Reply:
        return self.server.send("GET", path, opener=self.opener)

    def post(self, path: str, form: dict[str, str]) -> Reply:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.server.send("POST", path, urlencode(form).encode(), headers, self.opener)

    def sign_in(self, workspace: str = "acme", email: str = ADMIN, next_: str = "") -> Reply:
        token = csrf(self.get("/console/sign-in").body)
        form = {"workspace": workspace, "email": email, "password": PASSWORD, "next": next_}
        return self.post("/console/sign-in", {**form, "csrf_token": token})

    def decide(self, page: Reply, decision: str) -> Reply:
        """Press Approve or Deny on the consent page."""
        hidden = re.search(rb'name="query" value="([^"]*)"', page.body)
        assert hidden, page.body
        query = hidden.group(1).decode().replace("&amp;", "&")
        form = {"csrf_token": csrf(page.body), "query": query, "decision": decision}
        return self.post("/oauth/authorize", form)


def csrf(page: bytes) -> str:
    match = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1).decode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    clock = Clock()
    real = system_runtime()
    runtime = Runtime(now=clock.now, new_id=real.new_id, new_secret=real.new_secret)
    db = tmp_path / "scim.db"
    storage = SqlStorage(f"sqlite:///{db}", checkpoint_interval=None)
    service = ScimService(storage, runtime=runtime)
    for slug, email in (("acme", ADMIN), ("beta", OTHER)):
        service.workspaces.create(slug, email)
        service.workspaces.set_password_hash(slug, email, hash_password(PASSWORD))
    try:
        for port in serve_wsgi(create_app(service, deliver_mail=False)):
            yield Server(f"http://127.0.0.1:{port}", service, clock, db)
    finally:
        storage.close()


def okta(server: Server, slug: str = "acme", admin: str = ADMIN) -> IssuedSecret:
    issued = server.service.oauth_clients.create(slug, admin, "Okta")
    server.service.authorization.add_redirect_uri(slug, issued.client.id, CALLBACK)
    return issued


def authorize_path(issued: IssuedSecret, **extra: str) -> str:
    params = {"response_type": "code", "client_id": issued.client.id, "redirect_uri": CALLBACK}
    return "/oauth/authorize?" + urlencode({**params, "state": "s-1", **extra})


def approve(server: Server, issued: IssuedSecret, browser: Browser | None = None,
            **extra: str) -> str:  # fmt: skip
    """Sign in (if need be), approve, and return the code sent to the redirect URI."""
    if browser is None:
        browser = server.browser()
        browser.sign_in()
    page = browser.get(authorize_path(issued, **extra))
    assert page.status == 200, page.body
    sent = browser.decide(page, "approve")
    assert sent.status == 303 and sent.headers["location"].startswith(CALLBACK + "?")
    assert sent.query()["state"] == "s-1"
    return sent.query()["code"]


def oauth_error(reply: Reply) -> str:
    assert reply.headers["cache-control"] == "no-store", reply.headers
    return str(reply.json()["error"])


def test_sign_in_approve_exchange_refresh_scim(server: Server) -> None:
    # R2.6; RFC 6749 §4.1, §6; RFC 7636; RFC 8414
    metadata = server.send("GET", "/.well-known/oauth-authorization-server").json()
    assert metadata["authorization_endpoint"] == server.url + "/oauth/authorize"
    assert metadata["token_endpoint"] == server.url + "/oauth/token"
    assert set(metadata["grant_types_supported"]) == {
        "client_credentials", "authorization_code", "refresh_token"
    }  # fmt: skip
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    spc = server.send("GET", "/scim/v2/ServiceProviderConfig").json()
    assert "authorization code" in spc["authenticationSchemes"][1]["name"]

    issued = okta(server)
    path = authorize_path(
        issued, code_challenge=pkce_challenge(VERIFIER), code_challenge_method="S256"
    )
    browser = server.browser()
    to_sign_in = browser.get(path)
    assert to_sign_in.status == 303 and "/console/sign-in?next=" in to_sign_in.headers["location"]
    next_ = parse_qs(urlsplit(to_sign_in.headers["location"]).query)["next"][0]
    assert next_ == path
    back = browser.sign_in(next_=next_)
    assert (back.status, back.headers["location"]) == (303, path)
    page = browser.get(path)
    assert page.status == 200 and page.headers["cache-control"] == "no-store"
    text = page.body.decode()
    assert "Okta" in text and "acme" in text and CALLBACK in text and issued.client.id in text
    assert page.headers["x-frame-options"] == "DENY"
    sent = browser.decide(page, "approve")
    assert sent.status == 303
    params = sent.query()
    assert (params["state"], params["iss"]) == ("s-1", server.url)

    first = server.exchange(issued, params["code"], code_verifier=VERIFIER)
    assert first.status == 200 and first.headers["cache-control"] == "no-store"
    body = first.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "scim")
    assert server.scim(body["access_token"]) == 200
    second = server.refresh(issued, body["refresh_token"], post=True).json()
    assert server.scim(second["access_token"]) == 200
    reused = server.refresh(issued, body["refresh_token"])
    assert (reused.status, oauth_error(reused)) == (400, "invalid_grant")
    assert server.scim(second["access_token"]) == 401  # the family is revoked
    log = server.service.product.log("acme", 50)
    assert [e.actor for e in log if e.operation == "client.approve"] == [ADMIN]


def test_every_refusal(server: Server) -> None:
    # RFC 6749 §4.1.2, §4.1.3, §5.2; RFC 7636 §4.6
    issued, other = okta(server), okta(server)
    browser = server.browser()
    browser.sign_in()

    def refused(reply: Reply, error: str = "invalid_grant") -> None:
        assert (reply.status, oauth_error(reply)) == (400, error), reply.body

    code = approve(server, issued, browser)
    tokens = server.exchange(issued, code).json()
    refused(server.exchange(issued, code))  # reused: and what it issued is revoked
    assert server.scim(tokens["access_token"]) == 401
    refused(server.refresh(issued, tokens["refresh_token"]))

    expired = approve(server, issued, browser)
    server.clock.at += timedelta(minutes=5)
    refused(server.exchange(issued, expired))

    refused(server.exchange(issued, approve(server, issued, browser), redirect_uri=CALLBACK + "x"))
    pkce = {"code_challenge": pkce_challenge(VERIFIER), "code_challenge_method": "S256"}
    wrong = approve(server, issued, browser, **pkce)
    refused(server.exchange(issued, wrong, code_verifier=VERIFIER[:-1] + "A"))
    refused(server.exchange(issued, approve(server, issued, browser, **pkce)))  # none sent

    theirs = approve(server, issued, browser)
    refused(server.exchange(other, theirs))  # the code of another client
    good = server.exchange(issued, theirs).json()
    twice = server.refresh(issued, good["refresh_token"]).json()
    refused(server.refresh(issued, good["refresh_token"]))  # a refresh token used twice
    refused(server.refresh(issued, twice["refresh_token"]))  # its family is gone
    assert server.scim(twice["access_token"]) == 401
    refused(server.token(issued, {"grant_type": "authorization_code"}), "invalid_request")
    plain = server.token(okta(server), {"grant_type": "refresh_token"})
    refused(plain, "invalid_request")

    denied = browser.decide(browser.get(authorize_path(issued)), "deny")
    assert denied.status == 303 and denied.query()["error"] == "access_denied"
    assert denied.query()["state"] == "s-1" and "code" not in denied.query()
    forged = browser.post("/oauth/authorize", {"query": authorize_path(issued)[17:],
                                               "decision": "approve"})  # fmt: skip
    assert forged.status == 400 and "location" not in forged.headers  # no CSRF token


def test_authorize_errors_page_or_redirect(server: Server) -> None:
    # RFC 6749 §4.1.2.1
    issued = okta(server)
    browser = server.browser()
    browser.sign_in()
    for bad in (
        authorize_path(issued, client_id="f" * 32),
        authorize_path(issued, redirect_uri=CALLBACK + "/more"),
        authorize_path(issued, redirect_uri="http://127.0.0.1:9/okta/"),
        authorize_path(issued, redirect_uri="https://evil.example/okta/callback"),
    ):
        page = browser.get(bad)
        assert page.status == 400 and "location" not in page.headers, bad
        assert "evil" not in page.body.decode()
    for extra, error in (
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": VERIFIER, "code_challenge_method": "plain"}, "invalid_request"),
    ):
        sent = browser.get(authorize_path(issued, **extra))
        assert sent.status == 302 and sent.query()["error"] == error
        assert sent.query()["state"] == "s-1"


def test_another_workspaces_admin_cannot_approve(server: Server) -> None:
    # R1.1
    issued = okta(server)
    browser = server.browser()
    browser.sign_in("beta", OTHER)
    page = browser.get(authorize_path(issued))
    assert page.status == 403 and "another workspace" in page.body.decode()
    assert "acme" not in page.body.decode()
    token = csrf(browser.get("/console/sign-in").body)
    posted = browser.post(
        "/oauth/authorize",
        {"csrf_token": token, "query": authorize_path(issued)[17:], "decision": "approve"},
    )
    assert posted.status == 403 and "location" not in posted.headers
    log = server.service.product.log("acme", 50)
    assert not any(e.operation == "client.approve" for e in log)


def test_no_code_or_token_in_plain_text_anywhere(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issued = okta(server)
    browser = server.browser()
    browser.sign_in()
    secrets = [issued.plaintext, VERIFIER]
    pkce = {"code_challenge": pkce_challenge(VERIFIER), "code_challenge_method": "S256"}
    code = approve(server, issued, browser, **pkce)
    body = server.exchange(issued, code, code_verifier=VERIFIER).json()
    again = server.refresh(issued, body["refresh_token"]).json()
    secrets += [code, body["access_token"], body["refresh_token"], again["access_token"],
                again["refresh_token"]]  # fmt: skip
    server.exchange(issued, code, code_verifier=VERIFIER)  # refused: replayed
    server.refresh(issued, body["refresh_token"])  # refused: replayed
    server.refresh(issued, again["refresh_token"] + "x")
    unused = approve(server, issued, browser)
    server.exchange(issued, unused, code_verifier=VERIFIER)  # refused: downgrade
    secrets.append(unused)
    places = {
        "log": caplog.text,
        "provisioning log": repr(server.service.product.log("acme", 1000)),
        "error bodies": b"\n".join(server.errors).decode("utf-8", "replace"),
    }
    with sqlite3.connect(server.db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"oauth_codes", "oauth_refresh_tokens", "oauth_grants"} <= tables
        places["database"] = "\n".join(conn.iterdump())
    assert "client.approve" in places["provisioning log"] and len(server.errors) >= 4
    assert "presented twice" in places["provisioning log"]
    # an access token's secret part follows "scimat_" and its id; a refresh token's, "scimrt_"
    parts = set(secrets) | {s[40:] for s in secrets if s.startswith("scimat_")}
    parts |= {s[7:] for s in secrets if s.startswith("scimrt_")}
    assert all(len(p) >= 40 for p in parts)
    for where, text in places.items():
        for secret in parts:
            assert secret not in text, f"a secret in plain text in the {where}"
