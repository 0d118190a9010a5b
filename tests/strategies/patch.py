"""PATCH requests (RFC 7644 §3.5.2) and the user documents they apply to: mostly well-typed
operations (so that most patches succeed), with read-only, unknown and malformed paths mixed in."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from scimcore.messages import PATCH_OP_URN
from scimcore.patch import STRICT, TOLERANT

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

text = st.text(alphabet="abcXY1 @.", min_size=1, max_size=6)
types = st.sampled_from(["work", "home", "other", "mobile"])


def _multi(value: st.SearchStrategy[Any]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Distinct elements, at most one of them primary (RFC 7643 §2.4)."""
    element = st.fixed_dictionaries({"value": value}, optional={"type": types, "display": text})

    return st.lists(
        element, min_size=1, max_size=3, unique_by=lambda e: (e["value"], e.get("type"))
    ).flatmap(
        lambda items: st.integers(-1, len(items) - 1).map(
            lambda k: [{**e, "primary": True} if i == k else e for i, e in enumerate(items)]
        )
    )


names = st.fixed_dictionaries(
    {}, optional={"givenName": text, "familyName": text, "middleName": text}
).filter(bool)
enterprise = st.fixed_dictionaries(
    {},
    optional={
        "employeeNumber": text,
        "department": text,
        "manager": st.fixed_dictionaries({"value": text}, optional={"$ref": text}),
    },
).filter(bool)

docs = st.fixed_dictionaries(
    {
        "id": st.just("2819c223"),
        "meta": st.just({"resourceType": "User", "version": 'W/"1"', "created": "2024-01-01"}),
        "userName": text,
    },
    optional={
        "name": names,
        "title": text,
        "displayName": text,
        "active": st.booleans(),
        "externalId": text,
        "emails": _multi(text),
        "phoneNumbers": _multi(text),
        "roles": _multi(text),
        "groups": st.just([{"value": "g1", "display": "G"}]),
        ENT: enterprise,
    },
)

PATHS = [
    "id",
    "meta",
    "meta.version",
    "groups",
    "schemas",
    "userName",
    "title",
    "displayName",
    "active",
    "externalId",
    "password",
    "name",
    "name.givenName",
    "NAME.familyname",
    "emails",
    "emails.type",
    "emails.primary",
    'emails[type eq "work"]',
    'emails[type eq "work"].value',
    'emails[type eq "home"].primary',
    "emails[value pr]",
    'emails[type ne "work" or primary eq true].display',
    'phoneNumbers[type eq "mobile"].value',
    'roles[primary eq "True"].value',
    "roles",
    f"{ENT}:employeeNumber",
    f"{ENT}:manager",
    f"{ENT}:manager.value",
    f"{ENT}:manager.displayName",
    "manager",
    "nope",
    "emails[",
    "name.nope",
]

scalars = st.one_of(
    text,
    st.booleans(),
    st.sampled_from(["True", "False", "", "x"]),
    st.none(),
    st.integers(-2, 2),
)
element_values = st.fixed_dictionaries(
    {}, optional={"value": text, "type": types, "primary": st.booleans(), "display": text}
)
values = st.one_of(
    scalars,
    element_values,
    st.lists(element_values, max_size=3),
    st.lists(scalars, max_size=2),
    st.fixed_dictionaries({}, optional={"givenName": scalars, "familyName": text}),
)
pathless_values = st.dictionaries(
    st.sampled_from(
        [
            "id",
            "meta",
            "schemas",
            "groups",
            "active",
            "displayName",
            "name.givenName",
            "emails",
            "title",
            f"{ENT}:department",
            ENT,
            "unknown",
        ]
    ),
    values,
    max_size=4,
)
op_names = st.sampled_from(["add", "replace", "remove", "Add", "Replace", "Remove"] * 4 + ["move"])
emails = st.lists(element_values, max_size=2)
# Values of the right type for a path, so that most generated patches succeed.
TYPED: dict[str, st.SearchStrategy[Any]] = {
    "userName": text,
    "title": st.one_of(text, st.just(""), st.none()),
    "active": st.sampled_from([True, False, "True", "False"]),
    "name": st.fixed_dictionaries({}, optional={"givenName": text, "familyName": st.none()}),
    "name.givenName": text,
    "emails": emails,
    'emails[type eq "work"]': element_values,
    'emails[type eq "work"].value': text,
    'emails[type eq "home"].primary': st.booleans(),
    'phoneNumbers[type eq "mobile"].value': text,
    'roles[primary eq "True"].value': text,
    "roles": st.lists(st.one_of(element_values, st.just('{"value": "r", "primary": true}'))),
    "emails.primary": st.booleans(),
    f"{ENT}:manager": st.one_of(text, st.just(""), st.lists(element_values, max_size=1)),
    f"{ENT}:manager.value": text,
    f"{ENT}:employeeNumber": text,
    "manager": st.one_of(text, st.just("")),
}
typed_operations = st.sampled_from(sorted(TYPED)).flatmap(
    lambda path: st.fixed_dictionaries(
        {"op": op_names, "path": st.just(path), "value": TYPED[path]}
    )
)
operations = st.one_of(
    typed_operations,
    typed_operations,
    typed_operations,
    st.fixed_dictionaries(
        {"op": op_names, "path": st.sampled_from(PATHS)}, optional={"value": values}
    ),
    st.fixed_dictionaries({"op": op_names, "value": pathless_values}),
)
bodies = st.fixed_dictionaries(
    {"Operations": st.lists(operations, min_size=1, max_size=4)},
    optional={"schemas": st.just([PATCH_OP_URN])},
)
tolerances = st.sampled_from([TOLERANT, STRICT])
