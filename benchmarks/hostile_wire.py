"""The hostile requests of ``benchmarks/hostile.py`` about who asks and how: invalid tokens,
the other workspace's ids, unicode oddities, HTTP-level garbage, wrong methods; and the draw
of the next request among every kind (these and those of ``hostile_cases.py``).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import served
from hostile_cases import (
    LIMITS,
    NOT_FOUND,
    PATCH_OP,
    UNAUTHORIZED,
    Case,
    Ctx,
    body_past_discard,
    body_sizes,
    create,
    deep_json,
    filter_get,
    filters,
    huge_number,
    jdump,
    malformed_json,
    odd_patch,
    odd_queries,
    patch,
    patch_limits,
    truncated_json,
    user,
    write_to_own,
    wrong_types,
)


class Answer:
    """An HTTP answer: status (0: none), body, latency."""

    def __init__(self, status: int, body: bytes, ms: float, retry_after: str | None = None):
        self.status, self.body, self.ms, self.retry_after = status, body, ms, retry_after

    def doc(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Conn:
    """One keep-alive connection to the server (one thread's); a failed request reconnects,
    never retries."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], chunked: bool
    ) -> Answer:
        data: Any = body
        if chunked and body is not None:
            data = (body[i : i + 65536] for i in range(0, len(body), 65536))
        t = time.perf_counter()
        try:
            self.conn.request(
                method, served.SCIM_PREFIX + path, data, headers, encode_chunked=chunked
            )
            r = self.conn.getresponse()
            raw = r.read()
            if r.will_close:
                self.conn.close()
            return Answer(
                r.status, raw, (time.perf_counter() - t) * 1000, r.getheader("Retry-After")
            )
        except (OSError, http.client.HTTPException):
            self.conn.close()
            return Answer(0, b"", (time.perf_counter() - t) * 1000)

    def raw(self, data: bytes) -> Answer:
        """``data`` on a new connection, half-closed after it; the answer read until closed."""
        t, got = time.perf_counter(), b""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                while chunk := s.recv(65536):
                    got += chunk
        except OSError:
            pass
        ms = (time.perf_counter() - t) * 1000
        # the final answer, after any 100 Continue
        codes = [int(c) for c in re.findall(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3})", got)]
        final = [c for c in codes if c >= 200] or codes or [0]
        return Answer(final[0], got, ms)


# --------------------------------------------------------------------------- tokens, workspaces


def bad_tokens(ctx: Ctx) -> Case:
    secret = ctx.token_a
    auth = ctx.rng.choice(
        [
            None,
            "Bearer",
            "Bearer ",
            "Bearer x",
            "Basic Zm9vOmJhcg==",
            f"Bearer scim_{ctx.rng.randrange(16**32):032x}_{'A' * 43}",
            f"Bearer {secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}",
            f"Bearer {secret[:-4]}",
            "Bearer " + "x" * 7000,
            f"Bearer {secret} {secret}",
            f"Token {secret}",
        ]
    )
    headers = {} if auth is None else {"Authorization": auth}
    name = ctx.name()
    case = ctx.rng.choice(
        [
            Case("bad token (GET)", "GET", "/Users"),
            create(name, jdump(user(name)), "bad token (POST)"),
            write_to_own(
                ctx,
                "bad token (PATCH)",
                patch({"op": "replace", "path": "title", "value": "owned"}),
            ),
        ]
    )
    case.headers = {"Authorization": "", **headers}  # "" removes the client's own
    case.expect = UNAUTHORIZED
    return case


def other_workspace(ctx: Ctx) -> Case:
    bystanders = ctx.b_users()
    uid, name = ctx.rng.choice(bystanders)
    path = f"/Users/{uid}"
    pick = ctx.rng.randrange(7)
    if pick == 0:
        return Case("B's id: GET", "GET", path, expect=NOT_FOUND)
    if pick == 1:
        body = patch({"op": "replace", "path": "title", "value": "taken over"})
        return Case("B's id: PATCH", "PATCH", path, body, target=("b", path), expect=NOT_FOUND)
    if pick == 2:
        body = jdump({**user(name), "id": uid, "title": "taken over"})
        return Case("B's id: PUT", "PUT", path, body, target=("b", path), expect=NOT_FOUND)
    if pick == 3:
        return Case("B's id: DELETE", "DELETE", path, target=("b", path), expect=NOT_FOUND)
    if pick == 4:
        body = patch({"op": "add", "path": "members", "value": [{"value": uid}]})
        group = f"/Groups/{ctx.group}"
        return Case("B's user into A's group", "PATCH", group, body, target=("a", group))
    if pick == 5:
        return filter_get("filter on B's id", f'id eq "{uid}"', empty=True)
    return filter_get("filter on B's userName", f'userName eq "{name}"', empty=True)


# --------------------------------------------------------------------------- unicode

ODDITIES = [
    "\u0000",
    "\u202e",
    "\u200d\u200b",
    "\U0001f600",
    "e\u0301",
    "\u00e9",
    "\ufeff",
    "\uffff",
    "ß",
    "İ",
    "\u2028",
    "\x7f",
    "\\",
    '"',
]


def unicode_oddities(ctx: Ctx) -> Case:
    pick = ctx.rng.randrange(5)
    odd = ctx.rng.choice(ODDITIES)
    if pick == 0:
        name = ctx.name(odd)
        return Case("unicode userName", "POST", "/Users", jdump(user(name)))
    if pick == 1:  # 4-byte characters at the string limit and one past it
        n = LIMITS.max_string_bytes // 4 + ctx.rng.choice([0, 1])
        name = ctx.name()
        return create(name, jdump(user(name, title="\U0001f600" * n)), f"{n} emoji in a string")
    if pick == 2:
        name = ctx.name()
        body = f'{{"userName": "{name}", "title": "\\ud800\\udc00\\udbff"}}'.encode()
        return create(name, body, "lone surrogate escapes")
    if pick == 3:
        path = ctx.rng.choice(
            [
                "/Users/%ff%fe",
                "/Users/%00",
                "/Users/..%2f..%2fetc",
                "/Users/ä",
                "/Users/%C0%AF",
                "/Groups/%F0%9F%98%80",
            ]
        )
        return Case("odd path", ctx.rng.choice(["GET", "DELETE"]), quote(path, safe="/%"))
    name = ctx.name()
    content_type = ctx.rng.choice(
        [
            "text/plain",
            "application/json; charset=latin-1",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
        ]
    )
    case = create(name, jdump(user(name)), "odd Content-Type")
    case.headers = {"Content-Type": content_type}
    return case


# --------------------------------------------------------------------------- HTTP garbage

HOST = b"Host: 127.0.0.1\r\n"


def http_garbage(ctx: Ctx) -> Case:
    auth = f"Authorization: Bearer {ctx.token_a}\r\n".encode()
    u = b"/scim/v2/Users"
    raw = ctx.rng.choice(
        [
            b"GARBAGE\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"\x00\x01\x02\xff\r\n\r\n",
            b"GET " + u + b" HTTP/1.1\r\n" + HOST + b"NoColonHere\r\n\r\n",
            b"GET "
            + u
            + b" HTTP/1.1\r\n"
            + HOST
            + b"".join(b"X-%d: y\r\n" % i for i in range(500))
            + b"\r\n",
            b"GET " + u + b" HTTP/1.1\r\n" + HOST + b"X-Big: " + b"y" * 20000 + b"\r\n\r\n",
            b"POST " + u + b" HTTP/1.1\r\n" + HOST + auth + b"Content-Length: abc\r\n\r\n{}",
            b"POST " + u + b" HTTP/1.1\r\n" + HOST + auth + b"Content-Length: -1\r\n\r\n{}",
            b"POST "
            + u
            + b" HTTP/1.1\r\n"
            + HOST
            + auth
            + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST "
            + u
            + b" HTTP/1.1\r\n"
            + HOST
            + auth
            + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST " + u + b" HTTP/1.1\r\n" + HOST + auth + b'Content-Length: 1000\r\n\r\n{"a":',
            b"POST "
            + u
            + b" HTTP/1.1\r\n"
            + HOST
            + auth
            + b"Expect: 100-continue\r\nContent-Length: 52428800\r\n\r\n",
            b"FOO " + u + b" HTTP/1.1\r\n" + HOST + auth + b"\r\n",
            b"GET http://evil.example" + u + b" HTTP/1.1\r\n" + HOST + auth + b"\r\n",
            b"GET " + u + b" HTTP/1.0\r\n" + auth + b"\r\n",
            b"GET " + u + b"/\xff\xfe HTTP/1.1\r\n" + HOST + auth + b"\r\n",
            b"GET " + u + b" HTTP/1.1\r\n" + HOST + b"Authorization: Bearer \xe2\x98\x83\r\n\r\n",
            b"X" * 9000 + b" " + u + b" HTTP/1.1\r\n\r\n",
        ]
    )
    return Case("HTTP garbage", raw=raw, answer_due=False)


def wrong_methods(ctx: Ctx) -> Case:
    _, path = ctx.own()
    method, where = ctx.rng.choice(
        [
            ("DELETE", "/ServiceProviderConfig"),
            ("POST", path),
            ("PATCH", "/Users"),
            ("PUT", "/Schemas"),
            ("GET", "/Bulk"),
            ("POST", "/Bulk"),
            ("OPTIONS", "/Users"),
            ("HEAD", "/Users"),
            ("GET", "/Users/.search"),
            ("GET", "/Me"),
            ("TRACE", "/Users"),
        ]
    )
    body = jdump({"schemas": [PATCH_OP], "Operations": []}) if method != "GET" else None
    target = ("a", path) if where == path else None
    return Case(
        f"{method} {where if where != path else '/Users/{id}'}", method, where, body, target=target
    )


def worst_case_accepted(ctx: Ctx) -> Case:
    """Requests at the limits that are accepted (benchmarks/worst_case.py)."""
    name = ctx.name()
    if ctx.rng.random() < 0.5:
        wide = user(name)
        for attr in ("emails", "phoneNumbers", "ims", "photos", "entitlements", "roles"):
            wide[attr] = [
                {"value": f"{attr}-{i}-{name}", "type": "work"} for i in range(LIMITS.max_values)
            ]
        return Case("widest user (POST)", "POST", "/Users", jdump(wide))
    return Case("list of max count", "GET", f"/Users?count={LIMITS.max_count}")


#: (generator, weight): heavy or slow kinds less often.
GENERATORS: list[tuple[Callable[[Ctx], Case], int]] = [
    (malformed_json, 10),
    (truncated_json, 5),
    (deep_json, 4),
    (huge_number, 3),
    (wrong_types, 12),
    (body_sizes, 3),
    (body_past_discard, 1),
    (filters, 10),
    (odd_queries, 5),
    (odd_patch, 12),
    (patch_limits, 5),
    (bad_tokens, 8),
    (other_workspace, 10),
    (unicode_oddities, 8),
    (http_garbage, 6),
    (wrong_methods, 4),
    (worst_case_accepted, 3),
]


def next_case(ctx: Ctx) -> Case:
    """A hostile request, drawn by weight."""
    generators = [g for g, _ in GENERATORS]
    generate = ctx.rng.choices(generators, [w for _, w in GENERATORS])[0]
    return generate(ctx)
