"""The card owner's activation pages (R3.7, R8.3): one use, expiry, deprovisioned people."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from scimcore import ScimService
from tests.console.helpers import (
    PNG,
    Clock,
    csrf,
    delivered_links,
    post,
    scim,
    scim_create,
    token_for,
    upload,
)


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
    assert b"This link works once, until 2026-12-13 12:00 UTC" in page.data  # 7 days
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
