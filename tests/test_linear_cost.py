"""Issue #22, item 1: applying n PATCH operations, or normalising a body of n values, costs
O(n + size of the resource), never O(n²). The work is counted, not timed: every comparison
of two e-mail addresses goes through :class:`CountingStr`, so a rescan per value (the old
``append_values`` and ``value not in out``) shows as four times the comparisons for twice n,
a hash lookup as at most about twice."""

from __future__ import annotations

from typing import Any, ClassVar

from scimcore.converter import normalize_resource
from scimcore.messages import PATCH_OP_URN
from scimcore.patch import apply_patch
from scimcore.schema import default_registry


class CountingStr(str):
    """A string that counts how often it is compared for equality."""

    compared: ClassVar[int] = 0

    def __eq__(self, other: object) -> bool:
        CountingStr.compared += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


def _address(i: int) -> CountingStr:
    return CountingStr(f"user{i}@example.com")


def _patch_comparisons(n: int, *, same: bool = False) -> int:
    registry = default_registry()
    ops: list[dict[str, Any]] = [
        {
            "op": "add",
            "path": "emails",
            "value": [{"value": _address(0 if same else i), "type": "work"}],
        }
        for i in range(n)
    ]
    doc = {"userName": "bjensen", "id": "1"}
    CountingStr.compared = 0
    out = apply_patch(doc, {"schemas": [PATCH_OP_URN], "Operations": ops}, registry)
    assert len(out["emails"]) == (1 if same else n)
    return CountingStr.compared


def _create_comparisons(n: int) -> int:
    body = {"userName": "bjensen", "emails": [{"value": _address(i)} for i in range(n)]}
    CountingStr.compared = 0
    doc = normalize_resource(body, default_registry())
    assert len(doc["emails"]) == n
    return CountingStr.compared


def test_patch_adds_are_linear_in_the_number_of_operations() -> None:
    small, large = _patch_comparisons(400), _patch_comparisons(800)
    assert large <= 2.2 * small + 50, (small, large)


def test_patch_repeated_adds_of_one_value_merge_in_linear_work() -> None:
    small, large = _patch_comparisons(400, same=True), _patch_comparisons(800, same=True)
    assert small >= 399  # each add after the first finds the one element
    assert large <= 2.2 * small, (small, large)


def test_create_normalisation_deduplicates_in_linear_work() -> None:
    small, large = _create_comparisons(1000), _create_comparisons(2000)
    assert large <= 2.2 * small + 50, (small, large)


def test_patch_merges_and_primary_as_before() -> None:
    """The hashed path keeps the rules of scimcore.merging: same value and type merge, a new
    primary clears the old one, two operations on one list see each other's values."""
    ops = [
        {"op": "add", "path": "emails", "value": [{"value": "a@x", "type": "work"}]},
        {"op": "add", "path": "emails", "value": [{"value": "b@x", "primary": True}]},
        {"op": "add", "path": "emails", "value": [{"value": "a@x", "primary": True}]},
        {"op": "add", "path": "emails", "value": [{"value": "a@x", "type": "home"}]},
    ]
    out = apply_patch(
        {"userName": "u", "emails": [{"value": "c@x", "primary": True}]},
        {"schemas": [PATCH_OP_URN], "Operations": ops},
        default_registry(),
    )
    assert out["emails"] == [
        {"value": "c@x", "primary": False},
        {"value": "a@x", "type": "work", "primary": True},
        {"value": "b@x", "primary": False},
        {"value": "a@x", "type": "home"},
    ]
