"""The groups of a unit of work (RFC 7643 §4.2, R5.3): groups and their memberships.

:class:`SqlGroupStore` runs on the operation's connection, in the same transaction as the
rest of the unit of work; :class:`~.users.SqlUserStore` holds one and hands its group methods
to it. A group's document never holds its members: each membership is one
``group_members`` row, so adding or removing k members runs k indexed statements whatever
the group's size, and a member already there (or not there) changes nothing
(``INSERT ... ON CONFLICT DO NOTHING``'s row count tells). Memberships follow a deleted group
or user by ``ON DELETE CASCADE``.

A query of groups narrows in SQL where an index answers (``displayName eq``, ``externalId
eq``, ``members[value eq]``/``members.value eq``), then re-checks every candidate with the
core's filter (members attached when the filter tests them), sorts and pages in Python, as
the reference backend does: a workspace's groups are few next to its users.

A user deleted by a concurrent request after the member check (``existing_users``) and
before the membership's ``INSERT`` (possible on PostgreSQL, whose transactions run side by
side; SQLite's writers take turns) makes the insert fail its foreign key: that is refused as
an unknown member is (400 ``invalidValue``), and the whole request rolls back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from scimcore._json import dumps_text, loads
from scimcore.errors import (
    InvalidValueError,
    NotFoundError,
    PreconditionFailedError,
    UniquenessError,
)
from scimcore.filter_tree import And, Compare, Filter, ValuePath
from scimcore.filters import matches
from scimcore.groups import filter_mentions
from scimcore.schema import SchemaRegistry
from scimcore.storage import Page, SortSpec, sort_documents

from .execute import Runner
from .statements import in_workspace, insert_unless_statement
from .tables import GROUP_MEMBERS, GROUPS, USERS

__all__ = ["SqlGroupStore"]

_G, _M, _U = GROUPS.c, GROUP_MEMBERS.c, USERS.c
_WS = in_workspace(GROUPS)
_ONE = and_(_WS, _G.id == bindparam("b_id"))

_GET = select(_G.document).where(_ONE)
#: PostgreSQL writes: the group's row locked until the commit, so that concurrent membership
#: changes of one group queue instead of failing the version check.
_GET_FOR_UPDATE = _GET.with_for_update()
_GET_VERSION = select(_G.version).where(_ONE)
_REPLACE = (
    update(GROUPS)
    .where(_ONE, _G.version == bindparam("b_version"))
    .values(
        display_name_folded=bindparam("b_name"),
        external_id=bindparam("b_ext"),
        version=bindparam("b_new_version"),
        document=bindparam("b_doc"),
    )
)
_DELETE = delete(GROUPS).where(_ONE)
_ALL = select(_G.document).where(_WS).order_by(_G.seq)
_BY_NAME = (
    select(_G.document).where(_WS, _G.display_name_folded == bindparam("b_v")).order_by(_G.seq)
)
_BY_EXT = select(_G.document).where(_WS, _G.external_id == bindparam("b_v")).order_by(_G.seq)
#: A member's groups are found by the index ``(workspace_id, member_id)``: one probe, whatever
#: the number of groups. SQLite's planner chooses it once it has statistics for
#: ``group_members`` (migration 12 pins them, :mod:`.planner_stats`); without them it scanned
#: every membership of the workspace, which session 16 avoided by adding ``group_id IN (the
#: workspace's groups)``: a probe per group, 0.42 ms for one user in a workspace of 1,000
#: groups against 0.044 ms now (benchmarks/NOTES.md, session 17).
_BY_MEMBER = (
    select(_G.document)
    .join(GROUP_MEMBERS, and_(_M.workspace_id == _G.workspace_id, _M.group_id == _G.id))
    .where(_WS, _M.member_id == bindparam("b_v"))
    .order_by(_G.seq)
)
_MEMBERS = (
    select(_M.member_id)
    .where(_M.workspace_id == bindparam("b_ws"), _M.group_id == bindparam("b_id"))
    .order_by(_M.seq)
)
_MEMBER_IDS = select(_M.member_id).where(
    _M.workspace_id == bindparam("b_ws"), _M.group_id == bindparam("b_id")
)
_USER_EXISTS = select(_U.id).where(_U.workspace_id == bindparam("b_ws"), _U.id == bindparam("b_id"))
_REMOVE = delete(GROUP_MEMBERS).where(
    _M.workspace_id == bindparam("b_ws"),
    _M.group_id == bindparam("b_id"),
    _M.member_id == bindparam("b_member"),
)
_CLEAR = delete(GROUP_MEMBERS).where(
    _M.workspace_id == bindparam("b_ws"), _M.group_id == bindparam("b_id")
)
_GROUPS_OF = (
    select(_G.id, _G.document)
    .join(GROUP_MEMBERS, and_(_M.workspace_id == _G.workspace_id, _M.group_id == _G.id))
    .where(_WS, _M.member_id == bindparam("b_id"))
    .order_by(_G.seq)
)
#: The groups of several users in one statement (``b_ids``, expanding), in group order.
_GROUPS_OF_MANY = (
    select(_M.member_id, _G.id, _G.document)
    .join(GROUP_MEMBERS, and_(_M.workspace_id == _G.workspace_id, _M.group_id == _G.id))
    .where(_WS, _M.member_id.in_(bindparam("b_ids", expanding=True)))
    .order_by(_G.seq)
)
#: Users per statement of :meth:`SqlGroupStore.groups_of` (under every engine's limit of
#: bound parameters).
_MANY = 500


def _columns(doc: dict[str, Any]) -> dict[str, Any]:
    name = doc.get("displayName")
    ext = doc.get("externalId")
    return {
        "display_name_folded": name.casefold() if isinstance(name, str) else None,
        "external_id": ext if isinstance(ext, str) else None,
        "version": doc["meta"]["version"],
        "document": dumps_text(doc),
    }


def _is_foreign_key_violation(exc: IntegrityError) -> bool:
    """Whether ``exc`` is a foreign key's refusal (on either engine)."""
    sqlstate = getattr(exc.orig, "sqlstate", None)  # psycopg
    if sqlstate is not None:
        return bool(sqlstate == "23503")
    name = getattr(exc.orig, "sqlite_errorname", None)  # sqlite3 (Python 3.11+)
    if name is not None:
        return bool(name == "SQLITE_CONSTRAINT_FOREIGNKEY")
    return "FOREIGN KEY constraint failed" in str(exc.orig)


def _membership(group_id: str, document: str) -> dict[str, Any]:
    """One element of ``User.groups`` (RFC 7643 §4.1.2)."""
    return {"value": group_id, "display": loads(document).get("displayName"), "type": "direct"}


def _narrowing(f: Filter) -> tuple[Any, str] | None:
    """An indexed statement returning a superset of what ``f`` matches, and its value."""
    if isinstance(f, And):
        return _narrowing(f.left) or _narrowing(f.right)
    inner = f.filter if isinstance(f, ValuePath) else f
    if not isinstance(inner, Compare) or inner.op != "eq" or not isinstance(inner.value, str):
        return None
    if inner.attr.urn is not None and not inner.attr.urn.lower().endswith(":group"):
        return None
    name = inner.attr.name.lower()
    if isinstance(f, ValuePath):
        if f.attr.name.lower() == "members" and name == "value":
            return _BY_MEMBER, inner.value
        return None
    if name == "displayname" and inner.attr.sub is None:
        return _BY_NAME, inner.value.casefold()
    if name == "externalid" and inner.attr.sub is None:
        return _BY_EXT, inner.value
    if name == "members" and (inner.attr.sub or "").lower() == "value":
        return _BY_MEMBER, inner.value
    return None


class SqlGroupStore:
    """The group methods of a unit of work (see :class:`~scimcore.storage.UserStore`)."""

    def __init__(
        self,
        conn: Connection,
        run: Runner,
        workspace_id: str,
        registry: SchemaRegistry,
        snapshot: Callable[[], None],
        *,
        for_update: bool = False,
    ) -> None:
        self._for_update = for_update
        self._conn = conn
        self._run = run
        self._ws = workspace_id
        self._registry = registry
        self._snapshot = snapshot

    def _mine(self, group_id: str, **more: Any) -> dict[str, Any]:
        return {"b_ws": self._ws, "b_id": group_id, **more}

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        stmt = _GET_FOR_UPDATE if self._for_update else _GET
        text = self._run(stmt, self._mine(group_id)).scalar()
        return loads(text) if text is not None else None

    def insert_group(self, document: dict[str, Any]) -> None:
        row = {"workspace_id": self._ws, "id": document["id"], **_columns(document)}
        stmt = insert_unless_statement(self._conn.dialect.name, GROUPS, ())
        if self._run(stmt, row, columns=True, fetch=False).rowcount != 1:
            raise UniquenessError(f"id {document['id']!r} is already taken")

    def replace_group(self, document: dict[str, Any], expected_version: str) -> None:
        cols = _columns(document)
        params = self._mine(
            document["id"],
            b_version=expected_version,
            b_name=cols["display_name_folded"],
            b_ext=cols["external_id"],
            b_new_version=cols["version"],
            b_doc=cols["document"],
        )
        if self._run(_REPLACE, params, fetch=False).rowcount == 0:
            if self._run(_GET_VERSION, self._mine(document["id"])).first() is None:
                raise NotFoundError(f"resource {document['id']} not found")
            raise PreconditionFailedError("the resource was changed by another request")

    def delete_group(self, group_id: str) -> bool:
        self._run(_CLEAR, self._mine(group_id), fetch=False)
        return bool(self._run(_DELETE, self._mine(group_id), fetch=False).rowcount)

    def query_groups(
        self, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
    ) -> Page:
        self._snapshot()
        narrowed = _narrowing(filter) if filter is not None else None
        if narrowed is None:
            rows = self._run(_ALL, {"b_ws": self._ws}).rows
        else:
            rows = self._run(narrowed[0], {"b_ws": self._ws, "b_v": narrowed[1]}).rows
        docs: list[dict[str, Any]] = [loads(r[0]) for r in rows]
        if filter is not None:
            with_members = filter_mentions(filter, "members")

            def keep(doc: dict[str, Any]) -> bool:
                if with_members:
                    members = self.group_members([doc["id"]]).get(doc["id"])
                    doc = {**doc, "members": members}
                return matches(filter, doc, self._registry)

            docs = [d for d in docs if keep(d)]
        if sort is not None:
            docs = sort_documents(docs, sort)
        start = max(start_index, 1) - 1
        return Page(len(docs), docs[start : start + max(count, 0)])

    def group_members(self, group_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for gid in group_ids:
            rows = self._run(_MEMBERS, self._mine(gid)).rows
            if rows:
                out[gid] = [{"value": r[0], "type": "User"} for r in rows]
        return out

    def existing_users(self, user_ids: Sequence[str]) -> set[str]:
        run, mine = self._run, self._mine
        return {u for u in user_ids if run(_USER_EXISTS, mine(u)).first() is not None}

    def add_members(self, group_id: str, member_ids: Sequence[str]) -> list[str]:
        stmt = insert_unless_statement(
            self._conn.dialect.name, GROUP_MEMBERS, ("workspace_id", "group_id", "member_id")
        )
        added = []
        for uid in dict.fromkeys(member_ids):
            row = {"workspace_id": self._ws, "group_id": group_id, "member_id": uid}
            try:
                inserted = self._run(stmt, row, columns=True, fetch=False).rowcount == 1
            except IntegrityError as exc:
                if not _is_foreign_key_violation(exc):
                    raise
                # Deleted since the caller checked it (see the module's documentation).
                raise InvalidValueError(
                    f"members: {uid!r} is not a user of this workspace"
                ) from None
            if inserted:
                added.append(uid)
        return added

    def remove_members(self, group_id: str, member_ids: Sequence[str] | None) -> list[str]:
        if member_ids is None:
            gone = [r[0] for r in self._run(_MEMBER_IDS, self._mine(group_id)).rows]
            self._run(_CLEAR, self._mine(group_id), fetch=False)
            return gone
        removed = []
        for uid in dict.fromkeys(member_ids):
            params = self._mine(group_id, b_member=uid)
            if self._run(_REMOVE, params, fetch=False).rowcount:
                removed.append(uid)
        return removed

    def groups_of(self, user_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """One indexed statement for one user (a ``GET /Users/{id}``), one per 500 for a
        page of users; the groups of each in the order the groups were created."""
        out: dict[str, list[dict[str, Any]]] = {}
        if len(user_ids) == 1:
            rows = self._run(_GROUPS_OF, self._mine(user_ids[0])).rows
            if rows:
                out[user_ids[0]] = [_membership(gid, doc) for gid, doc in rows]
            return out
        self._snapshot()  # a lazy (one_read) store: several statements read one snapshot
        names: dict[str, Any] = {}
        unique = list(dict.fromkeys(user_ids))
        for at in range(0, len(unique), _MANY):
            params = {"b_ws": self._ws, "b_ids": unique[at : at + _MANY]}
            for uid, gid, doc in self._conn.execute(_GROUPS_OF_MANY, params):
                if gid not in names:
                    names[gid] = _membership(gid, doc)
                out.setdefault(uid, []).append(dict(names[gid]))
        return {uid: out[uid] for uid in user_ids if uid in out}
