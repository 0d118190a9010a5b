"""The groups of the in-memory reference storage (:mod:`scimcore_adapters.memory`).

:class:`GroupData` is the part of a workspace's data that holds groups and memberships;
:class:`GroupStoreMixin` gives the memory unit of work its group methods
(:class:`~scimcore.storage.UserStore`). Stored containers are never mutated in place, only
replaced (copy on write), so that the storage's shallow snapshot rolls a failed operation back.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import attrs

from scimcore.errors import NotFoundError, PreconditionFailedError, UniquenessError
from scimcore.filter_tree import Filter
from scimcore.filters import matches
from scimcore.groups import filter_mentions
from scimcore.schema import SchemaRegistry
from scimcore.storage import Page, SortSpec, sort_documents

__all__ = ["GroupData", "GroupStoreMixin"]


@attrs.define
class GroupData:
    """Groups by id, their creation order, and each group's members (an insertion-ordered
    dict of user ids, replaced whole on a change)."""

    groups: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    group_seq: dict[str, int] = attrs.field(factory=dict)
    group_counter: int = 0
    members: dict[str, dict[str, None]] = attrs.field(factory=dict)

    def __copy__(self) -> GroupData:
        """The snapshot of a transaction: each container copied (its values are replaced,
        never mutated, so a shallow copy of each is enough)."""
        return GroupData(
            dict(self.groups), dict(self.group_seq), self.group_counter, dict(self.members)
        )


class GroupStoreMixin:
    """The group methods of the memory unit of work (``_gd``: the workspace's group data,
    ``_users``: its user documents by id)."""

    _gd: GroupData
    _users: dict[str, dict[str, Any]]
    _group_registry: SchemaRegistry

    def get_group(self, group_id: str) -> dict[str, Any] | None:
        doc = self._gd.groups.get(group_id)
        return copy.deepcopy(doc) if doc is not None else None

    def insert_group(self, document: dict[str, Any]) -> None:
        if document["id"] in self._gd.groups:
            raise UniquenessError(f"id {document['id']!r} is already taken")
        self._gd.group_counter += 1
        self._gd.group_seq[document["id"]] = self._gd.group_counter
        self._gd.groups[document["id"]] = copy.deepcopy(document)

    def replace_group(self, document: dict[str, Any], expected_version: str) -> None:
        current = self._gd.groups.get(document["id"])
        if current is None:
            raise NotFoundError(f"resource {document['id']} not found")
        if current["meta"]["version"] != expected_version:
            raise PreconditionFailedError("the resource was changed by another request")
        self._gd.groups[document["id"]] = copy.deepcopy(document)

    def delete_group(self, group_id: str) -> bool:
        if self._gd.groups.pop(group_id, None) is None:
            return False
        del self._gd.group_seq[group_id]
        self._gd.members.pop(group_id, None)
        return True

    def _member_list(self, group_id: str) -> list[dict[str, Any]]:
        return [{"value": uid, "type": "User"} for uid in self._gd.members.get(group_id, {})]

    def query_groups(
        self, filter: Filter | None, sort: SortSpec | None, start_index: int, count: int
    ) -> Page:
        seq = self._gd.group_seq
        docs = sorted(self._gd.groups.values(), key=lambda d: (seq[d["id"]], d["id"]))
        if filter is not None:
            with_members = filter_mentions(filter, "members")

            def keep(doc: dict[str, Any]) -> bool:
                if with_members:
                    doc = {**doc, "members": self._member_list(doc["id"])}
                return matches(filter, doc, self._group_registry)

            docs = [d for d in docs if keep(d)]
        if sort is not None:
            docs = sort_documents(docs, sort)
        start = max(start_index, 1) - 1
        return Page(len(docs), [copy.deepcopy(d) for d in docs[start : start + max(count, 0)]])

    def group_members(self, group_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        return {g: self._member_list(g) for g in group_ids if self._gd.members.get(g)}

    def existing_users(self, user_ids: Sequence[str]) -> set[str]:
        return {u for u in user_ids if u in self._users}

    def add_members(self, group_id: str, member_ids: Sequence[str]) -> list[str]:
        current = self._gd.members.get(group_id, {})
        added = [m for m in dict.fromkeys(member_ids) if m not in current]
        if added:
            self._gd.members[group_id] = {**current, **dict.fromkeys(added)}
        return added

    def remove_members(self, group_id: str, member_ids: Sequence[str] | None) -> list[str]:
        current = self._gd.members.get(group_id, {})
        if member_ids is None:
            gone = list(current)
        else:
            gone = [m for m in dict.fromkeys(member_ids) if m in current]
        if gone:
            drop = set(gone)
            self._gd.members[group_id] = {m: None for m in current if m not in drop}
        return gone

    def groups_of(self, user_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        wanted = set(user_ids)
        out: dict[str, list[dict[str, Any]]] = {}
        seq = self._gd.group_seq
        for gid in sorted(self._gd.members, key=lambda g: seq.get(g, 0)):
            for uid in self._gd.members[gid]:
                if uid in wanted:
                    name = self._gd.groups[gid].get("displayName")
                    out.setdefault(uid, []).append(
                        {"value": gid, "display": name, "type": "direct"}
                    )
        return out

    def forget_member(self, user_id: str) -> None:
        """A deleted user leaves every group (memberships follow deletes)."""
        for gid, current in list(self._gd.members.items()):
            if user_id in current:
                self._gd.members[gid] = {m: None for m in current if m != user_id}
