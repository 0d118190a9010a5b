"""Flask and ASGI adapters: one table of requests through both gives identical responses."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from flask import Flask

from scimcore import ScimService
from scimcore_adapters.asgi import ScimASGIApp
from scimcore_adapters.flask import ScimExtension
from scimcore_adapters.memory import MemoryStorage
from tests.conftest import counting_runtime

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

# (method, path, query, body, extra headers); "{id}" is the first created user's id.
TABLE: list[tuple[str, str, str, Any, dict[str, str]]] = [
    ("GET", "/ServiceProviderConfig", "", None, {}),
    ("GET", "/ResourceTypes", "", None, {}),
    ("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "", None, {}),
    ("GET", "/Users", "filter=userName+eq+%22nobody%22", None, {}),
    ("POST", "/Users", "", {"userName": "ann@x.test", "title": "Dev"}, {}),
    ("POST", "/Users", "", {"userName": "ANN@x.test"}, {}),
    ("GET", "/Users/{id}", "", None, {}),
    ("GET", "/Users/{id}", "attributes=userName", None, {}),
    ("GET", "/Users", "filter=userName%20eq%20%22ann@x.test%22&startIndex=1&count=100", None, {}),
    (
        "PATCH",
        "/Users/{id}",
        "",
        {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
        {},
    ),
    ("PUT", "/Users/{id}", "", {"userName": "ann@x.test", "title": "Lead"}, {}),
    ("GET", "/Users/{id}", "", None, {"If-None-Match": 'W/"3"'}),
    ("POST", "/Users/.search", "", {"filter": 'title eq "lead"'}, {}),
    ("DELETE", "/Users", "", None, {}),
    ("GET", "/Groups", "", None, {}),
    ("GET", "/Nope/x/y", "", None, {}),
    ("POST", "/Users", "", "not json", {}),
    ("GET", "/Users", "filter=userName+eq", None, {}),
    ("GET", "/Users", "", None, {"Authorization": "Bearer wrong"}),
    ("DELETE", "/Users/{id}", "", None, {}),
    ("GET", "/Users/{id}", "", None, {}),
]

PREFIX = "/scim/v2"


def _fresh() -> tuple[ScimService, str]:
    service = ScimService(MemoryStorage(), runtime=counting_runtime())
    service.workspaces.create("acme", "admin@acme.example")
    token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    return service, token


def _body(raw: Any) -> bytes | None:
    if raw is None:
        return None
    return raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()


Row = tuple[int, dict[str, str], Any]


def _normalise(response: httpx.Response | Any, status: int, headers: dict[str, str]) -> Row:
    keep = {
        k.lower(): v
        for k, v in headers.items()
        if k.lower() in {"content-type", "etag", "location", "allow", "www-authenticate"}
    }
    data = response.content if isinstance(response, httpx.Response) else response.data
    return status, keep, json.loads(data) if data else None


def _run_flask() -> list[Row]:
    service, token = _fresh()
    app = Flask("t")
    ScimExtension(service, app)
    client = app.test_client()
    rows: list[Row] = []
    user_id = ""
    for method, path, query, body, headers in TABLE:
        hdrs = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/scim+json",
            **headers,
        }
        url = PREFIX + path.replace("{id}", user_id) + (f"?{query}" if query else "")
        r = client.open(
            url, method=method, data=_body(body), headers=hdrs, base_url="http://testserver"
        )
        rows.append(_normalise(r, r.status_code, dict(r.headers)))
        if method == "POST" and r.status_code == 201 and not user_id:
            user_id = r.get_json()["id"]
    return rows


async def _run_asgi_async() -> list[Row]:
    service, token = _fresh()
    app = ScimASGIApp(service, prefix=PREFIX)
    rows: list[Row] = []
    user_id = ""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for method, path, query, body, headers in TABLE:
            hdrs = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/scim+json",
                **headers,
            }
            url = PREFIX + path.replace("{id}", user_id) + (f"?{query}" if query else "")
            r = await client.request(method, url, content=_body(body), headers=hdrs)
            rows.append(_normalise(r, r.status_code, dict(r.headers)))
            if method == "POST" and r.status_code == 201 and not user_id:
                user_id = r.json()["id"]
    return rows


def test_flask_and_asgi_give_identical_responses() -> None:
    flask_rows = _run_flask()
    asgi_rows = asyncio.run(_run_asgi_async())
    assert len(flask_rows) == len(TABLE)
    for entry, f, a in zip(TABLE, flask_rows, asgi_rows, strict=True):
        assert f == a, entry
    statuses = [r[0] for r in flask_rows]
    assert statuses == [
        200,
        200,
        200,
        200,
        201,
        409,
        200,
        200,
        200,
        200,
        200,
        304,
        200,
        405,
        404,
        404,
        400,
        400,
        401,
        204,
        404,
    ]
    created = flask_rows[4]
    assert created[1]["location"].startswith("http://testserver/scim/v2/Users/")
    assert created[1]["content-type"] == "application/scim+json"


def test_asgi_outside_prefix_is_scim_404() -> None:
    service, _ = _fresh()

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=ScimASGIApp(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/elsewhere")

    r = asyncio.run(go())
    assert r.status_code == 404
    assert r.json()["status"] == "404"


@pytest.mark.parametrize("size", [2_000_000])
def test_asgi_rejects_oversized_bodies(size: int) -> None:
    service, token = _fresh()

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=ScimASGIApp(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post(
                "/scim/v2/Users",
                content=b"x" * size,
                headers={"Authorization": f"Bearer {token}"},
            )

    r = asyncio.run(go())
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidSyntax"
