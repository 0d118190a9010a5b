"""The SCIM service: one request value in, one response value out (RFC 7644).

:class:`ScimService` wires the parts together (storage, schema registry, runtime, config,
workspaces, provisioning, the product API) and is the error boundary: :meth:`ScimService.handle`
is the only place where errors become HTTP responses: a :class:`~scimcore.errors.SCIMError`
becomes its SCIM Error body; anything else is logged and answered with a generic 500 that
carries no traceback. Which endpoint answers is :mod:`scimcore.routing`; the operations on
users are :mod:`scimcore.operations`; reading a request is :mod:`scimcore.params`; the shape
of a response, :mod:`scimcore.responses`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .authorization import AuthorizationCodes
from .config import ServiceConfig
from .errors import SCIMError
from .group_operations import GroupOperations
from .messages import ScimRequest, ScimResponse
from .oauth import OAuthEndpoints
from .oauth_clients import ACCESS_TOKEN_PREFIX, OAuthClients, OAuthStorage
from .operations import UserOperations
from .product import Product
from .provisioning import Event, MailComposer, Provisioner, default_composer
from .responses import error_response, internal_error_response
from .routing import Router
from .runtime import Runtime, system_runtime
from .schema import SchemaRegistry
from .storage import Storage
from .workspaces import Workspaces

__all__ = ["ScimService", "ServiceConfig", "error_response"]

_log = logging.getLogger("scimcore")


class ScimService:
    """A SCIM 2.0 service provider over a :class:`~scimcore.storage.Storage`.

    ``handle`` is thread-safe as long as the storage is. Routes (relative to the base URL):
    ``/Users``, ``/Users/{id}``, ``/Users/.search``, ``/.search``, ``/ServiceProviderConfig``,
    ``/ResourceTypes[/{id}]``, ``/Schemas[/{id}]``, and ``/Groups``, ``/Groups/{id}``,
    ``/Groups/.search`` unless ``config.groups`` is false (R5.3).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        runtime: Runtime | None = None,
        config: ServiceConfig | None = None,
        composer: MailComposer = default_composer,
    ) -> None:
        self.storage = storage
        #: The User schemas served: the storage's (a host's extension is given once, to the
        #: storage: ``SqlStorage(url, registry)``).
        self.registry: SchemaRegistry = storage.registry
        self.runtime = runtime or system_runtime()
        self.config = config or ServiceConfig()
        self.workspaces = Workspaces(storage, self.runtime)
        self.provisioner = Provisioner(
            self.registry, self.runtime, composer, self.config.log_retention
        )
        self._listeners: list[Callable[[Event], None]] = []
        self.product = Product(
            storage,
            self.registry,
            self.runtime,
            self.provisioner,
            self._emit,
            self.config.log_retention,
        )
        """Card Settings, templates, cards, activation emails, seats and the log (R3 to R9)."""
        users = UserOperations(
            storage,
            self.registry,
            self.runtime,
            self.config,
            self.workspaces,
            self.provisioner,
            self._emit,
        )
        groups = None
        if self.config.groups:  # R5.3: fully served, or absent
            groups = GroupOperations(storage.group_registry, self.config, users, self._emit)
        self._router = Router(self.registry, self.config, users, groups)
        self.oauth_clients = OAuthClients(self.workspaces, self.runtime)
        """OAuth 2.0 clients and their secrets (R2.6; :mod:`scimcore.oauth_clients`)."""
        self.authorization = AuthorizationCodes(self.oauth_clients, self.config)
        """Redirect URIs, authorize requests and codes (:mod:`scimcore.authorization`)."""
        self.oauth = OAuthEndpoints(self.oauth_clients, self.config, self.authorization)
        """The token endpoint and its metadata (:mod:`scimcore.oauth`), for the adapters."""
        self._router.authorization = self.authorization
        if isinstance(storage, OAuthStorage):
            self.workspaces.bearer_schemes[ACCESS_TOKEN_PREFIX] = self.oauth_clients.authenticate
            self._router.oauth = True

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every :class:`~scimcore.provisioning.Event`, after the commit
        of the operation that caused it. A listener's exception is logged and swallowed."""
        self._listeners.append(listener)

    def _emit(self, events: list[Event]) -> None:
        for event in events:
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:
                    _log.exception("event listener failed on %s", event.kind)

    def handle(self, request: ScimRequest) -> ScimResponse:
        """Answer one request. Never raises."""
        try:
            return self._router.dispatch(request)
        except SCIMError as exc:
            return error_response(exc)
        except Exception:
            _log.exception("unexpected error in %s %s", request.method, request.path)
            return internal_error_response()
