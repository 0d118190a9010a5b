"""Where an attribute lives in a canonical document: a resolved path, and names resolved to it.

A :class:`PatchPath` names one attribute (or sub-attribute, or the elements a value filter
selects) and the document section that holds it: the top level for the core and common
attributes, the extension URN's object for an extension's (RFC 7643 §3.3). :func:`value_at` and
:func:`store_at` read and write the attribute there, keeping the canonical invariant that an
extension section whose last attribute goes disappears.

:func:`walk_members` is the one walk over a *path-less* value, shared by POST/PUT bodies
(:func:`scimcore.converter.normalize_resource`) and PATCH operations without ``path``
(:mod:`scimcore.patch`): member names resolved case-insensitively, dotted and URN-qualified
keys (idp-quirks Entra 5), an extension URN key whose object holds its attributes, and the
members every request ignores (unknown, read-only, ``schemas``: RFC 7644 §3.5.1). Parsing a
PATCH ``path`` text, value filters included, is :mod:`scimcore.path_parser`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from attrs import frozen

from .filters import Filter
from .schema import (
    COMMON_ATTRIBUTES,
    MAPPING,
    Attribute,
    CacheSlot,
    Mutability,
    RegistryCache,
    Schema,
    SchemaRegistry,
)

__all__ = ["PatchPath", "resolve_top", "store_at", "value_at", "walk_members"]


@frozen
class PatchPath:
    """A parsed PATCH ``path`` (RFC 7644 §3.5.2, ``PATH = attrPath / valuePath [subAttr]``).

    ``schema`` owns the attribute (``None`` for the common attributes of RFC 7643 §3.1);
    ``section`` is the document key holding it: the extension URN, or ``None`` at top level.
    """

    schema: Schema | None
    attribute: Attribute
    value_filter: Filter | None = None
    sub_attribute: Attribute | None = None
    section: str | None = None
    text: str = ""

    def __str__(self) -> str:
        return self.text


def resolve_top(
    name: str,
    schema: Schema | None,
    registry: SchemaRegistry,
    *,
    unqualified_extension_names: bool = False,
) -> tuple[Schema | None, Attribute] | None:
    """The owner and attribute of a top-level ``name`` (``schema``: in that schema only), or
    ``None``. ``unqualified_extension_names``: a name no core or common attribute has resolves
    to the one extension that declares it (idp-quirks Entra 8)."""
    try:
        return registry.top_level(name, schema)
    except KeyError:
        pass
    if schema is None and unqualified_extension_names:
        found = [(s, a) for s in registry.extensions if (a := s.attribute(name)) is not None]
        if len(found) == 1:
            return found[0]
    return None


#: Resolved member names, on each registry: every body of an IdP repeats the same few dozen.
_MEMBERS: CacheSlot[tuple[str, str | None, bool], PatchPath] = CacheSlot("paths.members", 1024)


#: Every attribute name any schema of a registry declares, lowered: a member whose name is not
#: one of them is unknown without resolving it (a body of many unknown members stays cheap).
_NAMES: CacheSlot[str, frozenset[str]] = CacheSlot("paths.names", 1)


def _known_names(registry: SchemaRegistry) -> frozenset[str]:
    return registry.cache(_NAMES).get_or_make(
        "names",
        lambda _: frozenset(
            a.name.lower()
            for a in (*COMMON_ATTRIBUTES, *(a for s in registry.schemas for a in s.attributes))
        ),
    )


def _member(
    members: RegistryCache[tuple[str, str | None, bool], PatchPath],
    key: str,
    schema: Schema | None,
    registry: SchemaRegistry,
    unqualified_extension_names: bool,
) -> PatchPath | None:
    """A member name of a path-less value (``name`` or ``name.sub``, within ``schema`` when
    given) as the path it writes, or ``None`` when a client may not write it there: unknown
    (idp-quirks Entra 9), read-only (RFC 7644 §3.5.1), or a dotted key into a multi-valued
    attribute. Resolved once per registry (``members``)."""
    cache_key = (key, schema.id if schema is not None else None, unqualified_extension_names)
    found = members.get(cache_key)
    if found is None:
        found = _resolve_member(key, schema, registry, unqualified_extension_names)
        if found is not None:
            members.put(cache_key, found)
    return found


def _resolve_member(
    key: str, schema: Schema | None, registry: SchemaRegistry, unqualified_extension_names: bool
) -> PatchPath | None:
    top, dot, sub_name = key.partition(".")
    resolved = resolve_top(
        top, schema, registry, unqualified_extension_names=unqualified_extension_names
    )
    if resolved is None:
        return None
    owner, attr = resolved
    if attr.mutability is Mutability.READ_ONLY:
        return None
    sub: Attribute | None = None
    if dot:
        sub = attr.sub_attribute(sub_name) if attr.is_complex else None
        if sub is None or sub.mutability is Mutability.READ_ONLY or attr.multi_valued:
            return None
    section = owner.id if owner is not None and owner is not registry.core else None
    prefix = f"{section}:" if section is not None else ""
    text = f"{prefix}{attr.name}" + (f".{sub.name}" if sub is not None else "")
    return PatchPath(owner, attr, None, sub, section, text)


#: What each top-level key of a path-less value names, on each registry (one cache for each
#: setting of ``unqualified_extension_names``): an attribute's path, an extension's schema (an
#: URN key whose object holds its attributes) or ``None`` (ignored: ``schemas``, read-only...).
#: Every body of an IdP repeats the same few dozen keys: one dict lookup each, not a resolution
#: (a create's walk: 1,000 -> 330 bytecodes). A plain key of no known name is not kept.
_TOP_KEYS: CacheSlot[Any, PatchPath | Schema | None] = CacheSlot("paths.top_keys", 1024)
_TOP_KEYS_UNQUALIFIED: CacheSlot[Any, PatchPath | Schema | None] = CacheSlot(
    "paths.top_keys_unqualified", 1024
)


def _top_key(
    keys: RegistryCache[Any, PatchPath | Schema | None],
    key: Any,
    registry: SchemaRegistry,
    unqualified_extension_names: bool,
) -> PatchPath | Schema | None:
    """What the top-level ``key`` of a path-less value names (see :data:`_TOP_KEYS`), kept in
    ``keys`` unless it is no string or a plain name no schema declares (a body of many unknown
    members neither fills nor clears the cache)."""
    if not isinstance(key, str):
        return None
    if ":" not in key and key.partition(".")[0].lower() not in _known_names(registry):
        return None  # unknown (idp-quirks Entra 9)
    target: PatchPath | Schema | None
    schema, rest = registry.split_urn(key)
    if schema is not None and rest == "":
        target = schema
    elif schema is None and key.lower() == "schemas":
        target = None
    else:
        target = _resolve_member(rest, schema, registry, unqualified_extension_names)
    return keys.put(key, target)


def walk_members(
    value: Mapping[Any, Any],
    registry: SchemaRegistry,
    *,
    unqualified_extension_names: bool = False,
) -> Iterator[tuple[PatchPath | Schema, Any]]:
    """The members of a path-less value, in order, each with the value it carries.

    A member that names an attribute gives its :class:`PatchPath`; an extension URN key
    (``"urn:...:enterprise:2.0:User": {...}``) gives each attribute of its object the same
    way, or, when its value is not an object, the extension :class:`Schema` itself (the
    caller decides what a ``null`` or a wrong type means there). Members a client may not write
    (unknown, read-only, a dotted key into a multi-valued attribute), ``schemas`` and non-string
    keys are skipped.
    """
    keys = registry.cache(_TOP_KEYS_UNQUALIFIED if unqualified_extension_names else _TOP_KEYS)
    for key, member in value.items():
        target = (
            keys[key] if key in keys else _top_key(keys, key, registry, unqualified_extension_names)
        )
        if target is None:
            continue
        if isinstance(target, PatchPath) or not isinstance(member, MAPPING):
            yield target, member
            continue
        members = registry.cache(_MEMBERS)  # the attributes of an extension's object
        for name, inner in member.items():
            if isinstance(name, str):
                p = _member(members, name, target, registry, False)
                if p is not None:
                    yield p, inner


def value_at(doc: Mapping[str, Any], p: PatchPath) -> Any:
    """The value of the attribute of ``p`` in ``doc`` (``None``: absent)."""
    holder = doc if p.section is None else doc.get(p.section)
    return holder.get(p.attribute.name) if isinstance(holder, MAPPING) else None


def store_at(doc: dict[str, Any], p: PatchPath, value: Any) -> None:
    """Set (or, for ``None``, remove) the attribute of ``p``, keeping the section invariant."""
    name = p.attribute.name
    if p.section is None:
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
        return
    section = doc.get(p.section)
    if not isinstance(section, dict):
        if value is None:
            return
        section = doc[p.section] = {}
    if value is None:
        section.pop(name, None)
        if not section:
            del doc[p.section]
    else:
        section[name] = value
