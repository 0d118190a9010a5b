"""Request bodies to canonical documents, and documents back to responses.

A *canonical document* is a plain ``dict`` in which:

- top-level core and common attributes use the names declared in :mod:`scimcore.schema`
  (``userName``, ``name``, ``emails``, ``externalId``, ``id``, ``meta``...);
- extension attributes live in a nested dict under the extension's URN as ``Schema.id`` spells it;
- an absent attribute is an absent key: never ``None``, never ``[]`` or ``{}``;
- booleans are ``bool``; complex values are dicts; multi-valued values are lists.

Every case-insensitive name match, every IdP tolerance that concerns the shape of a value
(``"True"``/``"False"`` strings, ``manager`` as a plain string, JSON-encoded role strings,
dotted and URN-qualified keys, ``null`` values) and the output projection (``returned``,
``attributes``/``excludedAttributes``) live here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidSyntaxError, InvalidValueError
from .paths import PatchPath, store_at, value_at, walk_members
from .schema import (
    COMMON_ATTRIBUTES,
    MAPPING,
    Attribute,
    AttrType,
    Mutability,
    Returned,
    SchemaRegistry,
    parse_datetime,
    storable_text,
)

__all__ = [
    "AttributeSelection",
    "coerce_bool",
    "element_key",
    "normalize_resource",
    "normalize_value",
    "project",
    "resource_schemas",
]

_TRUE = "true"
_FALSE = "false"

# Enum members as module constants: reading one off its class costs a lookup through the
# Enum metaclass each time, and these are read for every value of every write.
_BOOLEAN = AttrType.BOOLEAN
_INTEGER = AttrType.INTEGER
_DECIMAL = AttrType.DECIMAL
_DATETIME = AttrType.DATETIME
_READ_ONLY = Mutability.READ_ONLY


class _Invalid(Exception):
    """What is wrong with a value, raised where its place in the document is not known.

    Each level adds its part of the place on the way up (``.primary``, ``[0]``) and the
    public functions turn it into an :class:`InvalidValueError` naming the whole place
    (``emails[0].primary: expected a boolean``): places are formatted for refused values only,
    not for each value that passes."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.parts: list[str] = []  # innermost first

    def at(self, part: str) -> None:
        self.parts.append(part)

    def error(self, where: str) -> InvalidValueError:
        return InvalidValueError(f"{where}{''.join(reversed(self.parts))}: {self.problem}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == _TRUE:
            return True
        if lowered == _FALSE:
            return False
    raise _Invalid(f"expected a boolean, got {json.dumps(value)[:80]}")


def coerce_bool(value: Any, where: str) -> bool:
    """A JSON boolean, or Entra's ``"True"``/``"False"`` strings (idp-quirks Entra 3)."""
    try:
        return _bool(value)
    except _Invalid as exc:
        raise exc.error(where) from None


def _scalar(attr: Attribute, value: Any) -> Any:
    t = attr.type
    if t is _BOOLEAN:
        return _bool(value)
    if t is _INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise _Invalid("expected an integer")
        return value
    if t is _DECIMAL:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid("expected a number")
        return value
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {type(value).__name__.replace('dict', 'object')}")
    if not storable_text(value):
        raise _Invalid("a string may not contain U+0000 or a lone UTF-16 surrogate")
    if t is _DATETIME and parse_datetime(value) is None:
        raise _Invalid(f"{value[:60]!r} is not an xsd:dateTime")
    return value


def _complex(attr: Attribute, value: Any, keep_read_only: bool) -> dict[str, Any]:
    if isinstance(value, str):
        # Entra sends manager as a plain id string (SCIM-SDK #541); role items may arrive as
        # JSON-encoded strings (MS-MAP, AppRoleAssignmentsComplex).
        text = value.strip()
        if not text:
            return {}  # "" is unassigned (MS-VAL clears the manager with an empty value)
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                raise _Invalid("invalid JSON object in a string") from None
        elif attr.sub_attribute("value") is not None:
            value = {"value": value}
    if not isinstance(value, MAPPING):
        raise _Invalid("expected a complex value (a JSON object)")
    out: dict[str, Any] = {}
    for key, sub_value in value.items():
        sub = attr.sub_attribute(key)
        if sub is None or sub_value is None:
            continue  # unknown sub-attributes and nulls are tolerated and dropped
        if sub.mutability is _READ_ONLY and not keep_read_only:
            continue
        try:
            out[sub.name] = _scalar(sub, sub_value)
        except _Invalid as exc:
            exc.at(f".{sub.name}")
            raise
    return out


def element_key(element: Any) -> Any:
    """A hashable key equal for equal values (``==``) of a multi-valued attribute, or raises
    ``TypeError``: a scalar is its own key, an object the frozen set of its members."""
    if isinstance(element, dict):
        return frozenset(element.items())
    hash(element)
    return element


def _normalize(attr: Attribute, value: Any, keep_read_only: bool) -> Any:
    if value is None:
        return None
    if attr.multi_valued:
        items = value if isinstance(value, list) else [value]
        out: list[Any] = []
        seen: set[Any] = set()  # the values' keys: duplicates found by hashing, not rescanning
        complex_items = attr.is_complex
        for i, item in enumerate(items):
            if item is None:
                continue
            try:
                v = _complex(attr, item, keep_read_only) if complex_items else _scalar(attr, item)
            except _Invalid as exc:
                exc.at(f"[{i}]")
                raise
            if v == {}:
                continue
            try:
                key = element_key(v)
                if key in seen:
                    continue
                seen.add(key)
            except TypeError:  # not hashable (never for a declared attribute): compare
                if v in out:
                    continue
            out.append(v)
        return out or None
    if attr.is_complex:
        return _complex(attr, value, keep_read_only) or None
    return _scalar(attr, value)


def normalize_value(
    attr: Attribute, value: Any, where: str | None = None, *, keep_read_only: bool = False
) -> Any:
    """Validate ``value`` against ``attr`` and return its canonical form.

    Returns ``None`` when the value is empty (``null``, ``[]``, ``{}``, an object of unknown
    keys only): the attribute is then absent. Raises :class:`InvalidValueError` on a type
    mismatch (RFC 7644 §3.12 ``invalidValue``), naming the value's place from ``where``
    (default: the attribute's name).
    """
    try:
        return _normalize(attr, value, keep_read_only)
    except _Invalid as exc:
        raise exc.error(where or attr.name) from None


def _set(doc: dict[str, Any], p: PatchPath, value: Any) -> None:
    """Place one member's value at ``p``: a singular complex value merges into what an
    earlier member of the same body set (``name`` then ``name.givenName``)."""
    attr = p.attribute
    if p.sub_attribute is not None:  # a dotted key such as "name.givenName" (idp-quirks Entra 5)
        value = {p.sub_attribute.name: value}  # a refusal names "name.givenName"
    canonical = normalize_value(attr, value, attr.name)
    if canonical is not None and attr.is_complex and not attr.multi_valued:
        current = value_at(doc, p)
        if isinstance(current, dict):
            canonical = {**current, **canonical}
    store_at(doc, p, canonical)


def normalize_resource(body: Any, registry: SchemaRegistry) -> dict[str, Any]:
    """Turn a POST or PUT body into a canonical document (without ``id``/``meta``).

    Read-only attributes (``id``, ``meta``, ``groups``) are ignored (RFC 7643 §3.5.1) and
    ``schemas`` is recomputed on output. ``password`` is validated and dropped: scimcore never
    stores or returns it (RFC 7643 §4.1.1, ``returned: never``). Raises
    :class:`InvalidSyntaxError` when the body is not an object and :class:`InvalidValueError`
    when a value has the wrong type or a required string (``userName``, a group's
    ``displayName``) is missing.
    """
    if not isinstance(body, MAPPING):
        raise InvalidSyntaxError("the request body must be a JSON object")
    doc: dict[str, Any] = {}
    for target, value in walk_members(body, registry):
        if isinstance(target, PatchPath):
            _set(doc, target, value)
        elif value is not None:  # an extension URN whose value is not an object
            raise InvalidValueError(f"{target.id}: expected a JSON object")
    doc.pop("password", None)
    for attr in registry.required_strings:  # userName of a User, displayName of a Group
        if not isinstance(doc.get(attr), str) or not doc[attr].strip():
            raise InvalidValueError(f"{attr} is required (RFC 7643 §2.2)")
    return doc


def resource_schemas(doc: Mapping[str, Any], registry: SchemaRegistry) -> list[str]:
    """The ``schemas`` member: the core schema plus each extension present in ``doc``."""
    return [registry.core.id, *(s.id for s in registry.extensions if s.id in doc)]


class AttributeSelection:
    """The ``attributes`` / ``excludedAttributes`` query parameters (RFC 7644 §3.4.2.5)."""

    def __init__(
        self,
        registry: SchemaRegistry,
        attributes: Iterable[str] = (),
        excluded: Iterable[str] = (),
    ) -> None:
        self.include = self._resolve(registry, attributes)
        self.exclude = self._resolve(registry, excluded)

    @staticmethod
    def _resolve(registry: SchemaRegistry, names: Iterable[str]) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for raw in names:
            name = raw.strip()
            if not name:
                continue
            schema, rest = registry.split_urn(name)
            if schema is not None and rest == "":
                out.add((schema.id,))
                continue
            top, _, sub = rest.partition(".")
            try:
                owner, attr = registry.top_level(top, schema)
            except KeyError:
                continue  # unknown names select nothing
            prefix: tuple[str, ...] = (
                (owner.id,) if owner is not None and owner is not registry.core else ()
            )
            path = (*prefix, attr.name)
            if sub:
                s = attr.sub_attribute(sub)
                if s is None:
                    continue
                path = (*path, s.name)
            out.add(path)
        return out

    @property
    def empty(self) -> bool:
        return not self.include and not self.exclude


def _keep(
    attr: Attribute, path: tuple[str, ...], selection: AttributeSelection | None
) -> bool | None:
    """True: keep whole; False: drop; None: descend into sub-attributes."""
    if attr.returned is Returned.NEVER:
        return False
    if attr.returned is Returned.ALWAYS:
        return True
    if selection is None or selection.empty:
        return attr.returned is not Returned.REQUEST
    if selection.include:
        if any(path[: len(p)] == p for p in selection.include):
            return True
        if attr.is_complex and any(p[: len(path)] == path for p in selection.include):
            return None
        return False
    if path in selection.exclude:
        return False
    if attr.is_complex and any(p[: len(path)] == path for p in selection.exclude):
        return None
    return attr.returned is not Returned.REQUEST


def _project_complex(
    attr: Attribute, value: Any, path: tuple[str, ...], selection: AttributeSelection | None
) -> Any:
    def one(item: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for k, v in item.items():
            sub = attr.sub_attribute(k)
            if sub is not None and _keep(sub, (*path, sub.name), selection) is not False:
                out[k] = v
        return out

    if isinstance(value, list):
        items = [one(v) for v in value if isinstance(v, MAPPING)]
        return [i for i in items if i] or None
    return one(value) or None


def _project_schema(
    source: Mapping[str, Any],
    attributes: Iterable[Attribute],
    prefix: tuple[str, ...],
    selection: AttributeSelection | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in attributes:
        if attr.name not in source:
            continue
        path = (*prefix, attr.name)
        keep = _keep(attr, path, selection)
        if keep is True:
            out[attr.name] = source[attr.name]
        elif keep is None:
            value = _project_complex(attr, source[attr.name], path, selection)
            if value is not None:
                out[attr.name] = value
    return out


def _project_default(doc: Mapping[str, Any], registry: SchemaRegistry) -> dict[str, Any]:
    """:func:`project` without attribute selection: the hot path of every response."""
    view = registry.default_view()
    core = view[None]
    out: dict[str, Any] = {"schemas": None}
    if "id" in doc:
        out["id"] = doc["id"]
    present = set()
    for key, value in doc.items():
        if key in core:
            out[key] = value
        elif key in view and isinstance(value, MAPPING):
            names = view[key]
            section = {k: v for k, v in value.items() if k in names}
            if section:
                out[key] = section
                present.add(key)
    out["schemas"] = [registry.core.id, *(s.id for s in registry.extensions if s.id in present)]
    return out


def project(
    doc: Mapping[str, Any],
    registry: SchemaRegistry,
    selection: AttributeSelection | None = None,
) -> dict[str, Any]:
    """The response form of ``doc``: ``returned`` rules and attribute selection applied.

    ``id`` and ``schemas`` are always returned; ``password`` never (RFC 7643 §7).
    """
    if selection is None or selection.empty:
        return _project_default(doc, registry)
    out: dict[str, Any] = {"schemas": resource_schemas(doc, registry)}
    common = [a for a in COMMON_ATTRIBUTES if a.name != "schemas"]
    out.update(_project_schema(doc, common, (), selection))
    out.update(_project_schema(doc, registry.core.attributes, (), selection))
    for ext in registry.extensions:
        section = doc.get(ext.id)
        if not isinstance(section, MAPPING):
            continue
        if selection is not None and not selection.empty:
            whole = _keep(Attribute(name=ext.id, type=AttrType.COMPLEX), (ext.id,), selection)
            if whole is False:
                continue
            projected = (
                dict(section)
                if whole is True
                else _project_schema(section, ext.attributes, (ext.id,), selection)
            )
        else:
            projected = _project_schema(section, ext.attributes, (ext.id,), None)
        if projected:
            out[ext.id] = projected
    out["schemas"] = resource_schemas(out, registry)
    return out
