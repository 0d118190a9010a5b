"""gunicorn settings for the example server: threaded workers, each kept on one CPU.

    gunicorn -c examples/gunicorn_conf.py 'examples.flask_server:create_app()'

``SCIMCORE_WORKERS`` (default 1) worker processes of ``SCIMCORE_THREADS`` (default 4) threads
each, listening on ``SCIMCORE_BIND`` (default ``127.0.0.1:8000``). Each worker is restricted to
one of the CPUs the server may use, the least taken one when it is forked, so that the
workers spread over the CPUs and a respawned worker takes the place of the one it replaces.

Why one CPU per worker: a worker's threads take turns holding CPython's GIL, and hand it over
at every socket call and every SQLite statement. When the thread that takes it over wakes on
another CPU, each hand-over costs a cross-CPU wake-up; on one CPU it is a plain thread switch.
On the 2-CPU machine of docs/performance.md (session 14), side by side, one worker kept on
one CPU spent 0.32 ms of CPU per ``GET`` instead of 0.65, and 0.86 ms per create instead of
1.24. Leave it
out (``SCIMCORE_PIN_CPUS=0``) where the workers share their machine with busier processes
than themselves: a worker kept on one CPU cannot move away from them. Linux only; elsewhere
the workers run unrestricted.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

bind = os.environ.get("SCIMCORE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("SCIMCORE_WORKERS", "1"))
worker_class = "gthread"
threads = int(os.environ.get("SCIMCORE_THREADS", "4"))
# The request line: gunicorn's default (4,094 bytes) refuses, with its own HTML page, a SCIM
# filter well within scimcore's limit (max_filter_chars, 4,096) once it is URL-encoded; 8,190
# is the most gunicorn allows. A longer filter goes through POST /Users/.search (docs/limits.md).
limit_request_line = 8190

PIN_CPUS = os.environ.get("SCIMCORE_PIN_CPUS", "1") != "0" and hasattr(os, "sched_setaffinity")


def pre_fork(server: Any, worker: Any) -> None:
    """In the arbiter, before a worker is forked: choose its CPU, the one fewest of the live
    workers hold (the lowest-numbered of those)."""
    if not PIN_CPUS:
        return
    taken = Counter(getattr(w, "scimcore_cpu", None) for w in server.WORKERS.values())
    worker.scimcore_cpu = min(sorted(os.sched_getaffinity(0)), key=lambda cpu: taken[cpu])


def post_fork(server: Any, worker: Any) -> None:
    """In the new worker, before its threads start (they inherit it): keep it on its CPU."""
    cpu = getattr(worker, "scimcore_cpu", None)
    if PIN_CPUS and cpu is not None:
        os.sched_setaffinity(0, {cpu})
