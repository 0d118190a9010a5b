"""The SCIM protocol surface of ScimService (RFC 7644), driven with request values."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from scimcore import ScimService, Workspaces
from scimcore.config import ServiceConfig
from scimcore.group_schema import CORE_GROUP_URN as GROUP
from tests.conftest import BASE, Client

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH], "Operations": list(ops)}


def assert_error(response: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert response.status == status, response.body
    assert response.headers["Content-Type"] == "application/scim+json"
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    assert body["detail"]
    assert "Traceback" not in body["detail"]
    return body


# --- discovery ---------------------------------------------------------------------------------


def test_service_provider_config_advertises_features(client: Client) -> None:
    r = client("GET", "/ServiceProviderConfig")
    assert r.status == 200
    body = r.json()
    assert body["patch"] == {"supported": True}
    assert body["bulk"]["supported"] is False
    assert body["filter"] == {"supported": True, "maxResults": 1000}
    assert body["etag"] == {"supported": True}
    assert body["sort"] == {"supported": True}
    assert body["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_resource_types_list_users_and_groups(client: Client) -> None:
    # R5.3: Groups are fully supported, so /ResourceTypes lists them.
    body = client("GET", "/ResourceTypes").json()
    assert body["totalResults"] == 2
    assert [r["endpoint"] for r in body["Resources"]] == ["/Users", "/Groups"]
    assert body["Resources"][0]["schemaExtensions"] == [{"schema": ENT, "required": False}]
    assert client("GET", "/ResourceTypes/User").json()["id"] == "User"
    assert client("GET", "/ResourceTypes/group").json()["schema"] == GROUP
    assert_error(client("GET", "/ResourceTypes/Nope"), 404)


def test_schemas_describe_user_enterprise_and_group(client: Client) -> None:
    body = client("GET", "/Schemas").json()
    assert {s["id"] for s in body["Resources"]} == {USER, ENT, GROUP}
    user = client("GET", f"/Schemas/{USER}").json()
    attrs = {a["name"]: a for a in user["attributes"]}
    assert attrs["userName"]["uniqueness"] == "server"
    assert attrs["userName"]["caseExact"] is False
    assert attrs["password"]["returned"] == "never"
    assert attrs["emails"]["multiValued"] is True
    group = {a["name"]: a for a in client("GET", f"/Schemas/{GROUP}").json()["attributes"]}
    assert group["displayName"]["required"] is True
    assert group["members"]["multiValued"] is True
    assert_error(client("GET", "/Schemas/urn:nope"), 404)


def test_groups_turned_off_are_properly_absent(service: ScimService, token: str) -> None:
    # R5.3: a host that turns Groups off gets them absent, not half there.
    off = ScimService(service.storage, config=ServiceConfig(groups=False))
    client = Client(off, token)
    assert [r["id"] for r in client("GET", "/ResourceTypes").json()["Resources"]] == ["User"]
    assert GROUP not in {s["id"] for s in client("GET", "/Schemas").json()["Resources"]}
    assert_error(client("GET", f"/Schemas/{GROUP}"), 404)
    assert_error(client("GET", "/ResourceTypes/Group"), 404)
    assert_error(client("GET", "/Groups"), 404)
    assert_error(client("POST", "/Groups", {"displayName": "x"}), 404)
    assert_error(client("PATCH", "/Groups/abc", {"Operations": []}), 404)


# --- authentication (R1, R2) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic dXNlcjpwdw==", "Bearer", "non-token", "Bearer scim_" + "0" * 32 + "_" + "x" * 40],
)
def test_bad_tokens_get_401_with_bearer_challenge(
    service: ScimService, token: str, authorization: str | None
) -> None:
    # R2.4
    c = Client(service, None)
    headers = {"Authorization": authorization} if authorization else {}
    r = c("GET", "/Users", headers=headers)
    assert_error(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_deleted_token_fails_at_once(
    client: Client, workspaces: Workspaces, make_client: Callable[[str | None], Client]
) -> None:
    # R2.2: older tokens stay active until deleted.
    second = workspaces.generate_token("acme", "admin@acme.example", "rotation").plaintext
    assert client("GET", "/Users").status == 200
    assert make_client(second)("GET", "/Users").status == 200
    first_id = workspaces.list_tokens("acme")[0].id
    workspaces.delete_token("acme", first_id)
    assert_error(client("GET", "/Users"), 401)
    assert make_client(second)("GET", "/Users").status == 200


def test_token_of_deactivated_admin_stops_working(client: Client, workspaces: Workspaces) -> None:
    # R2.3
    workspaces.add_admin("acme", "second@acme.example")
    assert client("GET", "/Users").status == 200
    workspaces.deactivate_admin("acme", "admin@acme.example")
    assert_error(client("GET", "/Users"), 401)


def test_get_by_id_with_a_wrong_secret_or_a_dead_token_is_401(
    client: Client, workspaces: Workspaces, make_client: Callable[[str | None], Client]
) -> None:
    # R2.2, R2.3, R2.4 on the path that reads the user with the authentication (SQL storage)
    uid = client.create("ann@acme.example")["id"]
    assert client.token is not None
    forged = make_client(f"{client.token[:38]}{'x' * 43}")  # the real token id, another secret
    r = forged("GET", f"/Users/{uid}")
    assert_error(r, 401)
    assert b"ann@" not in r.body
    assert client("GET", f"/Users/{uid}").status == 200
    workspaces.add_admin("acme", "second@acme.example")
    workspaces.deactivate_admin("acme", "admin@acme.example")
    assert_error(client("GET", f"/Users/{uid}"), 401)


def test_writes_with_a_wrong_secret_or_a_dead_token_are_401_and_write_nothing(
    client: Client, workspaces: Workspaces, make_client: Callable[[str | None], Client]
) -> None:
    # R2.2, R2.3, R2.4 on the writes, which authenticate inside their own transaction (SQL)
    uid = client.create("ann@acme.example", title="Eng")["id"]
    assert client.token is not None
    forged = make_client(f"{client.token[:38]}{'x' * 43}")  # the real token id, another secret
    change = patch({"op": "replace", "path": "title", "value": "X"})
    put = {"schemas": [USER], "userName": "ann@acme.example", "title": "Y"}
    attempts: list[tuple[str, str, Any, bytes | None]] = [
        ("POST", "/Users", {"schemas": [USER], "userName": "bob@acme.example"}, None),
        ("PUT", f"/Users/{uid}", put, None),
        ("PATCH", f"/Users/{uid}", change, None),
        ("DELETE", f"/Users/{uid}", None, None),
        ("POST", "/Users", None, b"{not json"),  # a bad body is still a 401 first
        ("PATCH", "/Users/missing", None, b"{not json"),
    ]
    for method, path, body, raw in attempts:
        r = forged(method, path, body, raw=raw)
        assert_error(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"ann@" not in r.body and b"Eng" not in r.body
    after = client("GET", f"/Users/{uid}").json()
    assert after["title"] == "Eng" and after["meta"]["version"] == 'W/"1"'
    lookup = client("GET", "/Users", query={"filter": 'userName eq "bob@acme.example"'})
    assert lookup.json()["totalResults"] == 0
    # With a good token the errors come in their usual order: 404 before a bad body, then 400.
    assert_error(client("PATCH", "/Users/missing", raw=b"{not json"), 404)
    assert_error(client("PATCH", f"/Users/{uid}", raw=b"{not json"), 400, "invalidSyntax")
    assert_error(client("POST", "/Users", {"schemas": [USER]}), 400, "invalidValue")
    second = workspaces.generate_token("acme", "admin@acme.example", "second").plaintext
    workspaces.delete_token("acme", workspaces.list_tokens("acme")[0].id)
    assert_error(client("PATCH", f"/Users/{uid}", change), 401)
    workspaces.add_admin("acme", "other@acme.example")
    assert make_client(second)("PATCH", f"/Users/{uid}", change).status == 200
    workspaces.deactivate_admin("acme", "admin@acme.example")
    assert_error(make_client(second)("DELETE", f"/Users/{uid}"), 401)
    assert_error(make_client(second)("POST", "/Users", {"userName": "cy@acme.example"}), 401)
    assert client("GET", f"/Users/{uid}").status == 401
    assert make_client(second)("GET", f"/Users/{uid}").status == 401


def test_username_lookup_pages_projects_and_authenticates_first(
    client: Client, make_client: Callable[[str | None], Client]
) -> None:
    # R1.3: Entra's lookup, read with the authentication on SQL storage; paging, projection
    # and error precedence as for any query
    client.create("ann@acme.example", title="Eng")
    lookup = 'userName eq "ANN@acme.example"'
    found = client("GET", "/Users", query={"filter": lookup}).json()
    assert (found["totalResults"], found["itemsPerPage"]) == (1, 1)
    assert found["Resources"][0]["title"] == "Eng"
    none = client("GET", "/Users", query={"filter": lookup, "count": "0"}).json()
    assert (none["totalResults"], none["itemsPerPage"], none.get("Resources", [])) == (1, 0, [])
    later = client("GET", "/Users", query={"filter": lookup, "startIndex": "2"}).json()
    assert (later["totalResults"], later["itemsPerPage"]) == (1, 0)
    slim = client("GET", "/Users", query={"filter": lookup, "attributes": "userName"}).json()
    assert "title" not in slim["Resources"][0]
    assert slim["Resources"][0]["userName"] == "ann@acme.example"
    assert (
        client("GET", "/Users", query={"filter": 'userName eq "nobody"'}).json()["totalResults"]
        == 0
    )
    assert client.token is not None
    forged = make_client(f"{client.token[:38]}{'x' * 43}")
    r = forged("GET", "/Users", query={"filter": lookup})
    assert_error(r, 401)
    assert b"ann@" not in r.body
    assert_error(forged("GET", "/Users", query={"filter": "((("}), 401)  # 401 before 400
    assert_error(client("GET", "/Users", query={"filter": "((("}), 400, "invalidFilter")
    bad_sort = client("GET", "/Users", query={"filter": lookup, "sortOrder": "sideways"})
    assert_error(bad_sort, 400, "invalidValue")


def test_filter_with_a_lone_surrogate_escape_is_400(client: Client) -> None:
    # "\ud800" is valid JSON string syntax but no character: SQL drivers cannot encode it
    client.create("ann@acme.example")
    for text in ('userName eq "\\ud800"', 'title eq "a\\udfff"'):
        r = client("GET", "/Users", query={"filter": text})
        assert_error(r, 400, "invalidFilter")
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": text}
        assert_error(client("POST", "/Users/.search", body), 400, "invalidFilter")
    paired = client("GET", "/Users", query={"filter": 'title eq "\\ud83d\\ude00"'})
    assert paired.status == 200 and paired.json()["totalResults"] == 0


def test_unstorable_text_and_huge_offsets_are_never_a_500(client: Client) -> None:
    # U+0000 (PostgreSQL text cannot hold it), a lone surrogate or NUL in a URL's id, and a
    # startIndex beyond 64 bits: SCIM errors or empty pages, on every storage
    uid = client.create("ann@acme.example")["id"]
    assert_error(client("POST", "/Users", {"userName": "a\u0000b@x"}), 400, "invalidValue")
    nul_name = {"userName": "b@x", "name": {"givenName": "a\u0000"}}
    assert_error(client("POST", "/Users", nul_name), 400, "invalidValue")
    nul_title = patch({"op": "replace", "path": "title", "value": "\u0000"})
    assert_error(client("PATCH", f"/Users/{uid}", nul_title), 400, "invalidValue")
    nul_filter = {"filter": 'userName eq "\\u0000"'}
    assert_error(client("GET", "/Users", query=nul_filter), 400, "invalidFilter")
    for bad in ("\x00", "\ud800", "a\x00b"):
        assert_error(client("GET", f"/Users/{bad}"), 404)
        assert_error(client("DELETE", f"/Users/{bad}"), 404)
    far = client("GET", "/Users", query={"startIndex": str(10**23)}).json()
    assert (far["totalResults"], far["itemsPerPage"]) == (1, 0)
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    far = client("POST", "/Users/.search", {**search, "startIndex": 10**23}).json()
    assert (far["totalResults"], far["itemsPerPage"]) == (1, 0)
    assert client("GET", "/Users").json()["totalResults"] == 1


def test_values_too_long_to_index_are_400_never_500(client: Client) -> None:
    """Bad input, never a 500: PostgreSQL cannot index an entry over about 2,700 bytes, so a
    userName, externalId, displayName or e-mail value of thousands of incompressible
    characters is 400 ``invalidValue`` there (and nothing is written); other storages take it."""
    import random

    rng = random.Random(7)
    huge = "".join(chr(rng.randrange(0x10000, 0x10FFFF)) for _ in range(1500))  # 6,000 bytes
    uid = client.create("ann@acme.example")["id"]
    attempts = [
        ("POST", "/Users", {"schemas": [USER], "userName": huge}),
        ("POST", "/Users", {"schemas": [USER], "userName": "bob@acme.example", "externalId": huge}),
        (
            "PUT",
            f"/Users/{uid}",
            {"schemas": [USER], "userName": "ann@acme.example", "displayName": huge},
        ),
        (
            "PATCH",
            f"/Users/{uid}",
            patch({"op": "add", "path": "emails", "value": [{"value": huge}]}),
        ),
    ]
    for method, path, body in attempts:
        r = client(method, path, body)
        assert r.status in (200, 201, 400), (method, r.status, r.body[:200])
        if r.status == 400:
            assert_error(r, 400, "invalidValue")
            assert "too long" in r.json()["detail"]
            if method == "POST":
                lookup = client("GET", "/Users", query={"filter": 'userName eq "bob@acme.example"'})
                assert lookup.json()["totalResults"] == 0
            else:
                assert client("GET", f"/Users/{uid}").json()["meta"]["version"] == 'W/"1"'


def test_head_answers_like_get(client: Client) -> None:
    # RFC 7231 §4.3.2 (RFC 7644 §3.4 serves GET): HEAD of a list is not a create
    user = client.create("ann@acme.example")
    listed = client("HEAD", "/Users", query={"filter": 'userName eq "ann@acme.example"'})
    assert listed.status == 200 and listed.json()["totalResults"] == 1
    assert client("HEAD", "/Users").json()["totalResults"] == 1
    one = client("HEAD", f"/Users/{user['id']}")
    assert one.status == 200 and one.headers["ETag"] == user["meta"]["version"]
    assert_error(client("HEAD", "/Users/nope"), 404)
    assert client("GET", "/Users").json()["totalResults"] == 1  # nothing was created


def test_tokens_are_stored_hashed(token: str, workspaces: Workspaces) -> None:
    # R2.1
    record = workspaces.list_tokens("acme")[0]
    secret = token.split("_", 2)[2]
    assert secret not in repr(record)
    assert record.secret_hash != secret and len(record.secret_hash) == 64
    assert record.last_used_at is None


def test_workspaces_never_see_each_other(
    client: Client, workspaces: Workspaces, make_client: Callable[[str | None], Client]
) -> None:
    # R1.1
    user = client.create("ann@acme.example")
    workspaces.create("other", "boss@other.example")
    other = make_client(workspaces.generate_token("other", "boss@other.example").plaintext)
    assert_error(other("GET", f"/Users/{user['id']}"), 404)
    assert_error(
        other("PATCH", f"/Users/{user['id']}", patch({"op": "remove", "path": "title"})), 404
    )
    assert_error(other("DELETE", f"/Users/{user['id']}"), 404)
    assert other("GET", "/Users").json()["totalResults"] == 0
    # the same userName may exist in both workspaces
    assert other("POST", "/Users", {"userName": "ann@acme.example"}).status == 201
    assert client("GET", "/Users").json()["totalResults"] == 1


# --- create / read ---------------------------------------------------------------------------


def test_create_returns_201_with_location_etag_and_no_password(client: Client) -> None:
    r = client(
        "POST",
        "/Users",
        {
            "schemas": [USER, ENT],
            "userName": "bjensen@example.com",
            "password": "t1meMa$heen",
            "id": "client-chosen",
            "meta": {"resourceType": "User", "created": "04-12-2018 00:00:00"},
            "roles": [],
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"type": "work", "value": "bjensen@example.com", "primary": True}],
            "active": True,
            ENT: {"department": "Marketing", "manager": "mgr-1"},
        },
    )
    assert r.status == 201
    body = r.json()
    assert body["id"] != "client-chosen"
    assert "password" not in body
    assert "roles" not in body
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["created"].startswith("2026-")
    assert r.headers["Location"] == f"{BASE}/Users/{body['id']}" == body["meta"]["location"]
    assert r.headers["ETag"] == body["meta"]["version"]
    assert body["schemas"] == [USER, ENT]
    assert body[ENT]["manager"] == {"value": "mgr-1"}
    got = client("GET", f"/Users/{body['id']}")
    assert got.status == 200 and got.json() == body


def test_create_requires_username(client: Client) -> None:
    assert_error(client("POST", "/Users", {"schemas": [USER]}), 400, "invalidValue")
    assert_error(client("POST", "/Users", {"userName": 5}), 400, "invalidValue")


def test_duplicate_username_is_409_case_insensitive(client: Client) -> None:
    client.create("Ann@Example.com")
    assert_error(client("POST", "/Users", {"userName": "ann@example.COM"}), 409, "uniqueness")
    assert client("GET", "/Users").json()["totalResults"] == 1


def test_entra_test_connection_gets_empty_list(client: Client) -> None:
    # R1.3
    r = client("GET", "/Users", query={"filter": 'userName eq "0b6d2a39-1b51-4c3c-b9e7"'})
    assert r.status == 200
    body = r.json()
    assert body["totalResults"] == 0 and body["Resources"] == []
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]


def test_unknown_id_is_404_scim_error(client: Client) -> None:
    body = assert_error(client("GET", "/Users/00919288221112222"), 404)
    assert "00919288221112222" in body["detail"]


@pytest.mark.parametrize(
    "content_type",
    ["application/scim+json", "application/json", "application/scim+json; charset=utf-8"],
)
def test_json_content_types_are_accepted(client: Client, content_type: str) -> None:
    r = client("POST", "/Users", {"userName": "x@y.z"}, headers={"Content-Type": content_type})
    assert r.status == 201
    assert r.headers["Content-Type"] == "application/scim+json"


@pytest.mark.parametrize("raw", [b"{", b"", b"[1,2]", b'"text"', b"\xff\xfe"])
def test_bad_bodies_are_invalid_syntax(client: Client, raw: bytes) -> None:
    assert_error(client("POST", "/Users", raw=raw), 400, "invalidSyntax")
    assert client("GET", "/Users").json()["totalResults"] == 0


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/Users"), ("PUT", "/Users/{id}"), ("POST", "/Users/.search")]
)
def test_a_body_over_the_limit_is_413_naming_it_and_nothing_is_stored(
    client: Client, method: str, path: str
) -> None:
    """RFC 7644 §3.12: 413, "one or more of the limits for this request have been exceeded"."""
    uid = client.create("kept@x.test")["id"]
    limit = client.service.config.max_body_bytes
    padding = "x" * limit
    body = json.dumps({"userName": "big@x.test", "title": padding}).encode()
    error = assert_error(client(method, path.format(id=uid), raw=body), 413)
    assert str(limit) in error["detail"] and "max_body_bytes" in error["detail"]
    users = client("GET", "/Users").json()["Resources"]
    assert [(u["userName"], u.get("title")) for u in users] == [("kept@x.test", None)]
    # a body of exactly the limit is read as usual: an empty object (400 without userName;
    # an empty search lists everything)
    at_limit = b"{" + b" " * (limit - 2) + b"}"
    assert client(method, path.format(id=uid), raw=at_limit).status == (
        200 if path.endswith(".search") else 400
    )


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.mark.parametrize(
    ("member", "value", "detail"),
    [
        ("active", "yes", 'active: expected a boolean, got "yes"'),
        ("name", {"givenName": 5}, "name.givenName: expected a string, got int"),
        ("name.familyName", [1], "name.familyName: expected a string, got list"),
        (
            "emails",
            [{"value": "a@x.test"}, {"value": "b@x.test", "primary": "maybe"}],
            'emails[1].primary: expected a boolean, got "maybe"',
        ),
        ("emails", [{"value": {"a": 1}}], "emails[0].value: expected a string, got object"),
        ("phoneNumbers", [7], "phoneNumbers[0]: expected a complex value (a JSON object)"),
        (f"{ENTERPRISE}:manager", "{not json", "manager: invalid JSON object in a string"),
        (f"{ENTERPRISE}:employeeNumber", 12, "employeeNumber: expected a string, got int"),
        (ENTERPRISE, {"costCenter": True}, "costCenter: expected a string, got bool"),
        (ENTERPRISE, "x", f"{ENTERPRISE}: expected a JSON object"),
    ],
)
def test_invalid_values_name_their_place(
    client: Client, member: str, value: Any, detail: str
) -> None:
    # RFC 7644 §3.12 invalidValue, with the place of the refused value in the detail; nothing
    # is stored.
    body = {"userName": "ann@x.test", member: value}
    r = client("POST", "/Users", body)
    assert_error(r, 400, "invalidValue")
    assert r.json()["detail"] == detail
    assert client("GET", "/Users").json()["totalResults"] == 0


# --- listing -----------------------------------------------------------------------------------


def test_paging_is_one_based_stable_and_integer(client: Client) -> None:
    ids = [client.create(f"user{i:03}@x.test")["id"] for i in range(25)]
    seen: list[str] = []
    start = 1
    while True:
        body = client("GET", "/Users", query={"startIndex": str(start), "count": "10"}).json()
        assert isinstance(body["totalResults"], int) and body["totalResults"] == 25
        assert body["startIndex"] == start
        assert body["itemsPerPage"] == len(body["Resources"])
        seen += [u["id"] for u in body["Resources"]]
        start += 10
        if start > body["totalResults"]:
            break
    assert seen == ids
    assert client("GET", "/Users", query={"count": "0"}).json()["Resources"] == []
    assert (
        client("GET", "/Users", query={"startIndex": "0", "count": "1"}).json()["startIndex"] == 1
    )
    assert_error(client("GET", "/Users", query={"count": "ten"}), 400, "invalidValue")


def test_count_100_is_honoured(client: Client) -> None:
    # idp-quirks Okta 4: a server that caps below 100 loses users.
    for i in range(120):
        client.create(f"u{i}@x.test")
    body = client("GET", "/Users", query={"startIndex": "1", "count": "100"}).json()
    assert body["itemsPerPage"] == 100
    body = client("GET", "/Users", query={"startIndex": "101", "count": "100"}).json()
    assert body["itemsPerPage"] == 20


def test_sort_by_and_order(client: Client) -> None:
    for name in ["carol", "alice", "Bob"]:
        client.create(f"{name}@x.test", displayName=name)
    client.create("nobody@x.test")
    asc = client("GET", "/Users", query={"sortBy": "displayName"}).json()["Resources"]
    assert [u.get("displayName") for u in asc] == ["alice", "Bob", "carol", None]
    desc = client(
        "GET", "/Users", query={"sortBy": "DISPLAYNAME", "sortOrder": "descending"}
    ).json()["Resources"]
    assert [u.get("displayName") for u in desc] == [None, "carol", "Bob", "alice"]
    assert_error(client("GET", "/Users", query={"sortBy": "nope"}), 400, "invalidValue")


def test_attributes_and_excluded_attributes(client: Client) -> None:
    user = client.create(
        "ann@x.test",
        name={"givenName": "Ann", "familyName": "Lee"},
        title="CTO",
        **{ENT: {"department": "R&D", "costCenter": "1"}},
    )
    only = client("GET", f"/Users/{user['id']}", query={"attributes": "name.givenName"}).json()
    assert only == {"schemas": [USER], "id": user["id"], "name": {"givenName": "Ann"}}
    ext = client("GET", "/Users", query={"attributes": f"{ENT}:department"}).json()["Resources"][0]
    assert ext[ENT] == {"department": "R&D"}
    assert ext["schemas"] == [USER, ENT]
    without = client("GET", f"/Users/{user['id']}", query={"excludedAttributes": "title,name"})
    body = without.json()
    assert "title" not in body and "name" not in body and body["userName"] == "ann@x.test"


def test_attributes_select_what_a_write_returns(client: Client) -> None:
    # RFC 7644 §3.9: attributes/excludedAttributes on POST, PUT and PATCH responses too; other
    # query parameters of a write are not looked at.
    body = {"userName": "ann@x.test", "title": "CTO", "name": {"givenName": "Ann"}}
    created = client("POST", "/Users", body, query={"attributes": "title"})
    assert created.status == 201
    uid = created.json()["id"]
    assert created.json() == {"schemas": [USER], "id": uid, "title": "CTO"}
    op = {"op": "replace", "path": "title", "value": "CEO"}
    patched = client(
        "PATCH",
        f"/Users/{uid}",
        {"schemas": [PATCH], "Operations": [op]},
        query={"excludedAttributes": "name,meta"},
    ).json()
    assert patched["title"] == "CEO" and "name" not in patched and "meta" not in patched
    plain = client("POST", "/Users", {"userName": "bo@x.test"}, query={"count": "many"})
    assert plain.status == 201 and plain.json()["userName"] == "bo@x.test"


def test_search_endpoints(client: Client) -> None:
    client.create("a@x.test", title="Dev")
    client.create("b@x.test", title="Ops")
    for path in ("/Users/.search", "/.search"):
        r = client(
            "POST",
            path,
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": 'title eq "ops"',
                "attributes": ["userName"],
                "startIndex": 1,
                "count": 10,
            },
        )
        assert r.status == 200
        body = r.json()
        assert body["totalResults"] == 1
        assert body["Resources"][0]["userName"] == "b@x.test"
        assert "title" not in body["Resources"][0]
    assert_error(client("POST", "/.search", {"count": "x"}), 400, "invalidValue")


def test_bad_filter_is_invalid_filter(client: Client) -> None:
    body = assert_error(
        client("GET", "/Users", query={"filter": 'userName eq "x" and'}), 400, "invalidFilter"
    )
    assert body["detail"]


# --- replace / patch / delete ----------------------------------------------------------------


def test_put_replaces_and_ignores_read_only(client: Client) -> None:
    user = client.create("ann@x.test", title="Dev", nickName="annie")
    echoed = dict(user)
    echoed.pop("nickName")
    echoed["title"] = "Lead"
    echoed["meta"] = {"created": "04-12-2018 00:00:00"}
    echoed["groups"] = []
    echoed["password"] = "secret"
    r = client("PUT", f"/Users/{user['id']}", echoed)
    assert r.status == 200
    body = r.json()
    assert body["title"] == "Lead" and "nickName" not in body
    assert body["meta"]["created"] == user["meta"]["created"]
    assert body["meta"]["version"] != user["meta"]["version"]
    assert "password" not in body


def test_okta_put_of_own_representation_changes_nothing(client: Client) -> None:
    # R4.4 + idp-quirks Okta 5
    user = client.create("ann@x.test", title="Dev")
    r = client("PUT", f"/Users/{user['id']}", user)
    assert r.status == 200
    assert r.json()["meta"] == user["meta"]


def test_entra_patch_shapes(client: Client) -> None:
    user = client.create("ann@x.test", active=True)
    r = client(
        "PATCH",
        f"/Users/{user['id']}",
        {
            "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 555"},
                {"op": "Add", "path": f"{ENT}:manager", "value": "boss-id"},
                {"op": "replace", "value": {"name.givenName": "Ann", f"{ENT}:department": "Ops"}},
            ],
            "schemas": [PATCH],
        },
    )
    assert r.status == 200, r.json()
    body = r.json()
    assert body["active"] is False
    assert body["phoneNumbers"] == [{"type": "mobile", "value": "+1 555"}]
    assert body[ENT] == {"manager": {"value": "boss-id"}, "department": "Ops"}
    assert body["name"] == {"givenName": "Ann"}


def test_failing_patch_changes_nothing(client: Client) -> None:
    user = client.create("ann@x.test", title="Dev")
    r = client(
        "PATCH",
        f"/Users/{user['id']}",
        patch(
            {"op": "replace", "path": "title", "value": "Lead"},
            {"op": "replace", "path": "active", "value": "maybe"},
        ),
    )
    assert_error(r, 400, "invalidValue")
    assert client("GET", f"/Users/{user['id']}").json() == user


def test_noop_patch_keeps_version(client: Client) -> None:
    # R4.4
    user = client.create("ann@x.test", title="Dev")
    r = client(
        "PATCH", f"/Users/{user['id']}", patch({"op": "replace", "path": "title", "value": "Dev"})
    )
    assert r.status == 200
    assert r.json()["meta"] == user["meta"]


def test_patch_cannot_remove_username(client: Client) -> None:
    user = client.create("ann@x.test")
    r = client("PATCH", f"/Users/{user['id']}", patch({"op": "remove", "path": "userName"}))
    assert r.status == 400
    assert client("GET", f"/Users/{user['id']}").json()["userName"] == "ann@x.test"


def test_rename_to_taken_username_is_409(client: Client) -> None:
    client.create("taken@x.test")
    user = client.create("ann@x.test")
    r = client(
        "PATCH",
        f"/Users/{user['id']}",
        patch({"op": "replace", "path": "userName", "value": "TAKEN@x.test"}),
    )
    assert_error(r, 409, "uniqueness")
    assert client("GET", f"/Users/{user['id']}").json()["userName"] == "ann@x.test"


def test_etags(client: Client) -> None:
    user = client.create("ann@x.test")
    version = user["meta"]["version"]
    r = client("GET", f"/Users/{user['id']}", headers={"If-None-Match": version})
    assert r.status == 304 and r.body == b""
    stale = client(
        "PATCH",
        f"/Users/{user['id']}",
        patch({"op": "add", "path": "title", "value": "x"}),
        headers={"If-Match": 'W/"999"'},
    )
    assert_error(stale, 412)
    ok = client(
        "PATCH",
        f"/Users/{user['id']}",
        patch({"op": "add", "path": "title", "value": "x"}),
        headers={"If-Match": version},
    )
    assert ok.status == 200 and ok.headers["ETag"] != version
    assert_error(client("DELETE", f"/Users/{user['id']}", headers={"If-Match": version}), 412)


def test_delete_then_404_and_username_reusable(client: Client) -> None:
    # R5.2
    user = client.create("ann@x.test")
    r = client("DELETE", f"/Users/{user['id']}")
    assert r.status == 204 and r.body == b""
    assert_error(client("GET", f"/Users/{user['id']}"), 404)
    assert_error(client("DELETE", f"/Users/{user['id']}"), 404)
    assert client("GET", "/Users").json()["totalResults"] == 0
    assert client.create("ANN@x.test")["id"] != user["id"]


def test_deactivated_user_stays_visible(client: Client) -> None:
    # idp-quirks Entra 11 / Okta 7
    user = client.create("ann@x.test", active=True)
    client(
        "PATCH",
        f"/Users/{user['id']}",
        {"Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    found = client("GET", "/Users", query={"filter": 'userName eq "ann@x.test"'}).json()
    assert found["Resources"][0]["active"] is False


# --- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/Users", "GET, POST"),
        ("POST", "/ServiceProviderConfig", "GET"),
        ("PUT", "/Schemas", "GET"),
        ("POST", "/Users/abc", "GET, PUT, PATCH, DELETE"),
        ("GET", "/Users/.search", "POST"),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: Client, method: str, path: str, allowed: str
) -> None:
    r = client(method, path, {})
    assert_error(r, 405)
    assert r.headers["Allow"] == allowed


def test_unknown_routes_are_scim_404(client: Client) -> None:
    assert_error(client("GET", "/Nope"), 404)
    assert_error(client("GET", "/Users/a/b"), 404)
    assert client("POST", "/Bulk", {}).status == 501


def test_attribute_names_are_case_insensitive_in_bodies(client: Client) -> None:
    # RFC 7643 §2.1; idp-quirks Entra 18
    r = client(
        "POST",
        "/Users",
        {
            "USERNAME": "ann@x.test",
            "Name": {"GIVENNAME": "Ann"},
            "Emails": [{"Value": "ann@x.test", "TYPE": "work"}],
            ENT.upper(): {"Department": "Ops"},
        },
    )
    assert r.status == 201, r.json()
    body = r.json()
    assert body["userName"] == "ann@x.test"
    assert body["name"] == {"givenName": "Ann"}
    assert body["emails"] == [{"value": "ann@x.test", "type": "work"}]
    assert body[ENT] == {"department": "Ops"}


def test_host_registered_extension_schema() -> None:
    from scimcore import Attribute, AttrType, Schema, ScimService
    from scimcore.schema import SchemaRegistry
    from scimcore_adapters.memory import MemoryStorage
    from tests.conftest import counting_runtime

    urn = "urn:example:params:scim:schemas:extension:cards:2.0:User"
    registry = SchemaRegistry()
    registry.add_extension(
        Schema(
            id=urn,
            name="CardUser",
            description="Card fields",
            attributes=(
                Attribute("cardTheme", description="Theme"),
                Attribute("seatCount", AttrType.INTEGER, description="Seats"),
            ),
        )
    )
    service = ScimService(MemoryStorage(registry), runtime=counting_runtime())
    service.workspaces.create("acme", "a@acme.example")
    c = Client(service, service.workspaces.generate_token("acme", "a@acme.example").plaintext)
    user = c.create("ann@x.test", **{urn: {"cardTheme": "dark", "seatCount": 2}})
    assert user[urn] == {"cardTheme": "dark", "seatCount": 2}
    assert urn in user["schemas"]
    found = c("GET", "/Users", query={"filter": f'{urn}:cardTheme eq "DARK"'}).json()
    assert found["totalResults"] == 1
    assert {s["id"] for s in c("GET", "/Schemas").json()["Resources"]} >= {urn}
    bad = c("POST", "/Users", {"userName": "b@x.test", urn: {"seatCount": "two"}})
    assert_error(bad, 400, "invalidValue")


def test_patch_path_naming_an_extension_urn(client: Client) -> None:
    # scim2-tester: the extension URN as a path acts as one complex attribute (RFC 7644 §3.10).
    user = client.create("ann@x.test", **{ENT: {"department": "Ops", "costCenter": "7"}})
    url = f"/Users/{user['id']}"
    added = client("PATCH", url, patch({"op": "add", "path": ENT, "value": {"division": "EU"}}))
    assert added.json()[ENT] == {"department": "Ops", "costCenter": "7", "division": "EU"}
    replaced = client(
        "PATCH", url, patch({"op": "replace", "path": ENT, "value": {"department": "R&D"}})
    )
    assert replaced.json()[ENT]["department"] == "R&D"
    removed = client("PATCH", url, patch({"op": "remove", "path": ENT}))
    assert removed.status == 200
    assert ENT not in removed.json() and removed.json()["schemas"] == [USER]


def test_system_ids_are_time_ordered_version_7_uuids() -> None:
    """``system_runtime().new_id``: 32 hex digits of a version 7 UUID (RFC 9562), never
    repeated; its first 48 bits are the creation time in Unix milliseconds, so ids made one
    after another sort one after another (across milliseconds)."""
    import time
    import uuid

    from scimcore import system_runtime

    before = time.time_ns() // 1_000_000
    ids = [system_runtime().new_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value and len(value) == 32
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= int(value[:12], 16) <= after
    stamps = [value[:12] for value in ids]
    assert stamps == sorted(stamps)
    time.sleep(0.002)
    assert system_runtime().new_id() > max(ids)  # a later millisecond sorts after
    # 74 random bits: the random parts of ids of one millisecond differ
    assert len({value[12:] for value in ids}) == len(ids)


def test_system_ids_differ_across_threads_and_a_fork() -> None:
    """Ids are drawn from per-thread pools of random bytes: threads never share one, and a
    forked child never hands out the ids its parent's pool still holds."""
    import os
    import threading

    from scimcore import system_runtime

    new_id = system_runtime().new_id
    new_id()  # this thread's pool is filled: a child inherits it
    drawn: list[list[str]] = [[] for _ in range(4)]

    def draw(k: int) -> None:
        drawn[k].extend(new_id() for _ in range(500))

    threads = [threading.Thread(target=draw, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in drawn for i in ids]
    assert len(set(every)) == 2000

    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, " ".join(new_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [new_id() for _ in range(10)]
    assert len(child) == 10 and not set(child) & set(parent)
