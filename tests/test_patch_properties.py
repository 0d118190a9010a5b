"""Property tests for PATCH (RFC 7644 §3.5.2): read-only values, atomicity, invariants."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scimcore.errors import SCIMError
from scimcore.messages import PATCH_OP_URN
from scimcore.patch import Tolerance, apply_patch
from scimcore.schema import Attribute, Mutability, SchemaRegistry, default_registry
from tests.strategies.patch import ENT, bodies, docs, operations, tolerances

REG = default_registry()


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


@settings(suppress_health_check=[HealthCheck.too_slow])
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


@given(doc=docs)
def test_replacing_with_own_values_changes_nothing(doc: dict[str, Any]) -> None:
    """A path-less replace echoing the document (as Okta echoes GET output) is a no-op."""
    out = apply_patch(doc, {"Operations": [{"op": "replace", "value": doc}]}, REG)
    assert out == doc


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
