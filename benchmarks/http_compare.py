"""Side-by-side HTTP benchmark: scimcore vs python-scim's scim2-server vs a bare Flask ceiling.

Run by hand (not in CI), from the repository root, in a venv that has gunicorn, scim2-server
0.8.3 and scimcore installed (see docs/performance.md):

    python benchmarks/http_compare.py --users 2000 --rounds 2 --out docs/bench-http.json

Every target runs under the same gunicorn settings (1 worker, gthread, 4 threads) and is driven
by ../shared/bench/scimload.py with --server-pid, so the figure that matters, server CPU time per
request, is measured per target. Targets are interleaved A B C C B A to spread the noise of a
shared machine; the summary quotes medians per scenario and the ratios to scim2-server.

``--cpus 0`` runs every server on the CPUs named (``0``, ``0,1``, ``0-1``): the processes of
each target, all alike, are restricted to them (``os.sched_setaffinity``, as ``taskset`` does).
One CPU for a one-worker server is what ``examples/gunicorn_conf.py`` does in production
(docs/deployment.md); without ``--cpus`` the servers run where the kernel puts them.

``scimcore-pg`` is scimcore on PostgreSQL (``SCIMCORE_BENCH_POSTGRES_URL``, by default the
test database on 127.0.0.1), each run in a new workspace.

``scimcore-base`` is scimcore as another checkout builds it (``SCIMCORE_BASE_ROOT``, e.g. a
``git worktree add`` of the previous main): a change measured against what it changes.
``scimcore-quiet`` is scimcore without the background mail delivery and the rate limit (which
the server did not have before session 15). ``scimcore-nomail`` is scimcore without the
background mail delivery alone (mail is queued, not sent): paired with ``scimcore`` it
isolates the delivery worker's cost.

``--targets scimcore,scimcore-2w`` adds scimcore under two gunicorn workers sharing its SQLite
file: not a like-for-like comparison, but how scimcore scales out over processes (scim2-server
keeps its state in one process's memory, so it cannot).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import served  # the CLI's workspaces, ports, where scimload lives

ROOT = Path(__file__).resolve().parents[1]
BENCH = served.scimload_dir()
SCENARIOS = ["create", "lookup", "get", "patch", "deactivate", "list"]


def parse_cpus(text: str | None) -> set[int] | None:
    """``"0"``, ``"0,1"`` or ``"0-3"`` as a set of CPU numbers (``None``: no restriction)."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def _gunicorn(
    app: str,
    port: int,
    cwd: Path,
    env: dict[str, str],
    workers: int = 1,
    cpus: set[int] | None = None,
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
        "-k",
        "gthread",
        "--threads",
        "4",
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app,
    ]
    pin = None if cpus is None else lambda: os.sched_setaffinity(0, cpus)  # its workers inherit it
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, preexec_fn=pin)
    served.wait_port(port, proc)
    return proc


def _scimcore(tmp: Path) -> tuple[str, str, Path, dict[str, str]]:
    return _scimcore_on(f"sqlite:///{tmp / 'bench.db'}")


def _scimcore_quiet(tmp: Path) -> tuple[str, str, Path, dict[str, str]]:
    """scimcore doing what ``scimcore-base`` (the build before the mail worker and the rate
    limit) did: no background mail delivery in the server process, no rate limit; so that a
    paired run against it measures the code's structure, not the work added since."""
    _, token, cwd, env = _scimcore(tmp)
    env["SCIMCORE_RATE_LIMIT"] = "off"
    return "examples.flask_server:create_app(deliver_mail=False)", token, cwd, env


def _scimcore_nomail(tmp: Path) -> tuple[str, str, Path, dict[str, str]]:
    """scimcore exactly as ``scimcore`` but with no background mail delivery in the server
    process (creates still queue their mail): the pair ``scimcore,scimcore-nomail`` measures
    what the delivery worker costs the requests, and nothing else."""
    _, token, cwd, env = _scimcore(tmp)
    return "examples.flask_server:create_app(deliver_mail=False)", token, cwd, env


def _scimcore_pg(tmp: Path) -> tuple[str, str, Path, dict[str, str]]:
    """scimcore on PostgreSQL (``SCIMCORE_BENCH_POSTGRES_URL``, default the test database),
    in a workspace of its own: the database outlives the run."""
    url = os.environ.get("SCIMCORE_BENCH_POSTGRES_URL", POSTGRES_URL)
    return _scimcore_on(url, f"bench-{tmp.name.lower().replace('_', '-')}-{os.getpid()}")


def _scimcore_base(tmp: Path) -> tuple[str, str, Path, dict[str, str]]:
    """scimcore as built by another checkout (``SCIMCORE_BASE_ROOT``, e.g. a ``git worktree``
    of the previous main): its ``src/`` goes first on ``PYTHONPATH``, for the server and for the
    CLI that makes its workspace, so each side runs its own code on its own schema."""
    base = Path(os.environ["SCIMCORE_BASE_ROOT"]).resolve()
    return _scimcore_on(f"sqlite:///{tmp / 'bench.db'}", root=base)


def _scimcore_on(
    url: str, slug: str = "bench", root: Path = ROOT
) -> tuple[str, str, Path, dict[str, str]]:
    env = {**os.environ, "SCIMCORE_DATABASE_URL": url}
    if root != ROOT:  # another checkout: its code first, for the CLI and the server
        paths = [str(root / "src"), str(root), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    token = served.new_workspace(url, slug, env=env)
    return "examples.flask_server:create_app()", token, root, env


def _peer(tmp: Path) -> tuple[str, str, Path, dict[str, str]]:
    return "peer_scim2:wsgi_app", "bench-token", BENCH / "apps", dict(os.environ)


def _ceiling(tmp: Path) -> tuple[str, str, Path, dict[str, str]]:
    return "ceiling_flask:app", "bench-token", BENCH / "apps", dict(os.environ)


def _floor(tmp: Path) -> tuple[str, str, Path, dict[str, str]]:
    return "floor_wsgi:app", "bench-token", ROOT / "benchmarks" / "apps", dict(os.environ)


POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

TARGETS = {
    "scimcore": _scimcore,
    "scimcore-pg": _scimcore_pg,
    "scimcore-base": _scimcore_base,
    "scimcore-quiet": _scimcore_quiet,
    "scimcore-nomail": _scimcore_nomail,
    "scim2-server": _peer,
    "ceiling-flask": _ceiling,
    "scimcore-2w": _scimcore,
    "floor-wsgi": _floor,
}
PREFIXES = {
    "scimcore": "/scim/v2",
    "scimcore-pg": "/scim/v2",
    "scimcore-base": "/scim/v2",
    "scimcore-quiet": "/scim/v2",
    "scimcore-nomail": "/scim/v2",
    "scim2-server": "",
    "ceiling-flask": "/v2",
    "scimcore-2w": "/scim/v2",
    "floor-wsgi": "/v2",
}
#: Gunicorn workers per target. "scimcore-2w" is not a like-for-like comparison: it shows
#: scimcore scaling out over processes sharing its database (an in-memory server cannot).
WORKERS = {"scimcore-2w": 2}


def run_one(
    name: str, users: int, concurrency: int, cpus: set[int] | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        app, token, cwd, env = TARGETS[name](Path(tmp))
        port = served.free_port()
        proc = _gunicorn(app, port, cwd, env, WORKERS.get(name, 1), cpus)
        try:
            out = Path(tmp) / "out.json"
            subprocess.run(
                [
                    sys.executable,
                    str(BENCH / "scimload.py"),
                    f"http://127.0.0.1:{port}{PREFIXES[name]}",
                    token,
                    "--users",
                    str(users),
                    "--concurrency",
                    str(concurrency),
                    "--server-pid",
                    str(proc.pid),
                    "--json-out",
                    str(out),
                    "--label",
                    name,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            result: dict[str, Any] = json.loads(out.read_text())
            return result
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _figures(result: dict[str, Any]) -> dict[str, tuple[float, float]]:
    out = {}
    for name, sc in result.get("scenarios", {}).items():
        if isinstance(sc, dict) and sc.get("rps"):
            out[name] = (float(sc["rps"]), float(sc.get("srv_cpu_ms_per_req") or 0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1, help="A B C C B A rounds")
    ap.add_argument("--targets", default="scimcore,scim2-server,ceiling-flask")
    ap.add_argument("--cpus", default=None, help="run the servers on these CPUs only: 0, 0-1")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    cpus = parse_cpus(args.cpus)
    names = args.targets.split(",")
    order = [n for _ in range(args.rounds) for n in (*names, *reversed(names))]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for name in order:
        print(f"-- {name}", flush=True)
        runs[name].append(run_one(name, args.users, args.concurrency, cpus))
    table: dict[str, dict[str, dict[str, float]]] = {}
    for name, results in runs.items():
        table[name] = {}
        for sc in SCENARIOS:
            rps = [_figures(r)[sc][0] for r in results if sc in _figures(r)]
            cpu = [_figures(r)[sc][1] for r in results if sc in _figures(r)]
            if rps:
                table[name][sc] = {"rps": statistics.median(rps), "cpu_ms": statistics.median(cpu)}
    print(f"\n{'scenario':<11}" + "".join(f"{n:>26}" for n in names) + "   scimcore/peer")
    for sc in SCENARIOS:
        cells = []
        for n in names:
            f = table[n].get(sc)
            cells.append(f"{f['rps']:>10.0f} req/s {f['cpu_ms']:>6.2f} ms" if f else " " * 26)
        ratio = ""
        if sc in table.get("scimcore", {}) and sc in table.get("scim2-server", {}):
            mine, peer = table["scimcore"][sc]["rps"], table["scim2-server"][sc]["rps"]
            ratio = f"   x{mine / max(peer, 1e-9):.1f}"
        print(f"{sc:<11}" + "".join(f"{c:>26}" for c in cells) + ratio)
    if args.out:
        Path(args.out).write_text(json.dumps({"table": table, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
