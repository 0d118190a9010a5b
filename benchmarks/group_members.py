"""Group membership benchmark: does adding or removing one member cost the same in a group of
100,000 members as in a group of 100? (in-process, SQLite, server time)

Run by hand (not in CI):

    python benchmarks/group_members.py --sizes 100,10000,100000 --probes 50

It imports ``max(sizes) + 300`` users (bulk import), creates one group per size and fills it
(storage calls, one transaction per group), then times through ``ScimService.handle`` (so:
authentication, PATCH planning, the transaction and its commit, the response):
adding one member to, and removing it from, each group (Entra's shapes: ``Add path members``
with ``"$ref": null``, ``remove path members[value eq "..."]``); a ``GET`` of the largest group
with ``excludedAttributes=members`` (Entra's read); and a 256-member Okta push PATCH (added,
then removed, each timed). Medians of ``--probes`` runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scimcore import ScimService
from scimcore.messages import ScimRequest, ScimResponse
from scimcore_adapters.sql import SqlStorage

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user(i: int) -> dict[str, Any]:
    name = f"user{i:07}@contoso.com"
    return {
        "id": uuid.UUID(int=i + 1).hex,
        "userName": name,
        "displayName": f"User {i}",
        "active": True,
        "meta": {
            "resourceType": "User",
            "created": "2026-01-01T00:00:00Z",
            "lastModified": "2026-01-01T00:00:00Z",
            "version": 'W/"1"',
        },
    }


def timed_ms(call: Callable[..., Any], *args: Any) -> float:
    """The milliseconds one ``call(*args)`` takes."""
    start = time.perf_counter()
    call(*args)
    return (time.perf_counter() - start) * 1000


def median_ms(probe: Callable[[], Any], probes: int) -> float:
    times = []
    for _ in range(probes):
        start = time.perf_counter()
        probe()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,10000,100000")
    ap.add_argument("--probes", type=int, default=50)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        storage = SqlStorage(f"sqlite:///{Path(tmp) / 'groups.db'}")
        service = ScimService(storage)
        workspace = service.workspaces.create("acme", "admin@acme.example")
        token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
        spare = max(sizes)
        storage.import_users(workspace.id, [user(i) for i in range(spare + 300)])
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

        def send(method: str, path: str, body: Any = None, query: Any = None) -> ScimResponse:
            data = json.dumps(body).encode() if body is not None else b""
            request = ScimRequest(method, path, query or {}, headers, data, base_url="http://b")
            response = service.handle(request)
            assert response.status < 300, (response.status, response.body)
            return response

        groups: dict[int, str] = {}
        for size in sizes:
            gid = send("POST", "/Groups", {"displayName": f"G{size}"}).json()["id"]
            with storage.users(workspace.id) as store:
                store.add_members(gid, [user(i)["id"] for i in range(size)])
            groups[size] = gid
        outsider = user(spare)["id"]
        results: dict[str, Any] = {"sizes": sizes, "add_one_ms": {}, "remove_one_ms": {}}
        for size, gid in groups.items():
            add = {"schemas": [PATCH], "Operations": [
                {"op": "Add", "path": "members", "value": [{"$ref": None, "value": outsider}]}
            ]}  # fmt: skip
            remove = {"schemas": [PATCH], "Operations": [
                {"op": "remove", "path": f'members[value eq "{outsider}"]'}
            ]}  # fmt: skip
            adds, removes = [], []
            for _ in range(args.probes):
                adds.append(timed_ms(send, "PATCH", f"/Groups/{gid}", add))
                removes.append(timed_ms(send, "PATCH", f"/Groups/{gid}", remove))
            results["add_one_ms"][size] = round(statistics.median(adds), 3)
            results["remove_one_ms"][size] = round(statistics.median(removes), 3)
        largest = groups[max(sizes)]
        query = {"excludedAttributes": "members"}
        results["get_excluding_members_ms"] = round(
            median_ms(lambda: send("GET", f"/Groups/{largest}", query=query), args.probes), 3
        )
        small = groups[min(sizes)]
        push = [{"value": user(spare + 1 + i)["id"], "display": "x"} for i in range(256)]
        okta_add = {"schemas": [PATCH], "Operations": [
            {"op": "add", "path": "members", "value": push}
        ]}  # fmt: skip
        okta_remove = {"schemas": [PATCH], "Operations": [
            {"op": "remove", "path": "members", "value": push}
        ]}  # fmt: skip
        pushes, unpushes = [], []
        for _ in range(max(args.probes // 5, 3)):
            pushes.append(timed_ms(send, "PATCH", f"/Groups/{small}", okta_add))
            unpushes.append(timed_ms(send, "PATCH", f"/Groups/{small}", okta_remove))
        results["okta_push_256_ms"] = round(statistics.median(pushes), 3)
        results["okta_unpush_256_ms"] = round(statistics.median(unpushes), 3)
        first, last = min(sizes), max(sizes)
        results["growth_add"] = round(results["add_one_ms"][last] / results["add_one_ms"][first], 2)
        results["growth_remove"] = round(
            results["remove_one_ms"][last] / results["remove_one_ms"][first], 2
        )
        storage.close()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
