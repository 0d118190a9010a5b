"""Attribute metadata (RFC 7643 §2, §7): the types and characteristics, and the frozen values
that declare them.

:class:`Attribute`, :class:`Schema` and :class:`ResourceType` are what a schema is made of; their
``to_dict`` is what ``/Schemas`` and ``/ResourceTypes`` show. Names are matched without regard
to case (RFC 7643 §2.1) through :meth:`Schema.attribute` and :meth:`Attribute.sub_attribute`.
Also here: the value checks every module shares (:func:`storable_text`, the date-time parsers).
The built-in declarations are :mod:`scimcore.user_schema`; the registry that serves them,
:mod:`scimcore.schema`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import attrs
from attrs import frozen

__all__ = [
    "MAPPING",
    "AttrType",
    "Attribute",
    "Mutability",
    "ResourceType",
    "Returned",
    "Schema",
    "Uniqueness",
    "index_by_name",
    "parse_datetime",
    "parse_utc_datetime",
    "storable_text",
]


#: For ``isinstance(value, MAPPING)``: a decoded JSON object is a ``dict``, which this tuple
#: names first, so the usual check is one type comparison, not a call to ``Mapping``'s ABC
#: machinery (a Python-level ``__instancecheck__``: some two dozen per create).
MAPPING = (dict, Mapping)

_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> bool:
    """Whether a string can be a stored value: no U+0000 (PostgreSQL's text cannot hold it)
    and no lone UTF-16 surrogate (not Unicode text; SQL drivers cannot encode it). Values,
    filter operands and resource ids that fail this match nothing that is stored."""
    return _NOT_STORABLE.search(value) is None


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date-time (RFC 7643 §2.3.5) as an aware datetime (UTC if no offset)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def parse_utc_datetime(value: Any) -> datetime | None:
    """:func:`parse_datetime` converted to UTC: the instant a date-time names, what sorting by
    a ``dateTime`` attribute orders by. ``None`` also when it cannot be represented in UTC
    (the first or last hours of the calendar with an offset)."""
    parsed = parse_datetime(value)
    if parsed is None:
        return None
    try:
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


class AttrType(str, Enum):
    """The data types of RFC 7643 §2.3."""

    STRING = "string"
    BOOLEAN = "boolean"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATETIME = "dateTime"
    BINARY = "binary"
    REFERENCE = "reference"
    COMPLEX = "complex"


class Mutability(str, Enum):
    """RFC 7643 §7 ``mutability``."""

    READ_ONLY = "readOnly"
    READ_WRITE = "readWrite"
    IMMUTABLE = "immutable"
    WRITE_ONLY = "writeOnly"


class Returned(str, Enum):
    """RFC 7643 §7 ``returned``."""

    ALWAYS = "always"
    NEVER = "never"
    DEFAULT = "default"
    REQUEST = "request"


class Uniqueness(str, Enum):
    """RFC 7643 §7 ``uniqueness``."""

    NONE = "none"
    SERVER = "server"
    GLOBAL = "global"


def index_by_name(attributes: Iterable[Attribute]) -> dict[str, Attribute]:
    """``attributes`` by lower-case name, for the case-insensitive lookups of RFC 7643 §2.1."""
    return {a.name.lower(): a for a in attributes}


@frozen
class Attribute:
    """One attribute definition (RFC 7643 §7): its type and characteristics."""

    name: str
    type: AttrType = AttrType.STRING
    multi_valued: bool = False
    description: str = ""
    required: bool = False
    case_exact: bool = False
    mutability: Mutability = Mutability.READ_WRITE
    returned: Returned = Returned.DEFAULT
    uniqueness: Uniqueness = Uniqueness.NONE
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()
    _by_name: dict[str, Attribute] = attrs.field(
        init=False, repr=False, eq=False, hash=False, alias="_by_name"
    )

    #: Whether the type is ``complex`` (stored, not a property: it is read for every value).
    is_complex: bool = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_name", index_by_name(self.sub_attributes))
        object.__setattr__(self, "is_complex", self.type is AttrType.COMPLEX)

    def sub_attribute(self, name: str) -> Attribute | None:
        """The sub-attribute called ``name`` (any case), or ``None``."""
        return self._by_name.get(name.lower())

    def to_dict(self) -> dict[str, Any]:
        """The attribute as it appears in a ``/Schemas`` resource (RFC 7643 §7)."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type.value,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability.value,
            "returned": self.returned.value,
            "uniqueness": self.uniqueness.value,
        }
        if self.canonical_values:
            out["canonicalValues"] = list(self.canonical_values)
        if self.type is AttrType.REFERENCE:
            out["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            out["subAttributes"] = [s.to_dict() for s in self.sub_attributes]
        return out


@frozen
class Schema:
    """A schema (RFC 7643 §7): a URN and its top-level attributes."""

    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]
    _by_name: dict[str, Attribute] = attrs.field(
        init=False, repr=False, eq=False, hash=False, alias="_by_name"
    )

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_by_name", index_by_name(self.attributes))

    def attribute(self, name: str) -> Attribute | None:
        """The top-level attribute called ``name`` (any case), or ``None``."""
        return self._by_name.get(name.lower())

    def to_dict(self, location: str) -> dict[str, Any]:
        """The schema as a ``/Schemas`` resource (RFC 7643 §7)."""
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_dict() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": location},
        }


@frozen
class ResourceType:
    """A resource type (RFC 7643 §6): endpoint, core schema and extension schemas."""

    id: str
    name: str
    endpoint: str
    description: str
    schema: Schema
    extensions: tuple[tuple[Schema, bool], ...] = ()

    @property
    def schemas(self) -> tuple[Schema, ...]:
        return (self.schema, *(s for s, _ in self.extensions))

    def to_dict(self, location: str) -> dict[str, Any]:
        """The resource type as a ``/ResourceTypes`` resource (RFC 7643 §6)."""
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.id,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema.id,
            "schemaExtensions": [
                {"schema": s.id, "required": required} for s, required in self.extensions
            ],
            "meta": {"resourceType": "ResourceType", "location": location},
        }
