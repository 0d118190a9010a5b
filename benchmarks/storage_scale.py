"""In-process storage benchmark: does a lookup or a first page cost the same at 1M users as at 1k?

Run by hand (not in CI):

    python benchmarks/storage_scale.py --sizes 1000,10000,100000,1000000 \
        --engines sqlite,postgresql --out docs/bench-storage.json

For each engine the directory grows to each size in turn (bulk import, Entra-shaped users), and
at each size the script times, through the same ``SqlStorage.users(...).query`` call the SCIM
service makes: lookups by ``userName eq``, ``externalId eq`` and
``emails[type eq "work"].value eq`` (hits), a userName miss, the first list page of 100, a
middle page of 100 (``startIndex`` = size / 2), and the first page sorted by ``userName``.
Medians of ``--probes`` runs each, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from scimcore.filters import compile_filter
from scimcore.schema import default_registry
from scimcore.storage import SortSpec, Workspace
from scimcore_adapters.sql import SqlStorage

REGISTRY = default_registry()
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PG_URL = os.environ.get(
    "SCIMCORE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/test"
)


def doc(i: int) -> dict[str, Any]:
    name = f"user{i:07}@contoso.com"
    stamp = f"2026-01-01T00:00:00.{i % 1000:03}Z"
    return {
        "id": uuid.UUID(int=i + 1).hex,
        "userName": name,
        "externalId": f"ext{i:07}",
        "displayName": f"User {i}",
        "active": True,
        "name": {"givenName": "User", "familyName": f"N{i}"},
        "title": "Engineer",
        "emails": [{"type": "work", "value": name, "primary": True}],
        "phoneNumbers": [{"type": "work", "value": f"+1 555 {i:07}"}],
        ENT: {"department": ["Sales", "R&D", "Ops"][i % 3]},
        "meta": {
            "resourceType": "User",
            "created": stamp,
            "lastModified": stamp,
            "version": 'W/"1"',
        },
    }


def timed(fn: Callable[[], object], probes: int) -> float:
    samples = []
    for _ in range(probes):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(samples), 3)


def measure(storage: SqlStorage, ws: str, size: int, probes: int) -> dict[str, float]:
    rng = random.Random(size)

    def lookup(expr: Callable[[int], str]) -> Callable[[], object]:
        def go() -> object:
            i = rng.randrange(size)
            f = compile_filter(expr(i), REGISTRY)
            with storage.users(ws) as store:
                page = store.query(f, None, 1, 100)
            assert page.total == 1, expr(i)
            return page

        return go

    def miss() -> object:
        f = compile_filter(f'userName eq "{uuid.uuid4()}"', REGISTRY)
        with storage.users(ws) as store:
            return store.query(f, None, 1, 100)

    def page(start: int, sort: SortSpec | None = None) -> Callable[[], object]:
        def go() -> object:
            with storage.users(ws) as store:
                p = store.query(None, sort, start, 100)
            assert len(p.documents) == min(100, size - start + 1)
            return p

        return go

    return {
        "userName eq": timed(lookup(lambda i: f'userName eq "USER{i:07}@contoso.com"'), probes),
        "externalId eq": timed(lookup(lambda i: f'externalId eq "ext{i:07}"'), probes),
        "email valuePath": timed(
            lookup(lambda i: f'emails[type eq "work"].value eq "user{i:07}@contoso.com"'), probes
        ),
        "userName miss": timed(miss, probes),
        "first page": timed(page(1), probes),
        "middle page": timed(page(size // 2), probes),
        "first page by userName": timed(page(1, SortSpec(("userName",))), probes),
    }


def open_storage(engine: str, tmp: Path) -> tuple[SqlStorage, Callable[[], None]]:
    if engine == "sqlite":
        storage = SqlStorage(f"sqlite:///{tmp / 'scale.db'}")
        return storage, storage.close
    schema = f"scimcore_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    storage = SqlStorage(url.render_as_string(hide_password=False))

    def drop() -> None:
        storage.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()

    return storage, drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, list[dict[str, Any]]] = {}
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            storage, close = open_storage(engine, Path(tmp))
            try:
                ws = Workspace("bench-ws", "bench", time_now())
                storage.create_workspace(ws)
                loaded = 0
                rows = []
                for size in sizes:
                    t0 = time.perf_counter()
                    while loaded < size:
                        n = min(args.batch, size - loaded)
                        storage.import_users(ws.id, [doc(i) for i in range(loaded, loaded + n)])
                        loaded += n
                    load_s = time.perf_counter() - t0
                    if engine == "postgresql":  # what autovacuum does soon after a bulk load
                        with storage.engine.connect() as conn:
                            conn.exec_driver_sql("ANALYZE")
                            conn.commit()
                    row = {
                        "size": size,
                        "load_s": round(load_s, 1),
                        **measure(storage, ws.id, size, args.probes),
                    }
                    rows.append(row)
                    print(engine, json.dumps(row), flush=True)
                results[engine] = rows
            finally:
                close()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


def time_now() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


if __name__ == "__main__":
    main()
