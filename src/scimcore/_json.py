"""JSON encoding and decoding, with orjson when it is installed (``pip install scimcore[speed]``).

orjson is about ten times faster than the standard library on SCIM documents (a GET decodes
the stored document and encodes the response; a PATCH does three of each). It is optional,
and the results do not depend on it:

- :func:`loads` accepts what the standard library accepts, except ``NaN`` and ``Infinity``,
  which are not JSON (RFC 8259 §6), and strings with a lone UTF-16 surrogate escape
  (``"\ud800"``, not Unicode text): both are refused either way. Input orjson refuses for
  other reasons (UTF-16, a byte order mark, deep nesting) goes to the standard library, which
  decides; so does text with a run of 19 digits (orjson would turn an integer beyond 64 bits
  into a float).
- :func:`dumps` writes compact UTF-8 (no spaces, non-ASCII as is); values orjson cannot
  encode (integers beyond 64 bits) go to the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import ModuleType
from typing import Any

_orjson: ModuleType | None
try:  # pragma: no cover - which branch runs depends on the environment
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

__all__ = ["accelerated", "clone", "dumps", "dumps_text", "loads"]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def accelerated() -> bool:
    """Whether orjson is in use."""
    return _orjson is not None


def _std_loads(data: bytes | str) -> Any:
    value = json.loads(data, parse_constant=_no_constants)
    try:  # "\ud800" decodes to a lone surrogate, which no UTF-8 text can hold (orjson refuses)
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone UTF-16 surrogate (not valid Unicode)") from None
    return value


#: Every ASCII digit to ``0``, every other byte to ``.``: a run of 19 or more digits is then a
#: plain substring search. Such a run may be an integer beyond 64 bits, which orjson decodes as
#: a float (``1e+23``) where the standard library keeps it exact; such text goes to the
#: standard library (a long digit run inside a string only costs speed). A regular expression
#: (``\d{19}``) did the same seven to ten times slower than orjson decodes the document.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_LONG_RUN = b"0" * 19


def _long_digit_run(data: bytes | str) -> bool:
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    return _LONG_RUN in raw.translate(_DIGITS_AS_ZERO)


def loads(data: bytes | str) -> Any:
    """Decode JSON text; raises ``ValueError`` (or ``RecursionError``) when it is not JSON."""
    if _orjson is not None and not _long_digit_run(data):
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass
    return _std_loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    if _orjson is not None:
        try:
            encoded: bytes = _orjson.dumps(value)
            return encoded
        except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
            pass
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def dumps_text(value: Any) -> str:
    """:func:`dumps` as ``str`` (for text columns)."""
    return dumps(value).decode()


_SCALARS = frozenset({str, bool, int, float, type(None)})


def _py_clone(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: _py_clone(v) for k, v in value.items()}
    if kind is list:
        return [_py_clone(v) for v in value]
    if kind in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {k: _py_clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_py_clone(v) for v in value]
    return value


def clone(value: Any) -> Any:
    """A deep copy of a JSON value (much faster than :func:`copy.deepcopy`): with orjson, an
    encode and a decode, a few times faster again than a copy in Python for a SCIM document;
    what orjson cannot encode (an integer beyond 64 bits) is copied in Python."""
    if _orjson is not None:
        try:
            return _orjson.loads(_orjson.dumps(value))
        except TypeError:  # orjson.JSONEncodeError
            pass
    return _py_clone(value)
