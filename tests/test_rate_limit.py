"""Issue #22, item 4: 429 per workspace, a token bucket per workspace (``scimcore.ratelimit``),
in the process (memory storage, SQLite) or in PostgreSQL, shared by every process."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from scimcore import (
    RateLimit,
    Runtime,
    ScimRequest,
    ScimService,
    ServiceConfig,
    parse_rate_limit,
    rate_limit_from_env,
)
from scimcore.ratelimit import DEFAULT_RATE_LIMIT, LocalBuckets, refill
from scimcore.storage import Storage
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.sql import SqlStorage

from .conftest import postgres_schema_url

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
LIMIT = RateLimit(2.0, 3)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def _service(storage: Storage, clock: Clock, limit: RateLimit = LIMIT) -> ScimService:
    counter = iter(range(1, 10**9))
    runtime = Runtime(
        now=clock.now,
        new_id=lambda: f"{next(counter):032x}",
        new_secret=lambda: f"secret-{next(counter):032d}",
    )
    return ScimService(storage, runtime=runtime, config=ServiceConfig(rate_limit=limit))


def _token(service: ScimService, slug: str) -> str:
    service.workspaces.create(slug, f"admin@{slug}.example")
    return service.workspaces.generate_token(slug, f"admin@{slug}.example").plaintext


def _send(service: ScimService, token: str, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
    data = json.dumps(body).encode() if body is not None else b""
    return service.handle(ScimRequest(method, path, {}, headers, data, base_url="http://x"))


def test_parse_the_switch() -> None:
    assert parse_rate_limit("off") is None and parse_rate_limit(" OFF ") is None
    assert parse_rate_limit("50/80") == RateLimit(50.0, 80)
    assert parse_rate_limit("0.5/1") == RateLimit(0.5, 1)
    assert parse_rate_limit(None) == parse_rate_limit("") == DEFAULT_RATE_LIMIT
    assert rate_limit_from_env({"SCIMCORE_RATE_LIMIT": "7/9"}) == RateLimit(7.0, 9)
    assert rate_limit_from_env({}) == DEFAULT_RATE_LIMIT
    assert DEFAULT_RATE_LIMIT.rate >= 4 * 25  # well above Entra's 25 requests/s per tenant
    for bad in ("100", "fast", "0/10", "10/0", "-1/5", "1/2.5", "nan/3"):
        with pytest.raises(ValueError, match="SCIMCORE_RATE_LIMIT"):
            parse_rate_limit(bad)


def test_the_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    cases = [
        ((0.0, 10.0, 10.4), (False, 0.8)),
        ((0.0, 10.0, 10.5), (True, 0.0)),
        ((1.0, 10.0, 100.0), (True, 2.0)),  # capped at the burst
        ((1.0, 10.0, 5.0), (True, 0.0)),  # the clock went back: nothing added
    ]
    for (tokens, stamp, now), (granted, left) in cases:
        got = refill(tokens, stamp, now, LIMIT)
        assert got[0] is granted and abs(got[1] - left) < 1e-9, (tokens, stamp, now, got)


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_burst_past_the_rate_is_429_while_another_workspace_is_served(
    backend: str, tmp_path: Path
) -> None:
    storage: Any = (
        MemoryStorage() if backend == "memory" else SqlStorage(f"sqlite:///{tmp_path}/r.db")
    )
    try:
        clock = Clock()
        service = _service(storage, clock)
        busy, calm = _token(service, "busy"), _token(service, "calm")
        statuses = [_send(service, busy, "GET", "/Users").status for _ in range(LIMIT.burst)]
        assert statuses == [200] * LIMIT.burst
        refused = _send(service, busy, "POST", "/Users", {"schemas": [CORE], "userName": "x"})
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "1"
        error = refused.json()
        assert error["status"] == "429" and "rate_limit" in error["detail"]
        assert _send(service, calm, "GET", "/Users").status == 200  # another workspace
        clock.advance(1 / LIMIT.rate)  # one token back
        listed = _send(service, busy, "GET", "/Users")
        assert listed.status == 200 and listed.json()["totalResults"] == 0  # nothing stored
        assert _send(service, busy, "GET", "/Users").status == 429
    finally:
        if backend == "sqlite":
            storage.close()


def test_no_limit_by_default_for_a_host_app() -> None:
    service = ScimService(MemoryStorage())
    assert service.config.rate_limit is None
    token = _token(service, "acme")
    assert {_send(service, token, "GET", "/Users").status for _ in range(300)} == {200}


def test_local_buckets_are_shared_by_threads() -> None:
    import threading

    buckets, granted = LocalBuckets(), []
    limit = RateLimit(1.0, 50)

    def take() -> None:
        for _ in range(20):
            granted.append(buckets.take_token("w", limit, 100.0))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted.count(True) == 50 and len(granted) == 80


def test_sqlite_processes_each_keep_their_own_buckets(tmp_path: Path) -> None:
    """Two storages on one SQLite file (two gunicorn workers have two) each grant a whole
    burst: what docs/limits.md and docs/deployment.md say, ``W`` workers allow ``W x RATE``."""
    url = f"sqlite:///{tmp_path}/shared.db"
    first, second = SqlStorage(url), SqlStorage(url)
    try:
        clock = Clock()
        one, two = _service(first, clock), _service(second, clock)
        token = _token(one, "shared")
        for service in (one, two):
            sent = [_send(service, token, "GET", "/Users").status for _ in range(LIMIT.burst)]
            assert sent == [200] * LIMIT.burst
            assert _send(service, token, "GET", "/Users").status == 429
    finally:
        first.close()
        second.close()


def test_postgresql_processes_share_one_bucket_per_workspace() -> None:
    """Two storages on one PostgreSQL database (two server processes have two) see one
    bucket: what one takes, the other cannot."""
    with postgres_schema_url() as url:
        first, second = SqlStorage(url), SqlStorage(url)
        try:
            clock = Clock()
            one, two = _service(first, clock), _service(second, clock)
            token = _token(one, "shared")
            other = _token(one, "other")
            seen = [(one if i % 2 else two, token) for i in range(LIMIT.burst)]
            assert [_send(s, t, "GET", "/Users").status for s, t in seen] == [200] * LIMIT.burst
            refused = _send(two, token, "GET", "/Users")
            assert refused.status == 429 and refused.headers["Retry-After"] == "1"
            assert _send(one, token, "GET", "/Users").status == 429
            assert _send(two, other, "GET", "/Users").status == 200
            clock.advance(1 / LIMIT.rate)
            assert _send(two, token, "GET", "/Users").status == 200
            assert _send(one, token, "GET", "/Users").status == 429
        finally:
            first.close()
            second.close()


def test_postgresql_rate_limited_writes_from_many_threads_all_complete() -> None:
    """A write takes its token while it holds a connection: the buckets' own pool keeps more
    threads than the storage's pool holds from waiting on one another."""
    import threading

    with postgres_schema_url() as url:
        storage = SqlStorage(url)
        try:
            service = _service(storage, Clock(), RateLimit(1e6, 10**6))
            token = _token(service, "busy")
            statuses: list[int] = []

            def create(t: int) -> None:
                for i in range(3):
                    body = {"schemas": [CORE], "userName": f"u{t}-{i}"}
                    statuses.append(_send(service, token, "POST", "/Users", body).status)

            threads = [threading.Thread(target=create, args=(t,)) for t in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert statuses == [201] * 60
        finally:
            storage.close()
