"""SCIM filter trees (:mod:`scimcore.filters`) to SQLAlchemy ``WHERE`` clauses.

:func:`compile_where` translates what maps onto the indexed columns of :mod:`.tables`
(``userName``, ``externalId``, ``id``, ``displayName``, ``active``, ``meta.created``,
``meta.lastModified``, ``emails[...]`` and ``emails.value``/``.type``/``.primary``,
``groups[...]``, ``groups pr`` and ``groups.value``/``.display``/``.type`` (from the
memberships: ``group_members`` joined to ``groups``), and ``and`` / ``or`` / ``not``
combinations of them) into SQL with bound parameters, and says whether the
translation is *exact*. Anything it cannot translate becomes a *superset* predicate: the caller
then evaluates the full filter in Python (:func:`scimcore.filters.matches`) over the candidates,
so results never depend on what was pushed down.

Rules that keep the SQL identical to the in-memory evaluator:

* Every exact leaf is two-valued (never SQL ``NULL``): comparisons are guarded with
  ``col IS NOT NULL AND ...``, so ``NOT`` of a leaf matches rows where the column is ``NULL``,
  exactly as ``not (x eq v)`` matches a resource without ``x``.
* ``ne`` is ``NOT eq``, ``eq null`` is ``NOT pr`` and ``ne null`` is ``pr``.
* Case rules come from the schema (``caseExact``): case-insensitive attributes are compared on
  their casefolded column with a casefolded operand; case-exact ones on the raw column. If the
  needed column does not exist, the leaf is not pushed down.
* ``sw`` is a half-open range (index friendly); ``co``/``ew`` are ``LIKE`` with ``%``, ``_`` and
  ``\\`` escaped. SQLite's ``LIKE`` ignores ASCII case, so on raw (case-exact) columns a
  case-sensitive guard (``replace``/``substr``) is added; on folded columns both sides are
  already lowercase.
* String order is code-point order (``COLLATE "C"`` on PostgreSQL, ``BINARY`` on SQLite), as in
  Python.
* A non-exact sub-tree under ``and``/``or`` stays a superset; under ``not`` the whole ``not``
  becomes ``TRUE`` (a superset of anything).

The index columns are derived from canonical documents (:mod:`scimcore.converter`): a value of
a type the schema does not allow (e.g. a number as ``emails.value``) is indexed as absent.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from attrs import frozen
from sqlalchemy import ColumnElement, and_, func, literal, not_, or_, select, true

from scimcore.filters import And, AttrRef, Compare, Filter, Not, Or, Present, ValuePath
from scimcore.schema import Attribute, AttrType, Schema, SchemaRegistry
from scimcore.schema import parse_utc_datetime as parse_datetime
from scimcore.storage import SortSpec

from .tables import GROUP_MEMBERS, GROUPS, USER_EMAILS, USERS

__all__ = [
    "Translation",
    "compile_where",
    "escape_like",
    "order_by",
    "parse_datetime",
    "sort_column",
    "user_name_key",
]

_E = USER_EMAILS.c
_U = USERS.c
_G = GROUPS.c
_M = GROUP_MEMBERS.c


@frozen
class Translation:
    """A ``WHERE`` clause and whether it is exact (``False``: a superset of the matches)."""

    clause: ColumnElement[bool]
    exact: bool


_CANDIDATE = Translation(true(), False)


def escape_like(text: str) -> str:
    """``text`` with the ``LIKE`` wildcards ``%`` and ``_`` and the escape ``\\`` escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _successor(text: str) -> str | None:
    """The smallest string greater than every string that starts with ``text``."""
    last = ord(text[-1])
    if last >= sys.maxunicode:
        return None
    nxt = last + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates are not stored; skip to the next scalar value
        nxt = 0xE000
    return text[:-1] + chr(nxt)


# --- leaves ------------------------------------------------------------------------------------


@frozen
class _Str:
    raw: ColumnElement[Any] | None
    folded: ColumnElement[Any] | None


@frozen
class _Bool:
    col: ColumnElement[Any]


@frozen
class _Date:
    col: ColumnElement[Any]


_Spec = _Str | _Bool | _Date


#: ``col IS NOT NULL`` per column, built once (keyed by identity; the entry keeps the column, so
#: its id is never reused while cached).
_NOT_NULL: dict[int, tuple[ColumnElement[Any], ColumnElement[bool]]] = {}


def _not_null(col: ColumnElement[Any]) -> ColumnElement[bool]:
    entry = _NOT_NULL.get(id(col))
    if entry is None or entry[0] is not col:
        entry = _NOT_NULL[id(col)] = (col, col.is_not(None))
    return entry[1]


def _exact(clause: ColumnElement[bool]) -> Translation:
    return Translation(clause, True)


def _present(spec: _Spec) -> Translation:
    if isinstance(spec, _Str):
        col = spec.raw if spec.raw is not None else spec.folded
        assert col is not None
        return _exact(and_(_not_null(col), col != ""))
    if isinstance(spec, _Bool):
        return _exact(_not_null(spec.col))
    # A stored date-time string that does not parse is still "present": not indexed.
    return _CANDIDATE


def _string_op(op: str, value: str, spec: _Str, leaf: Attribute) -> Translation:
    col = spec.raw if leaf.case_exact else spec.folded
    if col is None or "\x00" in value:
        return _CANDIDATE
    operand = value if leaf.case_exact else value.casefold()
    guard = _not_null(col)
    if op in ("sw", "co", "ew") and operand == "":
        return _exact(guard)
    cond: ColumnElement[bool]
    if op == "eq":
        cond = col == operand
    elif op == "gt":
        cond = col > operand
    elif op == "ge":
        cond = col >= operand
    elif op == "lt":
        cond = col < operand
    elif op == "le":
        cond = col <= operand
    elif op == "sw":
        upper = _successor(operand)
        if upper is not None:
            cond = and_(col >= operand, col < upper)
        else:
            cond = func.substr(col, 1, len(operand)) == operand
    elif op == "co":
        cond = col.like(f"%{escape_like(operand)}%", escape="\\")
        if leaf.case_exact:  # SQLite's LIKE ignores ASCII case
            cond = and_(cond, func.replace(col, operand, "") != col)
    elif op == "ew":
        cond = col.like(f"%{escape_like(operand)}", escape="\\")
        if leaf.case_exact:
            cond = and_(cond, func.substr(col, func.length(col) - len(operand) + 1) == operand)
    else:
        return _CANDIDATE
    return _exact(and_(guard, cond))


def _ordered(op: str, col: ColumnElement[Any], operand: Any) -> ColumnElement[bool] | None:
    ops: dict[str, Callable[[], ColumnElement[bool]]] = {
        "eq": lambda: col == operand,
        "gt": lambda: col > operand,
        "ge": lambda: col >= operand,
        "lt": lambda: col < operand,
        "le": lambda: col <= operand,
    }
    make = ops.get(op)
    return and_(_not_null(col), make()) if make is not None else None


def _compare(op: str, value: Any, spec: _Spec, leaf: Attribute) -> Translation:
    """``attr op value`` on one column; ``op`` is lowercase and not ``ne``; value not null."""
    if isinstance(spec, _Str):
        if not isinstance(value, str) or leaf.type not in (AttrType.STRING, AttrType.REFERENCE):
            return _CANDIDATE
        return _string_op(op, value, spec, leaf)
    if isinstance(spec, _Bool):
        if not isinstance(value, bool) or leaf.type is not AttrType.BOOLEAN:
            return _CANDIDATE
        clause = _ordered(op, spec.col, value) if op == "eq" else None
        return _exact(clause) if clause is not None else _CANDIDATE
    if leaf.type is not AttrType.DATETIME or not isinstance(value, str):
        return _CANDIDATE
    moment = parse_datetime(value)
    if moment is None:
        return _CANDIDATE
    clause = _ordered(op, spec.col, moment)
    return _exact(clause) if clause is not None else _CANDIDATE


def _negate(t: Translation) -> Translation:
    return _exact(not_(t.clause)) if t.exact else _CANDIDATE


def _same(t: Translation) -> Translation:
    return t


def _leaf(
    f: Compare | Present,
    spec: _Spec,
    leaf: Attribute,
    wrap: Callable[[Translation], Translation] = _same,
) -> Translation:
    """``f`` on one column. ``wrap`` lifts a positive per-value test to the resource (``any
    value matches`` for multi-valued attributes); negations (``ne``, ``eq null``) are applied
    after it, since ``x ne v`` means *no* value equals ``v``."""
    if isinstance(f, Present):
        return wrap(_present(spec))
    op, value = f.op.lower(), f.value
    if value is None:
        if op == "eq":
            return _negate(wrap(_present(spec)))
        if op == "ne":
            return wrap(_present(spec))
        return _CANDIDATE
    if op == "ne":
        return _negate(wrap(_compare("eq", value, spec, leaf)))
    return wrap(_compare(op, value, spec, leaf))


# --- resolution --------------------------------------------------------------------------------

_TOP: dict[tuple[str, str | None], _Spec] = {
    ("userName", None): _Str(_U.user_name, _U.user_name_folded),
    ("externalId", None): _Str(_U.external_id, None),
    ("id", None): _Str(_U.id, None),
    ("displayName", None): _Str(_U.display_name, _U.display_name_folded),
    ("active", None): _Bool(_U.active),
    ("meta", "created"): _Date(_U.created),
    ("meta", "lastModified"): _Date(_U.last_modified),
}

_EMAIL: dict[str, _Spec] = {
    "value": _Str(None, _E.value_folded),
    "type": _Str(None, _E.type),
    "primary": _Bool(_E.is_primary),
}

_EMAILS = "emails"

#: ``User.groups`` (RFC 7643 §4.1.2), derived from the memberships: ``value`` is the group's
#: id, compared case-insensitively (``caseExact`` false) as ``lower(id)``, which equals its
#: casefolded form for the ASCII ids scimcore assigns (``Runtime.new_id``; see
#: docs/decisions.md); ``display`` its ``displayName`` (casefolded column); ``type`` always
#: ``"direct"``. ``$ref`` is not stored (responses add it), so it is left to Python. Every
#: element column is one of ``groups``: an element filter selects groups, then their members.
_GROUP: dict[str, _Spec] = {
    "value": _Str(None, func.lower(_G.id)),
    "display": _Str(None, _G.display_name_folded),
    "type": _Str(None, literal("direct")),
}

_GROUPS = "groups"


def _resolve(
    ref: AttrRef, registry: SchemaRegistry
) -> tuple[Schema | None, Attribute, Attribute | None] | None:
    """The owning schema, attribute and sub-attribute of ``ref``; ``None`` if unknown."""
    schema: Schema | None = None
    if ref.urn is not None:
        schema = registry.schema(ref.urn)
        if schema is None:
            return None
    try:
        owner, attr = registry.top_level(ref.name, schema)
    except KeyError:
        if schema is not registry.core:
            return None
        try:
            owner, attr = registry.top_level(ref.name)
        except KeyError:
            return None
    sub: Attribute | None = None
    if ref.sub is not None:
        sub = attr.sub_attribute(ref.sub)
        if sub is None:
            return None
    return owner, attr, sub


class _Compiler:
    def __init__(self, registry: SchemaRegistry, workspace_id: str) -> None:
        self.registry = registry
        self.workspace_id = workspace_id

    def emails_having(self, element: Translation) -> Translation:
        """Users with at least one ``emails`` element satisfying ``element``."""
        ids = select(_E.user_id).where(_E.workspace_id == self.workspace_id, element.clause)
        return Translation(_U.id.in_(ids), element.exact)

    def groups_having(self, element: Translation) -> Translation:
        """Users with at least one membership of a group that satisfies ``element``: the
        groups that match (few), joined to their memberships on ``group_members``' unique
        index ``(workspace_id, group_id, member_id)``, as a set the users are looked up in. (A
        correlated ``EXISTS`` per user is what SQLite's planner, without statistics for
        ``group_members``, turned into a scan of the workspace's memberships per user; a
        ``group_id IN (the matching groups)`` what it turned into one scan of them all once
        ``ANALYZE`` measured a few large groups: tests/test_sql_planner_stats.py.)"""
        members = (
            select(_M.member_id)
            .select_from(GROUPS)
            .join(GROUP_MEMBERS, and_(_M.workspace_id == _G.workspace_id, _M.group_id == _G.id))
            .where(_G.workspace_id == self.workspace_id, element.clause)
        )
        return Translation(_U.id.in_(members), element.exact)

    def multi(self, attr: Attribute) -> tuple[dict[str, _Spec], Callable[..., Translation]] | None:
        """The element columns and the "some element matches" lift of an indexed multi-valued
        attribute (``emails``, ``groups``), else ``None``."""
        if not (attr.is_complex and attr.multi_valued):
            return None
        if attr.name == _EMAILS:
            return _EMAIL, self.emails_having
        if attr.name == _GROUPS:
            return _GROUP, self.groups_having
        return None

    def compile(self, f: Filter) -> Translation:
        if isinstance(f, And):
            left, right = self.compile(f.left), self.compile(f.right)
            return Translation(and_(left.clause, right.clause), left.exact and right.exact)
        if isinstance(f, Or):
            left, right = self.compile(f.left), self.compile(f.right)
            return Translation(or_(left.clause, right.clause), left.exact and right.exact)
        if isinstance(f, Not):
            return _negate(self.compile(f.inner))
        if isinstance(f, ValuePath):
            return self.value_path(f)
        return self.attribute(f)

    def core(self, ref: AttrRef) -> tuple[Attribute, Attribute | None] | None:
        resolved = _resolve(ref, self.registry)
        if resolved is None:
            return None
        owner, attr, sub = resolved
        if owner is not None and owner is not self.registry.core:
            return None  # extension attributes are not indexed
        return attr, sub

    def attribute(self, f: Compare | Present) -> Translation:
        found = self.core(f.attr)
        if found is None:
            return _CANDIDATE
        attr, sub = found
        multi = self.multi(attr)
        if multi is not None:
            specs, having = multi
            if sub is None:
                if isinstance(f, Present):
                    if attr.name == _GROUPS:  # every membership is a non-empty element
                        return having(_exact(true()))
                    return _CANDIDATE  # "emails pr": any non-empty element, not indexed
                sub = attr.sub_attribute("value")
                if sub is None:
                    return _CANDIDATE
            spec = specs.get(sub.name)
            if spec is None:
                return _CANDIDATE
            return _leaf(f, spec, sub, having)
        top = _TOP.get((attr.name, sub.name if sub is not None else None))
        if top is None:
            return _CANDIDATE
        return _leaf(f, top, sub or attr)

    def value_path(self, f: ValuePath) -> Translation:
        found = self.core(f.attr)
        if found is None:
            return _CANDIDATE
        attr, sub = found
        multi = self.multi(attr)
        if sub is not None or multi is None:
            return _CANDIDATE
        specs, having = multi
        return having(self.element(f.filter, attr, specs))

    def element(self, f: Filter, parent: Attribute, specs: dict[str, _Spec]) -> Translation:
        """A filter inside ``emails[...]`` or ``groups[...]`` as a predicate on one element's
        row (``specs``: the columns of its sub-attributes)."""
        if isinstance(f, (And, Or)):
            left = self.element(f.left, parent, specs)
            right = self.element(f.right, parent, specs)
            join = and_ if isinstance(f, And) else or_
            return Translation(join(left.clause, right.clause), left.exact and right.exact)
        if isinstance(f, Not):
            return _negate(self.element(f.inner, parent, specs))
        if isinstance(f, ValuePath) or f.attr.urn is not None or f.attr.sub is not None:
            return _CANDIDATE
        sub = parent.sub_attribute(f.attr.name)
        spec = specs.get(sub.name) if sub is not None else None
        if sub is None or spec is None:
            return _CANDIDATE
        return _leaf(f, spec, sub)


def compile_where(f: Filter, registry: SchemaRegistry, workspace_id: str) -> Translation:
    """Translate ``f`` (already validated) into a clause over ``users`` of one workspace.

    The clause does not include ``users.workspace_id = ...`` itself; sub-queries on
    ``user_emails`` are bound to ``workspace_id``. If the result is not exact, the clause
    selects a superset of the matching users.
    """
    return _Compiler(registry, workspace_id).compile(f)


# --- sorting -----------------------------------------------------------------------------------

_SORT_FOLDED: dict[tuple[str, ...], ColumnElement[Any]] = {
    ("userName",): _U.user_name_folded,
    ("displayName",): _U.display_name_folded,
}
_SORT_EXACT: dict[tuple[str, ...], ColumnElement[Any]] = {
    ("userName",): _U.user_name,
    ("displayName",): _U.display_name,
    ("externalId",): _U.external_id,
    ("id",): _U.id,
}


#: ``dateTime`` attributes, as the instants they name (UTC; NULL where not a date-time).
_SORT_CHRONOLOGICAL: dict[tuple[str, ...], ColumnElement[Any]] = {
    ("meta", "created"): _U.created,
    ("meta", "lastModified"): _U.last_modified,
}


def sort_column(sort: SortSpec) -> ColumnElement[Any] | None:
    """The column whose value is the reference backend's sort key for ``sort``, or ``None``."""
    if sort.chronological:
        table = _SORT_CHRONOLOGICAL
    else:
        table = _SORT_EXACT if sort.case_exact else _SORT_FOLDED
    return table.get(tuple(sort.path))


def order_by(sort: SortSpec | None) -> list[ColumnElement[Any]] | None:
    """``ORDER BY`` terms equal to the reference order, or ``None`` if not expressible.

    Missing values sort last ascending and first descending (RFC 7644 §3.4.2.3); ties keep
    insertion order in both directions (a stable sort), hence ``seq`` always ascending.
    """
    if sort is None:
        return [_U.seq.asc()]
    col = sort_column(sort)
    if col is None:
        return None
    nullable = bool(getattr(col, "nullable", True))
    if sort.descending:
        term = col.desc().nulls_first() if nullable else col.desc()
    else:
        term = col.asc().nulls_last() if nullable else col.asc()
    return [term, _U.seq.asc()]


def user_name_key(f: Filter, registry: SchemaRegistry) -> str | None:
    """The operand of ``f`` if it is ``userName eq "..."`` with a case-insensitive ``userName``
    (what identity providers send before every create): the casefolded name, which
    :func:`compile_where` would compare with ``users.user_name_folded`` exactly. ``None`` for
    any other filter. ``f`` is already validated."""
    if not isinstance(f, Compare) or f.op.lower() != "eq" or f.attr.sub is not None:
        return None
    value = f.value
    if not isinstance(value, str) or "\x00" in value:
        return None
    found = _Compiler(registry, "").core(f.attr)
    if found is None:
        return None
    attr, _ = found
    if attr.name != "userName" or attr.case_exact:
        return None
    if attr.type not in (AttrType.STRING, AttrType.REFERENCE):
        return None
    return value.casefold()
