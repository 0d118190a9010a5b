"""The SCIM service: one request value in, one response value out (RFC 7644).

:meth:`ScimService.handle` parses JSON, authenticates, routes and runs each operation inside one
storage transaction. It is the only place where errors become HTTP responses: a
:class:`~scimcore.errors.SCIMError` becomes its SCIM Error body; anything else is logged and
answered with a generic 500 that carries no traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

import cattrs
from attrs import frozen

from . import _json
from . import converter as conv
from .errors import (
    InvalidSyntaxError,
    InvalidValueError,
    MethodNotAllowedError,
    NotFoundError,
    NotImplementedSCIMError,
    PreconditionFailedError,
    SCIMError,
)
from .filters import Filter, compile_filter
from .messages import (
    SCIM_CONTENT_TYPE,
    ListResponse,
    ScimRequest,
    ScimResponse,
    SearchRequest,
    ServiceProviderConfig,
    converter,
)
from .patch import apply_patch
from .product import Product
from .provisioning import Event, MailComposer, Provisioner, default_composer
from .runtime import Runtime, system_runtime
from .schema import AttrType, SchemaRegistry, default_registry, storable_text
from .storage import LogEntry, Page, ReadTurns, SortSpec, Storage, UserStore
from .workspaces import AuthContext, ReadAheadKind, Workspaces

__all__ = ["ScimService", "ServiceConfig"]

log = logging.getLogger("scimcore")

_JSON_TYPES = ("application/scim+json", "application/json")


@frozen
class ServiceConfig:
    """Tunables. ``max_count`` caps ``count`` (RFC 7644 §3.4.2.4); it must stay >= 100 for
    Okta's import paging (idp-quirks Okta 4)."""

    default_count: int = 100
    max_count: int = 1000
    max_body_bytes: int = 1_048_576
    log_retention: int = 10_000

    def __attrs_post_init__(self) -> None:
        if self.max_count < 100 or not 0 < self.default_count <= self.max_count:
            raise ValueError("need 0 < default_count <= max_count and max_count >= 100")


def _response(
    status: int, body: Any = None, headers: Mapping[str, str] | None = None
) -> ScimResponse:
    out = {"Content-Type": SCIM_CONTENT_TYPE} if body is not None else {}
    out.update(headers or {})
    return ScimResponse(status, out, _json.dumps(body) if body is not None else b"")


def error_response(error: SCIMError) -> ScimResponse:
    """The SCIM Error response for ``error`` (RFC 7644 §3.12)."""
    headers = {"WWW-Authenticate": 'Bearer realm="SCIM"'} if error.status == 401 else {}
    if isinstance(error, _MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
    return _response(error.status, error.to_body(), headers)


class _MethodNotAllowed(MethodNotAllowedError):
    def __init__(self, method: str, path: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not supported on {path}; allowed: {', '.join(allowed)}")
        self.allowed = allowed


def _etag(doc: Mapping[str, Any]) -> str:
    return str(doc["meta"]["version"])


def _etag_matches(header: str, version: str) -> bool:
    """RFC 7232 §3.1/§3.2 list matching, with weak comparison for If-None-Match."""
    tags = [t.strip() for t in header.split(",")]

    def bare(t: str) -> str:
        return t[2:] if t.startswith("W/") else t

    return "*" in tags or bare(version) in {bare(t) for t in tags}


_OPERATIONS = {
    ("GET", True): "list",
    ("POST", True): "create",
    ("GET", False): "get",
    ("PUT", False): "put",
    ("PATCH", False): "patch",
    ("DELETE", False): "delete",
}

#: Storage offsets are 64-bit: a larger ``startIndex`` is past every result anyway (the
#: response still echoes the one asked for).
_LAST_START_INDEX = 2**62

_ROUTE = re.compile(r"^/*(?P<kind>[^/]*)(?:/(?P<id>[^/]+))?/*$")


def _writes_a_user(method: str, rid: str | None) -> bool:
    """``POST /Users``, or ``PUT``, ``PATCH`` or ``DELETE`` of a user id that can be stored."""
    if rid is None:
        return method == "POST"
    return method in ("PUT", "PATCH", "DELETE") and rid != ".search" and storable_text(rid)


class _Early:
    """What a write prepared before its transaction: a value, or the error to raise in its
    place once the request is authenticated (see :meth:`ScimService._write`)."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: Any, error: SCIMError | None = None) -> None:
        self._value = value
        self._error = error

    def value(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class ScimService:
    """A SCIM 2.0 service provider over a :class:`~scimcore.storage.Storage`.

    ``handle`` is thread-safe as long as the storage is. Routes (relative to the base URL):
    ``/Users``, ``/Users/{id}``, ``/Users/.search``, ``/.search``, ``/ServiceProviderConfig``,
    ``/ResourceTypes[/{id}]``, ``/Schemas[/{id}]``. ``/Groups`` is not served (R5.3).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        registry: SchemaRegistry | None = None,
        runtime: Runtime | None = None,
        config: ServiceConfig | None = None,
        composer: MailComposer = default_composer,
    ) -> None:
        self.storage = storage
        self.registry = registry or default_registry()
        self.runtime = runtime or system_runtime()
        self.config = config or ServiceConfig()
        self.workspaces = Workspaces(storage, self.runtime)
        #: Held around each read request (:class:`~scimcore.storage.ReadTurns`).
        self._read_turn: Callable[[], AbstractContextManager[object]] = (
            storage.read_turn if isinstance(storage, ReadTurns) else nullcontext
        )
        self.provisioner = Provisioner(self.registry, self.runtime, composer)
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
                    log.exception("event listener failed on %s", event.kind)

    def _log(
        self,
        store: UserStore,
        auth: AuthContext,
        operation: str,
        resource_id: str | None,
        status: int,
        detail: str = "",
        at: datetime | None = None,
    ) -> None:
        entry = LogEntry(
            id=self.runtime.new_id(),
            at=at if at is not None else self.runtime.now(),
            operation=operation,
            resource_id=resource_id,
            status=status,
            detail=detail,
            token_id=auth.token_id,
        )
        store.add_log(entry, self.config.log_retention)

    def _log_failure(
        self, auth: AuthContext, request: ScimRequest, rid: str | None, error: SCIMError
    ) -> None:
        """Failed requests are logged in a transaction of their own (R9.2): the operation's
        own transaction was rolled back."""
        operation = _OPERATIONS.get((request.method.upper(), rid is None), request.method.lower())
        if request.path.rstrip("/").endswith(".search"):  # /Users/.search and /.search
            operation, rid = "search", None
        if rid is not None and not storable_text(rid):  # the log shows it, escaped
            rid = rid.encode("unicode_escape").decode("ascii")
        with self.storage.users(auth.workspace.id) as store:
            self._log(store, auth, operation, rid, error.status, error.detail)

    # --- entry point --------------------------------------------------------------------------

    def handle(self, request: ScimRequest) -> ScimResponse:
        """Answer one request. Never raises."""
        try:
            return self._dispatch(request)
        except SCIMError as exc:
            return error_response(exc)
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.path)
            return _response(
                500,
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "500",
                    "detail": "internal server error",
                },
            )

    def _dispatch(self, request: ScimRequest) -> ScimResponse:
        method = request.method.upper()
        match = _ROUTE.match(request.path or "/")
        if match is None:
            raise NotFoundError(f"no endpoint at {request.path}")
        kind, rid = match.group("kind"), match.group("id")
        lowered = kind.lower()
        if lowered == "serviceproviderconfig" and rid is None:
            self._allow(method, request.path, ("GET",))
            return self._service_provider_config()
        if lowered == "resourcetypes":
            self._allow(method, request.path, ("GET",))
            return self._resource_types(request, rid)
        if lowered == "schemas":
            self._allow(method, request.path, ("GET",))
            return self._schemas(request, rid)
        # A GET of one user or a filtered GET of the users: read them with the authentication
        # when the storage can.
        read_ahead: tuple[ReadAheadKind, str] | None = None
        if method in ("GET", "HEAD") and lowered == "users":
            text = request.query.get("filter")
            if rid is None and text:
                read_ahead = ("filter", text)
            elif rid is not None and rid != ".search" and storable_text(rid):
                read_ahead = ("id", rid)
        if lowered == "users" and _writes_a_user(method, rid):
            return self._write(request, method, rid)
        with self._read_turn():
            auth = self.workspaces.authenticate(
                request.header("authorization"), read_ahead=read_ahead
            )
            try:
                return self._tenant_route(auth, request, method, lowered, rid)
            except SCIMError as exc:
                self._log_failure(auth, request, rid, exc)
                raise

    def _tenant_route(
        self, auth: AuthContext, request: ScimRequest, method: str, lowered: str, rid: str | None
    ) -> ScimResponse:
        if lowered == "users":
            if rid is None:
                self._allow(method, request.path, ("GET", "POST"))
                # GET or HEAD (the adapters send no body for HEAD); a POST went to _write.
                return self._list(auth, request, self._query_params(request.query))
            if rid == ".search":
                self._allow(method, request.path, ("POST",))
                return self._list(auth, request, self._search_body(request))
            self._allow(method, request.path, ("GET", "PUT", "PATCH", "DELETE"))
            if method not in ("GET", "HEAD"):  # a write to an id no stored user can have
                raise NotFoundError(f"resource {rid!r} not found")
            return self._resource(auth, request, rid)
        if lowered == ".search" and rid is None:
            self._allow(method, request.path, ("POST",))
            return self._list(auth, request, self._search_body(request))
        if lowered == "bulk" and rid is None:
            raise NotImplementedSCIMError("Bulk operations are not supported (RFC 7644 §3.7)")
        if lowered == "me" and rid is None:
            raise NotImplementedSCIMError("/Me is not supported (RFC 7644 §3.11)")
        if lowered == "groups":
            raise NotFoundError("Groups are not supported by this service provider")
        raise NotFoundError(f"no endpoint at {request.path}")

    @staticmethod
    def _allow(method: str, path: str, allowed: tuple[str, ...]) -> None:
        if method == "HEAD" and "GET" in allowed:
            return
        if method not in allowed:
            raise _MethodNotAllowed(method, path, allowed)

    # --- discovery (RFC 7644 §4) ----------------------------------------------------------------

    def _service_provider_config(self) -> ScimResponse:
        spc = ServiceProviderConfig(max_results=self.config.max_count)
        body = converter.unstructure(spc)
        body["meta"] = {
            "resourceType": "ServiceProviderConfig",
            "location": "/ServiceProviderConfig",
        }
        return _response(200, body)

    @staticmethod
    def _list_of(items: list[dict[str, Any]]) -> ScimResponse:
        return _response(200, converter.unstructure(ListResponse(len(items), 1, len(items), items)))

    def _resource_types(self, request: ScimRequest, rid: str | None) -> ScimResponse:
        rt = self.registry.resource_type
        body = rt.to_dict(f"{request.base_url}/ResourceTypes/{rt.id}")
        if rid is None:
            return self._list_of([body])
        if rid.lower() != rt.id.lower():
            raise NotFoundError(f"no resource type {rid!r}")
        return _response(200, body)

    def _schemas(self, request: ScimRequest, rid: str | None) -> ScimResponse:
        def body(schema_id: str) -> dict[str, Any]:
            schema = self.registry.schema(schema_id)
            assert schema is not None
            return schema.to_dict(f"{request.base_url}/Schemas/{schema.id}")

        if rid is None:
            return self._list_of([body(s.id) for s in self.registry.schemas])
        if self.registry.schema(rid) is None:
            raise NotFoundError(f"no schema {rid!r}")
        return _response(200, body(rid))

    # --- request parsing -----------------------------------------------------------------------

    def _json_body(self, request: ScimRequest) -> Any:
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type and content_type not in _JSON_TYPES and not content_type.endswith("+json"):
            raise InvalidSyntaxError(
                f"unsupported Content-Type {content_type!r}: send application/scim+json"
            )
        if len(request.body) > self.config.max_body_bytes:
            raise InvalidSyntaxError(f"the request body exceeds {self.config.max_body_bytes} bytes")
        if not request.body.strip():
            raise InvalidSyntaxError("the request body is empty; a JSON object is required")
        try:
            return _json.loads(request.body)
        except (ValueError, RecursionError) as exc:
            raise InvalidSyntaxError(f"the request body is not valid JSON: {exc}") from None

    def _search_body(self, request: ScimRequest) -> SearchRequest:
        body = self._json_body(request)
        if not isinstance(body, dict):
            raise InvalidSyntaxError("a SearchRequest must be a JSON object")
        for key in ("startIndex", "count"):
            value = body.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidValueError(f"{key} must be an integer")
        for key in ("attributes", "excludedAttributes"):
            value = body.get(key)
            if isinstance(value, str):
                body[key] = [v for v in value.split(",") if v.strip()]
            elif value is not None and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                raise InvalidValueError(f"{key} must be a list of attribute names")
        for key in ("filter", "sortBy", "sortOrder"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise InvalidValueError(f"{key} must be a string")
        try:
            return converter.structure(body, SearchRequest)
        except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
            raise InvalidSyntaxError(f"invalid SearchRequest: {exc}") from None

    @staticmethod
    def _int_param(query: Mapping[str, str], name: str) -> int | None:
        raw = query.get(name)
        if raw is None or raw.strip() == "":
            return None
        try:
            return int(raw.strip())
        except ValueError:
            raise InvalidValueError(f"{name} must be an integer, got {raw[:40]!r}") from None

    def _query_params(self, query: Mapping[str, str]) -> SearchRequest:
        def names(key: str) -> list[str] | None:
            raw = query.get(key)
            return [v for v in raw.split(",") if v.strip()] if raw else None

        return SearchRequest(
            attributes=names("attributes"),
            excluded_attributes=names("excludedAttributes"),
            filter=query.get("filter"),
            sort_by=query.get("sortBy") or None,
            sort_order=query.get("sortOrder") or None,
            start_index=self._int_param(query, "startIndex"),
            count=self._int_param(query, "count"),
        )

    def _selection(
        self, attributes: list[str] | None, excluded: list[str] | None
    ) -> conv.AttributeSelection:
        return conv.AttributeSelection(self.registry, attributes or (), excluded or ())

    def _selection_from_query(self, request: ScimRequest) -> conv.AttributeSelection | None:
        """The ``attributes`` and ``excludedAttributes`` query parameters (``None``: neither,
        the usual request: no selection to build)."""
        query = request.query
        if not query or ("attributes" not in query and "excludedAttributes" not in query):
            return None
        params = self._query_params(query)
        return self._selection(params.attributes, params.excluded_attributes)

    def _sort(self, sort_by: str | None, sort_order: str | None) -> SortSpec | None:
        if sort_order is not None and sort_order.lower() not in ("ascending", "descending"):
            raise InvalidValueError("sortOrder must be 'ascending' or 'descending'")
        if not sort_by:
            return None
        schema, rest = self.registry.split_urn(sort_by.strip())
        top, _, sub = rest.partition(".")
        try:
            owner, attr = self.registry.top_level(top, schema)
        except KeyError:
            raise InvalidValueError(f"sortBy names an unknown attribute {sort_by!r}") from None
        path: tuple[str, ...] = (attr.name,)
        if owner is not None and owner is not self.registry.core:
            path = (owner.id, attr.name)
        if sub:
            sub_attr = attr.sub_attribute(sub)
            if sub_attr is None:
                raise InvalidValueError(f"sortBy names an unknown attribute {sort_by!r}")
            path, attr = (*path, sub_attr.name), sub_attr
        elif attr.is_complex:
            value = attr.sub_attribute("value")
            if value is None:
                raise InvalidValueError(f"cannot sort by the complex attribute {sort_by!r}")
            path, attr = (*path, "value"), value
        if attr.type is AttrType.BINARY:
            raise InvalidValueError(f"cannot sort by the binary attribute {sort_by!r}")
        descending = (sort_order or "ascending").lower() == "descending"
        return SortSpec(path, descending, attr.case_exact, attr.type is AttrType.DATETIME)

    # --- representation ------------------------------------------------------------------------

    def _render(
        self,
        doc: Mapping[str, Any],
        request: ScimRequest,
        selection: conv.AttributeSelection | None,
    ) -> dict[str, Any]:
        out = conv.project(doc, self.registry, selection)
        if "meta" in out:
            out["meta"] = {**out["meta"], "location": f"{request.base_url}/Users/{doc['id']}"}
        return out

    def _resource_response(
        self,
        status: int,
        doc: Mapping[str, Any],
        request: ScimRequest,
        selection: conv.AttributeSelection | None = None,
    ) -> ScimResponse:
        location = f"{request.base_url}/Users/{doc['id']}"
        headers = {"ETag": _etag(doc), "Location": location}
        body = self._render(doc, request, selection or self._selection_from_query(request))
        return _response(status, body, headers)

    # --- operations ----------------------------------------------------------------------------

    def _list(self, auth: AuthContext, request: ScimRequest, params: SearchRequest) -> ScimResponse:
        """RFC 7644 §3.4.2: filter, then sort, then page."""
        flt: Filter | None = None
        if params.filter is not None and params.filter.strip():
            flt = compile_filter(params.filter, self.registry)
        sort = self._sort(params.sort_by, params.sort_order)
        start = max(params.start_index or 1, 1)
        count = params.count if params.count is not None else self.config.default_count
        count = min(max(count, 0), self.config.max_count)
        selection = self._selection(params.attributes, params.excluded_attributes)
        ahead = auth.read_ahead
        if (
            ahead is not None
            and ahead.page is not None
            and ahead.kind == "filter"
            and ahead.key == params.filter
            and (sort is None or ahead.page.total <= 1)
        ):  # every match was read with the authentication: page them here
            page = Page(ahead.page.total, ahead.page.documents[start - 1 : start - 1 + count])
        else:
            with self.storage.users(auth.workspace.id, one_read=True) as store:
                page = store.query(flt, sort, min(start, _LAST_START_INDEX), count)
        resources = [self._render(d, request, selection) for d in page.documents]
        body = ListResponse(page.total, start, len(resources), resources)
        return _response(200, converter.unstructure(body))

    def _new_meta(self, created: str, version: int) -> dict[str, Any]:
        return {
            "resourceType": "User",
            "created": created,
            "lastModified": created,
            "version": f'W/"{version}"',
        }

    def _instant(self) -> datetime:
        """The instant of one write, to the millisecond, as ``meta`` shows it: the resource,
        the card, the mail and the log entry that one operation writes all record this one
        value (and the SQL storage formats it once)."""
        now = self.runtime.now()
        return now.replace(microsecond=now.microsecond - now.microsecond % 1000)

    @staticmethod
    def _stamp(instant: datetime) -> str:
        """``instant`` as ``meta.created`` and ``meta.lastModified`` show it (RFC 7643 §3.1)."""
        return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _write(self, request: ScimRequest, method: str, rid: str | None) -> ScimResponse:
        """A create (``rid`` is ``None``), replace, patch or delete of a user: authenticated and
        carried out in one transaction (:meth:`Workspaces.writing`); a failure is logged in a
        transaction of its own (R9.2).

        The body is decoded and, for a create, normalised before the transaction, so that the
        write lock is not held meanwhile; an error found there is raised where it was
        always raised: after the authentication (a bad token is a 401 whatever the body), and
        for a replace or a patch after the user is found."""
        early: _Early
        now = self._instant()
        try:
            if rid is None:
                doc = conv.normalize_resource(self._json_body(request), self.registry)
                doc["id"] = self.runtime.new_id()
                doc["meta"] = self._new_meta(self._stamp(now), 1)
                early = _Early(doc)
            else:
                early = _Early(self._json_body(request) if method != "DELETE" else None)
        except SCIMError as exc:
            early = _Early(None, exc)
        caller: AuthContext | None = None  # once authenticated: whose failure to log
        result: dict[str, Any] | None
        try:
            authorization = request.header("authorization")
            with self.workspaces.writing(authorization, rid, now=now) as (auth, store):
                caller = auth
                if rid is None:
                    result, events = self._create(auth, store, early.value(), now)
                else:
                    result, events = self._update(auth, store, request, method, rid, early, now)
        except SCIMError as exc:
            if caller is not None:
                self._log_failure(caller, request, rid, exc)
            raise
        self._emit(events)
        if result is None:
            return ScimResponse(204, {})
        return self._resource_response(201 if rid is None else 200, result, request)

    def _create(
        self, auth: AuthContext, store: UserStore, doc: dict[str, Any], now: datetime
    ) -> tuple[dict[str, Any], list[Event]]:
        """RFC 7644 §3.3: 201 with the resource, ``Location`` and ``ETag``; 409 uniqueness."""
        store.insert(doc)
        events = self.provisioner.created(store, auth.workspace, doc, now)
        self._log(store, auth, "create", doc["id"], 201, at=now)
        return doc, events

    def _update(
        self,
        auth: AuthContext,
        store: UserStore,
        request: ScimRequest,
        method: str,
        rid: str,
        body: _Early,
        now: datetime,
    ) -> tuple[dict[str, Any] | None, list[Event]]:
        """PUT, PATCH or DELETE of the user ``rid``: the document written (``None`` for a
        delete) and the events to emit once committed."""
        current = store.get(rid)
        if current is None:
            raise NotFoundError(f"resource {rid} not found")
        if_match = request.header("if-match")
        if if_match is not None and not _etag_matches(if_match, _etag(current)):
            raise PreconditionFailedError(
                f"If-Match {if_match} does not match the current version {_etag(current)}"
            )
        if method == "DELETE":
            store.delete(rid)
            events = self.provisioner.deleted(store, auth.workspace, current, now)
            self._log(store, auth, "delete", rid, 204, at=now)
            return None, events
        if method == "PUT":
            updated = self._replace(current, body.value())
        else:
            updated = self._patch(current, body.value())
        events = []
        if self._save(store, current, updated, now):
            events = self.provisioner.updated(store, auth.workspace, current, updated, now)
            self._log(store, auth, method.lower(), rid, 200, at=now)
        return updated, events

    def _resource(self, auth: AuthContext, request: ScimRequest, rid: str) -> ScimResponse:
        """``GET`` or ``HEAD`` of the user ``rid``."""
        ahead = auth.read_ahead
        if ahead is not None and ahead.kind == "id" and ahead.key == rid:  # a storable id
            return self._read_response(request, rid, ahead.document)
        if not storable_text(rid):  # e.g. "%00" in the URL: no stored id looks like it
            raise NotFoundError(f"resource {rid!r} not found")
        with self.storage.users(auth.workspace.id, one_read=True) as store:
            return self._read_response(request, rid, store.get(rid))

    def _read_response(
        self, request: ScimRequest, rid: str, current: dict[str, Any] | None
    ) -> ScimResponse:
        """``GET /Users/{id}``: 404, 304 for a matching ``If-None-Match``, or the resource."""
        if current is None:
            raise NotFoundError(f"resource {rid} not found")
        if_none = request.header("if-none-match")
        if if_none is not None and _etag_matches(if_none, _etag(current)):
            return ScimResponse(304, {"ETag": _etag(current)})
        return self._resource_response(200, current, request)

    def _replace(self, current: dict[str, Any], body: Any) -> dict[str, Any]:
        """RFC 7644 §3.5.1: replace every writable attribute; read-only values are ignored."""
        doc = conv.normalize_resource(body, self.registry)
        doc["id"] = current["id"]
        doc["meta"] = current["meta"]
        return doc

    def _patch(self, current: dict[str, Any], body: Any) -> dict[str, Any]:
        """RFC 7644 §3.5.2, atomic; see :mod:`scimcore.patch`."""
        return apply_patch(current, body, self.registry)

    def _save(
        self, store: UserStore, current: dict[str, Any], updated: dict[str, Any], now: datetime
    ) -> bool:
        """Write ``updated`` with a new version, unless nothing changed (R4.4)."""
        if updated == current:
            return False
        meta = current["meta"]
        version = int(str(meta["version"]).strip('W/"') or 0) + 1
        updated["meta"] = {**meta, "lastModified": self._stamp(now), "version": f'W/"{version}"'}
        store.replace(updated, meta["version"])
        return True
