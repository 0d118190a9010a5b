"""The discovery endpoints (RFC 7644 §4): ``/ServiceProviderConfig``, ``/ResourceTypes``,
``/Schemas``, answered from the configuration and the schema registry alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .config import ServiceConfig
from .errors import NotFoundError
from .messages import (
    AuthenticationScheme,
    BulkSupport,
    ListResponse,
    ScimRequest,
    ScimResponse,
    ServiceProviderConfig,
    converter,
)
from .responses import json_response
from .schema import Schema, SchemaRegistry

__all__ = [
    "OAUTH_CLIENT_CREDENTIALS",
    "OAUTH_CLIENT_CREDENTIALS_AND_CODE",
    "resource_types",
    "schemas",
    "service_provider_config",
]


#: The OAuth 2.0 client credentials scheme (issue 20), listed when the storage keeps clients.
OAUTH_CLIENT_CREDENTIALS = AuthenticationScheme(
    "oauthbearertoken",
    "OAuth 2.0 client credentials",
    "Access tokens from the token endpoint /oauth/token (RFC 6749 §4.4; the client "
    "authenticated by a secret, or by a JWT assertion of a federated identity, RFC 7523), "
    "sent as 'Authorization: Bearer' (RFC 6750).",
    primary=False,
)


#: The OAuth 2.0 scheme when the authorization-code grant is offered too (issue 20).
OAUTH_CLIENT_CREDENTIALS_AND_CODE = AuthenticationScheme(
    "oauthbearertoken",
    "OAuth 2.0 client credentials and authorization code",
    "Access tokens from the token endpoint /oauth/token, by the client credentials grant "
    "(RFC 6749 §4.4; the client authenticated by a secret, or by a JWT assertion of a "
    "federated identity, RFC 7523) or the authorization code grant (§4.1, authorize endpoint "
    "/oauth/authorize, PKCE S256), sent as 'Authorization: Bearer' (RFC 6750).",
    primary=False,
)


def service_provider_config(
    config: ServiceConfig, oauth: bool = False, authorization_code: bool = False
) -> ScimResponse:
    """``GET /ServiceProviderConfig`` (RFC 7644 §4, RFC 7643 §5); ``oauth``: the OAuth client
    credentials are accepted too (:data:`OAUTH_CLIENT_CREDENTIALS`); ``authorization_code``:
    and the authorization-code grant is offered (:data:`OAUTH_CLIENT_CREDENTIALS_AND_CODE`)."""
    spc = ServiceProviderConfig(
        max_results=config.max_count,
        bulk=BulkSupport(max_payload_size=config.max_body_bytes),
    )
    if oauth:
        scheme = OAUTH_CLIENT_CREDENTIALS
        if authorization_code:
            scheme = OAUTH_CLIENT_CREDENTIALS_AND_CODE
        schemes = [*spc.authentication_schemes, scheme]
        spc = attrs.evolve(spc, authentication_schemes=schemes)
    body = converter.unstructure(spc)
    body["meta"] = {
        "resourceType": "ServiceProviderConfig",
        "location": "/ServiceProviderConfig",
    }
    return json_response(200, body)


def _list_of(items: list[dict[str, Any]]) -> ScimResponse:
    return json_response(200, converter.unstructure(ListResponse(len(items), 1, len(items), items)))


def resource_types(
    registries: Sequence[SchemaRegistry], request: ScimRequest, rid: str | None
) -> ScimResponse:
    """``GET /ResourceTypes[/{id}]`` (RFC 7644 §4, RFC 7643 §6): one per registry served."""
    bodies = {
        r.resource_type.id.lower(): r.resource_type.to_dict(
            f"{request.base_url}/ResourceTypes/{r.resource_type.id}"
        )
        for r in registries
    }
    if rid is None:
        return _list_of(list(bodies.values()))
    if rid.lower() not in bodies:
        raise NotFoundError(f"no resource type {rid!r}")
    return json_response(200, bodies[rid.lower()])


def schemas(
    registries: Sequence[SchemaRegistry], request: ScimRequest, rid: str | None
) -> ScimResponse:
    """``GET /Schemas[/{id}]`` (RFC 7644 §4, RFC 7643 §7): the schemas of every registry."""
    found = {s.id.lower(): s for r in registries for s in r.schemas}

    def body(schema: Schema) -> dict[str, Any]:
        return schema.to_dict(f"{request.base_url}/Schemas/{schema.id}")

    if rid is None:
        return _list_of([body(s) for s in found.values()])
    if rid.lower() not in found:
        raise NotFoundError(f"no schema {rid!r}")
    return json_response(200, body(found[rid.lower()]))
