"""R3.6 and R9.1 against a real server process: kill it (SIGKILL) during a burst of creates,
restart it, let IdP-style retries run, and find exactly one user, one card and one activation
email per person, on SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
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


def _provision(server: Server, i: int) -> bool:
    """One IdP attempt: look up, create if absent. True when the person surely exists."""
    body = _user(i)
    query = f"?filter=userName%20eq%20%22{body['userName']}%22"
    status, found = _request(server.port, server.token, "GET", "/Users" + query)
    if status == 200 and found["totalResults"] == 1:
        return True
    status, _ = _request(server.port, server.token, "POST", "/Users", body)
    return status in (201, 409)


def test_kill_during_burst_then_retry(any_url: str, tmp_path: Path) -> None:
    # R3.6, R9.1
    server = Server(any_url, free_port(), tmp_path)
    server.start()
    done: set[int] = set()
    lock = threading.Lock()
    quarter = threading.Event()  # a quarter of the people are acknowledged: time to kill

    def burst(worker: int) -> None:
        for i in range(worker, PEOPLE, 4):
            try:
                if _provision(server, i):
                    with lock:
                        done.add(i)
                        if len(done) >= PEOPLE // 4:
                            quarter.set()
            except (OSError, http.client.HTTPException):
                pass  # the server died under us: the IdP will retry

    threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
    try:
        for t in threads:
            t.start()
        assert quarter.wait(120), f"only {len(done)} people acknowledged"
        server.kill()
        for t in threads:
            t.join()
        assert len(done) < PEOPLE, "the kill came too late to interrupt the burst"
        server.start()
        for i in sorted(done):  # every write answered before the kill survived it (issue 22)
            query = f"?filter=userName%20eq%20%22{_user(i)['userName']}%22"
            status, found = _request(server.port, server.token, "GET", "/Users" + query)
            assert status == 200 and found["totalResults"] == 1, f"acknowledged person {i} lost"
        for _ in range(3):  # IdP retry cycles
            for i in range(PEOPLE):
                try:
                    if _provision(server, i):
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
