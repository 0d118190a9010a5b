"""An SMTP :class:`~scimcore.outbox.Mailer` on the standard library (``smtplib``).

``security`` is ``"plain"`` (no TLS, for a local relay), ``"starttls"`` (RFC 3207, port 587)
or ``"ssl"`` (implicit TLS, port 465). Credentials are optional and never logged.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

import attrs
from attrs import frozen

__all__ = ["Security", "SmtpMailer", "compose"]

#: How the connection to the SMTP server is secured.
Security = Literal["plain", "starttls", "ssl"]


def compose(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    """One plain-text RFC 5322 message: ``From``, ``To``, ``Subject``, ``Date`` and a unique
    ``Message-ID`` (of the sender's domain); an ASCII body as it is (``7bit``), any other
    UTF-8 body encoded (quoted-printable or base64)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    domain = sender.rpartition("@")[2].strip(" >") or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    # Plain ASCII travels as it is (7bit): a link stays whole for a reader of the raw file,
    # where quoted-printable would break it at 76 characters with a soft "=".
    plain = body.isascii() and all(len(line) <= 998 for line in body.splitlines())
    message.set_content(body, cte="7bit" if plain else None)
    return message


@frozen
class SmtpMailer:
    """Sends each mail over a new SMTP connection (delivery runs are short and infrequent)."""

    host: str = "localhost"
    port: int = 25
    sender: str = "scimcore@localhost"
    security: Security = "plain"
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    timeout: float = 30.0
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, repr=False)

    def _connect(self) -> smtplib.SMTP:
        context = self.ssl_context or ssl.create_default_context()
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            client.starttls(context=context)
        return client

    def send(self, to: str, subject: str, body: str) -> None:
        """Send one plain-text email; raises ``smtplib.SMTPException`` or ``OSError``."""
        message = compose(self.sender, to, subject, body)
        with self._connect() as client:
            if self.username is not None:
                client.login(self.username, self.password or "")
            client.send_message(message)

    def describe(self) -> str:
        """Where mail goes, for a start-up line or a log: ``smtp://user@host:port
        (starttls)``, never the password."""
        user = f"{self.username}@" if self.username else ""
        scheme = "smtps" if self.security == "ssl" else "smtp"
        return f"{scheme}://{user}{self.host}:{self.port} ({self.security}), from {self.sender}"
