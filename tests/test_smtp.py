"""The SMTP mailer against a real SMTP server (aiosmtpd) started by the tests: plain, STARTTLS,
implicit TLS and AUTH; and outbox delivery with retries through it."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from scimcore import ScimService
from scimcore.outbox import deliver_pending
from scimcore_adapters.smtp import SmtpMailer
from tests.conftest import Client, free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(
            (
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                bytes(envelope.original_content or b""),
            )
        )
        return "250 OK"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _client_context(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    return ctx


def _authenticator(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer",
        b"s3cret",
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def server(
    request: pytest.FixtureRequest, tls_files: tuple[Path, Path]
) -> Iterator[tuple[Inbox, SmtpMailer]]:
    mode: str = request.param
    cert, key = tls_files
    inbox = Inbox()
    port = free_port()
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": port}
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(cert), str(key))
    if mode == "ssl":
        kwargs["ssl_context"] = server_ctx
    if mode in ("starttls", "auth"):
        kwargs["tls_context"] = server_ctx
        kwargs["require_starttls"] = True
    if mode == "auth":
        kwargs["authenticator"] = _authenticator
        kwargs["auth_required"] = True
    controller = Controller(inbox, **kwargs)
    controller.start()
    security = {"plain": "plain", "ssl": "ssl", "starttls": "starttls", "auth": "starttls"}[mode]
    mailer = SmtpMailer(
        host="localhost" if mode != "plain" else "127.0.0.1",
        port=port,
        sender="cards@acme.example",
        security=security,  # type: ignore[arg-type]
        username="mailer" if mode == "auth" else None,
        password="s3cret" if mode == "auth" else None,
        timeout=10,
        ssl_context=_client_context(cert),
    )
    try:
        yield inbox, mailer
    finally:
        controller.stop()


@pytest.mark.parametrize("server", ["plain", "starttls", "ssl", "auth"], indirect=True)
def test_smtp_mailer_delivers(server: tuple[Inbox, SmtpMailer]) -> None:
    inbox, mailer = server
    mailer.send("ann@contoso.com", "Activate your card", "Hello Ann")
    assert len(inbox.messages) == 1
    sender, rcpts, raw = inbox.messages[0]
    assert (sender, rcpts) == ("cards@acme.example", ["ann@contoso.com"])
    msg = message_from_bytes(raw)
    assert msg["Subject"] == "Activate your card"
    assert "Hello Ann" in msg.get_payload()


@pytest.mark.parametrize("server", ["auth"], indirect=True)
def test_wrong_password_is_refused(server: tuple[Inbox, SmtpMailer]) -> None:
    import smtplib

    import attrs

    inbox, mailer = server
    with pytest.raises(smtplib.SMTPAuthenticationError):
        attrs.evolve(mailer, password="wrong").send("a@x.test", "s", "b")
    assert inbox.messages == []
    assert "s3cret" not in repr(mailer)


@pytest.mark.parametrize("server", ["plain"], indirect=True)
def test_outbox_delivery_retries_then_sends(
    server: tuple[Inbox, SmtpMailer], service: ScimService, client: Client
) -> None:
    # R3.5: retries with backoff, marked sent, exactly one mail per person
    inbox, mailer = server
    client("POST", "/Users", {"userName": "ann@contoso.com"})
    down = SmtpMailer(host="127.0.0.1", port=free_port(), timeout=2)
    first = deliver_pending(service.storage, down, service.runtime, base_delay=timedelta(0))
    assert (first.sent, first.retrying) == (0, 1)
    mail = service.product.outbox("acme")[0]
    assert mail.status == "pending" and mail.attempts == 1 and mail.last_error
    second = deliver_pending(service.storage, mailer, service.runtime, base_delay=timedelta(0))
    assert second.sent == 1
    assert [m[1] for m in inbox.messages] == [["ann@contoso.com"]]
    assert deliver_pending(service.storage, mailer, service.runtime).sent == 0
    assert len(inbox.messages) == 1
    assert service.product.outbox("acme")[0].status == "sent"


def test_gives_up_after_max_attempts(service: ScimService, client: Client) -> None:
    client("POST", "/Users", {"userName": "ann@contoso.com"})
    down = SmtpMailer(host="127.0.0.1", port=free_port(), timeout=2)
    for _ in range(3):
        deliver_pending(
            service.storage, down, service.runtime, max_attempts=3, base_delay=timedelta(0)
        )
    mail = service.product.outbox("acme")[0]
    assert (mail.status, mail.attempts) == ("failed", 3)
