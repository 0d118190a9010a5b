"""SCIM filters (RFC 7644 §3.4.2.2): the one import point, and :func:`compile_filter`.

A filter's text is parsed by :mod:`scimcore.filter_parser` (on ``scim2-filter-parser``) into
the tree of :mod:`scimcore.filter_tree` (which also renders it back to text), and evaluated in
memory by :mod:`scimcore.filter_eval`; the SQL backend compiles the same tree to SQL. This
module re-exports all of it and states the semantics the three share.

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

from .filter_eval import element_matcher, matches, matches_element, validate
from .filter_parser import MAX_DEPTH, parse_filter
from .filter_tree import (
    And,
    AttrRef,
    Compare,
    Filter,
    Not,
    Or,
    Present,
    Value,
    ValuePath,
    render,
    render_ref,
)
from .schema import CacheSlot, SchemaRegistry

__all__ = [
    "MAX_DEPTH",
    "And",
    "AttrRef",
    "Compare",
    "Filter",
    "Not",
    "Or",
    "Present",
    "Value",
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

#: Validated filters by their text, on each registry: a lookup's filter is compiled more than
#: once (to check it, to read it with the authentication on a storage's fast path, by the
#: query). Only short texts are kept (IdP lookups are), so the cache's memory stays small.
_FILTERS: CacheSlot[str, Filter] = CacheSlot("filters.compiled", 512)
_CACHED_TEXT_MAX = 512


def compile_filter(text: str, registry: SchemaRegistry) -> Filter:
    """Parse and validate a filter (RFC 7644 §3.4.2.2); raises :class:`InvalidFilterError`."""
    cacheable = len(text) <= _CACHED_TEXT_MAX
    if cacheable:
        cached = registry.cache(_FILTERS).get(text)
        if cached is not None:
            return cached
    f = parse_filter(text)
    validate(f, registry)
    return registry.cache(_FILTERS).put(text, f) if cacheable else f
