"""The console's OAuth clients page in a real headless Chromium (issue #20 items 1 and 2): an
admin creates a client, sees its secret once, and the secret works for real over HTTP: the
token endpoint answers an access token (client_secret_basic) and a SCIM call succeeds with it;
deleting the client (after confirming) stops both. Redirect URIs (Okta) and federated
identities (Entra) added and deleted on the page. No JavaScript errors, no sideways scrolling
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


def test_redirect_uris_and_federated_identities_on_the_page(pages: Pages) -> None:
    """A client without a secret; Okta's redirect URI refused (http), then added and deleted;
    an Entra federated identity added and deleted: each page checked (no JS error, no sideways
    scroll), the values to paste into Okta and Entra shown beside the client."""
    server: Server = pages.server
    pages.sign_in()
    pages.nav("OAuth clients")
    pages.type("#client-label", "Okta and Entra")
    pages.find("#client-no-secret").click()
    pages.click("#create-client")
    assert "created without a secret" in pages.text() and "shown only once" not in pages.text()
    client_id = str(pages.find("#okta-client-id-1").get_attribute("value"))
    assert len(client_id) == 32
    pages.find("#okta-1 summary").click()
    assert pages.find("#okta-authorize-1").get_attribute("value") == f"{server.url}/oauth/authorize"
    assert pages.find("#okta-token-1").get_attribute("value") == f"{server.url}/oauth/token"
    pages.type("#redirect-uri-1", "http://okta.example/callback")
    pages.click('button[aria-label="Add a redirect URI to Okta and Entra"]')
    error = pages.find(f"#uri-error-{client_id}").text
    assert "http is allowed only on localhost; use https" in error
    pages.check("oauth-client-redirect-refused")
    okta = "https://system-admin.okta.com/admin/app/cpc/acme_scim_integration/oauth/callback"
    pages.type("#redirect-uri-1", okta)
    pages.click('button[aria-label="Add a redirect URI to Okta and Entra"]')
    assert [e.text for e in pages.all("ul.uris code.uri")] == [okta]
    pages.check("oauth-client-redirect-uri")
    pages.click(f'button[aria-label="Delete redirect URI {okta} of Okta and Entra"]')
    assert "Redirect URI deleted" in pages.text() and pages.all("ul.uris") == []
    pages.find("#entra-1 summary").click()
    assert pages.find("#entra-client-id-1").get_attribute("value") == client_id
    assert pages.find("#entra-token-1").get_attribute("value") == f"{server.url}/oauth/token"
    issuer = "https://login.microsoftonline.com/5f3c9a1e-0b2d-4c7e-9a8f-1d2e3f4a5b6c/v2.0"
    pages.type("#issuer-1", issuer)
    pages.type("#subject-1", "9a8f1d2e-3f4a-5b6c-5f3c-9a1e0b2d4c7e")
    pages.type("#audience-1", "api://AzureADTokenExchange")
    pages.type("#jwks_url-1", issuer.replace("/v2.0", "/discovery/v2.0/keys"))
    pages.click('button[aria-label="Trust a federated identity for Okta and Entra"]')
    assert "Federated identity trusted." in pages.text()
    assert issuer in pages.find(".federation").text
    pages.check("oauth-client-federation")
    pages.click(".federation button.danger")
    assert "Federated identity deleted" in pages.text() and pages.all(".federation") == []
