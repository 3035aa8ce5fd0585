"""Recipients are one mailbox each, validated where they enter (the service, before any
debit or top-up; the email records) and delivered to exactly that mailbox: a list of
addresses is refused, a name with CR/LF or a comma is encoded by the email package,
internationalized addresses go with SMTPUTF8 when the server offers it, IDNA-encoded
when only the domain needs it, and are refused with a clear permanent error otherwise.
Real SMTP servers on loopback (aiosmtpd), once with SMTPUTF8 and once without."""

from __future__ import annotations

from decimal import Decimal
from email.utils import getaddresses

import pytest
from conftest import snapshot
from smtp_servers import Sink, running

from harness import db as database
from harness import errors
from harness.errors import DomainError
from harness.money.service import PurchaseRequest, PurchaseService
from harness.outbox import mailer, queue
from harness.outbox.mailer import render
from harness.outbox.worker import drain

FLOWS = ("atomic", "stepwise", "legacy")
RELAY = "victim@example.com, evil@attacker.example"
BAD_ADDRESSES = [
    RELAY,
    "victim@example.com;evil@attacker.example",
    "Eve <eve@example.com>",
    '"victim@example.com, evil"@attacker.example',
    "eve@example.com\r\nBcc: evil@attacker.example",
    "eve@example.com\n",
    "no-at-sign",
    "eve@localhost",
    "eve@[127.0.0.1]",
    "",
]
IDN = ["pépé@example.com", "bob@exämple.com"]


@pytest.fixture
def pool(db):
    p = database.pool(db, max_size=4)
    yield p
    p.close()


def buyer_with_email(conn, world, email, name="Buyer"):
    ws, _ = world.workspace(balance="10.00")
    user = conn.execute(
        "INSERT INTO users (email, full_name) VALUES (%s, %s) RETURNING id", (email, name)
    ).fetchone()[0]
    world.member(ws, user)
    return ws, user


def credit_job(email, name="Buyer"):
    return {
        "email": email,
        "name": name,
        "credits_amount": "1.00",
        "total_price": "1.00",
        "package_name": "starter",
        "new_balance": "1.00",
    }


def enqueue_raw(conn, payload):
    """A job written straight through enqueue_email (as a job from before validation, or
    from another writer, would be): the worker must still never relay it."""
    from psycopg.types.json import Jsonb

    return conn.execute(
        "SELECT enqueue_email('credit_purchase', %s, NULL, NULL)", (Jsonb(payload),)
    ).fetchone()[0]


def job(conn, job_id):
    return conn.execute(
        "SELECT status::text, last_error FROM email_jobs WHERE id = %s", (job_id,)
    ).fetchone()


# -- validation where recipients enter ------------------------------------------------------


@pytest.mark.parametrize("address", ["buyer@example.com", *IDN, "Bob.Smith+tag@Example.COM"])
def test_one_mailbox_is_accepted_internationalized_ones_included(address):
    r = queue.recipient(address)
    assert r.address.lower() == address.lower() or r.address == "Bob.Smith+tag@example.com"
    assert "@" in r.address and "," not in r.address


def test_an_idn_domain_has_an_ascii_form_and_a_unicode_local_part_has_none():
    assert queue.recipient("bob@exämple.com").ascii == "bob@xn--exmple-cua.com"
    assert queue.recipient("pépé@example.com").needs_smtputf8


@pytest.mark.parametrize("address", [*BAD_ADDRESSES, None, 42])
def test_lists_display_names_control_characters_and_reserved_domains_are_refused(address):
    with pytest.raises(errors.InvalidEmail) as info:
        queue.recipient(address)
    assert info.value.code == "invalid_email"
    assert isinstance(info.value, ValueError)  # the email records raise it as one


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_the_email_records_refuse_what_is_not_one_mailbox(address):
    with pytest.raises(errors.InvalidEmail):
        queue.CreditPurchaseEmail(**{**credit_job(address), **_money()})


def _money():
    return {
        "credits_amount": Decimal("1.00"),
        "total_price": Decimal("1.00"),
        "new_balance": Decimal("1.00"),
    }


def test_names_lose_their_control_characters_and_keep_their_commas():
    data = queue.CreditPurchaseEmail(
        **{**credit_job("a@example.com", "Eve\r\nBcc: evil@attacker.example, Doe"), **_money()}
    )
    assert data.name == "Eve Bcc: evil@attacker.example, Doe"
    msg = render("credit_purchase", data.payload(), message_id="<m@harness>", date=_now())
    (address,) = msg["To"].addresses
    assert address.addr_spec == "a@example.com"
    assert address.display_name == "Eve Bcc: evil@attacker.example, Doe"


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


# -- the service refuses an undeliverable buyer before anything is written -------------------


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("address", [RELAY, "eve@example.com\r\nBcc: evil@attacker.example"])
def test_a_buyer_whose_address_is_not_one_mailbox_is_refused_before_the_debit(
    conn, world, pool, flow, address
):
    ws, user = buyer_with_email(conn, world, address)
    leads = world.leads(1, "1.00")
    before = snapshot(conn)
    with pytest.raises(DomainError) as info:
        PurchaseService(pool, flow).purchase(PurchaseRequest(ws, user, tuple(leads), "key-1"))
    assert info.value.code == "invalid_email"
    assert snapshot(conn) == before  # no debit, no purchase, no key, no job


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("address", IDN)
def test_a_buyer_with_an_internationalized_address_can_buy(conn, world, pool, flow, address):
    ws, user = buyer_with_email(conn, world, address)
    leads = world.leads(1, "1.00")
    result = PurchaseService(pool, flow).purchase(PurchaseRequest(ws, user, tuple(leads)))
    emails = conn.execute(
        "SELECT payload ->> 'email' FROM email_jobs WHERE purchase_id = %s",
        (result.purchase_id,),
    ).fetchall()
    assert emails == [(address,)]


def test_a_top_up_for_an_address_that_is_not_one_mailbox_writes_nothing(conn, world, pool):
    ws, _ = world.workspace(balance="1.00")
    before = snapshot(conn)
    with pytest.raises(DomainError) as info:
        PurchaseService(pool, "atomic").top_up(ws, Decimal("5.00"), "starter", email=RELAY)
    assert info.value.code == "invalid_email"
    assert snapshot(conn) == before


def test_a_top_up_whose_owner_has_a_relay_address_writes_nothing(conn, world, pool):
    ws, _ = buyer_with_email(conn, world, RELAY)
    conn.execute("DELETE FROM workspace_members WHERE workspace_id = %s AND role = 'owner'", (ws,))
    before = snapshot(conn)
    with pytest.raises(DomainError) as info:
        PurchaseService(pool, "atomic").top_up(ws, Decimal("5.00"), "starter")
    assert info.value.code == "invalid_email"
    assert snapshot(conn) == before


# -- the worker delivers to exactly one mailbox --------------------------------------------


def test_a_relay_address_in_a_job_is_never_sent_and_dead_letters_with_the_reason(conn, db):
    sink = Sink()
    job_id = enqueue_raw(conn, credit_job(RELAY))
    with running(sink) as url:
        drain(db, url, retry_backoff_ms=1)
    assert sink.deliveries == []
    status, error = job(conn, job_id)
    assert status == "dead" and "InvalidEmail" in error and "invalid characters" in error


@pytest.mark.parametrize("smtputf8", [True, False])
def test_a_name_with_crlf_or_a_comma_reaches_exactly_its_own_mailbox(conn, db, smtputf8):
    sink = Sink()
    enqueue_raw(conn, credit_job("eve@example.com", "Eve\r\nBcc: evil@attacker.example"))
    enqueue_raw(conn, credit_job("doe@example.com", "Doe, John <evil@attacker.example>"))
    with running(sink, smtputf8=smtputf8) as url:
        stats = drain(db, url, retry_backoff_ms=1)
    assert stats.sent == 2 and stats.dead == 0
    got = sorted(d.recipients for d in sink.deliveries)
    assert got == [("doe@example.com",), ("eve@example.com",)]
    for d in sink.deliveries:
        assert d.message["Bcc"] is None and d.message["Cc"] is None
        ((_, addr_spec),) = getaddresses([d.message["To"]])  # one address, its own
        assert (addr_spec,) == d.recipients


def test_internationalized_addresses_go_with_smtputf8_when_the_server_offers_it(conn, db):
    sink = Sink()
    for address in IDN:
        enqueue_raw(conn, credit_job(address, "Pépé"))
    with running(sink, smtputf8=True) as url:
        stats = drain(db, url, retry_backoff_ms=1)
    assert stats.sent == 2
    assert sorted(d.recipients for d in sink.deliveries) == [
        ("bob@exämple.com",),
        ("pépé@example.com",),
    ]


def test_without_smtputf8_an_idn_domain_goes_idna_and_a_unicode_local_part_is_refused(conn, db):
    sink = Sink()
    bob = enqueue_raw(conn, credit_job("bob@exämple.com"))
    pepe = enqueue_raw(conn, credit_job("pépé@example.com"))
    with running(sink, smtputf8=False) as url:
        drain(db, url, retry_backoff_ms=1)
    assert [d.recipients for d in sink.deliveries] == [("bob@xn--exmple-cua.com",)]
    assert job(conn, bob)[0] == "sent"
    status, error = job(conn, pepe)
    assert status == "dead"  # at once: retrying cannot help, and it says why
    assert "recipient_needs_smtputf8" in error


def test_the_smtputf8_refusal_is_permanent():
    from harness.outbox.mailer import is_permanent

    assert is_permanent(mailer.RecipientNeedsSmtputf8("pépé@example.com"))


def test_a_purchase_by_a_relay_address_sends_nothing_even_through_a_forged_job(conn, world, db):
    """The atomic function writes the buyer's address from the users table; a buyer whose
    address changes to a relay between the check and the purchase gets a job the worker
    dead-letters with its reason instead of relaying it."""
    ws, user = buyer_with_email(conn, world, "buyer@example.com")
    leads = world.leads(1, "1.00")
    pool = database.pool(db, max_size=2)
    try:
        result = PurchaseService(pool, "atomic").purchase(PurchaseRequest(ws, user, tuple(leads)))
    finally:
        pool.close()
    conn.execute(
        "UPDATE email_jobs SET payload = jsonb_set(payload, '{email}', to_jsonb(%s::text)) "
        "WHERE purchase_id = %s",
        (RELAY, result.purchase_id),
    )
    sink = Sink()
    with running(sink) as url:
        drain(db, url, retry_backoff_ms=1)
    assert sink.deliveries == []
    status, error = conn.execute(
        "SELECT status::text, last_error FROM email_jobs WHERE purchase_id = %s",
        (result.purchase_id,),
    ).fetchone()
    assert status == "dead" and "InvalidEmail" in error
