"""The hostile and worst-case requests of ``benchmarks/hostile.py`` about what is sent (JSON,
types, sizes, filters, PATCH), one generator per kind; ``hostile_wire.py`` has the rest.

Each generator takes the client's :class:`Ctx` (its own users and group in workspace A, the
ids and names of workspace B, a random source) and returns a :class:`Case`: the request and
what must hold of its answer. The limits come from ``scimcore.ServiceConfig`` (the documented
defaults, docs/limits.md), so a case "at the limit" and one "past it" follow them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from scimcore import ServiceConfig

LIMITS = ServiceConfig()
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#: Every userName made in workspace A carries it: B's answers must never contain it.
MARK_A = "hstla"
DISCARD_LIMIT = 16 * 1024 * 1024  # scimcore_adapters._http: the most of a body read for a 413
#: 404; or 429 when A's own rate limit refused it (before anything about B was looked at).
NOT_FOUND = frozenset({404, 429})
UNAUTHORIZED = frozenset({401})


@dataclass
class Case:
    """One request. ``raw``: the whole HTTP request, sent as is on a new connection.
    ``target``: (``"a"`` or ``"b"``, path) of a resource a refused write must leave as it was;
    ``creates``: a userName in workspace A that a refused POST must not have stored;
    ``expect``: the only statuses allowed (``None``: any but 5xx); ``answer_due``: False where a
    closed connection is a fair answer (a body past the discard limit, HTTP garbage)."""

    name: str
    method: str = "GET"
    path: str = "/Users"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    chunked: bool = False
    target: tuple[str, str] | None = None
    creates: str | None = None
    expect: frozenset[int] | None = None
    answer_due: bool = True
    #: For a 200 list answer: it must be empty (a filter naming the other workspace's data).
    empty: bool = False


@dataclass
class Ctx:
    """What one hostile client works on."""

    rng: random.Random
    users: list[tuple[str, str]]  # its own (id, userName) in workspace A
    group: str  # its own group in workspace A
    b_users: Callable[[], list[tuple[str, str]]]  # B's bystanders, never written by B itself
    token_a: str
    serial: int = 0

    def name(self, oddity: str = "") -> str:
        self.serial += 1
        return f"{MARK_A}{self.rng.randrange(16**8):08x}{self.serial}{oddity}@a.test"

    def own(self) -> tuple[str, str]:
        uid, _ = self.rng.choice(self.users)
        return uid, f"/Users/{uid}"


def jdump(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def user(name: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [CORE], "userName": name, **extra}


def patch(*ops: Any) -> bytes:
    return jdump({"schemas": [PATCH_OP], "Operations": list(ops)})


def create(name: str, body: bytes, case: str) -> Case:
    return Case(case, "POST", "/Users", body, creates=name)


def write_to_own(ctx: Ctx, case: str, body: bytes, method: str = "PATCH") -> Case:
    _, path = ctx.own()
    return Case(case, method, path, body, target=("a", path))


def filter_get(case: str, text: str, **kw: Any) -> Case:
    return Case(case, "GET", "/Users?filter=" + quote(text, safe=""), **kw)


# --------------------------------------------------------------------------- malformed JSON

GARBAGE_JSON = [
    b"{",
    b"}",
    b"[]",
    b"null",
    b'"x"',
    b'{"userName":}',
    b"\xff\xfe\x00{",
    b'{"userName": "a"}}',
    b'\xef\xbb\xbf{"userName": "bom"}',
    b"NaN",
    b'{"userName": NaN}',
    b'{"userName": 1e999999}',
    b'{"userName": "\\ud800"}',
    b'{"userName": "\\u0000"}',
    b'{"userName": "a\xc3\x28"}',
    b'{"schemas": ["' + CORE.encode() + b'"], "userName": "x", "userName": ["dup"]}',
    b"{" + b'"a":' * 50 + b"1" + b"}" * 50,
    b"",
]


def malformed_json(ctx: Ctx) -> Case:
    body = ctx.rng.choice(GARBAGE_JSON)
    if ctx.rng.random() < 0.5:
        return Case("malformed JSON (POST)", "POST", "/Users", body)
    return write_to_own(ctx, "malformed JSON (PATCH/PUT)", body, ctx.rng.choice(["PATCH", "PUT"]))


def truncated_json(ctx: Ctx) -> Case:
    name = ctx.name()
    body = jdump(user(name, emails=[{"value": name}]))
    return create(name, body[: ctx.rng.randrange(1, len(body))], "truncated JSON")


def deep_json(ctx: Ctx) -> Case:
    depth = ctx.rng.choice([1000, 10_000, 100_000])
    nest = "[" * depth + "]" * depth
    name = ctx.name()
    body = f'{{"schemas": ["{CORE}"], "userName": "{name}", "x": {nest}}}'.encode()
    if ctx.rng.random() < 0.5:
        return create(name, body, f"JSON nested {depth} deep")
    op = '{"op": "replace", "path": "title", "value": ' + nest + "}"
    patch_body = f'{{"schemas": ["{PATCH_OP}"], "Operations": [{op}]}}'.encode()
    return write_to_own(ctx, f"PATCH value nested {depth} deep", patch_body)


def huge_number(ctx: Ctx) -> Case:
    name = ctx.name()
    digits = "9" * ctx.rng.choice([19, 20, 400, 4301, 50_000])
    body = f'{{"schemas": ["{CORE}"], "userName": "{name}", "title": {digits}}}'.encode()
    return create(name, body, f"a number of {len(digits)} digits")


# --------------------------------------------------------------------------- wrong types

WRONG_USER_FIELDS: list[dict[str, Any]] = [
    {"userName": 123},
    {"userName": None},
    {"userName": ["a"]},
    {"active": "maybe"},
    {"active": {}},
    {"emails": "x@y"},
    {"emails": [1, 2]},
    {"emails": [{"value": 5}]},
    {"emails": [{"value": "a@b", "primary": "yes"}]},
    {"name": "John"},
    {"name": {"givenName": {"x": 1}}},
    {"schemas": "urn"},
    {"schemas": [1]},
    {"externalId": {}},
    {"meta": "x"},
    {"groups": ["x"]},
    {ENTERPRISE: "x"},
    {ENTERPRISE: {"manager": 5}},
    {"phoneNumbers": [{"value": []}]},
    {"addresses": [{"streetAddress": {"a": 1}}]},
    {"id": {"x": 1}},
]

WRONG_OPS: list[Any] = [
    {},
    "x",
    [1],
    [{"op": 5}],
    [{"op": "add"}],
    [{"op": "replace", "path": 5, "value": 1}],
    [{"op": "remove"}],
    [{"op": "replace", "value": "not an object"}],
    [{"op": "replace", "path": "active", "value": "notabool"}],
    [{"op": "replace", "path": "emails", "value": "x"}],
    [{"op": "add", "path": "name", "value": [1, 2]}],
    [{"op": "replace", "path": "userName", "value": None}],
    [None],
]


def wrong_types(ctx: Ctx) -> Case:
    if ctx.rng.random() < 0.5:
        name = ctx.name()
        body = {"schemas": [CORE], "userName": name, **ctx.rng.choice(WRONG_USER_FIELDS)}
        if body["userName"] != name:
            return Case("wrong types (POST)", "POST", "/Users", jdump(body))
        return create(name, jdump(body), "wrong types (POST)")
    if ctx.rng.random() < 0.5:
        uid, path = ctx.own()
        body = {**user(ctx.name()), "id": uid, **ctx.rng.choice(WRONG_USER_FIELDS)}
        return Case("wrong types (PUT)", "PUT", path, jdump(body), target=("a", path))
    doc = {"schemas": [PATCH_OP], "Operations": ctx.rng.choice(WRONG_OPS)}
    return write_to_own(ctx, "wrong types (PATCH)", jdump(doc))


# --------------------------------------------------------------------------- sizes and limits


def _padded(name: str, size: int) -> bytes:
    """A POST body of exactly ``size`` bytes: a user padded with one ignored member."""
    head = json.dumps(user(name))[:-1] + ', "pad": "'
    return (head + "x" * max(0, size - len(head) - 2) + '"}').encode()


def body_sizes(ctx: Ctx) -> Case:
    name = ctx.name()
    size, label = ctx.rng.choice(
        [
            (LIMITS.max_body_bytes, "body at the limit"),
            (LIMITS.max_body_bytes + 1, "body one byte past the limit"),
            (8 * 2**20, "an 8 MiB body"),
        ]
    )
    case = create(name, _padded(name, size), label)
    if ctx.rng.random() < 0.3:  # the same, sent in chunks with no Content-Length
        case.name, case.chunked = f"{label}, chunked", True
    return case


def body_past_discard(ctx: Ctx) -> Case:
    name = ctx.name()
    case = create(name, _padded(name, DISCARD_LIMIT + 65536), "body past the 16 MiB discard limit")
    case.answer_due = False  # the adapter stops reading: a reset is the documented answer
    return case


def _or_terms(terms: int) -> str:
    return " or ".join(f'emails.value co "u{i}@"' for i in range(terms))


def filters(ctx: Ctx) -> Case:
    pick = ctx.rng.randrange(8)
    if pick == 0:
        return filter_get("filter of max terms", _or_terms(LIMITS.max_filter_terms))
    if pick == 1:
        return filter_get("filter one term past", _or_terms(LIMITS.max_filter_terms + 1))
    if pick == 2:
        text = 'userName eq "' + "a" * (LIMITS.max_filter_chars - 14) + '"'
        return filter_get("filter of max characters", text)
    if pick == 3:
        text = 'userName eq "' + "a" * (LIMITS.max_filter_chars - 13) + '"'
        return filter_get("filter one character past", text)
    if pick == 4:
        depth = ctx.rng.choice([100, 1000, 2000])
        text = "(" * depth + 'userName eq "x"' + ")" * depth
        return filter_get(f"filter nested {depth} deep", text)
    if pick == 5:
        text = "not (" * 600 + 'userName eq "x"' + ")" * 600
        return filter_get("filter of 600 nested not", text)
    if pick == 6:
        text = 'userName eq "' + "x" * 9000 + '"'
        return filter_get("URL past the HTTP server's request line", text, answer_due=False)
    text = ctx.rng.choice(FILTER_GARBAGE)
    if ctx.rng.random() < 0.5:
        return filter_get("filter garbage", text)
    body = jdump({"schemas": [], "filter": text})
    return Case("filter garbage (POST .search)", "POST", "/Users/.search", body)


FILTER_GARBAGE = [
    'userName eq "unterminated',
    "userName eq",
    "eq eq eq",
    'userName eq "\u0000"',
    'emails[value eq "x"',
    'emails[type eq "work"][value eq "x"]',
    "userName gt 5",
    'meta.lastModified gt "not a date"',
    'userName eq "x" and',
    "userName eq true",
    "foo.bar.baz.qux eq 1",
    'userName sw ""',
    "a" * 3000 + ' eq "x"',
    f'{CORE}:userName eq "x"',
    'emails[value eq "x"].display eq "y"',
    'emails[emails[value eq "x"]]',
    "()",
    'userName eq "x" or ' * 50 + "(",
    '"just a string"',
    "userName pr and pr",
    r'userName eq "\ud83d\ude00"',  # the escapes, as text
    'userName eq "\U0001f600"',
]

ODD_QUERIES = [
    "count=-1",
    "count=abc",
    "count=99999999999999999999999",
    "count=5000",
    "startIndex=0",
    "startIndex=-5",
    "startIndex=1e309",
    "startIndex=99999999999999999999",
    "attributes=" + ",".join(["userName"] * 600),
    "excludedAttributes=" + ",".join(f"x{i}" for i in range(500)),
    "sortBy=name.givenName.x&sortOrder=sideways",
    "filter=&filter=userName%20eq%20%22a%22",
    'attributes=emails[type eq "work"]'.replace(" ", "%20").replace('"', "%22"),
    "count=1000&startIndex=1",
]


def odd_queries(ctx: Ctx) -> Case:
    return Case("odd query parameters", "GET", "/Users?" + ctx.rng.choice(ODD_QUERIES))


# --------------------------------------------------------------------------- PATCH

ODD_PATHS = [
    "a.b.c.d.e.f.g",
    "name.givenName.x",
    'emails[value eq "x"].display.y',
    'emails[value eq "x"][type eq "y"]',
    "[",
    "emails[",
    ".",
    "",
    f"{ENTERPRISE}:manager.value.x",
    'members[value eq "x"]',
    'emails[value eq "' + "x" * 9000 + '"]',
    "id",
    "meta.created",
    "schemas",
    "groups",
    f"{CORE}:name.givenName",
    f"{CORE}:",
    "urn:nope:nope:attr",
    'phoneNumbers[type eq "mobile" and (value pr or not (display pr))].value',
    'emails[type eq "work"].value',
    'name[givenName eq "x"]',
]
ODD_OPS = ["add", "replace", "remove", "ADD", "Replace", "move", "copy", "test", ""]
ODD_VALUES: list[Any] = [1, "x", None, [], {}, [{"value": "x@y.test"}], True, {"value": "v"}]


def odd_patch(ctx: Ctx) -> Case:
    ops = [
        {
            "op": ctx.rng.choice(ODD_OPS),
            "path": ctx.rng.choice(ODD_PATHS),
            "value": ctx.rng.choice(ODD_VALUES),
        }
        for _ in range(ctx.rng.randrange(1, 4))
    ]
    return write_to_own(ctx, "PATCH of odd paths", patch(*ops))


def patch_limits(ctx: Ctx) -> Case:
    pick = ctx.rng.randrange(5)
    n = LIMITS.max_operations
    if pick == 0:  # the quadratic shape, at the limit: accepted
        ops = [
            {"op": "add", "path": "emails", "value": [{"value": f"a{i % 99}@x.test"}]}
            for i in range(n)
        ]
        return write_to_own(ctx, "PATCH at the operation limit", patch(*ops))
    if pick == 1:
        ops = [{"op": "replace", "path": "title", "value": f"t{i}"} for i in range(n + 1)]
        return write_to_own(ctx, "PATCH one operation past", patch(*ops))
    if pick == 2:
        many = [{"value": f"v{i}@x.test"} for i in range(LIMITS.max_values + 1)]
        return write_to_own(
            ctx, "PATCH past max values", patch({"op": "add", "path": "emails", "value": many})
        )
    if pick == 3:
        long = "é" * (LIMITS.max_string_bytes // 2 + 1)
        op = {"op": "replace", "path": "displayName", "value": long}
        return write_to_own(ctx, "PATCH of a string past the limit", patch(op))
    uid, path = ctx.own()
    body = {
        **user(ctx.name()),
        "id": uid,
        "emails": [{"value": f"w{i}@x.test"} for i in range(LIMITS.max_values + 1)],
    }
    return Case("PUT past max values", "PUT", path, jdump(body), target=("a", path))
