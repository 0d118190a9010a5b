"""A member deleted between a group PATCH's member check and the membership's insert (issue #19).

The interleaving is forced, not waited for: ``SqlGroupStore.add_members`` is wrapped so that,
after the core checked the member exists (``existing_users``) and before the ``INSERT``, the
user is deleted. On PostgreSQL a real concurrent SCIM ``DELETE /Users/{id}`` runs in another
thread and commits while the PATCH's transaction is open (its transactions run side by side).
SQLite's writers take turns, so no other request can run there: the user's row is deleted on
the PATCH's own connection instead, which leaves the insert facing the same foreign key. Either
way the PATCH is refused as an unknown member is (400 ``invalidValue``), never a 500, and
nothing of it is written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import delete

from scimcore import ScimService
from scimcore_adapters.sql import SqlStorage
from scimcore_adapters.sql.groups import SqlGroupStore
from scimcore_adapters.sql.tables import USERS
from tests.conftest import Client
from tests.test_groups import _client, group, members_of, opened_service, patch


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScimService]:
    with opened_service(request.param, tmp_path) as service:
        yield service


def before_insert(monkeypatch: pytest.MonkeyPatch, hook: Callable[[SqlGroupStore], None]) -> None:
    """Run ``hook`` once, inside the next ``add_members``, before its first ``INSERT``."""
    original = SqlGroupStore.add_members
    fired = threading.Event()

    def add_members(self: SqlGroupStore, group_id: str, member_ids: Sequence[str]) -> list[str]:
        if not fired.is_set():
            fired.set()
            hook(self)
        return original(self, group_id, member_ids)

    monkeypatch.setattr(SqlGroupStore, "add_members", add_members)


def deleted_elsewhere(c: Client, uid: str, storage: SqlStorage) -> Callable[[SqlGroupStore], None]:
    """The user deleted by a concurrent request (PostgreSQL) or, where writers take turns
    (SQLite), on the PATCH's own connection."""

    def concurrent_delete(_: SqlGroupStore) -> None:
        statuses: list[int] = []
        worker = threading.Thread(
            target=lambda: statuses.append(c("DELETE", f"/Users/{uid}").status)
        )
        worker.start()
        worker.join(timeout=30)
        assert not worker.is_alive(), "the DELETE waited for the PATCH's transaction"
        assert statuses == [204]

    def same_connection_delete(store: SqlGroupStore) -> None:
        table = USERS.c
        store._conn.execute(delete(USERS).where(table.workspace_id == store._ws, table.id == uid))

    return (
        concurrent_delete if storage.engine.dialect.name == "postgresql" else same_connection_delete
    )


def test_member_deleted_before_insert_is_refused_cleanly(
    sql_service: ScimService, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = _client(sql_service)
    storage = sql_service.storage
    assert isinstance(storage, SqlStorage)
    keep, doomed = c.create("keep@x.example")["id"], c.create("doomed@x.example")["id"]
    g = group(c, "Marketing", keep)
    etag = c("GET", f"/Groups/{g['id']}").headers["ETag"]
    before_insert(monkeypatch, deleted_elsewhere(c, doomed, storage))
    op = {"op": "add", "path": "members", "value": [{"value": doomed}]}
    r = c("PATCH", f"/Groups/{g['id']}", patch(op))
    assert r.status == 400, r.json()
    assert r.json()["scimType"] == "invalidValue"
    assert r.json()["detail"] == f"members: {doomed!r} is not a user of this workspace"
    # Nothing half-written: the group as it was, the refusal in the provisioning log (R9.2).
    assert members_of(c, g["id"]) == [keep]
    assert c("GET", f"/Groups/{g['id']}").headers["ETag"] == etag
    log = sql_service.product.log("acme", limit=5)
    assert (log[0].operation, log[0].status) == ("patch_group", 400)
    if storage.engine.dialect.name == "postgresql":  # the concurrent DELETE went through
        assert c("GET", f"/Users/{doomed}").status == 404
