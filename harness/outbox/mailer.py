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

import functools
import html
import secrets
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses
from typing import TYPE_CHECKING, Any
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

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, SizedBuffer

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


class _Smtp(smtplib.SMTP):
    """smtplib's client, pipelining the envelope when the server offers PIPELINING
    (RFC 2920, as production relays do): MAIL, RCPT and DATA go out in one write and
    their replies are read together, so a message costs two round trips instead of four.
    Every refusal raises what :meth:`smtplib.SMTP.sendmail` raises for it, after the same
    clean-up (RSET, or closing on 421); without PIPELINING, sendmail itself runs."""

    _queued: list[bytes] | None = None

    def send(self, s: ReadableBuffer | str) -> None:
        if self._queued is None:
            super().send(s)
        else:  # a command of the batch being put together
            self._queued.append(s.encode(self.command_encoding) if isinstance(s, str) else bytes(s))

    def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: SizedBuffer | str,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        self.ehlo_or_helo_if_needed()
        if not (self.does_esmtp and self.has_extn("pipelining")):
            return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
        rcpts = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        if isinstance(msg, str):
            data = smtplib._fix_eols(msg).encode("ascii")  # type: ignore[attr-defined]
        else:
            data = bytes(msg)
        options = [f"size={len(data)}"] if self.has_extn("size") else []
        options += mail_options
        if any(o.lower() == "smtputf8" for o in options):
            if not self.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
            self.command_encoding = "utf-8"
        mail_args = " " + " ".join(options) if options else ""
        rcpt_args = " " + " ".join(rcpt_options) if rcpt_options else ""
        # putcmd refuses a line break in an address before anything is written.
        self._queued = []
        try:
            self.putcmd("mail", f"FROM:{smtplib.quoteaddr(from_addr)}{mail_args}")
            for rcpt in rcpts:
                self.putcmd("rcpt", f"TO:{smtplib.quoteaddr(rcpt)}{rcpt_args}")
            self.putcmd("data")
            batch = b"".join(self._queued)
        finally:
            self._queued = None
        super().send(batch)
        mail_reply = self.getreply()
        rcpt_replies = [self.getreply() for _ in rcpts]
        data_reply = self.getreply()
        refused = {
            r: reply
            for r, reply in zip(rcpts, rcpt_replies, strict=True)
            if reply[0] not in (250, 251)
        }

        def give_up() -> None:
            # A server that took DATA although no recipient was accepted waits for a
            # message; rather than send it an empty one, hang up (the Mailer reconnects).
            if data_reply[0] == 354:
                self.close()
            else:
                self._rset()  # type: ignore[attr-defined]

        if mail_reply[0] != 250:
            if mail_reply[0] == 421:
                self.close()
            else:
                give_up()
            raise smtplib.SMTPSenderRefused(mail_reply[0], mail_reply[1], from_addr)
        if any(reply[0] == 421 for reply in rcpt_replies):
            self.close()
            raise smtplib.SMTPRecipientsRefused(refused)
        if len(refused) == len(rcpts):
            give_up()
            raise smtplib.SMTPRecipientsRefused(refused)
        if data_reply[0] != 354:
            if data_reply[0] == 421:
                self.close()
            else:
                self._rset()  # type: ignore[attr-defined]
            raise smtplib.SMTPDataError(*data_reply)
        body = smtplib._quote_periods(data)  # type: ignore[attr-defined]
        if body[-2:] != smtplib.bCRLF:
            body += smtplib.bCRLF
        super().send(body + b"." + smtplib.bCRLF)
        code, reply = self.getreply()
        if code != 250:
            if code == 421:
                self.close()
            else:
                self._rset()  # type: ignore[attr-defined]
            raise smtplib.SMTPDataError(code, reply)
        return refused


@functools.lru_cache(maxsize=64)
def _envelope_sender(from_header: str) -> str:
    """The envelope sender smtplib would take from the From header (parsed once per
    sender, not once per message)."""
    return getaddresses([from_header])[0][1]


class Mailer:
    """Delivers messages over one SMTP connection, reopened after an error."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp = _Smtp(s.host, s.port, timeout=s.timeout)
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
            sender = None  # smtplib's own choice when the message has Sender or Resent-*
            if "Sender" not in msg and "Resent-Date" not in msg and "From" in msg:
                sender = _envelope_sender(str(msg["From"]))
            self._smtp.send_message(msg, from_addr=sender, to_addrs=[envelope])
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


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, making each header's class once rather than once
    per header set (the registry builds a new class on every lookup)."""

    @functools.lru_cache(maxsize=256)  # noqa: B019 (one registry lives as long as the module)
    def __getitem__(self, name: str) -> type:
        return super().__getitem__(name)


class _RenderCache(EmailPolicy):
    """The default email policy, remembering what it parsed and folded: the sender, the
    MIME headers and every other value that repeats from message to message are parsed
    and folded once. Parsed headers are immutable, so messages can share them, and a
    header folds the same every time; the bytes are the same as without the cache."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if type(value) is str:
            return _parse_header(self, name, value)
        return super().header_store_parse(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        if isinstance(value, BaseHeader):
            return _fold_header(self, name, type(value), value)
        return super().fold_binary(name, value)

    # Compared by their settings: the generator folds with a clone of the message's
    # policy (for its line separator), which must find what the last clone folded.
    def _settings(self) -> tuple[tuple[str, Any], ...]:
        return tuple(self.__dict__.items())  # clone() keeps the order of the attributes

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._settings() == other._settings()

    def __hash__(self) -> int:
        return hash(self._settings())


@functools.lru_cache(maxsize=1024)
def _parse_header(policy: EmailPolicy, name: str, value: str) -> tuple[str, Any]:
    return EmailPolicy.header_store_parse(policy, name, value)


@functools.lru_cache(maxsize=1024)
def _fold_header(policy: EmailPolicy, name: str, cls: type, value: BaseHeader) -> bytes:
    return EmailPolicy.fold_binary(policy, name, value)


_POLICY = _RenderCache(header_factory=_HeaderClasses())


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
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    msg["To"] = Address(display_name=data.name, username=rcpt.local, domain=rcpt.domain)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg.set_content(text)
    # A boundary of our own: the generator would otherwise make one and compile a regular
    # expression to check the bodies do not contain it; a random 128-bit one cannot.
    msg.make_alternative(boundary=f"=_harness_{secrets.token_hex(16)}")
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
