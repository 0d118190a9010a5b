"""PATCH (RFC 7644 §3.5.2) on a canonical document (see :mod:`scimcore.converter`).

:func:`apply_patch` takes the whole request body, applies its ``Operations`` in order to a copy
of the document and returns the copy; the input is never mutated. It is atomic: if any
operation fails, the error propagates and nothing is applied (idp-quirks Entra 4). The
canonical invariants hold after every operation: an absent attribute is an absent key (never
``None``, ``[]`` or ``{}``), an extension section whose last attribute goes disappears, keys use
the schema's spelling, and at most one value of a multi-valued attribute is ``primary``
(RFC 7643 §2.4).

This module reads the request (its body and each operation, the atomicity, the ``required``
check); the rest of PATCH lives beside it, one job each: :mod:`scimcore.patcher` applies one
operation to the document; :mod:`scimcore.path_parser` parses a ``path`` (RFC 7644 §3.5.2,
§3.10) into a :class:`~scimcore.paths.PatchPath`; :mod:`scimcore.paths` reads and writes a
document at one and walks a path-less value; :mod:`scimcore.merging` holds the rules that
combine an attribute's old and new value; :mod:`scimcore.tolerance` the IdP tolerance table.
Value filters are evaluated by :func:`scimcore.filters.matches_element`.

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
from .errors import (
    InvalidPathError,
    InvalidSyntaxError,
    InvalidValueError,
    NoTargetError,
    SCIMError,
)
from .limits import check_operations
from .messages import PATCH_OP_URN
from .patcher import MISSING, Patcher
from .path_parser import parse_path
from .paths import PatchPath, value_at
from .schema import MAPPING, CacheSlot, SchemaRegistry
from .tolerance import STRICT, TOLERANT, Tolerance

__all__ = [
    "STRICT",
    "TOLERANT",
    "PatchPath",
    "Tolerance",
    "apply_patch",
    "parse_path",
]


_OPS: Final = ("add", "remove", "replace")


def _member(obj: Mapping[Any, Any], name: str, tolerance: Tolerance) -> Any:
    if name in obj:
        return obj[name]
    if tolerance.any_case_members:
        lowered = name.lower()
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() == lowered:
                return v
    return MISSING


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
    if ops is MISSING:
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


def _apply_one(patcher: Patcher, raw: Any) -> None:
    tol = patcher.tolerance
    if not isinstance(raw, MAPPING):
        raise InvalidSyntaxError("an operation must be a JSON object with 'op' (RFC 7644 §3.5.2)")
    op = _member(raw, "op", tol)
    if op is MISSING or not isinstance(op, str):
        raise InvalidSyntaxError("missing 'op': expected one of add, remove, replace")
    name = op.strip().lower() if tol.any_case_ops else op
    if name not in _OPS:
        raise InvalidSyntaxError(f"unknown op {op!r}: expected one of add, remove, replace")
    path = _member(raw, "path", tol)
    value = _member(raw, "value", tol)
    if path is None or path is MISSING or (isinstance(path, str) and not path.strip()):
        if name == "remove":
            raise NoTargetError("'remove' requires a 'path' (RFC 7644 §3.5.2.2)")
        if value is MISSING:
            raise InvalidValueError(f"'{name}' requires a 'value' (RFC 7644 §3.5.2)")
        patcher.pathless(name, value)
        return
    if not isinstance(path, str):
        raise InvalidPathError(f"'path' must be a string, got {type(path).__name__}")
    ext, rest = patcher.registry.split_urn(path.strip())
    if ext is not None and rest == "" and ext is not patcher.registry.core:
        # The path is an extension URN: the extension acts as one complex attribute whose
        # sub-attributes are its attributes (RFC 7644 §3.10, "urn:...:User" as attrPath).
        if name != "remove" and value is MISSING:
            raise InvalidValueError(f"'{name}' requires a 'value' (RFC 7644 §3.5.2)")
        patcher.pathless("replace", {ext.id: None if name == "remove" else value})
        return
    p = parse_path(path, patcher.registry, tolerance=tol)
    if name != "remove" and value is MISSING:
        raise InvalidValueError(f"'{name}' requires a 'value' (RFC 7644 §3.5.2)")
    patcher.explicit(name, p, value)


#: The paths of the ``required`` attributes (RFC 7643 §2.2), on each registry: made once,
#: not for each PATCH (a scan of every attribute and a ``PatchPath`` each: 2 % of a PATCH).
_REQUIRED: CacheSlot[str, tuple[PatchPath, ...]] = CacheSlot("patch.required", 1)


def _required_paths(registry: SchemaRegistry) -> tuple[PatchPath, ...]:
    return tuple(
        PatchPath(
            schema, attr, None, None, None if schema is registry.core else schema.id, attr.name
        )
        for schema in registry.schemas
        for attr in schema.attributes
        if attr.required
    )


def _required_present(doc: dict[str, Any], registry: SchemaRegistry) -> list[PatchPath]:
    """The ``required`` attributes (RFC 7643 §2.2) that ``doc`` has a value for."""
    paths = registry.cache(_REQUIRED).get_or_make("required", lambda _: _required_paths(registry))
    return [p for p in paths if value_at(doc, p) is not None]


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
    patcher = Patcher(clone(doc), registry, tolerance)
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
