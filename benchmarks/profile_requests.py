"""CPU cost of one SCIM request through :class:`~scimcore.ScimService` on the SQL storage.

Run by hand (not in CI)::

    python benchmarks/profile_requests.py create --requests 300 --time
    python benchmarks/profile_requests.py patch --requests 300          # cProfile listing

Operations: ``create`` (``POST /Users``: user, e-mails, card, activation mail, log entry),
``get`` (``GET /Users/{id}``), ``lookup`` (``GET /Users?filter=userName eq ...``) and ``patch``
(``PATCH /Users/{id}`` replacing ``title`` and one phone number). Every operation but ``create``
first creates the users it works on (not measured). The database is a fresh SQLite file in a
temporary directory unless ``--url`` names another one (e.g. a PostgreSQL test database; each
run adds a workspace to it).

``--time`` prints wall and CPU milliseconds per request (the best of ``--repeat`` runs, each on
a fresh database); without it the script prints the ``cProfile`` listing of one run, sorted by
``--sort``, limited to ``--limit`` lines.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

# The request bodies app_cost.py sends, shared with the scripts that import this one.
from app_cost import CORE as CORE
from app_cost import PATCH_OP as PATCH_OP
from app_cost import user_body as user_body

from scimcore import RateLimit, ScimRequest, ScimService, ServiceConfig, parse_rate_limit
from scimcore_adapters.sql import SqlStorage

BASE_URL = "http://x/scim/v2"
OPERATIONS = ("create", "get", "lookup", "patch")


def patch_body(n: int) -> bytes:
    operations = [
        {"op": "Replace", "path": "title", "value": f"T{n}"},
        {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value', "value": f"+3{n}"},
    ]
    return json.dumps({"schemas": [PATCH_OP], "Operations": operations}).encode()


class Bench:
    """A service over a fresh database with one workspace and a token for it."""

    def __init__(self, url: str, requests: int, rate_limit: RateLimit | None = None) -> None:
        self.storage = SqlStorage(url)
        self.service = ScimService(self.storage, config=ServiceConfig(rate_limit=rate_limit))
        slug = f"bench-{uuid.uuid4().hex[:12]}"  # a new workspace: a --url may be reused
        self.service.workspaces.create(slug, "a@acme.example")
        token = self.service.workspaces.generate_token(slug, "a@acme.example").plaintext
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/scim+json",
        }
        self.requests = requests
        self.ids: list[str] = []

    def close(self) -> None:
        self.storage.close()

    def send(self, method: str, path: str, body: bytes = b"", **query: str) -> bytes:
        request = ScimRequest(method, path, query, self.headers, body, BASE_URL)
        response = self.service.handle(request)
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {response.body!r}")
        return response.body

    def create(self) -> None:
        for n in range(self.requests):
            self.ids.append(json.loads(self.send("POST", "/Users", user_body(n)))["id"])

    def get(self) -> None:
        for user_id in self.ids:
            self.send("GET", f"/Users/{user_id}")

    def lookup(self) -> None:
        for n in range(self.requests):
            self.send("GET", "/Users", filter=f'userName eq "u{n}@x.test"')

    def patch(self) -> None:
        for n, user_id in enumerate(self.ids):
            self.send("PATCH", f"/Users/{user_id}", patch_body(n))

    def operation(self, name: str) -> Callable[[], None]:
        if name != "create":
            self.create()
        operations: dict[str, Callable[[], None]] = {
            "create": self.create,
            "get": self.get,
            "lookup": self.lookup,
            "patch": self.patch,
        }
        return operations[name]


def timed(
    url: str | None, operation: str, requests: int, rate_limit: RateLimit | None = None
) -> tuple[float, float]:
    """Wall and CPU milliseconds per request of one run on a fresh database."""
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(url or f"sqlite:///{Path(tmp) / 'bench.db'}", requests, rate_limit)
        try:
            run = bench.operation(operation)
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            bench.close()
    return wall * 1000 / requests, cpu * 1000 / requests


def profiled(url: str | None, operation: str, requests: int, sort: str, limit: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(url or f"sqlite:///{Path(tmp) / 'bench.db'}", requests)
        try:
            run = bench.operation(operation)
            profile = cProfile.Profile()
            profile.runcall(run)
        finally:
            bench.close()
    pstats.Stats(profile).sort_stats(sort).print_stats(limit)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("operation", choices=OPERATIONS)
    parser.add_argument("--requests", "-n", type=int, default=300, help="requests per run")
    parser.add_argument("--time", action="store_true", help="print ms/request, no profile")
    parser.add_argument("--repeat", type=int, default=3, help="runs with --time (best kept)")
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key")
    parser.add_argument("--limit", type=int, default=40, help="cProfile lines")
    parser.add_argument(
        "--rate-limit",
        default="off",
        help="RATE/BURST per workspace, as SCIMCORE_RATE_LIMIT (default off; with --time)",
    )
    args = parser.parse_args(argv)
    if args.requests <= 0:
        parser.error("--requests must be positive")
    if not args.time:
        profiled(args.url, args.operation, args.requests, args.sort, args.limit)
        return
    limit = parse_rate_limit(args.rate_limit)
    runs = [
        timed(args.url, args.operation, args.requests, limit) for _ in range(max(args.repeat, 1))
    ]
    wall, cpu = min(runs, key=lambda run: run[1])
    print(f"{args.operation}: wall {wall:.3f} ms/request, cpu {cpu:.3f} ms/request")


if __name__ == "__main__":
    main()
