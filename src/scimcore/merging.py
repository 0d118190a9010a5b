"""How PATCH combines values (RFC 7644 §3.5.2): the rules for one attribute's old and new value.

Singular complex values merge sub-attribute by sub-attribute; elements of a multi-valued
attribute are the same element when their ``value`` (and ``type``) agree; at most one element
is ``primary`` (RFC 7643 §2.4); ``immutable`` values, once set, stay (RFC 7643 §7); the element
a filter of ``eq`` comparisons describes (idp-quirks Entra 6). :mod:`scimcore.patch` decides
which of these an operation applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .converter import element_key, normalize_value
from .errors import InvalidValueError, MutabilityError
from .filters import And, Compare, Filter
from .schema import MAPPING, Attribute, Mutability
from .tolerance import Tolerance

__all__ = [
    "ElementIndex",
    "append_values",
    "check_immutable",
    "designates",
    "element_key",
    "eq_element",
    "eq_names",
    "fix_primary",
    "is_empty",
    "keep_immutable",
    "normalize_complex",
    "normalize_element",
    "without_empty",
]


def is_empty(value: Any, tolerance: Tolerance) -> bool:
    """Whether ``value`` unassigns its target: ``null``, ``[]``, ``{}`` (RFC 7643 §2.5), or ``""``
    where the tolerance says so (idp-quirks Entra 8, 15)."""
    if value is None or value == [] or value == {}:
        return True
    return value == "" and tolerance.empty_string_clears


def normalize_complex(
    attr: Attribute, value: Any, where: str, tolerance: Tolerance
) -> tuple[dict[str, Any] | None, set[str]]:
    """A singular complex value and the sub-attributes it explicitly clears (null or "")."""
    clears: set[str] = set()
    if isinstance(value, MAPPING):
        kept: dict[str, Any] = {}
        for key, sub_value in value.items():
            sub = attr.sub_attribute(key) if isinstance(key, str) else None
            if sub is not None and is_empty(sub_value, tolerance):
                if sub.mutability is not Mutability.READ_ONLY:
                    clears.add(sub.name)
            else:
                kept[key] = sub_value
        value = kept
    norm = normalize_value(attr, value, where)
    return norm, clears


def normalize_element(attr: Attribute, value: Any, where: str) -> dict[str, Any] | None:
    """One element of a multi-valued complex attribute."""
    items = normalize_value(attr, value, where)
    if items is None:
        return None
    if len(items) != 1:
        raise InvalidValueError(f"{where}: expected one value (an object), got {len(items)}")
    element: dict[str, Any] = items[0]
    return element


def eq_element(f: Filter, attr: Attribute) -> dict[str, Any] | None:
    """The element a conjunction of ``eq`` comparisons describes, or ``None`` (Entra 6)."""
    if isinstance(f, Compare):
        sub = attr.sub_attribute(f.attr.name)
        if f.op != "eq" or sub is None or f.value is None or sub.is_complex:
            return None
        return {sub.name: normalize_value(sub, f.value, f"{attr.name}.{sub.name}")}
    if isinstance(f, And):
        left, right = eq_element(f.left, attr), eq_element(f.right, attr)
        if left is None or right is None:
            return None
        if any(k in left and left[k] != v for k, v in right.items()):
            return None  # contradictory: a eq 1 and a eq 2
        return {**left, **right}
    return None


def eq_names(f: Filter, attr: Attribute) -> set[str]:
    """The sub-attributes the filter compares with ``eq`` in its top-level conjunction."""
    if isinstance(f, Compare) and f.op == "eq":
        sub = attr.sub_attribute(f.attr.name)
        return {sub.name} if sub is not None else set()
    if isinstance(f, And):
        return eq_names(f.left, attr) | eq_names(f.right, attr)
    return set()


def keep_immutable(attr: Attribute, sub: Attribute, element: Any, new: Any) -> None:
    """An ``immutable`` sub-attribute of an element (RFC 7643 §7) that has a value stays."""
    if sub.mutability is not Mutability.IMMUTABLE or not isinstance(element, dict):
        return
    old = element.get(sub.name)
    if old is not None and old != new:
        raise MutabilityError(
            f"'{attr.name}.{sub.name}' is immutable (RFC 7643 §7): it already has a value that "
            "PATCH cannot change"
        )


def fix_primary(attr: Attribute, items: list[Any], touched: list[Any]) -> None:
    """At most one ``primary: true`` (RFC 7643 §2.4); a newly set primary wins."""
    if attr.sub_attribute("primary") is None:
        return
    fresh = [e for e in touched if isinstance(e, dict) and e.get("primary") is True]
    if len(fresh) > 1:
        raise InvalidValueError(
            f"{attr.name}: at most one value may have primary true (RFC 7643 §2.4), "
            f"this operation sets {len(fresh)}"
        )
    if fresh:
        winner = fresh[0]
        for i, e in enumerate(items):
            if e is not winner and isinstance(e, dict) and e.get("primary") is True:
                items[i] = {**e, "primary": False}


def _same_element(old: Any, new: Mapping[str, Any]) -> bool:
    if "value" in new:
        return (
            isinstance(old, dict)
            and old.get("value") == new["value"]
            and ("type" not in new or old.get("type") == new["type"])
        )
    return bool(old == new)


def append_values(attr: Attribute, items: list[Any], new: list[Any]) -> list[Any]:
    """Add ``new`` values to ``items`` (in place), merging same elements; returns the touched."""
    touched: list[Any] = []
    for value in new:
        if attr.is_complex:
            for i, old in enumerate(items):
                if _same_element(old, value):
                    merged = {**old, **value}
                    items[i] = merged
                    touched.append(merged)
                    break
            else:
                items.append(value)
                touched.append(value)
        elif value not in items:
            items.append(value)
    return touched


def designates(element: Any, pattern: Any) -> bool:
    """Whether ``pattern`` (an item of a remove ``value``) designates ``element``."""
    if isinstance(pattern, dict) and isinstance(element, dict):
        return all(element.get(k) == v for k, v in pattern.items())
    return bool(element == pattern)


def without_empty(items: list[Any]) -> list[Any] | None:
    """``items`` without the elements left empty (``None``: none left, the attribute goes)."""
    kept = [e for e in items if e != {}]
    return kept or None


def check_immutable(attr: Attribute, before: Any, after: Any) -> None:
    """Refuse a change to an ``immutable`` attribute, or to an ``immutable`` sub-attribute of
    a singular complex one, that already had a value (RFC 7643 §7)."""
    if attr.mutability is Mutability.IMMUTABLE:
        if before is not None and after != before:
            raise MutabilityError(
                f"{attr.name!r} is immutable (RFC 7643 §7): it already has a value that PATCH "
                "cannot change"
            )
        return
    if attr.multi_valued or not isinstance(before, dict):
        return
    after_map = after if isinstance(after, dict) else {}
    for s in attr.sub_attributes:
        if (
            s.mutability is Mutability.IMMUTABLE
            and s.name in before
            and after_map.get(s.name) != before[s.name]
        ):
            raise MutabilityError(
                f"'{attr.name}.{s.name}' is immutable (RFC 7643 §7): it already has a value "
                "that PATCH cannot change"
            )


# --- hashed element lookups (linear-time PATCH, issue #22) ---------------------------------------


class ElementIndex:
    """The elements of one multi-valued attribute by the keys PATCH matches them on, kept up to
    date while values are appended, so that ``n`` operations on one attribute cost ``O(n +
    its size)`` instead of a rescan each. Same results as :func:`append_values` and
    :func:`fix_primary` (which remain for values that cannot be hashed).

    ``items`` is the document's own list and is changed in place."""

    def __init__(self, attr: Attribute, items: list[Any]) -> None:
        self.attr = attr
        self.items = items
        self._by_value: dict[Any, int] = {}  # value -> first position
        self._by_value_type: dict[tuple[Any, Any], int] = {}  # (value, type) -> first position
        self._whole: dict[Any, set[int]] = {}  # element key -> positions
        self._primaries: set[int] = set()
        self._has_primary = attr.sub_attribute("primary") is not None
        for i, e in enumerate(items):
            self._enter(i, e)

    @staticmethod
    def check_hashable(values: list[Any]) -> None:
        """Raise ``TypeError`` unless every key :meth:`append` takes of ``values`` hashes
        (checked before anything changes)."""
        for v in values:
            element_key(v)
            if isinstance(v, dict) and "value" in v:
                hash((v["value"], v.get("type")))

    def _enter(self, i: int, e: Any) -> None:
        self._whole.setdefault(element_key(e), set()).add(i)
        if isinstance(e, dict):
            if "value" in e:
                self._by_value.setdefault(e["value"], i)
                self._by_value_type.setdefault((e["value"], e.get("type")), i)
            if e.get("primary") is True:
                self._primaries.add(i)

    def _replace(self, i: int, new: Any) -> None:
        """Element ``i`` becomes ``new`` (same ``value`` and ``type``: a merge)."""
        old = self.items[i]
        positions = self._whole[element_key(old)]
        positions.discard(i)
        self._primaries.discard(i)
        self.items[i] = new
        self._whole.setdefault(element_key(new), set()).add(i)
        if isinstance(new, dict) and new.get("primary") is True:
            self._primaries.add(i)

    def _find(self, new: Any) -> int | None:
        """The first element ``new`` is the same element as (``_same_element``)."""
        if isinstance(new, dict) and "value" in new:
            if "type" in new:
                return self._by_value_type.get((new["value"], new["type"]))
            return self._by_value.get(new["value"])
        positions = self._whole.get(element_key(new))
        return min(positions) if positions else None

    def append(self, new: list[Any]) -> list[int]:
        """:func:`append_values`, by hashing; returns the positions touched."""
        touched: list[int] = []
        for value in new:
            if self.attr.is_complex:
                i = self._find(value)
                if i is None:
                    i = len(self.items)
                    self.items.append(value)
                    self._enter(i, value)
                else:
                    self._replace(i, {**self.items[i], **value})
                touched.append(i)
            elif not self._whole.get(element_key(value)):
                self.items.append(value)
                self._enter(len(self.items) - 1, value)
        return touched

    def fix_primary(self, touched: list[int]) -> None:
        """:func:`fix_primary`: at most one ``primary: true``, a newly set one wins."""
        if not self._has_primary:
            return
        fresh = sorted({i for i in touched if i in self._primaries})
        if len(fresh) > 1:
            raise InvalidValueError(
                f"{self.attr.name}: at most one value may have primary true (RFC 7643 §2.4), "
                f"this operation sets {len(fresh)}"
            )
        if fresh:
            for i in sorted(self._primaries - {fresh[0]}):
                self._replace(i, {**self.items[i], "primary": False})
