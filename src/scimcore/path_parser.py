"""PATCH path text (RFC 7644 §3.5.2, §3.10) parsed against the schemas into a :class:`PatchPath`.

:func:`parse_path` reads ``attr``, ``attr.sub``, ``urn:...:attr``, ``urn:...:attr.sub``,
``attr[valFilter]`` and ``attr[valFilter].sub``; names are case-insensitive (RFC 7643 §2.1).
A value filter is parsed by :func:`scimcore.filters.parse_filter`, its ``"True"``/``"False"``
strings read as booleans where the tolerance allows (idp-quirks Entra 17), and every reference
in it resolved and type-checked once, here. Parsed paths are cached per registry.
"""

from __future__ import annotations

import re

import attrs

from .converter import coerce_bool
from .errors import InvalidFilterError, InvalidPathError, InvalidValueError
from .filters import And, Compare, Filter, Not, Or, ValuePath, matches_element, parse_filter
from .paths import PatchPath, resolve_top
from .schema import Attribute, AttrType, CacheSlot, SchemaRegistry
from .tolerance import TOLERANT, Tolerance

__all__ = ["parse_path"]


_NAME = re.compile(r"\$?[A-Za-z][A-Za-z0-9_-]*")


def _closing_bracket(text: str, start: int) -> int:
    """Index of the ``]`` closing the ``[`` at ``start``, skipping JSON strings; -1 if none."""
    in_string = escaped = False
    for i in range(start + 1, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "]":
            return i
    return -1


def _booleans_in_filter(f: Filter, attribute: Attribute) -> Filter:
    """Rewrite ``"True"``/``"False"`` compared with boolean sub-attributes (Entra 17)."""
    if isinstance(f, Compare):
        sub = attribute.sub_attribute(f.attr.name)
        if sub is not None and sub.type is AttrType.BOOLEAN and isinstance(f.value, str):
            try:
                return attrs.evolve(f, value=coerce_bool(f.value, f.attr.name))
            except InvalidValueError:
                return f
        return f
    if isinstance(f, (And, Or)):
        left = _booleans_in_filter(f.left, attribute)
        right = _booleans_in_filter(f.right, attribute)
        if left is f.left and right is f.right:
            return f
        return attrs.evolve(f, left=left, right=right)
    if isinstance(f, Not):
        inner = _booleans_in_filter(f.inner, attribute)
        return f if inner is f.inner else Not(inner)
    return f


#: Parsed paths by text and tolerance; parsed value filters by text (on each registry).
_PATHS: CacheSlot[tuple[str, Tolerance], PatchPath] = CacheSlot("path_parser.paths", 1024)
_VALUE_FILTERS: CacheSlot[str, Filter] = CacheSlot("path_parser.value_filters", 1024)


def _value_filter(
    text: str, attribute: Attribute, tolerance: Tolerance, path: str, registry: SchemaRegistry
) -> Filter:
    if not text.strip():
        raise InvalidPathError(f"path {path!r}: the value filter inside [...] is empty")
    try:
        f = registry.cache(_VALUE_FILTERS).get_or_make(text, parse_filter)
        if isinstance(f, ValuePath):
            raise InvalidPathError(f"path {path!r}: value filters cannot be nested")
        if tolerance.boolean_strings_in_filters:
            f = _booleans_in_filter(f, attribute)
        # resolves and type-checks every reference once
        matches_element(f, {}, attribute, registry=registry)
    except InvalidFilterError as exc:
        raise InvalidPathError(f"path {path!r}: invalid value filter: {exc.detail}") from None
    return f


def parse_path(
    text: str, registry: SchemaRegistry, *, tolerance: Tolerance = TOLERANT
) -> PatchPath:
    """Parse a PATCH ``path`` (RFC 7644 §3.5.2, §3.10) against the schemas of ``registry``.

    Raises :class:`InvalidPathError` for an empty or malformed path, an unknown schema URN,
    attribute or sub-attribute, a value filter on an attribute that is not multi-valued and
    complex, and an invalid value filter.
    """
    if not isinstance(text, str):
        return _parse_path(text, registry, tolerance)  # raises InvalidPathError
    key = (text, tolerance)
    return registry.cache(_PATHS).get_or_make(key, lambda _: _parse_path(text, registry, tolerance))


def _parse_path(text: str, registry: SchemaRegistry, tolerance: Tolerance) -> PatchPath:
    if not isinstance(text, str) or not text.strip():
        raise InvalidPathError("the path is empty")
    raw = text.strip()
    schema, rest = registry.split_urn(raw)
    if schema is not None and rest == "":
        raise InvalidPathError(
            f"path {raw!r} names the schema {schema.id}, not an attribute; use "
            f"'{schema.id}:<attribute>' or a path-less operation whose value has the URN as key"
        )
    bracket = rest.find("[")
    head = rest if bracket < 0 else rest[:bracket]
    if schema is None and ":" in head:
        urn = head.rpartition(":")[0]
        known = ", ".join(s.id for s in registry.schemas)
        raise InvalidPathError(f"path {raw!r}: unknown schema URN {urn!r} (known: {known})")
    filter_text: str | None = None
    if bracket < 0:
        name, dot, sub_name = rest.partition(".")
        if dot and "." in sub_name:
            raise InvalidPathError(
                f"path {raw!r}: too many '.'; a path is attribute[.subAttribute]"
            )
    else:
        name = head
        close = _closing_bracket(rest, bracket)
        if close < 0:
            raise InvalidPathError(f"path {raw!r}: '[' without a matching ']'")
        filter_text = rest[bracket + 1 : close]
        tail = rest[close + 1 :]
        dot = "." if tail else ""
        if tail and not tail.startswith("."):
            raise InvalidPathError(
                f"path {raw!r}: expected '.subAttribute' or the end after ']', got {tail!r}"
            )
        sub_name = tail[1:]
    if not _NAME.fullmatch(name):
        raise InvalidPathError(f"path {raw!r}: {name!r} is not a valid attribute name")
    if dot and not _NAME.fullmatch(sub_name):
        raise InvalidPathError(f"path {raw!r}: {sub_name!r} is not a valid sub-attribute name")
    resolved = resolve_top(
        name, schema, registry, unqualified_extension_names=tolerance.unqualified_extension_names
    )
    if resolved is None:
        where = f" in schema {schema.id}" if schema is not None else ""
        raise InvalidPathError(f"path {raw!r}: unknown attribute {name!r}{where}")
    owner, attr = resolved
    section = owner.id if owner is not None and owner is not registry.core else None
    value_filter: Filter | None = None
    if filter_text is not None:
        if not (attr.multi_valued and attr.is_complex):
            raise InvalidPathError(
                f"path {raw!r}: a value filter [...] needs a multi-valued complex attribute; "
                f"{attr.name!r} is not"
            )
        value_filter = _value_filter(filter_text, attr, tolerance, raw, registry)
    sub: Attribute | None = None
    if dot:
        if not attr.is_complex:
            raise InvalidPathError(
                f"path {raw!r}: {attr.name!r} is not complex and has no sub-attributes"
            )
        sub = attr.sub_attribute(sub_name)
        if sub is None:
            known = ", ".join(s.name for s in attr.sub_attributes)
            raise InvalidPathError(
                f"path {raw!r}: {attr.name!r} has no sub-attribute {sub_name!r} (known: {known})"
            )
    return PatchPath(owner, attr, value_filter, sub, section, raw)
