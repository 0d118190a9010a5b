"""A request body over ``ServiceConfig.max_body_bytes`` is a SCIM 413 over real HTTP, on every
adapter (RFC 7644 §3.12: "one or more of the limits for this request have been exceeded").

Each adapter runs in a real server on a free port: the Flask blueprint and the WSGI app (bare
and as Flask's ``mount="wsgi"``, what the example server runs) under Werkzeug's server, the
ASGI app under uvicorn. An over-long body of up to 16 MiB is read and thrown away, so a client
that sends everything before it reads (urllib) reads the 413; past 16 MiB the server answers
413 without reading and closes the connection.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from scimcore import ScimRequest, ScimService
from scimcore_adapters._http import DISCARD_LIMIT
from scimcore_adapters.asgi import ScimASGIApp
from scimcore_adapters.flask import ScimExtension
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.wsgi import ScimWSGIApp
from tests.conftest import counting_runtime, serve_asgi, serve_wsgi

uvicorn = pytest.importorskip("uvicorn", reason="the ASGI test server (uvicorn) is not installed")

PREFIX = "/scim/v2"
MiB = 1024 * 1024


def _flask(mount: str) -> Callable[[ScimService], Any]:
    def build(service: ScimService) -> Any:
        app = Flask("host")
        ScimExtension(service, app, url_prefix=PREFIX, mount=mount)  # type: ignore[arg-type]
        return app

    return build


ADAPTERS: dict[str, tuple[Callable[[ScimService], Any], Callable[[Any], Iterator[int]]]] = {
    "flask-blueprint": (_flask("blueprint"), serve_wsgi),
    "flask-wsgi": (_flask("wsgi"), serve_wsgi),
    "wsgi": (lambda service: ScimWSGIApp(service, PREFIX), serve_wsgi),
    "asgi": (lambda service: ScimASGIApp(service, PREFIX), serve_asgi),
}


class Served:
    """A service behind one adapter in a real server."""

    def __init__(self, service: ScimService, token: str, port: int) -> None:
        self.service = service
        self.token = token
        self.port = port
        self.url = f"http://127.0.0.1:{port}{PREFIX}"

    def users_stored(self) -> int:
        request = ScimRequest(
            "GET", "/Users", {}, {"authorization": f"Bearer {self.token}"}, b"", base_url=""
        )
        total: int = self.service.handle(request).json()["totalResults"]
        return total


@pytest.fixture(params=sorted(ADAPTERS))
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    build, serve = ADAPTERS[request.param]
    service = ScimService(MemoryStorage(), runtime=counting_runtime())
    service.workspaces.create("acme", "admin@acme.example")
    token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    for port in serve(build(service)):
        yield Served(service, token, port)


def _post_with_urllib(served: Served, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{served.url}/Users",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {served.token}",
            "Content-Type": "application/scim+json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _assert_413(status: int, body: dict[str, Any], limit: int) -> None:
    assert status == 413, body
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == "413"
    assert f"limit of {limit} bytes" in body["detail"]
    assert "max_body_bytes" in body["detail"]


def test_an_8_mib_body_sent_whole_by_urllib_reads_413_and_nothing_is_stored(
    served: Served,
) -> None:
    limit = served.service.config.max_body_bytes
    padding = "x" * (8 * MiB)
    body = json.dumps({"userName": "big@x.test", "title": padding}).encode()
    status, answer = _post_with_urllib(served, body)
    _assert_413(status, answer, limit)
    assert served.users_stored() == 0
    # the server still answers, and a body at the limit is served
    small = json.dumps({"userName": "ok@x.test"}).encode()
    at_limit = small[:-1] + b" " * (limit - len(small)) + b"}"
    assert len(at_limit) == limit
    status, created = _post_with_urllib(served, at_limit)
    assert status == 201, created
    assert served.users_stored() == 1


def test_one_byte_over_the_limit_is_413_with_a_length_and_chunked(served: Served) -> None:
    limit = served.service.config.max_body_bytes
    body = b"{" + b" " * (limit - 1) + b"}"
    status, answer = _post_with_urllib(served, body)
    _assert_413(status, answer, limit)

    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
    headers = {"Authorization": f"Bearer {served.token}", "Content-Type": "application/json"}
    chunks = (body[i : i + 100_000] for i in range(0, len(body), 100_000))
    connection.request("POST", f"{PREFIX}/Users", body=chunks, headers=headers)
    response = connection.getresponse()
    _assert_413(response.status, json.loads(response.read()), limit)
    connection.close()
    assert served.users_stored() == 0


def test_past_16_mib_the_413_comes_unread_and_the_connection_closes(served: Served) -> None:
    """A client that says it will send 17 MiB and waits for an answer first gets the 413
    without sending a byte of it, and the server closes the connection."""
    limit = served.service.config.max_body_bytes
    declared = DISCARD_LIMIT + MiB
    head = (
        f"POST {PREFIX}/Users HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        f"Authorization: Bearer {served.token}\r\nContent-Type: application/scim+json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(head)
        received = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.split()[1] == b"413", received[:200]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    _assert_413(413, json.loads(body), limit)
    assert served.users_stored() == 0
