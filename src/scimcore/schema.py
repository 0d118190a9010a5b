"""The schema registry: what a service serves, and the one import point of the attribute metadata.

:class:`SchemaRegistry` holds the resource type and its schemas (the built-in User and
enterprise extension of :mod:`scimcore.user_schema`, plus a host's extensions) and resolves
attribute names case-insensitively (RFC 7643 §2.1). The metadata values themselves are
:mod:`scimcore.attributes`; both are re-exported here, where the rest of the package imports
them from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs
from attrs import frozen

from .attributes import (
    MAPPING,
    Attribute,
    AttrType,
    Mutability,
    ResourceType,
    Returned,
    Schema,
    Uniqueness,
    index_by_name,
    parse_datetime,
    parse_utc_datetime,
    storable_text,
)
from .user_schema import (
    COMMON_ATTRIBUTES,
    CORE_USER_SCHEMA,
    CORE_USER_URN,
    ENTERPRISE_USER_SCHEMA,
    ENTERPRISE_USER_URN,
    USER_RESOURCE_TYPE,
)

__all__ = [
    "COMMON_ATTRIBUTES",
    "CORE_USER_SCHEMA",
    "CORE_USER_URN",
    "ENTERPRISE_USER_SCHEMA",
    "ENTERPRISE_USER_URN",
    "MAPPING",
    "USER_RESOURCE_TYPE",
    "AttrType",
    "Attribute",
    "CacheSlot",
    "Mutability",
    "RegistryCache",
    "ResourceType",
    "Returned",
    "Schema",
    "SchemaRegistry",
    "Uniqueness",
    "default_registry",
    "parse_datetime",
    "parse_utc_datetime",
    "storable_text",
]

_COMMON = index_by_name(COMMON_ATTRIBUTES)


_K = TypeVar("_K")
_V = TypeVar("_V")


class RegistryCache(dict[_K, _V]):
    """Values derived from one :class:`SchemaRegistry` (parsed paths, compiled filters, card
    readers), by key; held by the registry (:meth:`SchemaRegistry.cache`), so the core keeps
    no global state. Bounded: cleared when it holds ``size`` entries. A ``dict``, so that a
    hot loop's lookup (``key in cache``, ``cache[key]``, ``cache.get(key)``) is the dict's
    own, not a method's call; entries are added with :meth:`put`."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size

    def put(self, key: _K, value: _V) -> _V:
        """Cache ``value`` for ``key``; returns it."""
        if len(self) >= self._size:
            self.clear()
        self[key] = value
        return value

    def get_or_make(self, key: _K, make: Callable[[_K], _V]) -> _V:
        """The value cached for ``key``, made by ``make(key)`` and cached if there is none."""
        found = self.get(key)
        return found if found is not None else self.put(key, make(key))


@frozen
class CacheSlot(Generic[_K, _V]):
    """Names one cache a module keeps on every registry, and bounds it (an immutable
    module constant: ``_PATHS: CacheSlot[str, PatchPath] = CacheSlot("paths", 1024)``)."""

    name: str
    size: int


class SchemaRegistry:
    """The resource type and schemas a service serves; resolves attribute names.

    Hosts add their own extension schemas with :meth:`add_extension` before serving.
    """

    def __init__(self, resource_type: ResourceType = USER_RESOURCE_TYPE) -> None:
        self._resource_type = resource_type
        self._rebuild()

    def _rebuild(self) -> None:
        #: What other modules derive from this registry (:meth:`cache`): emptied on a change.
        self._caches: dict[str, RegistryCache[Any, Any]] = {}
        rt = self._resource_type
        self._schemas: dict[str, Schema] = {s.id.lower(): s for s in rt.schemas}
        # Unqualified top-level names: a common attribute before a core one of the same name.
        self._top_level: dict[str, tuple[Schema | None, Attribute]] = {
            **{key: (rt.schema, a) for key, a in index_by_name(rt.schema.attributes).items()},
            **{key: (None, a) for key, a in _COMMON.items()},
        }
        #: The core's required top-level strings (``userName``; a Group's ``displayName``).
        self.required_strings: tuple[str, ...] = tuple(
            a.name
            for a in rt.schema.attributes
            if a.required and a.type is AttrType.STRING and not a.multi_valued
        )
        hidden = (Returned.NEVER, Returned.REQUEST)
        sections: dict[str | None, frozenset[str]] = {
            None: frozenset(a.name for a in (*COMMON_ATTRIBUTES, *rt.schema.attributes)),
        }
        for ext, _ in rt.extensions:
            sections[ext.id] = frozenset(a.name for a in ext.attributes)
        self._default_view = {
            key: frozenset(
                a.name
                for a in (
                    (*COMMON_ATTRIBUTES, *rt.schema.attributes)
                    if key is None
                    else next(e for e, _ in rt.extensions if e.id == key).attributes
                )
                if a.returned not in hidden and a.name != "schemas"
            )
            for key in sections
        }

    def cache(self, slot: CacheSlot[_K, _V]) -> RegistryCache[_K, _V]:
        """This registry's cache named by ``slot`` (made on first use; emptied, like every
        value derived from the schemas, when :meth:`add_extension` changes them)."""
        found = self._caches.get(slot.name)
        if found is None:
            found = self._caches.setdefault(slot.name, RegistryCache(slot.size))
        return found

    def default_view(self) -> Mapping[str | None, frozenset[str]]:
        """Per section (``None``: core and common attributes; else an extension URN), the
        names returned when no ``attributes`` parameter is given (RFC 7643 §7 ``returned``):
        everything but ``never`` and ``request`` attributes. Cached; rebuilt on change."""
        return self._default_view

    @property
    def resource_type(self) -> ResourceType:
        return self._resource_type

    @property
    def core(self) -> Schema:
        return self._resource_type.schema

    @property
    def extensions(self) -> tuple[Schema, ...]:
        return tuple(s for s, _ in self._resource_type.extensions)

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return self._resource_type.schemas

    def add_extension(self, schema: Schema, *, required: bool = False) -> None:
        """Register an extension schema on the resource type (RFC 7643 §3.3)."""
        if schema.id.lower() in self._schemas:
            raise ValueError(f"schema {schema.id} is already registered")
        rt = self._resource_type
        self._resource_type = attrs.evolve(rt, extensions=(*rt.extensions, (schema, required)))
        self._rebuild()

    def schema(self, urn: str) -> Schema | None:
        """The schema whose URN is ``urn`` (any case), or ``None``."""
        return self._schemas.get(urn.lower())

    def split_urn(self, name: str) -> tuple[Schema | None, str]:
        """Split ``urn:...:User:name.sub`` into its schema and the rest.

        A name with no known URN prefix is returned with ``None``.
        """
        if ":" not in name:
            return None, name
        lowered = name.lower()
        for schema in self.schemas:
            prefix = schema.id.lower()
            if lowered.startswith(prefix + ":"):
                return schema, name[len(prefix) + 1 :]
            if lowered == prefix:
                return schema, ""
        return None, name

    def top_level(self, name: str, schema: Schema | None = None) -> tuple[Schema | None, Attribute]:
        """Resolve a top-level attribute name; ``schema`` restricts the search to one schema.

        Returns the owning schema (``None`` for the common attributes ``id``, ``externalId``,
        ``meta`` and ``schemas``) and the attribute. Raises ``KeyError`` if unknown.
        """
        if schema is not None:
            attr = schema.attribute(name)
            if attr is None:
                raise KeyError(name)
            return schema, attr
        found = self._top_level.get(name.lower())
        if found is None:
            raise KeyError(name)
        return found

    def extension_urns(self) -> Mapping[str, Schema]:
        return {s.id.lower(): s for s in self.extensions}


def default_registry() -> SchemaRegistry:
    """A registry serving the User resource type with the enterprise extension."""
    return SchemaRegistry()
