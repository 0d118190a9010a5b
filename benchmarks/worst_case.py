"""The most expensive request each request limit still allows, and its server CPU.

Run by hand (not in CI), from the repository root::

    python benchmarks/worst_case.py                 # every case, 5 trials each
    python benchmarks/worst_case.py --trials 9 --users 1000

Each request goes in-process through :meth:`ScimService.handle` on a fresh SQLite file (a
workspace of ``--users`` Entra-shaped users, so that searches have something to scan); the
figure is the process CPU time of that one call (``time.process_time``), the cheapest of
``--trials`` (a write gets a fresh user each trial, so none is a no-op). The budget
(issue #22): no request within the documented limits (``docs/limits.md``) costs more than
50 ms; a row over it is marked and the script exits 1. The table goes in
``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_requests as pr

from scimcore import ScimRequest, ScimResponse, ServiceConfig

BUDGET_MS = 50.0
LIMITS = ServiceConfig()
MULTI = ("emails", "phoneNumbers", "ims", "photos", "entitlements", "roles", "x509Certificates")


def _string(n: int, tag: str) -> str:
    """A string of exactly ``n`` bytes starting with ``tag``."""
    return (tag + "x" * n)[:n]


def _patch(ops: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schemas": [pr.PATCH_OP], "Operations": ops}).encode()


def _widest_user(name: str) -> dict[str, Any]:
    """Every multi-valued attribute at ``max_values``, all in about half the body limit."""
    user: dict[str, Any] = {"schemas": [pr.CORE], "userName": name}
    for attr in MULTI:
        user[attr] = [{"value": f"{attr}-{i}-{name}", "type": "work"} for i in range(100)]
    user["addresses"] = [
        {"streetAddress": f"{i} Main St", "locality": "Springfield", "type": "work"}
        for i in range(LIMITS.max_values)
    ]
    return user


def _longest_strings(name: str) -> dict[str, Any]:
    """``max_values`` e-mails of ``max_string_bytes`` each, under the body limit."""
    per = min(LIMITS.max_string_bytes, (LIMITS.max_body_bytes - 4096) // LIMITS.max_values - 64)
    emails = [{"value": _string(per, f"{i}-{name}-")} for i in range(LIMITS.max_values)]
    return {"schemas": [pr.CORE], "userName": name, "emails": emails}


def _body_of_ignored_members(name: str) -> bytes:
    """A body at ``max_body_bytes``: small unknown members (ignored, but parsed)."""
    head = json.dumps({"userName": name})[:-1]
    members, size = [], len(head) + 1
    i = 0
    while True:
        member = f', "x{i}": "{i}"'
        if size + len(member) > LIMITS.max_body_bytes:
            break
        members.append(member)
        size += len(member)
        i += 1
    return (head + "".join(members) + "}").encode()


def _or_filter(terms: int, chars: int) -> str:
    """``terms`` ``co`` comparisons (re-checked in Python), padded to ``chars`` characters."""
    parts = [f'emails.value co "u{i}@"' for i in range(terms)]
    text = " or ".join(parts)
    pad = chars - len(text)
    if pad > 0:
        parts[-1] = f'emails.value co "u{terms - 1}@{"z" * max(pad, 0)}"'
        text = " or ".join(parts)
    return text[:chars] if len(text) > chars else text


class Cases:
    """The service, a workspace of users, and one method per case."""

    def __init__(self, tmp: Path, users: int) -> None:
        self.bench = pr.Bench(f"sqlite:///{tmp / 'worst.db'}", users)
        self.bench.create()
        self.serial = 0

    def _fresh(self, body: dict[str, Any] | None = None) -> str:
        self.serial += 1
        user = body or json.loads(pr.user_body(10_000_000 + self.serial))
        return str(json.loads(self.bench.send("POST", "/Users", json.dumps(user).encode()))["id"])

    def _request(
        self, method: str, path: str, body: bytes = b"", **query: str
    ) -> Callable[[], ScimResponse]:
        request = ScimRequest(method, path, query, self.bench.headers, body, pr.BASE_URL)
        return lambda: self.bench.service.handle(request)

    def _name(self) -> str:
        self.serial += 1
        return f"w{self.serial}@x.test"

    # each case: (set up, not measured) -> the one request to measure; the searches first,
    # on the workspace of Entra-shaped users (an unindexed search costs O(data scanned))

    def filter_max_terms(self) -> Callable[[], ScimResponse]:
        text = _or_filter(LIMITS.max_filter_terms, LIMITS.max_filter_chars)
        return self._request("GET", "/Users", filter=text)

    def search_max_terms(self) -> Callable[[], ScimResponse]:
        text = _or_filter(LIMITS.max_filter_terms, LIMITS.max_filter_chars)
        body = json.dumps({"schemas": [], "filter": text, "count": LIMITS.max_count}).encode()
        return self._request("POST", "/Users/.search", body)

    def list_max_count(self) -> Callable[[], ScimResponse]:
        return self._request("GET", "/Users", count=str(LIMITS.max_count))

    def create_widest(self) -> Callable[[], ScimResponse]:
        return self._request("POST", "/Users", json.dumps(_widest_user(self._name())).encode())

    def create_longest_strings(self) -> Callable[[], ScimResponse]:
        return self._request("POST", "/Users", json.dumps(_longest_strings(self._name())).encode())

    def create_body_at_limit(self) -> Callable[[], ScimResponse]:
        return self._request("POST", "/Users", _body_of_ignored_members(self._name()))

    def get_widest(self) -> Callable[[], ScimResponse]:
        uid = self._fresh(_widest_user(self._name()))
        return self._request("GET", f"/Users/{uid}")

    def get_longest_strings(self) -> Callable[[], ScimResponse]:
        uid = self._fresh(_longest_strings(self._name()))
        return self._request("GET", f"/Users/{uid}")

    def put_widest(self) -> Callable[[], ScimResponse]:
        name = self._name()
        uid = self._fresh(_widest_user(name))
        body = _widest_user(name)
        for attr in MULTI:
            body[attr].reverse()
        return self._request("PUT", f"/Users/{uid}", json.dumps(body).encode())

    def patch_max_adds(self) -> Callable[[], ScimResponse]:
        """``max_operations`` adds to ``emails``, ending at ``max_values`` e-mails."""
        uid = self._fresh()
        ops = [
            {"op": "add", "path": "emails", "value": [{"value": f"a{i % 99}@x.test"}]}
            for i in range(LIMITS.max_operations)
        ]
        return self._request("PATCH", f"/Users/{uid}", _patch(ops))

    def patch_max_filtered(self) -> Callable[[], ScimResponse]:
        """``max_operations`` value-filtered replaces on a user at ``max_values`` e-mails."""
        name = self._name()
        uid = self._fresh(_widest_user(name))
        ops = [
            {
                "op": "replace",
                "path": f'emails[value eq "emails-{i % 100}-{name}"].display',
                "value": f"d{i}",
            }
            for i in range(LIMITS.max_operations)
        ]
        return self._request("PATCH", f"/Users/{uid}", _patch(ops))

    def patch_max_pathless(self) -> Callable[[], ScimResponse]:
        """``max_operations`` path-less replaces of several attributes each."""
        uid = self._fresh()
        ops = [
            {
                "op": "replace",
                "value": {"title": f"t{i}", "name.givenName": f"g{i}", "active": i % 2 == 0},
            }
            for i in range(LIMITS.max_operations)
        ]
        return self._request("PATCH", f"/Users/{uid}", _patch(ops))


CASES = [name for name in vars(Cases) if not name.startswith("_")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=5, help="trials per case (cheapest kept)")
    parser.add_argument("--users", type=int, default=1000, help="users in the workspace")
    parser.add_argument("cases", nargs="*", choices=[*CASES, []], help="default: every case")
    args = parser.parse_args(argv)
    over = 0
    with tempfile.TemporaryDirectory() as tmp:
        cases = Cases(Path(tmp), args.users)
        if cases.bench.storage.checkpointer is not None:
            cases.bench.storage.checkpointer.stop()
        print("| request | status | response bytes | server CPU (ms) |")
        print("|---|---:|---:|---:|")
        for name in args.cases or CASES:
            best, status, size = float("inf"), 0, 0
            for _ in range(max(args.trials, 1)):
                send = getattr(cases, name)()
                cpu = time.process_time()
                response = send()
                best = min(best, (time.process_time() - cpu) * 1000)
                status, size = response.status, len(response.body)
            mark = "" if best <= BUDGET_MS else " (over budget)"
            over += best > BUDGET_MS
            print(f"| {name} | {status} | {size:,} | {best:.1f}{mark} |", flush=True)
        cases.bench.close()
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
