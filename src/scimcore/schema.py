"""Attribute metadata, declared once (RFC 7643 §2, §7, §8.7).

The declarations here drive ``/Schemas``, request normalisation, output projection
(``returned``), PATCH mutability checks and the case rules of filters (``caseExact``).
Attribute names are matched without regard to case everywhere (RFC 7643 §2.1): lookups go
through :meth:`Schema.attribute` / :meth:`Attribute.sub_attribute`, which fold case.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Generic, TypeVar

import attrs
from attrs import frozen

__all__ = [
    "CORE_USER_SCHEMA",
    "ENTERPRISE_USER_SCHEMA",
    "USER_RESOURCE_TYPE",
    "AttrType",
    "Attribute",
    "Mutability",
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


def _index(attributes: Iterable[Attribute]) -> dict[str, Attribute]:
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
        object.__setattr__(self, "_by_name", _index(self.sub_attributes))
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
        object.__setattr__(self, "_by_name", _index(self.attributes))

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


# --- declaration helpers -------------------------------------------------------------------------

_S = AttrType.STRING
_B = AttrType.BOOLEAN
_C = AttrType.COMPLEX
_R = AttrType.REFERENCE
_RO = Mutability.READ_ONLY


def _a(name: str, description: str, type: AttrType = _S, **kw: Any) -> Attribute:
    return Attribute(name=name, type=type, description=description, **kw)


def _multi(
    name: str,
    description: str,
    types: tuple[str, ...],
    *,
    value_type: AttrType = _S,
    value_case_exact: bool = False,
    extra: tuple[Attribute, ...] = (),
    with_primary: bool = True,
    with_type: bool = True,
    with_display: bool = True,
    mutability: Mutability = Mutability.READ_WRITE,
    value_reference_types: tuple[str, ...] = (),
) -> Attribute:
    """A multi-valued complex attribute with the standard sub-attributes of RFC 7643 §2.4."""
    subs: list[Attribute] = [
        _a(
            "value",
            f"The value of the {name} entry.",
            value_type,
            case_exact=value_case_exact,
            mutability=mutability,
            reference_types=value_reference_types,
        )
    ]
    if with_display:
        subs.append(_a("display", "A human-readable name, primarily used for display purposes."))
    if with_type:
        subs.append(
            _a(
                "type",
                f"A label indicating the {name} entry's function.",
                canonical_values=types,
                mutability=mutability,
            )
        )
    if with_primary:
        subs.append(
            _a(
                "primary",
                "Whether this is the preferred value; at most one value may be primary.",
                _B,
                mutability=mutability,
            )
        )
    subs.extend(extra)
    return _a(
        name,
        description,
        _C,
        multi_valued=True,
        sub_attributes=tuple(subs),
        mutability=mutability,
    )


CORE_USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

CORE_USER_SCHEMA = Schema(
    id=CORE_USER_URN,
    name="User",
    description="User Account",
    attributes=(
        _a(
            "userName",
            "Unique identifier for the User, typically used to sign in. Case-insensitive.",
            required=True,
            uniqueness=Uniqueness.SERVER,
        ),
        _a(
            "name",
            "The components of the user's real name.",
            _C,
            sub_attributes=(
                _a("formatted", "The full name, formatted for display."),
                _a("familyName", "The family name of the User."),
                _a("givenName", "The given name of the User."),
                _a("middleName", "The middle name(s) of the User."),
                _a("honorificPrefix", "The honorific prefix(es) of the User."),
                _a("honorificSuffix", "The honorific suffix(es) of the User."),
            ),
        ),
        _a("displayName", "The name of the User, suitable for display to end-users."),
        _a("nickName", "The casual way to address the user in real life."),
        _a(
            "profileUrl",
            "A fully qualified URL to the User's online profile.",
            _R,
            reference_types=("external",),
        ),
        _a("title", "The user's title, such as 'Vice President'."),
        _a("userType", "The relationship between the organization and the user."),
        _a("preferredLanguage", "The User's preferred written or spoken language."),
        _a("locale", "The User's default location for localizing values."),
        _a("timezone", "The User's time zone in the 'Olson' time zone database format."),
        _a("active", "A Boolean value indicating the User's administrative status.", _B),
        _a(
            "password",
            "The User's cleartext password; never returned.",
            mutability=Mutability.WRITE_ONLY,
            returned=Returned.NEVER,
        ),
        _multi("emails", "Email addresses for the user.", ("work", "home", "other")),
        _multi(
            "phoneNumbers",
            "Phone numbers for the User.",
            ("work", "home", "mobile", "fax", "pager", "other"),
        ),
        _multi(
            "ims",
            "Instant messaging addresses for the User.",
            ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
        ),
        _multi(
            "photos",
            "URLs of photos of the User.",
            ("photo", "thumbnail"),
            value_type=_R,
            value_reference_types=("external",),
        ),
        _a(
            "addresses",
            "A physical mailing address for this User.",
            _C,
            multi_valued=True,
            sub_attributes=(
                _a("formatted", "The full mailing address, formatted for display."),
                _a("streetAddress", "The full street address component."),
                _a("locality", "The city or locality component."),
                _a("region", "The state or region component."),
                _a("postalCode", "The zip code or postal code component."),
                _a("country", "The country name component (ISO 3166-1 alpha-2)."),
                _a(
                    "type",
                    "A label indicating the address' function.",
                    canonical_values=("work", "home", "other"),
                ),
                _a("primary", "Whether this is the preferred mailing address.", _B),
            ),
        ),
        _multi(
            "groups",
            "A list of groups to which the user belongs; read-only, managed via Groups.",
            ("direct", "indirect"),
            with_primary=False,
            mutability=_RO,
            value_reference_types=(),
            extra=(
                _a(
                    "$ref",
                    "The URI of the Group.",
                    _R,
                    mutability=_RO,
                    reference_types=("User", "Group"),
                ),
            ),
        ),
        _multi("entitlements", "A list of entitlements for the User.", ()),
        _multi("roles", "A list of roles for the User.", ()),
        _multi(
            "x509Certificates",
            "A list of certificates issued to the User.",
            (),
            value_type=AttrType.BINARY,
            value_case_exact=True,
        ),
    ),
)

ENTERPRISE_USER_SCHEMA = Schema(
    id=ENTERPRISE_USER_URN,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        _a("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
        _a("costCenter", "Identifies the name of a cost center."),
        _a("organization", "Identifies the name of an organization."),
        _a("division", "Identifies the name of a division."),
        _a("department", "Identifies the name of a department."),
        _a(
            "manager",
            "The User's manager.",
            _C,
            sub_attributes=(
                _a("value", "The id of the SCIM resource representing the User's manager."),
                _a(
                    "$ref", "The URI of the manager's SCIM resource.", _R, reference_types=("User",)
                ),
                _a("displayName", "The displayName of the User's manager.", mutability=_RO),
            ),
        ),
    ),
)

USER_RESOURCE_TYPE = ResourceType(
    id="User",
    name="User",
    endpoint="/Users",
    description="User Account",
    schema=CORE_USER_SCHEMA,
    extensions=((ENTERPRISE_USER_SCHEMA, False),),
)

# Attributes common to every resource (RFC 7643 §3.1), held outside the schemas.
COMMON_ATTRIBUTES: tuple[Attribute, ...] = (
    _a(
        "id",
        "Unique identifier assigned by the service provider.",
        case_exact=True,
        mutability=_RO,
        returned=Returned.ALWAYS,
        uniqueness=Uniqueness.SERVER,
    ),
    _a("externalId", "Identifier defined by the provisioning client.", case_exact=True),
    _a(
        "meta",
        "Resource metadata.",
        _C,
        mutability=_RO,
        sub_attributes=(
            _a("resourceType", "The name of the resource type.", case_exact=True, mutability=_RO),
            _a("created", "When the resource was added.", AttrType.DATETIME, mutability=_RO),
            _a(
                "lastModified",
                "When the resource was last updated.",
                AttrType.DATETIME,
                mutability=_RO,
            ),
            _a("location", "The URI of the resource.", _R, case_exact=True, mutability=_RO),
            _a("version", "The version (ETag) of the resource.", case_exact=True, mutability=_RO),
        ),
    ),
    _a(
        "schemas",
        "The schema URNs of the resource.",
        _R,
        multi_valued=True,
        case_exact=True,
        returned=Returned.ALWAYS,
    ),
)
_COMMON = _index(COMMON_ATTRIBUTES)


class SchemaRegistry:
    """The resource type and schemas a service serves; resolves attribute names.

    Hosts add their own extension schemas with :meth:`add_extension` before serving.
    """

    def __init__(self, resource_type: ResourceType = USER_RESOURCE_TYPE) -> None:
        self._resource_type = resource_type
        self._rebuild()

    def _rebuild(self) -> None:
        rt = self._resource_type
        self._schemas: dict[str, Schema] = {s.id.lower(): s for s in rt.schemas}
        # Unqualified top-level names: a common attribute before a core one of the same name.
        self._top_level: dict[str, tuple[Schema | None, Attribute]] = {
            **{key: (rt.schema, a) for key, a in _index(rt.schema.attributes).items()},
            **{key: (None, a) for key, a in _COMMON.items()},
        }
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


_K = TypeVar("_K")
_V = TypeVar("_V")


class RegistryCache(Generic[_K, _V]):
    """Values derived from a :class:`SchemaRegistry` (parsed paths, compiled filters, card
    readers), keyed by ``key`` and the registry's identity (internal helper).

    An entry keeps the registry and its resource type, which :meth:`SchemaRegistry.add_extension`
    replaces: a stale entry is recognised, and the strong reference keeps the registry's
    identity from being reused while cached. Bounded: cleared when it holds ``size`` entries.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[tuple[_K, int], tuple[SchemaRegistry, ResourceType, _V]] = {}

    def get(self, key: _K, registry: SchemaRegistry) -> _V | None:
        """The value cached for ``key`` and ``registry`` as it is now, or ``None``."""
        entry = self._entries.get((key, id(registry)))
        if entry is not None and entry[0] is registry and entry[1] is registry.resource_type:
            return entry[2]
        return None

    def put(self, key: _K, registry: SchemaRegistry, value: _V) -> _V:
        """Cache ``value`` for ``key`` and ``registry``; returns it."""
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[(key, id(registry))] = (registry, registry.resource_type, value)
        return value


def default_registry() -> SchemaRegistry:
    """A registry serving the User resource type with the enterprise extension."""
    return SchemaRegistry()
