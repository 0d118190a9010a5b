"""SQLite ``synchronous=FULL`` against ``NORMAL`` under the group commit, paired.

Run by hand (not in CI), from the repository root::

    python benchmarks/sqlite_sync.py --threads 4 --creates 150 --slices 6

Each slice creates ``--threads`` x ``--creates`` Entra-shaped users in-process
(:class:`profile_requests.Bench`: ``ScimService.handle`` on a fresh SQLite file in ``--dir``,
which must be on the disk the server would use, not a tmpfs), ``--threads`` threads at once,
once with each setting, in the order A B B A ... so that the machine's drift lands on both.
It prints, per setting, the median creates per second and server CPU per create, and the
ratios FULL / NORMAL.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_requests as pr

from scimcore import ScimService
from scimcore_adapters.sql import SqlStorage

SETTINGS = ("NORMAL", "FULL")


def one_slice(directory: str, synchronous: str, threads: int, creates: int) -> tuple[float, float]:
    """Creates per second and CPU milliseconds per create of one run on a fresh file."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        url = f"sqlite:///{Path(tmp) / 'sync.db'}"
        bench = pr.Bench(url, 0)  # the workspace and its token, then the setting measured
        bench.storage.close()
        bench.storage = SqlStorage(url, synchronous=synchronous)
        bench.service = ScimService(bench.storage)

        def work(offset: int) -> None:
            for n in range(creates):
                bench.send("POST", "/Users", pr.user_body(offset * creates + n))

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        wall, cpu = time.perf_counter(), time.process_time()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        bench.close()
    total = threads * creates
    return total / wall, cpu * 1000 / total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--creates", type=int, default=150, help="creates per thread per slice")
    parser.add_argument("--slices", type=int, default=6, help="slices per setting")
    parser.add_argument("--dir", default=".", help="where the database files go (a real disk)")
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {s: [] for s in SETTINGS}
    for i in range(args.slices):
        order = SETTINGS if i % 2 == 0 else SETTINGS[::-1]
        for setting in order:
            results[setting].append(one_slice(args.dir, setting, args.threads, args.creates))
    medians = {
        s: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        for s, runs in results.items()
    }
    for s, (rate, cpu) in medians.items():
        print(f"{s:6}: {rate:7.0f} creates/s, {cpu:.3f} ms CPU per create")
    rate_ratio = medians["FULL"][0] / medians["NORMAL"][0]
    cpu_ratio = medians["FULL"][1] / medians["NORMAL"][1]
    print(f"FULL / NORMAL: throughput {rate_ratio:.3f}, CPU per create {cpu_ratio:.3f}")


if __name__ == "__main__":
    main()
