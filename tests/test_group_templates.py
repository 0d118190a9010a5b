"""Templates chosen by group (R7.5): rules that test membership, evaluated again while a
card has no template, when its person joins a group. Run on SqlStorage by test_product_sql."""

from __future__ import annotations

from typing import Any

import pytest

from scimcore import ScimService
from scimcore.errors import InvalidFilterError
from scimcore.provisioning import Event
from tests.conftest import Client
from tests.test_product import card_of, entra_body, ops

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def _group(client: Client, name: str, *members: str) -> str:
    body: dict[str, Any] = {"schemas": [GROUP], "displayName": name}
    if members:
        body["members"] = [{"value": m} for m in members]
    response = client("POST", "/Groups", body)
    assert response.status == 201, response.json()
    gid: str = response.json()["id"]
    return gid


def _add(client: Client, gid: str, uid: str) -> None:
    # Entra's shape (idp-quirks Entra 9): members added with a null $ref
    body = ops({"op": "Add", "path": "members", "value": [{"$ref": None, "value": uid}]})
    response = client("PATCH", f"/Groups/{gid}", body)
    assert response.status in (200, 204), response.json()


def _rules(service: ScimService) -> None:
    service.product.create_template("acme", "Sales card", {"company": "Blinq Sales"})
    service.product.create_template("acme", "Marketing card", {"company": "Blinq Marketing"})
    service.product.add_rule("acme", "Sales card", 'groups eq "Sales"')
    service.product.add_rule("acme", "Marketing card", 'groups eq "marketing"')


def test_entra_sequence_templates_by_group_once(service: ScimService, client: Client) -> None:
    # R7.5: created first, template once a membership makes a rule match; then never again (R4.2)
    _rules(service)
    seen: list[Event] = []
    service.subscribe(seen.append)
    uid = client("POST", "/Users", entra_body("ann@contoso.com")).json()["id"]
    assert card_of(service, "ann@contoso.com")["template"] is None
    sales = _group(client, "Sales")
    marketing = _group(client, "Marketing")
    _add(client, marketing, uid)
    card = card_of(service, "ann@contoso.com")
    assert card["template"] == "Marketing card"
    assert card["fields"]["company"] == {
        "value": "Blinq Marketing",
        "locked": True,
        "linked": True,
        "source": "template",
    }
    changed = [e for e in seen if e.kind == "card.changed"]
    assert [(e.person_id, e.actor, e.data["template"]) for e in changed] == [
        (uid, "template", "Marketing card")
    ]
    logged = [e for e in service.product.log("acme") if e.actor == "template"]
    assert [(e.operation, e.resource_id) for e in logged] == [("card.update", uid)]
    # The Sales rule comes first, but the card has a template now: joining Sales changes nothing.
    _add(client, sales, uid)
    assert card_of(service, "ann@contoso.com")["template"] == "Marketing card"
    # Nor does leaving Marketing.
    body = ops({"op": "remove", "path": f'members[value eq "{uid}"]'})
    assert client("PATCH", f"/Groups/{marketing}", body).status in (200, 204)
    assert card_of(service, "ann@contoso.com")["template"] == "Marketing card"
    assert len([e for e in seen if e.kind == "card.changed"]) == 1


def test_group_created_with_members_and_put_templates(service: ScimService, client: Client) -> None:
    # R7.5: a group created with its members, and a PUT of the members, evaluate them too
    _rules(service)
    ann = client("POST", "/Users", entra_body("ann@contoso.com")).json()["id"]
    bob = client("POST", "/Users", entra_body("bob@contoso.com")).json()["id"]
    _group(client, "Marketing", ann)
    assert card_of(service, "ann@contoso.com")["template"] == "Marketing card"
    assert card_of(service, "bob@contoso.com")["template"] is None
    sales = _group(client, "Sales")
    put = {"schemas": [GROUP], "displayName": "Sales", "members": [{"value": ann}, {"value": bob}]}
    assert client("PUT", f"/Groups/{sales}", put).status == 200
    assert card_of(service, "bob@contoso.com")["template"] == "Sales card"
    assert card_of(service, "ann@contoso.com")["template"] == "Marketing card"


def test_group_rule_combined_with_attributes(service: ScimService, client: Client) -> None:
    # R7.5 with R7.2: membership and attributes in one filter; no match, no template
    service.product.create_template("acme", "R&D marketing", {"company": "Blinq Labs"})
    service.product.add_rule(
        "acme", "R&D marketing", 'groups eq "Marketing" and department eq "R&D"'
    )
    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    ann = client("POST", "/Users", entra_body("ann@contoso.com")).json()["id"]
    rnd = entra_body("rd@contoso.com", **{ent: {"department": "R&D"}})
    rd = client("POST", "/Users", rnd).json()["id"]
    marketing = _group(client, "Marketing")
    _add(client, marketing, ann)
    _add(client, marketing, rd)
    assert card_of(service, "ann@contoso.com")["template"] is None
    assert card_of(service, "rd@contoso.com")["template"] == "R&D marketing"
    assert card_of(service, "rd@contoso.com")["fields"]["company"]["value"] == "Blinq Labs"


def test_group_rule_not_and_no_rules(service: ScimService, client: Client) -> None:
    # R7.5: `not (groups eq ...)` is evaluated with the person's groups, not at create only
    service.product.create_template("acme", "Outsiders", {"company": "Guest"})
    ann = client("POST", "/Users", entra_body("ann@contoso.com")).json()["id"]
    _add(client, _group(client, "Staff"), ann)  # no rules yet: nothing to do
    assert card_of(service, "ann@contoso.com")["template"] is None
    service.product.add_rule("acme", "Outsiders", 'not (groups eq "Staff")')
    _add(client, _group(client, "Contractors"), ann)  # still in Staff: no match
    assert card_of(service, "ann@contoso.com")["template"] is None
    client("POST", "/Users", entra_body("bob@contoso.com"))
    assert card_of(service, "bob@contoso.com")["template"] == "Outsiders"  # at create (R3.4)


@pytest.mark.parametrize(
    "bad",
    ['groups eq "Marketing" and', "groups gt", 'groups.nope eq "Marketing"', 'team eq "x"'],
)
def test_bad_group_rule_refused_when_saved(service: ScimService, client: Client, bad: str) -> None:
    # R7.4 holds for group rules
    service.product.create_template("acme", "Brand", {})
    with pytest.raises(InvalidFilterError) as info:
        service.product.add_rule("acme", "Brand", bad)
    assert info.value.detail
    assert service.product.rules("acme") == []
