"""SMTP delivery with the standard library, and the two emails' text and HTML bodies.

The server comes from ``HARNESS_SMTP_URL``: ``smtp://[user:password@]host[:port]`` with
optional query parameters ``starttls=1`` and ``timeout=SECONDS``; the sender from
``HARNESS_EMAIL_FROM``. A :class:`Mailer` keeps one connection open across sends and
opens a new one after any error.

Every message goes to exactly one envelope recipient, given explicitly (never read back
from the To header). An internationalized address is sent with SMTPUTF8 when the server
offers it; otherwise its domain is IDNA-encoded (envelope and header alike), and an
address whose local part is not ASCII is refused permanently with
:class:`RecipientNeedsSmtputf8`. The Message-ID of a job is ``<{message_uuid}@harness>``:
a UUID drawn when the job was queued, unique across databases and re-applied migrations,
the same for every delivery of the job.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from harness import env
from harness.errors import UsageError
from harness.outbox.queue import (
    EMAIL_DATA,
    CreditPurchaseEmail,
    PurchaseConfirmationEmail,
    Recipient,
    recipient,
)

DEFAULT_SENDER = "Lead Marketplace <no-reply@harness.localhost>"
DEFAULT_PORT = 25
DEFAULT_TIMEOUT = 30.0
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to deliver: parsed from an ``smtp://`` URL."""

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = DEFAULT_TIMEOUT
    sender: str = DEFAULT_SENDER

    @classmethod
    def from_url(cls, url: str | None, sender: str | None = None) -> SmtpSettings:
        """Parse ``smtp://[user:password@]host[:port][?starttls=1&timeout=S]``; a bad or
        missing URL is a UsageError naming what is wrong (never echoing a password)."""
        if not url:
            raise UsageError(
                "no SMTP server configured: set HARNESS_SMTP_URL "
                "(smtp://[user:password@]host[:port][?starttls=1]) or pass "
                "--smtp-url"
            )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"bad SMTP URL {_redact(url)!r}: {exc}") from exc
        if parts.scheme != "smtp":
            raise UsageError(
                f"bad SMTP URL {_redact(url)!r}: the scheme must be smtp:// "
                "(STARTTLS is ?starttls=1)"
            )
        if not parts.hostname:
            raise UsageError(f"bad SMTP URL {_redact(url)!r}: no host")
        if parts.path not in ("", "/"):
            raise UsageError(f"bad SMTP URL {_redact(url)!r}: unexpected path {parts.path!r}")
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(params) - {"starttls", "timeout"}
        if unknown:
            raise UsageError(
                f"bad SMTP URL {_redact(url)!r}: unknown parameter(s) "
                f"{', '.join(sorted(unknown))} (known: starttls, timeout)"
            )
        starttls = params.get("starttls", "0").lower()
        if starttls not in TRUE + FALSE:
            raise UsageError(f"bad SMTP URL {_redact(url)!r}: starttls must be 1 or 0")
        try:
            timeout = float(params.get("timeout", DEFAULT_TIMEOUT))
        except ValueError:
            timeout = -1.0
        if not timeout > 0:
            raise UsageError(
                f"bad SMTP URL {_redact(url)!r}: timeout must be a positive number of seconds"
            )
        if (parts.username is None) != (parts.password is None):
            raise UsageError(
                f"bad SMTP URL {_redact(url)!r}: give both user and password or neither"
            )
        return cls(
            host=parts.hostname,
            port=port or DEFAULT_PORT,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            starttls=starttls in TRUE,
            timeout=timeout,
            sender=sender or env.read("HARNESS_EMAIL_FROM") or DEFAULT_SENDER,
        )

    @classmethod
    def from_env(cls) -> SmtpSettings:
        return cls.from_url(env.read("HARNESS_SMTP_URL"))

    def describe(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"smtp://{user}{self.host}:{self.port}" + ("?starttls=1" if self.starttls else "")


def _redact(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class RecipientNeedsSmtputf8(smtplib.SMTPNotSupportedError):
    """The address's local part is not ASCII and the server does not offer SMTPUTF8:
    no form of it can be delivered there, so retrying cannot help."""

    def __init__(self, address: str) -> None:
        super().__init__(
            f"recipient_needs_smtputf8: {address} has a local part that is not ASCII and "
            "the SMTP server does not offer SMTPUTF8"
        )


def is_permanent(exc: BaseException) -> bool:
    """A refusal that retrying cannot fix: a 5xx reply to the sender, the recipients or
    the message, or an internationalized local part the server cannot take. Connection
    trouble, timeouts and 4xx replies are worth retrying."""
    if isinstance(exc, RecipientNeedsSmtputf8):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(500 <= c < 600 for c in codes)
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        return 500 <= exc.smtp_code < 600
    return False


def describe_error(exc: BaseException) -> str:
    """One line for ``last_error``: the exception's class and the server's reply."""
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        detail = f"{exc.smtp_code} {text}"
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        detail = "; ".join(
            f"{rcpt}: {code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"
            for rcpt, (code, msg) in exc.recipients.items()
        )
    else:
        detail = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {' '.join(detail.split())}"[:2000]


class Mailer:
    """Delivers messages over one SMTP connection, reopened after an error."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username is not None:
                smtp.login(s.username, s.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, msg: EmailMessage, to: str) -> None:
        """Deliver one message to exactly the mailbox ``to`` (validated again here); any
        error propagates and drops the connection. Without SMTPUTF8 on the server, an
        internationalized domain goes IDNA-encoded, in the envelope and in the To header."""
        rcpt = recipient(to)
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            envelope = rcpt.address
            if not rcpt.address.isascii() and not self._smtp.has_extn("smtputf8"):
                if rcpt.ascii is None:
                    raise RecipientNeedsSmtputf8(rcpt.address)
                envelope = rcpt.ascii
                _readdress(msg, rcpt, ascii_only=True)
            self._smtp.send_message(msg, to_addrs=[envelope])
        except RecipientNeedsSmtputf8:
            raise  # nothing was sent: the connection is still good
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the two emails ------------------------------------------------------------------------


def _usd(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def _purchase_confirmation(d: PurchaseConfirmationEmail) -> tuple[str, str, str]:
    leads = f"{d.total_leads} lead{'s' if d.total_leads != 1 else ''}"
    expires = d.download_expires_at.strftime("%B %d, %Y")
    subject = f"Your purchase of {leads} is confirmed"
    text = (
        f"Hi {d.name},\n\n"
        f"Thank you for your purchase of {leads} for {_usd(d.total_price)}.\n\n"
        f"Download your leads: {d.download_url}\n"
        f"The link is valid until {expires}.\n\n"
        f"Purchase ID: {d.purchase_id}\n"
    )
    e = html.escape
    body = (
        f"<p>Hi {e(d.name)},</p>"
        f"<p>Thank you for your purchase of <strong>{e(leads)}</strong> for "
        f"<strong>{e(_usd(d.total_price))}</strong>.</p>"
        f'<p><a href="{e(d.download_url, quote=True)}">Download your leads</a> '
        f"(valid until {e(expires)}).</p>"
        f"<p>Purchase ID: <code>{e(str(d.purchase_id))}</code></p>"
    )
    return subject, text, body


def _credit_purchase(d: CreditPurchaseEmail) -> tuple[str, str, str]:
    subject = f"{d.credits_amount:,.2f} credits added to your workspace"
    text = (
        f"Hi {d.name},\n\n"
        f"Your purchase of the {d.package_name} package is complete: "
        f"{d.credits_amount:,.2f} credits for {_usd(d.total_price)}.\n\n"
        f"Your new balance is {d.new_balance:,.2f} credits.\n"
    )
    e = html.escape
    body = (
        f"<p>Hi {e(d.name)},</p>"
        f"<p>Your purchase of the <strong>{e(d.package_name)}</strong> package is complete: "
        f"<strong>{d.credits_amount:,.2f} credits</strong> for {e(_usd(d.total_price))}.</p>"
        f"<p>Your new balance is <strong>{d.new_balance:,.2f} credits</strong>.</p>"
    )
    return subject, text, body


def _readdress(msg: EmailMessage, rcpt: Recipient, *, ascii_only: bool = False) -> None:
    """Set the To header again for ``rcpt`` (its IDNA domain when ``ascii_only``),
    keeping the display name render() gave it."""
    header = msg["To"]
    names = [a.display_name for a in getattr(header, "addresses", ())]
    domain = rcpt.ascii.rsplit("@", 1)[1] if ascii_only and rcpt.ascii else rcpt.domain
    del msg["To"]
    msg["To"] = Address(display_name=names[0] if names else "", username=rcpt.local, domain=domain)


def recipient_of(kind: str, payload: dict[str, Any]) -> str:
    """The one mailbox a job's email goes to (its payload's address, validated)."""
    return EMAIL_DATA[kind].from_payload(payload).email


def message_id_for(job: dict[str, Any]) -> str:
    """The Message-ID of every delivery of a job: ``<{message_uuid}@harness>``; a job
    row from before the column existed keeps its old ``message_id``."""
    uid = job.get("message_uuid")
    return f"<{uid}@harness>" if uid else str(job["message_id"])


def render(
    kind: str,
    payload: dict[str, Any],
    *,
    message_id: str,
    date: datetime,
    sender: str = DEFAULT_SENDER,
) -> EmailMessage:
    """The email for a job: plain text with an HTML alternative. The same job renders
    the same message (Message-ID and Date included), so a redelivery is recognisable."""
    data = EMAIL_DATA[kind].from_payload(payload)
    if isinstance(data, PurchaseConfirmationEmail):
        subject, text, body = _purchase_confirmation(data)
    else:
        subject, text, body = _credit_purchase(data)
    rcpt = recipient(data.email)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = Address(display_name=data.name, username=rcpt.local, domain=rcpt.domain)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg.set_content(text)
    msg.add_alternative(f"<!doctype html><html><body>{body}</body></html>", subtype="html")
    return msg


__all__ = [
    "Mailer",
    "RecipientNeedsSmtputf8",
    "SmtpSettings",
    "describe_error",
    "is_permanent",
    "message_id_for",
    "recipient_of",
    "render",
]
