"""Request and response values: the sans-IO edge of the core.

:class:`ScimRequest` and :class:`ScimResponse` are what adapters translate framework requests
to and from. The SCIM protocol messages (ListResponse, SearchRequest, ServiceProviderConfig of
RFC 7644 §3.4.2, §3.4.3 and RFC 7643 §5) are attrs classes (un)structured by one cattrs converter
that owns the camelCase renaming.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from attrs import frozen
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _json

__all__ = [
    "LIST_RESPONSE_URN",
    "PATCH_OP_URN",
    "SCIM_CONTENT_TYPE",
    "SEARCH_REQUEST_URN",
    "SPC_URN",
    "AuthenticationScheme",
    "BulkSupport",
    "FilterSupport",
    "ListResponse",
    "ScimRequest",
    "ScimResponse",
    "SearchRequest",
    "ServiceProviderConfig",
    "Supported",
    "converter",
]

SCIM_CONTENT_TYPE = "application/scim+json"
LIST_RESPONSE_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_REQUEST_URN = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PATCH_OP_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SPC_URN = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@frozen
class ScimRequest:
    """One HTTP request, relative to the SCIM base URL.

    ``path`` is what follows the base (``/Users/2819c223``); ``query`` holds the decoded query
    parameters (first value of each); ``headers`` are matched case-insensitively; ``base_url``
    is the absolute SCIM base used for ``meta.location`` and ``Location``.
    """

    method: str
    path: str
    query: Mapping[str, str] = attrs.field(factory=dict)
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_lower_keys)
    body: bytes = b""
    base_url: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@frozen
class ScimResponse:
    """One HTTP response: status, headers and a body (already encoded JSON, or empty)."""

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The decoded body (for tests and tools)."""
        return _json.loads(self.body) if self.body else None


@frozen
class ListResponse:
    """RFC 7644 §3.4.2 ListResponse; ``resources`` are already-projected documents."""

    total_results: int
    start_index: int
    items_per_page: int
    resources: list[dict[str, Any]]
    schemas: list[str] = attrs.field(factory=lambda: [LIST_RESPONSE_URN])


@frozen
class SearchRequest:
    """RFC 7644 §3.4.3 body of ``POST /.search``; every member optional."""

    attributes: list[str] | None = None
    excluded_attributes: list[str] | None = None
    filter: str | None = None
    sort_by: str | None = None
    sort_order: str | None = None
    start_index: int | None = None
    count: int | None = None


@frozen
class Supported:
    """A ``{"supported": bool}`` feature of the ServiceProviderConfig (RFC 7643 §5)."""

    supported: bool


@frozen
class FilterSupport:
    """The ``filter`` feature of the ServiceProviderConfig, with ``maxResults`` (RFC 7643 §5)."""

    supported: bool
    max_results: int


@frozen
class BulkSupport:
    """The ``bulk`` feature of the ServiceProviderConfig (RFC 7643 §5): not supported."""

    supported: bool = False
    max_operations: int = 0
    max_payload_size: int = 0


@frozen
class AuthenticationScheme:
    """One of the ServiceProviderConfig's ``authenticationSchemes`` (RFC 7643 §5)."""

    type: str
    name: str
    description: str
    primary: bool = True


@frozen
class ServiceProviderConfig:
    """RFC 7643 §5: the features this service provider supports."""

    max_results: int
    documentation_uri: str = "https://github.com/scimcore/scimcore"
    schemas: list[str] = attrs.field(factory=lambda: [SPC_URN])
    patch: Supported = Supported(True)
    bulk: BulkSupport = BulkSupport()
    change_password: Supported = Supported(False)
    sort: Supported = Supported(True)
    etag: Supported = Supported(True)
    authentication_schemes: list[AuthenticationScheme] = attrs.field(
        factory=lambda: [
            AuthenticationScheme(
                "oauthbearertoken",
                "OAuth Bearer Token",
                "Authentication with a workspace's secret token (RFC 6750).",
            )
        ]
    )

    @property
    def filter(self) -> FilterSupport:
        return FilterSupport(True, self.max_results)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _configure(conv: cattrs.Converter) -> cattrs.Converter:
    for cls in (SearchRequest, BulkSupport, FilterSupport, AuthenticationScheme, Supported):
        fields = attrs.fields(cls)
        renames = {f.name: override(rename=_camel(f.name)) for f in fields}
        unstructure: Any = make_dict_unstructure_fn  # its **overrides are typed too narrowly
        structure: Any = make_dict_structure_fn
        conv.register_unstructure_hook(cls, unstructure(cls, conv, **renames))
        conv.register_structure_hook(cls, structure(cls, conv, **renames))

    def list_response(value: ListResponse) -> dict[str, Any]:
        return {
            "schemas": value.schemas,
            "totalResults": value.total_results,
            "startIndex": value.start_index,
            "itemsPerPage": value.items_per_page,
            "Resources": value.resources,
        }

    def spc(value: ServiceProviderConfig) -> dict[str, Any]:
        out: dict[str, Any] = {
            _camel(f.name): conv.unstructure(getattr(value, f.name))
            for f in attrs.fields(ServiceProviderConfig)
            if f.name != "max_results"
        }
        out["filter"] = conv.unstructure(value.filter)
        return out

    conv.register_unstructure_hook(ListResponse, list_response)
    conv.register_unstructure_hook(ServiceProviderConfig, spc)
    return conv


converter: cattrs.Converter = _configure(cattrs.Converter())
"""The converter for protocol messages (camelCase on the wire, snake_case in Python)."""
