"""Routing: which endpoint a request names, which methods it allows, who answers it.

Routes (relative to the base URL): ``/Users``, ``/Users/{id}``, ``/Users/.search``,
``/.search``, ``/Groups``, ``/Groups/{id}``, ``/Groups/.search`` (unless the configuration
turns Groups off: then 404, R5.3), ``/ServiceProviderConfig``, ``/ResourceTypes[/{id}]``,
``/Schemas[/{id}]``; ``/Bulk`` and ``/Me`` answer 501; a method an endpoint
does not support answers 405 with ``Allow``. Discovery needs no token
(:mod:`scimcore.discovery`); the user endpoints go to :class:`~scimcore.operations.UserOperations`.
"""

from __future__ import annotations

import re

from . import discovery, params
from .authorization import AuthorizationCodes
from .config import ServiceConfig
from .errors import NotFoundError, NotImplementedSCIMError
from .group_operations import GroupOperations
from .messages import ScimRequest, ScimResponse
from .operations import UserOperations, writes_a_user
from .responses import MethodNotAllowed
from .schema import SchemaRegistry
from .workspaces import AuthContext

__all__ = ["Router"]

_ROUTE = re.compile(r"^/*(?P<kind>[^/]*)(?:/(?P<id>[^/]+))?/*$")


def _allow(method: str, path: str, allowed: tuple[str, ...]) -> None:
    if method == "HEAD" and "GET" in allowed:
        return
    if method not in allowed:
        raise MethodNotAllowed(method, path, allowed)


class Router:
    """Sends each request to the handler of its endpoint (raises the SCIM errors of routing)."""

    def __init__(
        self,
        registry: SchemaRegistry,
        config: ServiceConfig,
        users: UserOperations,
        groups: GroupOperations | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.users = users
        #: ``None``: Groups turned off (R5.3).
        self.groups = groups
        self._registries = (registry,) if groups is None else (registry, groups.registry)
        #: Whether OAuth access tokens are accepted (listed in /ServiceProviderConfig).
        self.oauth = False
        #: The authorization-code grant, listed in /ServiceProviderConfig once it is offered.
        self.authorization: AuthorizationCodes | None = None

    def dispatch(self, request: ScimRequest) -> ScimResponse:
        """The response to ``request``; raises :class:`~scimcore.errors.SCIMError`."""
        method = request.method.upper()
        match = _ROUTE.match(request.path or "/")
        if match is None:
            raise NotFoundError(f"no endpoint at {request.path}")
        kind, rid = match.group("kind").lower(), match.group("id")
        if kind == "serviceproviderconfig" and rid is None:
            _allow(method, request.path, ("GET",))
            code = self.authorization is not None and self.authorization.available
            return discovery.service_provider_config(self.config, self.oauth, code)
        if kind == "resourcetypes":
            _allow(method, request.path, ("GET",))
            return discovery.resource_types(self._registries, request, rid)
        if kind == "schemas":
            _allow(method, request.path, ("GET",))
            return discovery.schemas(self._registries, request, rid)
        if kind == "users" and writes_a_user(method, rid):
            return self.users.write(request, method, rid)
        if kind == "groups" and self.groups is not None and writes_a_user(method, rid):
            return self.groups.write(request, method, rid)
        return self.users.read(request, method, kind, rid, self._tenant_route)

    def _tenant_route(
        self, auth: AuthContext, request: ScimRequest, method: str, kind: str, rid: str | None
    ) -> ScimResponse:
        """An authenticated request that writes no user."""
        max_bytes = self.config.max_body_bytes
        if kind == "users":
            if rid is None:
                _allow(method, request.path, ("GET", "POST"))
                # GET or HEAD (the adapters send no body for HEAD); a POST went to write.
                return self.users.search(auth, request, params.query_params(request.query))
            if rid == ".search":
                _allow(method, request.path, ("POST",))
                return self.users.search(auth, request, params.search_body(request, max_bytes))
            _allow(method, request.path, ("GET", "PUT", "PATCH", "DELETE"))
            if method not in ("GET", "HEAD"):  # a write to an id no stored user can have
                raise NotFoundError(f"resource {rid!r} not found")
            return self.users.resource(auth, request, rid)
        if kind == ".search" and rid is None:
            _allow(method, request.path, ("POST",))
            body = params.search_body(request, max_bytes)
            if self.groups is not None:  # RFC 7644 §3.4.3: every resource type
                return self.groups.search_everywhere(auth, request, body)
            return self.users.search(auth, request, body)
        if kind == "bulk" and rid is None:
            raise NotImplementedSCIMError("Bulk operations are not supported (RFC 7644 §3.7)")
        if kind == "me" and rid is None:
            raise NotImplementedSCIMError("/Me is not supported (RFC 7644 §3.11)")
        if kind == "groups" and self.groups is not None:
            return self._groups_route(auth, request, method, rid)
        raise NotFoundError(f"no endpoint at {request.path}")

    def _groups_route(
        self, auth: AuthContext, request: ScimRequest, method: str, rid: str | None
    ) -> ScimResponse:
        """An authenticated request to ``/Groups`` that writes nothing."""
        assert self.groups is not None
        if rid is None:
            _allow(method, request.path, ("GET", "POST"))
            return self.groups.search(auth, request, params.query_params(request.query))
        if rid == ".search":
            _allow(method, request.path, ("POST",))
            body = params.search_body(request, self.config.max_body_bytes)
            return self.groups.search(auth, request, body)
        _allow(method, request.path, ("GET", "PUT", "PATCH", "DELETE"))
        if method not in ("GET", "HEAD"):  # a write to an id no stored group can have
            raise NotFoundError(f"resource {rid!r} not found")
        return self.groups.resource(auth, request, rid)
