"""What delivering the activation mail costs, in process, on a SQLite file.

Run by hand (not in CI), from the repository root::

    python benchmarks/mail_delivery.py cost --mails 300 [--links]   # per delivered mail
    python benchmarks/mail_delivery.py live --creates 2000 [--no-worker]

``cost`` queues ``--mails`` activation mails (SCIM creates, not measured) and delivers them with
``deliver_pending`` through the ``.eml`` folder mailer in runs of ``--limit``, and prints per
delivered mail: process CPU (best of ``--repeat`` fresh databases), write transactions
(``BEGIN IMMEDIATE`` blocks), ``COMMIT``\\ s and ``fsync`` calls. ``--links``: with a base URL,
so each activation mail gets its single-use link (a stored write), as under
``examples/flask_server.py`` (``serve_forever`` knows its address); gunicorn without
``$SCIMCORE_BASE_URL`` sends mail without a link.

``live`` is the in-process twin of ``paired_compare.py --pair scimcore,scimcore-nomail``:
``--threads`` threads send ``--creates`` SCIM creates through ``ScimService.handle`` while the
server's ``DeliveryWorker`` (``start_delivery``) runs beside them (``--no-worker``: it does not),
and it prints creates per second, process CPU per create, delivery runs and the mails they
sent, the backlog when the last create returned and how long the worker took to drain it.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import profile_requests as pr

from scimcore.outbox import DeliveryReport, deliver_pending
from scimcore_adapters.mail import EmlFolderMailer, start_delivery
from scimcore_adapters.sql.engines import IMMEDIATE
from scimcore_adapters.sql.transactions import SqliteTransactions

LINKS = "https://scim.acme.example"


@contextmanager
def counting(bench: pr.Bench) -> Iterator[Counter[str]]:
    """Count write transactions, COMMITs and fsyncs in the block (patched on this process)."""
    counts: Counter[str] = Counter()
    tx = bench.storage.transactions
    assert isinstance(tx, SqliteTransactions)
    begin, commit_group, fsync = tx.begin, tx._commit_group, os.fsync

    def counted(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name != "write" or args[0] == IMMEDIATE:
                counts[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    tx.begin = counted("write", begin)  # type: ignore[method-assign]
    tx._commit_group = counted("commit", commit_group)  # type: ignore[method-assign]
    os.fsync = counted("fsync", fsync)
    try:
        yield counts
    finally:
        os.fsync = fsync


def cost(mails: int, limit: int, links: bool, deliver: bool = True) -> tuple[float, Counter[str]]:
    """CPU ms per delivered mail of one run on a fresh database, and the counts."""
    with tempfile.TemporaryDirectory() as tmp:
        bench = pr.Bench(f"sqlite:///{Path(tmp) / 'bench.db'}", mails)
        if bench.storage.checkpointer is not None:  # a thread of its own: not the delivery's
            bench.storage.checkpointer.stop()
        try:
            bench.create()
            mailer = EmlFolderMailer(Path(tmp) / "mail")
            runtime, storage = bench.service.runtime, bench.storage
            with counting(bench) as counts:
                sent, cpu = 0, time.process_time()
                while deliver and sent < mails:
                    report = deliver_pending(
                        storage, mailer, runtime, limit=limit, base_url=LINKS if links else None
                    )
                    assert report.ok and report.sent, report
                    sent += report.sent
                    counts["runs"] += 1
                cpu = time.process_time() - cpu
        finally:
            bench.close()
    return cpu * 1000 / mails, counts


def live(creates: int, threads: int, worker: bool, links: bool, gap: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench = pr.Bench(f"sqlite:///{Path(tmp) / 'bench.db'}", creates)
        reports: list[DeliveryReport] = []
        folder = Path(tmp) / "mail"
        delivery = None
        if worker:
            options = {"gap": gap} if "gap" in inspect.signature(start_delivery).parameters else {}
            delivery = start_delivery(
                bench.service, EmlFolderMailer(folder), base_url=LINKS if links else None, **options
            )
            delivery.on_report = reports.append
        numbers = iter(range(creates))
        lock = threading.Lock()

        def client() -> None:
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                bench.send("POST", "/Users", pr.user_body(n))

        pool = [threading.Thread(target=client) for _ in range(threads)]
        wall, cpu = time.perf_counter(), time.process_time()
        start_cpu = cpu
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        sent_during = sum(r.sent for r in reports)
        runs_during = len([r for r in reports if r.sent])
        drained = time.perf_counter()
        while delivery is not None and sum(r.sent for r in reports) < creates:
            delivery.wake()
            time.sleep(0.01)
        drained = time.perf_counter() - drained
        total = time.process_time() - start_cpu
        if delivery is not None:
            delivery.stop()
        bench.close()
    print(
        f"{creates / wall:.0f} creates/s, {cpu * 1000 / creates:.3f} ms CPU per create; "
        f"{sent_during} mails sent in {runs_during} runs while creating "
        f"({sent_during / max(runs_during, 1):.1f} a run), backlog {creates - sent_during}, "
        f"drained in {drained:.2f} s; {total * 1000 / creates:.3f} ms CPU per create and its mail"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("cost", "live"))
    ap.add_argument("--mails", type=int, default=300)
    ap.add_argument("--limit", type=int, default=100, help="mails per delivery run")
    ap.add_argument("--links", action="store_true", help="activation links (a base URL)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--creates", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--no-worker", action="store_true")
    ap.add_argument("--no-deliver", action="store_true", help="cost: queue only (callgrind base)")
    ap.add_argument("--gap", type=float, default=0.1, help="the worker's gap (s), if it has one")
    args = ap.parse_args()
    if args.mode == "live":
        live(args.creates, args.threads, not args.no_worker, args.links, args.gap)
        return
    runs = [
        cost(args.mails, args.limit, args.links, not args.no_deliver) for _ in range(args.repeat)
    ]
    cpu, counts = min(runs, key=lambda run: run[0])
    per = ", ".join(f"{counts[k] / args.mails:.2f} {k}" for k in ("write", "commit", "fsync"))
    print(f"{cpu:.3f} ms CPU per delivered mail; per mail: {per}; {counts['runs']} runs")


if __name__ == "__main__":
    main()
