"""The fast path answers exactly what the plain path answers.

The same requests go to two services, each over its own SQL database with the same
deterministic runtime: one over a :class:`~scimcore_adapters.sql.SqlStorage` (which has the
:class:`~scimcore.storage.FastPath` capability: authentication and the first read in one
statement, writes that authenticate inside their transaction, read turns) and one over the
same storage with the capability hidden (the core then makes the plain reads one after the
other). Every response (status, headers, body), the provisioning log and the tokens' records
must be equal, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from scimcore import ScimRequest, ScimService, Storage
from scimcore.storage import FastPath
from scimcore_adapters.sql import SqlStorage
from tests.conftest import counting_runtime, postgres_schema_url

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_HIDDEN = frozenset({"read_turn", "authenticated"})


class Plain:
    """A storage with every method of the one it wraps but the fast path's."""

    def __init__(self, inner: SqlStorage) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in _HIDDEN:
            raise AttributeError(name)
        return getattr(self._inner, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fast.db'}", f"sqlite:///{tmp_path / 'plain.db'}"
        return
    with postgres_schema_url() as fast, postgres_schema_url() as plain:
        yield fast, plain


Send = Callable[..., tuple[int, dict[str, str], Any]]


@contextmanager
def _services(urls: tuple[str, str]) -> Iterator[tuple[ScimService, ScimService]]:
    with ExitStack() as stack:
        fast_storage = SqlStorage(urls[0])
        stack.callback(fast_storage.close)
        plain_storage = SqlStorage(urls[1])
        stack.callback(plain_storage.close)
        plain = cast(Storage, Plain(plain_storage))
        assert isinstance(fast_storage, FastPath) and not isinstance(plain, FastPath)
        services = (
            ScimService(fast_storage, runtime=counting_runtime()),
            ScimService(plain, runtime=counting_runtime()),
        )
        yield services


def _sender(service: ScimService, tokens: dict[str, str]) -> Send:
    def send(
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        token: str = "ok",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        sent = {"Content-Type": "application/scim+json", **(headers or {})}
        if token in tokens:
            sent["Authorization"] = f"Bearer {tokens[token]}"
        elif token:
            sent["Authorization"] = token
        raw = json.dumps(body).encode() if body is not None else b""
        request = ScimRequest(method, path, query or {}, sent, raw, "https://x.test/scim/v2")
        response = service.handle(request)
        payload = json.loads(response.body) if response.body else None
        return response.status, dict(response.headers), payload

    return send


def _conversation(service: ScimService) -> list[Any]:
    """Every answer to one fixed sequence of requests, and what they left stored."""
    ws = service.workspaces
    ws.create("acme", "a@x.test")
    ws.add_admin("acme", "b@x.test")
    ws.create("other", "o@x.test")
    ok = ws.generate_token("acme", "a@x.test").plaintext
    dying = ws.generate_token("acme", "b@x.test").plaintext
    foreign = ws.generate_token("other", "o@x.test").plaintext
    token_id = ok.split("_")[1]
    tokens = {
        "ok": ok,
        "dying": dying,
        "foreign": foreign,
        "wrong": f"scim_{token_id}_{'w' * 40}",
        "unknown": f"scim_{'0' * 32}_{'s' * 40}",
        "malformed": "scim_not-a-token",
    }
    send = _sender(service, tokens)
    answers: list[Any] = []

    def keep(*args: Any, **kwargs: Any) -> Any:
        answer = send(*args, **kwargs)
        answers.append(answer)
        return answer

    ids = []
    for n, title in enumerate(["Eng", "Eng", "Sales"]):
        body = {"userName": f"user{n}@x.test", "title": title, "active": True}
        ids.append(keep("POST", "/Users", body)[2]["id"])
    keep("POST", "/Users", {"userName": "USER0@x.test"})  # 409
    keep("POST", "/Users", {"userName": "x@x.test"}, token="wrong")
    keep("POST", "/Users", {"nope": 1})  # 400 after the authentication
    first = ids[0]
    for token in ("ok", "wrong", "unknown", "malformed", "", "foreign", "Basic abc"):
        keep("GET", f"/Users/{first}", token=token)
    keep("GET", "/Users/no-such-id")
    keep("GET", "/Users/%00")
    keep("HEAD", f"/Users/{first}")
    etag = keep("GET", f"/Users/{first}")[1]["ETag"]
    keep("GET", f"/Users/{first}", headers={"If-None-Match": etag})
    keep("GET", f"/Users/{first}", query={"attributes": "userName"})
    lookups = [
        'userName eq "user1@x.test"',
        'userName eq "USER1@X.TEST"',
        'userName eq "nobody@x.test"',
        'title eq "Eng"',
        'userName eq "a" or userName eq "user2@x.test"',
        "(((",
        'userName eq "' + "x" * 600 + '"',
    ]
    for text in lookups:
        keep("GET", "/Users", query={"filter": text})
        keep("GET", "/Users", query={"filter": text}, token="wrong")
    keep("GET", "/Users", query={"filter": lookups[0], "startIndex": "2"})
    keep("GET", "/Users", query={"filter": lookups[0], "count": "0"})
    keep("GET", "/Users", query={"filter": lookups[0], "sortBy": "title"})
    keep("GET", "/Users", query={"filter": lookups[3], "sortBy": "userName"})
    keep("GET", "/Users", query={"filter": lookups[0], "excludedAttributes": "title"})
    keep("GET", "/Users", query={"filter": lookups[0]}, token="foreign")
    keep("GET", "/Users")
    keep("POST", "/Users/.search", {"filter": lookups[0]})
    keep("POST", "/.search", {"filter": lookups[0]})
    group = keep("POST", "/Groups", {"displayName": "Team", "members": [{"value": first}]})
    # a second group: User.groups in order (in a workspace with groups, read after the user)
    keep("POST", "/Groups", {"displayName": "Later", "members": [{"value": first}]})
    keep("GET", f"/Users/{first}")
    keep("GET", "/Users", query={"filter": 'userName eq "user0@x.test"'})
    keep("GET", f"/Groups/{group[2]['id']}")
    patch = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "X"}]}
    keep("PATCH", f"/Users/{ids[1]}", patch)
    keep("PATCH", f"/Users/{ids[1]}", patch, token="wrong")
    keep("PATCH", "/Users/no-such-id", patch)
    op = {"op": "Replace", "path": "active", "value": "False"}
    off = {"schemas": [PATCH], "Operations": [op]}
    keep("PATCH", f"/Users/{ids[2]}", off)
    keep("PUT", f"/Users/{ids[2]}", {"userName": "renamed@x.test", "title": "Ops"})
    keep("PUT", f"/Users/{ids[2]}", {"userName": "renamed@x.test"}, headers={"If-Match": etag})
    keep("DELETE", f"/Users/{ids[1]}")
    keep("DELETE", f"/Users/{ids[1]}")
    keep("GET", f"/Users/{ids[1]}")
    ws.deactivate_admin("acme", "b@x.test")
    keep("GET", f"/Users/{first}", token="dying")
    keep("GET", "/Users", query={"filter": lookups[0]}, token="dying")
    keep("POST", "/Users", {"userName": "late@x.test"}, token="dying")
    ws.delete_token("acme", token_id)
    keep("GET", f"/Users/{first}")
    keep("DELETE", f"/Users/{first}")
    stored = [
        (e.operation, e.resource_id, e.status, e.detail, e.at)
        for slug in ("acme", "other")
        for e in service.product.log(slug, 500)
    ]
    records = [(t.id, t.last_used_at) for s in ("acme", "other") for t in ws.list_tokens(s)]
    return [*answers, stored, records]


def test_the_fast_path_answers_what_the_plain_path_answers(two_urls: tuple[str, str]) -> None:
    """Authentication, reads, lookups, writes and refusals through the storage's fast path
    and without it: the same responses, log and token records, request by request."""
    with _services(two_urls) as (fast, plain):
        fast_answers = _conversation(fast)
        plain_answers = _conversation(plain)
    assert len(fast_answers) == len(plain_answers) == 63  # 61 answers, the log, the tokens
    for n, (got, expected) in enumerate(zip(fast_answers, plain_answers, strict=True)):
        assert got == expected, f"answer {n} differs"
    statuses = {a[0] for a in fast_answers[:-2]}
    assert {200, 201, 204, 304, 400, 401, 404, 409, 412} <= statuses
