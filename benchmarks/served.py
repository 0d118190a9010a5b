"""A scimcore server started as a user starts one, for the benchmarks that drive it over HTTP.

``gunicorn -c examples/gunicorn_conf.py 'examples.flask_server:create_app()'`` (the deployment
of docs/deployment.md) or ``python examples/flask_server.py`` (the example server), on a
database given by URL; workspaces and tokens made with the ``scimcore`` CLI, as its docs say;
the server's worker processes and their memory read from ``/proc``. Also where the shared
load driver ``scimload.py`` lives (``../shared/bench``, from the repository or a worktree of it).
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCIM_PREFIX = "/scim/v2"


def scimload_dir() -> Path:
    """The folder of ``scimload.py``: ``$SCIMLOAD_DIR``, else ``shared/bench`` beside the
    repository (or beside the folder of worktrees that holds it)."""
    if os.environ.get("SCIMLOAD_DIR"):
        return Path(os.environ["SCIMLOAD_DIR"])
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "bench" / "scimload.py").exists():
            return base / "shared" / "bench"
    return ROOT.parent / "shared" / "bench"


def load_scimload() -> Any:
    """The ``scimload`` module (Entra-shaped requests, its HTTP client and percentiles)."""
    spec = importlib.util.spec_from_file_location("scimload", scimload_dir() / "scimload.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scimload"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None, seconds: float = 30) -> None:
    """Return once something accepts connections on ``port``; fail if ``proc`` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wait_ready(port: int, seconds: float = 60) -> None:
    """Return once the server answers HTTP. gunicorn's arbiter listens before its worker has
    loaded the app: the first request would wait for that (seconds on a busy machine)."""
    deadline = time.monotonic() + seconds
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
        try:
            conn.request("GET", f"{SCIM_PREFIX}/ServiceProviderConfig")
            conn.getresponse().read()
            return
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            conn.close()


def cli(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``scimcore --database-url URL ARGS...`` and return what it printed (``env``: the
    environment to run it in, e.g. another checkout's ``PYTHONPATH``)."""
    command = [sys.executable, "-m", "scimcore_adapters.cli", "--database-url", url, *args]
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return done.stdout


def new_workspace(
    url: str, slug: str, activation_email: bool = True, env: dict[str, str] | None = None
) -> str:
    """Create workspace ``slug`` with the CLI, as its admin guide does; return a new token."""
    admin = f"admin@{slug}.example"
    cli(url, "workspace", "create", slug, "--admin", admin, env=env)
    on = "on" if activation_email else "off"
    cli(url, "settings", slug, "--activation-email", on, env=env)
    return cli(url, "token", "generate", slug, "--admin", admin, "--quiet", env=env).strip()


class Server:
    """A server process; ``base`` is its SCIM root URL, ``log`` the file of its stderr."""

    def __init__(self, proc: subprocess.Popen[str], port: int, log: Path, token: str = "") -> None:
        self.proc, self.port, self.log, self.token = proc, port, log, token
        self.base = f"http://127.0.0.1:{port}{SCIM_PREFIX}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _env(url: str, tmp: Path, extra: dict[str, str] | None) -> dict[str, str]:
    return {
        **os.environ,
        "SCIMCORE_DATABASE_URL": url,
        "SCIMCORE_MAIL_DIR": str(tmp / "mail"),
        **(extra or {}),
    }


def start_gunicorn(url: str, tmp: Path, extra_env: dict[str, str] | None = None) -> Server:
    """``gunicorn -c examples/gunicorn_conf.py 'examples.flask_server:create_app()'`` from the
    repository root, on a free port (``SCIMCORE_WORKERS``/``THREADS`` in ``extra_env``)."""
    port = free_port()
    env = _env(url, tmp, {"SCIMCORE_BIND": f"127.0.0.1:{port}", **(extra_env or {})})
    log = tmp / "server.log"
    command = [sys.executable, "-m", "gunicorn", "-c", "examples/gunicorn_conf.py"]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*command, "examples.flask_server:create_app()"],
            cwd=ROOT,
            env=env,
            stdout=err,
            stderr=err,
            text=True,
        )
    wait_port(port, proc)
    wait_ready(port)
    return Server(proc, port, log)


def start_example(url: str, tmp: Path, extra_env: dict[str, str] | None = None) -> Server:
    """``python examples/flask_server.py --port P``; its token is the demo workspace's, read
    from the ``Secret Token:`` line it prints."""
    port = free_port()
    log = tmp / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "flask_server.py"), "--port", str(port)],
            cwd=tmp,
            env={**_env(url, tmp, extra_env), "PYTHONPATH": str(ROOT / "src")},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    token = ""
    for line in proc.stdout:
        if line.startswith("Secret Token: "):
            token = line.split(": ", 1)[1].strip()
            break
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain it: never blocks
    wait_port(port, proc)
    return Server(proc, port, log, token)


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def worker_pids(pid: int) -> list[int]:
    """The processes that serve requests: the children of ``pid`` (gunicorn's workers), or
    ``pid`` itself when it has none (a one-process server)."""
    return sorted(_children().get(pid, [])) or [pid]


def rss_bytes(pids: list[int]) -> int:
    """The resident set size of ``pids``, summed (``VmRSS`` of ``/proc/PID/status``)."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def sched_seconds(pids: list[int]) -> tuple[float, float]:
    """CPU time used, and time spent waiting for a CPU (runnable, but another process had
    it), summed over every thread of ``pids`` (``/proc/PID/task/TID/schedstat``). A server
    that waited long for a CPU was slowed by its machine, not by its requests."""
    ran = waited = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
            except OSError:
                continue
            ran, waited = ran + int(fields[0]), waited + int(fields[1])
    return ran / 1e9, waited / 1e9
