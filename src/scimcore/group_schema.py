"""The built-in Group schema (RFC 7643 §4.2, §8.7.1) and the Group resource type (§6).

Declared once here as :mod:`scimcore.attributes` values, like :mod:`scimcore.user_schema`;
a :class:`~scimcore.schema.SchemaRegistry` built on :data:`GROUP_RESOURCE_TYPE` drives
normalisation, projection, PATCH and filters of groups exactly as the user registry does
for users. ``members`` is not kept in the group's document: the storage holds it as rows
(see :mod:`scimcore.groups`); the attribute is declared here for ``/Schemas``, filters and
projection.
"""

from __future__ import annotations

from .attributes import Attribute, AttrType, Mutability, ResourceType, Schema

# ``members`` has ``value``, ``$ref`` and ``type`` (RFC 7643 §8.7.1); a ``display`` a client
# sends (Okta does) is ignored, and none is returned (see docs/decisions.md, Groups).

__all__ = ["ADSCIM_GROUP_URN", "CORE_GROUP_SCHEMA", "CORE_GROUP_URN", "GROUP_RESOURCE_TYPE"]

CORE_GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"

#: The extra schema URN Entra lists in a create-group body (idp-quirks Entra 9): tolerated.
ADSCIM_GROUP_URN = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"

_IMM = Mutability.IMMUTABLE

CORE_GROUP_SCHEMA = Schema(
    id=CORE_GROUP_URN,
    name="Group",
    description="Group",
    attributes=(
        Attribute(
            "displayName",
            description="A human-readable name for the Group.",
            required=True,
        ),
        Attribute(
            "members",
            AttrType.COMPLEX,
            multi_valued=True,
            description="A list of members of the Group.",
            sub_attributes=(
                Attribute(
                    "value",
                    description="Identifier of the member of this Group.",
                    case_exact=True,
                    mutability=_IMM,
                ),
                Attribute(
                    "$ref",
                    AttrType.REFERENCE,
                    description="The URI of the member's resource.",
                    mutability=_IMM,
                    reference_types=("User", "Group"),
                ),
                Attribute(
                    "type",
                    description="The type of the member.",
                    mutability=_IMM,
                    canonical_values=("User",),
                ),
            ),
        ),
    ),
)

GROUP_RESOURCE_TYPE = ResourceType(
    id="Group",
    name="Group",
    endpoint="/Groups",
    description="Group",
    schema=CORE_GROUP_SCHEMA,
)
