"""PATCH (RFC 7644 §3.5.2) on a canonical document (see :mod:`scimcore.converter`).

:func:`apply_patch` takes the whole request body, applies its ``Operations`` in order to a copy
of the document and returns the copy; the input is never mutated. It is atomic: if any
operation fails, the error propagates and nothing is applied (idp-quirks Entra 4). The
canonical invariants hold after every operation: an absent attribute is an absent key (never
``None``, ``[]`` or ``{}``), an extension section whose last attribute goes disappears, keys use
the schema's spelling, and at most one value of a multi-valued attribute is ``primary``
(RFC 7643 §2.4).

Paths (RFC 7644 §3.5.2, §3.10) are parsed by :func:`parse_path`: ``attr``, ``attr.sub``,
``urn:...:attr``, ``urn:...:attr.sub``, ``attr[valFilter]`` and ``attr[valFilter].sub``; names
are case-insensitive (RFC 7643 §2.1). Value filters are evaluated by
:func:`scimcore.filters.matches_element`.

Decisions where RFC 7644 is silent or loose:

* An unknown or missing ``op`` and a malformed body are ``invalidSyntax`` (the body does not
  conform to the PatchOp schema, RFC 7644 §3.12 Table 9). ``add``/``replace`` without a
  ``value`` member are ``invalidValue`` ("a required value was missing").
* ``remove`` without ``path`` is ``noTarget`` (RFC 7644 §3.5.2.2).
* Read-only attributes (``id``, ``meta``, ``meta.*``, ``groups``, ``manager.displayName``)
  named by an explicit ``path`` are ``mutability`` (RFC 7644 §3.5.2: operations "MUST be
  compatible with the attribute's mutability"). Inside a path-less value object they, unknown
  attribute names and ``schemas`` are silently ignored, as for PUT (RFC 7644 §3.5.1; Okta 10
  echoes ``id``). ``schemas`` is derived from the document, so a path naming it is a no-op.
* ``immutable`` attributes (RFC 7643 §7) may be set when absent; changing or removing a
  present value is ``mutability``. Checked per attribute, per sub-attribute of a singular
  complex attribute, and per element for ``attr[filter].sub`` / ``attr.sub`` paths (adding or
  removing whole elements of a multi-valued attribute is allowed).
* A patch that removes a ``required`` attribute (``userName``) that was present is
  ``invalidValue`` (Table 9: "a required value was missing"); checked on the final document so
  ``remove`` then ``add`` of the same attribute in one request works.
* ``password`` is validated and dropped, as :func:`scimcore.converter.normalize_resource` does.
* ``null`` is "unassigned" (RFC 7643 §2.5): ``add``/``replace`` with ``null``, ``[]``, ``{}``
  (and, tolerated, ``""``) for a singular target removes it, never an error if absent; ``add``
  of an empty list to a multi-valued attribute adds nothing.
* ``add``/``replace`` on a singular complex attribute merge sub-attributes (RFC 7644
  §3.5.2.1, §3.5.2.3: "Sub-attributes that are not specified ... are left unchanged"); a
  sub-attribute given as ``null``/``""`` is removed. Exception: when both the old and the new
  value carry a different ``value`` (e.g. a new ``manager``), the new one replaces the old, so
  a stale ``$ref``/``displayName`` does not survive.
* ``add`` to a multi-valued complex attribute appends; an element whose ``value`` equals an
  existing element's (and whose ``type``, if given, is the same) is merged into it instead of
  duplicated (Okta: "don't repeat a value/type pair"). Other values are deduplicated by
  equality.
* ``replace`` of ``attr[filter]`` replaces each matching element by the value, keeping the
  matching element's own values of the sub-attributes the filter compares with ``eq``, so
  ``emails[type eq "work"]`` stays a work e-mail.
* ``attr.sub`` on a multi-valued attribute (no filter) targets ``sub`` of every element;
  ``add``/``replace`` with no element creates one.
* Setting a value ``primary: true`` sets ``primary: false`` on the others; two new primaries in
  one operation are ``invalidValue`` (RFC 7643 §2.4).
* ``remove`` with a value filter that matches nothing, or with a ``value`` list none of whose
  items is present, is a no-op (idempotent retries of Okta 10 / Entra 10 group pushes). RFC 7644
  §3.12 Table 9 suggests ``noTarget``; :data:`STRICT` gives that.

IdP tolerance is on by default (:data:`TOLERANT`); every deviation from the RFC is a field of
:class:`Tolerance`, citing its item in ``idp-quirks.md``. Handled by
:func:`scimcore.converter.normalize_value` and therefore always on: ``"True"``/``"False"``
strings for booleans (Entra 3), ``manager`` as a plain id string (Entra 8), JSON-encoded
strings as items of complex multi-valued attributes (Entra 17). Always accepted because the
converter accepts them for POST/PUT too: dotted and URN-qualified keys in path-less values
(Entra 5), ``Operations`` before ``schemas`` and a missing ``schemas`` (Entra 3).

Errors raised (all :class:`scimcore.errors.SCIMError`, 400): ``invalidSyntax``,
``invalidPath``, ``invalidValue``, ``noTarget``, ``mutability``. Every detail starts with the
index, ``op`` and ``path`` of the failing operation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import attrs
from attrs import frozen

from ._json import clone
from .converter import coerce_bool, normalize_value
from .errors import (
    InvalidFilterError,
    InvalidPathError,
    InvalidSyntaxError,
    InvalidValueError,
    MutabilityError,
    NoTargetError,
    SCIMError,
)
from .filters import (
    And,
    Compare,
    Filter,
    Not,
    Or,
    ValuePath,
    matches_element,
    parse_filter,
)
from .messages import PATCH_OP_URN
from .schema import MAPPING, Attribute, AttrType, Mutability, RegistryCache, Schema, SchemaRegistry

__all__ = [
    "STRICT",
    "TOLERANT",
    "PatchPath",
    "Tolerance",
    "apply_patch",
    "parse_path",
]

# --- IdP tolerance: every deviation from RFC 7644 in one place -----------------------------------


@frozen
class Tolerance:
    """Which IdP deviations from RFC 7644 §3.5.2 :func:`apply_patch` accepts.

    Items refer to ``/work/shared/spec/idp-quirks.md``.
    """

    #: Entra 2: ``"Add"``, ``"Replace"``, ``"Remove"`` (RFC 7644 §3.5.2 spells them lowercase).
    any_case_ops: bool = True
    #: Entra 6 and 7: ``add``/``replace`` on ``attr[filter]`` or ``attr[filter].sub`` matching
    #: nothing appends an element built from the filter's ``eq`` comparisons (RFC: noTarget).
    create_on_filter_miss: bool = True
    #: Entra 10 without ``aadOptscim062020``: ``remove`` with ``path: "members"`` and a
    #: ``value`` list removes just the listed elements (RFC: remove has no value).
    remove_by_value: bool = True
    #: Okta 10 / Entra 10: ``remove`` of a filtered or listed element that is already gone is a
    #: no-op, so retried group pushes succeed (RFC 7644 Table 9 suggests noTarget).
    remove_miss_is_noop: bool = True
    #: Entra 8 (MS-VAL "Replace with empty") and 15: ``""`` clears a singular target, like
    #: ``null`` (RFC 7643 §2.5); strictly, ``""`` would be stored.
    empty_string_clears: bool = True
    #: Entra 8 (MS-TUT Example 5): ``"path": "manager", "value": [{"value": ..}]``, a one-item
    #: list for a singular attribute, is unwrapped.
    unwrap_singleton_list: bool = True
    #: Entra 8 (MS-TUT Example 5): ``"path": "manager"`` without the enterprise URN resolves to
    #: an extension attribute when exactly one extension schema declares that name.
    unqualified_extension_names: bool = True
    #: Entra 17: ``roles[primary eq "True"]``: the strings ``"True"``/``"False"`` compared with a
    #: boolean sub-attribute in a path's value filter mean ``true``/``false``.
    boolean_strings_in_filters: bool = True
    #: The body's member names matched in any case (``operations``, ``Op``, ``Path``...).
    any_case_members: bool = True


#: The default: everything Entra ID and Okta are documented to send is accepted.
TOLERANT: Final = Tolerance()
#: RFC 7644 as written (the converter's value coercions still apply).
STRICT: Final = Tolerance(
    any_case_ops=False,
    create_on_filter_miss=False,
    remove_by_value=False,
    remove_miss_is_noop=False,
    empty_string_clears=False,
    unwrap_singleton_list=False,
    unqualified_extension_names=False,
    boolean_strings_in_filters=False,
    any_case_members=False,
)


# --- paths ---------------------------------------------------------------------------------------


@frozen
class PatchPath:
    """A parsed PATCH ``path`` (RFC 7644 §3.5.2, ``PATH = attrPath / valuePath [subAttr]``).

    ``schema`` owns the attribute (``None`` for the common attributes of RFC 7643 §3.1);
    ``section`` is the document key holding it: the extension URN, or ``None`` at top level.
    """

    schema: Schema | None
    attribute: Attribute
    value_filter: Filter | None = None
    sub_attribute: Attribute | None = None
    section: str | None = None
    text: str = ""

    def __str__(self) -> str:
        return self.text


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


def _resolve_top(
    name: str, schema: Schema | None, registry: SchemaRegistry, tolerance: Tolerance
) -> tuple[Schema | None, Attribute] | None:
    try:
        return registry.top_level(name, schema)
    except KeyError:
        pass
    if schema is None and tolerance.unqualified_extension_names:
        found = [(s, a) for s in registry.extensions if (a := s.attribute(name)) is not None]
        if len(found) == 1:
            return found[0]
    return None


@lru_cache(maxsize=1024)
def _parse_filter_cached(text: str) -> Filter:
    return parse_filter(text)


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


def _value_filter(text: str, attribute: Attribute, tolerance: Tolerance, path: str) -> Filter:
    if not text.strip():
        raise InvalidPathError(f"path {path!r}: the value filter inside [...] is empty")
    try:
        f = _parse_filter_cached(text)
        if isinstance(f, ValuePath):
            raise InvalidPathError(f"path {path!r}: value filters cannot be nested")
        if tolerance.boolean_strings_in_filters:
            f = _booleans_in_filter(f, attribute)
        matches_element(f, {}, attribute)  # resolves and type-checks every reference once
    except InvalidFilterError as exc:
        raise InvalidPathError(f"path {path!r}: invalid value filter: {exc.detail}") from None
    return f


# Parsed paths keyed by text and tolerance, per registry (see RegistryCache).
_path_cache: RegistryCache[tuple[str, Tolerance], PatchPath] = RegistryCache(1024)


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
    cached = _path_cache.get(key, registry)
    if cached is not None:
        return cached
    return _path_cache.put(key, registry, _parse_path(text, registry, tolerance))


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
    resolved = _resolve_top(name, schema, registry, tolerance)
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
        value_filter = _value_filter(filter_text, attr, tolerance, raw)
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


# --- document helpers ----------------------------------------------------------------------------

_MISSING: Final = object()
_OPS: Final = ("add", "remove", "replace")


def _current(doc: dict[str, Any], p: PatchPath) -> Any:
    holder = doc if p.section is None else doc.get(p.section)
    return holder.get(p.attribute.name) if isinstance(holder, dict) else None


def _store(doc: dict[str, Any], p: PatchPath, value: Any) -> None:
    """Set (or, for ``None``, remove) the attribute of ``p``, keeping the section invariant."""
    name = p.attribute.name
    if p.section is None:
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
        return
    section = doc.get(p.section)
    if not isinstance(section, dict):
        if value is None:
            return
        section = doc[p.section] = {}
    if value is None:
        section.pop(name, None)
        if not section:
            del doc[p.section]
    else:
        section[name] = value


def _is_empty(value: Any, tolerance: Tolerance) -> bool:
    if value is None or value == [] or value == {}:
        return True
    return value == "" and tolerance.empty_string_clears


def _where(p: PatchPath) -> str:
    return p.text or p.attribute.name


def _norm_complex(
    attr: Attribute, value: Any, where: str, tolerance: Tolerance
) -> tuple[dict[str, Any] | None, set[str]]:
    """A singular complex value and the sub-attributes it explicitly clears (null or "")."""
    clears: set[str] = set()
    if isinstance(value, MAPPING):
        kept: dict[str, Any] = {}
        for key, sub_value in value.items():
            sub = attr.sub_attribute(key) if isinstance(key, str) else None
            if sub is not None and _is_empty(sub_value, tolerance):
                if sub.mutability is not Mutability.READ_ONLY:
                    clears.add(sub.name)
            else:
                kept[key] = sub_value
        value = kept
    norm = normalize_value(attr, value, where)
    return norm, clears


def _norm_element(attr: Attribute, value: Any, where: str) -> dict[str, Any] | None:
    """One element of a multi-valued complex attribute."""
    items = normalize_value(attr, value, where)
    if items is None:
        return None
    if len(items) != 1:
        raise InvalidValueError(f"{where}: expected one value (an object), got {len(items)}")
    element: dict[str, Any] = items[0]
    return element


def _eq_element(f: Filter, attr: Attribute) -> dict[str, Any] | None:
    """The element a conjunction of ``eq`` comparisons describes, or ``None`` (Entra 6)."""
    if isinstance(f, Compare):
        sub = attr.sub_attribute(f.attr.name)
        if f.op != "eq" or sub is None or f.value is None or sub.is_complex:
            return None
        return {sub.name: normalize_value(sub, f.value, f"{attr.name}.{sub.name}")}
    if isinstance(f, And):
        left, right = _eq_element(f.left, attr), _eq_element(f.right, attr)
        if left is None or right is None:
            return None
        if any(k in left and left[k] != v for k, v in right.items()):
            return None  # contradictory: a eq 1 and a eq 2
        return {**left, **right}
    return None


def _eq_names(f: Filter, attr: Attribute) -> set[str]:
    """The sub-attributes the filter compares with ``eq`` in its top-level conjunction."""
    if isinstance(f, Compare) and f.op == "eq":
        sub = attr.sub_attribute(f.attr.name)
        return {sub.name} if sub is not None else set()
    if isinstance(f, And):
        return _eq_names(f.left, attr) | _eq_names(f.right, attr)
    return set()


def _keep_immutable(attr: Attribute, sub: Attribute, element: Any, new: Any) -> None:
    """An ``immutable`` sub-attribute of an element (RFC 7643 §7) that has a value stays."""
    if sub.mutability is not Mutability.IMMUTABLE or not isinstance(element, dict):
        return
    old = element.get(sub.name)
    if old is not None and old != new:
        raise MutabilityError(
            f"'{attr.name}.{sub.name}' is immutable (RFC 7643 §7): it already has a value that "
            "PATCH cannot change"
        )


def _fix_primary(attr: Attribute, items: list[Any], touched: list[Any]) -> None:
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


def _append(attr: Attribute, items: list[Any], new: list[Any]) -> list[Any]:
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


def _contains(element: Any, pattern: Any) -> bool:
    """Whether ``pattern`` (an item of a remove ``value``) designates ``element``."""
    if isinstance(pattern, dict) and isinstance(element, dict):
        return all(element.get(k) == v for k, v in pattern.items())
    return bool(element == pattern)


def _without_empty(items: list[Any]) -> list[Any] | None:
    kept = [e for e in items if e != {}]
    return kept or None


# --- operations ----------------------------------------------------------------------------------


class _Patcher:
    """Applies operations to a working copy; one instance per :func:`apply_patch` call."""

    def __init__(self, doc: dict[str, Any], registry: SchemaRegistry, tolerance: Tolerance):
        self.doc = doc
        self.registry = registry
        self.tolerance = tolerance

    # add / replace ------------------------------------------------------------------------------

    def set(self, op: str, p: PatchPath, value: Any) -> None:
        attr, sub, flt = p.attribute, p.sub_attribute, p.value_filter
        tol = self.tolerance
        if (
            tol.unwrap_singleton_list
            and isinstance(value, list)
            and sub is None
            and not attr.multi_valued
            and len(value) <= 1
        ):
            value = value[0] if value else None
        if _is_empty(value, tol):
            if not (op == "add" and attr.multi_valued and sub is None):
                self.remove(p, _MISSING, quiet=True)
            return
        current = _current(self.doc, p)
        if flt is not None:
            new = self._set_filtered(op, p, current, value)
        elif sub is not None:
            new = self._set_sub(p, current, value)
        elif attr.multi_valued:
            items = normalize_value(attr, value, _where(p))
            if items is None:
                new = None if op == "replace" else current
            else:
                if op == "add":
                    new = list(current) if isinstance(current, list) else []
                    touched = _append(attr, new, items)
                else:
                    new = touched = items
                _fix_primary(attr, new, touched)
        elif attr.is_complex:
            norm, clears = _norm_complex(attr, value, _where(p), tol)
            base = dict(current) if isinstance(current, dict) else {}
            if norm and "value" in norm and base.get("value", norm["value"]) != norm["value"]:
                base = {}  # a different referenced resource: drop its $ref / display
            base.update(norm or {})
            for name in clears:
                base.pop(name, None)
            new = base or None
        else:
            new = normalize_value(attr, value, _where(p))
        _store(self.doc, p, new)

    def _set_sub(self, p: PatchPath, current: Any, value: Any) -> Any:
        attr, sub = p.attribute, p.sub_attribute
        assert sub is not None
        sub_value = normalize_value(sub, value, _where(p))
        if not attr.multi_valued:
            base = dict(current) if isinstance(current, dict) else {}
            base[sub.name] = sub_value
            return base
        items = list(current) if isinstance(current, list) else []
        for i, e in enumerate(items):
            if isinstance(e, dict):
                _keep_immutable(attr, sub, e, sub_value)
                items[i] = {**e, sub.name: sub_value}
        if not items:
            items = [{sub.name: sub_value}]
        if sub.name == "primary":
            _fix_primary(attr, items, items)
        return items

    def _set_filtered(self, op: str, p: PatchPath, current: Any, value: Any) -> Any:
        attr, sub, flt = p.attribute, p.sub_attribute, p.value_filter
        assert flt is not None
        items = list(current) if isinstance(current, list) else []
        touched: list[Any] = []
        if sub is not None:
            sub_value = normalize_value(sub, value, _where(p))
            for i, e in enumerate(items):
                if isinstance(e, dict) and matches_element(flt, e, attr):
                    _keep_immutable(attr, sub, e, sub_value)
                    items[i] = {**e, sub.name: sub_value}
                    touched.append(items[i])
            if not touched:
                created = self._create(p, {sub.name: sub_value})
                items.append(created)
                touched.append(created)
        else:
            element = _norm_element(attr, value, _where(p))
            if element is None:
                return current
            kept = _eq_names(flt, attr)
            for i, e in enumerate(items):
                if isinstance(e, dict) and matches_element(flt, e, attr):
                    if op == "add":
                        items[i] = {**e, **element}
                    else:
                        items[i] = {**{k: e[k] for k in kept if k in e}, **element}
                    touched.append(items[i])
            if not touched:
                created = self._create(p, element)
                items.append(created)
                touched.append(created)
        _fix_primary(attr, items, touched)
        return items

    def _create(self, p: PatchPath, content: dict[str, Any]) -> dict[str, Any]:
        """The element an ``add``/``replace`` on a filter that matches nothing creates."""
        assert p.value_filter is not None
        base = _eq_element(p.value_filter, p.attribute)
        miss = f"path {p.text!r}: the value filter matches no value of {p.attribute.name!r}"
        if base is None:
            raise NoTargetError(
                f"{miss}, and it is not a conjunction of 'eq' comparisons from which a value "
                "could be created"
            )
        if not self.tolerance.create_on_filter_miss:
            raise NoTargetError(f"{miss} (RFC 7644 §3.5.2.3)")
        return {**base, **content}

    # remove -------------------------------------------------------------------------------------

    def remove(self, p: PatchPath, value: Any, *, quiet: bool = False) -> None:
        attr, sub, flt = p.attribute, p.sub_attribute, p.value_filter
        current = _current(self.doc, p)
        strict_miss = not quiet and not self.tolerance.remove_miss_is_noop
        new: Any
        if flt is not None:
            items = current if isinstance(current, list) else []
            hit = [isinstance(e, dict) and matches_element(flt, e, attr) for e in items]
            if not any(hit):
                if strict_miss:
                    raise NoTargetError(
                        f"path {p.text!r}: the value filter matches no value of {attr.name!r}"
                    )
                return
            if sub is None:
                new = [e for e, h in zip(items, hit, strict=True) if not h]
            else:
                for e, h in zip(items, hit, strict=True):
                    if h:
                        _keep_immutable(attr, sub, e, None)
                new = [
                    {k: v for k, v in e.items() if k != sub.name} if h else e
                    for e, h in zip(items, hit, strict=True)
                ]
            new = _without_empty(new)
        elif current is None:
            return
        elif sub is not None:
            if attr.multi_valued:
                items = current if isinstance(current, list) else []
                for e in items:
                    _keep_immutable(attr, sub, e, None)
                new = _without_empty(
                    [
                        {k: v for k, v in e.items() if k != sub.name} if isinstance(e, dict) else e
                        for e in items
                    ]
                )
            elif isinstance(current, dict):
                new = {k: v for k, v in current.items() if k != sub.name} or None
            else:
                new = None
        elif (
            value is not _MISSING
            and attr.multi_valued
            and self.tolerance.remove_by_value
            and not _is_empty(value, self.tolerance)
        ):
            patterns = normalize_value(attr, value, _where(p)) or []
            items = current if isinstance(current, list) else []
            new = [e for e in items if not any(_contains(e, pat) for pat in patterns)]
            if len(new) == len(items) and strict_miss:
                raise NoTargetError(
                    f"path {p.text!r}: none of the values to remove is present in {attr.name!r}"
                )
            new = new or None
        else:
            new = None
        _store(self.doc, p, new)

    # checks -------------------------------------------------------------------------------------

    def guarded(self, op: str, p: PatchPath, value: Any) -> None:
        """Apply one operation on ``p``, enforcing ``immutable`` (RFC 7643 §7)."""
        attr = p.attribute
        immutable = attr.mutability is Mutability.IMMUTABLE or any(
            s.mutability is Mutability.IMMUTABLE for s in attr.sub_attributes
        )
        before = clone(_current(self.doc, p)) if immutable else None
        if op == "remove":
            self.remove(p, value)
        else:
            self.set(op, p, value)
        if immutable:
            _check_immutable(attr, before, _current(self.doc, p))

    def explicit(self, op: str, p: PatchPath, value: Any) -> None:
        """An operation with a ``path``: read-only targets are errors."""
        target = p.sub_attribute or p.attribute
        for a in (p.attribute, target):
            if a.mutability is Mutability.READ_ONLY:
                raise MutabilityError(
                    f"{a.name!r} is read-only (RFC 7643 §7) and cannot be changed by PATCH"
                )
        if p.section is None and p.attribute.name == "schemas":
            return  # derived from the document's content (converter.resource_schemas)
        if self._dropped(p, op, value):
            return
        self.guarded(op, p, value)

    def _dropped(self, p: PatchPath, op: str, value: Any) -> bool:
        """``password`` is validated and never stored (converter.normalize_resource)."""
        if p.schema is self.registry.core and p.attribute.name == "password":
            if op != "remove" and not _is_empty(value, self.tolerance):
                normalize_value(p.attribute, value, "password")
            return True
        return False

    def pathless(self, op: str, value: Any) -> None:
        """``add``/``replace`` without ``path`` (RFC 7644 §3.5.2.1, §3.5.2.3; Entra 5, Okta 6)."""
        if not isinstance(value, MAPPING):
            raise InvalidValueError(
                "without a 'path', 'value' must be an object mapping attribute names to values "
                "(RFC 7644 §3.5.2.1)"
            )
        for key, v in value.items():
            if isinstance(key, str):
                self._key(op, key, v, None)

    def _key(self, op: str, key: str, value: Any, schema: Schema | None) -> None:
        registry = self.registry
        if schema is None:
            ext, rest = registry.split_urn(key)
            if ext is not None and rest == "":
                if isinstance(value, MAPPING):
                    for k, v in value.items():
                        if isinstance(k, str):
                            self._key(op, k, v, ext)
                elif _is_empty(value, self.tolerance):
                    if op == "replace":
                        for a in ext.attributes:
                            if a.mutability is not Mutability.READ_ONLY:
                                p = PatchPath(ext, a, None, None, ext.id, f"{ext.id}:{a.name}")
                                self.guarded("remove", p, _MISSING)
                else:
                    raise InvalidValueError(f"{ext.id}: expected an object of attributes")
                return
            if ext is not None:
                schema, key = ext, rest
            elif key.lower() == "schemas":
                return
        top, dot, sub_name = key.partition(".")
        resolved = _resolve_top(top, schema, registry, self.tolerance)
        if resolved is None:
            return  # unknown attribute: ignored, as in POST/PUT (idp-quirks Entra 9)
        owner, attr = resolved
        if attr.mutability is Mutability.READ_ONLY:
            return  # RFC 7644 §3.5.1: read-only values sent by the client are ignored (Okta 10)
        sub: Attribute | None = None
        if dot:
            sub = attr.sub_attribute(sub_name) if attr.is_complex else None
            if sub is None or sub.mutability is Mutability.READ_ONLY or attr.multi_valued:
                return
        section = owner.id if owner is not None and owner is not registry.core else None
        prefix = f"{section}:" if section is not None else ""
        text = f"{prefix}{attr.name}" + (f".{sub.name}" if sub is not None else "")
        p = PatchPath(owner, attr, None, sub, section, text)
        if self._dropped(p, op, value):
            return
        self.guarded(op, p, value)


def _check_immutable(attr: Attribute, before: Any, after: Any) -> None:
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


def _member(obj: Mapping[Any, Any], name: str, tolerance: Tolerance) -> Any:
    if name in obj:
        return obj[name]
    if tolerance.any_case_members:
        lowered = name.lower()
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() == lowered:
                return v
    return _MISSING


def _operations(body: Any, tolerance: Tolerance) -> list[Any]:
    if not isinstance(body, MAPPING):
        raise InvalidSyntaxError(
            "a PATCH body must be a JSON object with an 'Operations' list (RFC 7644 §3.5.2)"
        )
    schemas = _member(body, "schemas", tolerance)
    if isinstance(schemas, list) and not any(
        isinstance(s, str) and s.lower() == PATCH_OP_URN.lower() for s in schemas
    ):
        raise InvalidSyntaxError(f"a PATCH body's 'schemas' must contain {PATCH_OP_URN}")
    ops = _member(body, "Operations", tolerance)
    if ops is _MISSING:
        raise InvalidSyntaxError("the PATCH body has no 'Operations' member (RFC 7644 §3.5.2)")
    if not isinstance(ops, list):
        raise InvalidSyntaxError("'Operations' must be a list of operations (RFC 7644 §3.5.2)")
    if not ops:
        raise InvalidSyntaxError("'Operations' is empty; it needs at least one operation")
    return ops


def _label(raw: Any) -> str:
    if not isinstance(raw, MAPPING):
        return ""
    parts = [str(raw[k]) for k in ("op", "path") if isinstance(raw.get(k), str)]
    return f" ({' '.join(parts)})" if parts else ""


def _apply_one(patcher: _Patcher, raw: Any) -> None:
    tol = patcher.tolerance
    if not isinstance(raw, MAPPING):
        raise InvalidSyntaxError("an operation must be a JSON object with 'op' (RFC 7644 §3.5.2)")
    op = _member(raw, "op", tol)
    if op is _MISSING or not isinstance(op, str):
        raise InvalidSyntaxError("missing 'op': expected one of add, remove, replace")
    name = op.strip().lower() if tol.any_case_ops else op
    if name not in _OPS:
        raise InvalidSyntaxError(f"unknown op {op!r}: expected one of add, remove, replace")
    path = _member(raw, "path", tol)
    value = _member(raw, "value", tol)
    if path is None or path is _MISSING or (isinstance(path, str) and not path.strip()):
        if name == "remove":
            raise NoTargetError("'remove' requires a 'path' (RFC 7644 §3.5.2.2)")
        if value is _MISSING:
            raise InvalidValueError(f"'{name}' requires a 'value' (RFC 7644 §3.5.2)")
        patcher.pathless(name, value)
        return
    if not isinstance(path, str):
        raise InvalidPathError(f"'path' must be a string, got {type(path).__name__}")
    ext, rest = patcher.registry.split_urn(path.strip())
    if ext is not None and rest == "" and ext is not patcher.registry.core:
        # The path is an extension URN: the extension acts as one complex attribute whose
        # sub-attributes are its attributes (RFC 7644 §3.10, "urn:...:User" as attrPath).
        if name != "remove" and value is _MISSING:
            raise InvalidValueError(f"'{name}' requires a 'value' (RFC 7644 §3.5.2)")
        patcher.pathless("replace", {ext.id: None if name == "remove" else value})
        return
    p = parse_path(path, patcher.registry, tolerance=tol)
    if name != "remove" and value is _MISSING:
        raise InvalidValueError(f"'{name}' requires a 'value' (RFC 7644 §3.5.2)")
    patcher.explicit(name, p, value)


def _required_present(doc: dict[str, Any], registry: SchemaRegistry) -> list[PatchPath]:
    """The ``required`` attributes (RFC 7643 §2.2) that ``doc`` has a value for."""
    out: list[PatchPath] = []
    for schema in registry.schemas:
        section = None if schema is registry.core else schema.id
        for attr in schema.attributes:
            if attr.required:
                p = PatchPath(schema, attr, None, None, section, attr.name)
                if _current(doc, p) is not None:
                    out.append(p)
    return out


def apply_patch(
    doc: Mapping[str, Any],
    body: Any,
    registry: SchemaRegistry,
    *,
    tolerance: Tolerance = TOLERANT,
) -> dict[str, Any]:
    """Apply the PATCH request ``body`` (RFC 7644 §3.5.2) to ``doc``; return a new document.

    ``doc`` is a canonical document and is never mutated. All operations succeed or none
    applies. Raises :class:`InvalidSyntaxError` (malformed body or operation, unknown ``op``),
    :class:`InvalidPathError`, :class:`InvalidValueError`, :class:`NoTargetError` and
    :class:`MutabilityError`, each detail naming the failing operation.
    """
    operations = _operations(body, tolerance)
    patcher = _Patcher(clone(doc), registry, tolerance)
    required = _required_present(patcher.doc, registry)
    removed: dict[str, str] = {}  # required attribute -> the operation that last removed it
    for i, raw in enumerate(operations):
        try:
            _apply_one(patcher, raw)
        except SCIMError as exc:
            raise type(exc)(f"Operations[{i}]{_label(raw)}: {exc.detail}") from None
        for p in required:
            if _current(patcher.doc, p) is None:
                removed.setdefault(p.text, f"Operations[{i}]{_label(raw)}")
            else:
                removed.pop(p.text, None)
    for name, where in removed.items():
        raise InvalidValueError(
            f"{where}: {name!r} is required (RFC 7643 §2.2) and cannot be removed"
        )
    return patcher.doc
