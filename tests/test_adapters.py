"""Flask (both mounts), WSGI and ASGI adapters: one table of requests gives identical responses."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import MutableMapping
from typing import Any, Literal

import httpx
import pytest
from flask import Flask

from scimcore import ScimService
from scimcore_adapters.asgi import ScimASGIApp
from scimcore_adapters.flask import ScimExtension
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.wsgi import ScimWSGIApp
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
    ("HEAD", "/Users/{id}", "", None, {}),
    ("HEAD", "/Users", "filter=userName+eq+%22ann@x.test%22", None, {}),
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


def _run_flask(mount: Literal["wsgi", "blueprint"]) -> list[Row]:
    service, token = _fresh()
    app = Flask("t")
    ScimExtension(service, app, mount=mount)
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


@pytest.mark.parametrize("mount", ["wsgi", "blueprint"])
def test_flask_and_asgi_give_identical_responses(mount: Literal["wsgi", "blueprint"]) -> None:
    flask_rows = _run_flask(mount)
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
        200,  # HEAD /Users/{id}
        200,  # HEAD /Users?filter=...
        200,
        200,
        200,
        304,
        200,
        405,
        200,  # GET /Groups (R5.3)
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
    assert r.status_code == 413
    assert "scimType" not in r.json()
    assert str(service.config.max_body_bytes) in r.json()["detail"]


# --- the WSGI adapter on its own --------------------------------------------------------------


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    """Call a WSGI app with a hand-made environ (what gunicorn or mod_wsgi would pass)."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def _environ(
    method: str, path: str, token: str, body: bytes = b"", query: str = "", **extra: Any
) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "scim.test",
        "SERVER_PORT": "8080",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
    }
    if body:
        environ["CONTENT_TYPE"] = "application/scim+json"
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(extra)
    return environ


def test_wsgi_create_then_lookup_with_utf8_in_path_and_query() -> None:
    service, token = _fresh()
    app = ScimWSGIApp(service)
    user = json.dumps({"userName": "jürgen@x.test"}).encode()
    status, headers, body = _call(app, _environ("POST", "/scim/v2/Users", token, user))
    assert status == "201 Created"
    assert headers["Content-Length"] == str(len(body))
    # No Host header: the base URL comes from SERVER_NAME and SERVER_PORT.
    assert headers["Location"].startswith("http://scim.test:8080/scim/v2/Users/")
    # WSGI passes the query as latin-1-decoded bytes; raw UTF-8 must still match.
    raw_query = 'filter=userName eq "jürgen@x.test"'.encode().decode("latin-1")
    status, _, body = _call(app, _environ("GET", "/scim/v2/Users", token, query=raw_query))
    assert status == "200 OK"
    assert json.loads(body)["totalResults"] == 1
    status, _, body = _call(
        app,
        _environ(
            "GET", "/scim/v2/Users", token, query="filter=userName+eq+%22J%C3%BCrgen@x.test%22"
        ),
    )
    assert json.loads(body)["totalResults"] == 1


def test_wsgi_base_url_keeps_script_name_and_host() -> None:
    service, token = _fresh()
    app = ScimWSGIApp(service)
    environ = _environ(
        "POST",
        "/scim/v2/Users",
        token,
        json.dumps({"userName": "a@x.test"}).encode(),
        SCRIPT_NAME="/app",
        HTTP_HOST="idp-facing.example",
        **{"wsgi.url_scheme": "https"},
    )
    status, headers, body = _call(app, environ)
    assert status == "201 Created"
    uid = json.loads(body)["id"]
    assert headers["Location"] == f"https://idp-facing.example/app/scim/v2/Users/{uid}"
    assert json.loads(body)["meta"]["location"] == headers["Location"]


def test_wsgi_chunked_body_without_length_is_read() -> None:
    service, token = _fresh()
    app = ScimWSGIApp(service)
    environ = _environ("POST", "/scim/v2/Users", token, HTTP_TRANSFER_ENCODING="chunked")
    environ["wsgi.input"] = io.BytesIO(json.dumps({"userName": "chunk@x.test"}).encode())
    environ["wsgi.input_terminated"] = True
    status, _, body = _call(app, environ)
    assert status == "201 Created", body
    assert json.loads(body)["userName"] == "chunk@x.test"


@pytest.mark.parametrize("declared", [True, False])
def test_wsgi_rejects_oversized_bodies(declared: bool) -> None:
    service, token = _fresh()
    app = ScimWSGIApp(service)
    big = b"x" * (service.config.max_body_bytes + 1)
    environ = _environ("POST", "/scim/v2/Users", token, big)
    if not declared:  # chunked: the length shows only while reading
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
    status, _, body = _call(app, environ)
    assert status == "413 Request Entity Too Large"
    assert json.loads(body)["status"] == "413"
    assert environ["wsgi.input"].read() == b"", "the whole body (under 16 MiB) was read"


def test_wsgi_head_sends_headers_without_body() -> None:
    service, token = _fresh()
    app = ScimWSGIApp(service)
    status, headers, body = _call(app, _environ("HEAD", "/scim/v2/ServiceProviderConfig", token))
    assert status == "200 OK"
    assert body == b""
    assert int(headers["Content-Length"]) > 0


def test_wsgi_outside_prefix_is_scim_404_or_the_fallback() -> None:
    service, token = _fresh()
    status, _, body = _call(ScimWSGIApp(service), _environ("GET", "/elsewhere", token))
    assert status == "404 Not Found"
    assert json.loads(body)["status"] == "404"

    app = Flask("host")

    @app.get("/hello")
    def hello() -> str:
        return "hi"

    ScimExtension(service, app)
    client = app.test_client()
    assert client.get("/hello").data == b"hi"
    # Only the prefix itself and paths below it are SCIM's.
    assert client.get("/scim/v2x").status_code == 404
    assert client.get("/scim/v2x").content_type.startswith("text/html")
    r = client.get("/scim/v2/ServiceProviderConfig")
    assert r.status_code == 200
    assert r.content_type == "application/scim+json"
    assert app.extensions["scimcore"] is service


def test_flask_extension_rejects_unknown_mount() -> None:
    service, _ = _fresh()
    with pytest.raises(ValueError, match="mount"):
        ScimExtension(service, Flask("x"), mount="router")  # type: ignore[arg-type]


def test_asgi_query_with_raw_utf8_matches() -> None:
    service, token = _fresh()
    app = ScimASGIApp(service)

    async def call(method: str, query: bytes, body: bytes) -> tuple[int, Any]:
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "method": method,
            "path": "/scim/v2/Users",
            "query_string": query,
            "headers": [(b"authorization", f"Bearer {token}".encode())],
        }

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        await app(scope, receive, send)
        return sent[0]["status"], json.loads(sent[1]["body"])

    user = json.dumps({"userName": "jürgen@x.test"}).encode()
    status, _ = asyncio.run(call("POST", b"", user))
    assert status == 201
    # Some clients send UTF-8 unescaped; ASGI passes the raw bytes.
    raw = 'filter=userName eq "jürgen@x.test"'.encode()
    status, found = asyncio.run(call("GET", raw, b""))
    assert status == 200
    assert found["totalResults"] == 1


def test_flask_mounts_and_proxyfix() -> None:
    """Behind a proxy: the blueprint (default) sees ProxyFix wherever it is applied; the WSGI
    mount sees it when applied after init_app, and warns when it would bypass it."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "scim.example.com"}

    def location(app: Flask, token: str) -> str:
        r = app.test_client().post(
            "/scim/v2/Users",
            json={"userName": "p@x.test"},
            headers={"Authorization": f"Bearer {token}", **forwarded},
        )
        assert r.status_code == 201
        return str(r.headers["Location"])

    service, token = _fresh()
    app = Flask("default")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    ScimExtension(service, app)
    assert location(app, token).startswith("https://scim.example.com/scim/v2/Users/")

    service, token = _fresh()
    app = Flask("fast")
    ScimExtension(service, app, mount="wsgi")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    assert location(app, token).startswith("https://scim.example.com/scim/v2/Users/")

    service, token = _fresh()
    app = Flask("bypassed")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    with pytest.warns(UserWarning, match="bypass"):
        ScimExtension(service, app, mount="wsgi")
    assert location(app, token).startswith("http://localhost/scim/v2/Users/")


def test_wsgi_headers_reach_the_service_by_lower_case_name() -> None:
    # HTTP_X_Y is header x-y; the translations the adapter remembers are bounded, so a client
    # inventing header names cannot grow them (those past the bound are translated each time).
    from scimcore_adapters import wsgi

    seen: list[dict[str, str]] = []

    class Recording(ScimService):
        def handle(self, request: Any) -> Any:
            seen.append(dict(request.headers))
            return super().handle(request)

    app = ScimWSGIApp(Recording(MemoryStorage(), runtime=counting_runtime()))
    invented = {f"HTTP_X_INVENTED_{n}": str(n) for n in range(wsgi._HEADER_NAMES_MAX + 50)}
    for _ in range(2):  # the second time from what the adapter remembered
        environ = _environ("GET", "/scim/v2/Users", "t", HTTP_IF_NONE_MATCH='W/"1"')
        environ.update(invented)
        status, _, _ = _call(app, environ)
        assert status == "401 Unauthorized"
    assert len(wsgi._HEADER_NAMES) <= wsgi._HEADER_NAMES_MAX
    for headers in seen:
        assert headers["authorization"] == "Bearer t" and headers["if-none-match"] == 'W/"1"'
        assert headers[f"x-invented-{wsgi._HEADER_NAMES_MAX + 49}"] == str(
            wsgi._HEADER_NAMES_MAX + 49
        )
        assert "query-string" not in headers and "path-info" not in headers
        assert len(headers) == len(invented) + 2
