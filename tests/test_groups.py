"""Groups (RFC 7643 §4.2, R5.3) through the service, on every backend: memory, SQLite,
PostgreSQL; Entra's and Okta's group traffic (idp-quirks Entra 9, 10; Okta 10)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from scimcore import ScimService
from scimcore.config import ServiceConfig
from scimcore.group_schema import ADSCIM_GROUP_URN, CORE_GROUP_URN
from scimcore.provisioning import Event
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.sql import SqlStorage
from tests.conftest import BASE, Client, counting_runtime, postgres_schema_url

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(ops)}


@contextmanager
def opened_service(kind: str, tmp_path: Path) -> Iterator[ScimService]:
    """A service over a new storage of ``kind`` ("memory", "sqlite" or "postgresql")."""
    if kind == "memory":
        yield ScimService(MemoryStorage(), runtime=counting_runtime())
        return
    if kind == "sqlite":
        storage = SqlStorage(f"sqlite:///{tmp_path / 'g.db'}", checkpoint_interval=None)
        yield ScimService(storage, runtime=counting_runtime())
        storage.close()
        return
    with postgres_schema_url() as url:
        storage = SqlStorage(url)
        yield ScimService(storage, runtime=counting_runtime())
        storage.close()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def gservice(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScimService]:
    with opened_service(request.param, tmp_path) as service:
        yield service


def _client(service: ScimService, slug: str = "acme") -> Client:
    service.workspaces.create(slug, f"admin@{slug}.example")
    return Client(
        service, service.workspaces.generate_token(slug, f"admin@{slug}.example").plaintext
    )


@pytest.fixture
def gc(gservice: ScimService) -> Client:
    return _client(gservice)


def group(c: Client, name: str, *members: str, **extra: Any) -> dict[str, Any]:
    body = {"schemas": [CORE_GROUP_URN], "displayName": name, **extra}
    if members:
        body["members"] = [{"value": m} for m in members]
    r = c("POST", "/Groups", body)
    assert r.status == 201, r.json()
    out: dict[str, Any] = r.json()
    return out


def members_of(c: Client, gid: str) -> list[str]:
    r = c("GET", f"/Groups/{gid}")
    assert r.status == 200
    return [m["value"] for m in r.json().get("members", [])]


def test_discovery_lists_groups(gc: Client) -> None:  # R5.3
    types = gc("GET", "/ResourceTypes").json()
    assert {t["id"] for t in types["Resources"]} == {"User", "Group"}
    assert gc("GET", "/Schemas/" + CORE_GROUP_URN).json()["id"] == CORE_GROUP_URN
    assert gc("GET", "/ResourceTypes/Group").json()["endpoint"] == "/Groups"


def test_groups_turned_off_are_absent() -> None:  # R5.3
    service = ScimService(MemoryStorage(), config=ServiceConfig(groups=False))
    c = _client(service)
    assert gc_ids(c, "/ResourceTypes") == {"User"}
    assert CORE_GROUP_URN not in gc_ids(c, "/Schemas")
    assert c("GET", "/Groups").status == 404
    assert c("POST", "/Groups", {"displayName": "x"}).status == 404
    assert c("GET", "/ResourceTypes/Group").status == 404


def gc_ids(c: Client, path: str) -> set[str]:
    return {r["id"] for r in c(path and "GET", path).json()["Resources"]}


def test_create_get_members_and_user_groups(gc: Client) -> None:
    alice, bob = gc.create("alice@x.example"), gc.create("bob@x.example")
    g = group(gc, "Marketing", alice["id"], bob["id"], externalId="ext-1")
    assert g["meta"]["resourceType"] == "Group" and g["meta"]["version"] == 'W/"1"'
    assert g["members"][1] == {  # no display: RFC 7643 §8.7.1 (docs/decisions.md)
        "value": bob["id"],
        "type": "User",
        "$ref": f"{BASE}/Users/{bob['id']}",
    }
    assert g["members"][0]["$ref"].endswith(f"/Users/{alice['id']}")
    user = gc("GET", f"/Users/{alice['id']}").json()
    assert user["groups"] == [
        {
            "value": g["id"],
            "display": "Marketing",
            "type": "direct",
            "$ref": user["groups"][0]["$ref"],
        }
    ]


def test_filters_and_excluded_members(gc: Client) -> None:
    alice, bob = gc.create("alice@x.example"), gc.create("bob@x.example")
    a = group(gc, "Alpha", alice["id"], externalId="e-a")
    b = group(gc, "Beta", alice["id"], bob["id"])

    def ids(flt: str, path: str = "/Groups") -> list[str]:
        r = gc("GET", path, query={"filter": flt})
        assert r.status == 200, r.json()
        return [x["id"] for x in r.json()["Resources"]]

    assert ids('displayName eq "alpha"') == [a["id"]]
    assert ids('externalId eq "e-a"') == [a["id"]]
    assert ids(f'members[value eq "{bob["id"]}"]') == [b["id"]]
    assert ids(f'members.value eq "{alice["id"]}"') == [a["id"], b["id"]]
    assert ids(f'groups.value eq "{a["id"]}"', "/Users") == [alice["id"]]
    assert ids('groups[display eq "Beta"]', "/Users") == [alice["id"], bob["id"]]
    r = gc(
        "GET", "/Groups", query={"excludedAttributes": "members", "filter": 'displayName eq "Beta"'}
    )
    assert r.status == 200 and "members" not in r.json()["Resources"][0]
    r = gc(
        "GET", "/Groups", query={"sortBy": "displayName", "sortOrder": "descending", "count": "1"}
    )
    assert r.json()["totalResults"] == 2 and r.json()["Resources"][0]["displayName"] == "Beta"


def test_patch_member_forms_and_noop(gc: Client) -> None:  # R4.4
    u = [gc.create(f"u{i}@x.example")["id"] for i in range(4)]
    g = group(gc, "G", u[0])
    gid = g["id"]
    r = gc(
        "PATCH",
        f"/Groups/{gid}",
        patch({"op": "Add", "path": "members", "value": [{"$ref": None, "value": u[1]}]}),
    )
    assert r.status == 204 and r.headers["ETag"] == 'W/"2"'
    assert members_of(gc, gid) == [u[0], u[1]]
    again = gc(
        "PATCH",
        f"/Groups/{gid}",
        patch({"op": "add", "path": "members", "value": [{"value": u[1]}]}),
    )
    assert again.headers["ETag"] == 'W/"2"'  # already a member: no new version
    gc(
        "PATCH",
        f"/Groups/{gid}",
        patch({"op": "Remove", "path": "members", "value": [{"value": u[0]}]}),
    )
    assert members_of(gc, gid) == [u[1]]
    gc(
        "PATCH",
        f"/Groups/{gid}",
        patch(
            {"op": "remove", "path": f'members[value eq "{u[1]}"]'},
            {"op": "add", "path": "members", "value": [{"value": u[2], "display": "x"}]},
        ),
    )
    assert members_of(gc, gid) == [u[2]]
    r = gc(
        "PATCH",
        f"/Groups/{gid}",
        patch({"op": "replace", "value": {"id": gid, "displayName": "G2"}}),
        query={"attributes": "displayName"},
    )
    assert r.status == 200 and r.json()["displayName"] == "G2"
    gc(
        "PATCH",
        f"/Groups/{gid}",
        patch({"op": "replace", "path": "members", "value": [{"value": u[3]}, {"value": u[0]}]}),
    )
    assert sorted(members_of(gc, gid)) == sorted([u[3], u[0]])
    gc("PATCH", f"/Groups/{gid}", patch({"op": "remove", "path": 'members[type eq "User"]'}))
    assert members_of(gc, gid) == []


def test_unknown_or_foreign_member_refused(gservice: ScimService) -> None:
    c, other = _client(gservice), _client(gservice, "other")
    stranger = other.create("s@other.example")["id"]
    g = group(c, "G")
    for mid in (stranger, "no-such-id"):
        r = c(
            "PATCH",
            f"/Groups/{g['id']}",
            patch({"op": "add", "path": "members", "value": [{"value": mid}]}),
        )
        assert r.status == 400 and r.json()["scimType"] == "invalidValue"
        assert r.json()["detail"] == f"members: {mid!r} is not a user of this workspace"
    assert members_of(c, g["id"]) == []


def test_deletes_follow_both_sides(gc: Client) -> None:
    alice, bob = gc.create("a@x.example")["id"], gc.create("b@x.example")["id"]
    g1, g2 = group(gc, "One", alice, bob), group(gc, "Two", alice)
    assert gc("DELETE", f"/Users/{alice}").status == 204
    assert members_of(gc, g1["id"]) == [bob]
    assert gc("DELETE", f"/Groups/{g1['id']}").status == 204
    assert gc("GET", f"/Groups/{g1['id']}").status == 404
    assert "groups" not in gc("GET", f"/Users/{bob}").json()
    assert members_of(gc, g2["id"]) == []


def test_put_replaces_members_and_too_many(gc: Client) -> None:
    a, b = gc.create("a@x.example")["id"], gc.create("b@x.example")["id"]
    g = group(gc, "G", a)
    r = gc("PUT", f"/Groups/{g['id']}", {"displayName": "H", "members": [{"value": b}]})
    assert r.status == 200 and [m["value"] for m in r.json()["members"]] == [b]
    many = [{"value": f"id{i}"} for i in range(1001)]
    r = gc("PATCH", f"/Groups/{g['id']}", patch({"op": "add", "path": "members", "value": many}))
    assert r.status == 400 and r.json()["scimType"] == "tooMany"


def test_entra_and_okta_group_traffic(gservice: ScimService) -> None:
    c = _client(gservice)
    events: list[Event] = []
    gservice.subscribe(events.append)
    uid = c.create("a@x.example")["id"]
    # Entra: create with the ADSCIM URN and no members; Test Connection
    r = c(
        "POST",
        "/Groups",
        {"schemas": [CORE_GROUP_URN, ADSCIM_GROUP_URN], "displayName": "Sales", "externalId": "e1"},
    )
    assert r.status == 201
    gid = r.json()["id"]
    q = {"excludedAttributes": "members", "filter": 'displayName eq "Sales"'}
    found = c("GET", "/Groups", query=q).json()
    assert found["totalResults"] == 1 and "members" not in found["Resources"][0]
    # Okta: a path-less replace that echoes the read-only id
    r = c(
        "PATCH",
        f"/Groups/{gid}",
        patch({"op": "replace", "value": {"id": gid, "displayName": "Sales"}}),
    )
    assert r.status == 204
    c(
        "PATCH",
        f"/Groups/{gid}",
        patch({"op": "Add", "path": "members", "value": [{"$ref": None, "value": uid}]}),
    )
    assert c("DELETE", f"/Groups/{gid}").status == 204
    kinds = [e.kind for e in events if e.kind.startswith("group.")]
    assert kinds == ["group.created", "group.members_changed", "group.deleted"]
    changed = next(e for e in events if e.kind == "group.members_changed")
    assert changed.data["added"] == [uid] and changed.data["removed"] == []
    log = [(e.operation, e.resource_id, e.status, e.detail) for e in gservice.product.log("acme")]
    assert log[:4] == [
        ("delete_group", gid, 204, ""),
        ("patch_group", gid, 200, "+1 -0 members"),
        ("create_group", gid, 201, ""),
        ("create", uid, 201, ""),
    ]  # the path-less replace that changed nothing wrote no entry (R4.4)


def test_refused_group_write_is_logged_and_writes_nothing(gc: Client) -> None:  # R9.2
    g = group(gc, "G")
    r = gc(
        "PATCH",
        f"/Groups/{g['id']}",
        patch({"op": "add", "path": "members", "value": [{"value": "zz"}]}),
    )
    assert r.status == 400
    entry = gc.service.product.log("acme")[0]
    assert (entry.operation, entry.resource_id, entry.status) == ("patch_group", g["id"], 400)
    assert gc("GET", f"/Groups/{g['id']}").json()["meta"]["version"] == 'W/"1"'


def test_root_search_covers_users_and_groups(gc: Client) -> None:  # RFC 7644 §3.4.3
    alice = gc.create("alice@x.example", displayName="Team")["id"]
    g1, g2 = group(gc, "Team")["id"], group(gc, "Team")["id"]
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}

    def search(**more: Any) -> tuple[int, list[str]]:
        r = gc("POST", "/.search", {**body, **more})
        assert r.status == 200, r.json()
        return r.json()["totalResults"], [x["id"] for x in r.json()["Resources"]]

    assert search(filter='displayName eq "Team"') == (3, [alice, g1, g2])
    assert search(filter='displayName eq "Team"', startIndex=2, count=1) == (3, [g1])
    assert search(filter=f'members.value eq "{alice}"') == (0, [])  # groups only: no member
    assert search(filter='userName eq "alice@x.example"') == (1, [alice])  # users only
    r = gc("POST", "/.search", {**body, "filter": "nope eq 1"})
    assert r.status == 400 and r.json()["scimType"] == "invalidFilter"


def test_group_etags_if_match_and_if_none_match(gc: Client) -> None:  # RFC 7644 §3.14
    g = group(gc, "G")
    path = f"/Groups/{g['id']}"
    first = gc("GET", path)
    assert first.headers["ETag"] == 'W/"1"'
    assert gc("GET", path, headers={"If-None-Match": 'W/"1"'}).status == 304
    stale = gc("PUT", path, {"displayName": "H"}, headers={"If-Match": 'W/"9"'})
    assert stale.status == 412
    ok = gc("PUT", path, {"displayName": "H"}, headers={"If-Match": 'W/"1"'})
    assert ok.status == 200 and ok.headers["ETag"] == 'W/"2"' and ok.json()["displayName"] == "H"
    assert gc("PUT", path, {"members": []}).json()["scimType"] == "invalidValue"  # displayName


def test_groups_off_shows_no_user_groups(gservice: ScimService) -> None:  # R5.3
    c = _client(gservice)
    uid = c.create("a@x.example")["id"]
    group(c, "G", uid)
    off = Client(ScimService(gservice.storage, config=ServiceConfig(groups=False)), c.token)
    assert "groups" in c("GET", f"/Users/{uid}").json()
    assert "groups" not in off("GET", f"/Users/{uid}").json()
    listed = off("GET", "/Users", query={"filter": 'userName eq "a@x.example"'}).json()
    assert listed["totalResults"] == 1 and "groups" not in listed["Resources"][0]


def test_concurrent_member_changes_of_one_group_all_apply(gservice: ScimService) -> None:
    c = _client(gservice)
    ids = [c.create(f"u{n}@x.example")["id"] for n in range(6)]
    gid = group(c, "G")["id"]
    barrier = threading.Barrier(len(ids))
    statuses: list[int] = []

    def add(uid: str) -> None:
        barrier.wait()
        op = {"op": "add", "path": "members", "value": [{"value": uid}]}
        statuses.append(c("PATCH", f"/Groups/{gid}", patch(op)).status)

    threads = [threading.Thread(target=add, args=(uid,)) for uid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [204] * len(ids)
    assert sorted(members_of(c, gid)) == sorted(ids)
    assert c("GET", f"/Groups/{gid}").headers["ETag"] == f'W/"{len(ids) + 1}"'


def test_pathless_members_and_bad_member_operations(gc: Client) -> None:
    a, b = gc.create("a@x.example")["id"], gc.create("b@x.example")["id"]
    gid = group(gc, "G", a)["id"]
    body = patch({"op": "add", "value": {"members": [{"value": b}], "externalId": "x1"}})
    assert gc("PATCH", f"/Groups/{gid}", body).status == 204
    got = gc("GET", f"/Groups/{gid}").json()
    assert [m["value"] for m in got["members"]] == [a, b] and got["externalId"] == "x1"
    body = patch({"op": "replace", "value": {"members": [{"value": b}]}})
    assert gc("PATCH", f"/Groups/{gid}", body).status == 204 and members_of(gc, gid) == [b]
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"op": "add", "path": "members", "value": [{"display": "no value"}]}, "invalidValue"),
        ({"op": "add", "path": "members"}, "invalidValue"),
        ({"op": "remove"}, "noTarget"),
        ({"op": "bogus", "path": "members", "value": []}, "invalidSyntax"),
        ({"op": "add", "path": "nope", "value": 1}, "invalidPath"),
    ]
    for op, scim_type in refusals:
        r = gc("PATCH", f"/Groups/{gid}", patch(op))
        assert (r.status, r.json()["scimType"]) == (400, scim_type), op
    assert members_of(gc, gid) == [b]
    assert gc("GET", f"/Groups/{gid}").headers["ETag"] == 'W/"3"'  # refused: nothing written
