"""Filter text to the filter tree, on ``scim2-filter-parser`` (RFC 7644 §3.4.2.2, Figure 1).

``scim2-filter-parser`` 0.7.0 is confined to this module. Its lexer and its operator precedence
are defective, so this module brings its own tokenizer (JSON numbers and strings,
case-insensitive keywords only as whole words, URN prefixes, ``$ref``) and a subclass of its
grammar with the precedence of RFC 7644 §3.4.2.2 (``not`` over ``and`` over ``or``). The
library's AST is converted at once into the tree of :mod:`scimcore.filter_tree`; nothing else
in the package sees the library. Entra ID's ``emails[type eq "work"].value eq "a@b"`` is read as
``emails[type eq "work" and value eq "a@b"]``; nesting is limited to :data:`MAX_DEPTH` levels.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from scim2_filter_parser import ast as _lib_ast
from scim2_filter_parser.parser import SCIMParser as _LibParser
from sly.lex import Token as _Token

from .errors import InvalidFilterError
from .filter_tree import (
    COMPARE_OPS,
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
)
from .schema import storable_text

__all__ = ["MAX_DEPTH", "parse_filter"]

#: Deepest nesting of filter nodes accepted by :func:`parse_filter`.
MAX_DEPTH = 200


# --- tokenizer -----------------------------------------------------------------------------------

_KEYWORDS: dict[str, tuple[str, Value]] = {
    **{op: (op.upper(), op) for op in COMPARE_OPS},
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
