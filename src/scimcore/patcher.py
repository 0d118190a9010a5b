"""PATCH's operations on a document: what ``add``, ``replace`` and ``remove`` do at a
:class:`~scimcore.paths.PatchPath`, or with a path-less value (RFC 7644 §3.5.2.1 to §3.5.2.3).

:class:`Patcher` mutates one working copy; :func:`scimcore.patch.apply_patch` reads the
request's body, hands each operation here in order and keeps the whole atomic. The decisions
where RFC 7644 is silent are listed in :mod:`scimcore.patch`; how an old and a new value
combine is :mod:`scimcore.merging`; where an IdP deviates is a field of
:class:`~scimcore.tolerance.Tolerance`.
"""

from __future__ import annotations

from typing import Any, Final

from ._json import clone
from .converter import normalize_value
from .errors import InvalidValueError, MutabilityError, NoTargetError
from .filters import element_matcher
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
from .paths import PatchPath, store_at, value_at, walk_members
from .schema import MAPPING, Mutability, SchemaRegistry
from .tolerance import Tolerance

__all__ = ["MISSING", "Patcher"]

#: An operation's ``value`` (or ``path``) that the body does not have.
MISSING: Final = object()


def _where(p: PatchPath) -> str:
    return p.text or p.attribute.name


class Patcher:
    """Applies operations to a working copy of a document (``doc``, mutated in place); one
    instance per :func:`scimcore.patch.apply_patch` call, which checks the body first."""

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
                self.remove(p, MISSING, quiet=True)
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
            value is not MISSING
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
                        self.guarded("remove", p, MISSING)
