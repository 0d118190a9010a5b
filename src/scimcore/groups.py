"""Groups without re-written documents: how a request's ``members`` becomes membership changes.

A group's document never holds ``members``; the storage keeps (group, member) rows. This
module is the pure part: :func:`plan_patch` splits a PATCH body (RFC 7644 §3.5.2) into the
operations on the group's own attributes (applied by :func:`scimcore.patch.apply_patch` to
the small document) and membership steps (add these ids, remove these, remove all), each
O(k) in the ids it names. The shapes Entra and Okta send (idp-quirks Entra 10, Okta 10) are
all simple steps; any other ``members`` path (a value filter on ``type``, a sub-attribute
path) is planned as ``full``: the caller applies the whole PATCH to the document with its
members and stores the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from attrs import frozen

from .converter import AttributeSelection
from .errors import InvalidSyntaxError, InvalidValueError, NoTargetError
from .filter_tree import And, AttrRef, Compare, Filter, Not, Or, Present
from .group_schema import GROUP_RESOURCE_TYPE
from .path_parser import parse_path
from .schema import MAPPING, SchemaRegistry

__all__ = [
    "MemberStep",
    "PatchPlan",
    "default_group_registry",
    "filter_mentions",
    "member_ids",
    "plan_patch",
    "wants_members",
]


def default_group_registry() -> SchemaRegistry:
    """A registry serving the Group resource type (RFC 7643 §4.2)."""
    return SchemaRegistry(GROUP_RESOURCE_TYPE)


def _refs(f: Filter) -> list[AttrRef]:
    if isinstance(f, (Compare, Present)):
        return [f.attr]
    if isinstance(f, (And, Or)):
        return _refs(f.left) + _refs(f.right)
    if isinstance(f, Not):
        return _refs(f.inner)
    return [f.attr]


def filter_mentions(f: Filter, name: str) -> bool:
    """Whether the filter tests the top-level attribute ``name`` (any case)."""
    lowered = name.lower()
    return any(ref.name.lower() == lowered for ref in _refs(f))


def wants_members(selection: AttributeSelection | None) -> bool:
    """Whether a response with this ``attributes``/``excludedAttributes`` shows ``members``
    (``excludedAttributes=members``: the members are never read)."""
    if selection is None or selection.empty:
        return True
    if selection.include:
        return any(p[:1] == ("members",) for p in selection.include)
    return ("members",) not in selection.exclude


def member_ids(value: Any, where: str) -> list[str]:
    """The ids of a ``members`` value: a list of (or one) objects with a string ``value``;
    ``$ref``, ``display`` and ``type`` are ignored (Entra sends ``"$ref": null``)."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        found = None
        if isinstance(item, MAPPING):
            found = next((v for k, v in item.items() if str(k).lower() == "value"), None)
        if not isinstance(found, str) or not found:
            raise InvalidValueError(f"{where}: each member needs a string 'value' (its id)")
        out.append(found)
    return out


@frozen
class MemberStep:
    """One membership change: ``add`` or ``remove`` these ids, or ``clear`` every member."""

    kind: Literal["add", "remove", "clear"]
    ids: tuple[str, ...] = ()


@frozen
class PatchPlan:
    """A group PATCH split in two: ``operations`` on the group's document (without
    ``members``) and membership ``steps`` in request order; ``full``: the request needs the
    whole member list (see the module documentation)."""

    operations: list[Any]
    steps: list[MemberStep]
    full: bool = False

    @property
    def member_count(self) -> int:
        """How many member ids the steps name (the per-request maximum counts these)."""
        return sum(len(s.ids) for s in self.steps)


def _get(raw: Mapping[str, Any], name: str) -> Any:
    return next((v for k, v in raw.items() if str(k).lower() == name.lower()), None)


def _is_members(key: Any) -> bool:
    return isinstance(key, str) and key.lower() in (
        "members",
        f"{GROUP_RESOURCE_TYPE.schema.id.lower()}:members",
    )


def _value_eq(f: Filter | None) -> str | None:
    """``X`` of ``[value eq "X"]``, else ``None``."""
    if isinstance(f, Compare) and f.op == "eq" and f.attr.name.lower() == "value":
        return f.value if isinstance(f.value, str) else None
    return None


def _steps(op: str, value: Any, where: str) -> list[MemberStep]:
    """The steps of ``op`` on the path ``members`` with ``value``."""
    if op == "remove":
        if value is None:
            return [MemberStep("clear")]
        return [MemberStep("remove", tuple(member_ids(value, where)))]
    if value is None:
        raise InvalidValueError(f"{where}: '{op}' requires a 'value' (RFC 7644 §3.5.2)")
    ids = tuple(member_ids(value, where)) if value != [] else ()
    if op == "replace":
        return [MemberStep("clear"), MemberStep("add", ids)]
    return [MemberStep("add", ids)]


def plan_patch(body: Any, registry: SchemaRegistry) -> PatchPlan:
    """Split a group PATCH body into document operations and membership steps. Malformed
    operations are left to :func:`scimcore.patch.apply_patch`, which reports them."""
    ops = _get(body, "Operations") if isinstance(body, MAPPING) else None
    if not isinstance(ops, list):
        return PatchPlan([], [], full=True)  # apply_patch answers the malformed body
    doc_ops: list[Any] = []
    steps: list[MemberStep] = []
    for i, raw in enumerate(ops):
        where = f"Operations[{i}]"
        if not isinstance(raw, MAPPING) or not isinstance(_get(raw, "op"), str):
            return PatchPlan([], [], full=True)
        op = _get(raw, "op").strip().lower()
        path, value = _get(raw, "path"), _get(raw, "value")
        if op not in ("add", "remove", "replace"):
            return PatchPlan([], [], full=True)
        if path is None or (isinstance(path, str) and not path.strip()):
            if op == "remove":
                raise NoTargetError(f"{where}: 'remove' requires a 'path' (RFC 7644 §3.5.2.2)")
            if not isinstance(value, MAPPING):
                doc_ops.append(raw)
                continue
            rest = {k: v for k, v in value.items() if not _is_members(k)}
            for k, v in value.items():
                if _is_members(k):
                    steps.extend(_steps(op, v, where))
            if rest:
                doc_ops.append({"op": op, "value": rest})
            continue
        if not isinstance(path, str):
            raise InvalidSyntaxError(f"{where}: 'path' must be a string")
        p = parse_path(path, registry)
        if p.attribute.name != "members" or p.section is not None:
            doc_ops.append(raw)
            continue
        if p.sub_attribute is None and p.value_filter is None:
            steps.extend(_steps(op, value, where))
        elif p.sub_attribute is None and op == "remove" and _value_eq(p.value_filter):
            steps.append(MemberStep("remove", (_value_eq(p.value_filter) or "",)))
        else:
            return PatchPlan([], [], full=True)
    return PatchPlan(doc_ops, steps)
