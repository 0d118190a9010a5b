"""Property tests for PATCH (RFC 7644 §3.5.2): read-only values, atomicity, invariants."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimcore.errors import SCIMError
from scimcore.messages import PATCH_OP_URN
from scimcore.patch import STRICT, TOLERANT, Tolerance, apply_patch
from scimcore.schema import Attribute, Mutability, SchemaRegistry, default_registry

REG = default_registry()
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


def _check_value(attr: Attribute, value: Any, where: str) -> None:
    assert value is not None and value != [] and value != {}, f"{where} is empty: {value!r}"
    if attr.multi_valued:
        assert isinstance(value, list), where
        for item in value:
            _check_value(
                Attribute(attr.name, attr.type, sub_attributes=attr.sub_attributes), item, where
            )
        if attr.sub_attribute("primary") is not None:
            assert sum(1 for e in value if e.get("primary") is True) <= 1, f"{where}: 2 primaries"
    elif attr.is_complex:
        assert isinstance(value, dict), where
        for key, sub_value in value.items():
            sub = attr.sub_attribute(key)
            assert sub is not None and sub.name == key, f"{where}.{key} is not canonical"
            _check_value(sub, sub_value, f"{where}.{key}")


def assert_canonical(doc: dict[str, Any], registry: SchemaRegistry) -> None:
    """The invariants of scimcore.converter's canonical document."""
    for key, value in doc.items():
        ext = registry.schema(key)
        if ext is not None and ext is not registry.core:
            assert key == ext.id
            assert isinstance(value, dict) and value, f"empty extension section {key}"
            for name, v in value.items():
                attr = ext.attribute(name)
                assert attr is not None and attr.name == name, f"{key}:{name} not canonical"
                _check_value(attr, v, name)
            continue
        _, attr = registry.top_level(key)
        assert attr.name == key, f"{key} is not canonical"
        _check_value(attr, value, key)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=docs, body=bodies, tolerance=tolerances)
def test_outcome_is_all_or_nothing(doc: dict[str, Any], body: Any, tolerance: Tolerance) -> None:
    """Either a SCIMError and the input unchanged, or a new canonical doc with the same
    read-only values (RFC 7644 §3.5.2: atomic; RFC 7643 §7: readOnly)."""
    before, sent = copy.deepcopy(doc), copy.deepcopy(body)
    try:
        out = apply_patch(doc, body, REG, tolerance=tolerance)
    except SCIMError as exc:
        assert doc == before and body == sent
        assert exc.status == 400 and exc.scim_type is not None
        assert exc.detail.startswith("Operations["), exc.detail
        return
    assert doc == before and body == sent
    assert out is not doc
    for read_only in ("id", "meta", "groups"):
        assert out.get(read_only) == before.get(read_only)
    manager_display = before.get(ENT, {}).get("manager", {}).get("displayName")
    if manager_display is not None:
        assert out[ENT]["manager"].get("displayName") in (manager_display, None)
    assert "password" not in out
    assert_canonical(out, REG)


@settings(max_examples=200, deadline=None)
@given(doc=docs, ops=st.lists(operations, min_size=1, max_size=4), bad=st.integers(0, 4))
def test_a_failing_operation_changes_nothing(
    doc: dict[str, Any], ops: list[dict[str, Any]], bad: int
) -> None:
    ops = list(ops)
    ops.insert(min(bad, len(ops)), {"op": "replace", "path": "id", "value": "other"})
    before = copy.deepcopy(doc)
    try:
        apply_patch(doc, {"schemas": [PATCH_OP_URN], "Operations": ops}, REG)
    except SCIMError:
        assert doc == before
    else:  # pragma: no cover - the read-only operation must fail
        raise AssertionError("replacing id must fail")


@settings(max_examples=200, deadline=None)
@given(doc=docs)
def test_replacing_with_own_values_changes_nothing(doc: dict[str, Any]) -> None:
    """A path-less replace echoing the document (as Okta echoes GET output) is a no-op."""
    out = apply_patch(doc, {"Operations": [{"op": "replace", "value": doc}]}, REG)
    assert out == doc


@settings(max_examples=200, deadline=None)
@given(doc=docs, body=bodies)
def test_result_is_stable_and_independent(doc: dict[str, Any], body: Any) -> None:
    """The result shares no mutable object with the input or the body."""
    try:
        out = apply_patch(doc, body, REG)
    except SCIMError:
        return
    snapshot = copy.deepcopy(out)
    before = copy.deepcopy(doc)

    def scramble(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                scramble(v)
            value["zz"] = 1
        elif isinstance(value, list):
            for v in value:
                scramble(v)
            value.append(0)

    scramble(body)
    assert out == snapshot
    scramble(out)
    assert doc == before


def test_read_only_registry_attributes_are_the_ones_checked() -> None:
    assert REG.top_level("id")[1].mutability is Mutability.READ_ONLY
    assert REG.top_level("meta")[1].mutability is Mutability.READ_ONLY
    assert REG.top_level("groups")[1].mutability is Mutability.READ_ONLY
