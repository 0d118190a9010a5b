"""SCIM filters (RFC 7644 §3.4.2.2): parsing, validation, rendering and in-memory evaluation.

Parsing goes through ``scim2-filter-parser`` 0.7.0, confined to this module. Its lexer and its
operator precedence are defective, so this module brings its own tokenizer (JSON numbers and
strings, case-insensitive keywords only as whole words, URN prefixes, ``$ref``) and a subclass of
its grammar with the precedence of RFC 7644 §3.4.2.2 (``not`` over ``and`` over ``or``). The
library's AST is converted at once into the typed, frozen tree below; nothing else in the
package sees the library.

Semantics chosen where RFC 7644 §3.4.2.2 is silent or loose:

* Attribute names, operators and the literals ``true``/``false``/``null`` are case-insensitive
  (RFC 7644 §3.4.2.2: "attribute names and attribute operators used in filters are case
  insensitive"); a keyword is only recognised as a whole word, so ``nullable`` is a name.
* String comparisons honour the attribute's ``caseExact`` (RFC 7643 §2.2): when it is false both
  sides are compared casefolded, also for ``gt``/``ge``/``lt``/``le`` (lexicographic order).
* ``dateTime`` values (RFC 7643 §2.3.5) compare chronologically; a value without an offset is
  taken as UTC. A comparison value that is not an ISO 8601 date-time is ``invalidFilter``.
* Multi-valued attributes match if *any* value matches. A comparison on a multi-valued complex
  attribute without a sub-attribute (``emails eq "a@b"``) compares its ``value`` sub-attribute.
* ``ne`` matches when *no* value equals the operand, so an absent attribute matches ``ne`` and
  ``x ne v`` is exactly ``not (x eq v)``.
* ``pr`` matches a non-empty value: a non-empty string, a non-empty list, a complex value with
  at least one present sub-attribute, or any other non-null value.
* ``x eq null`` is ``not (x pr)`` and ``x ne null`` is ``x pr``; other operators with ``null``
  are ``invalidFilter``.
* Comparisons never raise on stored data of an unexpected type: such values do not match.
* Entra ID sends ``emails[type eq "work"].value eq "a@b"`` as a filter; it is read as
  ``emails[type eq "work" and value eq "a@b"]``.
* Nesting is limited to :data:`MAX_DEPTH` levels.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from attrs import field, frozen
from scim2_filter_parser import ast as _lib_ast
from scim2_filter_parser.parser import SCIMParser as _LibParser
from sly.lex import Token as _Token

from scimcore.errors import InvalidFilterError
from scimcore.schema import (
    MAPPING,
    Attribute,
    AttrType,
    RegistryCache,
    Schema,
    SchemaRegistry,
    parse_datetime,
    storable_text,
)

__all__ = [
    "MAX_DEPTH",
    "And",
    "AttrRef",
    "Compare",
    "Filter",
    "Not",
    "Or",
    "Present",
    "ValuePath",
    "compile_filter",
    "element_matcher",
    "matches",
    "matches_element",
    "parse_filter",
    "render",
    "render_ref",
    "validate",
]

#: Deepest nesting of filter nodes accepted by :func:`parse_filter`.
MAX_DEPTH = 200

_COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
_ORDER_OPS = frozenset({"gt", "ge", "lt", "le"})
_SUBSTRING_OPS = frozenset({"co", "sw", "ew"})

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


# --- tokenizer -----------------------------------------------------------------------------------

_KEYWORDS: dict[str, tuple[str, Value]] = {
    **{op: (op.upper(), op) for op in _COMPARE_OPS},
    "pr": ("PR", "pr"),
    "and": ("AND", "and"),
    "or": ("OR", "or"),
    "not": ("NOT", "not"),
    "true": ("TRUE", True),
    "false": ("FALSE", False),
    "null": ("NULL", None),
}
_PUNCT = {"(": "LPAREN", ")": "RPAREN", "[": "LBRACKET", "]": "RBRACKET"}

_SCANNER = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<punct>[()\[\]])
    | \.(?P<subattr>[A-Za-z$][A-Za-z0-9_$-]*)
    | (?P<word>[A-Za-z$][A-Za-z0-9_$:.-]*)
    | (?P<number>-?[0-9][A-Za-z0-9_.$]*(?:(?<=[eE])[+-][A-Za-z0-9_.$]*)?)
    """,
    re.VERBOSE | re.DOTALL,
)
_ATTRNAME = re.compile(r"[A-Za-z$][A-Za-z0-9_$-]*")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?P<frac>\.[0-9]+)?(?P<exp>[eE][+-]?[0-9]+)?")


class _SyntaxProblem(Exception):
    """Raised inside the parser; carries the offending token (``None`` at end of input)."""

    def __init__(self, token: Any) -> None:
        super().__init__()
        self.token = token


def _token(type_: str, value: Any, start: int, end: int) -> Any:
    tok = _Token()
    tok.type = type_
    tok.value = value
    tok.lineno = 1
    tok.index = start
    tok.end = end
    return tok


def _path_tokens(word: str, start: int) -> Iterator[Any]:
    """Split ``[urn ":"] name ["." sub]`` into SCHEMA_URI / ATTRNAME / SUBATTR tokens."""
    end = start + len(word)
    urn, colon, rest = word.rpartition(":")
    name, dot, sub = rest.partition(".")
    name_at = start + len(urn) + len(colon)
    if not _ATTRNAME.fullmatch(name):
        what = f"'{name}'" if name else "nothing"
        raise InvalidFilterError(
            f"expected an attribute name at position {name_at} in '{word}', found {what}"
        )
    if dot and not _ATTRNAME.fullmatch(sub):
        raise InvalidFilterError(
            f"invalid sub-attribute '{sub}' at position {name_at + len(name) + 1} in '{word}'"
        )
    if colon:
        yield _token("SCHEMA_URI", urn, start, name_at - 1)
    yield _token("ATTRNAME", name, name_at, name_at + len(name))
    if dot:
        yield _token("SUBATTR", sub, name_at + len(name), end)


def _decode_number(text: str, start: int) -> int | float:
    m = _JSON_NUMBER.fullmatch(text)
    if m is None:
        raise InvalidFilterError(f"invalid number '{text}' at position {start}")
    if m.group("frac") is None and m.group("exp") is None:
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise InvalidFilterError(f"number '{text}' at position {start} is out of range")
    return value


def _decode_string(text: str, start: int) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidFilterError(
            f"invalid string at position {start + exc.pos}: {exc.msg}"
        ) from None
    assert isinstance(value, str)
    if not storable_text(value):  # "\u0000", "\ud800": no stored value holds them
        raise InvalidFilterError(
            f"invalid string at position {start}: U+0000 and lone UTF-16 surrogates "
            "cannot occur in a value"
        )
    return value


def _tokenize(text: str) -> Iterator[Any]:
    """Tokens for the library grammar (same type names as ``SCIMLexer``), values decoded."""
    pos, length, scan = 0, len(text), _SCANNER.match
    while pos < length:
        m = scan(text, pos)
        if m is None:
            char = text[pos]
            if char == '"':
                raise InvalidFilterError(f"unterminated string starting at position {pos}")
            raise InvalidFilterError(f"illegal character {char!r} at position {pos}")
        kind, end = m.lastgroup, m.end()
        if kind == "word":
            word = m.group("word")
            keyword = _KEYWORDS.get(word.lower())
            if keyword is not None:
                yield _token(keyword[0], keyword[1], pos, end)
            else:
                yield from _path_tokens(word, pos)
        elif kind == "string":
            yield _token("COMP_VALUE", _decode_string(m.group("string"), pos), pos, end)
        elif kind == "number":
            yield _token("NUMBER", _decode_number(m.group("number"), pos), pos, end)
        elif kind == "punct":
            char = m.group("punct")
            yield _token(_PUNCT[char], char, pos, end)
        elif kind == "subattr":
            yield _token("SUBATTR", m.group("subattr"), pos, end)
        pos = end


# --- parser --------------------------------------------------------------------------------------

_RULES = vars(_LibParser)


class _Parser(_LibParser):  # type: ignore[misc]
    """The library grammar with the precedence of RFC 7644 §3.4.2.2.

    sly builds a parser's tables only from the rules declared in the class body itself (a
    subclass that only overrides ``precedence`` fails with "No grammar rules are defined"), so
    the library's rule functions are re-declared here, in the library's order.
    """

    precedence = (("left", "OR"), ("left", "AND"), ("right", "NOT"))
    track_positions = False

    filter = _RULES["filter"]
    value_path = _RULES["value_path"]
    attr_exp = _RULES["attr_exp"]
    log_exp = _RULES["log_exp"]
    comp_value = _RULES["comp_value"]
    attr_path = _RULES["attr_path"]
    sub_attr = _RULES["sub_attr"]

    def error(self, token: Any) -> None:
        raise _SyntaxProblem(token)


def _describe(token: Any, text: str) -> str:
    if token is None:
        end = len(text.rstrip())
        last = text.rstrip().rsplit(None, 1)[-1]
        return f"unexpected end of filter at position {end}: '{last}' needs something after it"
    return f"unexpected '{text[token.index : token.end]}' at position {token.index}"


def parse_filter(text: str) -> Filter:
    """Parse a filter expression (RFC 7644 §3.4.2.2, Figure 1) into a :data:`Filter` tree.

    Raises :class:`InvalidFilterError` for any syntax problem, with the position of the offending
    token in the detail. The result is not checked against a schema; see :func:`compile_filter`.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidFilterError("the filter is empty")
    try:
        tree = _Parser().parse(_tokenize(text))
        if tree is None:
            raise InvalidFilterError("the filter is empty")
        return _convert(tree, 0, inside=False)
    except InvalidFilterError:
        raise
    except _SyntaxProblem as exc:
        raise InvalidFilterError(f"invalid filter: {_describe(exc.token, text)}") from None
    except RecursionError:
        raise InvalidFilterError("the filter is nested too deeply") from None
    except Exception as exc:  # anything else the library may raise on odd input
        raise InvalidFilterError(f"invalid filter: {exc}") from None


def _ref(path: Any, *, inside: bool) -> AttrRef:
    sub = path.sub_attr.value if path.sub_attr is not None else None
    ref = AttrRef(path.uri, path.attr_name, sub)
    if inside and (ref.urn is not None or ref.sub is not None):
        raise InvalidFilterError(
            "inside [...] only sub-attribute names of the parent are allowed, "
            f"not '{render_ref(ref)}'"
        )
    return ref


def _value_path_head(namespace: Any, *, inside: bool) -> AttrRef:
    if inside:
        raise InvalidFilterError("a [...] filter cannot be nested inside another one")
    if isinstance(namespace.attr_name, _lib_ast.Filter):
        raise InvalidFilterError("a [...] filter cannot follow another [...] filter")
    return AttrRef(namespace.uri, namespace.attr_name, None)


def _convert(node: Any, depth: int, *, inside: bool) -> Filter:
    """Convert a library AST node into our tree (RFC 7644 §3.4.2.2 grammar)."""
    if depth > MAX_DEPTH:
        raise InvalidFilterError(f"the filter is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, _lib_ast.Filter):
        if node.namespace is not None:  # valuePath
            if node.namespace.sub_attr is not None:
                raise InvalidFilterError(
                    "the attribute before '[' must not have a sub-attribute: "
                    f"'{node.namespace.attr_name}.{node.namespace.sub_attr.value}'"
                )
            head = _value_path_head(node.namespace, inside=inside)
            return ValuePath(head, _convert(node.expr, depth + 1, inside=True))
        inner = _convert(node.expr, depth + (1 if node.negated else 0), inside=inside)
        return Not(inner) if node.negated else inner
    if isinstance(node, _lib_ast.LogExpr):
        left = _convert(node.expr1, depth + 1, inside=inside)
        right = _convert(node.expr2, depth + 1, inside=inside)
        return And(left, right) if node.op == "and" else Or(left, right)
    if isinstance(node, _lib_ast.AttrExpr):
        op = node.value
        path = node.attr_path
        if isinstance(path.attr_name, _lib_ast.Filter):
            # Entra ID: emails[type eq "work"].value eq "x"  ->  emails[type eq "work" and ...]
            vp = path.attr_name
            if vp.namespace.sub_attr is None:
                raise InvalidFilterError(
                    f"'{op}' after ']' needs a sub-attribute, e.g. "
                    f"{vp.namespace.attr_name}[...].value {op} ..."
                )
            head = _value_path_head(vp.namespace, inside=inside)
            sub = AttrRef(None, vp.namespace.sub_attr.value, None)
            leaf: Filter = Present(sub) if op == "pr" else Compare(sub, op, node.comp_value.value)
            return ValuePath(head, And(_convert(vp.expr, depth + 2, inside=True), leaf))
        ref = _ref(path, inside=inside)
        if op == "pr":
            return Present(ref)
        return Compare(ref, op, node.comp_value.value)
    raise InvalidFilterError(f"unsupported filter construct {type(node).__name__}")


# --- rendering -----------------------------------------------------------------------------------


def render_ref(ref: AttrRef) -> str:
    """``[urn ":"] name ["." sub]`` (RFC 7644 §3.10)."""
    text = f"{ref.urn}:{ref.name}" if ref.urn is not None else ref.name
    return f"{text}.{ref.sub}" if ref.sub is not None else text


def _render_value(value: Value) -> str:
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
        return f"{render_ref(f.attr)} {f.op} {_render_value(f.value)}"
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
    shown = repr(value) if isinstance(value, float) else _render_value(value)

    def wrong_kind(expected: str) -> InvalidFilterError:
        return InvalidFilterError(
            f"'{label}' is of type {kind.value}: expected {expected}, got {shown}"
        )

    string_like = kind in (AttrType.STRING, AttrType.REFERENCE, AttrType.BINARY)
    if (op in _ORDER_OPS and kind in (AttrType.BOOLEAN, AttrType.BINARY)) or (
        op in _SUBSTRING_OPS and not string_like
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
    if op not in _COMPARE_OPS:
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


# Compiled predicates, keyed by the filter and the registry (see RegistryCache) or the identity
# of the attribute (the entry holds the attribute, so its identity is not reused while cached).
_CACHE_SIZE = 512
_resource_cache: RegistryCache[Filter, _Pred] = RegistryCache(_CACHE_SIZE)
_element_cache: dict[tuple[Filter, int], tuple[Attribute, _Pred]] = {}


def _resource_pred(f: Filter, registry: SchemaRegistry) -> _Pred:
    pred = _resource_cache.get(f, registry)
    if pred is None:
        pred = _resource_cache.put(f, registry, _compile(f, _ResourceScope(registry)))
    return pred


def _element_pred(f: Filter, attribute: Attribute) -> _Pred:
    key = (f, id(attribute))
    entry = _element_cache.get(key)
    if entry is not None and entry[0] is attribute:
        return entry[1]
    if not attribute.is_complex:
        raise InvalidFilterError(f"'{attribute.name}[...]' needs a complex attribute")
    pred = _compile(f, _ElementScope(attribute))
    if len(_element_cache) >= _CACHE_SIZE:
        _element_cache.clear()
    _element_cache[key] = (attribute, pred)
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


def element_matcher(f: Filter, attribute: Attribute) -> Callable[[Mapping[str, Any]], bool]:
    """:func:`matches_element` for one filter and attribute, as a reusable predicate (for
    callers that test many values with it)."""
    return _element_pred(f, attribute)


def matches_element(f: Filter, element: Mapping[str, Any], attribute: Attribute) -> bool:
    """Whether one value ``element`` of the complex ``attribute`` matches the value filter ``f``.

    ``f`` is the ``valFilter`` inside ``attr[...]`` (RFC 7644 §3.4.2.2), as used by PATCH paths
    such as ``emails[type eq "work"].value`` (RFC 7644 §3.5.2); its references name
    sub-attributes of ``attribute``.
    """
    return _element_pred(f, attribute)(element)


#: Validated filters by their text, per registry: a lookup's filter is compiled twice, once
#: to read it with the authentication (``UserReadAhead``) and once by the query. Only short
#: texts are kept (IdP lookups are), so the cache's memory stays small.
_filter_cache: RegistryCache[str, Filter] = RegistryCache(_CACHE_SIZE)
_CACHED_TEXT_MAX = 512


def compile_filter(text: str, registry: SchemaRegistry) -> Filter:
    """Parse and validate a filter (RFC 7644 §3.4.2.2); raises :class:`InvalidFilterError`."""
    cacheable = len(text) <= _CACHED_TEXT_MAX
    if cacheable:
        cached = _filter_cache.get(text, registry)
        if cached is not None:
            return cached
    f = parse_filter(text)
    validate(f, registry)
    return _filter_cache.put(text, registry, f) if cacheable else f
