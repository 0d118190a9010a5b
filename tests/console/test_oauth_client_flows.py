"""The OAuth clients page's redirect URIs (Okta, authorization code) and federated identities
(Entra, workload identity federation) through Flask's test client (issue #20 items 3 and 4):
add and delete each, the API's refusals shown beside the form (400, never a 500), a client
created without a secret, the values to paste into Okta and Entra, CSRF on every form, another
workspace's clients out of reach (404), each action logged with the admin's e-mail (R9.2)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from scimcore import ScimService
from tests.console.helpers import ADMIN, OTHER, csrf, post
from tests.console.test_oauth_clients_page import PAGE, create, log

OKTA = "https://system-admin.okta.com/admin/app/cpc/acme/oauth/callback"
ISSUER = "https://login.microsoftonline.com/tenant-1/v2.0"
KEYS = "https://login.microsoftonline.com/tenant-1/discovery/v2.0/keys"
IDENTITY = {"issuer": ISSUER, "subject": "sub-1", "audience": "api://aud-1", "jwks_url": KEYS}


def test_add_and_delete_a_redirect_uri(admin: FlaskClient, service: ScimService) -> None:
    client_id, _ = create(admin, label="Okta")
    page = admin.get(PAGE).data.decode()
    # What Okta's form asks for, beside the client.
    assert 'id="okta-authorize-1" type="text" value="http://localhost/oauth/authorize"' in page
    assert 'id="okta-token-1" type="text" value="http://localhost/oauth/token"' in page
    assert f'id="okta-client-id-1" type="text" value="{client_id}"' in page
    added = post(admin, PAGE, f"{PAGE}/{client_id}/redirect-uris", {"uri": OKTA})
    assert added.status_code == 303
    (uri,) = service.authorization.list_redirect_uris("acme", client_id)
    assert uri.uri == OKTA
    assert log(service)[0] == (
        "client.redirect.add",
        ADMIN,
        f"OAuth client {client_id}: redirect URI {OKTA} added",
    )
    page = admin.get(PAGE).data.decode()
    assert f"Redirect URI {OKTA} registered." in page and f'<code class="uri">{OKTA}</code>' in page
    gone = post(admin, PAGE, f"{PAGE}/{client_id}/redirect-uris/{uri.id}/delete")
    assert gone.status_code == 303
    assert service.authorization.list_redirect_uris("acme", client_id) == []
    assert log(service)[0] == (
        "client.redirect.delete",
        ADMIN,
        f"OAuth client {client_id}: redirect URI {OKTA} deleted",
    )
    again = post(admin, PAGE, f"{PAGE}/{client_id}/redirect-uris/{uri.id}/delete")
    assert again.status_code == 303
    assert "That redirect URI no longer exists." in admin.get(PAGE).data.decode()


def test_a_refused_redirect_uri_is_explained_beside_its_form(
    admin: FlaskClient, service: ScimService
) -> None:
    client_id, _ = create(admin)
    for uri, reason in (
        ("http://okta.example/callback", "http is allowed only on localhost; use https"),
        ("not a uri", "a redirect URI has 1 to 2000 characters and no spaces"),
        ("https://okta.example/cb#frag", "a redirect URI has no fragment and no user name"),
    ):
        refused = post(admin, PAGE, f"{PAGE}/{client_id}/redirect-uris", {"uri": uri})
        assert refused.status_code == 400
        text = refused.data.decode()
        error = re.search(
            rf'<p class="form-error" role="alert" id="uri-error-{client_id}">(.*?)</p>', text
        )
        assert error and "No redirect URI added" in error.group(1) and reason in error.group(1)
        assert 'id="redirect-uri-1"' in text and "&lt;" not in error.group(1)
    assert service.authorization.list_redirect_uris("acme", client_id) == []
    assert log(service)[0][0] == "client.create"


def test_trust_and_delete_a_federated_identity(admin: FlaskClient, service: ScimService) -> None:
    client_id, _ = create(admin, label="Entra WIF")
    page = admin.get(PAGE).data.decode()
    assert f'id="entra-client-id-1" type="text" value="{client_id}"' in page
    assert 'id="entra-token-1" type="text" value="http://localhost/oauth/token"' in page
    assert 'id="entra-scim-1" type="text" value="http://localhost/scim/v2"' in page
    added = post(admin, PAGE, f"{PAGE}/{client_id}/federations", IDENTITY)
    assert added.status_code == 303
    (federation,) = service.oauth_clients.federations("acme", client_id)
    assert (federation.issuer, federation.subject, federation.audience, federation.jwks_url) == (
        ISSUER,
        "sub-1",
        "api://aud-1",
        KEYS,
    )
    assert log(service)[0] == (
        "client.federate",
        ADMIN,
        f"OAuth client {client_id}: federated identity {federation.id} of {ISSUER}",
    )
    page = admin.get(PAGE).data.decode()
    for value in (ISSUER, "sub-1", "api://aud-1", KEYS):
        assert f"<code>{value}</code>" in page
    gone = post(admin, PAGE, f"{PAGE}/{client_id}/federations/{federation.id}/delete")
    assert gone.status_code == 303
    assert service.oauth_clients.federations("acme", client_id) == []
    assert log(service)[0] == (
        "client.unfederate",
        ADMIN,
        f"OAuth client {client_id}: federated identity {federation.id} deleted",
    )
    # Without a JWKS URL the keys are discovered from the issuer.
    post(admin, PAGE, f"{PAGE}/{client_id}/federations", {**IDENTITY, "jwks_url": ""})
    (federation,) = service.oauth_clients.federations("acme", client_id)
    assert federation.jwks_url is None
    assert "discovered from the issuer" in admin.get(PAGE).data.decode()


def test_a_refused_federated_identity_is_explained_and_kept(
    admin: FlaskClient, service: ScimService
) -> None:
    client_id, _ = create(admin)
    for changed, reason in (
        ({"issuer": "http://issuer.example", "jwks_url": ""}, "issuer (without a JWKS URL)"),
        ({"jwks_url": "http://keys.example/jwks"}, "the JWKS URL must be an https URL"),
        ({"subject": ""}, "the subject must be printable text"),
    ):
        refused = post(admin, PAGE, f"{PAGE}/{client_id}/federations", {**IDENTITY, **changed})
        assert refused.status_code == 400
        text = refused.data.decode()
        pattern = rf'<p class="form-error" role="alert" id="federation-error-{client_id}">(.*?)</p>'
        error = re.search(pattern, text)
        assert error and "No federated identity added" in error.group(1)
        assert reason in error.group(1), error.group(1)
        assert (
            'id="audience-1" name="audience" type="text" maxlength="2000" required value="api://aud-1"'
            in text
        )
    assert service.oauth_clients.federations("acme", client_id) == []


def test_a_client_without_a_secret(admin: FlaskClient, service: ScimService) -> None:
    made = post(admin, PAGE, PAGE, {"label": "WIF only", "secret_days": "365", "no_secret": "1"})
    assert made.status_code == 303
    ((client, secrets),) = service.oauth_clients.list("acme")
    assert (client.label, client.created_by, list(secrets)) == ("WIF only", ADMIN, [])
    page = admin.get(PAGE).data.decode()
    assert "created without a secret" in page and "shown only once" not in page
    assert "No secrets: add one or a federated identity." in page
    assert log(service)[0] == (
        "client.create",
        ADMIN,
        f"OAuth client {client.id} 'WIF only' (no secret)",
    )
    post(admin, PAGE, f"{PAGE}/{client.id}/federations", IDENTITY)
    assert "it authenticates with its federated identities" in admin.get(PAGE).data.decode()


def test_the_new_forms_need_csrf(admin: FlaskClient, service: ScimService) -> None:
    client_id, _ = create(admin)
    post(admin, PAGE, f"{PAGE}/{client_id}/redirect-uris", {"uri": OKTA})
    post(admin, PAGE, f"{PAGE}/{client_id}/federations", IDENTITY)
    (uri,) = service.authorization.list_redirect_uris("acme", client_id)
    (federation,) = service.oauth_clients.federations("acme", client_id)
    for action, data in (
        (f"{PAGE}/{client_id}/redirect-uris", {"uri": "https://other.example/cb"}),
        (f"{PAGE}/{client_id}/redirect-uris/{uri.id}/delete", {}),
        (f"{PAGE}/{client_id}/federations", {**IDENTITY, "subject": "sub-2"}),
        (f"{PAGE}/{client_id}/federations/{federation.id}/delete", {}),
        (PAGE, {"label": "x", "no_secret": "1"}),
    ):
        refused = admin.post(action, data=data)
        assert refused.status_code == 400 and "Form refused" in refused.data.decode()
    assert [u.id for u in service.authorization.list_redirect_uris("acme", client_id)] == [uri.id]
    assert [f.id for f in service.oauth_clients.federations("acme", client_id)] == [federation.id]
    assert len(service.oauth_clients.list("acme")) == 1


def test_every_new_field_is_labelled(admin: FlaskClient) -> None:
    client_id, _ = create(admin)
    refused = post(admin, PAGE, f"{PAGE}/{client_id}/federations", {**IDENTITY, "subject": ""})
    page = refused.data.decode()
    fields = re.findall(r'<(?:input|select)\b[^>]*\bid="([^"]+)"', page)
    for field in ("client-no-secret", "redirect-uri-1", "issuer-1", "subject-1", "jwks_url-1"):
        assert field in fields
    for field in fields:
        assert f'<label for="{field}">' in page, field


def test_another_workspaces_client_is_out_of_reach(
    admin: FlaskClient, service: ScimService
) -> None:  # R1.1
    theirs = service.oauth_clients.create("globex", OTHER, "Theirs").client.id
    uri = service.authorization.add_redirect_uri("globex", theirs, OKTA)
    federation = service.oauth_clients.federate("globex", theirs, ISSUER, "s", "a")
    token = csrf(admin.get(PAGE).data)
    for action in (
        f"{PAGE}/{theirs}/redirect-uris",
        f"{PAGE}/{theirs}/redirect-uris/{uri.id}/delete",
        f"{PAGE}/{theirs}/federations",
        f"{PAGE}/{theirs}/federations/{federation.id}/delete",
    ):
        answer = admin.post(action, data={"csrf_token": token, **IDENTITY, "uri": OKTA})
        assert answer.status_code == 404, action
    assert [u.id for u in service.authorization.list_redirect_uris("globex", theirs)] == [uri.id]
    assert [f.id for f in service.oauth_clients.federations("globex", theirs)] == [federation.id]
    assert [op for op, _, _ in log(service) if op.startswith("client.")] == []
