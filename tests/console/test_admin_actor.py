"""Every console change names the signed-in admin in the provisioning log (R8.4, R9.2): Card
Settings, rules, templates and card edits say ``it@acme.example``, never just "admin"."""

from __future__ import annotations

from flask.testing import FlaskClient

from scimcore import ScimService
from tests.console.helpers import ADMIN, post, scim_create, token_for


def test_console_changes_are_logged_with_the_admins_email(
    admin: FlaskClient, service: ScimService
) -> None:  # R8.4, R9.2
    person = scim_create(service, token_for(service), "ann@acme.example", displayName="Ann")
    integrations, templates = "/console/acme/integrations", "/console/acme/templates"
    card = f"/console/acme/cards/{person}"
    post(admin, integrations, "/console/acme/settings", {"activation_email": "on"})
    post(admin, templates, templates, {"name": "Sales"})
    post(admin, f"{templates}/Sales", f"{templates}/Sales", {"field:company": "Acme Sales"})
    post(
        admin, integrations, "/console/acme/rules", {"filter": 'title eq "x"', "template": "Sales"}
    )
    post(
        admin, integrations, "/console/acme/rules", {"filter": 'title eq "y"', "template": "Sales"}
    )
    first, second = service.product.rules("acme")
    post(admin, integrations, f"/console/acme/rules/{second.id}/move", {"position": "1"})
    post(admin, integrations, f"/console/acme/rules/{first.id}/delete")
    post(admin, integrations, f"/console/acme/rules/{second.id}/delete")
    post(admin, card, f"{card}/fields/job_title", {"action": "save", "value": "Boss"})
    post(admin, card, f"{card}/fields/name", {"action": "unlock"})
    post(admin, card, f"{card}/fields/name", {"action": "lock"})
    post(admin, card, f"{card}/template", {"template": "Sales"})
    post(admin, f"{templates}/Sales", f"{templates}/Sales/delete")
    entries = service.product.log("acme", limit=50)
    # Not console actions: the fixture's password (Python API) and the SCIM create.
    setup = ("admin.password", "create")
    done = [(e.operation, e.actor) for e in entries if e.operation not in setup]
    expected = [
        "settings",
        "template.create",
        "template.set",
        "rule.add",
        "rule.add",
        "rule.move",
        "rule.remove",
        "rule.remove",
        "card.update",
        "card.update",
        "card.update",
        "card.update",
        "template.delete",
    ]
    mine = [(op, a) for op, a in reversed(done) if a == ADMIN and op != "token.generate"]
    assert [op for op, _ in mine] == expected, [op for op, _ in mine]
    assert [op for op, actor in done if actor == "admin"] == []
