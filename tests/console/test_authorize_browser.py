"""Okta's authorization-code grant driven in a real headless Chromium (issue 20, "Done when"):
open the authorize URL, sign in through the console's sign-in, approve; a local HTTP server at
the redirect URI receives the code; the code (with PKCE) is exchanged for tokens, refreshed,
and the new access token makes a SCIM call while the old refresh token is refused. Every page
is checked for JavaScript errors, unlabelled fields and sideways scrolling at 1280 px.

Skipped, saying so, without ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (the
``driver`` fixture of :mod:`tests.console.test_browser`).
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from selenium import webdriver

from scimcore.authorization_tokens import pkce_challenge
from scimcore.oauth_clients import IssuedSecret
from tests.console.helpers import ADMIN, OTHER, PASSWORD, make_service
from tests.console.test_browser import Pages, Server, driver  # noqa: F401  (the fixture)

VERIFIER = "M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag"


class Callback:
    """The client's redirect URI: a local HTTP server that records the query it receives."""

    def __init__(self) -> None:
        self.received = threading.Event()
        self.query: dict[str, str] = {}
        callback = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                callback.query = {k: v[0] for k, v in query.items()}
                page = b'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                page += b'<link rel="icon" href="data:,"><title>Okta</title></head>'
                page += b"<body><main>received</main></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                callback.received.set()

            def log_message(self, *args: Any) -> None:  # the query holds the code
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/okta/callback"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)


@pytest.fixture
def flow(tmp_path: Path, driver: webdriver.Chrome) -> Iterator[tuple[Pages, Callback]]:  # noqa: F811
    server = Server(make_service(tmp_path))
    callback = Callback()
    driver.delete_all_cookies()
    try:
        yield Pages(driver, server), callback
    finally:
        callback.stop()
        server.stop()


def labelled(pages: Pages) -> None:
    """Every visible form field has a label (or an aria-label)."""
    for field in pages.all("input:not([type=hidden]), select, textarea"):
        name = field.get_attribute("id")
        has_label = bool(name) and bool(pages.all(f"label[for='{name}']"))
        assert has_label or field.get_attribute("aria-label"), field.get_attribute("outerHTML")


def okta(pages: Pages, callback: Callback, slug: str = "acme", admin: str = ADMIN) -> IssuedSecret:
    service = pages.server.service
    issued = service.oauth_clients.create(slug, admin, "Okta provisioning")
    service.authorization.add_redirect_uri(slug, issued.client.id, callback.url)
    return issued


def authorize_url(pages: Pages, issued: IssuedSecret, callback: Callback, state: str) -> str:
    params = {
        "response_type": "code",
        "client_id": issued.client.id,
        "redirect_uri": callback.url,
        "state": state,
        "code_challenge": pkce_challenge(VERIFIER),
        "code_challenge_method": "S256",
    }
    return f"{pages.server.url}/oauth/authorize?{urlencode(params)}"


def token(pages: Pages, issued: IssuedSecret, form: dict[str, str]) -> tuple[int, Any]:
    """A token request as Okta makes it (HTTP Basic): the status and the JSON body."""
    pair = base64.b64encode(f"{issued.client.id}:{issued.plaintext}".encode()).decode()
    request = urllib.request.Request(
        f"{pages.server.url}/oauth/token",
        data=urlencode(form).encode(),
        headers={"Authorization": f"Basic {pair}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def sign_in_for_next(pages: Pages, workspace: str, email: str) -> None:
    """On the sign-in page the authorize request sent us to: sign in, and go back to it."""
    assert "/console/sign-in?next=" in pages.driver.current_url
    labelled(pages)
    pages.type("#workspace", workspace)
    pages.type("#email", email)
    pages.type("#password", PASSWORD)
    pages.click("#sign-in")


def test_okta_signs_in_approves_and_provisions(flow: tuple[Pages, Callback]) -> None:
    # R2.6; RFC 6749 §4.1 end to end, PKCE (RFC 7636), refresh token rotation
    pages, callback = flow
    issued = okta(pages, callback)
    pages.visit(authorize_url(pages, issued, callback, "state-1"))
    sign_in_for_next(pages, "acme", ADMIN)
    assert "/oauth/authorize?" in pages.driver.current_url
    text = pages.text()
    assert "Okta provisioning" in text and "acme" in text and callback.url in text
    assert ADMIN in text and "S256" in text
    labelled(pages)
    pages.check("authorize")
    pages.find("#approve").click()
    assert callback.received.wait(10), "the redirect URI received nothing"
    assert callback.query["state"] == "state-1" and callback.query["iss"] == pages.server.url
    code = callback.query["code"]

    status, first = token(
        pages,
        issued,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": callback.url,
         "code_verifier": VERIFIER},
    )  # fmt: skip
    assert status == 200, first
    status, second = token(
        pages, issued, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert status == 200, second
    new_user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "o@acme.ex"}
    assert pages.server.scim(second["access_token"], "POST", "/Users", new_user)[0] == 201
    assert pages.server.scim(second["access_token"], "GET", "/Users")[1]["totalResults"] == 1
    status, old = token(
        pages, issued, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert (status, old["error"]) == (400, "invalid_grant")
    pages.open("/console/")  # still signed in: the log shows the approval
    pages.nav("Provisioning log")
    assert "client.approve" in pages.text()


def test_another_workspace_admin_is_refused_and_deny_goes_back(
    flow: tuple[Pages, Callback],
) -> None:
    # R1.1; RFC 6749 §4.1.2.1 access_denied
    pages, callback = flow
    issued = okta(pages, callback)
    pages.visit(authorize_url(pages, issued, callback, "state-2"))
    sign_in_for_next(pages, "globex", OTHER)
    assert "another workspace" in pages.text()
    assert not pages.all("#approve")
    pages.check("authorize-refused")
    pages.click("main a")  # "Sign in as another admin": back through the sign-in
    sign_in_for_next(pages, "acme", ADMIN)
    pages.check()
    pages.find("#deny").click()
    assert callback.received.wait(10)
    assert callback.query["error"] == "access_denied" and callback.query["state"] == "state-2"
    assert "code" not in callback.query
