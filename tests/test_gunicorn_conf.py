"""``examples/gunicorn_conf.py`` under a real gunicorn: every worker, and every thread it
starts, kept on one CPU; the workers spread evenly over the CPUs; a respawned worker takes the
CPU its predecessor left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

pytest.importorskip("gunicorn")
if not hasattr(os, "sched_setaffinity"):
    pytest.skip("CPU affinity is Linux-only", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 3


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _settled(master: int, pinned: bool) -> bool:
    """The arbiter has all its workers, each past ``post_fork``: kept on one CPU when pinning.

    For an instant after its fork a worker is a child of the arbiter that still has the
    arbiter's CPUs (``post_fork`` has not run yet); counting the children alone let a test
    look at a worker in that instant and see it "on every CPU"."""
    children = _children(master)
    if len(children) != WORKERS:
        return False
    try:
        return not pinned or all(len(os.sched_getaffinity(pid)) == 1 for pid in children)
    except ProcessLookupError:  # a worker that exited meanwhile: not settled
        return False


def _wait_for(predicate: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def arbiter(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[int, str]]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "SCIMCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'scim.db'}",
        "SCIMCORE_BIND": f"127.0.0.1:{port}",
        "SCIMCORE_WORKERS": str(WORKERS),
        "SCIMCORE_PIN_CPUS": getattr(request, "param", "1"),
    }
    pinned = env["SCIMCORE_PIN_CPUS"] != "0"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "examples" / "gunicorn_conf.py"),
            "examples.flask_server:create_app()",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _settled(proc.pid, pinned), "the workers, each on its CPU if pinned")
        url = f"http://127.0.0.1:{port}/scim/v2/ServiceProviderConfig"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        _wait_for(answers, "the server to answer")
        yield proc.pid, url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _cpus_of_workers(master: int) -> Counter[int]:
    """The CPU of each worker (each must have exactly one, and so must its threads)."""
    placed: Counter[int] = Counter()
    for pid in _children(master):
        threads = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        cpus = {frozenset(os.sched_getaffinity(tid)) for tid in threads}
        assert len(cpus) == 1, f"worker {pid}'s threads run on different CPU sets: {cpus}"
        (only,) = cpus
        assert len(only) == 1, f"worker {pid} may run on {sorted(only)}"
        placed.update(only)
    return placed


def test_each_worker_and_its_threads_keep_to_one_cpu(arbiter: tuple[int, str]) -> None:
    master, url = arbiter
    for _ in range(12):  # requests make each worker start its thread pool
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
    placed = _cpus_of_workers(master)
    allowed = os.sched_getaffinity(0)
    assert sum(placed.values()) == WORKERS
    assert set(placed) <= allowed
    counts = [placed[cpu] for cpu in allowed]
    assert max(counts) - min(counts) <= 1, f"uneven spread over {sorted(allowed)}: {placed}"

    victim = _children(master)[0]
    os.kill(victim, signal.SIGKILL)
    _wait_for(
        lambda: victim not in _children(master) and _settled(master, pinned=True),
        "the worker to be replaced and kept on its CPU",
    )
    assert _cpus_of_workers(master) == placed


@pytest.mark.parametrize("arbiter", ["0"], indirect=True)
def test_pinning_can_be_turned_off(arbiter: tuple[int, str]) -> None:
    master, _ = arbiter
    allowed = os.sched_getaffinity(0)
    for pid in _children(master):
        assert os.sched_getaffinity(pid) == allowed


def test_a_long_filter_reaches_scimcore_not_gunicorns_own_page(arbiter: tuple[int, str]) -> None:
    """A filter within scimcore's 4,096 characters whose URL-encoded request line is over
    gunicorn's default 4,094 bytes is answered by scimcore (here 401: no token), not refused
    by gunicorn's parser with an HTML page (issue #22, item 6)."""
    _, url = arbiter
    text = 'userName eq "' + "a b" * 1300 + '"'
    assert len(text) <= 4096
    query = urllib.parse.urlencode({"filter": text}, quote_via=urllib.parse.quote)
    assert len(query) > 4094
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url.replace("ServiceProviderConfig", "Users?") + query, timeout=10)
    assert refused.value.code == 401
    assert refused.value.headers["Content-Type"].startswith("application/scim+json")
