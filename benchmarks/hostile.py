"""Hostile clients beside normal provisioning, against a server started as a user starts one.

Run by hand (not in CI), from the repository root, in a venv with ``.[test]`` (gunicorn)::

    python benchmarks/hostile.py                    # 10 minutes
    python benchmarks/hostile.py --minutes 2 --seed 7

It starts ``gunicorn -c examples/gunicorn_conf.py 'examples.flask_server:create_app()'`` on a
new SQLite file (``--database-url`` for another) with two workspaces made by the ``scimcore``
CLI. ``--clients`` (default 4) clients with workspace A's token send, as fast as the server
answers, the hostile and worst-case requests of ``benchmarks/hostile_cases.py``: malformed
JSON, wrong types, bodies at, past and far past the limits (chunked too), over-long filters
and URLs, odd PATCH paths, PATCH at and past the operation limit, invalid tokens, workspace
B's ids, unicode oddities, HTTP-level garbage. A user that a hostile request creates is
deleted right after (unless ``--keep-created``), so that A keeps its size: what a search that
no index serves costs grows with the workspace's data (docs/performance.md), which no
per-request limit bounds and is not what this run measures. Meanwhile workspace B provisions
users as Microsoft Entra ID does (``benchmarks/soak.py``'s cycle, ``--normal-rate`` requests
per second) and, after each user, tries one of A's ids with its own token.

Checked, and printed as a report to paste: answers by status; no 5xx (each saved with the
request that caused it to ``--failures``, tokens redacted); no missing answer where one is due;
max and p99 latency of hostile and of normal traffic, and every answer slower than 1 s; no
traceback or token in any answer or traceback in the server's log; nothing of A in any answer
B gets (A's ids and userNames), A's ids 404 with B's token and B's with A's; every refused write
left its target as it was (read before and after) and every refused create stored nothing;
at the end, B's untouched users are as they were at the start. Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import re
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile_cases as hc
import hostile_wire
import served
import soak
from hostile_wire import Answer, Conn

SLOW_MS = 1000.0
#: RFC 7644's answer to what a server does not implement (/Me, /Bulk): not an error.
NOT_IMPLEMENTED = 501
ID_RE = re.compile(r"[0-9a-fA-F]{32}")


class Run:
    """The shared state of one run: tokens, what each workspace holds, and the findings."""

    def __init__(self, port: int, token_a: str, token_b: str, failures: Path) -> None:
        self.port, self.tokens, self.failures_path = port, {"a": token_a, "b": token_b}, failures
        self.lock = threading.Lock()
        self.statuses: dict[str, Counter[int]] = {
            k: Counter() for k in ("hostile", "normal", "check")
        }
        self.latency: dict[str, list[float]] = {k: [] for k in self.statuses}
        self.cases: Counter[str] = Counter()
        self.slow: list[str] = []
        self.failures: list[dict[str, Any]] = []
        self.a_ids: set[str] = set()
        self.a_names: dict[str, str] = {}  # A's userNames by id (bystanders: never written)
        self.b_bystanders: dict[str, tuple[str, Any]] = {}  # id -> (userName, its document)
        self.refused_writes = self.cross_tries = self.b_scanned = 0
        self.stop = threading.Event()
        self.keep_created = False
        self.by_case: dict[str, list[float]] = {}

    def headers(self, who: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Content-Type": "application/scim+json", "Authorization": f"Bearer {self.tokens[who]}"}
        h.update(extra or {})
        return {k: v for k, v in h.items() if v != ""}

    def redact(self, data: bytes) -> bytes:
        for who, token in self.tokens.items():
            data = data.replace(token.encode(), f"<token {who.upper()}>".encode())
        return data

    def fail(self, kind: str, detail: str, case: hc.Case | None = None) -> None:
        entry: dict[str, Any] = {"check": kind, "detail": detail}
        if case is not None:
            entry["request"] = self.describe(case)
        with self.lock:
            self.failures.append(entry)

    def describe(self, case: hc.Case) -> dict[str, Any]:
        """The request, tokens redacted; a body over 64 KiB as its head, size and SHA-256."""
        doc = {k: v for k, v in asdict(case).items() if k not in ("body", "raw")}
        doc["expect"] = sorted(case.expect) if case.expect is not None else None
        doc["path"] = self.redact(case.path.encode()).decode()[:4000]
        doc["headers"] = {
            k: self.redact(v.encode()).decode()[:200] for k, v in case.headers.items()
        }
        for key in ("body", "raw"):
            data: bytes | None = getattr(case, key)
            if data is None:
                continue
            data = self.redact(data)
            if len(data) <= 65536:
                doc[f"{key}_base64"] = base64.b64encode(data).decode()
            else:
                doc[f"{key}_head_base64"] = base64.b64encode(data[:4096]).decode()
                doc[f"{key}_bytes"], doc[f"{key}_sha256"] = (
                    len(data),
                    hashlib.sha256(data).hexdigest(),
                )
        return doc

    def note(self, kind: str, what: str, answer: Answer, case: hc.Case | None = None) -> None:
        """Record an answer of traffic ``kind``; flag 5xx, slow answers, leaked internals."""
        with self.lock:
            self.statuses[kind][answer.status] += 1
            self.latency[kind].append(answer.ms)
            if answer.ms > SLOW_MS:
                self.slow.append(f"{answer.ms:,.0f} ms  {kind}: {what} -> {answer.status}")
        if answer.status >= 500 and answer.status != NOT_IMPLEMENTED:
            self.fail("5xx", f"{what} -> {answer.status}: {answer.body[:300]!r}", case)
        text = answer.body[:2_000_000]
        if b"Traceback" in text or any(t.encode() in text for t in self.tokens.values()):
            self.fail("traceback or token in an answer", f"{what} -> {answer.status}", case)

    def get(self, conn: Conn, who: str, path: str) -> Answer:
        """A checking read, retried after a 429 (which checking reads may meet) and on a
        connection the server closed after a hostile request."""
        for _ in range(20):
            answer = conn.send("GET", path, None, self.headers(who), False)
            if answer.status == 0:
                answer = conn.send("GET", path, None, self.headers(who), False)
            self.note("check", f"GET {path[:80]}", answer)
            if answer.status != 429:
                return answer
            self.stop.wait(min(float(answer.retry_after or 1), 2.0))
        return answer


def hostile_client(run: Run, k: int, seed: int, users: list[tuple[str, str]], group: str) -> None:
    conn = Conn(run.port)
    bystanders = list(run.b_bystanders.items())
    ctx = hc.Ctx(
        random.Random(seed * 1000 + k),
        users,
        group,
        lambda: [(uid, name) for uid, (name, _) in bystanders],
        run.tokens["a"],
    )
    while not run.stop.is_set():
        try:
            case = hostile_wire.next_case(ctx)
            hostile_request(run, conn, case)
        except Exception:  # a bug of this tool: reported as a finding, the run goes on
            run.fail("tool error", traceback.format_exc())


def hostile_request(run: Run, conn: Conn, case: hc.Case) -> None:
    """Send ``case``, with the reads before and after that its checks need."""
    run.cases[case.name] += 1
    who_target = case.target
    before = run.get(conn, who_target[0], who_target[1]) if who_target else None
    if case.raw is not None:
        answer = conn.raw(case.raw)
    else:
        answer = conn.send(
            case.method, case.path, case.body, run.headers("a", case.headers), case.chunked
        )
    if answer.status in (0, 413) or not case.answer_due:
        conn.conn.close()  # the server may close it after a 413 (past 16 MiB) or garbage
    what = f"{case.name}: {case.method} {case.path[:80]}"
    run.note("hostile", what, answer, case)
    run.by_case.setdefault(case.name, []).append(answer.ms)
    doc = answer.doc()
    if answer.status == 201 and isinstance(doc, dict) and "id" in doc:
        run.a_ids.add(str(doc["id"]))
        if not run.keep_created:  # A keeps its size: see the module's docstring
            gone = conn.send("DELETE", f"/Users/{doc['id']}", None, run.headers("a"), False)
            run.note("check", "DELETE of a user just created", gone)
    if answer.status == 0 and case.answer_due:
        run.fail("no answer", what, case)
    if case.expect is not None and answer.status not in case.expect:
        run.fail("unexpected status", f"{what} -> {answer.status}, not {set(case.expect)}", case)
    if (
        case.empty
        and answer.status == 200
        and (not isinstance(doc, dict) or doc.get("totalResults") != 0)
    ):
        run.fail("other workspace's data found", f"{what}: {answer.body[:300]!r}", case)
    if answer.status < 400 and answer.status != 0:
        return  # accepted: no refused write to check
    if who_target and before is not None:
        run.refused_writes += 1
        after = run.get(conn, who_target[0], who_target[1])
        if (after.status, after.doc()) != (before.status, before.doc()):
            run.fail(
                "a refused write changed its target",
                f"{what} -> {answer.status}; {who_target[1]} changed",
                case,
            )
    if case.creates:
        run.refused_writes += 1
        found = run.get(conn, "a", "/Users?filter=" + quote(f'userName eq "{case.creates}"'))
        if (found.doc() or {}).get("totalResults") != 0:
            run.fail("a refused create stored a user", f"{what} -> {answer.status}", case)


def scan_for_a(run: Run, what: str, answer: Answer, sent: str = "") -> None:
    """Nothing of workspace A in an answer workspace B got (but what B sent, which an error
    may quote: "resource ID not found")."""
    run.b_scanned += 1
    text = answer.body.decode("utf-8", "replace")
    ids = set(ID_RE.findall(text)) - set(ID_RE.findall(sent))
    leaked = hc.MARK_A in text.replace(sent, "") or any(i in run.a_ids for i in ids)
    if leaked:
        run.fail("A visible to B", f"{what} -> {answer.status}: {text[:300]}")


def normal_client(run: Run, groups: list[str], pacer: soak.Pacer, prefix: str, k: int) -> None:
    conn, check = Conn(run.port), Conn(run.port)
    rng = random.Random(k)
    a_users = list(run.a_names.items())

    def send(method: str, path: str, body: Any) -> tuple[int, Any]:
        if not pacer.wait():
            raise soak.Stopped
        data = None if body is None else json.dumps(body).encode()
        answer = conn.send(method, path, data, run.headers("b"), False)
        what = f"{method} {path[:80]}"
        run.note("normal", what, answer)
        scan_for_a(run, what, answer)
        if not 200 <= answer.status < 300 and not (method == "GET" and answer.status == 404):
            run.fail("normal traffic refused", f"{what} -> {answer.status}: {answer.body[:200]!r}")
        return answer.status, answer.doc()

    i = k
    try:
        while not run.stop.is_set():
            soak.entra_cycle(send, prefix, i, groups)
            i += 2
            cross_check(run, check, rng, *rng.choice(a_users))
    except soak.Stopped:
        pass


def cross_check(run: Run, conn: Conn, rng: random.Random, uid: str, name: str) -> None:
    """One of A's users with B's token: 404, or an empty search; and unchanged."""
    run.cross_tries += 1
    path = f"/Users/{uid}"
    method, body = rng.choice(
        [
            ("GET", None),
            ("DELETE", None),
            ("PATCH", hc.patch({"op": "replace", "path": "title", "value": "b"})),
            ("FILTER", None),
        ]
    )
    if method == "FILTER":
        path = "/Users?filter=" + quote(f'userName eq "{name}"')
        answer = conn.send("GET", path, None, run.headers("b"), False)
        run.note("normal", "A's userName with B's token", answer)
        scan_for_a(run, "A's userName with B's token", answer, name)
        if (answer.doc() or {}).get("totalResults") != 0:
            run.fail("A visible to B", f"filter on A's userName -> {answer.body[:200]!r}")
        return
    before = run.get(conn, "a", path)
    answer = conn.send(method, path, body, run.headers("b"), False)
    run.note("normal", f"A's id with B's token: {method}", answer)
    scan_for_a(run, f"{method} of A's id", answer, path)
    if answer.status != 404:
        run.fail("A visible to B", f"{method} {path} with B's token -> {answer.status}")
    after = run.get(conn, "a", path)
    if (after.status, after.doc()) != (before.status, before.doc()):
        run.fail("a refused write changed its target", f"B's {method} changed A's {path}")


def setup(run: Run, clients: int) -> tuple[list[list[tuple[str, str]]], list[str], list[str]]:
    """A's bystanders, each hostile client's own users and group; B's bystanders and groups."""
    conn = Conn(run.port)

    def make(who: str, name: str, kind: str = "Users") -> str:
        body = hc.user(name) if kind == "Users" else {"schemas": [soak.GROUP], "displayName": name}
        answer = conn.send("POST", f"/{kind}", hc.jdump(body), run.headers(who), False)
        assert answer.status == 201, f"setup: {answer.status} {answer.body[:300]!r}"
        uid = str(answer.doc()["id"])
        if who == "a":
            run.a_ids.add(uid)
        return uid

    for i in range(10):
        name = f"{hc.MARK_A}-bystander{i}@a.test"
        run.a_names[make("a", name)] = name
    own = [
        [(make("a", n), n) for n in (f"{hc.MARK_A}-c{k}u{j}@a.test" for j in range(3))]
        for k in range(clients)
    ]
    groups_a = [make("a", f"{hc.MARK_A} group {k}", "Groups") for k in range(clients)]
    for i in range(10):
        name = f"b-bystander{i}@b.test"
        uid = make("b", name)
        run.b_bystanders[uid] = (name, run.get(conn, "b", f"/Users/{uid}").doc())
    groups_b = [make("b", f"b group {k}", "Groups") for k in range(3)]
    return own, groups_a, groups_b


def pcts(values: list[float]) -> str:
    v = sorted(values)
    if not v:
        return "| 0 | - | - | - |"
    p = soak.SL.pct
    return f"| {len(v):,} | {p(v, 50):.1f} | {p(v, 99):.1f} | {v[-1]:.0f} |"


def report(run: Run, args: argparse.Namespace, log: Path, waited: tuple[float, float]) -> int:
    logged = log.read_text(errors="replace") if log.exists() else ""
    tracebacks = logged.count("Traceback")
    if tracebacks:
        run.fail("traceback in the server log", f"{tracebacks} tracebacks in {log}")
    conn = Conn(run.port)
    for uid, (name, doc) in run.b_bystanders.items():
        if run.get(conn, "b", f"/Users/{uid}").doc() != doc:
            run.fail("a refused write changed its target", f"B's bystander {name} changed")
    print(
        f"\nHostile run: {args.minutes} min, gunicorn -c examples/gunicorn_conf.py on "
        f"{args.engine}; {args.clients} hostile clients (workspace A), normal provisioning "
        f"(workspace B) at {args.normal_rate:g} req/s; seed {args.seed}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print("\n| traffic | answers | p50 ms | p99 ms | max ms | answers by status |")
    print("|---|---:|---:|---:|---:|---|")
    for kind in ("hostile", "normal", "check"):
        counts = sorted(run.statuses[kind].items())
        statuses = ", ".join(f"{s or 'none'} ({n:,})" for s, n in counts)
        print(f"| {kind} {pcts(run.latency[kind])} {statuses} |")
    by_check = Counter(f["check"] for f in run.failures)
    checks = [
        ("5xx answers (but 501 for /Me and /Bulk, RFC 7644 §3.11, §3.7)", by_check["5xx"]),
        ("no answer where one is due", by_check["no answer"]),
        (f"answers slower than {SLOW_MS / 1000:g} s", len(run.slow)),
        ("tracebacks or tokens in answers", by_check["traceback or token in an answer"]),
        ("tracebacks in the server log", tracebacks),
        (
            f"A visible to B ({run.b_scanned:,} of B's answers scanned, {run.cross_tries:,} tries "
            "of A's users with B's token)",
            by_check["A visible to B"],
        ),
        (
            "other workspace's id not 404, or a wrong token not 401",
            by_check["unexpected status"] + by_check["other workspace's data found"],
        ),
        (
            f"refused writes that changed something ({run.refused_writes:,} checked)",
            by_check["a refused write changed its target"]
            + by_check["a refused create stored a user"],
        ),
        ("normal requests refused", by_check["normal traffic refused"]),
    ]
    print()
    for label, n in checks:
        print(f"- {label}: {n}{'' if n == 0 else '  <-- FAIL'}")
    print(
        f"\nThe server used {waited[0]:.0f} s of CPU and waited {waited[1]:.0f} s for a CPU that "
        "other processes had (on a quiet machine, about 0: latencies above reflect the machine "
        "as much as the server when it is not)."
    )
    for line in run.slow[:20]:
        print(f"    slow: {line}")
    for entry in run.failures[:20]:
        print(f"    {entry['check']}: {entry['detail'][:240]}")
    slowest = sorted(run.by_case.items(), key=lambda kv: -max(kv[1]))[:6]
    print(
        f"\nKinds of hostile request: {len(run.cases)}; the slowest (max ms): "
        + ", ".join(f"{name} {max(ms):,.0f}" for name, ms in slowest)
    )
    failed = bool(run.failures) or bool(run.slow)
    if run.failures:
        with run.failures_path.open("w") as f:
            for entry in run.failures:
                f.write(json.dumps(entry) + "\n")
        print(f"{len(run.failures)} findings, with their requests: {run.failures_path}")
    print(f"Result: {'FAIL' if failed else 'PASS'}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    ap.add_argument("--minutes", type=float, default=10, help="how long (default 10)")
    ap.add_argument("--clients", type=int, default=4, help="hostile clients (default 4)")
    ap.add_argument("--normal-rate", type=float, default=25, help="B's requests/s (default 25)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--keep-created",
        action="store_true",
        help="keep the users hostile requests create (A grows all along)",
    )
    ap.add_argument("--database-url", default=None, help="default: a new SQLite file")
    ap.add_argument(
        "--failures",
        type=Path,
        default=Path("hostile-failures.jsonl"),
        help="where findings go, with their requests (written only if any)",
    )
    args = ap.parse_args(argv)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = args.database_url or f"sqlite:///{tmp / 'hostile.db'}"
        args.engine = url.split(":", 1)[0].split("+")[0]
        tag = uuid.uuid4().hex[:6]
        token_a = served.new_workspace(url, f"hostile-a-{tag}")
        token_b = served.new_workspace(url, f"normal-b-{tag}")
        server = served.start_gunicorn(url, tmp)
        stack.callback(server.stop)
        run = Run(server.port, token_a, token_b, args.failures)
        run.keep_created = args.keep_created
        own, groups_a, groups_b = setup(run, args.clients)
        pacer = soak.Pacer(args.normal_rate, run.stop)
        threads = [
            threading.Thread(
                target=hostile_client, daemon=True, args=(run, k, args.seed, own[k], groups_a[k])
            )
            for k in range(args.clients)
        ]
        threads += [
            threading.Thread(
                target=normal_client, daemon=True, args=(run, groups_b, pacer, f"nb{tag}", k)
            )
            for k in range(2)
        ]
        before = served.sched_seconds(served.worker_pids(server.pid))
        for t in threads:
            t.start()
        start = time.monotonic()
        for minute in range(1, int(args.minutes) + 1):
            run.stop.wait(max(0.0, start + 60 * minute - time.monotonic()))
            print(
                f"minute {minute}: {sum(run.statuses['hostile'].values()):,} hostile, "
                f"{sum(run.statuses['normal'].values()):,} normal answers, "
                f"{len(run.failures)} findings, {len(run.slow)} slow",
                flush=True,
            )
        run.stop.wait(max(0.0, start + 60 * args.minutes - time.monotonic()))
        run.stop.set()
        for t in threads:
            t.join(timeout=60)
        workers = served.worker_pids(server.pid)
        after = served.sched_seconds(workers)
        used = (after[0] - before[0], after[1] - before[1])
        return report(run, args, server.log, used)


if __name__ == "__main__":
    raise SystemExit(main())
