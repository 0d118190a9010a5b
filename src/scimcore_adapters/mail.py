"""Mail settings from one place, the ``.eml`` folder mailer, and the background delivery worker.

Settings (:func:`mail_settings`): an SMTP URL (``--smtp-url`` or ``$SCIMCORE_SMTP_URL``)::

    smtp://user:pass@host:587?security=starttls     smtps://user:pass@host    smtp://relay:25

and the ``--smtp-*`` flags, which win over the URL field by field; the sender from ``--sender``
or ``$SCIMCORE_MAIL_FROM``. With no SMTP configured the mailer is the embedded default, an
:class:`EmlFolderMailer` writing each message as an ``.eml`` file into ``./scimcore-mail/``
(``--mail-dir`` or ``$SCIMCORE_MAIL_DIR``): open one with a mail client, follow its link.

:class:`DeliveryWorker` runs delivery in a daemon thread while a server runs (``scimcore
serve``, the example server); a host app may use it too, or call
:func:`scimcore.outbox.deliver_pending` from its own scheduler. A password is never logged,
printed or put in a ``repr``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email import policy
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import get_args
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs
from attrs import frozen

from scimcore import ScimService
from scimcore.outbox import DeliveryReport, Mailer, deliver_pending

from .smtp import Security, SmtpMailer, compose

__all__ = [
    "DEFAULT_GAP",
    "DEFAULT_INTERVAL",
    "DEFAULT_MAIL_DIR",
    "DEFAULT_SENDER",
    "DeliveryWorker",
    "EmlFolderMailer",
    "MailSettings",
    "MailSettingsError",
    "add_mail_arguments",
    "mail_settings",
    "mail_settings_from_args",
    "parse_smtp_url",
    "plain_message",
    "start_delivery",
]

_log = logging.getLogger(__name__)

DEFAULT_MAIL_DIR = "scimcore-mail"
DEFAULT_SENDER = "scimcore@localhost"
#: Seconds between two delivery runs of a :class:`DeliveryWorker`.
DEFAULT_INTERVAL = 5.0
#: The fewest seconds between the starts of two runs of a :class:`DeliveryWorker` that mail
#: keeps waking: the first mail after a quiet spell leaves at once, a burst's mail in runs
#: of many (a run costs a few transactions whatever its size; benchmarks/NOTES.md, session 17).
DEFAULT_GAP = 0.1

_DEFAULT_PORTS = {"plain": 25, "starttls": 587, "ssl": 465}
_UNPARSED = (
    "the SMTP URL does not parse: smtp://USER:PASSWORD@HOST:PORT?security=starttls, with "
    "any / ? # : in USER or PASSWORD percent-encoded (%2F %3F %23 %3A)"
)


class MailSettingsError(ValueError):
    """A mail setting that cannot be used; the message is one line and shows no password."""


#: What :func:`plain_message` writes as it is: an address ``local@domain`` or ``Name
#: <local@domain>`` (letters, digits, single spaces), a subject of printable ASCII, single
#: spaces, short enough for one line, and a body of printable ASCII lines (tabs allowed).
_ADDRESS = re.compile(
    r"([A-Za-z0-9]+(?: [A-Za-z0-9]+)* <)?"
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?(1)>)"
)
_SUBJECT = re.compile(r"[!-~]+(?: [!-~]+)*")
_BODY = re.compile(r"(?:[ -~\t]{0,998}\n)*[ -~\t]{0,998}")


def plain_message(sender: str, to: str, subject: str, body: str) -> bytes | None:
    """The bytes ``compose(sender, to, subject, body).as_bytes(policy=policy.SMTP)`` gives
    (:func:`scimcore_adapters.smtp.compose`) when every part is plain ASCII that needs no
    encoding, folding or quoting, written straight out; ``None`` for anything else (the
    caller composes it with the ``email`` package). The ``email`` package's header objects
    were 45 % of the CPU of delivering one mail to the ``.eml`` folder (session 17);
    ``tests/test_mail_batches.py`` holds both to the same bytes."""
    if not (
        _ADDRESS.fullmatch(sender)
        and _ADDRESS.fullmatch(to)
        and _SUBJECT.fullmatch(subject)
        and len(subject) <= 69  # "Subject: " and it on one line of 78
        and "=?" not in subject
        and _BODY.fullmatch(body)
    ):
        return None
    domain = sender.rpartition("@")[2].strip(" >") or "localhost"
    lines = body.split("\n")
    if lines[-1] == "":  # the email package ends the body with one line end, as here
        lines.pop()
    text = "".join(f"{line}\r\n" for line in lines) or "\r\n"
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(datetime.now(timezone.utc))}\r\n"
        f"Message-ID: {make_msgid(domain=domain)}\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\nMIME-Version: 1.0\r\n\r\n"
        f"{text}"
    ).encode("ascii")


@frozen
class EmlFolderMailer:
    """A :class:`~scimcore.outbox.Mailer` that writes each message as a complete RFC 5322
    ``.eml`` file (CRLF line ends) into ``folder``, created when first needed. File names
    sort by time and never collide (a random part); a file appears complete or not at all (it
    is written under a temporary name, then renamed)."""

    folder: Path
    sender: str = DEFAULT_SENDER

    def send(self, to: str, subject: str, body: str) -> None:
        """Write one message; raises ``OSError`` when the folder cannot be written."""
        data = plain_message(self.sender, to, subject, body)
        if data is None:
            data = compose(self.sender, to, subject, body).as_bytes(policy=policy.SMTP)
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex}.eml"
        partial = self.folder / f".{name}.partial"
        try:
            with open(partial, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, self.folder / name)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def describe(self) -> str:
        """Where mail goes: ``.eml`` files in the folder (absolute)."""
        return f".eml files in {self.folder.resolve()}/"


@frozen
class MailSettings:
    """Where mail goes: ``smtp`` when SMTP is configured, else ``.eml`` files in ``mail_dir``."""

    smtp: SmtpMailer | None
    mail_dir: Path = Path(DEFAULT_MAIL_DIR)
    sender: str = DEFAULT_SENDER

    def mailer(self) -> SmtpMailer | EmlFolderMailer:
        """The mailer these settings describe."""
        return self.smtp if self.smtp is not None else EmlFolderMailer(self.mail_dir, self.sender)

    def describe(self) -> str:
        """One line for ``Mail: ...`` at start-up; never the password."""
        return self.mailer().describe()


def parse_smtp_url(url: str, sender: str = DEFAULT_SENDER) -> SmtpMailer:
    """An :class:`~scimcore_adapters.smtp.SmtpMailer` from ``smtp://[user[:pass]@]host[:port]
    [?security=plain|starttls|ssl]`` or ``smtps://...`` (implicit TLS). User and password are
    percent-decoded. The port defaults to the security's (25, 587, 465); ``smtp://`` without
    ``security`` is ``starttls`` on port 587 and ``plain`` otherwise. Raises
    :class:`MailSettingsError` (without the password) for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:  # the message may quote a piece of the password: not shown
        raise MailSettingsError(_UNPARSED) from None
    if "@" in url and parts.username is None:
        raise MailSettingsError(_UNPARSED)
    if parts.scheme not in ("smtp", "smtps"):
        raise MailSettingsError(
            f"the SMTP URL must start with smtp:// or smtps://, not {parts.scheme or '(none)'}://"
        )
    if not parts.hostname:
        raise MailSettingsError("the SMTP URL names no host (smtp://user:pass@HOST:587)")
    if parts.path not in ("", "/") or parts.fragment:
        raise MailSettingsError("the SMTP URL has a path or fragment: only ?security= is allowed")
    options = dict(query)
    unknown = sorted(set(options) - {"security"})
    if unknown or len(query) != len(options):
        raise MailSettingsError(f"the SMTP URL takes only ?security=, not {', '.join(unknown)}")
    security = options.get("security")
    if security is None:
        security = "ssl" if parts.scheme == "smtps" else "starttls" if port == 587 else "plain"
    if security not in get_args(Security):
        raise MailSettingsError(f"security must be plain, starttls or ssl, not {security!r}")
    if parts.scheme == "smtps" and security != "ssl":
        raise MailSettingsError("smtps:// is implicit TLS: leave out ?security= or use smtp://")
    return SmtpMailer(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[security],
        sender=sender,
        security=security,  # type: ignore[arg-type]  # checked against Security above
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def mail_settings(
    *,
    smtp_url: str | None = None,
    smtp_host: str | None = None,
    smtp_port: int | None = None,
    smtp_security: str | None = None,
    smtp_user: str | None = None,
    smtp_password: str | None = None,
    sender: str | None = None,
    mail_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> MailSettings:
    """The mail settings from explicit values (the flags) over the environment
    (``SCIMCORE_SMTP_URL``, ``SCIMCORE_MAIL_FROM``, ``SCIMCORE_MAIL_DIR``): SMTP when a URL or
    a host is given, field by field with the explicit values winning; else the ``.eml``
    folder. Raises :class:`MailSettingsError`."""
    env = os.environ if environ is None else environ
    sender = sender or env.get("SCIMCORE_MAIL_FROM") or DEFAULT_SENDER
    url = smtp_url or env.get("SCIMCORE_SMTP_URL")
    folder = Path(mail_dir or env.get("SCIMCORE_MAIL_DIR") or DEFAULT_MAIL_DIR)
    if not url and not smtp_host:
        if any(v is not None for v in (smtp_port, smtp_security, smtp_user, smtp_password)):
            raise MailSettingsError("SMTP options need a host: --smtp-host or --smtp-url")
        return MailSettings(None, folder, sender)
    smtp = parse_smtp_url(url, sender) if url else SmtpMailer(sender=sender)
    security = smtp.security
    port = smtp.port
    if smtp_security is not None:
        if smtp_security not in get_args(Security):
            raise MailSettingsError(
                f"security must be plain, starttls or ssl, not {smtp_security!r}"
            )
        security = smtp_security  # type: ignore[assignment]  # checked against Security
        if not (url and urlsplit(url).port):
            port = _DEFAULT_PORTS[security]
    if smtp_port is not None:
        if not 0 < smtp_port < 65536:
            raise MailSettingsError(f"the SMTP port must be 1..65535, not {smtp_port}")
        port = smtp_port
    smtp = attrs.evolve(
        smtp,
        host=smtp_host or smtp.host,
        port=port,
        security=security,
        username=smtp.username if smtp_user is None else smtp_user,
        password=smtp.password if smtp_password is None else smtp_password,
    )
    return MailSettings(smtp, folder, sender)


def add_mail_arguments(parser: argparse.ArgumentParser) -> None:
    """The mail options shared by ``scimcore mail deliver``, ``scimcore serve`` and the
    example server (read back with :func:`mail_settings_from_args`)."""
    group = parser.add_argument_group(
        "mail", "Where mail goes (default: $SCIMCORE_SMTP_URL, else .eml files in a folder)"
    )
    group.add_argument(
        "--smtp-url",
        metavar="URL",
        help="SMTP server as smtp://user:pass@host:587?security=starttls or smtps://...; "
        "default $SCIMCORE_SMTP_URL (which keeps the password out of the process list)",
    )
    group.add_argument("--smtp-host", metavar="HOST", help="SMTP server (overrides the URL's)")
    group.add_argument("--smtp-port", type=int, metavar="PORT", help="SMTP port")
    group.add_argument(
        "--smtp-security",
        choices=list(get_args(Security)),
        help="plain, starttls (RFC 3207, port 587) or ssl (implicit TLS, port 465)",
    )
    group.add_argument("--smtp-user", metavar="USER", help="SMTP login")
    group.add_argument(
        "--smtp-password-env",
        metavar="VAR",
        help="read the SMTP password from this environment variable",
    )
    group.add_argument(
        "--sender", metavar="EMAIL", help="From address (default $SCIMCORE_MAIL_FROM)"
    )
    group.add_argument(
        "--mail-dir",
        metavar="DIR",
        help=f"folder of .eml files when no SMTP is configured (default $SCIMCORE_MAIL_DIR, "
        f"else ./{DEFAULT_MAIL_DIR})",
    )


def mail_settings_from_args(args: argparse.Namespace) -> MailSettings:
    """:func:`mail_settings` from the options of :func:`add_mail_arguments`."""
    password = None
    if args.smtp_password_env:
        password = os.environ.get(args.smtp_password_env)
        if password is None:
            raise MailSettingsError(
                f"--smtp-password-env: the environment variable {args.smtp_password_env} is unset"
            )
    return mail_settings(
        smtp_url=args.smtp_url,
        smtp_host=args.smtp_host,
        smtp_port=args.smtp_port,
        smtp_security=args.smtp_security,
        smtp_user=args.smtp_user,
        smtp_password=password,
        sender=args.sender,
        mail_dir=args.mail_dir,
    )


class DeliveryWorker:
    """Runs ``deliver`` (e.g. ``functools.partial(deliver_pending, storage, mailer,
    runtime)``) in a daemon thread every ``interval`` seconds, and after :meth:`wake` or a
    run that found mail (a backlog is delivered run after run, not a run per interval): at
    once when the last run started ``gap`` seconds ago or more, else when it has (wakes
    meanwhile coalesce into that one run), until :meth:`stop`. An exception of a run is
    logged and the next run happens as planned: the worker never dies of one. Failed attempts
    are logged with their reasons (which name no credential).

        worker = DeliveryWorker(deliver).start()
        ...
        worker.stop()
    """

    def __init__(
        self,
        deliver: Callable[[], DeliveryReport],
        *,
        interval: float = DEFAULT_INTERVAL,
        gap: float = DEFAULT_GAP,
        on_report: Callable[[DeliveryReport], None] | None = None,
        name: str = "scimcore-mail",
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if not 0 <= gap <= interval:
            raise ValueError("gap must be between 0 and the interval")
        self.deliver = deliver
        self.interval = interval
        self.gap = gap
        self.on_report = on_report
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> DeliveryWorker:
        """Start the thread (once); returns the worker."""
        self._thread.start()
        return self

    def wake(self) -> None:
        """Deliver now rather than at the next interval (e.g. when mail was just queued)."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to end after its current run and wait up to ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread.is_alive()

    def run_once(self) -> DeliveryReport | None:
        """One delivery run in the calling thread; ``None`` (logged) if it raised."""
        try:
            report = self.deliver()
        except Exception:
            _log.exception("mail delivery run failed; trying again in %ss", self.interval)
            return None
        for failure in report.failures:
            _log.warning(
                "mail %s to %s: attempt %d failed%s: %s",
                failure.mail_id,
                failure.to,
                failure.attempts,
                " (given up)" if failure.final else "",
                failure.reason,
            )
        if self.on_report is not None:
            try:
                self.on_report(report)
            except Exception:
                _log.exception("mail delivery: on_report failed")
        return report

    def _loop(self) -> None:
        started = float("-inf")
        while not self._stop.is_set():
            early = started + self.gap - time.monotonic()
            if early > 0 and self._stop.wait(early):  # woken again within the gap: wait it out
                return
            self._wake.clear()  # the run delivers whatever the wakes so far announced
            started = time.monotonic()
            report = self.run_once()
            if report is not None and (report.sent or report.failures):
                continue  # a run that found mail may have left some (its limit): go on
            self._wake.wait(self.interval)

    def __enter__(self) -> DeliveryWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_delivery(
    service: ScimService,
    mailer: Mailer,
    *,
    base_url: str | None = None,
    interval: float = DEFAULT_INTERVAL,
    gap: float = DEFAULT_GAP,
) -> DeliveryWorker:
    """Start a :class:`DeliveryWorker` delivering ``service``'s outbox through ``mailer``
    every ``interval`` seconds, and when a SCIM create queues a mail: at once, or ``gap``
    seconds after the last run began while mail keeps coming. ``base_url``:
    the public root URL of the server that serves the activation pages (at ``/activate``);
    activation mails then carry a fresh link (``None``: they are sent as queued, without)."""
    deliver = functools.partial(
        deliver_pending, service.storage, mailer, service.runtime, base_url=base_url
    )
    worker = DeliveryWorker(deliver, interval=interval, gap=gap)
    service.subscribe(lambda event: worker.wake() if event.kind == "mail.queued" else None)
    return worker.start()
