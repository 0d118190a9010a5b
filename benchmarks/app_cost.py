"""What one SCIM request costs through the example app, for one or more checkouts side by side.

Run by hand (not in CI), from the repository root::

    python benchmarks/app_cost.py create . ../base          # CPU time, cheapest of 7 trials
    python benchmarks/app_cost.py create . ../base --bytecodes
    python benchmarks/app_cost.py create . ../base --instructions   # needs valgrind

Each ROOT is a checkout (this one, or a ``git worktree`` of another commit). For each, a fresh
process puts ``ROOT/src`` and ``ROOT`` first on ``sys.path``, builds ``examples.flask_server``'s
app on a new SQLite file (no mail worker, no rate limit), creates 100 users and warms up, then
calls the app's WSGI callable with hand-built environs: Flask, the adapters, the core and the
SQL backend as under a server, without the server's own cost. It prints per request:

- the default: process CPU time (user and system), the cheapest of ``--trials`` runs of
  ``--requests`` requests: the cost a server pays, noisy on a shared machine;
- ``--bytecodes``: bytecodes executed (``sys.settrace`` opcode events), exact and repeatable;
  with ``--functions N`` the N functions whose count differs most from the first ROOT's;
- ``--instructions``: user-space instructions (valgrind's callgrind, ``PYTHONHASHSEED=0``),
  exact and repeatable, but blind to how well the CPU runs them: the interpreter's bytecodes
  cost several times the cycles per instruction of SQLite's C, so a change that trades Python
  work for SQLite work can keep the count and still cost time. Compare with both counts.

Operations: ``create``, ``get``, ``lookup`` (``userName eq``), ``patch`` (Entra's title and
mobile phone), ``deactivate`` (``active`` "False" and back, as Entra sends it), ``list``
(pages of 100). The same code drives every ROOT, older builds included (the example app's
``create_app`` took only a service before the mail worker).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

OPERATIONS = ("create", "get", "lookup", "patch", "deactivate", "list")
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user_body(n: int) -> bytes:
    """An Entra-shaped user: core and enterprise attributes, one e-mail, two phone numbers."""
    return json.dumps(
        {
            "schemas": [CORE, ENTERPRISE],
            "userName": f"u{n}@x.test",
            "externalId": f"e{n}",
            "active": True,
            "displayName": f"U {n}",
            "name": {"givenName": "U", "familyName": str(n)},
            "title": "Eng",
            "emails": [{"type": "work", "value": f"u{n}@x.test", "primary": True}],
            "phoneNumbers": [{"type": "work", "value": "+1"}, {"type": "mobile", "value": "+2"}],
            ENTERPRISE: {"department": "Sales"},
        }
    ).encode()


def _patch(operations: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schemas": [PATCH_OP], "Operations": operations}).encode()


class App:
    """The example app of one checkout (imported from ``sys.path``) with 100 users."""

    def __init__(self, directory: Path) -> None:
        os.environ["SCIMCORE_DATABASE_URL"] = url = f"sqlite:///{directory / 'cost.db'}"
        os.environ["SCIMCORE_RATE_LIMIT"] = "off"
        from examples import flask_server

        from scimcore import ScimService
        from scimcore_adapters import bootstrap

        try:  # the mail worker's era: no worker, no rate limit, a fixed session key
            config = bootstrap.server_config("off")
            service = ScimService(bootstrap.open_storage(url), config=config)
            self.app = flask_server.create_app(service, deliver_mail=False, secret_key="k" * 40)
        except AttributeError:  # before it: the app took only a service
            service = ScimService(bootstrap.open_storage(url))
            self.app = flask_server.create_app(service)
        checkpointer = getattr(service.storage, "checkpointer", None)
        if checkpointer is not None:  # a background thread: not the request's cost
            checkpointer.stop()
        self.token = bootstrap.ensure_demo(service).token
        self.ids = [json.loads(self.call("POST", "/Users", user_body(n)))["id"] for n in range(100)]

    def call(self, method: str, path: str, body: bytes = b"", query: str = "") -> bytes:
        """One request through the WSGI callable; its body (a non-2xx status raises)."""
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": "/scim/v2" + path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_AUTHORIZATION": f"Bearer {self.token}",
            "CONTENT_TYPE": "application/scim+json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        status: list[str] = []

        def start_response(
            line: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            status.append(line)
            return lambda data: None

        out = b"".join(self.app(environ, start_response))
        if not status[0].startswith("2"):
            raise RuntimeError(f"{method} {path}: {status[0]} {out[:300]!r}")
        return out

    def request(self, operation: str, n: int) -> None:
        """The ``n``-th request of ``operation``."""
        user = self.ids[n % len(self.ids)]
        if operation == "create":
            self.call("POST", "/Users", user_body(1_000_000 + n))
        elif operation == "get":
            self.call("GET", f"/Users/{user}")
        elif operation == "lookup":
            self.call("GET", "/Users", query=f"filter=userName+eq+%22u{n % 100}%40x.test%22")
        elif operation == "patch":
            title = {"op": "Replace", "path": "title", "value": f"T{n}"}
            mobile = 'phoneNumbers[type eq "mobile"].value'
            phone = {"op": "Replace", "path": mobile, "value": f"+3{n}"}
            self.call("PATCH", f"/Users/{user}", _patch([title, phone]))
        elif operation == "deactivate":  # each hundred sets the other value: every PATCH writes
            value = ("False", "True")[(n // len(self.ids)) % 2]
            active = {"op": "Replace", "path": "active", "value": value}
            self.call("PATCH", f"/Users/{user}", _patch([active]))
        else:
            self.call("GET", "/Users", query="startIndex=1&count=100")


def _bytecodes(run: Callable[[], None]) -> Counter[str]:
    """Bytecodes executed by ``run()``, by function (``file:name``)."""
    counts: Counter[str] = Counter()

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[f"{Path(code.co_filename).name}:{code.co_name}"] += 1
        return trace

    sys.settrace(trace)
    try:
        run()
    finally:
        sys.settrace(None)
    return counts


def inner(root: Path, operation: str, requests: int, trials: int, mode: str) -> None:
    """The measured process: prints one JSON line of per-request figures."""
    sys.path[:0] = [str(root / "src"), str(root)]
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the example keeps files beside its database and in the working directory
        app = App(Path(tmp))
        for n in range(5):
            app.request(operation, n)
        start = 5

        def run() -> None:
            for n in range(start, start + requests):
                app.request(operation, n)

        result: dict[str, Any] = {}
        if mode == "bytecodes":
            counts = _bytecodes(run)
            result = {"total": sum(counts.values()) / requests}
            result["functions"] = {k: v / requests for k, v in counts.items()}
        elif mode == "cpu":
            best = (float("inf"), 0.0, 0.0)
            for _ in range(trials):
                before = resource.getrusage(resource.RUSAGE_SELF)
                run()
                after = resource.getrusage(resource.RUSAGE_SELF)
                user = after.ru_utime - before.ru_utime
                system = after.ru_stime - before.ru_stime
                if user + system < best[0]:
                    best = (user + system, user, system)
                start += requests
            result = {"cpu_ms": best[0] / requests * 1e3, "user_ms": best[1] / requests * 1e3}
            result["system_ms"] = best[2] / requests * 1e3
        elif requests:  # instructions: this process runs under callgrind
            run()
    print(json.dumps(result))


def _child(root: str, args: argparse.Namespace, mode: str, requests: int) -> list[str]:
    return [
        *(sys.executable, str(Path(__file__).resolve()), args.operation, root),
        *("--inner", mode, "--requests", str(requests), "--trials", str(args.trials)),
    ]


def instructions(root: str, args: argparse.Namespace) -> float:
    """Instructions per request: a run of ``--requests`` less an empty one, under callgrind."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # salted hashes move the count by a few per cent
    totals = []
    for requests in (0, args.requests):
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        done = subprocess.run(
            [*cmd, *_child(root, args, "instructions", requests)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"no count from valgrind:\n{done.stderr[-2000:]}")
        totals.append(int(found.group(1)))
    per: float = (totals[1] - totals[0]) / args.requests
    return per


def measure(root: str, args: argparse.Namespace, mode: str) -> dict[str, Any]:
    done = subprocess.run(
        _child(root, args, mode, args.requests), capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("operation", choices=OPERATIONS)
    parser.add_argument("roots", nargs="+", help="checkouts to measure (the first is the base)")
    parser.add_argument("--requests", "-n", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=7, help="CPU time: trials, cheapest kept")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--bytecodes", action="store_true")
    kind.add_argument("--instructions", action="store_true")
    parser.add_argument("--functions", type=int, default=0, help="with --bytecodes: top N")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(Path(args.roots[0]).resolve(), args.operation, args.requests, args.trials, args.inner)
        return
    first: dict[str, Any] | None = None
    for root in args.roots:
        if args.instructions:
            print(f"{args.operation} {root}: {instructions(root, args):,.0f} instructions")
        elif args.bytecodes:
            result = measure(root, args, "bytecodes")
            print(f"{args.operation} {root}: {result['total']:,.0f} bytecodes")
            if first is not None and args.functions:
                _print_functions(first["functions"], result["functions"], args.functions)
            first = first or result
        else:
            r = measure(root, args, "cpu")
            print(
                f"{args.operation} {root}: {r['cpu_ms']:.4f} ms CPU "
                f"(user {r['user_ms']:.4f}, system {r['system_ms']:.4f})"
            )


def _print_functions(base: dict[str, float], other: dict[str, float], top: int) -> None:
    """The ``top`` functions whose bytecodes per request differ most from ``base``'s."""
    names = sorted(set(base) | set(other), key=lambda k: -abs(other.get(k, 0) - base.get(k, 0)))
    for name in names[:top]:
        was, now = base.get(name, 0.0), other.get(name, 0.0)
        print(f"  {now - was:+8.0f} {now:8.0f} {was:8.0f}  {name}")


if __name__ == "__main__":
    main()
