"""The operations on users (RFC 7644 §3.3 to §3.6), each in one storage transaction.

:class:`UserOperations` lists and searches, reads, creates, replaces, patches and deletes
users; a write and its cards, mail, events and provisioning log entry commit together, and a
refused request is logged in a transaction of its own (R9.2). Each request tells the
authentication what it reads first (an :class:`~scimcore.storage.Intent`); what was read with
it arrives on the :class:`~scimcore.authentication.AuthContext` (:mod:`scimcore.authentication`
is the one place that knows whether the storage read it in the same round trip).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from . import converter as conv
from . import limits, params
from .authentication import AuthContext
from .config import ServiceConfig
from .errors import NotFoundError, SCIMError
from .filters import Filter, compile_filter
from .messages import ListResponse, ScimRequest, ScimResponse, SearchRequest, converter
from .patch import apply_patch
from .provisioning import Event, Provisioner
from .ratelimit import LocalBuckets, RateBuckets, refusal
from .responses import check_if_match, etag, etag_matches, json_response, next_meta
from .runtime import Runtime
from .schema import SchemaRegistry, storable_text
from .storage import Intent, LogEntry, Page, Storage, UserStore
from .workspaces import Workspaces

__all__ = ["UserOperations", "writes_a_user"]

#: Storage offsets are 64-bit: a larger ``startIndex`` is past every result anyway (the
#: response still echoes the one asked for).
_LAST_START_INDEX = 2**62

#: The provisioning log's name of a request's operation, by method and "to the collection".
_OPERATIONS = {
    ("GET", True): "list",
    ("POST", True): "create",
    ("GET", False): "get",
    ("PUT", False): "put",
    ("PATCH", False): "patch",
    ("DELETE", False): "delete",
}


#: The intent of a read request that names no user and no filter.
_READS_NOTHING = Intent()
#: ``GET /Users`` without a filter: a page of users (their ``User.groups`` are needed).
_LISTS = Intent(listing=True)

#: The longest filter read with the authentication (as long as the compiled filters cached).
_READ_AHEAD_FILTER_MAX = 512


def writes_a_user(method: str, rid: str | None) -> bool:
    """``POST /Users``, or ``PUT``, ``PATCH`` or ``DELETE`` of a user id that can be stored."""
    if rid is None:
        return method == "POST"
    return method in ("PUT", "PATCH", "DELETE") and rid != ".search" and storable_text(rid)


#: What :meth:`UserOperations.read` hands the authenticated request to.
_Route = Callable[[AuthContext, ScimRequest, str, str, "str | None"], ScimResponse]


class UserOperations:
    """The user endpoints of one :class:`~scimcore.service.ScimService`, over its storage."""

    def __init__(
        self,
        storage: Storage,
        registry: SchemaRegistry,
        runtime: Runtime,
        config: ServiceConfig,
        workspaces: Workspaces,
        provisioner: Provisioner,
        emit: Callable[[list[Event]], None],
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.runtime = runtime
        self.config = config
        self.workspaces = workspaces
        self.provisioner = provisioner
        self._emit = emit
        #: Where the rate limit's buckets live (:mod:`scimcore.ratelimit`).
        self._buckets: RateBuckets = storage if isinstance(storage, RateBuckets) else LocalBuckets()

    def throttle(self, auth: AuthContext) -> None:
        """429 when the workspace of ``auth`` is past ``ServiceConfig.rate_limit``; every
        authenticated request takes a token (a resource type other than users calls this too)."""
        limit = self.config.rate_limit
        if limit is None:
            return
        now = self.runtime.now().timestamp()
        if not self._buckets.take_token(auth.workspace.id, limit, now):
            raise refusal(limit)

    # --- the provisioning log ------------------------------------------------------------------

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

    # --- reads ---------------------------------------------------------------------------------

    def read(
        self, request: ScimRequest, method: str, kind: str, rid: str | None, route: _Route
    ) -> ScimResponse:
        """Authenticate a request that writes nothing and hand it to ``route``; a refusal is
        logged. A ``GET`` of one user or a filtered ``GET`` of the users says so
        (:class:`~scimcore.storage.Intent`): the storage may read it with the authentication."""
        intent = _READS_NOTHING
        if method in ("GET", "HEAD") and kind == "users":
            text = request.query.get("filter")
            if rid is None and text and self._within_filter_limits(text):
                intent = Intent(filter=text)
            elif rid is not None and rid != ".search" and storable_text(rid):
                intent = Intent(user_id=rid)
            elif rid is None and not text:
                intent = _LISTS

        def answer(auth: AuthContext) -> ScimResponse:
            self.throttle(auth)
            try:
                return route(auth, request, method, kind, rid)
            except SCIMError as exc:
                self._log_failure(auth, request, rid, exc)
                raise

        return self.workspaces.authenticator.read(request.header("authorization"), intent, answer)

    def _checked_filter(self, text: str) -> Filter:
        """The filter ``text`` compiled, within the filter limits (:mod:`scimcore.limits`)."""
        limits.check_filter_text(text, self.config)
        flt = compile_filter(text, self.registry)
        limits.check_filter_terms(flt, self.config)
        return flt

    def _within_filter_limits(self, text: str) -> bool:
        """Whether a filter may be read with the authentication: a filter past a limit (or
        invalid) is refused by :meth:`search` after it, as any other request's error."""
        if len(text) > _READ_AHEAD_FILTER_MAX:
            return False  # IdP lookups are short; a long filter is compiled once, by search
        try:
            self._checked_filter(text)
        except SCIMError:
            return False
        return True

    def search(self, auth: AuthContext, request: ScimRequest, query: SearchRequest) -> ScimResponse:
        """RFC 7644 §3.4.2: filter, then sort, then page."""
        total, start, resources = self.find(auth, request, query)
        body = ListResponse(total, start, len(resources), resources)
        return json_response(200, converter.unstructure(body))

    def find(
        self, auth: AuthContext, request: ScimRequest, query: SearchRequest
    ) -> tuple[int, int, list[dict[str, Any]]]:
        """What :meth:`search` answers: the total, the ``startIndex`` and the page's
        resources as rendered (also a part of a search at the root, ``POST /.search``)."""
        flt: Filter | None = None
        if query.filter is not None and query.filter.strip():
            flt = self._checked_filter(query.filter)
        sort = params.sort_spec(self.registry, query.sort_by, query.sort_order)
        start = max(query.start_index or 1, 1)
        count = query.count if query.count is not None else self.config.default_count
        count = min(max(count, 0), self.config.max_count)
        selection = params.selection(self.registry, query.attributes, query.excluded_attributes)
        found = auth.found  # only a GET /Users?filter=... has it: its filter is query.filter
        if found is not None and (sort is None or found.total <= 1):
            # every match was read with the authentication: page them here
            page = Page(found.total, found.documents[start - 1 : start - 1 + count])
        else:
            with self.storage.users(auth.workspace.id, one_read=True) as store:
                page = store.query(flt, sort, min(start, _LAST_START_INDEX), count)
        docs = self._with_groups(auth, page.documents)
        return page.total, start, [self._render(d, request, selection) for d in docs]

    def resource(self, auth: AuthContext, request: ScimRequest, rid: str) -> ScimResponse:
        """``GET`` or ``HEAD`` of the user ``rid``, read with the authentication (its
        :class:`~scimcore.storage.Intent` named it: :meth:`read`)."""
        current = auth.user
        if current is None:
            if not storable_text(rid):  # e.g. "%00" in the URL: no stored id looks like it
                raise NotFoundError(f"resource {rid!r} not found")
        else:
            (current,) = self._with_groups(auth, [current])
        return self._read_response(request, rid, current)

    def _read_response(
        self, request: ScimRequest, rid: str, current: dict[str, Any] | None
    ) -> ScimResponse:
        """``GET /Users/{id}``: 404, 304 for a matching ``If-None-Match``, or the resource."""
        if current is None:
            raise NotFoundError(f"resource {rid} not found")
        if_none = request.header("if-none-match")
        if if_none is not None and etag_matches(if_none, etag(current)):
            return ScimResponse(304, {"ETag": etag(current)})
        return self._resource_response(200, current, request)

    # --- representation ------------------------------------------------------------------------

    def _render(
        self,
        doc: Mapping[str, Any],
        request: ScimRequest,
        selection: conv.AttributeSelection | None,
    ) -> dict[str, Any]:
        if "groups" in doc:  # derived from memberships (scimcore.group_operations)
            base = request.base_url
            groups = [{**g, "$ref": f"{base}/Groups/{g['value']}"} for g in doc["groups"]]
            doc = {**doc, "groups": groups}
        out = conv.project(doc, self.registry, selection)
        if "meta" in out:
            out["meta"] = {**out["meta"], "location": f"{request.base_url}/Users/{doc['id']}"}
        return out

    def _resource_response(
        self, status: int, doc: Mapping[str, Any], request: ScimRequest
    ) -> ScimResponse:
        location = f"{request.base_url}/Users/{doc['id']}"
        headers = {"ETag": etag(doc), "Location": location}
        body = self._render(doc, request, params.query_selection(self.registry, request))
        return json_response(status, body, headers)

    # --- writes --------------------------------------------------------------------------------

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

    def write(self, request: ScimRequest, method: str, rid: str | None) -> ScimResponse:
        """A create (``rid`` is ``None``), replace, patch or delete of a user: authenticated and
        carried out in one transaction (:meth:`Workspaces.writing`); a failure is logged in a
        transaction of its own (R9.2).

        The body is read inside the transaction, where its errors are raised in their order:
        after the authentication (a bad token is a 401 whatever the body) and the rate limit,
        and for a replace or a patch after the user is found and ``If-Match`` checked."""
        now = self._instant()
        caller: AuthContext | None = None  # once authenticated: whose failure to log
        result: dict[str, Any] | None
        try:
            authorization = request.header("authorization")
            intent = Intent(writes=True, user_id=rid)
            with self.workspaces.authenticator.writing(authorization, intent, now) as (auth, store):
                self.throttle(auth)  # a 429 is not logged: a flood would fill the log
                caller = auth
                if rid is None:
                    result, events = self._create(auth, store, self._new_user(request, now), now)
                else:
                    result, events = self._update(auth, store, request, method, rid, now)
                if result is not None and rid is not None:  # a new user is in no group yet
                    (result,) = self._with_groups(auth, [result], store)
        except SCIMError as exc:
            if caller is not None:
                self._log_failure(caller, request, rid, exc)
            raise
        self._emit(events)
        if result is None:
            return ScimResponse(204, {})
        return self._resource_response(201 if rid is None else 200, result, request)

    def _new_user(self, request: ScimRequest, now: datetime) -> dict[str, Any]:
        """The document a ``POST /Users`` creates: its body normalised, within the limits,
        with a new ``id`` and ``meta`` (RFC 7643 §3.1)."""
        body = params.json_body(request, self.config.max_body_bytes)
        doc = conv.normalize_resource(body, self.registry)
        limits.check_document(doc, self.config, source=request.body)
        doc["id"] = self.runtime.new_id()
        stamp = self._stamp(now)
        meta = {"resourceType": "User", "created": stamp, "lastModified": stamp, "version": 'W/"1"'}
        doc["meta"] = meta
        return doc

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
        now: datetime,
    ) -> tuple[dict[str, Any] | None, list[Event]]:
        """PUT, PATCH or DELETE of the user ``rid``: the document written (``None`` for a
        delete) and the events to emit once committed."""
        current = store.get(rid)
        if current is None:
            raise NotFoundError(f"resource {rid} not found")
        check_if_match(request.header("if-match"), current)
        if method == "DELETE":
            store.delete(rid)
            events = self.provisioner.deleted(store, auth.workspace, current, now)
            self._log(store, auth, "delete", rid, 204, at=now)
            return None, events
        if method == "PUT":  # RFC 7644 §3.5.1: every writable attribute replaced
            body = params.json_body(request, self.config.max_body_bytes)
            updated = conv.normalize_resource(body, self.registry)
            limits.check_document(updated, self.config, current)
            updated["id"] = current["id"]
            updated["meta"] = current["meta"]
        else:  # RFC 7644 §3.5.2, atomic; see scimcore.patch
            body = params.json_body(request, self.config.max_body_bytes)
            updated = apply_patch(
                current, body, self.registry, max_operations=self.config.max_operations
            )
            limits.check_document(updated, self.config, current)
        events = []
        if self._save(store, current, updated, now):
            events = self.provisioner.updated(store, auth.workspace, current, updated, now)
            self._log(store, auth, method.lower(), rid, 200, at=now)
        return updated, events

    def _save(
        self, store: UserStore, current: dict[str, Any], updated: dict[str, Any], now: datetime
    ) -> bool:
        """Write ``updated`` with a new version, unless nothing changed (R4.4)."""
        if updated == current:
            return False
        updated["meta"] = next_meta(current["meta"], self._stamp(now))
        store.replace(updated, current["meta"]["version"])
        return True

    # --- shared with the group operations (scimcore.group_operations) --------------------------

    #: The provisioning log entry of a write, in its transaction.
    log = _log
    #: The instant of one write, as :meth:`_instant`.
    instant = _instant
    #: ``meta``'s text of an instant, as :meth:`_stamp`.
    stamp = _stamp

    def _with_groups(
        self, auth: AuthContext, docs: Sequence[dict[str, Any]], store: UserStore | None = None
    ) -> list[dict[str, Any]]:
        """``docs`` with ``groups`` (RFC 7643 §4.1.2, read-only) derived from the memberships,
        read in ``store`` or in a read transaction of their own; as they are when Groups are
        turned off or the authentication read that the workspace has no group (no statement:
        a page of 100 users on SQLite 10.9M -> 9.4M instructions; benchmarks/NOTES.md,
        session 17)."""
        if not self.config.groups or not docs or auth.has_groups is False:
            return list(docs)
        ids = [d["id"] for d in docs]
        if store is None:  # one groups_of call: one statement per user, a snapshot for several
            with self.storage.users(auth.workspace.id, one_read=True) as reading:
                found = reading.groups_of(ids)
        else:
            found = store.groups_of(ids)
        return [{**d, "groups": found[d["id"]]} if d["id"] in found else d for d in docs]
