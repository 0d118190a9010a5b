"""Team Cards at scale: does the console's people page answer in under 100 ms at 100,000 people?

Run by hand (not in CI):

    python benchmarks/team_cards.py --people 100000 [--db /tmp/team_cards.db]

Fills a fresh SQLite file with ``--people`` people and their cards in one transaction through
the storage (``save_person``; no SCIM requests), their SCIM users (``import_users``) and groups
(issue #19): 20 department groups (every person in one, 1/20 of the people each) and a "Leads"
group of 1/100 of them, then times ``Product.people`` (what the console's page calls, without
HTTP; every page shows each person's groups): the first page, a search that matches about 1/26
of the people, a search that matches one person, the first page of the active people, the last
page, and the first and last pages of a department group and the first page of "Leads".
Medians of ``--probes`` runs (wall) and the cheapest run's process CPU time, in ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from scimcore import ScimService
from scimcore.cards import new_card
from scimcore.storage import Person
from scimcore_adapters.sql import SqlStorage

FIRST = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon", "kim", "lea"]
LAST = ["lee", "ng", "smith", "jones", "brown", "garcia", "miller", "davis", "lopez", "wu"]


def person(n: int, rng: random.Random, at: datetime) -> Person:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    user_name = f"{first}.{last}.{n}@acme.example"
    card = new_card(
        {
            "name": f"{first.title()} {last.title()}",
            "email": user_name,
            "job_title": "Engineer",
            "department": rng.choice(["Sales", "Marketing", "R&D"]),
        }
    )
    return Person(
        id=f"{n:032x}",
        user_name=user_name,
        email=user_name,
        active=n % 10 != 0,
        deprovisioned=n % 50 == 0,
        card=card.to_dict(),
        created_at=at + timedelta(seconds=n),
        updated_at=at + timedelta(seconds=n),
    )


def fill(service: ScimService, storage: SqlStorage, slug: str, count: int) -> float:
    """Seconds to store ``count`` people, their users and their groups."""
    rng = random.Random(17)
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    people = [person(n, rng, at) for n in range(1, count + 1)]
    workspace = service.workspaces.get(slug)
    started = time.perf_counter()
    with service.storage.users(workspace.id) as store:
        for p in people:
            store.save_person(p)
    meta = {"resourceType": "User", "version": 'W/"1"'}
    storage.import_users(
        workspace.id, [{"id": p.id, "userName": p.user_name, "meta": meta} for p in people]
    )
    with service.storage.users(workspace.id) as store:
        for name, members in groups(people).items():
            store.insert_group({"id": name, "displayName": name, "meta": meta})
            store.add_members(name, members)
    return time.perf_counter() - started


def groups(people: list[Person]) -> dict[str, list[str]]:
    """The groups' names (their ids too) and members: a department each, and the leads."""
    out: dict[str, list[str]] = {f"dept-{d:02d}": [] for d in range(20)}
    out["leads"] = []
    for n, p in enumerate(people, 1):
        out[f"dept-{n % 20:02d}"].append(p.id)
        if n % 100 == 7:
            out["leads"].append(p.id)
    return out


def median_ms(probe: Callable[[], object], probes: int) -> tuple[float, float]:
    """The median wall time of ``probes`` runs and the cheapest process CPU time, in ms (CPU
    time is the steadier figure on a shared machine)."""
    probe()  # warm the statement caches and the file's pages
    times, cpus = [], []
    for _ in range(probes):
        started, cpu = time.perf_counter(), time.process_time()
        probe()
        times.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(times), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000, help="how many people to store")
    parser.add_argument("--probes", type=int, default=15, help="timed runs of each page")
    parser.add_argument("--db", type=Path, help="the SQLite file (default: a temporary one)")
    args = parser.parse_args()
    path = args.db or Path(tempfile.mkdtemp()) / "team_cards.db"
    if path.exists():
        raise SystemExit(f"{path} exists: give a new file")
    storage = SqlStorage(f"sqlite:///{path}")
    try:
        service = ScimService(storage)
        service.workspaces.create("acme", "admin@acme.example")
        seconds = fill(service, storage, "acme", args.people)
        print(f"stored {args.people} people, users and groups in {seconds:.1f} s ({path})")
        p = service.product
        total = p.people("acme", limit=50).total
        last = max(0, (total - 1) // 50 * 50)
        dept = p.people("acme", group="dept-03").total
        dept_last = max(0, (dept - 1) // 50 * 50)
        pages: dict[str, Callable[[], object]] = {
            "first page": lambda: p.people("acme"),
            "search 'kim' (1/12 of names)": lambda: p.people("acme", search="kim"),
            "search one e-mail": lambda: p.people("acme", search=f"x{args.people // 2}"),
            "search 'ann.lee.4'": lambda: p.people("acme", search="ann.lee.4"),
            "active, first page": lambda: p.people("acme", state="active"),
            "last page": lambda: p.people("acme", offset=last),
            "active, last page": lambda: p.people(
                "acme", state="active", offset=max(0, int(total * 0.88) // 50 * 50)
            ),
            f"group ({dept}), first page": lambda: p.people("acme", group="dept-03"),
            f"group ({dept}), last page": lambda: p.people(
                "acme", group="dept-03", offset=dept_last
            ),
            "group 'leads', first page": lambda: p.people("acme", group="leads"),
            "group, search 'kim'": lambda: p.people("acme", group="dept-03", search="kim"),
        }
        print(f"{'':<32} {'wall':>7}    {'CPU':>7}")
        for name, probe in pages.items():
            wall, cpu = median_ms(probe, args.probes)
            print(f"{name:<32} {wall:7.1f} ms {cpu:7.1f} ms")
    finally:
        storage.close()


if __name__ == "__main__":
    main()
