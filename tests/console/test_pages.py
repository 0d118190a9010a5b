"""The console's pages through Flask's test client: Integrations, Card Settings, Security, Team
Cards, a card, Templates, images, headers."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from scimcore import ScimService
from tests.console.helpers import (
    OTHER,
    PNG,
    csrf,
    delivered_links,
    post,
    scim,
    scim_create,
    sign_in,
    token_for,
    upload,
)

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
        assert plaintext.split("_", 2)[2].encode() not in admin.get(path).data


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


def test_template_page_offers_every_known_field_and_refuses_others(
    admin: FlaskClient, service: ScimService
) -> None:
    service.product.create_template("acme", "Brand", {})
    url = "/console/acme/templates/Brand"
    page = admin.get(url).data.decode()
    for key in ("company", "photo", "logo", "website", "address"):
        assert f'name="field:{key}"' in page
    post(admin, url, url, {"field:website": "https://acme.example"})
    assert service.product.templates("acme")[0].fields == {"website": "https://acme.example"}
    post(admin, url, url, {"field:shoe_size": "44"})  # a forged form: no such field
    assert b"unknown card field" in admin.get(url).data
    assert service.product.templates("acme")[0].fields == {"website": "https://acme.example"}
