"""A soak: minutes of Entra-shaped provisioning against a server started as a user starts one.

Run by hand (not in CI), from the repository root, in a venv with ``.[test]`` (gunicorn)::

    python benchmarks/soak.py                        # 10 minutes, gunicorn_conf.py on SQLite
    python benchmarks/soak.py --minutes 2 --rate 50
    python benchmarks/soak.py --server example       # python examples/flask_server.py
    python benchmarks/soak.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
    python benchmarks/soak.py --url http://host:8000/scim/v2 --token T [--server-pid PID]

By default it starts ``gunicorn -c examples/gunicorn_conf.py 'examples.flask_server:create_app()'``
on a new SQLite file, with a workspace and token made by the ``scimcore`` CLI (activation
e-mail on, so every create also queues a mail that the server's delivery thread writes out).
``--concurrency`` clients then provision users the way Microsoft Entra ID does (the requests of
``../shared/bench/scimload.py``): look the user up (a miss), create, look up, PATCH title and
mobile phone, GET, add to one of a few groups, deactivate with ``"False"``; every fourth user
is then deleted and every twentieth cycle reads a list page of 100. Requests start at
``--rate`` per second in all (default 100: four times the 25 per second per tenant that
Entra's gallery asks a server to take, below the default rate limit of 200), or as fast as
the server answers with ``--rate 0``.

Each minute it prints a row of a markdown table (for docs/performance.md): requests, errors
by status, p50/p99/max latency, the server's RSS (summed over its worker processes, from
``/proc``), and the CPU time its workers used and spent waiting for a CPU that another process
had, summed over its threads (high on a busy machine: then the latencies say more about the
machine than about the server). At the end, a line judging drift (RSS growth from the first
minute to the last, the trend of p99) and the slowest answers. It exits 1 if any answer was a
5xx or no answer at all.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import served

SL = served.load_scimload()
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
#: ``send(method, path, body)`` -> (status, decoded JSON body or None).
Send = Callable[[str, str, Any], tuple[int, Any]]
ID = re.compile(r"[0-9a-f]{32}")


def entra_cycle(send: Send, prefix: str, i: int, groups: list[str]) -> str | None:
    """One user's provisioning as Entra sends it; returns the user's id while it exists."""
    name = SL.user_name(prefix, i)
    lookup = "/Users?" + SL.filter_query(name)
    send("GET", lookup, None)  # Entra looks a user up before it creates one: a miss
    status, doc = send("POST", "/Users", SL.entra_user(prefix, i))
    if status != 201 or not isinstance(doc, dict):
        return None
    uid = str(doc["id"])
    send("GET", lookup, None)
    send("PATCH", f"/Users/{uid}", SL.entra_patch(i))
    send("GET", f"/Users/{uid}", None)
    if groups:
        add = {"op": "Add", "path": "members", "value": [{"value": uid}]}
        send("PATCH", f"/Groups/{groups[i % len(groups)]}", patch_body(add))
    send("PATCH", f"/Users/{uid}", SL.entra_deactivate())
    if i % 20 == 0:
        send("GET", "/Users?startIndex=1&count=100", None)
    if i % 4 == 3:
        send("DELETE", f"/Users/{uid}", None)
        return None
    return uid


def patch_body(*operations: dict[str, Any]) -> dict[str, Any]:
    """A SCIM PatchOp message of ``operations``."""
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def make_groups(send: Send, prefix: str, n: int) -> list[str]:
    """``n`` groups, created as Entra creates them (no members yet); their ids."""
    ids = []
    for k in range(n):
        body = {"schemas": [GROUP], "displayName": f"{prefix} group {k}", "members": []}
        status, doc = send("POST", "/Groups", body)
        if status == 201 and isinstance(doc, dict):
            ids.append(str(doc["id"]))
    return ids


class Pacer:
    """Hands out start times ``1 / rate`` apart (``rate`` 0: no pacing). A client that falls
    behind is not caught up in a burst: the next slot is never earlier than now."""

    def __init__(self, rate: float, stop: threading.Event) -> None:
        self.rate, self.stop = rate, stop
        self.lock = threading.Lock()
        self.next = time.perf_counter()

    def wait(self) -> bool:
        """Wait for the next slot; False once the run is over."""
        if self.rate > 0:
            with self.lock:
                slot = max(self.next, time.perf_counter())
                self.next = slot + 1 / self.rate
            self.stop.wait(max(0.0, slot - time.perf_counter()))
        return not self.stop.is_set()


class Recorder:
    """Latency and status of every answer, by the interval it ended in."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.t0 = time.perf_counter()
        self.lock = threading.Lock()
        self.buckets: dict[int, list[tuple[float, int]]] = {}
        #: The slowest answers: (ms, "METHOD /path -> status", seconds into the run).
        self.slowest: list[tuple[float, str, float]] = []

    def add(self, ms: float, status: int, what: str) -> None:
        elapsed = time.perf_counter() - self.t0
        k = int(elapsed // self.interval)
        with self.lock:
            self.buckets.setdefault(k, []).append((ms, status))
            if len(self.slowest) < 5 or ms > self.slowest[0][0]:
                heapq.heappush(self.slowest, (ms, f"{what} -> {status}", elapsed))
                if len(self.slowest) > 5:
                    heapq.heappop(self.slowest)

    def take(self, k: int) -> list[tuple[float, int]]:
        with self.lock:
            return self.buckets.pop(k, [])


class Stopped(Exception):
    """The run is over: a client's loop ends."""


def sender(client: Any, recorder: Recorder, pacer: Pacer) -> Send:
    """A :data:`Send` on one keep-alive connection, paced and recorded."""

    def send(method: str, path: str, body: Any) -> tuple[int, Any]:
        if not pacer.wait():
            raise Stopped
        data = None if body is None else json.dumps(body).encode()
        t = time.perf_counter()
        status, raw = client.request(method, path, data)
        what = f"{method} {ID.sub('{id}', path.split('?')[0])}"
        recorder.add((time.perf_counter() - t) * 1000, status, what)
        return status, SL.jload(raw) if raw else None

    return send


def errors_by_status(rows: list[tuple[float, int]]) -> str:
    """``0`` or e.g. ``429 (3), 500 (1)`` (status 0: no answer)."""
    bad = Counter(s for _, s in rows if not 200 <= s < 300)
    return ", ".join(f"{s} ({n:,})" for s, n in sorted(bad.items())) or "0"


def db_mib(db: Path | None) -> float | None:
    """The size of a SQLite database and its WAL (MiB); ``None`` when not known."""
    if db is None:
        return None
    files = (db, db.with_name(db.name + "-wal"))
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def minute_row(
    label: str,
    rows: list[tuple[float, int]],
    rss: int,
    sched: tuple[float, float],
    note: str,
    db: float | None = None,
) -> dict[str, Any]:
    lat = sorted(ms for ms, _ in rows)
    return {
        "db_mib": db,
        "cpu_s": sched[0],
        "wait_s": sched[1],
        "label": label,
        "requests": len(rows),
        "errors": errors_by_status(rows),
        "p50": SL.pct(lat, 50) if lat else 0.0,
        "p99": SL.pct(lat, 99) if lat else 0.0,
        "max": lat[-1] if lat else 0.0,
        "rss_mib": rss / 2**20,
        "note": note,
    }


def print_row(r: dict[str, Any], seconds: float) -> None:
    print(
        f"| {r['label']} | {r['requests']:,} | {r['requests'] / seconds:.1f} | {r['errors']} "
        f"| {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.0f} | {r['rss_mib']:.1f}{r['note']} "
        f"| {r['cpu_s']:.1f} / {r['wait_s']:.1f} "
        f"| {'-' if r['db_mib'] is None else format(r['db_mib'], '.1f')} |",
        flush=True,
    )


#: What SQLite's page caches may hold in one worker (scimcore_adapters.sql.engines): 32 MiB on
#: the writer connection, 2 MiB (SQLite's default) on the connection each thread keeps: four
#: request threads (gunicorn_conf.py), the mail delivery and the checkpoint threads.
SQLITE_CACHES_MIB = 32 + 6 * 2


def _cpu_ms(row: dict[str, Any]) -> float:
    """The server's CPU time per request in ``row`` (ms): the figure a busy machine moves least."""
    return float(row["cpu_s"]) * 1000 / max(int(row["requests"]), 1)


def drift(rows: list[dict[str, Any]], unit: str) -> str:
    """One line: RSS first -> last, the p99 trend (least squares), CPU per request, a verdict.

    Drift is RSS growing by more than 10 %, or p99's trend adding more than half its median
    while the server's CPU per request grew too (p99 alone also moves with the machine's load:
    then the server's waits for a CPU grew, its CPU per request did not)."""
    if len(rows) < 2:
        return f"Drift: one {unit} only, nothing to compare."
    first, last = rows[0], rows[-1]
    growth = (last["rss_mib"] / first["rss_mib"] - 1) * 100 if first["rss_mib"] else 0.0
    p99 = [r["p99"] for r in rows]
    slope = statistics.linear_regression(range(len(p99)), p99).slope
    median = statistics.median(p99)
    cpu = (_cpu_ms(first), _cpu_ms(last))
    cpu_flat = cpu[1] <= 1.15 * cpu[0]
    grew = last["rss_mib"] - first["rss_mib"]
    if growth > 10 and grew <= SQLITE_CACHES_MIB and last["db_mib"] is not None:
        verdict = (
            f"memory grows, {grew:.0f} MiB while the database grew "
            f"{last['db_mib'] - first['db_mib']:.0f} MiB: SQLite's page caches fill with it, "
            f"up to {SQLITE_CACHES_MIB} MiB a worker; a longer run shows whether RSS levels off"
        )
    elif growth > 10:
        verdict = "DRIFT: memory grows, look closer"
    elif slope * (len(p99) - 1) <= 0.5 * median:
        verdict = "no drift"
    elif cpu_flat:
        verdict = (
            "no drift in the server: p99 rose with the machine's load (waits for a CPU "
            f"{first['wait_s']:.0f} → {last['wait_s']:.0f} s) while its CPU per request stayed flat"
        )
    else:
        verdict = "DRIFT: latency and CPU per request grow, look closer"
    return (
        f"Drift: RSS {first['rss_mib']:.1f} → {last['rss_mib']:.1f} MiB ({growth:+.1f} %) "
        f"from the first {unit} to the last; p99 {p99[0]:.1f} → {p99[-1]:.1f} ms "
        f"(trend {slope:+.2f} ms per {unit}, median {median:.1f} ms); server CPU per request "
        f"{cpu[0]:.2f} → {cpu[1]:.2f} ms: {verdict}."
    )


def run(
    args: argparse.Namespace,
    base: str,
    token: str,
    pid: int | None,
    what: str,
    db: Path | None = None,
) -> int:
    stop = threading.Event()
    recorder = Recorder(args.interval)
    pacer = Pacer(args.rate, stop)
    target = SL.Target(base, token, 30.0, False)
    prefix = f"soak{uuid.uuid4().hex[:6]}"
    counter = iter(range(10**9))
    setup = SL.Client(target)
    groups = make_groups(sender(setup, Recorder(60), Pacer(0, stop)), prefix, args.groups)
    setup.close()

    def worker() -> None:
        client = SL.Client(target)
        send = sender(client, recorder, pacer)
        try:
            while not stop.is_set():
                entra_cycle(send, prefix, next(counter), groups)
        except Stopped:
            pass
        finally:
            client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    recorder.t0 = time.perf_counter()
    for t in threads:
        t.start()
    unit = "minute" if args.interval == 60 else f"interval ({args.interval:g} s)"
    print(
        f"Soak: {what}; {args.concurrency} clients, rate {args.rate or 'unpaced'} req/s, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"\n| {unit} | requests | req/s | errors (by status) | p50 ms | p99 ms | max ms "
        "| server RSS MiB | server CPU s / waited for a CPU s | database MiB |"
    )
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|", flush=True)
    rows, five, workers = [], 0, served.worker_pids(pid) if pid else []
    last = served.sched_seconds(workers)
    for k in range(args.minutes * 60 // args.interval):
        stop.wait(max(0.0, recorder.t0 + (k + 1) * args.interval - time.perf_counter()))
        now_workers = served.worker_pids(pid) if pid else []
        note = " (workers restarted)" if now_workers != workers else ""
        workers = now_workers
        taken = recorder.take(k)
        five += sum(1 for _, s in taken if s >= 500 or s == 0)
        now = served.sched_seconds(workers)
        sched = (max(0.0, now[0] - last[0]), max(0.0, now[1] - last[1]))
        last = now
        rss = served.rss_bytes(workers)
        row = minute_row(str(k + 1), taken, rss, sched, note, db_mib(db))
        rows.append(row)
        print_row(row, args.interval)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    print(f"\n{drift(rows, 'minute' if args.interval == 60 else 'interval')}")
    print(
        "Slowest answers: "
        + "; ".join(
            f"{ms:,.0f} ms {label} at {at:.0f} s"
            for ms, label, at in sorted(recorder.slowest)[::-1]
        )
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"what": what, "rows": rows}, indent=1))
    return 1 if five else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    ap.add_argument("--minutes", type=int, default=10, help="how long (default 10)")
    ap.add_argument("--rate", type=float, default=100, help="requests/s in all (0: unpaced)")
    ap.add_argument("--concurrency", type=int, default=8, help="clients (default 8)")
    ap.add_argument("--groups", type=int, default=5, help="groups users are added to")
    ap.add_argument("--server", choices=["gunicorn", "example"], default="gunicorn")
    ap.add_argument("--database-url", default=None, help="default: a new SQLite file")
    ap.add_argument("--url", default=None, help="a running server's SCIM root instead")
    ap.add_argument("--token", default=None, help="its bearer token (with --url)")
    ap.add_argument("--server-pid", type=int, default=None, help="its pid, for RSS (with --url)")
    ap.add_argument("--interval", type=int, default=60, help="seconds per row (default 60)")
    ap.add_argument("--json-out", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    if args.url:
        if not args.token:
            ap.error("--url needs --token")
        return run(args, args.url, args.token, args.server_pid, f"{args.url} (already running)")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = args.database_url or f"sqlite:///{tmp / 'soak.db'}"
        if args.server == "gunicorn":
            token = served.new_workspace(url, f"soak-{uuid.uuid4().hex[:8]}")
            server = served.start_gunicorn(url, tmp)
            what = "gunicorn -c examples/gunicorn_conf.py"
        else:
            server = served.start_example(url, tmp)
            token, what = server.token, "python examples/flask_server.py"
        stack.callback(server.stop)
        engine = url.split(":", 1)[0].split("+")[0]
        db = None if args.database_url else tmp / "soak.db"
        return run(args, server.base, token, server.pid, f"{what} on {engine}", db)


if __name__ == "__main__":
    raise SystemExit(main())
