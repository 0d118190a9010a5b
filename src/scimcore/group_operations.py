"""The operations on groups (RFC 7644 §3.3 to §3.6 for ``/Groups``), each in one transaction.

:class:`GroupOperations` lists, reads, creates, replaces, patches and deletes groups. A
group's document never holds ``members`` (:mod:`scimcore.groups`): a PATCH that adds or
removes k members writes k membership rows and the group's new version, whatever the size
of the group; one that changes nothing writes nothing (R4.4). Every write commits with its
provisioning log entry; its events (``group.created``, ``group.members_changed``,
``group.deleted``) are emitted after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from . import converter as conv
from . import limits, params
from .config import ServiceConfig
from .errors import (
    InvalidFilterError,
    InvalidValueError,
    NotFoundError,
    SCIMError,
    TooManyError,
)
from .filters import Filter, compile_filter
from .groups import MemberStep, member_ids, plan_patch, wants_members
from .messages import ListResponse, ScimRequest, ScimResponse, SearchRequest, converter
from .operations import UserOperations
from .patch import apply_patch
from .provisioning import Event
from .responses import check_if_match, etag, etag_matches, json_response, next_meta
from .schema import SchemaRegistry, storable_text
from .storage import UserStore
from .workspaces import AuthContext

__all__ = ["GroupOperations"]

_LAST_START_INDEX = 2**62


class GroupOperations:
    """The group endpoints of one service; ``users`` lends its log and clock helpers."""

    def __init__(
        self,
        registry: SchemaRegistry,
        config: ServiceConfig,
        users: UserOperations,
        emit: Callable[[list[Event]], None],
    ) -> None:
        self.registry = registry
        self.config = config
        self.users = users
        self.storage = users.storage
        self._emit = emit

    # --- reads ---------------------------------------------------------------------------------

    def search(self, auth: AuthContext, request: ScimRequest, query: SearchRequest) -> ScimResponse:
        """RFC 7644 §3.4.2 over groups: filter, sort, page; members read only if shown."""
        total, start, resources = self.find(auth, request, query)
        body = ListResponse(total, start, len(resources), resources)
        return json_response(200, converter.unstructure(body))

    def search_everywhere(
        self, auth: AuthContext, request: ScimRequest, query: SearchRequest
    ) -> ScimResponse:
        """``POST /.search`` (RFC 7644 §3.4.3: "all resource types"): the users, then the
        groups, each sorted on its own, paged as one list. A filter that names what one
        resource type does not have matches none of that type (invalidFilter only when it
        is invalid for both)."""
        start = max(query.start_index or 1, 1)
        count = query.count if query.count is not None else self.config.default_count
        count = min(max(count, 0), self.config.max_count)
        refused: InvalidFilterError | None = None
        try:
            users_total, _, users = self.users.find(
                auth, request, attrs.evolve(query, start_index=start, count=count)
            )
        except InvalidFilterError as exc:
            refused, users_total, users = exc, 0, []
        rest = attrs.evolve(
            query, start_index=max(1, start - users_total), count=count - len(users)
        )
        try:
            groups_total, _, groups = self.find(auth, request, rest)
        except InvalidFilterError:
            if refused is not None:
                raise refused from None
            groups_total, groups = 0, []
        resources = users + groups
        body = ListResponse(users_total + groups_total, start, len(resources), resources)
        return json_response(200, converter.unstructure(body))

    def find(
        self, auth: AuthContext, request: ScimRequest, query: SearchRequest
    ) -> tuple[int, int, list[dict[str, Any]]]:
        """What :meth:`search` answers: the total, the ``startIndex`` and the page's
        resources as rendered."""
        flt: Filter | None = None
        if query.filter is not None and query.filter.strip():
            flt = compile_filter(query.filter, self.registry)
        sort = params.sort_spec(self.registry, query.sort_by, query.sort_order)
        start = max(query.start_index or 1, 1)
        count = query.count if query.count is not None else self.config.default_count
        count = min(max(count, 0), self.config.max_count)
        selection = params.selection(self.registry, query.attributes, query.excluded_attributes)
        with self.storage.users(auth.workspace.id, readonly=True) as store:
            page = store.query_groups(flt, sort, min(start, _LAST_START_INDEX), count)
            docs = self._with_members(store, page.documents, selection)
        return page.total, start, [self._render(d, request, selection) for d in docs]

    def resource(self, auth: AuthContext, request: ScimRequest, rid: str) -> ScimResponse:
        """``GET`` or ``HEAD`` of the group ``rid``."""
        selection = params.query_selection(self.registry, request)
        with self.storage.users(auth.workspace.id, readonly=True) as store:
            current = store.get_group(rid) if storable_text(rid) else None
            if current is None:
                raise NotFoundError(f"resource {rid!r} not found")
            if_none = request.header("if-none-match")
            if if_none is not None and etag_matches(if_none, etag(current)):
                return ScimResponse(304, {"ETag": etag(current)})
            (doc,) = self._with_members(store, [current], selection)
        return self._response(200, doc, request, selection)

    def _with_members(
        self,
        store: UserStore,
        docs: Sequence[dict[str, Any]],
        selection: conv.AttributeSelection | None,
    ) -> list[dict[str, Any]]:
        if not docs or not wants_members(selection):
            return list(docs)
        members = store.group_members([d["id"] for d in docs])
        return [{**d, "members": members[d["id"]]} if d["id"] in members else d for d in docs]

    def _render(
        self,
        doc: Mapping[str, Any],
        request: ScimRequest,
        selection: conv.AttributeSelection | None,
    ) -> dict[str, Any]:
        full = dict(doc)
        if "members" in full:
            base = request.base_url
            full["members"] = [{**m, "$ref": f"{base}/Users/{m['value']}"} for m in doc["members"]]
        out = conv.project(full, self.registry, selection)
        if "meta" in out:
            out["meta"] = {**out["meta"], "location": f"{request.base_url}/Groups/{doc['id']}"}
        return out

    def _response(
        self,
        status: int,
        doc: Mapping[str, Any],
        request: ScimRequest,
        selection: conv.AttributeSelection | None,
    ) -> ScimResponse:
        headers = {"ETag": etag(doc), "Location": f"{request.base_url}/Groups/{doc['id']}"}
        return json_response(status, self._render(doc, request, selection), headers)

    # --- writes --------------------------------------------------------------------------------

    def write(self, request: ScimRequest, method: str, rid: str | None) -> ScimResponse:
        """A create (``rid`` is ``None``), replace, patch or delete of a group, authenticated
        and carried out in one transaction; a failure is logged in a transaction of its own.

        A PATCH answers 204 with the new ``ETag`` (what Entra expects, idp-quirks Entra 10;
        RFC 7644 §3.5.2 allows it), or 200 with the resource when the request names
        ``attributes`` or ``excludedAttributes`` (RFC 7644 §3.5.2: "MUST return a 200 OK if
        the attributes parameter is specified")."""
        now = self.users.instant()
        caller: AuthContext | None = None
        result: dict[str, Any] | None
        selection = params.query_selection(self.registry, request)
        authorization = request.header("authorization")
        try:
            with self.users.workspaces.writing(authorization, None, now=now) as (auth, store):
                self.users.throttle(auth)  # a 429 is not logged: a flood would fill the log
                caller = auth
                body = None
                if method != "DELETE":
                    body = params.json_body(request, self.config.max_body_bytes)
                if rid is None:
                    result, events = self._create(auth, store, body, now)
                else:
                    result, events = self._update(auth, store, request, method, rid, body, now)
                if result is not None and (method != "PATCH" or selection is not None):
                    (result,) = self._with_members(store, [result], selection)
        except SCIMError as exc:
            if caller is not None:
                self._log_failure(caller, method, rid, exc)
            raise
        self._emit(events)
        if result is None:
            return ScimResponse(204, {})
        if method == "PATCH" and selection is None:
            return ScimResponse(204, {"ETag": etag(result)})
        return self._response(201 if rid is None else 200, result, request, selection)

    def _log_failure(
        self, auth: AuthContext, method: str, rid: str | None, error: SCIMError
    ) -> None:
        if rid is not None and not storable_text(rid):
            rid = rid.encode("unicode_escape").decode("ascii")
        with self.storage.users(auth.workspace.id) as store:
            self.users.log(store, auth, _operation(method, rid), rid, error.status, error.detail)

    def _event(self, kind: str, auth: AuthContext, gid: str, **data: Any) -> Event:
        return Event(kind, auth.workspace.id, gid, "idp", {"group_id": gid, **data})

    def _templates(
        self, auth: AuthContext, store: UserStore, added: Sequence[str], now: datetime
    ) -> list[Event]:
        """People just added: a card with no template yet gets the first rule's that now
        matches, by group (R7.5); after the group itself is written, so rules see its name."""
        return self.users.provisioner.memberships_added(store, auth.workspace, added, now)

    def _within_limit(self, count: int) -> None:
        """400 ``tooMany`` for more member values than one request may name."""
        limit = self.config.max_members_per_request
        if count > limit:
            raise TooManyError(f"{count} members in one request; at most {limit} (split it)")

    def _checked(self, store: UserStore, ids: Sequence[str]) -> list[str]:
        """``ids`` without repeats, each a user of this workspace, under the per-request
        maximum (``tooMany`` above it). An unknown id, or one of another workspace, is
        refused alike: the answer reveals nothing about other workspaces."""
        unique = list(dict.fromkeys(ids))
        self._within_limit(len(unique))
        known = store.existing_users(unique)
        for uid in unique:
            if uid not in known:
                raise InvalidValueError(f"members: {uid!r} is not a user of this workspace")
        return unique

    def _create(
        self, auth: AuthContext, store: UserStore, body: Any, now: datetime
    ) -> tuple[dict[str, Any], list[Event]]:
        doc = conv.normalize_resource(body, self.registry)
        ids = self._checked(store, member_ids(doc.pop("members", []), "members"))
        limits.check_document(doc, self.config)
        doc["id"] = self.users.runtime.new_id()
        stamp = self.users.stamp(now)
        doc["meta"] = {
            "resourceType": "Group",
            "created": stamp,
            "lastModified": stamp,
            "version": 'W/"1"',
        }
        store.insert_group(doc)
        store.add_members(doc["id"], ids)
        self.users.log(store, auth, "create_group", doc["id"], 201, at=now)
        name = doc.get("displayName")
        events = [self._event("group.created", auth, doc["id"], displayName=name, added=ids)]
        return doc, events + self._templates(auth, store, ids, now)

    def _update(
        self,
        auth: AuthContext,
        store: UserStore,
        request: ScimRequest,
        method: str,
        rid: str,
        body: Any,
        now: datetime,
    ) -> tuple[dict[str, Any] | None, list[Event]]:
        current = store.get_group(rid) if storable_text(rid) else None
        if current is None:
            raise NotFoundError(f"resource {rid!r} not found")
        check_if_match(request.header("if-match"), current)
        if method == "DELETE":
            store.delete_group(rid)
            self.users.log(store, auth, "delete_group", rid, 204, at=now)
            return None, [self._event("group.deleted", auth, rid)]
        if method == "PUT":  # RFC 7644 §3.5.1: members replaced too
            updated = conv.normalize_resource(body, self.registry)
            ids = member_ids(updated.pop("members", []), "members")
            steps = [MemberStep("clear"), MemberStep("add", tuple(ids))]  # checked when applied
        else:
            updated, steps = self._patched(store, current, body)
        limits.check_document(updated, self.config, current)
        updated["id"], updated["meta"] = current["id"], current["meta"]
        added, removed = self._apply_steps(store, rid, steps)
        if updated == current and not added and not removed:
            return current, []  # R4.4: nothing changed, nothing written
        updated["meta"] = next_meta(current["meta"], self.users.stamp(now))
        store.replace_group(updated, current["meta"]["version"])
        detail = f"+{len(added)} -{len(removed)} members" if added or removed else ""
        self.users.log(store, auth, f"{method.lower()}_group", rid, 200, detail, at=now)
        events = []
        if added or removed:
            events.append(
                self._event("group.members_changed", auth, rid, added=added, removed=removed)
            )
        return updated, events + self._templates(auth, store, added, now)

    def _patched(
        self, store: UserStore, current: dict[str, Any], body: Any
    ) -> tuple[dict[str, Any], list[MemberStep]]:
        """The PATCHed document (no members) and the membership steps (see
        :func:`scimcore.groups.plan_patch`)."""
        if isinstance(body, Mapping):  # 413 past max_operations, as for users
            ops = next((v for k, v in body.items() if k.lower() == "operations"), None)
            if isinstance(ops, list):
                limits.check_operations(len(ops), self.config.max_operations)
        plan = plan_patch(body, self.registry)
        if plan.full:  # a members path that needs the whole list: apply, then diff
            listed = store.group_members([current["id"]]).get(current["id"], [])
            before = [m["value"] for m in listed]
            whole = {**current, "members": listed} if listed else current
            patched = apply_patch(
                whole, body, self.registry, max_operations=self.config.max_operations
            )
            after = member_ids(patched.pop("members", []), "members")
            kept = set(after)
            gone = tuple(v for v in before if v not in kept)
            return patched, [MemberStep("remove", gone), MemberStep("add", tuple(after))]
        self._within_limit(plan.member_count)
        doc = dict(current)
        if plan.operations:
            doc = apply_patch(
                current,
                {"Operations": plan.operations},
                self.registry,
                max_operations=self.config.max_operations,
            )
        return doc, plan.steps

    def _apply_steps(
        self, store: UserStore, gid: str, steps: Sequence[MemberStep]
    ) -> tuple[list[str], list[str]]:
        """Carry out the membership steps in order; the ids finally added and removed."""
        added: dict[str, None] = {}
        removed: dict[str, None] = {}
        for step in steps:
            if step.kind == "add":
                for uid in store.add_members(gid, self._checked(store, step.ids)):
                    if uid in removed:
                        del removed[uid]
                    else:
                        added[uid] = None
            else:
                ids = None if step.kind == "clear" else step.ids
                for uid in store.remove_members(gid, ids):
                    if uid in added:
                        del added[uid]
                    else:
                        removed[uid] = None
        return list(added), list(removed)


def _operation(method: str, rid: str | None) -> str:
    """The provisioning log's name of a group request's operation."""
    if rid is None:
        return "create_group" if method == "POST" else "list_groups"
    return {"GET": "get_group", "HEAD": "get_group"}.get(method, f"{method.lower()}_group")
