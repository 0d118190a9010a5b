"""Tests for :mod:`scimcore.filters` (RFC 7644 §3.4.2.2)."""

from __future__ import annotations

from typing import Any

import pytest

from scimcore.errors import InvalidFilterError
from scimcore.filters import (
    And,
    AttrRef,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    ValuePath,
    compile_filter,
    matches,
    matches_element,
    parse_filter,
    render,
    validate,
)
from scimcore.schema import Attribute, AttrType, Schema, SchemaRegistry, default_registry

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
CUSTOM = "urn:example:params:scim:schemas:extension:custom:1.0:User"

CUSTOM_SCHEMA = Schema(
    id=CUSTOM,
    name="Custom",
    description="Attributes whose names start with JSON literals, and more types.",
    attributes=(
        Attribute("nullable", AttrType.STRING),
        Attribute("trueName", AttrType.STRING),
        Attribute("falsePositives", AttrType.INTEGER),
        Attribute("score", AttrType.DECIMAL),
        Attribute("lastSeen", AttrType.DATETIME),
        Attribute("blob", AttrType.BINARY, case_exact=True),
        Attribute("tags", AttrType.STRING, multi_valued=True),
        Attribute("flags", AttrType.BOOLEAN, multi_valued=True),
    ),
)


def make_registry() -> SchemaRegistry:
    registry = default_registry()
    registry.add_extension(CUSTOM_SCHEMA)
    return registry


REG = make_registry()

ALICE: dict[str, Any] = {
    "schemas": [CORE, ENTERPRISE],
    "id": "2819c223-7f76-453a-919d-413861904646",
    "externalId": "Ext-Alice",
    "meta": {
        "resourceType": "User",
        "created": "2011-08-01T18:29:49.793Z",
        "lastModified": "2011-08-01T20:00:00+02:00",
        "location": "https://example.com/v2/Users/2819c223",
        "version": 'W/"a330bc54f0671c9"',
    },
    "userName": "Alice@Example.com",
    "name": {"givenName": "Alice", "familyName": "Jensen"},
    "displayName": "Alice Jensen",
    "title": "Tour Guide",
    "active": True,
    "emails": [
        {"value": "alice@Example.com", "type": "work", "primary": True},
        {"value": "alice@home.org", "type": "home"},
    ],
    ENTERPRISE: {"department": "Tour Operations", "manager": {"value": "26118915"}},
    CUSTOM: {
        "nullable": "yes",
        "trueName": "Ally",
        "falsePositives": 10,
        "score": 2.5,
        "lastSeen": "2024-03-01T12:00:00Z",
        "blob": "QUJD",
        "tags": ["red", "Blue"],
        "flags": [False, True],
    },
}

BOB: dict[str, Any] = {
    "schemas": [CORE],
    "id": "bob-id",
    "userName": "bob",
    "active": False,
    "emails": [{"value": "bob@other.net", "type": "home"}],
}

EMPTY: dict[str, Any] = {"schemas": [CORE], "id": "empty", "userName": "nobody"}


def m(text: str, doc: dict[str, Any] = ALICE, registry: SchemaRegistry = REG) -> bool:
    return matches(compile_filter(text, registry), doc, registry)


def invalid(text: str, registry: SchemaRegistry = REG) -> InvalidFilterError:
    with pytest.raises(InvalidFilterError) as info:
        compile_filter(text, registry)
    return info.value


def ref(name: str, sub: str | None = None, urn: str | None = None) -> AttrRef:
    return AttrRef(urn, name, sub)


# --- parsing -------------------------------------------------------------------------------------


def test_parse_simple_compare() -> None:
    assert parse_filter('userName eq "bjensen"') == Compare(ref("userName"), "eq", "bjensen")


def test_parse_present() -> None:
    assert parse_filter("title pr") == Present(ref("title"))


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_parse_every_compare_operator(op: str) -> None:
    assert parse_filter(f'title {op} "x"') == Compare(ref("title"), op, "x")


@pytest.mark.parametrize("op", ["EQ", "Eq", "eQ", "CO", "Sw", "gE", "lT"])
def test_operators_are_case_insensitive(op: str) -> None:
    assert parse_filter(f'USERNAME {op} "x"') == Compare(ref("USERNAME"), op.lower(), "x")


def test_logical_keywords_are_case_insensitive() -> None:
    assert parse_filter("a pr AND b pr Or NOT (c pr)") == Or(
        And(Present(ref("a")), Present(ref("b"))), Not(Present(ref("c")))
    )


def test_and_binds_tighter_than_or_regression() -> None:
    # scim2-filter-parser 0.7.0 parses this as (a or b) and c.
    a, b, c = (Compare(ref("userName"), "eq", v) for v in ("a", "b", "c"))
    assert parse_filter('userName eq "a" or userName eq "b" and userName eq "c"') == Or(
        a, And(b, c)
    )
    assert parse_filter('userName eq "a" and userName eq "b" or userName eq "c"') == Or(
        And(a, b), c
    )


def test_and_or_precedence_when_evaluated_regression() -> None:
    user_a = {"userName": "a", "active": True}
    assert m('userName eq "a" or userName eq "b" and active eq false', user_a)
    assert not m('(userName eq "a" or userName eq "b") and active eq false', user_a)


def test_not_binds_tighter_than_and() -> None:
    assert parse_filter("not (a pr) and b pr") == And(Not(Present(ref("a"))), Present(ref("b")))


def test_parentheses_group() -> None:
    assert parse_filter("a pr and (b pr or c pr)") == And(
        Present(ref("a")), Or(Present(ref("b")), Present(ref("c")))
    )


def test_and_or_are_left_associative() -> None:
    a, b, c = Present(ref("a")), Present(ref("b")), Present(ref("c"))
    assert parse_filter("a pr and b pr and c pr") == And(And(a, b), c)
    assert parse_filter("a pr or b pr or c pr") == Or(Or(a, b), c)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("10", 10),
        ("-1", -1),
        ("0", 0),
        ("2.5", 2.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("1E-2", 0.01),
        ("6.02e+23", 6.02e23),
        ("12345678901234567890", 12345678901234567890),
    ],
)
def test_json_numbers(literal: str, value: float) -> None:
    parsed = parse_filter(f"x eq {literal}")
    assert isinstance(parsed, Compare)
    assert parsed.value == value
    assert type(parsed.value) is type(value)


@pytest.mark.parametrize("literal", ["01", "1.", "1e", "1.2.3", "0x10", "1e999", "-"])
def test_invalid_numbers(literal: str) -> None:
    with pytest.raises(InvalidFilterError):
        parse_filter(f"x eq {literal}")


@pytest.mark.parametrize(
    ("literal", "value"), [("true", True), ("false", False), ("null", None), ("TRUE", True)]
)
def test_literals(literal: str, value: bool | None) -> None:
    assert parse_filter(f"x eq {literal}") == Compare(ref("x"), "eq", value)


def test_literals_are_not_strings() -> None:
    assert parse_filter('x eq "true"') == Compare(ref("x"), "eq", "true")


@pytest.mark.parametrize(
    "name", ["nullable", "trueName", "falsePositives", "notes", "order", "eqx"]
)
def test_names_starting_with_keywords(name: str) -> None:
    assert parse_filter(f"{name} pr") == Present(ref(name))
    assert parse_filter(f'{name} eq "x"') == Compare(ref(name), "eq", "x")


def test_keyword_prefixed_names_against_a_schema() -> None:
    assert m(f'{CUSTOM}:nullable eq "YES" and {CUSTOM}:trueName sw "al"')
    assert m(f"{CUSTOM}:falsePositives eq 10")


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"say \"hi\""', 'say "hi"'),
        (r'"back\\slash"', "back\\slash"),
        (r'"caf\u00e9"', "café"),
        (r'"a\/b\tc\nd"', "a/b\tc\nd"),
        (r'"\ud83d\ude00"', "\U0001f600"),
        ('"ünïcødé"', "ünïcødé"),
        ('""', ""),
    ],
)
def test_json_string_escapes(literal: str, value: str) -> None:
    assert parse_filter(f"x eq {literal}") == Compare(ref("x"), "eq", value)


def test_escaped_quote_matches_stored_value() -> None:
    assert m(r'title eq "Tour \"Guide\""', {"title": 'Tour "Guide"'})
    assert m(r'displayName eq "Ren\u00e9e"', {"displayName": "Renée"})


def test_sub_attribute() -> None:
    assert parse_filter('name.familyName co "O\'Malley"') == Compare(
        ref("name", "familyName"), "co", "O'Malley"
    )


def test_dollar_ref_sub_attribute() -> None:
    assert parse_filter('groups.$ref eq "x"') == Compare(ref("groups", "$ref"), "eq", "x")
    assert parse_filter('groups[$ref eq "x"]') == ValuePath(
        ref("groups"), Compare(ref("$ref"), "eq", "x")
    )


def test_urn_qualified_attribute() -> None:
    assert parse_filter(f'{ENTERPRISE}:department eq "x"') == Compare(
        ref("department", urn=ENTERPRISE), "eq", "x"
    )
    assert parse_filter(f'{ENTERPRISE}:manager.value eq "x"') == Compare(
        ref("manager", "value", ENTERPRISE), "eq", "x"
    )


def test_value_path() -> None:
    assert parse_filter('emails[type eq "work" and value co "@x"]') == ValuePath(
        ref("emails"),
        And(Compare(ref("type"), "eq", "work"), Compare(ref("value"), "co", "@x")),
    )


def test_value_path_in_logical_expression() -> None:
    assert parse_filter('userType eq "Employee" and emails[type eq "work"]') == And(
        Compare(ref("userType"), "eq", "Employee"),
        ValuePath(ref("emails"), Compare(ref("type"), "eq", "work")),
    )


def test_entra_value_path_with_sub_attribute() -> None:
    assert parse_filter('emails[type eq "work"].value eq "a@b"') == ValuePath(
        ref("emails"),
        And(Compare(ref("type"), "eq", "work"), Compare(ref("value"), "eq", "a@b")),
    )


def test_whitespace_is_flexible() -> None:
    assert parse_filter('  userName   eq\t"x"  ') == Compare(ref("userName"), "eq", "x")


# --- syntax errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_filter(text: str) -> None:
    with pytest.raises(InvalidFilterError, match="empty"):
        parse_filter(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('userName eq "a" & x pr', "'&' at position 16"),
        ("userName ~ 3", "'~' at position 9"),
        ('userName eq "a";', "';' at position 15"),
        ("userName eq 'single'", "position 12"),
        ('userName eq "unterminated', "unterminated string starting at position 12"),
        ('userName eq "bad \\q escape"', "position 17"),
        ('userName regex "x"', "'regex' at position 9"),
        ('userName eq "a" and', "end of filter"),
        ('(userName eq "a"', "end of filter"),
        ('userName eq "a")', "')' at position 15"),
        ('userName eq "a" userName', "'userName' at position 16"),
        ("userName eq", "end of filter"),
        ('eq "a"', "'eq' at position 0"),
        ('not userName eq "a"', "'userName' at position 4"),
        ('emails[type eq "work"', "end of filter"),
        ("userName eq 1x", "'1x' at position 12"),
        ('urn:foo: eq "x"', "position 8"),
        ('name..givenName eq "x"', "position 5"),
    ],
)
def test_syntax_errors_point_at_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(InvalidFilterError) as info:
        parse_filter(text)
    assert fragment in info.value.detail
    assert info.value.scim_type == "invalidFilter"
    assert info.value.status == 400


def test_illegal_character_is_invalid_filter_not_value_error() -> None:
    # scim2-filter-parser's own lexer raises a bare ValueError here.
    with pytest.raises(InvalidFilterError) as info:
        parse_filter('userName eq "a" # comment')
    assert not isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        'emails[type[value eq "x"]]',
        'emails[name.givenName eq "x"]',
        f'emails[{CORE}:type eq "x"]',
        'emails.value[type eq "work"]',
        'emails[type eq "work"] eq "x"',
        "((((((((((" * 100 + "a pr" + "))))))))))" * 100,
        " and ".join(["a pr"] * 1000),
    ],
)
def test_structural_errors(text: str) -> None:
    with pytest.raises(InvalidFilterError):
        parse_filter(text)


# --- rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'userName eq "bjensen"',
        'name.familyName co "O\'Malley"',
        'userName sw "J"',
        "title pr",
        'meta.lastModified gt "2011-05-13T04:42:34Z"',
        'title pr and userType eq "Employee"',
        'title pr or userType eq "Intern"',
        'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
        'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
        'emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co '
        '"@foo.com"]',
        f'{ENTERPRISE}:department eq "Sales"',
        "a pr and (b pr and c pr)",
        "a pr or (b pr or c pr)",
        "(a pr or b pr) and c pr",
        "x eq -2.5 and y eq 1e+16 and z eq null and w ne true",
        r'x eq "quote \" backslash \\ tab \t"',
    ],
)
def test_render_round_trip(text: str) -> None:
    f = parse_filter(text)
    assert parse_filter(render(f)) == f


def test_render_is_canonical() -> None:
    f = parse_filter('USERNAME EQ "x" OR (Title PR AND not(a Eq 1))')
    assert render(f) == 'USERNAME eq "x" or Title pr and not (a eq 1)'


def test_render_minimal_parentheses() -> None:
    a, b, c = Present(ref("a")), Present(ref("b")), Present(ref("c"))
    assert render(Or(a, And(b, c))) == "a pr or b pr and c pr"
    assert render(And(Or(a, b), c)) == "(a pr or b pr) and c pr"
    assert render(And(a, And(b, c))) == "a pr and (b pr and c pr)"
    assert render(Not(And(a, b))) == "not (a pr and b pr)"


def test_render_rejects_non_finite_numbers() -> None:
    with pytest.raises(ValueError):
        render(Compare(ref("x"), "eq", float("nan")))


# --- evaluation: operators -----------------------------------------------------------------------


def test_eq() -> None:
    assert m('userName eq "alice@example.com"')
    assert not m('userName eq "alice"')


def test_ne() -> None:
    assert m('title ne "Boss"')
    assert not m('title ne "tour guide"')


def test_ne_on_absent_attribute_matches() -> None:
    assert m('title ne "Boss"', EMPTY)
    assert not m('title eq "Boss"', EMPTY)


def test_co_sw_ew() -> None:
    assert m('userName co "@example"')
    assert m('userName sw "ALICE"')
    assert m('userName ew ".COM"')
    assert not m('userName sw "example"')
    assert not m('userName ew "alice"')
    assert m('userName sw "alice@example.com"')  # identical strings satisfy sw/ew
    assert m('userName ew "alice@example.com"')


def test_string_ordering_is_lexicographic() -> None:
    assert m('title gt "Tour"')
    assert m('title ge "tour guide"')
    assert m('title lt "Z"')
    assert m('title le "TOUR GUIDE"')
    assert not m('title lt "A"')


def test_pr() -> None:
    assert m("title pr")
    assert not m("title pr", EMPTY)
    assert m("emails pr")
    assert m("name pr")
    assert not m("name pr", {"name": {"givenName": None, "familyName": ""}})
    assert not m("title pr", {"title": ""})
    assert not m("emails pr", {"emails": []})
    assert not m("emails pr", {"emails": [{"value": None}]})
    assert m("active pr", BOB)  # false is a value


def test_pr_on_sub_attribute_of_multi_valued() -> None:
    assert m("emails.primary pr")
    assert not m("emails.primary pr", BOB)


def test_integer_and_decimal_comparisons() -> None:
    fp, score = f"{CUSTOM}:falsePositives", f"{CUSTOM}:score"
    assert m(f"{fp} eq 10")
    assert m(f"{fp} gt 9 and {fp} ge 10 and {fp} lt 11 and {fp} le 10")
    assert not m(f"{fp} gt 10")
    assert m(f"{fp} gt -1")
    assert m(f"{fp} lt 1e3")
    assert m(f"{score} eq 2.5 and {score} gt 2 and {score} lt 2.51")
    assert m(f"{score} ne 2")


def test_datetime_comparisons_are_chronological() -> None:
    # created is 2011-08-01T18:29:49.793Z; lastModified is 18:00Z written with a +02:00 offset.
    assert m('meta.created gt "2011-08-01T18:00:00Z"')
    assert m('meta.created lt "2011-08-01T21:00:00+02:00"')
    assert m('meta.created ge "2011-08-01T18:29:49.793Z"')
    assert m('meta.created eq "2011-08-01T18:29:49.793+00:00"')
    assert m('meta.lastModified lt "2011-08-01T18:29:49Z"')
    assert m('meta.lastModified eq "2011-08-01T18:00:00Z"')
    assert not m('meta.lastModified gt "2011-08-01T19:00:00Z"')
    assert m(f'{CUSTOM}:lastSeen le "2024-03-01T12:00:00"')  # no offset: UTC


def test_boolean_eq_ne() -> None:
    assert m("active eq true")
    assert not m("active eq false")
    assert m("active ne false")
    assert m("active eq false", BOB)


def test_binary_eq_is_case_exact() -> None:
    assert m(f'{CUSTOM}:blob eq "QUJD"')
    assert not m(f'{CUSTOM}:blob eq "qujd"')


def test_eq_null_means_absent() -> None:
    assert m("title eq null", EMPTY)
    assert not m("title eq null")
    assert m("title ne null")
    assert not m("title ne null", EMPTY)


# --- evaluation: caseExact ----------------------------------------------------------------------


def test_username_is_case_insensitive() -> None:
    assert m('userName eq "ALICE@EXAMPLE.COM"')


def test_id_and_external_id_are_case_exact() -> None:
    assert m('externalId eq "Ext-Alice"')
    assert not m('externalId eq "ext-alice"')
    assert m('id eq "2819c223-7f76-453a-919d-413861904646"')
    assert not m('id eq "2819C223-7F76-453A-919D-413861904646"')
    assert not m('id sw "2819C"')


def test_case_insensitive_attribute_names() -> None:
    assert m('USERNAME Eq "alice@example.com"')
    assert m('Name.GivenName EQ "alice"')
    assert m('EMAILS[TYPE eq "work"]')
    assert m(f'{ENTERPRISE.upper()}:DEPARTMENT eq "tour operations"')


def test_schemas_attribute() -> None:
    assert m(f'schemas eq "{ENTERPRISE}"')
    assert not m(f'schemas eq "{ENTERPRISE}"', BOB)


# --- evaluation: multi-valued, sub-attributes, valuePath, extensions ----------------------------


def test_multi_valued_matches_any_value() -> None:
    assert m('emails.value eq "alice@home.org"')
    assert m('emails.type eq "home"')
    assert m(f'{CUSTOM}:tags eq "blue"')
    assert m(f"{CUSTOM}:flags eq true")


def test_multi_valued_complex_without_sub_attribute_compares_value() -> None:
    assert m('emails eq "alice@home.org"')
    assert m('emails co "example.com"')
    assert not m('emails eq "home"')


def test_ne_on_multi_valued_means_no_value_equals() -> None:
    assert not m('emails.type ne "work"')
    assert m('emails.type ne "work"', BOB)
    assert m('emails.type ne "work"', EMPTY)


def test_value_path_requires_one_element_to_match_all_criteria() -> None:
    assert m('emails[type eq "work" and value co "@example.com"]')
    assert not m('emails[type eq "home" and value co "@example.com"]')
    # whereas the flat form may use two different elements
    assert m('emails.type eq "home" and emails.value co "@example.com"')


def test_value_path_with_or_and_not() -> None:
    assert m('emails[not (type eq "work") and value ew ".org"]')
    assert m('emails[type eq "other" or primary eq true]')
    assert not m('emails[type eq "other" or primary eq true]', BOB)


def test_value_path_on_single_complex() -> None:
    assert m('name[givenName eq "alice" and familyName sw "J"]')


def test_entra_value_path_filter() -> None:
    assert m('emails[type eq "work"].value eq "alice@example.com"')
    assert not m('emails[type eq "work"].value eq "alice@home.org"')


def test_sub_attributes() -> None:
    assert m('name.familyName eq "jensen"')
    assert not m('name.familyName eq "jensen"', BOB)


def test_enterprise_extension() -> None:
    assert m(f'{ENTERPRISE}:department eq "tour operations"')
    assert m(f'{ENTERPRISE}:manager.value eq "26118915"')
    assert not m(f"{ENTERPRISE}:department pr", BOB)
    assert m(f'{ENTERPRISE}:department ne "x"', BOB)


def test_urn_qualified_core_attributes_address_top_level() -> None:
    assert m(f'{CORE}:userName eq "alice@example.com"')
    assert m(f'{CORE}:name.givenName eq "Alice"')
    assert m(f'{CORE}:id eq "bob-id"', BOB)


def test_extension_attribute_is_not_read_from_top_level() -> None:
    assert not m(f'{ENTERPRISE}:department eq "x"', {"department": "x"})


def test_not_is_complement() -> None:
    for doc in (ALICE, BOB, EMPTY):
        for text in ('title eq "Tour Guide"', "emails[primary eq true]", "active eq true"):
            assert m(f"not ({text})", doc) is not m(text, doc)


def test_type_mismatched_stored_data_does_not_match_or_raise() -> None:
    weird: dict[str, Any] = {
        "userName": 42,
        "active": "yes",
        "title": ["a"],
        "emails": "not-a-list",
        "name": "flat",
        "meta": {"created": "not a date"},
        CUSTOM: {"falsePositives": "10", "score": True, "lastSeen": 3},
        ENTERPRISE: "oops",
    }
    for text in (
        'userName eq "42"',
        "active eq true",
        'title eq "a"',
        'emails.value eq "x"',
        'emails[type eq "work"]',
        'name.givenName eq "x"',
        'meta.created gt "2000-01-01T00:00:00Z"',
        f"{CUSTOM}:falsePositives eq 10",
        f"{CUSTOM}:score gt 0",
        f'{CUSTOM}:lastSeen lt "2030-01-01T00:00:00Z"',
        f'{ENTERPRISE}:department eq "x"',
    ):
        assert not m(text, weird), text


def test_matches_element() -> None:
    emails = REG.core.attribute("emails")
    assert emails is not None
    f = parse_filter('type eq "WORK" and value co "@example"')
    assert matches_element(f, ALICE["emails"][0], emails)
    assert not matches_element(f, ALICE["emails"][1], emails)
    assert matches_element(parse_filter("primary pr"), ALICE["emails"][0], emails)


def test_matches_element_rejects_unknown_sub_attribute() -> None:
    emails = REG.core.attribute("emails")
    assert emails is not None
    with pytest.raises(InvalidFilterError, match=r"emails\.bogus"):
        matches_element(parse_filter('bogus eq "x"'), {}, emails)


def test_matches_raises_invalid_filter_for_invalid_tree() -> None:
    with pytest.raises(InvalidFilterError):
        matches(Present(ref("bogus")), ALICE, REG)


def test_registry_extension_added_later_is_seen() -> None:
    registry = default_registry()
    f = parse_filter(f'{CUSTOM}:trueName eq "ally"')
    with pytest.raises(InvalidFilterError):
        validate(f, registry)
    registry.add_extension(CUSTOM_SCHEMA)
    assert matches(f, ALICE, registry)


def test_compiled_filters_are_reused_per_registry_and_revalidated_after_a_change() -> None:
    registry = default_registry()
    text = f'{CUSTOM}:trueName eq "ally"'
    with pytest.raises(InvalidFilterError):
        compile_filter(text, registry)
    registry.add_extension(CUSTOM_SCHEMA)
    first = compile_filter(text, registry)
    assert compile_filter(text, registry) is first  # a lookup compiles its filter twice
    assert compile_filter(text, make_registry()) is not first
    assert compile_filter(text, make_registry()) == first
    with pytest.raises(InvalidFilterError):
        compile_filter(text, default_registry())  # not valid there: never served from cache
    long = " or ".join(['userName eq "x"'] * 40)
    assert compile_filter(long, registry) is not compile_filter(long, registry)  # not kept


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('bogus eq "x"', "bogus"),
        ('name.bogus eq "x"', "name.bogus"),
        ('userName.x eq "x"', "userName.x"),
        ('emails[bogus eq "x"]', "emails.bogus"),
        ('urn:example:nope:1.0:User:thing eq "x"', "urn:example:nope:1.0:User:thing"),
        (f'{ENTERPRISE}:userName eq "x"', f"{ENTERPRISE}:userName"),
        ('department eq "x"', "department"),  # extension attributes need their URN
    ],
)
def test_unknown_attributes(text: str, fragment: str) -> None:
    error = invalid(text)
    assert "unknown attribute" in error.detail
    assert fragment in error.detail


@pytest.mark.parametrize("op", ["gt", "ge", "lt", "le"])
def test_ordering_on_boolean_is_invalid(op: str) -> None:
    assert "boolean" in invalid(f"active {op} true").detail
    invalid(f"emails.primary {op} false")


@pytest.mark.parametrize("op", ["gt", "ge", "lt", "le"])
def test_ordering_on_binary_is_invalid(op: str) -> None:
    assert "binary" in invalid(f'{CUSTOM}:blob {op} "QUJD"').detail
    invalid(f'x509Certificates.value {op} "QUJD"')


@pytest.mark.parametrize("op", ["co", "sw", "ew"])
def test_substring_ops_on_non_strings_are_invalid(op: str) -> None:
    invalid(f"active {op} true")
    invalid(f"{CUSTOM}:falsePositives {op} 1")
    invalid(f'meta.created {op} "2011"')


@pytest.mark.parametrize(
    "text",
    [
        'active eq "abc"',
        "active eq 1",
        "userName eq 5",
        "title eq true",
        f'{CUSTOM}:falsePositives eq "10"',
        f"{CUSTOM}:score eq true",
        'meta.created gt "yesterday"',
        "meta.created gt 5",
        "title gt null",
        "title co null",
    ],
)
def test_values_of_the_wrong_kind_are_invalid(text: str) -> None:
    invalid(text)


def test_validation_distinguishes_one_from_true() -> None:
    # 1 == True in Python; a cached check of `active eq true` must not accept `active eq 1`.
    compile_filter("active eq true", REG)
    invalid("active eq 1")
    assert parse_filter("x eq 1") != parse_filter("x eq true")
    assert parse_filter("x eq 1") != parse_filter("x eq 1.0")


def test_comparison_on_complex_without_sub_attribute_is_invalid() -> None:
    assert "complex" in invalid('name eq "x"').detail
    assert "complex" in invalid(f'{ENTERPRISE}:manager eq "x"').detail
    assert "complex" in invalid('meta eq "x"').detail


def test_value_path_on_non_complex_is_invalid() -> None:
    assert "complex" in invalid('userName[value eq "x"]').detail


def test_validate_accepts_rfc_examples() -> None:
    for text in (
        'userName eq "bjensen"',
        'name.familyName co "O\'Malley"',
        'userName sw "J"',
        f'{CORE}:userName sw "J"',
        "title pr",
        'meta.lastModified gt "2011-05-13T04:42:34Z"',
        'meta.lastModified ge "2011-05-13T04:42:34Z"',
        'meta.lastModified lt "2011-05-13T04:42:34Z"',
        'meta.lastModified le "2011-05-13T04:42:34Z"',
        'title pr and userType eq "Employee"',
        'title pr or userType eq "Intern"',
        'schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"',
        'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
        'userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")',
        'userType eq "Employee" and (emails.type eq "work")',
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
        'emails[type eq "work" and value co "@example.com"] or '
        'ims[type eq "xmpp" and value co "@foo.com"]',
        "name pr",
        "emails pr",
    ):
        f = compile_filter(text, REG)
        assert isinstance(f, (Compare, Present, And, Or, Not, ValuePath))


def test_compile_filter_returns_parsed_tree() -> None:
    text = 'emails[type eq "work"] and active eq true'
    expected: Filter = parse_filter(text)
    assert compile_filter(text, REG) == expected


def test_filter_nodes_are_frozen_and_hashable() -> None:
    f = parse_filter('userName eq "a"')
    assert hash(f) == hash(parse_filter('userName eq "a"'))
    with pytest.raises(AttributeError):
        f.op = "ne"  # type: ignore[misc, union-attr]
