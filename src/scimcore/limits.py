"""The request limits of :class:`~scimcore.config.ServiceConfig` enforced (``docs/limits.md``).

Each check raises the answer RFC 7644 §3.12 gives for its limit, with a detail that names the
limit and its :class:`~scimcore.config.ServiceConfig` field: 413 for the number of PATCH
operations (like the body size, "one or more of the limits for this request have been
exceeded"), 400 ``invalidValue`` for too many values or too long a string, 400 ``invalidFilter``
for too long or too complex a filter. The checks run before anything is stored, and each costs
O(size of what it checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import ServiceConfig
from .errors import InvalidFilterError, InvalidValueError, PayloadTooLargeError
from .filter_tree import And, Filter, Not, Or, ValuePath

__all__ = ["check_document", "check_filter_terms", "check_filter_text", "check_operations"]


def check_operations(count: int, limit: int) -> None:
    """413 when a PATCH carries more than ``limit`` (``max_operations``) operations."""
    if count > limit:
        raise PayloadTooLargeError(
            f"the PATCH has {count} Operations, more than the limit of {limit} "
            "(max_operations): one or more of the limits for this request have been exceeded"
        )


def _within(value: Any, config: ServiceConfig) -> bool:
    """Whether every string and list in the JSON value ``value`` is within its limit: the walk
    every write makes, spelling no path. Spelling each value's path was three quarters of the
    check (an Entra create 7.2 -> 2.5 µs; benchmarks/NOTES.md, session 17), and ``dict`` is
    tested rather than ``Mapping``, whose check costs a third as much again for every number
    and boolean. A string of at most a quarter of ``max_string_bytes`` characters cannot be
    over it (UTF-8 takes at most four bytes a character): only a longer one is encoded."""
    limit, max_values = config.max_string_bytes, config.max_values
    short = limit // 4
    left = [value]
    while left:
        item = left.pop()
        if isinstance(item, str):
            if len(item) > short and len(item.encode("utf-8", "surrogatepass")) > limit:
                return False
        elif isinstance(item, list):
            if len(item) > max_values:
                return False
            left.extend(item)
        elif isinstance(item, dict):  # a JSON object (no other Mapping comes from JSON)
            left.extend(item.values())
    return True


def _check_value(value: Any, where: str, config: ServiceConfig) -> None:
    if not _within(value, config):
        _explain(value, where, config)


def _explain(value: Any, where: str, config: ServiceConfig) -> None:
    """Raise the error of the first string or list of ``value`` over its limit, with its
    path (``where``): the walk :func:`_check_value` makes once it knows one is."""
    if isinstance(value, str):
        limit = config.max_string_bytes
        if len(value) > limit // 4 and len(value.encode("utf-8", "surrogatepass")) > limit:
            raise InvalidValueError(
                f"{where}: a string of more than {limit} bytes, over the limit of {limit} bytes "
                "per string value (max_string_bytes)"
            )
    elif isinstance(value, list):
        if len(value) > config.max_values:
            raise InvalidValueError(
                f"{where}: {len(value)} values, more than the limit of {config.max_values} "
                "values per multi-valued attribute (max_values)"
            )
        for item in value:
            _explain(item, where, config)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _explain(item, f"{where}.{key}" if where else str(key), config)


def _too_small_to_exceed(source: bytes, config: ServiceConfig) -> bool:
    """Whether the JSON text ``source`` cannot hold a value over a limit. In UTF-8 JSON a
    string is never longer in UTF-8 than in the text that encodes it (an escape is longer
    than what it stands for), so none exceeds ``max_string_bytes`` in a text no longer than
    that; UTF-16 and UTF-32 JSON, which the decoder also takes and where the bound fails,
    always hold NUL bytes, and UTF-8 JSON never does. An array of ``n`` values needs ``n - 1``
    commas, so none exceeds ``max_values`` in a text with fewer commas. An Entra create (600
    bytes, 20 commas) is that small: its document is not walked (5 % of a create's
    bytecodes; benchmarks/NOTES.md, session 17)."""
    return (
        len(source) <= config.max_string_bytes
        and source.count(b",") < config.max_values
        and b"\x00" not in source
    )


def check_document(
    doc: Mapping[str, Any],
    config: ServiceConfig,
    before: Mapping[str, Any] | None = None,
    *,
    source: bytes | None = None,
) -> None:
    """400 ``invalidValue`` when a multi-valued attribute of ``doc`` has more than
    ``max_values`` values or a string is longer than ``max_string_bytes``. With ``before``
    (the stored document a PUT or PATCH changes), only the attributes that change are checked:
    a user stored before a limit was lowered can still be written. ``source``: the request
    body ``doc`` was made of, every value of ``doc`` from it (a create); when it is too small
    to hold a value over a limit, nothing is walked."""
    if source is not None and _too_small_to_exceed(source, config):
        return
    if before is None:
        _check_value(dict(doc), "", config)  # top-level paths are the attributes' names
        return
    for key, value in doc.items():
        if before.get(key) == value:
            continue
        if isinstance(value, Mapping):  # an extension's section
            old = before.get(key)
            old_section = old if isinstance(old, Mapping) else {}
            for name, item in value.items():
                if old_section.get(name) != item:
                    _check_value(item, f"{key}:{name}", config)
            continue
        _check_value(value, str(key), config)


def check_filter_text(text: str, config: ServiceConfig) -> None:
    """400 ``invalidFilter`` for a filter longer than ``max_filter_chars``."""
    if len(text) > config.max_filter_chars:
        raise InvalidFilterError(
            f"the filter has {len(text)} characters, more than the limit of "
            f"{config.max_filter_chars} (max_filter_chars)"
        )


def _terms(f: Filter) -> int:
    """The comparisons (``eq``, ``pr``, ...) of a filter, value filters' included."""
    count, stack = 0, [f]
    while stack:
        node = stack.pop()
        if isinstance(node, (And, Or)):
            stack += (node.left, node.right)
        elif isinstance(node, Not):
            stack.append(node.inner)
        elif isinstance(node, ValuePath):
            stack.append(node.filter)
        else:
            count += 1
    return count


def check_filter_terms(f: Filter, config: ServiceConfig) -> None:
    """400 ``invalidFilter`` for a filter of more than ``max_filter_terms`` comparisons."""
    terms = _terms(f)
    if terms > config.max_filter_terms:
        raise InvalidFilterError(
            f"the filter has {terms} comparisons, more than the limit of "
            f"{config.max_filter_terms} (max_filter_terms)"
        )
