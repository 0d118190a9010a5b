"""Replays of documented Microsoft Entra ID and Okta provisioning traffic (idp-quirks.md),
through the example Flask app, exactly as the IdPs send it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from examples.flask_server import create_app
from flask.testing import FlaskClient

from scimcore import ScimService
from scimcore_adapters.memory import MemoryStorage
from tests.conftest import counting_runtime

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class IdP:
    def __init__(self, client: FlaskClient, token: str, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}", **headers}

    def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        r = self.client.open(
            "/scim/v2" + path,
            method=method,
            data=json.dumps(body) if body is not None else None,
            headers=self.headers,
        )
        assert r.headers.get("Content-Type", "application/scim+json") == "application/scim+json"
        return r.status_code, (r.get_json(force=True) if r.data else None)


def _idp(headers: dict[str, str]) -> IdP:
    service = ScimService(MemoryStorage(), runtime=counting_runtime())
    service.workspaces.create("acme", "admin@acme.example")
    token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    return IdP(create_app(service).test_client(), token, headers)


@pytest.fixture
def entra() -> IdP:
    return _idp({"Content-Type": "application/scim+json"})


@pytest.fixture
def okta() -> IdP:
    return _idp(
        {
            "Accept": "application/scim+json",
            "Accept-Charset": "utf-8",
            "Content-Type": "application/scim+json; charset=utf-8",
            "User-Agent": "Okta SCIM Client 1.0.0",
        }
    )


def test_entra_provisioning_cycle(entra: IdP) -> None:
    # Entra 1: Test Connection with a random GUID.
    status, body = entra("GET", '/Users?filter=userName eq "b6e2f1d0-7a8c-4e1a-9f3b-2c5d6e7f8a9b"')
    assert status == 200 and body["totalResults"] == 0 and body["Resources"] == []
    # Entra 13: lookup before create, by userName, externalId and work email.
    for query in (
        'userName eq "Test_User_ab6490ee@contoso.com"',
        'externalId eq "Test_User_ab6490ee"',
        'emails[type eq "work"].value eq "Test_User_ab6490ee@contoso.com"',
    ):
        status, body = entra("GET", f"/Users?filter={query}")
        assert (status, body["totalResults"]) == (200, 0)
    # Entra 9, MS-TUT create: read-only and unknown content tolerated.
    status, user = entra(
        "POST",
        "/Users",
        {
            "schemas": [USER, ENT],
            "externalId": "Test_User_ab6490ee",
            "userName": "Test_User_ab6490ee@contoso.com",
            "active": True,
            "displayName": "Test User",
            "emails": [
                {"primary": True, "type": "work", "value": "Test_User_ab6490ee@contoso.com"}
            ],
            "meta": {"resourceType": "User"},
            "name": {
                "formatted": "givenName familyName",
                "familyName": "familyName",
                "givenName": "givenName",
            },
            "roles": [],
            "title": "Engineer",
            ENT: {"department": "Engineering", "employeeNumber": "1001"},
        },
    )
    assert status == 201
    uid = user["id"]
    status, body = entra("GET", '/Users?filter=externalId eq "Test_User_ab6490ee"')
    assert body["totalResults"] == 1 and body["Resources"][0]["id"] == uid
    status, body = entra(
        "GET", '/Users?filter=emails[type eq "work"].value eq "test_user_ab6490ee@contoso.com"'
    )
    assert body["totalResults"] == 1
    # Entra 2, 4, 6, 8: capitalised ops, several attributes, filter paths that match nothing.
    status, body = entra(
        "PATCH",
        f"/Users/{uid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "Replace", "path": "title", "value": "Senior Engineer"},
                {
                    "op": "Add",
                    "path": 'phoneNumbers[type eq "mobile"].value',
                    "value": "+1 (555) 0100",
                },
                {
                    "op": "Replace",
                    "path": 'emails[type eq "work"].value',
                    "value": "new@contoso.com",
                },
                {"op": "Replace", "path": "name.givenName", "value": "Grace"},
                {"op": "Add", "path": f"{ENT}:employeeNumber", "value": "1002"},
                {"op": "Add", "path": f"{ENT}:manager", "value": "manager-id-1"},
            ],
        },
    )
    assert status == 200, body
    assert body["title"] == "Senior Engineer"
    assert {"type": "mobile", "value": "+1 (555) 0100"} in body["phoneNumbers"]  # Entra 14
    assert body["emails"][0]["value"] == "new@contoso.com"
    assert body["name"]["givenName"] == "Grace"
    assert body[ENT]["employeeNumber"] == "1002"
    assert body[ENT]["manager"] == {"value": "manager-id-1"}
    # Entra 7: replace on a value filter that matches nothing acts as add.
    status, body = entra(
        "PATCH",
        f"/Users/{uid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {
                    "op": "Replace",
                    "path": 'phoneNumbers[type eq "work"].value',
                    "value": "+1 555 0199",
                }
            ],
        },
    )
    assert status == 200 and {"type": "work", "value": "+1 555 0199"} in body["phoneNumbers"]
    # Entra 5: path-less replace with dotted and URN keys (aadOptscim062020).
    status, body = entra(
        "PATCH",
        f"/Users/{uid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {
                    "op": "replace",
                    "value": {
                        "displayName": "Grace H",
                        "name.familyName": "Hopper",
                        f"{ENT}:department": "R&D",
                    },
                }
            ],
        },
    )
    assert status == 200
    assert body["name"] == {
        "formatted": "givenName familyName",
        "familyName": "Hopper",
        "givenName": "Grace",
    }
    assert body[ENT]["department"] == "R&D"
    assert "name.familyName" not in body
    # Entra 3: disable with the string "False"; Entra 11: still found by GET and filters.
    status, body = entra(
        "PATCH",
        f"/Users/{uid}",
        {"Operations": [{"op": "Replace", "path": "active", "value": "False"}], "schemas": [PATCH]},
    )
    assert status == 200 and body["active"] is False
    status, body = entra("GET", '/Users?filter=userName eq "Test_User_ab6490ee@contoso.com"')
    assert body["Resources"][0]["active"] is False
    # MS-VAL: clear the manager with an empty replace.
    status, body = entra(
        "PATCH",
        f"/Users/{uid}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "Replace", "path": f"{ENT}:manager", "value": ""}],
        },
    )
    assert status == 200 and "manager" not in body.get(ENT, {})
    # Entra 11: hard delete answers 204, then 404 (Entra 12: status is the string "404").
    assert entra("DELETE", f"/Users/{uid}")[0] == 204
    status, body = entra("GET", f"/Users/{uid}")
    assert status == 404 and body["status"] == "404"


def test_okta_runscope_suite(okta: IdP) -> None:
    # OKTA-RS "Test Users endpoint" needs a user first.
    status, user = okta(
        "POST",
        "/Users",
        {
            "schemas": [USER],
            "userName": "Runscope1@atko.com",
            "name": {"givenName": "Runscope1", "familyName": "Doe"},
            "emails": [{"primary": True, "value": "Runscope1@atko.com", "type": "work"}],
            "displayName": "Runscope1 Doe",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": True,
        },
    )
    assert status == 201
    assert user["active"] is True and user["userName"] == "Runscope1@atko.com"
    assert "password" not in user
    status, body = okta("GET", "/Users?count=1&startIndex=1")
    first = body["Resources"][0]
    for key in ("id", "userName", "active"):
        assert key in first
    assert first["name"]["familyName"] and first["name"]["givenName"]
    assert first["emails"][0]["value"]
    assert okta("GET", f"/Users/{user['id']}")[0] == 200
    status, body = okta("GET", '/Users?filter=userName eq "not-there@atko.com"')
    assert (status, body["totalResults"]) == (200, 0)
    status, body = okta("GET", "/Users/00919288221112222")
    assert status == 404 and body["detail"]
    status, body = okta("POST", "/Users", {"schemas": [USER], "userName": "Runscope1@atko.com"})
    assert status == 409 and body["scimType"] == "uniqueness"
    status, body = okta("GET", '/Users?filter=userName eq "RUNSCOPE1@atko.com"')
    assert body["totalResults"] == 1
    # Okta 5: PUT of the server's own representation with a change applied.
    echoed = {**user, "displayName": "Runscope One", "password": "x"}
    status, body = okta("PUT", f"/Users/{user['id']}", echoed)
    assert status == 200 and body["displayName"] == "Runscope One" and body["id"] == user["id"]
    # Okta 6: deactivate and reactivate with a path-less PATCH.
    for active in (False, True):
        status, body = okta(
            "PATCH",
            f"/Users/{user['id']}",
            {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": active}}]},
        )
        assert status == 200 and body["active"] is active
    # Okta AIW: PUT for everything, including active:false.
    status, body = okta("PUT", f"/Users/{user['id']}", {**body, "active": False})
    assert status == 200 and body["active"] is False


def test_okta_import_paging_by_100(okta: IdP) -> None:
    # Okta 4: count=100, startIndex advanced by +100 until totalResults.
    for i in range(230):
        assert okta("POST", "/Users", {"userName": f"u{i:03}@atko.com"})[0] == 201
    seen: list[str] = []
    start = 1
    while True:
        status, body = okta("GET", f"/Users?startIndex={start}&count=100")
        assert status == 200
        assert isinstance(body["totalResults"], int) and isinstance(body["startIndex"], int)
        seen += [u["userName"] for u in body["Resources"]]
        start += 100
        if start > body["totalResults"]:
            break
    assert len(seen) == len(set(seen)) == 230


def test_okta_old_plus_encoded_filter(okta: IdP) -> None:
    # OKTA-OLD encodes spaces as '+'.
    okta("POST", "/Users", {"userName": "plus@atko.com"})
    status, body = okta(
        "GET", "/Users?filter=userName+eq+%22plus%40atko.com%22&startIndex=1&count=100"
    )
    assert status == 200 and body["totalResults"] == 1


def test_unauthorized_okta_probe(okta: IdP) -> None:
    okta.headers["Authorization"] = "non-token"
    status, body = okta("GET", "/Users")
    assert status == 401 and body["status"] == "401" and body["detail"]
