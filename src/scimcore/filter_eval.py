"""Filters evaluated in memory: a filter tree compiled, against the schemas, into a predicate.

Compiling resolves every attribute reference and checks every operator and operand against
the attribute metadata (:func:`validate`), so a filter that compiles never raises on a
document; :func:`matches` and :func:`matches_element` then answer RFC 7644 §3.4.2.2 with the
semantics listed in :mod:`scimcore.filters`. Compiled predicates are cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from .errors import InvalidFilterError
from .filter_tree import (
    COMPARE_OPS,
    ORDER_OPS,
    SUBSTRING_OPS,
    And,
    AttrRef,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    Value,
    ValuePath,
    render_ref,
    render_value,
)
from .schema import (
    MAPPING,
    Attribute,
    AttrType,
    CacheSlot,
    Schema,
    SchemaRegistry,
    parse_datetime,
)

__all__ = ["element_matcher", "matches", "matches_element", "validate"]


# --- compilation to predicates -------------------------------------------------------------------

_Doc: TypeAlias = Mapping[str, Any]
_Pred: TypeAlias = Callable[[_Doc], bool]
_Test: TypeAlias = Callable[[Any], bool]
_Getter: TypeAlias = Callable[[_Doc], _Doc | None]


def _identity(doc: _Doc) -> _Doc | None:
    return doc


def _nested(key: str) -> _Getter:
    def get(doc: _Doc) -> _Doc | None:
        inner = doc.get(key)
        return inner if isinstance(inner, MAPPING) else None

    return get


def _values(container: _Doc, attr: Attribute, sub: Attribute | None) -> list[Any]:
    """The non-null values of ``attr`` (or of its sub-attribute ``sub``) in ``container``."""
    raw = container.get(attr.name)
    if raw is None:
        return []
    items: Sequence[Any] = raw if attr.multi_valued and isinstance(raw, list) else (raw,)
    if sub is None:
        return [item for item in items if item is not None]
    out: list[Any] = []
    for item in items:
        if isinstance(item, MAPPING):
            value = item.get(sub.name)
            if value is None:
                continue
            if sub.multi_valued and isinstance(value, list):
                out.extend(v for v in value if v is not None)
            else:
                out.append(value)
    return out


def _non_empty(value: Any) -> bool:
    """RFC 7644 §3.4.2.2 ``pr``: a non-empty or non-null value, or a non-empty complex node."""
    if value is None:
        return False
    if isinstance(value, str):
        return value != ""
    if isinstance(value, (list, tuple)):
        return any(_non_empty(v) for v in value)
    if isinstance(value, MAPPING):
        return any(_non_empty(v) for v in value.values())
    return True


def _ordered_test(op: str, operand: Any, convert: Callable[[Any], Any]) -> _Test:
    """A test comparing ``convert(value)`` with ``operand``; ``convert`` yields None on mismatch."""

    def eq(v: Any) -> bool:
        c = convert(v)
        return c is not None and bool(c == operand)

    def gt(v: Any) -> bool:
        c = convert(v)
        return c is not None and bool(c > operand)

    def ge(v: Any) -> bool:
        c = convert(v)
        return c is not None and bool(c >= operand)

    def lt(v: Any) -> bool:
        c = convert(v)
        return c is not None and bool(c < operand)

    def le(v: Any) -> bool:
        c = convert(v)
        return c is not None and bool(c <= operand)

    return {"eq": eq, "gt": gt, "ge": ge, "lt": lt, "le": le}[op]


def _string_test(op: str, operand: str, case_exact: bool) -> _Test:
    """String comparison (RFC 7644 §3.4.2.2, RFC 7643 §2.2 ``caseExact``)."""
    if not case_exact:
        operand = operand.casefold()

        def convert(v: Any) -> str | None:
            return v.casefold() if isinstance(v, str) else None

    else:

        def convert(v: Any) -> str | None:
            return v if isinstance(v, str) else None

    if op == "co":
        return lambda v: (c := convert(v)) is not None and operand in c
    if op == "sw":
        return lambda v: (c := convert(v)) is not None and c.startswith(operand)
    if op == "ew":
        return lambda v: (c := convert(v)) is not None and c.endswith(operand)
    return _ordered_test(op, operand, convert)


def _number(v: Any) -> int | float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _boolean(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _value_test(op: str, value: Value, leaf: Attribute, label: str) -> _Test:
    """The per-value test of ``label op value`` for an attribute of type ``leaf.type``.

    Raises :class:`InvalidFilterError` where RFC 7644 §3.4.2.2 requires it (ordering on boolean
    or binary attributes) and for operands of the wrong kind. ``op`` is never ``ne``.
    """
    kind = leaf.type
    shown = repr(value) if isinstance(value, float) else render_value(value)

    def wrong_kind(expected: str) -> InvalidFilterError:
        return InvalidFilterError(
            f"'{label}' is of type {kind.value}: expected {expected}, got {shown}"
        )

    string_like = kind in (AttrType.STRING, AttrType.REFERENCE, AttrType.BINARY)
    if (op in ORDER_OPS and kind in (AttrType.BOOLEAN, AttrType.BINARY)) or (
        op in SUBSTRING_OPS and not string_like
    ):
        raise InvalidFilterError(f"'{op}' is not allowed on the {kind.value} attribute '{label}'")
    if string_like:
        if not isinstance(value, str):
            raise wrong_kind("a string")
        return _string_test(op, value, leaf.case_exact)
    if kind is AttrType.BOOLEAN:
        if not isinstance(value, bool):
            raise wrong_kind("true or false")
        return _ordered_test(op, value, _boolean)
    if kind in (AttrType.INTEGER, AttrType.DECIMAL):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong_kind("a number")
        return _ordered_test(op, value, _number)
    if kind is AttrType.DATETIME:
        moment = parse_datetime(value) if isinstance(value, str) else None
        if moment is None:
            raise wrong_kind("an ISO 8601 date-time string")
        return _ordered_test(op, moment, parse_datetime)
    raise InvalidFilterError(f"'{label}' is complex: name one of its sub-attributes")


class _Scope:
    """Resolves attribute references (RFC 7644 §3.10) to a getter and attribute metadata."""

    def resolve(self, ref: AttrRef) -> tuple[_Getter, Attribute, Attribute | None]:
        raise NotImplementedError

    @property
    def relative(self) -> bool:
        return False


class _ResourceScope(_Scope):
    """Top-level references: core and common attributes, extension attributes under their URN."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    def resolve(self, ref: AttrRef) -> tuple[_Getter, Attribute, Attribute | None]:
        registry = self.registry
        label = render_ref(ref)
        schema: Schema | None = None
        if ref.urn is not None:
            schema = registry.schema(ref.urn)
            if schema is None:
                raise InvalidFilterError(f"unknown attribute '{label}': unknown schema {ref.urn}")
        try:
            schema, attr = registry.top_level(ref.name, schema)
        except KeyError:
            if schema is not registry.core:
                raise InvalidFilterError(f"unknown attribute '{label}'") from None
            try:  # urn:...:core:2.0:User:id names a common attribute
                schema, attr = registry.top_level(ref.name)
            except KeyError:
                raise InvalidFilterError(f"unknown attribute '{label}'") from None
        in_extension = schema is not None and schema is not registry.core
        getter = _nested(schema.id) if schema is not None and in_extension else _identity
        sub: Attribute | None = None
        if ref.sub is not None:
            if not attr.is_complex:
                raise InvalidFilterError(
                    f"unknown attribute '{label}': '{attr.name}' is not complex"
                )
            sub = attr.sub_attribute(ref.sub)
            if sub is None:
                raise InvalidFilterError(f"unknown attribute '{label}'")
        return getter, attr, sub


class _ElementScope(_Scope):
    """References inside ``attr[...]``: sub-attributes of one complex value (RFC 7644 §3.4.2.2)."""

    def __init__(self, parent: Attribute) -> None:
        self.parent = parent

    @property
    def relative(self) -> bool:
        return True

    def resolve(self, ref: AttrRef) -> tuple[_Getter, Attribute, Attribute | None]:
        label = f"{self.parent.name}[{render_ref(ref)}]"
        if ref.urn is not None or ref.sub is not None:
            raise InvalidFilterError(
                f"'{label}': inside [...] only sub-attribute names of the parent are allowed"
            )
        attr = self.parent.sub_attribute(ref.name)
        if attr is None:
            raise InvalidFilterError(f"unknown attribute '{self.parent.name}.{ref.name}'")
        return _identity, attr, None


def _present_pred(getter: _Getter, attr: Attribute, sub: Attribute | None) -> _Pred:
    def pred(doc: _Doc) -> bool:
        container = getter(doc)
        return container is not None and any(_non_empty(v) for v in _values(container, attr, sub))

    return pred


def _compile(f: Filter, scope: _Scope) -> _Pred:
    """Compile ``f`` into a predicate, resolving and checking every reference once."""
    if isinstance(f, And):
        left, right = _compile(f.left, scope), _compile(f.right, scope)
        return lambda doc: left(doc) and right(doc)
    if isinstance(f, Or):
        left, right = _compile(f.left, scope), _compile(f.right, scope)
        return lambda doc: left(doc) or right(doc)
    if isinstance(f, Not):
        inner = _compile(f.inner, scope)
        return lambda doc: not inner(doc)
    if isinstance(f, ValuePath):
        return _compile_value_path(f, scope)
    getter, attr, sub = scope.resolve(f.attr)
    if isinstance(f, Present):
        return _present_pred(getter, attr, sub)
    return _compile_compare(f, getter, attr, sub)


def _compile_value_path(f: ValuePath, scope: _Scope) -> _Pred:
    if scope.relative:
        raise InvalidFilterError("a [...] filter cannot be nested inside another one")
    if f.attr.sub is not None:
        raise InvalidFilterError(
            f"the attribute before '[' must not have a sub-attribute: '{render_ref(f.attr)}'"
        )
    getter, attr, _ = scope.resolve(f.attr)
    if not attr.is_complex:
        raise InvalidFilterError(
            f"'{render_ref(f.attr)}[...]' needs a complex attribute; "
            f"'{attr.name}' is {attr.type.value}"
        )
    inner = _compile(f.filter, _ElementScope(attr))

    def pred(doc: _Doc) -> bool:
        container = getter(doc)
        if container is None:
            return False
        return any(isinstance(e, MAPPING) and inner(e) for e in _values(container, attr, None))

    return pred


def _compile_compare(f: Compare, getter: _Getter, attr: Attribute, sub: Attribute | None) -> _Pred:
    op, value = f.op.lower(), f.value
    label = render_ref(f.attr)
    if op not in COMPARE_OPS:
        raise InvalidFilterError(f"the operator '{f.op}' is not supported")
    leaf = sub or attr
    if leaf.is_complex:
        implicit = attr.sub_attribute("value") if sub is None and attr.multi_valued else None
        if implicit is None:
            raise InvalidFilterError(
                f"'{label}' is complex: compare one of its sub-attributes instead"
            )
        sub = leaf = implicit
    if value is None:
        if op not in ("eq", "ne"):
            raise InvalidFilterError(f"'{label} {op} null': null only works with eq and ne")
        present = _present_pred(getter, attr, sub)
        return present if op == "ne" else (lambda doc: not present(doc))
    test = _value_test("eq" if op == "ne" else op, value, leaf, label)

    if sub is None and not attr.multi_valued:  # one value at most: no list, no generator
        name = attr.name

        def any_value(doc: _Doc) -> bool:
            container = getter(doc)
            if container is None:
                return False
            found = container.get(name)
            return found is not None and test(found)

    else:

        def any_value(doc: _Doc) -> bool:
            container = getter(doc)
            return container is not None and any(test(v) for v in _values(container, attr, sub))

    if op == "ne":
        return lambda doc: not any_value(doc)
    return any_value


#: Compiled predicates, on each registry: of resource filters by filter; of value filters by
#: filter and the attribute's identity (the entry holds the attribute, so that identity is not
#: reused while cached).
_RESOURCE: CacheSlot[Filter, _Pred] = CacheSlot("filter_eval.resource", 512)
_ELEMENT: CacheSlot[tuple[Filter, int], tuple[Attribute, _Pred]] = CacheSlot(
    "filter_eval.element", 512
)


def _resource_pred(f: Filter, registry: SchemaRegistry) -> _Pred:
    return registry.cache(_RESOURCE).get_or_make(f, lambda f: _compile(f, _ResourceScope(registry)))


def _element_pred(f: Filter, attribute: Attribute, registry: SchemaRegistry | None) -> _Pred:
    """The predicate of the value filter ``f`` on ``attribute``: cached on ``registry`` when
    one is given (the core always gives its own), compiled afresh otherwise."""
    key = (f, id(attribute))
    cache = registry.cache(_ELEMENT) if registry is not None else None
    entry = cache.get(key) if cache is not None else None
    if entry is not None and entry[0] is attribute:
        return entry[1]
    if not attribute.is_complex:
        raise InvalidFilterError(f"'{attribute.name}[...]' needs a complex attribute")
    pred = _compile(f, _ElementScope(attribute))
    if cache is not None:
        cache.put(key, (attribute, pred))
    return pred


# --- public evaluation API -----------------------------------------------------------------------


def validate(f: Filter, registry: SchemaRegistry) -> None:
    """Check ``f`` against the schemas of ``registry`` (RFC 7644 §3.4.2.2).

    Raises :class:`InvalidFilterError` for unknown attributes, ``gt``/``ge``/``lt``/``le`` on
    boolean or binary attributes, ``co``/``sw``/``ew`` on non-string attributes, operands of the
    wrong kind, comparisons on complex attributes without a sub-attribute (except the ``value``
    of a multi-valued complex attribute) and ``[...]`` on non-complex attributes.
    """
    _resource_pred(f, registry)


def matches(f: Filter, doc: Mapping[str, Any], registry: SchemaRegistry) -> bool:
    """Whether the resource ``doc`` matches ``f`` (RFC 7644 §3.4.2.2).

    ``doc`` uses canonical attribute names, with extension attributes in a dict under their
    schema URN. Raises :class:`InvalidFilterError` only if ``f`` does not :func:`validate`.
    """
    return _resource_pred(f, registry)(doc)


def element_matcher(
    f: Filter, attribute: Attribute, *, registry: SchemaRegistry | None = None
) -> Callable[[Mapping[str, Any]], bool]:
    """:func:`matches_element` for one filter and attribute, as a reusable predicate (for
    callers that test many values with it)."""
    return _element_pred(f, attribute, registry)


def matches_element(
    f: Filter,
    element: Mapping[str, Any],
    attribute: Attribute,
    *,
    registry: SchemaRegistry | None = None,
) -> bool:
    """Whether one value ``element`` of the complex ``attribute`` matches the value filter ``f``.

    ``f`` is the ``valFilter`` inside ``attr[...]`` (RFC 7644 §3.4.2.2), as used by PATCH paths
    such as ``emails[type eq "work"].value`` (RFC 7644 §3.5.2); its references name
    sub-attributes of ``attribute``. With the ``registry`` that declares ``attribute``, the
    compiled filter is cached on it.
    """
    return _element_pred(f, attribute, registry)(element)
