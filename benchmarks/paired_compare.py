"""Paired, finely interleaved HTTP comparison of scimcore and python-scim's scim2-server.

Run by hand (not in CI), from the repository root, in the same venv as ``http_compare.py``::

    python benchmarks/paired_compare.py --users 2000 --slices 8 --out docs/bench-paired.json

``http_compare.py`` runs every scenario of one target, then every scenario of the next: on a
shared machine whose speed drifts from one minute to the next, two runs of one build differ by
up to a third, and so do the per-run ratios. This script starts both servers (gunicorn, one
worker, four threads, as ``http_compare.py``) side by side and cuts every scenario into
``--slices`` slices of ``users / slices`` requests, run in the order A B B A A B ... so that
each slice of one server is measured next to a slice of the other, seconds apart. It prints,
per scenario, the ratio of the servers' total throughput (requests over wall time of all
their slices) and of their server CPU per request, and the spread of the ratios of
neighbouring slice pairs. Requests are those of ``../shared/bench/scimload.py`` (its
factories, checks and CPU accounting), Entra-shaped; list pages are pages of 100.
``--cpus`` restricts both servers alike to the CPUs named (see ``http_compare.py``).

``--pair A,B`` compares two other targets of ``http_compare.py``, ``--pair A,B,C`` three
(ratios are to the last: ``--pair scimcore,scimcore-base,scim2-server`` with
``SCIMCORE_BASE_ROOT`` set measures a change and what it was before against the same
peer); ``@CPUS`` after a name restricts that side alone, e.g. ``--pair scimcore,scimcore@0``:
scimcore on any CPU against scimcore kept on CPU 0 (what ``examples/gunicorn_conf.py`` does;
docs/deployment.md).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_compare as hc  # the targets and their gunicorn settings
import served

SCENARIOS = ["create", "lookup", "get", "patch", "deactivate", "list"]
PAIR = "scimcore,scim2-server"


class Side:
    """One running target: its server, its load-driver target and what it created."""

    def __init__(self, sl: Any, name: str, tmp: Path, cpus: set[int] | None) -> None:
        tmp.mkdir()
        app, token, cwd, env = hc.TARGETS[name](tmp)
        port = served.free_port()
        self.proc = hc._gunicorn(app, port, cwd, env, cpus=cpus)
        self.target = sl.Target(f"http://127.0.0.1:{port}{hc.PREFIXES[name]}", token, 30.0, False)
        self.directory = sl.Directory(f"pc{random.randrange(16**6):06x}")
        self.wall = {sc: 0.0 for sc in SCENARIOS}
        self.cpu = {sc: 0.0 for sc in SCENARIOS}
        self.requests = {sc: 0 for sc in SCENARIOS}
        self.errors = 0
        #: Per scenario, the throughput of each slice (req/s).
        self.slices: dict[str, list[float]] = {sc: [] for sc in SCENARIOS}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def _factory(sl: Any, side: Side, scenario: str, part: list[int]) -> tuple[Any, int]:
    """The request factory of one slice, and its number of requests."""
    d = side.directory
    if scenario == "create":
        return sl.create_factory(d, d.reserve(len(part))), len(part)
    if scenario == "list":
        starts = [1 + 100 * (k % max(1, len(d.known()) // 100)) for k in part]
        return sl.list_factory(starts, 100), len(starts)
    known = d.known()
    order = [known[k % len(known)] for k in part]
    factories = {
        "lookup": sl.lookup_factory,
        "get": sl.get_factory,
        "patch": sl.patch_factory,
        "deactivate": sl.deactivate_factory,
    }
    return factories[scenario](d, order), len(order)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--list-pages", type=int, default=200, help="list requests per server")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    ap.add_argument("--cpus", default=None, help="run both servers on these CPUs only: 0, 0-1")
    ap.add_argument("--pair", default=PAIR, help="two or three targets, each optionally NAME@CPUS")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    labels = args.pair.split(",")
    if len(labels) not in (2, 3) or any(lb.partition("@")[0] not in hc.TARGETS for lb in labels):
        ap.error(f"--pair takes two or three of {', '.join(hc.TARGETS)}")
    wanted = [sc for sc in SCENARIOS if sc in args.scenarios.split(",")]
    if "create" not in wanted:  # every other scenario works on the users created first
        wanted.insert(0, "create")
    sl = served.load_scimload()
    with tempfile.TemporaryDirectory() as tmp:
        sides = []
        for k, label in enumerate(labels):
            name, _, cpus = label.partition("@")
            sides.append(Side(sl, name, Path(tmp) / f"side{k}", hc.parse_cpus(cpus or args.cpus)))
        try:
            for side in sides:  # warm-up (not measured): imports, caches, first statements
                warm = sl.Directory(side.directory.prefix + "w")
                sl.run_phase(side.target, "warmup", 100, sl.lookup_miss_factory(warm), 8, 60, None)
            for scenario in wanted:
                total = args.list_pages if scenario == "list" else args.users
                indexes = list(range(total))
                random.Random(7).shuffle(indexes)
                parts = [indexes[k :: args.slices] for k in range(args.slices)]
                for k, part in enumerate(parts):
                    order = sides if k % 2 == 0 else sides[::-1]  # A B C, C B A, A B C ...
                    for side in order:
                        factory, n = _factory(sl, side, scenario, part)
                        r = sl.run_phase(
                            side.target,
                            scenario,
                            n,
                            factory,
                            args.concurrency,
                            600,
                            side.proc.pid,
                        )
                        side.wall[scenario] += r.wall_s
                        side.cpu[scenario] += r.srv_cpu_s or 0.0
                        side.requests[scenario] += n
                        side.errors += r.errors + r.bad
                        side.slices[scenario].append(n / r.wall_s)
                print(f"{scenario}: done", flush=True)
        finally:
            for side in sides:
                side.close()
    peer = sides[-1]
    head = "".join(f"{lb:>24}" for lb in labels)
    print(f"\n{'scenario':<11}{head}   ratios to {labels[-1]}: rps, cpu, slices (median)")
    report: dict[str, Any] = {
        "users": args.users,
        "slices": args.slices,
        "cpus": args.cpus,
        "pair": labels,
        "scenarios": {},
    }
    for scenario in wanted:
        rates = [m.requests[scenario] / m.wall[scenario] for m in sides]
        cpus = [m.cpu[scenario] * 1000 / m.requests[scenario] for m in sides]
        cells = "".join(f"{r:>10.0f} req/s {c:>6.2f} ms" for r, c in zip(rates, cpus, strict=True))
        ratios = []
        for side, rate, cpu in zip(sides[:-1], rates, cpus, strict=False):
            pairs = [
                a / b for a, b in zip(side.slices[scenario], peer.slices[scenario], strict=True)
            ]
            ratios.append(
                {
                    "rps": rate / rates[-1],
                    "cpu": cpus[-1] / cpu,
                    "slices": pairs,
                }
            )
        shown = "; ".join(
            f"x{r['rps']:.2f} x{r['cpu']:.2f} {min(r['slices']):.2f}-{max(r['slices']):.2f}"
            f" ({statistics.median(r['slices']):.2f})"
            for r in ratios
        )
        print(f"{scenario:<11}{cells}   {shown}")
        entry: dict[str, Any] = {
            "rps": rates,
            "cpu_ms": cpus,
            "ratio_rps": ratios[0]["rps"],
            "ratio_cpu": ratios[0]["cpu"],
            "slice_ratios": ratios[0]["slices"],
            "ratios_to_last": ratios,
        }
        if len(sides) == 3:  # the change itself: the first target over the second
            change = [
                a / b
                for a, b in zip(sides[0].slices[scenario], sides[1].slices[scenario], strict=True)
            ]
            entry["change"] = {"rps": rates[0] / rates[1], "cpu": cpus[1] / cpus[0]}
            print(
                f"{'':<11}{labels[0]} / {labels[1]}: rps x{rates[0] / rates[1]:.3f},"
                f" cpu x{cpus[1] / cpus[0]:.3f}, slices {min(change):.2f}-{max(change):.2f}"
                f" (median {statistics.median(change):.3f})"
            )
        report["scenarios"][scenario] = entry
    print("errors: " + ", ".join(f"{lb} {m.errors}" for lb, m in zip(labels, sides, strict=True)))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
