"""The filter tree (RFC 7644 §3.4.2.2): typed, frozen nodes, and their canonical text.

:func:`scimcore.filters.parse_filter` builds it, :mod:`scimcore.filter_eval` evaluates it,
the SQL backend compiles it; :func:`render` turns it back into text that parses to the same
tree.
"""

from __future__ import annotations

import json
import math
from typing import TypeAlias

from attrs import field, frozen

__all__ = [
    "COMPARE_OPS",
    "ORDER_OPS",
    "SUBSTRING_OPS",
    "And",
    "AttrRef",
    "Compare",
    "Filter",
    "Not",
    "Or",
    "Present",
    "Value",
    "ValuePath",
    "render",
    "render_ref",
    "render_value",
]

#: The comparison operators (RFC 7644 §3.4.2.2 Table 3); the ordering ones; the substring ones.
COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
ORDER_OPS = frozenset({"gt", "ge", "lt", "le"})
SUBSTRING_OPS = frozenset({"co", "sw", "ew"})

#: A comparison value: a JSON string, number, boolean or ``null``.
Value: TypeAlias = str | int | float | bool | None


# --- the tree ------------------------------------------------------------------------------------


@frozen(cache_hash=True)
class AttrRef:
    """An ``attrPath`` (RFC 7644 §3.4.2.2, §3.10) as written: ``[urn ":"] name ["." sub]``."""

    urn: str | None
    name: str
    sub: str | None


def _typed(value: object) -> tuple[type, object]:
    """Equality key of a comparison value: ``1``, ``1.0`` and ``true`` are different filters."""
    return type(value), value


@frozen(cache_hash=True)
class Compare:
    """``attrPath compareOp compValue`` (RFC 7644 §3.4.2.2, Table 3); ``op`` is lowercase."""

    attr: AttrRef
    op: str
    value: str | int | float | bool | None = field(eq=_typed)


@frozen(cache_hash=True)
class Present:
    """``attrPath pr`` (RFC 7644 §3.4.2.2, Table 3)."""

    attr: AttrRef


@frozen(cache_hash=True)
class And:
    """``FILTER and FILTER`` (RFC 7644 §3.4.2.2, Table 4)."""

    left: Filter
    right: Filter


@frozen(cache_hash=True)
class Or:
    """``FILTER or FILTER`` (RFC 7644 §3.4.2.2, Table 4)."""

    left: Filter
    right: Filter


@frozen(cache_hash=True)
class Not:
    """``not (FILTER)`` (RFC 7644 §3.4.2.2, Table 4)."""

    inner: Filter


@frozen(cache_hash=True)
class ValuePath:
    """``attrPath "[" valFilter "]"`` (RFC 7644 §3.4.2.2, Table 5).

    ``attr`` has no sub-attribute; the references inside ``filter`` name sub-attributes of
    ``attr`` (no URN, no sub-attribute of their own).
    """

    attr: AttrRef
    filter: Filter


Filter: TypeAlias = Compare | Present | And | Or | Not | ValuePath


# --- rendering -----------------------------------------------------------------------------------


def render_ref(ref: AttrRef) -> str:
    """``[urn ":"] name ["." sub]`` (RFC 7644 §3.10)."""
    text = f"{ref.urn}:{ref.name}" if ref.urn is not None else ref.name
    return f"{text}.{ref.sub}" if ref.sub is not None else text


def render_value(value: Value) -> str:
    """A comparison value as filter text: JSON, with ``true``/``false``/``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} has no JSON representation")
    return json.dumps(value, ensure_ascii=False)


def render(f: Filter) -> str:
    """The canonical text of ``f`` (RFC 7644 §3.4.2.2): ``parse_filter(render(f)) == f``.

    Operators are lowercase, strings are JSON, and parentheses appear only where precedence
    (``not`` > ``and`` > ``or``, left-associative) requires them.
    """
    if isinstance(f, Compare):
        return f"{render_ref(f.attr)} {f.op} {render_value(f.value)}"
    if isinstance(f, Present):
        return f"{render_ref(f.attr)} pr"
    if isinstance(f, And):
        left = render(f.left)
        right = render(f.right)
        if isinstance(f.left, Or):
            left = f"({left})"
        if isinstance(f.right, (Or, And)):
            right = f"({right})"
        return f"{left} and {right}"
    if isinstance(f, Or):
        right = render(f.right)
        if isinstance(f.right, Or):
            right = f"({right})"
        return f"{render(f.left)} or {right}"
    if isinstance(f, Not):
        return f"not ({render(f.inner)})"
    return f"{render_ref(f.attr)}[{render(f.filter)}]"
