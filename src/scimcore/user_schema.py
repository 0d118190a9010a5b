"""The built-in schemas: the User (RFC 7643 §4.1), the enterprise extension (§4.3), the
attributes common to every resource (§3.1) and the User resource type (§6).

Declared once here as :mod:`scimcore.attributes` values; everything else (``/Schemas``,
normalisation, projection, PATCH mutability, filter case rules) is driven by them.
"""

from __future__ import annotations

from typing import Any

from .attributes import Attribute, AttrType, Mutability, ResourceType, Returned, Schema, Uniqueness

__all__ = [
    "COMMON_ATTRIBUTES",
    "CORE_USER_SCHEMA",
    "CORE_USER_URN",
    "ENTERPRISE_USER_SCHEMA",
    "ENTERPRISE_USER_URN",
    "USER_RESOURCE_TYPE",
]


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
