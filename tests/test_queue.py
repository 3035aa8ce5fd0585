"""The email outbox: a job exists iff its transaction committed, the payload contract,
enqueueing from plpgsql, status / retry-dead / cancel through the API and the CLI, and
the sender's URL parsing and rendering."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from harness.cli import cli
from harness.errors import UsageError
from harness.outbox import queue
from harness.outbox.mailer import SmtpSettings, render
from harness.outbox.queue import (
    CreditPurchaseEmail,
    EmailJobStatus,
    PurchaseConfirmationEmail,
    get_job,
    queue_credit_purchase_email,
    queue_purchase_confirmation_email,
    queue_status,
    request_cancel,
    retry_dead,
)


def confirmation(purchase_id, total_price=Decimal("1.00"), total_leads=1):
    return PurchaseConfirmationEmail.for_purchase(
        email="buyer@example.com",
        name="Buyer",
        total_leads=total_leads,
        total_price=total_price,
        purchase_id=purchase_id,
        now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        app_url="https://app.example",
    )


def top_up_email(amount="10.00", balance="10.00"):
    return CreditPurchaseEmail(
        email="buyer@example.com",
        name="Buyer",
        credits_amount=Decimal(amount),
        total_price=Decimal(amount),
        package_name="starter",
        new_balance=Decimal(balance),
    )


def buy(conn, ws, user, lead, price="1.00"):
    row = conn.execute(
        "SELECT success, error_message, purchase_id FROM purchase_with_credits(%s, %s, "
        "%s::uuid[], %s, %s)",
        (ws, user, [lead], Decimal(price), Decimal(price)),
    ).fetchone()
    assert row[0] is True, row[1]
    return row[2]


def count(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


# -- a job exists iff its transaction committed ------------------------------------------------


def test_jobs_match_committed_purchases_exactly_when_a_random_share_of_transactions_abort(
    conn, world
):
    rng = random.Random(20261127)
    ws, (user,) = world.workspace(balance="1000.00")
    leads = world.leads(240)
    committed, aborted = set(), set()
    for lead in leads:
        with conn.transaction():
            purchase_id = buy(conn, ws, user, lead)
            job = queue_purchase_confirmation_email(
                conn, confirmation(purchase_id), workspace_id=ws
            )
            assert job > 0
            if rng.random() < 0.4:
                aborted.add(purchase_id)
                raise psycopg.Rollback()
            committed.add(purchase_id)
    assert len(committed) + len(aborted) == 240 and 60 < len(aborted) < 140

    assert count(conn, "SELECT count(*) FROM marketplace_purchases") == len(committed)
    assert count(conn, "SELECT count(*) FROM email_jobs") == len(committed)
    job_purchases = {
        r[0]
        for r in conn.execute(
            "SELECT purchase_id FROM email_jobs WHERE kind = 'purchase_confirmation'"
        )
    }
    assert job_purchases == committed
    assert world.balance(ws) == Decimal("1000.00") - len(committed)


def test_top_up_emails_match_committed_top_ups_exactly(conn, world):
    rng = random.Random(7)
    ws, _ = world.workspace()
    committed = 0
    for _ in range(50):
        with conn.transaction():
            balance = conn.execute("SELECT add_credits(%s, 10.00, 'starter')", (ws,)).fetchone()[0]
            queue_credit_purchase_email(conn, top_up_email(balance=str(balance)), workspace_id=ws)
            if rng.random() < 0.5:
                raise psycopg.Rollback()
            committed += 1
    topups = count(conn, "SELECT count(*) FROM credit_ledger WHERE entry_type = 'topup'")
    emails = count(conn, "SELECT count(*) FROM email_jobs WHERE kind = 'credit_purchase'")
    assert topups == emails == committed


def test_enqueue_from_inside_plpgsql_rolls_back_with_the_callers_transaction(conn, world):
    ws, (user,) = world.workspace(balance="5.00")
    lead_a, lead_b = world.leads(2)
    body = """
        DECLARE v_purchase uuid;
        BEGIN
          SELECT purchase_id INTO v_purchase FROM purchase_with_credits(
            '{ws}', '{user}', ARRAY['{lead}']::uuid[], 1.00, 1.00);
          PERFORM enqueue_email('purchase_confirmation', jsonb_build_object(
            'email', 'b@example.com', 'name', 'B', 'total_leads', 1, 'total_price', '1.00',
            'purchase_id', v_purchase::text, 'download_url', 'https://x/' || v_purchase,
            'download_expires_at', '2026-04-01T00:00:00+00:00'), v_purchase, '{ws}');
        END"""
    with conn.transaction():
        conn.execute(f"DO $$ {body.format(ws=ws, user=user, lead=lead_a)} $$")
        raise psycopg.Rollback()
    assert count(conn, "SELECT count(*) FROM email_jobs") == 0
    conn.execute(f"DO $$ {body.format(ws=ws, user=user, lead=lead_b)} $$")
    assert count(conn, "SELECT count(*) FROM email_jobs") == 1
    assert count(conn, "SELECT count(*) FROM marketplace_purchases") == 1


def test_a_purchase_gets_one_confirmation_job_however_often_it_is_enqueued(conn, world):
    ws, (user,) = world.workspace(balance="5.00")
    purchase_id = buy(conn, ws, user, world.leads(1)[0])
    first = queue_purchase_confirmation_email(conn, confirmation(purchase_id))
    again = queue_purchase_confirmation_email(conn, confirmation(purchase_id))
    assert first == again
    assert count(conn, "SELECT count(*) FROM email_jobs") == 1


def test_payload_follows_the_contract_with_money_as_two_decimal_strings(conn, world):
    ws, (user,) = world.workspace(balance="5.00")
    purchase_id = buy(conn, ws, user, world.leads(1, price="2.50")[0], price="2.50")
    job_id = queue_purchase_confirmation_email(
        conn, confirmation(purchase_id, total_price=Decimal("2.5"))
    )
    job = get_job(conn, job_id)
    assert job.status == EmailJobStatus.QUEUED and job.attempts == 0
    assert job.message_id == f"<email-job-{job_id}@harness>"
    assert job.payload == {
        "email": "buyer@example.com",
        "name": "Buyer",
        "total_leads": 1,
        "total_price": "2.50",
        "purchase_id": str(purchase_id),
        "download_url": f"https://app.example/api/marketplace/download/{purchase_id}",
        "download_expires_at": "2026-04-02T03:04:05+00:00",
    }
    top = get_job(conn, queue_credit_purchase_email(conn, top_up_email("20.00", "25.00")))
    assert top.payload == {
        "email": "buyer@example.com",
        "name": "Buyer",
        "credits_amount": "20.00",
        "total_price": "20.00",
        "package_name": "starter",
        "new_balance": "25.00",
    }
    assert top.purchase_id is None


@pytest.mark.parametrize(
    "bad",
    [
        {"total_price": 1.0},  # float money
        {"total_price": Decimal("1.001")},  # a fraction of a cent
        {"total_leads": 0},
        {"email": "not-an-address"},
        {"download_expires_at": datetime(2026, 1, 1)},  # no time zone
    ],
)
def test_email_data_refuses_float_money_sub_cent_amounts_and_bad_fields(bad):
    fields = dict(
        email="a@example.com",
        name="A",
        total_leads=1,
        total_price=Decimal("1.00"),
        purchase_id=uuid.uuid4(),
        download_url="https://x",
        download_expires_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with pytest.raises((TypeError, ValueError)):
        PurchaseConfirmationEmail(**{**fields, **bad})


def test_a_missing_name_becomes_valued_customer_as_in_the_source_design():
    data = CreditPurchaseEmail(
        email="a@example.com",
        name="",
        credits_amount=Decimal("1.00"),
        total_price=Decimal("1.00"),
        package_name="p",
        new_balance=Decimal("1.00"),
    )
    assert data.name == "Valued Customer"


def test_the_database_refuses_payloads_missing_a_contract_key(conn):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="lacks: new_balance"):
        conn.execute(
            "SELECT enqueue_email('credit_purchase', %s::jsonb)",
            (
                json.dumps(
                    {
                        "email": "a@b.c",
                        "name": "A",
                        "credits_amount": "1.00",
                        "total_price": "1.00",
                        "package_name": "p",
                    }
                ),
            ),
        )
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="Unknown email kind"):
        conn.execute("SELECT enqueue_email('newsletter', '{}'::jsonb)")
    assert count(conn, "SELECT count(*) FROM email_jobs") == 0


def test_only_service_role_may_enqueue(conn):
    fn = "enqueue_email(text, jsonb, uuid, uuid)"
    for role, allowed in (
        ("public", False),
        ("anon", False),
        ("authenticated", False),
        ("service_role", True),
    ):
        assert (
            conn.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, fn)).fetchone()[
                0
            ]
            is allowed
        ), role


def test_service_role_can_enqueue_under_row_level_security(conn):
    conn.execute("SET ROLE service_role")
    job_id = queue_credit_purchase_email(conn, top_up_email())
    conn.execute("RESET ROLE")
    assert get_job(conn, job_id).status == "queued"


# -- status, retry-dead, cancel -----------------------------------------------------------------


def make_dead(conn, job_id, error="SMTPDataError: 451 try later"):
    conn.execute(
        "UPDATE email_jobs SET status = 'dead', dead_at = now(), attempts = 3, "
        "last_error = %s WHERE id = %s",
        (error, job_id),
    )


def test_queue_status_counts_every_state_and_lists_dead_letters_with_errors(conn):
    ids = [queue_credit_purchase_email(conn, top_up_email()) for _ in range(4)]
    make_dead(conn, ids[0])
    conn.execute("UPDATE email_jobs SET status = 'sent', sent_at = now() WHERE id = %s", (ids[1],))
    conn.execute(
        "UPDATE email_jobs SET created_at = now() - interval '90 seconds' WHERE id = %s", (ids[2],)
    )
    status = queue_status(conn)
    assert status.counts == {"queued": 2, "sending": 0, "sent": 1, "dead": 1, "cancelled": 0}
    assert 89 < status.oldest_pending_age < 120
    assert [(d.id, d.attempts, d.last_error) for d in status.dead_letters] == [
        (ids[0], 3, "SMTPDataError: 451 try later")
    ]


def test_retry_dead_requeues_dead_letters_with_fresh_attempts(conn):
    ids = [queue_credit_purchase_email(conn, top_up_email()) for _ in range(3)]
    make_dead(conn, ids[0])
    make_dead(conn, ids[1])
    assert retry_dead(conn, [ids[1]]) == [ids[1]]
    assert retry_dead(conn) == [ids[0]]
    assert retry_dead(conn) == []
    job = get_job(conn, ids[0])
    assert (job.status, job.attempts, job.dead_at) == ("queued", 0, None)
    assert job.last_error == "SMTPDataError: 451 try later"  # kept until it is sent


def test_cancelling_a_queued_or_dead_job_settles_it_and_a_sent_one_stays_sent(conn):
    queued, dead, sent = (queue_credit_purchase_email(conn, top_up_email()) for _ in range(3))
    make_dead(conn, dead)
    conn.execute("UPDATE email_jobs SET status = 'sent', sent_at = now() WHERE id = %s", (sent,))
    assert request_cancel(conn, queued) is EmailJobStatus.CANCELLED
    assert request_cancel(conn, dead) is EmailJobStatus.CANCELLED
    assert request_cancel(conn, sent) is EmailJobStatus.SENT
    assert request_cancel(conn, queued) is EmailJobStatus.CANCELLED  # idempotent
    assert request_cancel(conn, 999_999) is None
    assert retry_dead(conn) == []  # a cancelled dead letter is not resurrected
    assert get_job(conn, sent).cancel_requested_at is None


def test_cli_queue_status_json_and_text(conn, db, capsys):
    ids = [queue_credit_purchase_email(conn, top_up_email()) for _ in range(3)]
    make_dead(conn, ids[0], "ConnectionRefusedError: [Errno 111] Connection refused")
    assert cli(["queue", "status", "--json", "--dsn", db]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["queued"] == 2 and report["counts"]["dead"] == 1
    assert report["oldest_pending_age"] >= 0
    assert report["dead_letters"][0]["id"] == ids[0]
    assert "Connection refused" in report["dead_letters"][0]["last_error"]

    assert cli(["queue", "status", "--dsn", db]) == 0
    out = capsys.readouterr().out
    assert "queued 2" in out and "dead 1" in out
    assert f"#{ids[0]} credit_purchase attempts=3" in out and "Connection refused" in out


def test_cli_retry_dead_and_cancel(conn, db, capsys):
    ids = [queue_credit_purchase_email(conn, top_up_email()) for _ in range(2)]
    make_dead(conn, ids[0])
    assert cli(["queue", "retry-dead", "--dsn", db]) == 0
    assert f"requeued 1 dead letter(s): {ids[0]}" in capsys.readouterr().out
    assert get_job(conn, ids[0]).status == "queued"
    assert cli(["queue", "cancel", str(ids[1]), "--dsn", db]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert cli(["queue", "cancel", "424242", "--dsn", db]) == 1


# -- the sender's configuration and the emails --------------------------------------------------


def test_smtp_url_parsing():
    s = SmtpSettings.from_url("smtp://us%40er:p%3Ass@mail.example:2525?starttls=1&timeout=5")
    assert (s.host, s.port, s.username, s.password, s.starttls, s.timeout) == (
        "mail.example",
        2525,
        "us@er",
        "p:ss",
        True,
        5.0,
    )
    s = SmtpSettings.from_url("smtp://localhost")
    assert (s.port, s.username, s.starttls) == (25, None, False)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (None, "HARNESS_SMTP_URL"),
        ("", "HARNESS_SMTP_URL"),
        ("http://host:25", "scheme must be smtp"),
        ("smtp://:25", "no host"),
        ("smtp://host:notaport", "bad SMTP URL"),
        ("smtp://host:25?tls=1", "unknown parameter"),
        ("smtp://host:25?starttls=maybe", "starttls must be 1 or 0"),
        ("smtp://host:25?timeout=0", "timeout must be"),
        ("smtp://host:25/path", "unexpected path"),
    ],
)
def test_a_bad_smtp_url_is_a_clear_usage_error(url, reason):
    with pytest.raises(UsageError, match=reason):
        SmtpSettings.from_url(url)


def test_a_bad_smtp_url_never_echoes_its_password():
    with pytest.raises(UsageError) as info:
        SmtpSettings.from_url("smtps://user:s3cret@host:465")
    assert "s3cret" not in info.value.message and "***" in info.value.message


def test_both_emails_have_plain_text_and_html_bodies_and_the_jobs_message_id():
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    purchase_id = uuid.uuid4()
    msg = render(
        "purchase_confirmation",
        confirmation(purchase_id, Decimal("1234.50"), 3).payload(),
        message_id="<email-job-7@harness>",
        date=created,
    )
    assert msg["Message-ID"] == "<email-job-7@harness>"
    assert msg["Subject"] == "Your purchase of 3 leads is confirmed"
    assert msg["To"] == "Buyer <buyer@example.com>"
    text = msg.get_body(("plain",)).get_content()
    page = msg.get_body(("html",)).get_content()
    for part in (text, page):
        assert "$1,234.50" in part and str(purchase_id) in part
        assert f"https://app.example/api/marketplace/download/{purchase_id}" in part
        assert "April 02, 2026" in part
    assert "<a href=" in page

    payload = top_up_email("100.00", "150.00").payload()
    msg = render(
        "credit_purchase",
        {**payload, "name": "<Bob & Co>"},
        message_id="<email-job-8@harness>",
        date=created,
    )
    text = msg.get_body(("plain",)).get_content()
    page = msg.get_body(("html",)).get_content()
    assert "100.00 credits" in text and "150.00 credits" in text and "starter" in text
    assert "&lt;Bob &amp; Co&gt;" in page and "<Bob" not in page


def test_queue_module_exports_the_contract():
    for name in (
        "queue_purchase_confirmation_email",
        "queue_credit_purchase_email",
        "queue_status",
        "retry_dead",
        "request_cancel",
    ):
        assert callable(getattr(queue, name))
