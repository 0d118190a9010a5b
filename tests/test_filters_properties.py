"""Property tests for :mod:`scimcore.filters` (RFC 7644 §3.4.2.2)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from scimcore.filters import (
    And,
    Compare,
    Filter,
    Not,
    Or,
    matches,
    parse_filter,
    render,
    validate,
)
from scimcore.schema import default_registry
from tests.strategies.filters import (
    bool_compares,
    date_compares,
    docs,
    null_compares,
    string_compares,
    trees,
    valid_atoms,
    valid_trees,
)

REG = default_registry()


@given(trees)
def test_render_parse_round_trip(f: Filter) -> None:
    assert parse_filter(render(f)) == f


@given(trees)
def test_render_is_a_fixed_point(f: Filter) -> None:
    text = render(f)
    assert render(parse_filter(text)) == text


@given(valid_trees)
def test_generated_valid_trees_validate(f: Filter) -> None:
    validate(f, REG)


@given(valid_trees, docs)
def test_not_matches_exactly_what_f_does_not(f: Filter, doc: dict[str, Any]) -> None:
    assert matches(Not(f), doc, REG) is not matches(f, doc, REG)


@given(st.one_of(string_compares, bool_compares, date_compares, null_compares), docs)
def test_ne_is_not_eq(c: Compare, doc: dict[str, Any]) -> None:
    eq, ne = Compare(c.attr, "eq", c.value), Compare(c.attr, "ne", c.value)
    assert matches(ne, doc, REG) is not matches(eq, doc, REG)


@given(valid_trees, valid_trees, docs)
def test_and_or_are_boolean(a: Filter, b: Filter, doc: dict[str, Any]) -> None:
    ma, mb = matches(a, doc, REG), matches(b, doc, REG)
    assert matches(And(a, b), doc, REG) is (ma and mb)
    assert matches(Or(a, b), doc, REG) is (ma or mb)


@given(valid_trees, docs)
def test_matching_survives_render_and_parse(f: Filter, doc: dict[str, Any]) -> None:
    assert matches(parse_filter(render(f)), doc, REG) is matches(f, doc, REG)


# --- precedence ----------------------------------------------------------------------------------


@given(valid_atoms, valid_atoms, valid_atoms)
def test_and_binds_tighter_than_or(a: Filter, b: Filter, c: Filter) -> None:
    ra, rb, rc = render(a), render(b), render(c)
    assert parse_filter(f"{ra} or {rb} and {rc}") == parse_filter(f"{ra} or ({rb} and {rc})")
    assert parse_filter(f"{ra} and {rb} or {rc}") == parse_filter(f"({ra} and {rb}) or {rc}")
    assert parse_filter(f"{ra} or {rb} and {rc}") == Or(a, And(b, c))
    assert parse_filter(f"{ra} and {rb} or {rc}") == Or(And(a, b), c)


@given(valid_atoms, valid_atoms, valid_atoms, docs)
def test_precedence_in_evaluation(a: Filter, b: Filter, c: Filter, doc: dict[str, Any]) -> None:
    ma, mb, mc = (matches(x, doc, REG) for x in (a, b, c))
    ra, rb, rc = render(a), render(b), render(c)
    assert matches(parse_filter(f"{ra} or {rb} and {rc}"), doc, REG) is (ma or (mb and mc))
    assert matches(parse_filter(f"{ra} and {rb} or {rc}"), doc, REG) is ((ma and mb) or mc)
