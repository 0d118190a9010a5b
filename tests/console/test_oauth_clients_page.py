"""The console's OAuth clients page through Flask's test client (issue #20 items 1 and 2,
R2.6, R9.2): create a client (the secret shown once), add and delete secrets, the 30-day flag,
delete a client after confirming; CSRF on every form, every field labelled, each action in the
provisioning log with the signed-in admin's e-mail, another workspace's clients out of reach."""

from __future__ import annotations

import re
from datetime import timedelta

from flask.testing import FlaskClient

from scimcore import ScimService
from tests.console.helpers import ADMIN, OTHER, Clock, csrf, post

PAGE = "/console/acme/oauth-clients"


def create(admin: FlaskClient, label: str = "Entra gallery", days: str = "730") -> tuple[str, str]:
    """Create a client through the page's form: its id and secret, as shown."""
    response = post(admin, PAGE, PAGE, {"label": label, "secret_days": days})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.data.decode()
    assert "shown only once" in page and "Client created" in page
    client_id = re.search(r'id="client-id" type="text" value="([0-9a-f]{32})"', page)
    secret = re.search(r'id="client-secret" type="text" value="([^"]+)"', page)
    assert client_id and secret
    return client_id.group(1), secret.group(1)


def log(service: ScimService) -> list[tuple[str, str, str]]:
    return [(e.operation, e.actor, e.detail) for e in service.product.log("acme", limit=20)]


def test_create_shows_the_secret_once_with_the_token_endpoint(
    admin: FlaskClient, service: ScimService
) -> None:  # R2.6, R9.2
    page = admin.get(PAGE).data.decode()
    assert 'id="tenant-url" type="text" value="http://localhost/scim/v2"' in page
    assert 'id="token-endpoint" type="text" value="http://localhost/oauth/token"' in page
    assert "No clients yet." in page
    client_id, secret = create(admin)
    ((client, secrets),) = service.oauth_clients.list("acme")
    assert (client.id, client.label, client.created_by) == (client_id, "Entra gallery", ADMIN)
    assert secrets[0].expires_at - secrets[0].created_at == timedelta(days=730)
    again = admin.get(PAGE).data.decode()
    assert secret not in again and client_id in again and secrets[0].id in again
    assert "never" in again  # last use
    assert log(service)[0] == ("client.create", ADMIN, f"OAuth client {client_id} 'Entra gallery'")
    assert secret not in " ".join(d for _, _, d in log(service))


def test_rotation_add_then_delete_a_secret(admin: FlaskClient, service: ScimService) -> None:
    client_id, first = create(admin)
    added = post(admin, PAGE, f"{PAGE}/{client_id}/secrets", {"secret_days": "365"})
    assert added.status_code == 200 and added.headers["Cache-Control"] == "no-store"
    text = added.data.decode()
    assert "Secret added" in text and first not in text
    second = re.search(r'id="client-secret" type="text" value="([^"]+)"', text)
    assert second and second.group(1) != first
    ((_, secrets),) = service.oauth_clients.list("acme")
    old, new = sorted(secrets, key=lambda s: s.created_at)
    assert log(service)[0] == (
        "client.secret.add",
        ADMIN,
        f"OAuth client {client_id}: secret {new.id} added",
    )
    gone = post(admin, PAGE, f"{PAGE}/{client_id}/secrets/{old.id}/delete")
    assert gone.status_code == 303
    ((_, left),) = service.oauth_clients.list("acme")
    assert [s.id for s in left] == [new.id]
    assert log(service)[0] == (
        "client.secret.delete",
        ADMIN,
        f"OAuth client {client_id}: secret {old.id} deleted",
    )


def test_secrets_expiring_within_30_days_are_flagged(
    admin: FlaskClient, service: ScimService, clock: Clock
) -> None:
    create(admin, days="365")
    assert "expires soon" not in admin.get(PAGE).data.decode()
    clock.now += timedelta(days=340)
    assert '<span class="badge expiring">expires soon</span>' in admin.get(PAGE).data.decode()
    clock.now += timedelta(days=30)
    assert '<span class="badge expired">expired</span>' in admin.get(PAGE).data.decode()


def test_delete_a_client_after_confirming(admin: FlaskClient, service: ScimService) -> None:
    client_id, _ = create(admin, label="Old")
    page = admin.get(PAGE).data.decode()
    assert f'href="/console/acme/oauth-clients/{client_id}/delete"' in page
    confirm = admin.get(f"{PAGE}/{client_id}/delete").data.decode()
    assert "Delete the client Old?" in confirm and 'id="confirm-delete"' in confirm
    assert service.oauth_clients.list("acme")  # nothing deleted by looking
    done = post(admin, f"{PAGE}/{client_id}/delete", f"{PAGE}/{client_id}/delete")
    assert done.status_code == 303
    assert service.oauth_clients.list("acme") == []
    assert log(service)[0] == ("client.delete", ADMIN, f"OAuth client {client_id} deleted")
    assert admin.get(f"{PAGE}/{client_id}/delete").status_code == 404


def test_forms_need_csrf_and_a_lifetime_offered(admin: FlaskClient, service: ScimService) -> None:
    refused = admin.post(PAGE, data={"label": "x", "secret_days": "365"})
    assert refused.status_code == 400
    bad = post(admin, PAGE, PAGE, {"label": "x", "secret_days": "5000"})
    assert bad.status_code == 303
    assert "Choose a secret lifetime" in admin.get(PAGE).data.decode()
    assert service.oauth_clients.list("acme") == []
    client_id, _ = create(admin)
    token = csrf(admin.get(PAGE).data)
    for action in (f"{PAGE}/{client_id}/secrets", f"{PAGE}/{client_id}/delete"):
        assert admin.post(action, data={"secret_days": "365"}).status_code == 400
    assert admin.post(f"{PAGE}/{client_id}/delete", data={"csrf_token": token}).status_code == 303


def test_every_field_is_labelled(admin: FlaskClient) -> None:
    create(admin)
    page = admin.post(
        PAGE, data={"label": "", "secret_days": "365", "csrf_token": csrf(admin.get(PAGE).data)}
    ).data.decode()
    fields = re.findall(r'<(?:input|select)\b[^>]*\bid="([^"]+)"', page)
    assert len(fields) >= 8
    for field in fields:
        assert f'<label for="{field}">' in page, field
    unnamed = [
        f
        for f in re.findall(r"<(?:input|select)\b[^>]*>", page)
        if 'type="hidden"' not in f and "id=" not in f
    ]
    assert unnamed == []


def test_another_workspaces_clients_are_out_of_reach(
    admin: FlaskClient, service: ScimService
) -> None:  # R1.1
    theirs = service.oauth_clients.create("globex", OTHER, "Theirs").client.id
    assert "Theirs" not in admin.get(PAGE).data.decode()
    assert admin.get(f"{PAGE}/{theirs}/delete").status_code == 404
    token = csrf(admin.get(PAGE).data)
    for action in (f"{PAGE}/{theirs}/delete", f"{PAGE}/{theirs}/secrets"):
        assert (
            admin.post(action, data={"csrf_token": token, "secret_days": "365"}).status_code == 404
        )
    assert admin.get("/console/globex/oauth-clients").status_code == 404
    assert [c.id for c, _ in service.oauth_clients.list("globex")] == [theirs]
