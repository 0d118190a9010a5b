"""Replays of Microsoft Entra ID's and Okta's group traffic (idp-quirks Entra 1, 9, 10; Okta
10), through the example Flask app, exactly as the IdPs send it (R5.3)."""

from __future__ import annotations

from tests.test_idp_traffic import PATCH, USER, IdP, entra, okta

__all__ = ["entra", "okta"]

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ADSCIM = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def _users(idp: IdP, *names: str) -> list[str]:
    ids = []
    for name in names:
        status, body = idp("POST", "/Users", {"schemas": [USER], "userName": name})
        assert status == 201
        ids.append(body["id"])
    return ids


def _members(idp: IdP, gid: str) -> list[str]:
    status, body = idp("GET", f"/Groups/{gid}")
    assert status == 200
    return [m["value"] for m in body.get("members", [])]


def test_entra_group_provisioning(entra: IdP) -> None:
    alice, bob = _users(entra, "alice@contoso.com", "bob@contoso.com")
    # Entra 1: Test Connection for groups, members excluded.
    status, body = entra(
        "GET",
        '/Groups?excludedAttributes=members&filter=displayName eq "b6e2f1d0-7a8c-4e1a-9f3b"',
    )
    assert (status, body["totalResults"], body["Resources"]) == (200, 0, [])
    # Entra 9, 10: create with the ADSCIM URN and no members.
    status, group = entra(
        "POST",
        "/Groups",
        {
            "schemas": [GROUP, ADSCIM],
            "externalId": "8aa1a0c0-c4c3-4bc0-a4a5-2ef676900159",
            "displayName": "Group1DisplayName",
            "meta": {"resourceType": "Group"},
        },
    )
    assert status == 201 and group["schemas"] == [GROUP] and "members" not in group
    gid = group["id"]
    status, body = entra(
        "GET", '/Groups?excludedAttributes=members&filter=displayName eq "Group1DisplayName"'
    )
    assert body["totalResults"] == 1 and body["Resources"][0]["id"] == gid
    assert "members" not in body["Resources"][0]
    # Entra 10: members added with "$ref": null; the PATCH answers 204.
    status, body = entra(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {
                    "op": "Add",
                    "path": "members",
                    "value": [{"$ref": None, "value": alice}, {"$ref": None, "value": bob}],
                }
            ],
        },
    )
    assert (status, body) == (204, None)
    assert _members(entra, gid) == [alice, bob]
    # Without aadOptscim062020: Remove path members with a value array.
    status, _ = entra(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "Remove", "path": "members", "value": [{"value": alice}]}],
        },
    )
    assert status == 204 and _members(entra, gid) == [bob]
    # With the flag: remove members[value eq "..."] and no value.
    status, _ = entra(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "remove", "path": f'members[value eq "{bob}"]'}],
        },
    )
    assert status == 204 and _members(entra, gid) == []
    # The same removal again changes nothing (R4.4): the version stays.
    status, before = entra("GET", f"/Groups/{gid}")
    entra(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "remove", "path": f'members[value eq "{bob}"]'}],
        },
    )
    status, after = entra("GET", f"/Groups/{gid}")
    assert after["meta"]["version"] == before["meta"]["version"]
    # Rename with a capitalised op; the user shows its groups (read only, derived).
    entra(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "Replace", "path": "displayName", "value": "Renamed"},
                {"op": "Add", "path": "members", "value": [{"$ref": None, "value": alice}]},
            ],
        },
    )
    status, user = entra("GET", f"/Users/{alice}")
    assert [(g["value"], g["display"]) for g in user["groups"]] == [(gid, "Renamed")]
    # Entra 11: hard delete answers 204 and the user leaves the group with it.
    assert entra("DELETE", f"/Groups/{gid}")[0] == 204
    status, user = entra("GET", f"/Users/{alice}")
    assert "groups" not in user


def test_okta_group_push(okta: IdP) -> None:
    ids = _users(okta, *(f"user{n}@example.com" for n in range(4)))
    # Okta 10: create with members: [].
    status, group = okta(
        "POST", "/Groups", {"schemas": [GROUP], "displayName": "Eng", "members": []}
    )
    assert status == 201
    gid = group["id"]
    # A full push: replace path members.
    push = [{"value": i, "display": f"user{n}@example.com"} for n, i in enumerate(ids[:3])]
    status, _ = okta(
        "PATCH",
        f"/Groups/{gid}",
        {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "members", "value": push}]},
    )
    assert status == 204 and _members(okta, gid) == ids[:3]
    # One PATCH with a remove and an add, then the path-less replace echoing the read-only id.
    status, _ = okta(
        "PATCH",
        f"/Groups/{gid}",
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "remove", "path": f'members[value eq "{ids[0]}"]'},
                {"op": "add", "path": "members", "value": [{"value": ids[3], "display": "x"}]},
            ],
        },
    )
    assert status == 204 and _members(okta, gid) == [ids[1], ids[2], ids[3]]
    status, body = okta(
        "PATCH",
        f"/Groups/{gid}?attributes=displayName",
        {
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Engineering"}}],
        },
    )
    assert status == 200 and body["displayName"] == "Engineering" and body["id"] == gid
    assert "members" not in body  # attributes=displayName: id and schemas always, no members
    # Unlinking sends DELETE and expects 204.
    assert okta("DELETE", f"/Groups/{gid}")[0] == 204
    assert okta("GET", f"/Groups/{gid}")[0] == 404


def test_okta_push_of_256_members_and_too_many(okta: IdP) -> None:
    ids = _users(okta, *(f"u{n}@example.com" for n in range(256)))
    status, group = okta(
        "POST", "/Groups", {"schemas": [GROUP], "displayName": "Big", "members": []}
    )
    gid = group["id"]
    value = [{"value": i} for i in ids]
    op = {"op": "add", "path": "members", "value": value}
    status, _ = okta("PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": [op]})
    assert status == 204 and len(_members(okta, gid)) == 256
    too_many = [op, op, op, op, {"op": "add", "path": "members", "value": [{"value": "x"}]}]
    status, body = okta("PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": too_many})
    assert status == 400 and body["scimType"] == "tooMany"
    assert len(_members(okta, gid)) == 256  # refused whole: nothing of it applied
