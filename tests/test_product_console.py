"""The card administration the console needs (issue 17): templates assigned by hand (R7.6),
fields locked again (R8.5), templates deleted, rules reordered, template edits that tell how
many cards they updated (R7.1), unknown field keys refused. Run on memory here and on SQLite
and PostgreSQL by tests/test_product_sql.py."""

from __future__ import annotations

import pytest

from scimcore import ScimService, WorkspaceError
from tests.conftest import Client
from tests.test_product import entra_body


def fields_of(service: ScimService, user_name: str) -> dict[str, tuple[str, str, bool, bool]]:
    (view,) = [v for v in service.product.cards("acme") if v.user_name == user_name]
    return {k: (f.value, f.source.value, f.locked, f.linked) for k, f in view.card.fields.items()}


def test_assign_template_by_hand(service: ScimService, client: Client) -> None:
    # R7.6 with R7.1 and R7.3
    p = service.product
    p.create_template("acme", "Brand", {"company": "Blinq Inc.", "logo": "image:1"})
    p.create_template("acme", "Other", {"website": "https://o.example"})
    client("POST", "/Users", entra_body("ann@contoso.com"))
    p.admin_edit("acme", "ann@contoso.com", "logo", "mine")  # hand-edited: kept
    card = p.assign_template("acme", "ann@contoso.com", "Brand")
    assert card.template == "Brand"
    fields = fields_of(service, "ann@contoso.com")
    assert fields["company"] == ("Blinq Inc.", "template", True, True)  # over the IdP's
    assert fields["logo"] == ("mine", "admin", True, False)
    p.set_template("acme", "Brand", {"company": "Blinq Incorporated"})
    assert fields_of(service, "ann@contoso.com")["company"][0] == "Blinq Incorporated"
    # to another template: Brand's fields fall back to the IdP's values
    p.assign_template("acme", "ann@contoso.com", "Other")
    fields = fields_of(service, "ann@contoso.com")
    assert fields["company"] == ("Blinq", "idp", True, True)
    assert fields["website"] == ("https://o.example", "template", True, True)
    p.assign_template("acme", "ann@contoso.com", None)
    assert "website" not in fields_of(service, "ann@contoso.com")
    with pytest.raises(WorkspaceError, match="no template"):
        p.assign_template("acme", "ann@contoso.com", "Missing")
    ops = [e.operation for e in p.log("acme", 20)]
    assert ops.count("card.update") >= 3


def test_lock_again_after_unlock(service: ScimService, client: Client) -> None:
    # R8.2, R8.3, R8.5
    p = service.product
    client("POST", "/Users", entra_body("ann@contoso.com"))
    p.unlock("acme", "ann@contoso.com", "job_title")
    p.owner_edit("acme", "ann@contoso.com", "job_title", "Boss")
    card = p.lock("acme", "ann@contoso.com", "job_title")
    assert (card.fields["job_title"].locked, card.fields["job_title"].linked) == (True, False)
    with pytest.raises(WorkspaceError, match="locked"):
        p.owner_edit("acme", "ann@contoso.com", "job_title", "Boss 2")
    with pytest.raises(WorkspaceError, match="no field"):
        p.lock("acme", "ann@contoso.com", "website")


def test_set_template_counts_cards_and_delete_template(
    service: ScimService, client: Client
) -> None:
    # R7.1
    p = service.product
    p.create_template("acme", "Brand", {"company": "Blinq Inc."})
    rule = p.add_rule("acme", "Brand", 'department eq "Marketing"')
    client("POST", "/Users", entra_body("ann@contoso.com"))
    client("POST", "/Users", entra_body("bob@contoso.com"))
    client(
        "POST",
        "/Users",
        entra_body(
            "cat@contoso.com",
            **{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}},
        ),
    )
    p.admin_edit("acme", "bob@contoso.com", "company", "Bob Co")
    update = p.set_template("acme", "Brand", {"company": "Blinq Incorporated"})
    assert (update.name, dict(update.fields), update.cards_updated) == (
        "Brand",
        {"company": "Blinq Incorporated"},
        1,
    )
    assert p.set_template("acme", "Brand", {}).cards_updated == 0
    with pytest.raises(WorkspaceError, match="used by rule"):
        p.delete_template("acme", "Brand")
    p.remove_rule("acme", rule.id)
    assert p.delete_template("acme", "Brand") == 2  # ann's company back to the IdP's; bob's card
    assert fields_of(service, "ann@contoso.com")["company"] == ("Blinq", "idp", True, True)
    assert fields_of(service, "bob@contoso.com")["company"][0] == "Bob Co"
    assert [v.card.template for v in p.cards("acme")] == [None, None, None]
    assert p.templates("acme") == []
    with pytest.raises(WorkspaceError):
        p.delete_template("acme", "Brand")


def test_move_rule_reorders_and_first_match_follows(service: ScimService, client: Client) -> None:
    # R7.2
    p = service.product
    p.create_template("acme", "A", {"website": "a"})
    p.create_template("acme", "B", {"website": "b"})
    a = p.add_rule("acme", "A", 'department eq "Marketing"')
    b = p.add_rule("acme", "B", "department pr")
    c = p.add_rule("acme", "B", "title pr")
    ordered = p.move_rule("acme", c.id, 1)
    assert [(r.id, r.position) for r in ordered] == [(c.id, 1), (a.id, 2), (b.id, 3)]
    assert [r.id for r in p.rules("acme")] == [c.id, a.id, b.id]
    client("POST", "/Users", entra_body("ann@contoso.com"))
    assert fields_of(service, "ann@contoso.com")["website"][0] == "b"
    assert [r.id for r in p.move_rule("acme", c.id, 99)] == [a.id, b.id, c.id]
    with pytest.raises(WorkspaceError):
        p.move_rule("acme", "nope", 1)
    with pytest.raises(WorkspaceError):
        p.move_rule("acme", a.id, 0)


def test_unknown_field_keys_are_refused_never_created(service: ScimService, client: Client) -> None:
    p = service.product
    client("POST", "/Users", entra_body("ann@contoso.com"))
    before = fields_of(service, "ann@contoso.com")
    for edit in (
        lambda: p.admin_edit("acme", "ann@contoso.com", "jobtitle", "x"),
        lambda: p.unlock("acme", "ann@contoso.com", "jobtitle"),
        lambda: p.owner_edit("acme", "ann@contoso.com", "jobtitle", "x"),
        lambda: p.create_template("acme", "T", {"compnay": "x"}),
    ):
        with pytest.raises(WorkspaceError, match=r"unknown card field '(jobtitle|compnay)'"):
            edit()
    assert fields_of(service, "ann@contoso.com") == before
    assert p.templates("acme") == []
    p.create_template("acme", "T", {"website": "w", "address": "a", "logo": "l"})
    with pytest.raises(WorkspaceError, match="unknown card field"):
        p.set_template("acme", "T", {"nonsense": "x"})
    p.set_template("acme", "T", {"website": ""})  # removing a field is fine
    assert dict(p.templates("acme")[0].fields) == {"address": "a", "logo": "l"}
