"""Serving (issue 17 §6, §7): the public URL behind a proxy for both Flask mounts, the example
server's kept demo token and its start-up lines, ``scimcore serve`` with its mail worker."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, TypeVar

import pytest
from examples.flask_server import create_app
from flask import Flask

from scimcore import ScimService
from scimcore_adapters.bootstrap import demo_credentials_path, ensure_demo
from scimcore_adapters.flask import ScimExtension
from scimcore_adapters.memory import MemoryStorage
from scimcore_adapters.serving import (
    behind_proxy,
    listening_url,
    public_base_url,
    tenant_url,
    trusted_proxies,
)
from scimcore_adapters.sql import SqlStorage
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
USER = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann@contoso.com"}

Mount = Literal["wsgi", "blueprint"]
T = TypeVar("T")


def _app(mount: Mount, base_url: str | None, trust_proxy: int) -> tuple[Flask, dict[str, str]]:
    service = ScimService(MemoryStorage())
    service.workspaces.create("acme", "admin@acme.example")
    token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    app = Flask("t")
    ScimExtension(service, app, mount=mount)
    app.wsgi_app = behind_proxy(  # type: ignore[method-assign,assignment]
        app.wsgi_app, base_url=base_url, trust_proxy=trust_proxy
    )
    return app, {"Authorization": f"Bearer {token}"}


def _location(app: Flask, auth: dict[str, str], headers: dict[str, str] | None = None) -> str:
    response = app.test_client().post(
        "/scim/v2/Users",
        json={**USER, "userName": f"{uuid.uuid4().hex}@contoso.com"},
        headers={**auth, **(headers or {})},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert response.get_json()["meta"]["location"] == location
    return location


FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "scim.acme.example",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Prefix": "/idp",
    "X-Forwarded-For": "203.0.113.9",
}


@pytest.mark.parametrize("mount", ["wsgi", "blueprint"])
def test_location_follows_the_configured_base_url(mount: Mount) -> None:
    # R1.2 behind a proxy: the Tenant URL and Location are the public ones
    app, auth = _app(mount, "https://scim.acme.example/idp", 0)
    assert _location(app, auth).startswith("https://scim.acme.example/idp/scim/v2/Users/")
    # the configured URL wins over anything a client sends
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    assert _location(app, auth, forged).startswith("https://scim.acme.example/idp/scim/v2/")


@pytest.mark.parametrize("mount", ["wsgi", "blueprint"])
def test_forwarded_headers_count_only_when_trusted(mount: Mount) -> None:
    trusted, auth = _app(mount, None, 1)
    assert _location(trusted, auth, FORWARDED).startswith(
        "https://scim.acme.example/idp/scim/v2/Users/"
    )
    untrusted, auth = _app(mount, None, 0)
    assert _location(untrusted, auth, FORWARDED).startswith("http://localhost/scim/v2/Users/")


def test_example_app_takes_base_url_and_proxy_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = ScimService(MemoryStorage())
    service.workspaces.create("acme", "admin@acme.example")
    auth = {
        "Authorization": "Bearer "
        + service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    }
    monkeypatch.setenv("SCIMCORE_TRUST_PROXY", "1")
    app = create_app(service)
    assert "scimcore.mail" not in app.extensions  # the caller owns a service it passes in
    assert _location(app, auth, FORWARDED).startswith("https://scim.acme.example/idp/scim/v2/")
    monkeypatch.setenv("SCIMCORE_BASE_URL", "https://public.example/")
    app = create_app(service)
    assert _location(app, auth, FORWARDED).startswith("https://public.example/scim/v2/")
    monkeypatch.setenv("SCIMCORE_TRUST_PROXY", "many")
    with pytest.raises(ValueError, match="0 or more"):
        create_app(service)


def test_example_app_takes_the_rate_limit_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``SCIMCORE_RATE_LIMIT`` reaches the service ``create_app()`` opens (issue #22): past
    the burst, 429 with ``Retry-After``."""
    monkeypatch.setenv("SCIMCORE_DATABASE_URL", f"sqlite:///{tmp_path / 'rate.db'}")
    monkeypatch.setenv("SCIMCORE_RATE_LIMIT", "0.001/2")
    app = create_app(deliver_mail=False)
    service = app.extensions["scimcore"]
    assert isinstance(service, ScimService)
    token = ensure_demo(service).token
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    codes = [client.get("/scim/v2/Users", headers=headers).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.get("/scim/v2/Users", headers=headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    monkeypatch.setenv("SCIMCORE_RATE_LIMIT", "off")
    assert create_app(deliver_mail=False).extensions["scimcore"].config.rate_limit is None


def test_base_url_values() -> None:
    assert public_base_url(environ={}) is None
    assert public_base_url("https://scim.example/", environ={}) == "https://scim.example"
    assert public_base_url(environ={"SCIMCORE_BASE_URL": "http://h:8080/x/"}) == "http://h:8080/x"
    for bad in ("ftp://h", "scim.example", "https://h?x=1", "https://u:p@h", "https://h:port"):
        with pytest.raises(ValueError, match="base URL"):
            public_base_url(bad, environ={})
    assert tenant_url("https://h") == "https://h/scim/v2"
    assert tenant_url("https://h/scim/v2/") == "https://h/scim/v2"  # already a Tenant URL
    assert listening_url("0.0.0.0", 8123) == "http://127.0.0.1:8123"
    assert listening_url("::", 8123) == "http://[::1]:8123"
    assert listening_url("10.0.0.5", 80) == "http://10.0.0.5:80"
    assert trusted_proxies(environ={}) == 0 and trusted_proxies(2, environ={}) == 2
    with pytest.raises(ValueError):
        trusted_proxies(-1, environ={})


# --- the demo credentials -----------------------------------------------------------------------


def test_demo_token_is_kept_across_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scim.db'}"
    keep = demo_credentials_path(url)
    assert keep == tmp_path / "scim.db.demo.json"
    first = ensure_demo(ScimService(SqlStorage(url)), keep=keep)
    assert stat.S_IMODE(keep.stat().st_mode) == 0o600
    assert json.loads(keep.read_text())["token"] == first.token
    service = ScimService(SqlStorage(url))  # a restart
    again = ensure_demo(service, keep=keep)
    assert again.token == first.token
    assert len(service.workspaces.list_tokens("demo")) == 1
    # a token deleted meanwhile is replaced (and the file rewritten), not shown again
    service.workspaces.delete_token("demo", first.token.split("_")[1])
    fresh = ensure_demo(service, keep=keep)
    assert fresh.token != first.token and json.loads(keep.read_text())["token"] == fresh.token
    # R2.5: a demo admin deactivated meanwhile is made active again, with a new token
    service.workspaces.deactivate_admin("demo", "admin@demo.example")
    revived = ensure_demo(service, keep=keep)
    assert revived.token != fresh.token and json.loads(keep.read_text())["token"] == revived.token
    states = {t.id: t.state for t in service.workspaces.list_tokens("demo")}
    assert states[fresh.token.split("_")[1]] == "dead"
    assert states[revived.token.split("_")[1]] == "active"
    fresh = revived
    # a file whose secret does not match its token is not believed
    keep.write_text(json.dumps({"token": fresh.token[:-4] + "AAAA"}))
    assert ensure_demo(service, keep=keep).token not in (fresh.token, fresh.token[:-4] + "AAAA")
    assert demo_credentials_path("memory://") is None
    assert demo_credentials_path("sqlite://") is None  # SQLite in memory


def test_demo_console_password_is_set_once_and_kept(tmp_path: Path) -> None:
    from scimcore_adapters.passwords import hash_password, verify_password

    url = f"sqlite:///{tmp_path / 'scim.db'}"
    keep = tmp_path / "scim.db.demo.json"
    first = ensure_demo(ScimService(SqlStorage(url)), keep=keep)
    assert first.admin == "admin@demo.example" and first.password
    assert first.password not in repr(first)
    service = ScimService(SqlStorage(url))
    admin = service.workspaces.get_admin("demo", "admin@demo.example")
    assert admin is not None and verify_password(admin.password_hash, first.password)
    stored_hash = admin.password_hash
    again = ensure_demo(service, keep=keep)  # a restart: the same password, not hashed anew
    assert again.password == first.password
    again_admin = service.workspaces.get_admin("demo", "admin@demo.example")
    assert again_admin is not None and again_admin.password_hash == stored_hash
    # an operator's own password stays theirs, and is not shown
    service.workspaces.set_password_hash("demo", "admin@demo.example", hash_password("mine-1234"))
    assert ensure_demo(service, keep=keep).password is None
    changed = service.workspaces.get_admin("demo", "admin@demo.example")
    assert changed is not None and verify_password(changed.password_hash, "mine-1234")
    assert demo_credentials_path("postgresql+psycopg://h/db") == Path("scimcore.demo.json")


# --- the servers, as processes ------------------------------------------------------------------


class Running:
    """A server process and the lines it printed at start."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # the start-up lines end with "Mail: ..."
            key, _, value = line.rstrip("\n").partition(": ")
            self.lines[key] = value
            if key == "Mail":
                break

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=20)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    servers: list[Running] = []
    yield servers
    for s in servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def _eventually(found: Callable[[], T], what: str, seconds: float = 20) -> T:
    """``found()`` once it is truthy (polling another process: no event to wait on)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_example_server_prints_its_lines_keeps_its_token_and_sends_mail(
    tmp_path: Path, running: list[Running]
) -> None:
    # §5, §7: the real address, one demo token across restarts, mail as .eml files by itself
    env = {"SCIMCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'scim.db'}"}
    for name in ("SCIMCORE_SMTP_URL", "SCIMCORE_BASE_URL", "SCIMCORE_MAIL_DIR"):
        env[name] = ""
    cmd = [sys.executable, str(ROOT / "examples" / "flask_server.py"), "--port", "0"]
    first = Running(cmd, tmp_path, env)
    running.append(first)
    tenant = first.lines["Tenant URL"]
    assert tenant.startswith("http://127.0.0.1:") and tenant.endswith("/scim/v2")
    assert not tenant.startswith("http://127.0.0.1:0/")
    token = first.lines["Secret Token"]
    assert token.startswith("scim_")
    assert first.lines["Mail"] == f".eml files in {tmp_path / 'scimcore-mail'}/"
    assert list(first.lines) == [
        "Tenant URL",
        "Secret Token",
        "Console",
        "Token endpoint",
        "Console sign-in",
        "Mail",
    ]
    base = tenant.removesuffix("/scim/v2")
    assert first.lines["Console"] == base + "/console"
    assert first.lines["Token endpoint"] == base + "/oauth/token"
    metadata_url = base + "/.well-known/oauth-authorization-server"
    with urllib.request.urlopen(metadata_url, timeout=10) as metadata:
        assert json.load(metadata)["token_endpoint"] == first.lines["Token endpoint"]
    email_address, _, password = first.lines["Console sign-in"].partition(" / ")
    assert email_address == "admin@demo.example" and len(password) >= 12
    with urllib.request.urlopen(base + "/console/sign-in", timeout=10) as page:
        assert page.status == 200 and b'name="password"' in page.read()
    assert stat.S_IMODE((tmp_path / "scim.db.secret-key").stat().st_mode) == 0o600

    request = urllib.request.Request(
        tenant + "/Users",
        data=json.dumps(USER).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        assert response.headers["Location"].startswith(tenant + "/Users/")
    folder = tmp_path / "scimcore-mail"
    _eventually(lambda: folder.is_dir() and any(folder.glob("*.eml")), "the activation mail")
    (eml,) = folder.glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "ann@contoso.com"
    body = message.get_body().get_content()  # type: ignore[union-attr]
    link = next(w for w in body.split() if w.startswith(base + "/activate/"))  # R3.7
    with urllib.request.urlopen(link, timeout=10) as page:  # looking does not consume it
        assert page.status == 200 and b"ann@contoso.com" in page.read()
    first.stop()

    second = Running([*cmd, "--base-url", "https://scim.acme.example"], tmp_path, env)
    running.append(second)
    assert second.lines["Secret Token"] == token
    assert second.lines["Console sign-in"] == first.lines["Console sign-in"]
    assert second.lines["Console"] == "https://scim.acme.example/console"
    assert second.lines["Tenant URL"] == "https://scim.acme.example/scim/v2"
    second.stop()


def test_scimcore_serve_prints_its_lines_and_uses_smtp_settings(
    tmp_path: Path, running: list[Running]
) -> None:
    env = {"SCIMCORE_SMTP_URL": "smtp://cards:n0t-shown@mail.acme.example:587"}
    cmd = [
        sys.executable, "-m", "scimcore_adapters.cli",
        "--database-url", f"sqlite:///{tmp_path / 'scim.db'}",
        "serve", "--port", "0", "--sender", "cards@acme.example",
    ]  # fmt: skip
    server = Running(cmd, tmp_path, env)
    running.append(server)
    assert server.lines["Tenant URL"].startswith("http://127.0.0.1:")
    assert (
        server.lines["Console"] == server.lines["Tenant URL"].removesuffix("/scim/v2") + "/console"
    )
    assert "Secret Token" not in server.lines and "Console sign-in" not in server.lines
    assert server.lines["Token endpoint"] == (
        server.lines["Tenant URL"].removesuffix("/scim/v2") + "/oauth/token"
    )
    assert server.lines["Mail"] == (
        "smtp://cards@mail.acme.example:587 (starttls), from cards@acme.example"
    )
    with urllib.request.urlopen(server.lines["Tenant URL"] + "/ServiceProviderConfig") as r:
        assert r.status == 200
    server.stop()
    assert server.proc.returncode == 0
    based = Running([*cmd, "--base-url", "https://scim.acme.example/"], tmp_path, env)
    running.append(based)
    assert based.lines["Tenant URL"] == "https://scim.acme.example/scim/v2"
    based.stop()


def test_scimcore_serve_on_a_taken_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "scimcore_adapters.cli",
                "--database-url",
                f"sqlite:///{tmp_path / 'scim.db'}",
                "serve",
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1 and done.stdout == ""
    notice, error = done.stderr.splitlines()  # the new database's notice, then the error
    assert notice.startswith("scimcore: creating a new database at ")
    assert error == f"scimcore: error: cannot serve on 127.0.0.1:{port}: Address already in use"


def test_the_server_extra_runs_the_asgi_example_under_uvicorn(tmp_path: Path) -> None:
    # §7: gunicorn and uvicorn come with the `server` extra; §6: the base URL under ASGI
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {r.split(">")[0] for r in extras["server"]} == {"gunicorn", "uvicorn"}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--port", str(port), "examples.asgi_app:app"],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "SCIMCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'scim.db'}",
            "SCIMCORE_DEMO": "1",
            "SCIMCORE_BASE_URL": "https://scim.acme.example",
            "SCIMCORE_SMTP_URL": "",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        token = proc.stdout.readline().removeprefix("Secret Token: ").strip()
        assert token.startswith("scim_")
        assert proc.stdout.readline() == f"Mail: .eml files in {tmp_path / 'scimcore-mail'}/\n"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/scim/v2/Users",
            data=json.dumps(USER).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
        )

        def created() -> str | None:
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return str(response.headers["Location"])
            except OSError:
                return None

        location = _eventually(created, "uvicorn to answer")
        assert location is not None and location.startswith(
            "https://scim.acme.example/scim/v2/Users/"
        )
        folder = tmp_path / "scimcore-mail"
        _eventually(lambda: folder.is_dir() and any(folder.glob("*.eml")), "the mail")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_token_generate_prints_the_tenant_url_only_from_a_base_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # §7: never a guessed port
    from scimcore_adapters.cli import main

    db = ["--database-url", f"sqlite:///{tmp_path / 'cli.db'}"]
    gen = ["token", "generate", "acme", "--admin", "it@acme.example", "--quiet"]
    monkeypatch.delenv("SCIMCORE_BASE_URL", raising=False)
    assert main([*db, "workspace", "create", "acme", "--admin", "it@acme.example"]) == 0
    capsys.readouterr()

    def generate(*extra: str, quiet: bool = False) -> tuple[str, str]:
        assert main([*db, *extra[:2], *gen[: 6 if quiet else 5], *extra[2:]]) == 0
        out, err = capsys.readouterr()
        return out, err

    out, err = generate()
    assert out.startswith("Secret Token: scim_") and "Tenant URL" not in out
    assert "give --base-url or set SCIMCORE_BASE_URL" in err and err.count("\n") == 1
    out, _ = generate("--base-url", "https://global.example", "--base-url", "https://sub.example")
    assert out.startswith("Tenant URL: https://sub.example/scim/v2\n")  # the command's own wins
    out, _ = generate("--base-url", "https://global.example")
    assert out.startswith("Tenant URL: https://global.example/scim/v2\n")
    monkeypatch.setenv("SCIMCORE_BASE_URL", "https://env.example/")
    out, err = generate()
    assert out.startswith("Tenant URL: https://env.example/scim/v2\nSecret Token: scim_")
    assert err == ""
    out, err = generate(quiet=True)
    assert out.startswith("scim_") and out.count("\n") == 1 and err == ""


def test_secret_key_is_made_once_and_shared(tmp_path: Path) -> None:
    from scimcore_adapters.bootstrap import secret_key

    url = f"sqlite:///{tmp_path / 'scim.db'}"
    first = secret_key(url, environ={})
    assert len(first) >= 32 and secret_key(url, environ={}) == first
    assert (tmp_path / "scim.db.secret-key").read_text() == first
    assert [p.name for p in tmp_path.iterdir()] == ["scim.db.secret-key"]  # no partial left
    assert secret_key(url, environ={"SCIMCORE_SECRET_KEY": "from-env"}) == "from-env"
    assert secret_key("memory://", environ={}) != secret_key("memory://", environ={})


def test_links_in_mail_only_where_the_activation_pages_are_served() -> None:
    from scimcore_adapters.serving import create_flask_app, links_base

    service = ScimService(MemoryStorage())
    with_console = create_flask_app(service, secret_key="k")
    assert links_base(with_console, "https://scim.acme.example") == "https://scim.acme.example"
    assert links_base(with_console, None) is None
    assert with_console.test_client().get("/activate/nope").status_code in (400, 404, 410)
    scim_only = create_flask_app(service)  # no session key: no console, no activation pages
    assert links_base(scim_only, "https://scim.acme.example") is None
    assert scim_only.test_client().get("/console/").status_code == 404
