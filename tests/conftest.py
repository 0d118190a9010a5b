"""Shared fixtures: a service on the in-memory reference storage, a workspace and a token."""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from scimcore import Runtime, ScimRequest, ScimResponse, ScimService, Workspaces
from scimcore_adapters.memory import MemoryStorage
from tests.strategies import load_profile

load_profile()  # Hypothesis: dev, or ci under CI=true (before any test module is imported)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], object], what: str, seconds: float = 10.0) -> None:
    """Return once ``condition()`` is true; fail, naming ``what``, after ``seconds``.

    For a state that no event announces (a thread queued on a lock another one holds, a
    server's flag): a bounded wait on the condition itself, never a guess of how long it takes.
    """
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def joined(thread: threading.Thread, seconds: float = 30.0) -> None:
    """Join ``thread``, which the test has told to finish; fail if it has not after ``seconds``."""
    thread.join(seconds)
    assert not thread.is_alive(), f"{thread.name} did not finish"


def serve_wsgi(app: Any) -> Iterator[int]:
    """Serve a WSGI ``app`` with werkzeug's threaded server on a free port; yields the port
    once (iterate with ``for port in serve_wsgi(app):``) and stops the server afterwards."""
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()  # returns once serve_forever has
        joined(thread)


def serve_asgi(app: Any) -> Iterator[int]:
    """Serve an ASGI ``app`` with uvicorn on a free port (skipped where uvicorn is not
    installed), as :func:`serve_wsgi` does."""
    uvicorn = pytest.importorskip("uvicorn")
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "uvicorn to start")
    try:
        yield port
    finally:
        server.should_exit = True
        joined(thread)


BASE = "https://scim.example/scim/v2"


def counting_runtime() -> Runtime:
    """A deterministic runtime: a clock that ticks one second per call, counting ids."""
    ticks = itertools.count()
    ids = itertools.count(1)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return Runtime(
        now=lambda: start + timedelta(seconds=next(ticks)),
        new_id=lambda: f"{next(ids):032x}",
        new_secret=lambda: f"secret-{next(ids):032d}",
    )


class Client:
    """Calls a :class:`ScimService` directly with JSON bodies."""

    def __init__(self, service: ScimService, token: str | None) -> None:
        self.service = service
        self.token = token

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> ScimResponse:
        hdrs = {"Content-Type": "application/scim+json"}
        if self.token is not None:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        return self.service.handle(
            ScimRequest(method, path, query or {}, hdrs, data, base_url=BASE)
        )

    def create(self, user_name: str, **extra: Any) -> dict[str, Any]:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name}
        body.update(extra)
        response = self("POST", "/Users", body)
        assert response.status == 201, response.json()
        result: dict[str, Any] = response.json()
        return result


@pytest.fixture
def service() -> ScimService:
    return ScimService(MemoryStorage(), runtime=counting_runtime())


@pytest.fixture
def workspaces(service: ScimService) -> Workspaces:
    return service.workspaces


@pytest.fixture
def token(workspaces: Workspaces) -> str:
    workspaces.create("acme", "admin@acme.example")
    return workspaces.generate_token("acme", "admin@acme.example", "test").plaintext


@pytest.fixture
def client(service: ScimService, token: str) -> Client:
    return Client(service, token)


@pytest.fixture
def make_client(service: ScimService) -> Iterator[Callable[[str | None], Client]]:
    yield lambda tok: Client(service, tok)


POSTGRES_ENV = "SCIMCORE_TEST_POSTGRES_URL"
NO_POSTGRES = f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://user@host/db)"


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose ``search_path`` is a fresh, uniquely named schema, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(NO_POSTGRES)
    schema = f"scimcore_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scim.db'}"
    else:
        with postgres_schema_url() as url:
            yield url
