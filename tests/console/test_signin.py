"""Signing in to the console, and every refusal of issue #17's "Done when": a form without its
CSRF token, a signed-out request, a deactivated admin's session, another workspace's pages."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from scimcore import ScimService
from scimcore_adapters.bootstrap import open_storage
from scimcore_adapters.console.signin import SignInThrottle, mount_console
from tests.console.helpers import (
    ADMIN,
    OTHER,
    PASSWORD,
    create_console_app,
    csrf,
    post,
    scim_create,
    sign_in,
    token_for,
)

# --- sign-in -------------------------------------------------------------------------------


def test_sign_in_opens_the_console_at_the_admins_workspace(app: Flask) -> None:
    with app.test_client() as client:
        response = sign_in(client)
        assert response.status_code == 303
        page = client.get(response.headers["Location"], follow_redirects=True)
        assert page.status_code == 200
        assert b"Team Card Provisioning" in page.data
        assert b"http://localhost/scim/v2" in page.data  # the Tenant URL, from the request


def test_sign_in_prefills_the_only_workspace(tmp_path: Path) -> None:
    service = ScimService(open_storage(f"sqlite:///{tmp_path / 'one.db'}"))
    service.workspaces.create("solo", ADMIN)
    page = create_console_app(service).test_client().get("/console/sign-in").data
    assert b'name="workspace" type="text" required value="solo"' in page


def test_wrong_password_and_unknown_admin_are_refused_alike(app: Flask) -> None:
    client = app.test_client()
    pages = []
    for workspace, email in (("acme", ADMIN), ("acme", "nobody@acme.example"), ("nope", ADMIN)):
        token = csrf(client.get("/console/sign-in").data)
        form = {"workspace": workspace, "email": email, "password": "wrong", "csrf_token": token}
        response = client.post("/console/sign-in", data=form)
        assert response.status_code == 401
        pages.append(response.data)
    assert all(b"Wrong workspace, e-mail or password" in p for p in pages)
    assert client.get("/console/acme/integrations").status_code == 303  # still signed out


def test_repeated_failed_sign_ins_slow_down(service: ScimService) -> None:
    app = Flask("throttled")
    app.config["SECRET_KEY"] = "k"
    now = [1000.0]
    sign = mount_console(app, service)
    sign.throttle = SignInThrottle(free=3, base=2.0, clock=lambda: now[0])
    client = app.test_client()

    def attempt(password: str) -> int:
        token = csrf(client.get("/console/sign-in").data)
        form = {"workspace": "acme", "email": ADMIN, "password": password, "csrf_token": token}
        return client.post("/console/sign-in", data=form).status_code

    assert [attempt("wrong") for _ in range(3)] == [401, 401, 401]
    assert attempt(PASSWORD) == 429  # even the right password waits: 2 s after the 3rd failure
    now[0] += 2.1
    assert attempt("wrong") == 401
    now[0] += 2.1  # the 4th failure doubled the wait
    assert attempt(PASSWORD) == 429
    now[0] += 2.0
    assert attempt(PASSWORD) == 303
    assert sign.throttle.wait(("acme", ADMIN)) == 0  # a success forgets the failures


def test_session_cookie_is_httponly_lax_and_secure_over_https(app: Flask) -> None:
    for base, secure in (("http://localhost", False), ("https://localhost", True)):
        client = app.test_client()
        token = csrf(client.get("/console/sign-in", base_url=base).data)
        form = {"workspace": "acme", "email": ADMIN, "password": PASSWORD, "csrf_token": token}
        response = client.post("/console/sign-in", data=form, base_url=base)
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def test_sign_in_starts_a_new_session(app: Flask) -> None:
    with app.test_client() as client:
        client.get("/console/sign-in")
        with client.session_transaction() as before:
            before["planted"] = "by someone else"
            old_csrf = before["csrf_token"]
        sign_in(client)
        with client.session_transaction() as after:
            assert "planted" not in after
            assert after.get("csrf_token") != old_csrf


def test_sign_out_is_a_post_and_ends_the_session(admin: FlaskClient) -> None:
    assert admin.get("/console/sign-out").status_code == 405
    response = post(admin, "/console/acme/integrations", "/console/sign-out")
    assert response.status_code == 303
    assert admin.get("/console/acme/integrations").status_code == 303


def test_sign_in_never_redirects_to_another_site(app: Flask) -> None:
    client = app.test_client()
    token = csrf(client.get("/console/sign-in").data)
    form = {"workspace": "acme", "email": ADMIN, "password": PASSWORD, "csrf_token": token}
    response = client.post("/console/sign-in", data={**form, "next": "//evil.example/x"})
    assert response.headers["Location"] == "/console/"


# --- refusals ("Done when") -----------------------------------------------------------------


def test_signed_out_requests_go_to_sign_in_and_change_nothing(
    app: Flask, service: ScimService
) -> None:
    client = app.test_client()
    for path in ("/console/", "/console/acme/cards", "/console/acme/security", "/console/acme/log"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["Location"].startswith("/console/sign-in?next=")
    token = csrf(client.get("/console/sign-in").data)
    response = client.post("/console/acme/tokens", data={"label": "x", "csrf_token": token})
    assert response.status_code == 303
    assert service.workspaces.list_tokens("acme") == []


def test_form_posted_without_its_csrf_token_is_refused(
    admin: FlaskClient, service: ScimService
) -> None:
    assert admin.post("/console/acme/tokens", data={"label": "forged"}).status_code == 400
    forged = {"label": "forged", "csrf_token": "a-token-from-another-site"}
    assert admin.post("/console/acme/tokens", data=forged).status_code == 400
    assert service.workspaces.list_tokens("acme") == []
    # The same form with the page's token works.
    assert post(admin, "/console/acme/integrations", "/console/acme/tokens").status_code == 200
    assert len(service.workspaces.list_tokens("acme")) == 1


def test_sign_in_form_needs_its_csrf_token_too(app: Flask) -> None:
    form = {"workspace": "acme", "email": ADMIN, "password": PASSWORD}
    assert app.test_client().post("/console/sign-in", data=form).status_code == 400


def test_deactivated_admin_is_signed_out_at_the_next_request(
    admin: FlaskClient, service: ScimService
) -> None:
    assert admin.get("/console/acme/cards").status_code == 200
    service.workspaces.add_admin("acme", "second@acme.example")
    service.workspaces.deactivate_admin("acme", ADMIN)
    response = admin.get("/console/acme/cards")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/console/sign-in")
    # Signed out for good: making them an admin again does not revive this session.
    service.workspaces.add_admin("acme", ADMIN)
    assert admin.get("/console/acme/cards").status_code == 303


def test_deactivated_admin_cannot_sign_in(app: Flask, service: ScimService) -> None:
    service.workspaces.add_admin("acme", "second@acme.example")
    service.workspaces.deactivate_admin("acme", ADMIN)
    assert sign_in(app.test_client()).status_code == 401


def test_host_identify_is_checked_against_the_workspace_on_every_request(
    service: ScimService,
) -> None:
    """A host's own sign-in: the console still refuses an admin who is not (or no longer) an
    active admin of the workspace the host names."""
    from scimcore_adapters.console import ConsoleAdmin, console_blueprint

    who: list[ConsoleAdmin | None] = [ConsoleAdmin("acme", "stranger@acme.example")]
    app = Flask("host")
    app.config["SECRET_KEY"] = "k"
    app.register_blueprint(console_blueprint(service, lambda _request: who[0]))
    client = app.test_client()
    assert client.get("/console/acme/cards").status_code == 401  # no sign_in_url: 401
    who[0] = ConsoleAdmin("acme", ADMIN.upper())
    assert client.get("/console/acme/cards").status_code == 200
    who[0] = None
    assert client.get("/console/acme/cards").status_code == 401


def test_admin_of_one_workspace_cannot_reach_anothers_pages_or_cards(
    admin: FlaskClient, service: ScimService
) -> None:
    globex = token_for(service, "globex", OTHER)
    person = scim_create(service, globex, "ann@globex.example", displayName="Ann")
    for page in ("integrations", "security", "cards", "templates", "log", f"cards/{person}"):
        assert admin.get(f"/console/globex/{page}").status_code == 404, page
    assert admin.get(f"/console/acme/cards/{person}").status_code == 404
    token = csrf(admin.get("/console/acme/cards").data)
    edit = {"value": "Hacked", "action": "save", "csrf_token": token}
    assert admin.post(f"/console/acme/cards/{person}/fields/name", data=edit).status_code == 404
    assert admin.post(f"/console/globex/cards/{person}/fields/name", data=edit).status_code == 404
    send = {"person": person, "csrf_token": token}
    assert admin.post("/console/acme/cards/activation", data=send).status_code == 404
    assert admin.post("/console/globex/tokens", data={"csrf_token": token}).status_code == 404
    assert service.product.card("globex", person).card.values()["name"] == "Ann"
    assert service.product.outbox("globex") and len(service.product.outbox("globex")) == 1
    assert [t.created_by for t in service.workspaces.list_tokens("globex")] == [OTHER]
