"""The pure card rules (R3, R4, R6, R7, R8) and template rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scimcore.cards import (
    DEFAULT_MAPPING,
    CardError,
    FieldRule,
    Source,
    admin_edit,
    admin_unlock,
    apply_template,
    extract,
    new_card,
    owner_edit,
    sync_card,
)
from scimcore.errors import InvalidFilterError
from scimcore.schema import default_registry
from scimcore.templates import Rule, choose_template, compile_rule

REG = default_registry()
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def entra_user(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "u1",
        "userName": "ann@contoso.com",
        "displayName": "Ann Lee",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "title": "Engineer",
        "emails": [{"type": "work", "value": "ann@contoso.com", "primary": True}],
        "phoneNumbers": [
            {"type": "work", "value": "+1 555 0100"},
            {"type": "mobile", "value": "+1 555 0199"},
        ],
        ENT: {"department": "Marketing", "organization": "Blinq"},
    }
    doc.update(over)
    return doc


def test_extract_follows_the_r6_mapping() -> None:
    # R6
    assert extract(entra_user(), DEFAULT_MAPPING, REG) == {
        "name": "Ann Lee",
        "first_name": "Ann",
        "last_name": "Lee",
        "job_title": "Engineer",
        "department": "Marketing",
        "company": "Blinq",
        "office_phone": "+1 555 0100",
        "mobile_phone": "+1 555 0199",
        "email": "ann@contoso.com",
    }


def test_email_falls_back_to_primary() -> None:
    # R6: emails[type eq "work"].value, else the primary email
    doc = entra_user(
        emails=[
            {"type": "home", "value": "h@x.test"},
            {"type": "other", "value": "p@x.test", "primary": True},
        ]
    )
    assert extract(doc, DEFAULT_MAPPING, REG)["email"] == "p@x.test"


def test_mapping_is_data_restrict_and_extend() -> None:
    # R6: a workspace can restrict or extend the mapping
    narrow = DEFAULT_MAPPING.restrict(["name", "email"])
    assert set(extract(entra_user(), narrow, REG)) == {"name", "email"}
    wide = DEFAULT_MAPPING.extend(FieldRule("employee_id", "Employee ID", f"{ENT}:employeeNumber"))
    doc = entra_user(**{ENT: {"employeeNumber": "42"}})
    assert extract(doc, wide, REG)["employee_id"] == "42"


def test_new_card_fields_start_locked_and_linked() -> None:
    # R3.2, R3.3
    card = new_card(extract(entra_user(), DEFAULT_MAPPING, REG))
    assert card.fields["job_title"].value == "Engineer"
    assert all(f.locked and f.linked and f.source is Source.IDP for f in card.fields.values())


def test_template_fields_take_precedence() -> None:
    # R7.3
    card = new_card(
        {"company": "Blinq", "name": "Ann"}, "Brand", {"company": "Blinq Inc.", "logo": "logo.png"}
    )
    assert card.fields["company"].value == "Blinq Inc."
    assert card.fields["company"].source is Source.TEMPLATE
    assert card.fields["logo"].value == "logo.png"
    assert card.template == "Brand"
    synced = sync_card(card, {"company": "Blinq Pty", "name": "Ann"}, DEFAULT_MAPPING)
    assert synced.fields["company"].value == "Blinq Inc."


def test_linked_fields_follow_idp_and_clear_when_removed() -> None:
    # R4.1, R4.3
    card = new_card({"job_title": "Engineer", "department": "R&D"})
    synced = sync_card(card, {"job_title": "Lead", "mobile_phone": "+1"}, DEFAULT_MAPPING)
    assert synced.fields["job_title"].value == "Lead"
    assert "department" not in synced.fields
    assert synced.fields["mobile_phone"].locked and synced.fields["mobile_phone"].linked


def test_sync_that_changes_nothing_returns_same_card() -> None:
    # R4.4
    card = new_card({"job_title": "Engineer"})
    assert sync_card(card, {"job_title": "Engineer"}, DEFAULT_MAPPING) is card


def test_admin_edit_unlinks_and_keeps_lock() -> None:
    # R8.1
    card = admin_edit(new_card({"job_title": "Engineer"}), "job_title", "Chief Engineer")
    field = card.fields["job_title"]
    assert (field.value, field.locked, field.linked, field.source) == (
        "Chief Engineer",
        True,
        False,
        Source.ADMIN,
    )
    assert sync_card(card, {"job_title": "Intern"}, DEFAULT_MAPPING).fields["job_title"].value == (
        "Chief Engineer"
    )


def test_unlock_unlinks_and_owner_edits_only_unlocked() -> None:
    # R8.2, R8.3
    card = new_card({"job_title": "Engineer", "department": "R&D"})
    with pytest.raises(CardError):
        owner_edit(card, "job_title", "Boss")
    unlocked = admin_unlock(card, "job_title")
    assert unlocked.fields["job_title"].locked is False
    assert unlocked.fields["job_title"].linked is False
    edited = owner_edit(unlocked, "job_title", "Boss")
    assert edited.fields["job_title"].source is Source.OWNER
    assert (
        sync_card(edited, {"job_title": "Eng", "department": "R&D"}, DEFAULT_MAPPING)
        .fields["job_title"]
        .value
        == "Boss"
    )
    with pytest.raises(CardError):
        owner_edit(edited, "department", "Sales")


def test_template_edit_reaches_cards_that_still_inherit() -> None:
    # R7.1
    old = {"company": "Blinq Inc.", "logo": "a.png"}
    inheriting = new_card({"company": "Blinq"}, "Brand", old)
    edited = admin_edit(inheriting, "logo", "mine.png")
    new = {"company": "Blinq Incorporated", "website": "blinq.me"}
    a = apply_template(inheriting, "Brand", old, new, {"company": "Blinq"})
    assert a.fields["company"].value == "Blinq Incorporated"
    assert "logo" not in a.fields
    assert a.fields["website"].value == "blinq.me"
    b = apply_template(edited, "Brand", old, new, {"company": "Blinq"})
    assert b.fields["logo"].value == "mine.png"  # hand-edited: no longer inherits
    other = new_card({"company": "X"}, "Other", {"logo": "o.png"})
    assert apply_template(other, "Brand", old, new, {}) is other


def test_removed_template_field_falls_back_to_idp_value() -> None:
    # R7.1 + R3.3
    card = new_card({"company": "Blinq"}, "Brand", {"company": "Blinq Inc."})
    after = apply_template(card, "Brand", {"company": "Blinq Inc."}, {}, {"company": "Blinq"})
    assert after.fields["company"].value == "Blinq"
    assert after.fields["company"].source is Source.IDP and after.fields["company"].linked


def test_rules_first_match_wins_with_aliases() -> None:
    # R7.2
    rules = [
        Rule("r1", 'department eq "Marketing" or department eq "Sales"', "A", 1),
        Rule("r2", 'title sw "Eng"', "B", 2),
        Rule("r0", 'company eq "Nope"', "C", 0),
    ]
    assert choose_template(rules, entra_user(), DEFAULT_MAPPING, REG) == "A"
    other = entra_user(**{ENT: {"department": "R&D"}})
    assert choose_template(rules, other, DEFAULT_MAPPING, REG) == "B"
    assert (
        choose_template(rules, entra_user(title="CEO", **{ENT: {}}), DEFAULT_MAPPING, REG) is None
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('department eq "Sales" or', "end"),
        ('departmnt eq "Sales"', "departmnt"),
        ('department eq "Sales', "string"),
        ("", "filter"),
    ],
)
def test_bad_rules_are_refused_when_saved(text: str, needle: str) -> None:
    # R7.4
    with pytest.raises(InvalidFilterError) as info:
        compile_rule(text, DEFAULT_MAPPING, REG)
    assert needle in info.value.detail.lower()


@given(
    st.dictionaries(st.sampled_from(DEFAULT_MAPPING.field_keys()), st.text(min_size=1), max_size=6),
    st.dictionaries(st.sampled_from(DEFAULT_MAPPING.field_keys()), st.text(min_size=1), max_size=6),
)
def test_unlinked_fields_never_change_on_sync(first: dict[str, str], later: dict[str, str]) -> None:
    # R4.1: unlinked fields never change
    card = new_card(first)
    for key in list(first)[:2]:
        card = admin_edit(card, key, "edited")
    synced = sync_card(card, later, DEFAULT_MAPPING)
    for key, f in card.fields.items():
        if not f.linked:
            assert synced.fields[key] == f
    for key, f in synced.fields.items():
        if f.linked and f.source is Source.IDP:
            assert f.value == later[key]


def test_extract_follows_registry_changes() -> None:
    """Readers are built once per mapping and registry, and rebuilt when the registry gains
    the extension a mapping names (before, that field feeds nothing)."""
    from scimcore.cards import FieldRule
    from scimcore.schema import Attribute, Schema, SchemaRegistry

    urn = "urn:example:badge:2.0:User"
    reg = SchemaRegistry()
    mapping = DEFAULT_MAPPING.extend(FieldRule("badge", "Badge", f"{urn}:badgeId"))
    doc = {**entra_user(), urn: {"badgeId": "B-7"}}
    assert "badge" not in extract(doc, mapping, reg)
    assert extract(doc, mapping, reg) == extract(doc, mapping, reg)
    reg.add_extension(Schema(urn, "Badge", "", (Attribute("badgeId"),)))
    assert extract(doc, mapping, reg)["badge"] == "B-7"
    assert extract(doc, mapping, reg)["name"] == extract(doc, DEFAULT_MAPPING, reg)["name"]
