"""Filter trees: any syntactic tree (render/parse round trips), and trees valid against the
default schema with documents to match them against (evaluation semantics)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from scimcore.filters import And, AttrRef, Compare, Filter, Not, Or, Present, ValuePath

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
KEYWORDS = {"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not"}
KEYWORDS |= {"true", "false", "null"}
COMPARE_OPS = sorted(KEYWORDS - {"pr", "and", "or", "not", "true", "false", "null"})

# --- syntactic trees (round trip) ---------------------------------------------------------------

names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,10}\Z").filter(
    lambda n: n.lower() not in KEYWORDS
) | st.just("$ref")
urns = st.sampled_from([ENTERPRISE, CORE]) | st.from_regex(
    r"\Aurn:[a-z]{1,5}(:[A-Za-z0-9._-]{1,6}){1,4}\Z"
)
values: st.SearchStrategy[str | int | float | bool | None] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    # any text a value can hold (U+0000 cannot: refused as invalidFilter, tested elsewhere)
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"])),
)
ops = st.sampled_from(COMPARE_OPS)

top_refs = st.builds(AttrRef, st.none() | urns, names, st.none() | names)
plain_refs = st.builds(AttrRef, st.none(), names, st.none())


def leaves(refs: st.SearchStrategy[AttrRef]) -> st.SearchStrategy[Filter]:
    return st.builds(Compare, refs, ops, values) | st.builds(Present, refs)


def logic(children: st.SearchStrategy[Filter]) -> st.SearchStrategy[Filter]:
    return (
        st.builds(And, children, children)
        | st.builds(Or, children, children)
        | st.builds(Not, children)
    )


value_filters = st.recursive(leaves(plain_refs), logic, max_leaves=6)
top_leaves = leaves(top_refs) | st.builds(ValuePath, plain_refs, value_filters)
trees = st.recursive(top_leaves, logic, max_leaves=12)


# --- schema-valid trees and documents (semantics) -----------------------------------------------

short = st.text(alphabet="aAbB@.", max_size=4)
dates = st.sampled_from(
    [
        "2020-01-01T00:00:00Z",
        "2020-01-01T01:00:00+01:00",
        "2021-06-15T12:30:00.5Z",
        "2019-12-31T23:59:59-05:00",
    ]
)
types = st.sampled_from(["work", "home", "WORK", "other"])


def ref(text: str) -> AttrRef:
    urn, _, rest = text.rpartition(":")
    name, _, sub = rest.partition(".")
    return AttrRef(urn or None, name, sub or None)


STRING_PATHS = [
    "userName",
    "title",
    "externalId",
    "name.givenName",
    "emails",
    "emails.value",
    "emails.type",
    f"{ENTERPRISE}:department",
]
BOOL_PATHS = ["active", "emails.primary"]
ALL_PATHS = [*STRING_PATHS, *BOOL_PATHS, "meta.created", "name", "emails", "meta"]

string_compares = st.builds(
    Compare,
    st.sampled_from(STRING_PATHS).map(ref),
    ops,
    short | types,
)
bool_compares = st.builds(
    Compare,
    st.sampled_from(BOOL_PATHS).map(ref),
    st.sampled_from(["eq", "ne"]),
    st.booleans(),
)
date_compares = st.builds(
    Compare,
    st.just(ref("meta.created")),
    st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]),
    dates,
)
null_compares = st.builds(
    Compare,
    st.sampled_from([*STRING_PATHS, *BOOL_PATHS, "meta.created"]).map(ref),
    st.sampled_from(["eq", "ne"]),
    st.none(),
)
presents = st.builds(Present, st.sampled_from(ALL_PATHS).map(ref))

email_leaves: st.SearchStrategy[Filter] = st.one_of(
    st.builds(
        Compare,
        st.sampled_from(["value", "type", "display"]).map(ref),
        ops,
        short | types,
    ),
    st.builds(Compare, st.just(ref("primary")), st.sampled_from(["eq", "ne"]), st.booleans()),
    st.builds(Present, st.sampled_from(["value", "type", "primary"]).map(ref)),
)
email_paths = st.builds(
    ValuePath, st.just(ref("emails")), st.recursive(email_leaves, logic, max_leaves=4)
)

valid_atoms: st.SearchStrategy[Filter] = st.one_of(
    string_compares, bool_compares, date_compares, null_compares, presents, email_paths
)
valid_trees = st.recursive(valid_atoms, logic, max_leaves=8)

emails = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "value": short | st.none(),
            "type": types,
            "primary": st.booleans() | st.just("yes"),
        },
    ),
    max_size=3,
)
docs: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"userName": short},
    optional={
        "title": short | st.integers() | st.none(),
        "externalId": short,
        "active": st.booleans() | st.just("true"),
        "name": st.fixed_dictionaries({}, optional={"givenName": short | st.none()}),
        "emails": emails | st.just("oops"),
        "meta": st.fixed_dictionaries({}, optional={"created": dates | st.just("later")}),
        ENTERPRISE: st.fixed_dictionaries({}, optional={"department": short}),
    },
)
