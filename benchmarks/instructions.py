"""User-space instructions per SCIM request, counted by valgrind's callgrind.

Run by hand (not in CI), from the repository root, with valgrind installed::

    python benchmarks/instructions.py create --requests 300
    python benchmarks/instructions.py deactivate --src ../other-checkout/src   # another build

The operation runs in-process (:class:`profile_requests.Bench`: ``ScimService`` on a fresh
SQLite file, 100 users created first, the background checkpoint thread stopped) under
``valgrind --tool=callgrind``, once with no request and once with ``--requests``; the
difference divided by the number of requests is printed. With ``PYTHONHASHSEED`` fixed (0
unless set; salted string hashes moved the count by a few per cent between runs) the count is
the same for the same build on an idle or a loaded machine, so it tells apart changes of a few
per cent that timing on a shared machine cannot; it does not see the kernel (SQLite's writes,
thread switches), so confirm a change with ``benchmarks/http_compare.py`` too.

Operations: ``create``, ``get``, ``lookup``, ``patch`` (Entra's title and mobile phone),
``deactivate`` (``active`` "False" and back, as Entra sends it) and ``list`` (pages of 100).
``SCIMCORE_RATE_LIMIT=RATE/BURST`` in the environment measures with that rate limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPERATIONS = ("create", "get", "lookup", "patch", "deactivate", "list")


def inner(operation: str, requests: int) -> None:
    """The measured process: set up, then ``requests`` operations."""
    sys.path.insert(0, str(HERE))
    import profile_requests as pr

    from scimcore import parse_rate_limit

    with tempfile.TemporaryDirectory() as tmp:
        # SCIMCORE_RATE_LIMIT=RATE/BURST measures with the rate limit (default here: off)
        limit = parse_rate_limit(os.environ.get("SCIMCORE_RATE_LIMIT", "off"))
        bench = pr.Bench(f"sqlite:///{Path(tmp) / 'bench.db'}", 100, limit)
        if bench.storage.checkpointer is not None:
            bench.storage.checkpointer.stop()
        bench.create()  # users u0 ... u99
        ids = bench.ids
        active = [
            json.dumps(
                {
                    "schemas": [pr.PATCH_OP],
                    "Operations": [{"op": "Replace", "path": "active", "value": v}],
                }
            ).encode()
            for v in ("False", "True")
        ]
        for n in range(requests):
            user_id = ids[n % len(ids)]
            if operation == "create":
                bench.send("POST", "/Users", pr.user_body(1_000_000 + n))
            elif operation == "get":
                bench.send("GET", f"/Users/{user_id}")
            elif operation == "lookup":
                bench.send("GET", "/Users", filter=f'userName eq "u{n % len(ids)}@x.test"')
            elif operation == "patch":
                bench.send("PATCH", f"/Users/{user_id}", pr.patch_body(n))
            elif operation == "deactivate":
                bench.send("PATCH", f"/Users/{user_id}", active[(n // len(ids)) % 2])
            else:
                bench.send("GET", "/Users", startIndex="1", count="100")
        bench.close()


def count(operation: str, requests: int, src: str | None) -> int:
    """Instructions of one run of :func:`inner` under callgrind."""
    env = dict(os.environ)
    # String hashes are salted per process: dict probing, hence the count, then varies by a
    # few per cent from run to run. One seed makes runs (and builds) comparable.
    env.setdefault("PYTHONHASHSEED", "0")
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        operation,
        "--inner",
        "--requests",
        str(requests),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("operation", choices=OPERATIONS)
    parser.add_argument("--requests", "-n", type=int, default=300)
    parser.add_argument("--src", help="a source tree to measure instead (put first on sys.path)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.operation, args.requests)
        return
    empty = count(args.operation, 0, args.src)
    full = count(args.operation, args.requests, args.src)
    per = (full - empty) / args.requests
    print(f"{args.operation}: {per:,.0f} instructions per request ({args.requests} requests)")


if __name__ == "__main__":
    main()
