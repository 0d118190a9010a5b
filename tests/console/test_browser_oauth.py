"""The console's OAuth clients page in a real headless Chromium (issue #20 items 1 and 2): an
admin creates a client, sees its secret once, and the secret works for real over HTTP: the
token endpoint answers an access token (client_secret_basic) and a SCIM call succeeds with it;
deleting the client (after confirming) stops both. No JavaScript errors, no sideways scrolling
at 1280 px (``Pages.check`` on every page). Skipped, saying so, without Chromium."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from selenium.webdriver.support.ui import Select

from tests.console.test_browser import Pages, Server, driver, pages, server

__all__ = ["driver", "pages", "server"]


def token_request(url: str, client_id: str, secret: str) -> tuple[int, dict[str, Any]]:
    """``grant_type=client_credentials`` with HTTP Basic client authentication (RFC 6749
    §2.3.1, §4.4): the status and the JSON answer."""
    pair = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}"
    request = urllib.request.Request(
        url,
        method="POST",
        data=b"grant_type=client_credentials",
        headers={
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_client_made_on_the_page_gets_a_token_and_provisions(pages: Pages) -> None:
    server: Server = pages.server
    pages.sign_in()
    pages.nav("OAuth clients")
    pages.check("oauth-clients-empty")
    assert pages.find("#tenant-url").get_attribute("value") == f"{server.url}/scim/v2"
    token_url = pages.find("#token-endpoint").get_attribute("value")
    assert token_url == f"{server.url}/oauth/token"
    pages.type("#client-label", "Entra gallery")
    Select(pages.find("#client-lifetime")).select_by_visible_text("2 years")
    pages.click("#create-client")
    pages.check("oauth-client-created")
    assert "shown only once" in pages.text()
    client_id = str(pages.find("#client-id").get_attribute("value"))
    secret = str(pages.find("#client-secret").get_attribute("value"))
    assert pages.find("#issued-token-endpoint").get_attribute("value") == token_url
    pages.nav("OAuth clients")
    assert secret not in pages.driver.page_source and client_id in pages.text()
    pages.check("oauth-clients")
    # The secret, for real: an access token from the token endpoint, then a SCIM call with it.
    status, answer = token_request(str(token_url), client_id, secret)
    assert status == 200, answer
    assert answer["token_type"].lower() == "bearer" and answer["expires_in"] > 0
    access = answer["access_token"]
    status, body = server.scim(access, "GET", "/Users?filter=userName%20eq%20%22x%22")
    assert (status, body["totalResults"]) == (200, 0)
    status, body = server.scim(
        access,
        "POST",
        "/Users",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann@acme.example"},
    )
    assert status == 201, body
    pages.nav("OAuth clients")
    assert "never" not in pages.find("table.secrets tbody").text  # last use shown
    # Delete the client, confirming first: the secret and the access token stop at once.
    pages.click('a[aria-label="Delete client Entra gallery"]')
    pages.check("oauth-client-delete")
    pages.click("#confirm-delete")
    assert "Client deleted" in pages.text() and "No clients yet." in pages.text()
    assert token_request(str(token_url), client_id, secret)[0] == 401
    assert server.scim(access, "GET", "/Users")[0] == 401
