"""The mailer's SMTP client against real servers on loopback (aiosmtpd), with and without
PIPELINING: the same messages arrive either way, a pipelining server gets each envelope
in one write, and every refusal raises what smtplib raises for it, leaving the connection
usable or closed, never out of step."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from smtp_servers import Sink, running

from harness.outbox.mailer import Mailer, SmtpSettings, _Smtp, is_permanent, render
from harness.outbox.queue import CreditPurchaseEmail

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


def message(i: int):
    data = CreditPurchaseEmail(
        email=f"buyer{i}@example.com",
        name=f"Buyer {i}",
        credits_amount=Decimal("10.00"),
        total_price=Decimal("10.00"),
        package_name="starter",
        new_balance=Decimal("10.00"),
    )
    msg = render(data.kind, data.payload(), message_id=f"<m{i}-{uuid4()}@test>", date=NOW)
    return msg, data.email


class CountingSocket:
    """The client's socket, counting its writes (what a round trip begins with)."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.writes = 0

    def sendall(self, data) -> None:
        self.writes += 1
        self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
def test_a_pipelining_server_gets_each_envelope_in_one_write_and_the_same_messages(pipelining):
    sink = Sink(pipelining=pipelining)
    sent = [message(i) for i in range(4)]
    with running(sink) as url, Mailer(SmtpSettings.from_url(url)) as mailer:
        mailer.send(*sent[0])  # connects
        smtp = mailer._smtp
        assert smtp is not None and smtp.has_extn("pipelining") is pipelining
        counter = CountingSocket(smtp.sock)
        smtp.sock = counter
        for msg, to in sent[1:]:
            mailer.send(msg, to)
        writes = counter.writes
    # MAIL, RCPT, DATA and the content: four writes, or two when the first three go
    # together.
    assert writes == 3 * (2 if pipelining else 4)
    assert [d.message_id for d in sink.deliveries] == [m["Message-ID"] for m, _ in sent]
    assert [d.recipients for d in sink.deliveries] == [(to,) for _, to in sent]
    assert [lf(d.message.get_payload(0).get_payload(decode=True)) for d in sink.deliveries] == [
        lf(m.get_payload()[0].get_payload(decode=True)) for m, _ in sent
    ]


def lf(text: bytes) -> bytes:
    return text.replace(b"\r\n", b"\n")


class Refusing(Sink):
    """Refuses one stage of the first message with ``reply``, then accepts."""

    def __init__(self, stage: str, reply: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stage, self.reply, self.refused = stage, reply, 0

    def _refuse(self, stage: str) -> bool:
        if self.stage == stage and not self.refused:
            self.refused += 1
            return True
        return False

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
        if self._refuse("mail"):
            return self.reply
        envelope.mail_from, envelope.mail_options = address, options
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if self._refuse("rcpt"):
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self._refuse("data"):
            return self.reply
        return await super().handle_DATA(server, session, envelope)


REFUSALS = [
    ("mail", "550 5.7.1 Sender rejected", smtplib.SMTPSenderRefused, True),
    ("mail", "451 4.3.0 Try later", smtplib.SMTPSenderRefused, False),
    ("rcpt", "550 5.1.1 No such user", smtplib.SMTPRecipientsRefused, True),
    ("rcpt", "450 4.2.0 Mailbox busy", smtplib.SMTPRecipientsRefused, False),
    ("data", "554 5.6.0 Content rejected", smtplib.SMTPDataError, True),
    ("data", "451 4.3.0 Try later", smtplib.SMTPDataError, False),
    ("mail", "421 4.3.2 Shutting down", smtplib.SMTPSenderRefused, False),
    ("rcpt", "421 4.3.2 Shutting down", smtplib.SMTPRecipientsRefused, False),
]


def refusal(stage: str, reply: str, pipelining: bool):
    """The exception one message raises when ``stage`` is refused, whether the same
    connection then delivers the next message, and what the server received."""
    sink = Refusing(stage, reply, pipelining=pipelining)
    (msg, to), (after, after_to) = message(1), message(2)
    with running(sink) as url:
        parts = urlsplit(url)
        smtp = _Smtp(parts.hostname, parts.port, timeout=5)
        try:
            with pytest.raises(smtplib.SMTPException) as caught:
                smtp.send_message(msg, to_addrs=[to])
            try:
                smtp.send_message(after, to_addrs=[after_to])
                reusable = True
            except smtplib.SMTPServerDisconnected:
                reusable = False
        finally:
            smtp.close()
    return caught.value, reusable, [d.message_id for d in sink.deliveries]


@pytest.mark.parametrize(("stage", "reply", "error", "permanent"), REFUSALS)
def test_a_refusal_raises_what_smtplib_raises_with_or_without_pipelining(
    stage, reply, error, permanent
):
    plain, plain_reusable, plain_got = refusal(stage, reply, pipelining=False)
    piped, piped_reusable, piped_got = refusal(stage, reply, pipelining=True)
    code = int(reply[:3])
    for exc in (plain, piped):
        assert type(exc) is error
        assert is_permanent(exc) is permanent
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            assert [c for c, _ in exc.recipients.values()] == [code]
        else:
            assert exc.smtp_code == code
    # After a refusal the connection delivers the next message in both modes, unless the
    # server said 421 (closing), when smtplib hangs up in both; the refused message never
    # arrives.
    assert plain_reusable is piped_reusable is (code != 421)
    assert len(plain_got) == len(piped_got) == (1 if code != 421 else 0)


class TakesDataWithoutRecipients(Sink):
    """A server that refuses the recipient yet answers DATA with 354 (it kept the address
    in the envelope): a pipelining client must not send it a message."""

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        envelope.rcpt_tos.append(address)
        return "550 5.1.1 No such user"


def test_a_server_that_takes_data_after_refusing_every_recipient_gets_no_message():
    sink = TakesDataWithoutRecipients(pipelining=True)
    msg, to = message(1)
    with running(sink) as url:
        parts = urlsplit(url)
        smtp = _Smtp(parts.hostname, parts.port, timeout=5)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.send_message(msg, to_addrs=[to])
        assert smtp.sock is None  # hung up instead of sending anything after the 354
    assert sink.data_commands == 0 and sink.deliveries == []


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
@pytest.mark.parametrize("hostile", ["sender", "recipient"])
def test_a_line_break_in_an_envelope_address_cannot_add_a_command(pipelining, hostile):
    sink = Sink(pipelining=pipelining)
    msg, to = message(1)
    sender = "a@example.com"
    if hostile == "sender":
        sender += "\r\nRCPT TO:<thief@example.com>"
    else:
        to += ">\r\nRCPT TO:<thief@example.com>\r\nDATA"
    with running(sink) as url:
        parts = urlsplit(url)
        smtp = _Smtp(parts.hostname, parts.port, timeout=5)
        try:
            # Depending on the Python version, smtplib's quoteaddr parses the address down
            # to its mailbox, or putcmd refuses the line break before writing the command.
            try:
                smtp.send_message(msg, from_addr=sender, to_addrs=[to])
            except ValueError as exc:
                assert "prohibited newline" in str(exc)
                smtp.rset()  # as the Mailer does after any error (it reconnects)
            after, after_to = message(2)
            smtp.send_message(after, to_addrs=[after_to])
        finally:
            smtp.close()
    recipients = [r for d in sink.deliveries for r in d.recipients]
    assert "thief@example.com" not in recipients
    assert set(recipients) <= {"buyer1@example.com", "buyer2@example.com"}
    assert recipients[-1] == "buyer2@example.com"
