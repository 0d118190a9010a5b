"""PATCH (RFC 7644 §3.5.2) on a canonical document (see :mod:`scimcore.converter`).

:func:`apply_patch` takes the whole request body, applies its ``Operations`` in order to a copy
of the document and returns the copy; the input is never mutated. It is atomic: if any
operation fails, the error propagates and nothing is applied (idp-quirks Entra 4). The
canonical invariants hold after every operation: an absent attribute is an absent key (never
``None``, ``[]`` or ``{}``), an extension section whose last attribute goes disappears, keys use
the schema's spelling, and at most one value of a multi-valued attribute is ``primary``
(RFC 7643 §2.4).

This module applies operations; the rest of PATCH lives beside it, one job each:
:mod:`scimcore.path_parser` parses a ``path`` (RFC 7644 §3.5.2, §3.10) into a
:class:`~scimcore.paths.PatchPath`; :mod:`scimcore.paths` reads and writes a document at one
and walks a path-less value; :mod:`scimcore.merging` holds the rules that combine an
attribute's old and new value; :mod:`scimcore.tolerance` the IdP tolerance table. Value filters
are evaluated by :func:`scimcore.filters.matches_element`.

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
:class:`~scimcore.tolerance.Tolerance`, citing its item in ``idp-quirks.md``. Handled by
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

from collections.abc import Mapping
from typing import Any, Final

from ._json import clone
from .converter import normalize_value
from .errors import (
    InvalidPathError,
    InvalidSyntaxError,
    InvalidValueError,
    MutabilityError,
    NoTargetError,
    SCIMError,
)
from .filters import element_matcher
from .limits import check_operations
from .merging import (
    ElementIndex,
    append_values,
    check_immutable,
    designates,
    eq_element,
    eq_names,
    fix_primary,
    is_empty,
    keep_immutable,
    normalize_complex,
    normalize_element,
    without_empty,
)
from .messages import PATCH_OP_URN
from .path_parser import parse_path
from .paths import PatchPath, store_at, value_at, walk_members
from .schema import MAPPING, Mutability, SchemaRegistry
from .tolerance import STRICT, TOLERANT, Tolerance

__all__ = [
    "STRICT",
    "TOLERANT",
    "PatchPath",
    "Tolerance",
    "apply_patch",
    "parse_path",
]


_MISSING: Final = object()
_OPS: Final = ("add", "remove", "replace")


def _where(p: PatchPath) -> str:
    return p.text or p.attribute.name


# --- operations ----------------------------------------------------------------------------------


class _Patcher:
    """Applies operations to a working copy; one instance per :func:`apply_patch` call."""

    def __init__(self, doc: dict[str, Any], registry: SchemaRegistry, tolerance: Tolerance):
        self.doc = doc
        self.registry = registry
        self.tolerance = tolerance
        # The index of each multi-valued attribute appended to, valid while the document
        # still holds that very list (every other change stores a new list).
        self._indexes: dict[tuple[str | None, str], ElementIndex] = {}

    def _append(self, p: PatchPath, current: Any, items: list[Any]) -> list[Any]:
        """``add`` of ``items`` to a multi-valued attribute, in ``O(len(items))`` once the
        attribute is indexed (:class:`~scimcore.merging.ElementIndex`); the document's list
        (a copy of the input's, see :func:`apply_patch`) is extended in place."""
        attr = p.attribute
        key = (p.section, attr.name)
        index = self._indexes.get(key)
        try:
            ElementIndex.check_hashable(items)
            if index is None or index.items is not current:
                index = ElementIndex(attr, current if isinstance(current, list) else [])
                self._indexes[key] = index
        except TypeError:  # a value that cannot be hashed: rescan, as before
            self._indexes.pop(key, None)
            new = list(current) if isinstance(current, list) else []
            fix_primary(attr, new, append_values(attr, new, items))
            return new
        index.fix_primary(index.append(items))
        return index.items

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
        if is_empty(value, tol):
            if not (op == "add" and attr.multi_valued and sub is None):
                self.remove(p, _MISSING, quiet=True)
            return
        current = value_at(self.doc, p)
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
                    new = self._append(p, current, items)
                else:
                    new = items
                    fix_primary(attr, new, new)
        elif attr.is_complex:
            norm, clears = normalize_complex(attr, value, _where(p), tol)
            base = dict(current) if isinstance(current, dict) else {}
            if norm and "value" in norm and base.get("value", norm["value"]) != norm["value"]:
                base = {}  # a different referenced resource: drop its $ref / display
            base.update(norm or {})
            for name in clears:
                base.pop(name, None)
            new = base or None
        else:
            new = normalize_value(attr, value, _where(p))
        store_at(self.doc, p, new)

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
                keep_immutable(attr, sub, e, sub_value)
                items[i] = {**e, sub.name: sub_value}
        if not items:
            items = [{sub.name: sub_value}]
        if sub.name == "primary":
            fix_primary(attr, items, items)
        return items

    def _set_filtered(self, op: str, p: PatchPath, current: Any, value: Any) -> Any:
        attr, sub, flt = p.attribute, p.sub_attribute, p.value_filter
        assert flt is not None
        items = list(current) if isinstance(current, list) else []
        touched: list[Any] = []
        matches = element_matcher(flt, attr, registry=self.registry)
        if sub is not None:
            sub_value = normalize_value(sub, value, _where(p))
            for i, e in enumerate(items):
                if isinstance(e, dict) and matches(e):
                    keep_immutable(attr, sub, e, sub_value)
                    items[i] = {**e, sub.name: sub_value}
                    touched.append(items[i])
            if not touched:
                created = self._create(p, {sub.name: sub_value})
                items.append(created)
                touched.append(created)
        else:
            element = normalize_element(attr, value, _where(p))
            if element is None:
                return current
            kept = eq_names(flt, attr)
            for i, e in enumerate(items):
                if isinstance(e, dict) and matches(e):
                    if op == "add":
                        items[i] = {**e, **element}
                    else:
                        items[i] = {**{k: e[k] for k in kept if k in e}, **element}
                    touched.append(items[i])
            if not touched:
                created = self._create(p, element)
                items.append(created)
                touched.append(created)
        fix_primary(attr, items, touched)
        return items

    def _create(self, p: PatchPath, content: dict[str, Any]) -> dict[str, Any]:
        """The element an ``add``/``replace`` on a filter that matches nothing creates."""
        assert p.value_filter is not None
        base = eq_element(p.value_filter, p.attribute)
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
        current = value_at(self.doc, p)
        strict_miss = not quiet and not self.tolerance.remove_miss_is_noop
        new: Any
        if flt is not None:
            items = current if isinstance(current, list) else []
            matches = element_matcher(flt, attr, registry=self.registry)
            hit = [isinstance(e, dict) and matches(e) for e in items]
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
                        keep_immutable(attr, sub, e, None)
                new = [
                    {k: v for k, v in e.items() if k != sub.name} if h else e
                    for e, h in zip(items, hit, strict=True)
                ]
            new = without_empty(new)
        elif current is None:
            return
        elif sub is not None:
            if attr.multi_valued:
                items = current if isinstance(current, list) else []
                for e in items:
                    keep_immutable(attr, sub, e, None)
                new = without_empty(
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
            and not is_empty(value, self.tolerance)
        ):
            patterns = normalize_value(attr, value, _where(p)) or []
            items = current if isinstance(current, list) else []
            new = [e for e in items if not any(designates(e, pat) for pat in patterns)]
            if len(new) == len(items) and strict_miss:
                raise NoTargetError(
                    f"path {p.text!r}: none of the values to remove is present in {attr.name!r}"
                )
            new = new or None
        else:
            new = None
        store_at(self.doc, p, new)

    # checks -------------------------------------------------------------------------------------

    def guarded(self, op: str, p: PatchPath, value: Any) -> None:
        """Apply one operation on ``p``, enforcing ``immutable`` (RFC 7643 §7)."""
        attr = p.attribute
        immutable = attr.mutability is Mutability.IMMUTABLE or any(
            s.mutability is Mutability.IMMUTABLE for s in attr.sub_attributes
        )
        before = clone(value_at(self.doc, p)) if immutable else None
        if op == "remove":
            self.remove(p, value)
        else:
            self.set(op, p, value)
        if immutable:
            check_immutable(attr, before, value_at(self.doc, p))

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
            if op != "remove" and not is_empty(value, self.tolerance):
                normalize_value(p.attribute, value, "password")
            return True
        return False

    def pathless(self, op: str, value: Any) -> None:
        """``add``/``replace`` without ``path`` (RFC 7644 §3.5.2.1, §3.5.2.3; Entra 5, Okta 6):
        each member as :func:`scimcore.paths.walk_members` resolves it."""
        if not isinstance(value, MAPPING):
            raise InvalidValueError(
                "without a 'path', 'value' must be an object mapping attribute names to values "
                "(RFC 7644 §3.5.2.1)"
            )
        walk = walk_members(
            value,
            self.registry,
            unqualified_extension_names=self.tolerance.unqualified_extension_names,
        )
        for target, v in walk:
            if isinstance(target, PatchPath):
                if not self._dropped(target, op, v):
                    self.guarded(op, target, v)
            elif not is_empty(v, self.tolerance):
                raise InvalidValueError(f"{target.id}: expected an object of attributes")
            elif op == "replace":  # the whole extension unassigned: each of its attributes
                for a in target.attributes:
                    if a.mutability is not Mutability.READ_ONLY:
                        p = PatchPath(target, a, None, None, target.id, f"{target.id}:{a.name}")
                        self.guarded("remove", p, _MISSING)


def _member(obj: Mapping[Any, Any], name: str, tolerance: Tolerance) -> Any:
    if name in obj:
        return obj[name]
    if tolerance.any_case_members:
        lowered = name.lower()
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() == lowered:
                return v
    return _MISSING


def _operations(body: Any, tolerance: Tolerance, max_operations: int | None) -> list[Any]:
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
    if max_operations is not None:
        check_operations(len(ops), max_operations)
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
                if value_at(doc, p) is not None:
                    out.append(p)
    return out


def apply_patch(
    doc: Mapping[str, Any],
    body: Any,
    registry: SchemaRegistry,
    *,
    tolerance: Tolerance = TOLERANT,
    max_operations: int | None = None,
) -> dict[str, Any]:
    """Apply the PATCH request ``body`` (RFC 7644 §3.5.2) to ``doc``; return a new document.

    ``doc`` is a canonical document and is never mutated. All operations succeed or none
    applies. Raises :class:`InvalidSyntaxError` (malformed body or operation, unknown ``op``),
    :class:`InvalidPathError`, :class:`InvalidValueError`, :class:`NoTargetError` and
    :class:`MutabilityError`, each detail naming the failing operation; 413
    :class:`~scimcore.errors.PayloadTooLargeError` for more than ``max_operations``
    operations (``None``: no limit; the service passes ``ServiceConfig.max_operations``).
    """
    operations = _operations(body, tolerance, max_operations)
    patcher = _Patcher(clone(doc), registry, tolerance)
    required = _required_present(patcher.doc, registry)
    removed: dict[str, str] = {}  # required attribute -> the operation that last removed it
    for i, raw in enumerate(operations):
        try:
            _apply_one(patcher, raw)
        except SCIMError as exc:
            raise type(exc)(f"Operations[{i}]{_label(raw)}: {exc.detail}") from None
        for p in required:
            if value_at(patcher.doc, p) is None:
                removed.setdefault(p.text, f"Operations[{i}]{_label(raw)}")
            else:
                removed.pop(p.text, None)
    for name, where in removed.items():
        raise InvalidValueError(
            f"{where}: {name!r} is required (RFC 7643 §2.2) and cannot be removed"
        )
    return patcher.doc
