"""Mail that leaves by itself (issue 17 §5): settings from one place, the ``.eml`` folder mailer,
delivery reports with reasons, retrying a failed mail, and the background delivery worker."""

from __future__ import annotations

import email
import functools
import json
import logging
import threading
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from scimcore import ScimService
from scimcore.outbox import DeliveryReport, LastAttempt, deliver_pending, last_attempt, retry_mail
from scimcore.workspaces import WorkspaceError
from scimcore_adapters.cli import main
from scimcore_adapters.mail import (
    DeliveryWorker,
    EmlFolderMailer,
    MailSettingsError,
    mail_settings,
    parse_smtp_url,
)
from scimcore_adapters.smtp import SmtpMailer
from scimcore_adapters.sql import SqlStorage
from tests.conftest import Client, counting_runtime, free_port

SECRET = "pa55-w0rd"


class FailingMailer:
    """Refuses every message with a reason, as an SMTP server that is down would."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, to: str, subject: str, body: str) -> None:
        self.calls += 1
        raise ConnectionRefusedError(f"[Errno 111] Connection refused ({to})")


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "security", "user", "password"),
    [
        ("smtp://relay.internal", "relay.internal", 25, "plain", None, None),
        ("smtp://u:pw1@mail.example:587", "mail.example", 587, "starttls", "u", "pw1"),
        ("smtp://u@x.example:p%2Fq@mail.example:2525?security=starttls", "mail.example", 2525,
         "starttls", "u@x.example", "p/q"),
        ("smtps://cards:s3cret@smtp.example", "smtp.example", 465, "ssl", "cards", "s3cret"),
        ("smtp://mail.example?security=ssl", "mail.example", 465, "ssl", None, None),
    ],
)  # fmt: skip
def test_smtp_url_parses(
    url: str, host: str, port: int, security: str, user: str | None, password: str | None
) -> None:
    mailer = parse_smtp_url(url, "cards@acme.example")
    assert (mailer.host, mailer.port, mailer.security) == (host, port, security)
    assert (mailer.username, mailer.password, mailer.sender) == (
        user,
        password,
        "cards@acme.example",
    )
    assert password is None or password not in repr(mailer)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"http://u:{SECRET}@mail.example", "must start with smtp:// or smtps://"),
        (f"smtp://u:{SECRET}@", "names no host"),
        (f"smtp://u:{SECRET}@mail.example:notaport", "does not parse"),
        (f"smtp://u:{SECRET}/x@mail.example", "does not parse"),  # an unencoded / in a password
        (f"smtp://u:{SECRET}@mail.example?security=tls", "plain, starttls or ssl"),
        (f"smtp://u:{SECRET}@mail.example?timeout=3", "only ?security="),
        (f"smtps://u:{SECRET}@mail.example?security=starttls", "implicit TLS"),
        (f"smtp://u:{SECRET}@mail.example/inbox", "path"),
    ],
)
def test_a_bad_smtp_url_is_one_line_without_the_password(url: str, says: str) -> None:
    with pytest.raises(MailSettingsError) as caught:
        parse_smtp_url(url)
    message = str(caught.value)
    assert says in message and "\n" not in message
    assert SECRET not in message and SECRET[:4] not in message


def test_no_smtp_means_the_eml_folder_and_flags_win_over_the_environment(tmp_path: Path) -> None:
    settings = mail_settings(environ={})
    assert settings.smtp is None
    mailer = settings.mailer()
    assert isinstance(mailer, EmlFolderMailer) and mailer.folder == Path("scimcore-mail")
    assert settings.describe() == f".eml files in {Path('scimcore-mail').resolve()}/"

    env = {
        "SCIMCORE_SMTP_URL": f"smtp://cards:{SECRET}@mail.example:587",
        "SCIMCORE_MAIL_FROM": "cards@acme.example",
        "SCIMCORE_MAIL_DIR": str(tmp_path),
    }
    from_env = mail_settings(environ=env)
    assert from_env.smtp is not None
    assert (from_env.smtp.host, from_env.smtp.port, from_env.smtp.security) == (
        "mail.example",
        587,
        "starttls",
    )
    assert from_env.smtp.password == SECRET and from_env.sender == "cards@acme.example"
    assert SECRET not in from_env.describe() and "mail.example:587" in from_env.describe()

    flagged = mail_settings(
        smtp_host="relay.internal", smtp_port=2525, smtp_user="relay", sender="x@y.example",
        environ=env,
    )  # fmt: skip
    assert flagged.smtp is not None
    assert (flagged.smtp.host, flagged.smtp.port, flagged.smtp.username) == (
        "relay.internal",
        2525,
        "relay",
    )
    assert flagged.smtp.password == SECRET  # the URL's, as no flag gave another
    assert flagged.smtp.sender == "x@y.example"
    # --smtp-security alone takes its own default port, unless the URL named one
    assert mail_settings(smtp_host="h", smtp_security="ssl", environ={}).smtp == SmtpMailer(
        host="h", port=465, security="ssl"
    )
    ssl_on_url_port = mail_settings(smtp_security="ssl", environ=env).smtp
    assert ssl_on_url_port is not None and ssl_on_url_port.port == 587
    assert mail_settings(mail_dir=str(tmp_path / "m"), environ=env).mail_dir == tmp_path / "m"


def test_smtp_options_without_a_host_are_refused() -> None:
    with pytest.raises(MailSettingsError, match="need a host"):
        mail_settings(smtp_user="cards", environ={})
    with pytest.raises(MailSettingsError, match=r"1\.\.65535"):
        mail_settings(smtp_host="h", smtp_port=70000, environ={})


# --- the .eml folder ----------------------------------------------------------------------------


def test_eml_folder_writes_complete_rfc5322_messages(tmp_path: Path) -> None:
    folder = tmp_path / "mail" / "nested"
    mailer = EmlFolderMailer(folder, "Cards <cards@acme.example>")
    mailer.send("ann@contoso.com", "Activate your card", "Hello Ann,\nfollow https://x/activate/1")
    mailer.send("ann@contoso.com", "Activate your card", "second")
    files = sorted(folder.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]  # no temporary file left behind
    raw = files[0].read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line ends
    messages = [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    bodies = sorted(m.get_content().replace("\r\n", "\n") for m in messages)
    assert bodies == ["Hello Ann,\nfollow https://x/activate/1\n", "second\n"]
    first = messages[0]
    assert first["To"] == "ann@contoso.com" and first["Subject"] == "Activate your card"
    assert first["From"] == "Cards <cards@acme.example>"
    assert first["Date"] and first["Message-ID"].endswith("@acme.example>")
    assert messages[0]["Message-ID"] != messages[1]["Message-ID"]
    # a long link stays whole in the raw file (a reader may open it in a text editor)
    link = "https://scim.acme.example/activate/" + "A1b2" * 20
    mailer.send("bob@contoso.com", "Activate your card", f"Activate your card: {link}\n")
    assert any(link.encode() in f.read_bytes() for f in folder.iterdir())
    greeting = "Grüße, " + "x" * 100  # not ASCII: encoded, and decoded back whole
    mailer.send("bob@contoso.com", "Hallo", greeting)
    contents = [
        email.message_from_bytes(f.read_bytes(), policy=policy.default).get_content()
        for f in folder.iterdir()
    ]
    assert greeting + "\n" in [c.replace("\r\n", "\n") for c in contents]


def test_eml_folder_that_cannot_be_written_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        EmlFolderMailer(blocker / "mail").send("a@b.example", "s", "b")


# --- delivery reports and retry -----------------------------------------------------------------


def test_report_names_each_failure_with_its_reason(service: ScimService, client: Client) -> None:
    # R3.5: a transport failure is reported, retried, then given up; its time and reason kept
    client.create("ann@contoso.com", emails=[{"value": "ann@contoso.com", "primary": True}])
    mailer = FailingMailer()
    first = deliver_pending(service.storage, mailer, service.runtime, max_attempts=2)
    assert (first.sent, first.retrying, first.failed, first.ok) == (0, 1, 0, False)
    (failure,) = first.failures
    assert failure.to == "ann@contoso.com" and failure.attempts == 1 and not failure.final
    assert failure.reason.startswith("ConnectionRefusedError: [Errno 111]")
    assert failure.next_attempt_at is not None and failure.next_attempt_at > failure.at
    mail = service.product.outbox("acme")[0]
    assert last_attempt(mail).at == failure.at and last_attempt(mail).error == failure.reason
    # not due yet: nothing is tried
    assert deliver_pending(service.storage, mailer, service.runtime) == DeliveryReport()
    assert mailer.calls == 1


def _fail_for_good(service: ScimService) -> str:
    """Deliver the acme outbox through a failing mailer until its one mail is ``failed``."""
    report = deliver_pending(service.storage, FailingMailer(), service.runtime, max_attempts=1)
    assert report.failed == 1 and report.failures[0].final
    (mail,) = service.product.outbox("acme")
    assert mail.status == "failed" and mail.attempts == 1
    return mail.id


def test_a_failed_mail_can_be_retried(any_url: str) -> None:
    # R3.5 on SQLite and PostgreSQL: failed -> retry -> pending (due now, fresh attempts) -> sent
    storage = SqlStorage(any_url)
    service = ScimService(storage, runtime=counting_runtime())
    service.workspaces.create("acme", "admin@acme.example")
    token = service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    Client(service, token).create("ann@contoso.com")
    mail_id = _fail_for_good(service)
    failed = service.product.outbox("acme")[0]
    assert last_attempt(failed).at is not None and "ConnectionRefused" in str(failed.last_error)

    queued = retry_mail(service.storage, service.runtime, "acme", mail_id)
    assert (queued.status, queued.attempts) == ("pending", 0)
    stored = service.product.outbox("acme")[0]
    assert (stored.status, stored.attempts, stored.last_error) == (
        "pending",
        0,
        failed.last_error,
    )

    class Ok:
        sent: list[str] = []

        def send(self, to: str, subject: str, body: str) -> None:
            self.sent.append(to)

    ok = Ok()
    report = deliver_pending(service.storage, ok, service.runtime)
    assert (report.sent, report.ok, ok.sent) == (1, True, ["ann@contoso.com"])
    sent = service.product.outbox("acme")[0]
    assert sent.status == "sent" and last_attempt(sent) == LastAttempt(sent.sent_at, None)
    with pytest.raises(WorkspaceError, match="is sent: only a failed mail"):
        retry_mail(service.storage, service.runtime, "acme", mail_id)
    storage.close()


def test_retry_stays_in_its_workspace(service: ScimService, client: Client) -> None:
    # R1.1: a mail id of workspace acme is unknown in workspace beta
    service.workspaces.create("beta", "admin@beta.example")
    client.create("ann@contoso.com")
    mail_id = _fail_for_good(service)
    with pytest.raises(WorkspaceError, match="no mail"):
        retry_mail(service.storage, service.runtime, "beta", mail_id)
    with pytest.raises(WorkspaceError, match="no workspace"):
        retry_mail(service.storage, service.runtime, "nope", mail_id)
    assert service.product.outbox("acme")[0].status == "failed"


# --- the background worker ----------------------------------------------------------------------


@pytest.fixture
def stopping() -> Iterator[list[DeliveryWorker]]:
    workers: list[DeliveryWorker] = []
    yield workers
    for w in workers:
        w.stop()


def test_worker_delivers_in_the_background_and_stops(
    service: ScimService, client: Client, tmp_path: Path, stopping: list[DeliveryWorker]
) -> None:
    # R3.5: mail leaves by itself while the server runs
    client.create("ann@contoso.com")
    delivered = threading.Event()
    reports: list[DeliveryReport] = []

    def on_report(report: DeliveryReport) -> None:
        reports.append(report)
        if report.sent:
            delivered.set()

    mailer = EmlFolderMailer(tmp_path / "mail")
    deliver = functools.partial(deliver_pending, service.storage, mailer, service.runtime)
    worker = DeliveryWorker(deliver, interval=60, on_report=on_report)
    stopping.append(worker.start())
    assert delivered.wait(10)
    assert [f.name.endswith(".eml") for f in (tmp_path / "mail").iterdir()] == [True]
    assert worker.running and worker._thread.daemon
    worker.stop()
    assert not worker.running


def test_worker_survives_an_exception_and_logs_without_secrets(
    caplog: pytest.LogCaptureFixture, stopping: list[DeliveryWorker]
) -> None:
    second_run = threading.Event()
    runs = 0

    def deliver() -> DeliveryReport:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("the database went away")
        second_run.set()
        return DeliveryReport()

    caplog.set_level(logging.WARNING, logger="scimcore_adapters.mail")
    worker = DeliveryWorker(deliver, interval=60)
    stopping.append(worker.start())
    for _ in range(50):  # woken until the second run happened (no sleeps: wake() and waits)
        worker.wake()
        if second_run.wait(0.2):
            break
    assert second_run.is_set() and worker.running
    assert any("delivery run failed" in r.getMessage() for r in caplog.records)


def test_worker_logs_each_failed_attempt_without_the_password(
    service: ScimService, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    client.create("ann@contoso.com")
    down = parse_smtp_url(f"smtp://cards:{SECRET}@127.0.0.1:{free_port()}")
    worker = DeliveryWorker(
        functools.partial(deliver_pending, service.storage, down, service.runtime)
    )
    caplog.set_level(logging.WARNING, logger="scimcore_adapters.mail")
    report = worker.run_once()
    assert report is not None and report.retrying == 1
    (record,) = [r for r in caplog.records if r.name == "scimcore_adapters.mail"]
    assert "ann@contoso.com" in record.getMessage() and "attempt 1 failed" in record.getMessage()
    assert SECRET not in caplog.text


def test_worker_refuses_a_nonpositive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        DeliveryWorker(DeliveryReport, interval=0)


# --- the CLI: mail deliver, mail retry, outbox --------------------------------------------------


def _run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_mail_deliver_reports_failures_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # R3.5 through the CLI: the .eml default, a failure's reason on stderr and exit 1, retry
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCIMCORE_SMTP_URL", raising=False)
    monkeypatch.delenv("SCIMCORE_MAIL_DIR", raising=False)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    service = ScimService(SqlStorage(url))
    service.workspaces.create("acme", "admin@acme.example")
    client = Client(
        service, service.workspaces.generate_token("acme", "admin@acme.example").plaintext
    )
    client.create("ann@contoso.com")
    db = ("--database-url", url)

    code, out, err = _run_cli(capsys, *db, "mail", "deliver")
    assert (code, out, err) == (0, "sent 1, retrying 0, failed 0\n", "")
    (eml,) = (tmp_path / "scimcore-mail").iterdir()
    assert email.message_from_bytes(eml.read_bytes())["To"] == "ann@contoso.com"

    client.create("bob@contoso.com")
    down = f"smtp://cards:{SECRET}@127.0.0.1:{free_port()}"
    monkeypatch.setenv("SCIMCORE_SMTP_URL", down)
    code, out, err = _run_cli(capsys, *db, "mail", "deliver", "--json", "--max-attempts", "1")
    report = json.loads(out)
    assert code == 1 and (report["sent"], report["failed"]) == (0, 1)
    (failure,) = report["failures"]
    assert failure["to"] == "bob@contoso.com" and failure["final"] is True
    assert failure["reason"].startswith("ConnectionRefusedError")
    assert err.count("\n") == 1 and f"mail {failure['id']} to bob@contoso.com failed" in err
    assert "given up" in err and SECRET not in out + err

    rows = {r["to"]: r for r in json.loads(_run_cli(capsys, *db, "outbox", "acme", "--json")[1])}
    bob = rows["bob@contoso.com"]
    assert {"id", "to", "kind", "user_name", "status"} <= set(bob)  # the keys scripts rely on
    assert (bob["status"], bob["attempts"], bob["user_name"]) == ("failed", 1, "bob@contoso.com")
    assert bob["last_error"].startswith("ConnectionRefusedError") and bob["last_attempt_at"]
    assert (rows["ann@contoso.com"]["status"], rows["ann@contoso.com"]["last_error"]) == (
        "sent",
        None,
    )
    table = _run_cli(capsys, *db, "outbox", "acme")[1]
    assert f"{bob['id']}  activation  bob@contoso.com  failed  attempts 1  last " in table
    assert "error: ConnectionRefusedError" in table

    code, out, _ = _run_cli(capsys, *db, "mail", "retry", "acme", bob["id"])
    assert (code, out) == (0, f"mail {bob['id']} to bob@contoso.com queued again\n")
    code, _, err = _run_cli(capsys, *db, "mail", "retry", "acme", bob["id"])
    assert code == 1 and err == (
        f"scimcore: error: mail {bob['id']} is pending: only a failed mail is retried\n"
    )
    # the flags win over the environment: delivered into the folder given by --mail-dir
    monkeypatch.delenv("SCIMCORE_SMTP_URL")
    out_dir = str(tmp_path / "out")
    base = ("--base-url", "https://scim.acme.example")
    code, out, _ = _run_cli(capsys, *db, "mail", "deliver", "--mail-dir", out_dir, *base)
    assert (code, out) == (0, "sent 1, retrying 0, failed 0\n")
    (retried,) = (tmp_path / "out").iterdir()
    assert b"https://scim.acme.example/activate/" in retried.read_bytes()  # R3.7
    assert b"/activate/" not in eml.read_bytes()  # without a public URL: no link


def test_cli_bad_mail_settings_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", f"sqlite:///{tmp_path / 'cli.db'}")
    assert _run_cli(capsys, *db, "workspace", "create", "acme", "--admin", "a@acme.example")[0] == 0
    monkeypatch.setenv("SCIMCORE_SMTP_URL", f"smtp://u:{SECRET}@host?security=tls")
    code, out, err = _run_cli(capsys, *db, "mail", "deliver")
    assert (code, out) == (1, "")
    assert err == "scimcore: error: security must be plain, starttls or ssl, not 'tls'\n"
    monkeypatch.delenv("SCIMCORE_SMTP_URL")
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    code, _, err = _run_cli(
        capsys, *db, "mail", "deliver", "--smtp-host", "h", "--smtp-password-env", "NO_SUCH_VAR"
    )
    assert code == 1 and "NO_SUCH_VAR is unset" in err and err.count("\n") == 1


def test_activation_mail_gets_its_link_when_delivered_and_an_inactive_person_none(
    service: ScimService, client: Client
) -> None:
    # R3.7: the link is made at delivery, on the public URL; R5.1: none for an inactive person
    from scimcore.outbox import RecordingMailer

    patch = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    client.create("ann@contoso.com")
    mailer = RecordingMailer()
    report = deliver_pending(
        service.storage, mailer, service.runtime, base_url="https://scim.acme.example"
    )
    assert report.sent == 1
    ((to, _, body),) = mailer.sent
    assert to == "ann@contoso.com" and "https://scim.acme.example/activate/" in body
    assert "/activate/" not in service.product.outbox("acme")[0].body  # no secret stored

    bob = client.create("bob@contoso.com")

    def set_active(value: bool) -> None:
        ops = {
            "schemas": [patch],
            "Operations": [{"op": "replace", "path": "active", "value": value}],
        }
        assert client("PATCH", f"/Users/{bob['id']}", ops).status == 200

    set_active(False)
    report = deliver_pending(service.storage, mailer, service.runtime, base_url="https://x")
    (failure,) = report.failures
    assert failure.final and failure.attempts == 1 and failure.reason.startswith("ActivationError")
    assert report.failed == 1 and len(mailer.sent) == 1
    set_active(True)
    retry_mail(service.storage, service.runtime, "acme", failure.mail_id)
    report = deliver_pending(service.storage, mailer, service.runtime, base_url="https://x")
    assert report.sent == 1 and "https://x/activate/" in mailer.sent[-1][2]
