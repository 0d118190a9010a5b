"""R3.6 and R9.1 against a real server process: kill it (SIGKILL) during a burst of creates and
PATCHes, check that every write it acknowledged survived whole (issue 22; SQLite's
``integrity_check`` too), restart it, let IdP-style retries run, and find exactly one user, one
card and one activation email per person, on SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from scimcore import ScimService
from scimcore_adapters.sql import SqlStorage
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = 40


class Server:
    """``examples/flask_server.py`` in its own process."""

    def __init__(self, url: str, port: int, cwd: Path) -> None:
        self.url, self.port, self.cwd = url, port, cwd  # cwd: its mail folder, demo credentials
        self.proc: subprocess.Popen[str] | None = None
        self.token = ""

    def start(self) -> None:
        env = {**os.environ, "SCIMCORE_DATABASE_URL": self.url, "PYTHONPATH": str(ROOT / "src")}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "flask_server.py"), "--port", str(self.port)],
            env=env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("Secret Token: "):
                self.token = self.token or line.split(": ", 1)[1].strip()
                break
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _request(port: int, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
        conn.request(method, "/scim/v2" + path, json.dumps(body) if body else None, headers)
        r = conn.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        conn.close()


def _user(i: int) -> dict[str, Any]:
    name = f"person{i:03}@contoso.com"
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "active": True,
        "displayName": f"Person {i}",
        "emails": [{"type": "work", "value": name, "primary": True}],
    }


def _lookup(server: Server, i: int) -> dict[str, Any] | None:
    """Person ``i`` as the server has them, or ``None``."""
    query = f"?filter=userName%20eq%20%22{_user(i)['userName']}%22"
    status, found = _request(server.port, server.token, "GET", "/Users" + query)
    assert status == 200, found
    return found["Resources"][0] if found["totalResults"] == 1 else None


def _provision(server: Server, i: int) -> str | None:
    """One IdP attempt: look up, create if absent. The person's id once they surely exist."""
    found = _lookup(server, i)
    if found is not None:
        return str(found["id"])
    status, created = _request(server.port, server.token, "POST", "/Users", _user(i))
    if status == 201:
        return str(created["id"])
    found = _lookup(server, i) if status == 409 else None
    return None if found is None else str(found["id"])


def _patch(version: int) -> dict[str, Any]:
    """Three changes that a PATCH applies all or none of; each names ``version``."""
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [
            {"op": "replace", "path": "title", "value": f"v{version}"},
            {"op": "replace", "path": "nickName", "value": f"n{version}"},
            {"op": "replace", "path": "phoneNumbers", "value": [{"value": f"+1 555 {version}"}]},
        ],
    }


def _version(person: dict[str, Any]) -> int:
    """The version of the last PATCH applied to ``person`` (0: none); fails if half applied."""
    if "title" not in person:
        assert "nickName" not in person and "phoneNumbers" not in person, person
        return 0
    version = int(person["title"][1:])
    assert person["nickName"] == f"n{version}", f"PATCH half applied: {person}"
    assert person["phoneNumbers"] == [{"value": f"+1 555 {version}"}], person
    return version


def test_kill_during_burst_then_retry(any_url: str, tmp_path: Path) -> None:
    # R3.6, R9.1, issue 22: every write acknowledged before a kill -9 survives it, whole
    server = Server(any_url, free_port(), tmp_path)
    server.start()
    created: set[int] = set()  # people whose create (or lookup) the server acknowledged
    patched: dict[int, int] = {}  # person -> the highest acknowledged PATCH version
    lock = threading.Lock()
    enough = threading.Event()  # a quarter of the people created: time to kill

    def writer(worker: int) -> None:
        """Creates and PATCHes its people over and over, until the server dies under it."""
        ids: dict[int, str] = {}
        try:
            for version in range(1, 10_000):
                for i in range(worker, PEOPLE, 4):
                    if i not in ids:
                        uid = _provision(server, i)
                        if uid is None:
                            continue
                        ids[i] = uid
                        with lock:
                            created.add(i)
                            if len(created) >= PEOPLE // 4:
                                enough.set()
                    path = f"/Users/{ids[i]}"
                    status, _ = _request(server.port, server.token, "PATCH", path, _patch(version))
                    if status == 200:
                        with lock:
                            patched[i] = version
        except (OSError, http.client.HTTPException):
            return  # the server died under us: the IdP will retry

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    try:
        for t in threads:
            t.start()
        assert enough.wait(timeout=120), "the burst did not get going"
        server.kill()  # writers are mid-request: none of them waits between two writes
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive()
        with lock:
            acknowledged, versions = set(created), dict(patched)
        assert len(acknowledged) < PEOPLE, "the kill came too late to interrupt the creates"
        assert versions, "no PATCH was acknowledged before the kill"
        if any_url.startswith("sqlite:"):
            with closing(sqlite3.connect(any_url.removeprefix("sqlite:///"))) as db:
                assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        server.start()
        for i in sorted(acknowledged):  # every write answered before the kill survived it
            person = _lookup(server, i)
            assert person is not None, f"acknowledged person {i} lost"
            assert _version(person) >= versions.get(i, 0), f"acknowledged PATCH of {i} lost"
        done = set(acknowledged)
        for _ in range(3):  # IdP retry cycles
            for i in range(PEOPLE):
                try:
                    if _provision(server, i) is not None:
                        done.add(i)
                except (OSError, http.client.HTTPException):
                    pass
        assert done == set(range(PEOPLE))
    finally:
        server.stop()

    storage = SqlStorage(any_url)
    try:
        service = ScimService(storage)
        cards = service.product.cards("demo")
        names = sorted(c.user_name for c in cards)
        assert names == sorted(_user(i)["userName"] for i in range(PEOPLE))
        outbox = service.product.outbox("demo")
        assert sorted(m.to for m in outbox) == names
        with storage.users(storage.get_workspace("demo").id) as store:  # type: ignore[union-attr]
            assert store.query(None, None, 1, 1000).total == PEOPLE
    finally:
        storage.close()
