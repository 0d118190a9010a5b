"""The admin console and the activation pages through Flask's test client (issue #17): every
refusal of "Done when" (CSRF, signed out, deactivated admin, another workspace, reused or
expired link), and what each page does."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scimcore import Runtime, ScimRequest, ScimService
from scimcore.outbox import RecordingMailer, deliver_pending
from scimcore.runtime import system_runtime
from scimcore_adapters.bootstrap import open_storage
from scimcore_adapters.console.signin import SignInThrottle, mount_console
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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path: Path, clock: Clock) -> ScimService:
    return make_service(tmp_path, clock)


@pytest.fixture
def app(service: ScimService) -> Flask:
    return create_console_app(service)


def csrf(page: bytes) -> str:
    """The CSRF token of the first form of a page."""
    match = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1).decode()


def sign_in(client: FlaskClient, workspace: str = "acme", email: str = ADMIN) -> Any:
    token = csrf(client.get("/console/sign-in").data)
    form = {"workspace": workspace, "email": email, "password": PASSWORD, "csrf_token": token}
    return client.post("/console/sign-in", data=form)


@pytest.fixture
def admin(app: Flask) -> Iterator[FlaskClient]:
    """A test client signed in as the admin of acme."""
    with app.test_client() as client:
        assert sign_in(client).status_code == 303
        yield client


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


# --- Integrations, Card Settings, Security --------------------------------------------------


def test_generated_token_is_shown_once_and_works_and_older_ones_keep_working(
    admin: FlaskClient, service: ScimService
) -> None:  # R2.1, R2.2
    first = post(admin, "/console/acme/integrations", "/console/acme/tokens", {"label": "Entra"})
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    secret = re.search(rb'id="secret-token" type="text" value="(scim_[^"]+)"', first.data)
    assert secret and b"shown only once" in first.data
    plaintext = secret.group(1).decode()
    page = admin.get("/console/acme/integrations").data
    assert plaintext.encode() not in page and b"Regenerate" in page
    second = post(admin, "/console/acme/integrations", "/console/acme/tokens")
    assert plaintext.encode() not in second.data
    assert scim(service, plaintext, "GET", "/Users").status == 200  # R2.2: still works
    for path in ("/console/acme/security", "/console/acme/log"):
        assert plaintext.encode() not in admin.get(path).data
        assert plaintext.split("_")[-1].encode() not in admin.get(path).data


def test_activation_email_switch(admin: FlaskClient, service: ScimService) -> None:  # R3.5
    post(admin, "/console/acme/integrations", "/console/acme/settings", {})
    assert service.product.settings("acme").activation_email is False
    page = admin.get("/console/acme/integrations").data
    assert b'id="activation-email" name="activation_email" type="checkbox" value="on">' in page
    post(admin, "/console/acme/integrations", "/console/acme/settings", {"activation_email": "on"})
    assert service.product.settings("acme").activation_email is True


def test_bad_rule_filter_shows_the_error_inline_at_its_place(
    admin: FlaskClient, service: ScimService
) -> None:  # R7.4
    service.product.create_template("acme", "Brand", {"company": "Acme Inc."})
    bad = 'department eq "Sales" or'
    response = post(
        admin,
        "/console/acme/integrations",
        "/console/acme/rules",
        {"filter": bad, "template": "Brand"},
    )
    assert response.status_code == 422
    assert b"position 24" in response.data
    assert (
        b'<pre class="where">department eq &#34;Sales&#34; <mark>or</mark></pre>' in response.data
    )
    assert b'aria-invalid="true"' in response.data
    assert service.product.rules("acme") == []
    unknown = post(
        admin,
        "/console/acme/integrations",
        "/console/acme/rules",
        {"filter": 'departmnt eq "x"', "template": "Brand"},
    )
    assert b"<mark>departmnt</mark>" in unknown.data


def test_rules_are_added_in_order_and_removed(admin: FlaskClient, service: ScimService) -> None:
    service.product.create_template("acme", "Brand", {})
    for text in ('department eq "Sales"', 'title co "engineer"'):
        response = post(
            admin,
            "/console/acme/integrations",
            "/console/acme/rules",
            {"filter": text, "template": "Brand"},
        )
        assert response.status_code == 303
    rules = service.product.rules("acme")
    assert [r.filter for r in rules] == ['department eq "Sales"', 'title co "engineer"']
    page = admin.get("/console/acme/integrations").data.decode()
    assert page.index("department eq &#34;Sales&#34;") < page.index("title co &#34;engineer")
    post(admin, "/console/acme/integrations", f"/console/acme/rules/{rules[0].id}/delete")
    assert [r.filter for r in service.product.rules("acme")] == ['title co "engineer"']


def test_security_lists_tokens_and_delete_stops_one_at_once(
    admin: FlaskClient, service: ScimService
) -> None:  # R2.2, R2.3, R2.4
    token = token_for(service)
    service.workspaces.add_admin("acme", "leaver@acme.example")
    orphan = token_for(service, "acme", "leaver@acme.example")
    service.workspaces.deactivate_admin("acme", "leaver@acme.example")
    page = admin.get("/console/acme/security").data
    assert page.count(b'<span class="badge active">active</span>') == 1
    assert page.count(b'<span class="badge dead">dead</span>') == 1
    assert b"leaver@acme.example" in page and b"admin deactivated" in page
    assert scim(service, orphan, "GET", "/Users").status == 401
    token_id = token.split("_")[1]
    response = post(admin, "/console/acme/security", f"/console/acme/tokens/{token_id}/delete")
    assert response.status_code == 303
    assert scim(service, token, "GET", "/Users").status == 401
    assert token_id.encode() not in admin.get("/console/acme/security").data


# --- Team Cards, a card, Templates ----------------------------------------------------------


def test_team_cards_lists_people_with_state_template_and_seats(
    admin: FlaskClient, service: ScimService
) -> None:  # R5.1, R5.2
    service.product.create_template("acme", "Sales", {"company": "Acme Sales"})
    service.product.add_rule("acme", "Sales", 'department eq "Sales"')
    token = token_for(service)
    enterprise = {
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}
    }
    ann = scim_create(service, token, "ann@acme.example", **enterprise)
    bob = scim_create(service, token, "bob@acme.example")
    cat = scim_create(service, token, "cat@acme.example")
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    }
    assert scim(service, token, "PATCH", f"/Users/{bob}", patch).status == 200
    assert scim(service, token, "DELETE", f"/Users/{cat}").status == 204
    page = admin.get("/console/acme/cards").data.decode()
    assert '<strong id="seat-count">1</strong>' in page
    rows = {p: page[page.index(f'value="{p}"') :][:900] for p in (ann, bob, cat)}
    assert "badge active" in rows[ann] and "<td>Sales</td>" in rows[ann]
    assert "badge inactive" in rows[bob]
    assert "badge deprovisioned" in rows[cat]
    only = admin.get("/console/acme/cards?state=inactive").data.decode()
    assert bob in only and ann not in only
    found = admin.get("/console/acme/cards?q=ANN").data.decode()
    assert ann in found and bob not in found


def test_team_cards_pages_through_people(admin: FlaskClient, service: ScimService) -> None:
    token = token_for(service)
    for i in range(55):
        scim_create(service, token, f"user{i:02d}@acme.example")
    first = admin.get("/console/acme/cards").data.decode()
    assert "55 people, showing 1\u201350" in first and "user00@" in first and "user50@" not in first
    last = re.search(r'href="([^"]+)">Last</a>', first)
    assert last
    page = admin.get(last.group(1).replace("&amp;", "&")).data.decode()
    assert "showing 51\u201355" in page and "user54@" in page and "user00@" not in page


def test_send_activation_emails_to_the_selected_people(
    admin: FlaskClient, service: ScimService
) -> None:  # R3.5
    service.product.update_settings("acme", activation_email=False)
    token = token_for(service)
    people = [scim_create(service, token, f"{n}@acme.example") for n in ("ann", "bob", "cat")]
    assert service.product.outbox("acme") == []
    token_field = csrf(admin.get("/console/acme/cards").data)
    response = admin.post(
        "/console/acme/cards/activation",
        data={"person": people[:2], "csrf_token": token_field},
    )
    assert response.status_code == 303
    assert b"2 activation e-mails queued" in admin.get("/console/acme/cards").data
    assert sorted(m.to for m in service.product.outbox("acme")) == [
        "ann@acme.example",
        "bob@acme.example",
    ]


def test_card_page_edit_unlinks_unlock_unlinks_and_lock_locks(
    admin: FlaskClient, service: ScimService
) -> None:  # R8.1, R8.2, R8.5
    token = token_for(service)
    person = scim_create(service, token, "ann@acme.example", displayName="Ann", title="Engineer")
    url = f"/console/acme/cards/{person}"
    page = admin.get(url).data.decode()
    row = page[page.index('id="field-job_title"') :][:1500]
    assert 'value="Engineer"' in row and "idp" in row
    assert 'class="badge linked"' in row and 'class="badge locked"' in row
    post(admin, url, f"{url}/fields/job_title", {"action": "save", "value": "Chief Engineer"})
    field = service.product.card("acme", person).card.fields["job_title"]
    assert (field.value, field.linked, field.locked) == ("Chief Engineer", False, True)
    row = admin.get(url).data.decode()
    row = row[row.index('id="field-job_title"') :][:1500]
    assert 'class="badge unlinked"' in row and "admin" in row
    post(admin, url, f"{url}/fields/name", {"action": "unlock"})
    field = service.product.card("acme", person).card.fields["name"]
    assert (field.locked, field.linked) == (False, False)
    post(admin, url, f"{url}/fields/name", {"action": "lock"})
    assert service.product.card("acme", person).card.fields["name"].locked is True


def test_templates_create_edit_and_say_how_many_cards_changed(
    admin: FlaskClient, service: ScimService
) -> None:  # R7.1
    response = post(admin, "/console/acme/templates", "/console/acme/templates", {"name": "Brand"})
    assert response.status_code == 303
    service.product.add_rule("acme", "Brand", 'userName co "@"')
    token = token_for(service)
    for n in ("ann", "bob"):
        scim_create(service, token, f"{n}@acme.example")
    url = "/console/acme/templates/Brand"
    post(admin, url, url, {"field:company": "Acme Inc."})
    saved = admin.get(url).data.decode()
    assert "2 cards updated" in saved
    assert {v.card.values().get("company") for v in service.product.cards("acme")} == {"Acme Inc."}


def test_rules_move_up_and_down(admin: FlaskClient, service: ScimService) -> None:  # R7.2
    service.product.create_template("acme", "Brand", {})
    for text in ('department eq "A"', 'department eq "B"', 'department eq "C"'):
        service.product.add_rule("acme", "Brand", text)
    first, second, third = service.product.rules("acme")
    page = admin.get("/console/acme/integrations").data.decode()
    assert 'aria-label="Move rule 1 up"' not in page and 'aria-label="Move rule 3 down"' not in page
    url = "/console/acme/integrations"
    post(admin, url, f"/console/acme/rules/{third.id}/move", {"position": "2"})
    assert [r.id for r in service.product.rules("acme")] == [first.id, third.id, second.id]
    post(admin, url, f"/console/acme/rules/{first.id}/move", {"position": "2"})
    assert [r.id for r in service.product.rules("acme")] == [third.id, first.id, second.id]


def test_assign_a_template_by_hand_and_delete_one(
    admin: FlaskClient, service: ScimService
) -> None:  # R7.6
    service.product.create_template("acme", "Brand", {"company": "Acme Inc."})
    token = token_for(service)
    person = scim_create(service, token, "ann@acme.example")
    url = f"/console/acme/cards/{person}"
    post(admin, url, f"{url}/template", {"template": "Brand"})
    view = service.product.card("acme", person)
    assert view.card.template == "Brand" and view.card.values()["company"] == "Acme Inc."
    assert "<option selected>Brand</option>" in admin.get(url).data.decode()
    service.product.add_rule("acme", "Brand", 'title eq "x"')
    turl = "/console/acme/templates/Brand"
    refused = post(admin, turl, f"{turl}/delete")
    assert refused.status_code == 303
    assert b"remove the rule first" in admin.get(turl).data
    service.product.remove_rule("acme", service.product.rules("acme")[0].id)
    post(admin, turl, f"{turl}/delete")
    assert b"Template Brand deleted: 1 card updated." in admin.get("/console/acme/templates").data
    assert service.product.card("acme", person).card.template is None


def test_unknown_field_is_refused_not_created(admin: FlaskClient, service: ScimService) -> None:
    person = scim_create(service, token_for(service), "ann@acme.example")
    url = f"/console/acme/cards/{person}"
    post(admin, url, f"{url}/fields/shoe_size", {"action": "save", "value": "44"})
    assert b"unknown card field" in admin.get(url).data
    assert "shoe_size" not in service.product.card("acme", person).card.fields


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def upload(client: FlaskClient, page: str, action: str, data: bytes, name: str) -> Any:
    token = csrf(client.get(page).data)
    form = {"csrf_token": token, "image": (io.BytesIO(data), name)}
    return client.post(action, data=form, content_type="multipart/form-data")


def test_photo_upload_is_shown_and_only_to_its_workspace(
    app: Flask, admin: FlaskClient, service: ScimService
) -> None:  # R8.5
    person = scim_create(service, token_for(service), "ann@acme.example")
    url = f"/console/acme/cards/{person}"
    refused = upload(admin, url, f"{url}/photo", b"GIF? no, text", "photo.txt")
    assert refused.status_code == 303
    assert "photo" not in service.product.card("acme", person).card.fields
    assert upload(admin, url, f"{url}/photo", PNG, "me.png").status_code == 303
    value = service.product.card("acme", person).card.values()["photo"]
    image_id = value.removeprefix("image:")
    page = admin.get(url).data.decode()
    assert f'src="/console/acme/images/{image_id}"' in page
    served = admin.get(f"/console/acme/images/{image_id}")
    assert served.status_code == 200 and served.data == PNG
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    with app.test_client() as other:
        sign_in(other, "globex", OTHER)
        assert other.get(f"/console/globex/images/{image_id}").status_code == 404
        assert other.get(f"/console/acme/images/{image_id}").status_code == 404


def test_an_upload_over_the_limit_is_refused_before_it_is_read(
    admin: FlaskClient, service: ScimService
) -> None:
    person = scim_create(service, token_for(service), "ann@acme.example")
    url = f"/console/acme/cards/{person}"
    big = PNG + b"\x00" * (3 * 1024 * 1024)
    assert upload(admin, url, f"{url}/photo", big, "big.png").status_code == 303
    assert b"at most 2 MiB" in admin.get(url).data
    assert "photo" not in service.product.card("acme", person).card.fields


def test_template_logo_upload_updates_its_cards(admin: FlaskClient, service: ScimService) -> None:
    service.product.create_template("acme", "Brand", {})
    service.product.add_rule("acme", "Brand", 'userName co "@"')
    person = scim_create(service, token_for(service), "ann@acme.example")
    url = "/console/acme/templates/Brand"
    assert upload(admin, url, f"{url}/logo", PNG, "logo.png").status_code == 303
    page = admin.get(url).data.decode()
    assert "Template saved: 1 card updated." in page and 'alt="Logo of Brand"' in page
    logo = service.product.card("acme", person).card.values()["logo"]
    assert logo.startswith("image:") and logo[6:] in page


# --- activation (R3.7, R8.3) ----------------------------------------------------------------


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


def test_activation_link_opens_the_owners_card_once(
    app: Flask, admin: FlaskClient, service: ScimService
) -> None:  # R3.7, R8.3
    token = token_for(service)
    phones = [{"type": "mobile", "value": "+1 555 0100"}]
    person = scim_create(service, token, "ann@acme.example", displayName="Ann", phoneNumbers=phones)
    service.product.unlock("acme", None, "mobile_phone", person_id=person)
    link = delivered_links(service)["ann@acme.example"]
    owner = app.test_client()
    page = owner.get(link)
    assert page.status_code == 200 and b"Activate and open my card" in page.data
    assert owner.get(link).status_code == 200  # looking does not use the link up
    assert owner.post(link, data={}).status_code == 400  # no CSRF token: refused, not used
    opened = owner.post(link, data={"csrf_token": csrf(page.data)})
    assert opened.status_code == 303 and opened.headers["Location"] == "/activate/card"
    card = owner.get("/activate/card").data.decode()
    assert 'id="value-mobile_phone"' in card and 'id="value-name"' not in card
    post(owner, "/activate/card", "/activate/card/fields/mobile_phone", {"value": "+1 555 0199"})
    post(owner, "/activate/card", "/activate/card/fields/name", {"value": "Mallory"})
    values = service.product.card("acme", person).card.values()
    assert values["mobile_phone"] == "+1 555 0199" and values["name"] == "Ann"
    assert upload(owner, "/activate/card", "/activate/card/photo", PNG, "me.png").status_code == 303
    assert service.product.card("acme", person).card.values()["photo"].startswith("image:")
    # Single use: the same link again is refused, in another browser too.
    again = app.test_client().post(link, data={"csrf_token": csrf(page.data)})
    assert app.test_client().get(link).status_code == 410
    assert again.status_code in (400, 410)
    assert b"activated" in admin.get(f"/console/acme/cards/{person}").data
    assert service.product.card("acme", person).activated_at is not None


def test_expired_unknown_and_deprovisioned_links_are_refused(
    app: Flask, service: ScimService, clock: Clock
) -> None:  # R3.7
    token = token_for(service)
    scim_create(service, token, "ann@acme.example")
    bob = scim_create(service, token, "bob@acme.example")
    links = delivered_links(service)
    client = app.test_client()
    assert client.get("/activate/not-a-real-token").status_code == 404
    assert scim(service, token, "DELETE", f"/Users/{bob}").status == 204
    refused = client.get(links["bob@acme.example"])
    assert refused.status_code == 403 and b"no longer active" in refused.data
    clock.now += timedelta(days=8)
    expired = client.get(links["ann@acme.example"])
    assert expired.status_code == 410 and b"expired" in expired.data


def test_owner_session_ends_when_the_person_is_deactivated(
    app: Flask, service: ScimService
) -> None:  # R5.1
    token = token_for(service)
    person = scim_create(service, token, "ann@acme.example")
    link = delivered_links(service)["ann@acme.example"]
    owner = app.test_client()
    owner.post(link, data={"csrf_token": csrf(owner.get(link).data)})
    assert owner.get("/activate/card").status_code == 200
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    }
    assert scim(service, token, "PATCH", f"/Users/{person}", patch).status == 200
    assert owner.get("/activate/card").status_code == 403
    assert app.test_client().get("/activate/card").status_code == 403  # no owner session


def test_pages_cannot_be_framed_and_activation_pages_are_private(
    admin: FlaskClient, service: ScimService
) -> None:
    page = admin.get("/console/acme/integrations")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert admin.get("/console/sign-in").headers["X-Frame-Options"] == "DENY"
    scim_create(service, token_for(service), "ann@acme.example")
    link = delivered_links(service)["ann@acme.example"]
    activation = admin.get(link)
    assert activation.headers["Referrer-Policy"] == "no-referrer"
    assert activation.headers["Cache-Control"] == "no-store"
    assert activation.headers["X-Frame-Options"] == "DENY"


def test_a_template_name_with_a_slash_or_spaces_has_its_page(
    admin: FlaskClient, service: ScimService
) -> None:
    for name in ("Sales / EMEA", "Brand"):
        response = post(admin, "/console/acme/templates", "/console/acme/templates", {"name": name})
        page = admin.get(response.headers["Location"])
        assert page.status_code == 200 and f"Template {name}" in page.data.decode()
    post(admin, "/console/acme/templates", "/console/acme/templates/Sales%20/%20EMEA/delete")
    assert [t.name for t in service.product.templates("acme")] == ["Brand"]
