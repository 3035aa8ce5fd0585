"""The money functions migration 0006 made faster write and answer what 0005's did.

The atomic flow now writes in one statement what five functions wrote (the email job of
queue_purchase_confirmation, the response of purchase_response_leads, the sales of
mark_leads_sold_batch, the completion of complete_purchase); the purchase's ledger entry is
written by the debit, with the trigger skipping those purchases only; and a debit that
loses the race for the last of a balance takes back what its call wrote.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from psycopg.types.json import Jsonb

from harness import db as database
from harness.money.invariants import check_invariants
from harness.money.service import sql_config


def atomic(conn, ws, user, leads, total):
    return conn.execute(
        "SELECT purchase_leads_atomic(%s, %s, %s::uuid[], %s, NULL, NULL, %s)",
        (ws, user, leads, Decimal(total), Jsonb(sql_config())),
    ).fetchone()[0]


def pwc(conn, ws, user, leads, total):
    return conn.execute(
        "SELECT success, error_message, new_balance, purchase_id "
        "FROM purchase_with_credits(%s, %s, %s::uuid[], %s, %s)",
        (ws, user, leads, Decimal(total), Decimal(total)),
    ).fetchone()


def ledger(conn, purchase_id):
    return conn.execute(
        "SELECT entry_type::text, amount FROM credit_ledger WHERE purchase_id = %s ORDER BY id",
        (purchase_id,),
    ).fetchall()


def test_the_atomic_flow_writes_what_the_functions_it_replaced_would(conn, world):
    ws, (user,) = world.workspace(balance="10.00")
    partner = world.partner(base="0.30", bonus="0.05", pass_rate="0.97")
    leads = world.leads(2, price="1.50", partner=partner) + world.leads(1, price="2.00")
    answer = atomic(conn, ws, user, leads, "5.00")
    assert answer["status"] == "completed", answer
    response = answer["response"]
    purchase_id = response["purchase_id"]

    status, marked, completed = conn.execute(
        "SELECT status::text, leads_marked_at IS NOT NULL, completed_at IS NOT NULL "
        "FROM marketplace_purchases WHERE id = %s",
        (purchase_id,),
    ).fetchone()
    assert (status, marked, completed) == ("completed", True, True)
    assert (
        response["leads"]
        == conn.execute("SELECT purchase_response_leads(%s)", (purchase_id,)).fetchone()[0]
    )
    assert (response["total_price"], response["new_balance"]) == ("5.00", "5.00")
    commissions = conn.execute(
        "SELECT i.commission_rate, i.commission_amount, i.commission_bonuses, c.rate, c.amount, "
        "c.bonuses FROM marketplace_purchase_items i JOIN leads l ON l.id = i.lead_id "
        "JOIN partners p ON p.id = l.partner_id, LATERAL calculate_commission(l.marketplace_price, "
        "p.base_commission_rate, p.bonus_commission_rate, p.verification_pass_rate, l.created_at, "
        "i.created_at, %s) c WHERE i.purchase_id = %s",
        (Jsonb(sql_config()), purchase_id),
    ).fetchall()
    assert len(commissions) == 2 and all(r[:3] == r[3:] for r in commissions), commissions

    # queue_purchase_confirmation, asked again without the job, builds the same payload.
    job = conn.execute(
        "SELECT payload FROM email_jobs WHERE purchase_id = %s", (purchase_id,)
    ).fetchone()[0]
    conn.execute("BEGIN")
    try:
        conn.execute("DELETE FROM email_jobs WHERE purchase_id = %s", (purchase_id,))
        conn.execute(
            "SELECT queue_purchase_confirmation(%s, %s)", (purchase_id, Jsonb(sql_config()))
        )
        again = conn.execute(
            "SELECT payload FROM email_jobs WHERE purchase_id = %s", (purchase_id,)
        ).fetchone()[0]
    finally:
        conn.execute("ROLLBACK")
    expiry = "download_expires_at"
    assert {k: v for k, v in job.items() if k != expiry} == {
        k: v for k, v in again.items() if k != expiry
    }
    assert job[expiry][:10] == again[expiry][:10]
    assert ledger(conn, purchase_id) == [("purchase", Decimal("-5.00"))]
    assert check_invariants(conn) == []


def test_every_purchase_has_one_ledger_entry_whoever_writes_it(conn, world):
    ws, (user,) = world.workspace(balance="10.00")
    by_function = pwc(conn, ws, user, world.leads(1), "1.00")[3]
    by_atomic = atomic(conn, ws, user, world.leads(1), "1.00")["response"]["purchase_id"]
    # A writer that leaves the ledger to the trigger, in a transaction that called a money
    # function first: the function's setting is gone once it returns.
    conn.execute("BEGIN")
    pwc(conn, ws, user, world.leads(1), "1.00")
    setting = conn.execute("SELECT current_setting('harness.ledger_writer', true)").fetchone()[0]
    by_hand = conn.execute(
        "INSERT INTO marketplace_purchases (buyer_workspace_id, buyer_user_id, total_leads, "
        "total_price, credits_used) VALUES (%s, %s, 1, 1.00, 1.00) RETURNING id",
        (ws, user),
    ).fetchone()[0]
    conn.execute(
        "UPDATE workspace_credits SET balance = balance - 1.00, total_used = total_used + 1.00 "
        "WHERE workspace_id = %s",
        (ws,),
    )
    conn.execute("COMMIT")
    assert setting in (None, "")
    for purchase_id in (by_function, by_atomic, by_hand):
        assert ledger(conn, purchase_id) == [("purchase", Decimal("-1.00"))], purchase_id
    assert conn.execute("SELECT refund_purchase(%s)::text", (by_function,)).fetchone()[0] == (
        "refunded"
    )
    assert ledger(conn, by_function) == [
        ("purchase", Decimal("-1.00")),
        ("refund", Decimal("1.00")),
    ]
    # The purchase written by hand holds no reservation on purpose; only the ledger counts here.
    assert [v for v in check_invariants(conn) if v.name != "purchase_reservations_mismatch"] == []


def _lose_the_race(db, world, buy):
    """Workspace with 1.00; session A buys a lead and holds its transaction open, session B
    buys another lead of the same workspace (its checks pass on the balance A has not yet
    spent), waits for the credits row, and is answered once A commits."""
    ws, (user,) = world.workspace(balance="1.00")
    first, second = world.leads(2)
    with database.connect(db) as a, database.connect(db) as b:
        a.execute("BEGIN")
        assert buy(a, ws, user, [first])[0]
        b_pid = b.info.backend_pid
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("answer", buy(b, ws, user, [second])))
        t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # B waits on the credits row A holds
            waiting = a.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (b_pid,)
            ).fetchone()[0]
            if waiting == "Lock":
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the second purchase never waited for the credits row")
        a.execute("COMMIT")
        t.join(30)
    return ws, second, result["answer"]


def test_a_debit_that_loses_the_race_takes_back_what_it_wrote(db, conn, world):
    ws, second, answer = _lose_the_race(
        db, world, lambda c, ws, user, leads: pwc(c, ws, user, leads, "1.00")
    )
    assert answer[:3] == (False, "Insufficient credits", Decimal("0.00"))
    assert (
        conn.execute(
            "SELECT count(*) FROM lead_reservations WHERE lead_id = %s", (second,)
        ).fetchone()[0]
        == 0
    )
    assert (
        conn.execute(
            "SELECT count(*) FROM marketplace_purchases WHERE buyer_workspace_id = %s", (ws,)
        ).fetchone()[0]
        == 1
    )
    assert check_invariants(conn) == []


def test_an_atomic_purchase_that_loses_the_race_writes_nothing(db, conn, world):
    def buy(c, ws, user, leads):
        answer = atomic(c, ws, user, leads, "1.00")
        return (answer["status"] == "completed", answer)

    ws, second, (_, answer) = _lose_the_race(db, world, buy)
    assert answer == {
        "status": "refused",
        "error_message": "Insufficient credits",
        "balance": "0.00",
    }
    assert conn.execute(
        "SELECT (SELECT count(*) FROM marketplace_purchases WHERE buyer_workspace_id = %s), "
        "(SELECT sold_count FROM leads WHERE id = %s), "
        "(SELECT count(*) FROM email_jobs WHERE workspace_id = %s)",
        (ws, second, ws),
    ).fetchone() == (1, 0, 1)
    assert check_invariants(conn) == []
