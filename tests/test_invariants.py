"""The invariant checker against a real server: a clean database reports nothing, and each
invariant, broken on purpose with plain SQL, is reported by name (and only the ones that
break with it)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest

from harness import db as database
from harness.money.invariants import INVARIANTS, check_invariants, summary


def names(conn, **kwargs) -> set[str]:
    return {v.name for v in check_invariants(conn, **kwargs)}


def buy(conn, ws, user, leads, *, complete=True, email=True) -> uuid.UUID:
    """A credit purchase the way the stepwise flow makes it, from the real functions."""
    total = conn.execute(
        "SELECT sum(marketplace_price) FROM leads WHERE id = ANY(%s)", (leads,)
    ).fetchone()[0]
    ok, err, _, pid = conn.execute(
        "SELECT * FROM purchase_with_credits(%s, %s, %s::uuid[], %s, %s)",
        (ws, user, leads, total, total),
    ).fetchone()
    assert ok, err
    if not complete:
        return pid
    conn.execute(
        "INSERT INTO marketplace_purchase_items (purchase_id, lead_id, price_at_purchase) "
        "SELECT %s, id, marketplace_price FROM leads WHERE id = ANY(%s)",
        (pid, leads),
    )
    conn.execute("SELECT mark_leads_sold_batch(%s::uuid[])", (leads,))
    conn.execute(
        "UPDATE marketplace_purchases SET status = 'completed', completed_at = now() WHERE id = %s",
        (pid,),
    )
    if email:
        conn.execute(
            "INSERT INTO email_jobs (kind, payload, purchase_id, workspace_id) "
            "VALUES ('purchase_confirmation', '{}', %s, %s)",
            (pid, ws),
        )
    return pid


@pytest.fixture
def shop(conn, world):
    """Two workspaces, one completed purchase each, one exclusive and two open leads."""
    a, (ua,) = world.workspace("a", balance="10.00")
    b, (ub,) = world.workspace("b", balance="10.00")
    exclusive = world.leads(1, price="2.00", max_sales=1)[0]
    open1, open2 = world.leads(2, price="1.00")
    pa = buy(conn, a, ua, [exclusive, open1])
    pb = buy(conn, b, ub, [open1])
    return {
        "a": a,
        "ua": ua,
        "b": b,
        "ub": ub,
        "exclusive": exclusive,
        "open1": open1,
        "open2": open2,
        "pa": pa,
        "pb": pb,
    }


def test_a_clean_database_holds_every_invariant(conn, shop):
    assert check_invariants(conn, pending_timeout=timedelta(0)) == []
    assert summary([]) == "every invariant holds"


def test_an_empty_migrated_database_holds_every_invariant(conn):
    assert check_invariants(conn, pending_timeout=timedelta(0)) == []


def test_the_check_leaves_the_connection_idle_and_works_without_autocommit(db, shop):
    with database.connect(db, autocommit=False) as c:
        assert check_invariants(c) == []
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_negative_balance_is_reported(conn, shop):
    conn.execute("ALTER TABLE workspace_credits DROP CONSTRAINT workspace_credits_balance_check")
    conn.execute("UPDATE workspace_credits SET balance = -1 WHERE workspace_id = %s", (shop["a"],))
    found = check_invariants(conn)
    # A balance below zero can only disagree with the ledger or show an overdraft in it.
    assert {v.name for v in found} == {"negative_balance", "balance_ledger_mismatch"}
    neg = next(v for v in found if v.name == "negative_balance")
    assert neg.rows[0]["workspace"] == "a" and neg.rows[0]["balance"] == Decimal("-1.00")


def test_balance_that_differs_from_its_ledger_is_reported(conn, shop):
    conn.execute(
        "UPDATE workspace_credits SET balance = balance + 1 WHERE workspace_id = %s", (shop["b"],)
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["balance_ledger_mismatch"]
    assert found[0].rows[0]["ledger_sum"] == Decimal("9.00")
    assert found[0].rows[0]["balance"] == Decimal("10.00")


def pending_purchase(conn, ws, user, lead) -> uuid.UUID:
    """A pending credit purchase of one lead at 1.00 written by hand (with its
    reservation), the way a racy or broken function might leave one."""
    pid = conn.execute(
        "INSERT INTO marketplace_purchases (buyer_workspace_id, buyer_user_id, total_leads, "
        "total_price, credits_used) VALUES (%s, %s, 1, 1.00, 1.00) RETURNING id",
        (ws, user),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO lead_reservations (lead_id, workspace_id, purchase_id) VALUES (%s, %s, %s)",
        (lead, ws, pid),
    )
    return pid


def test_ledger_overdraft_is_reported_even_when_balance_and_ledger_agree(conn, world):
    ws, (user,) = world.workspace("late", balance=None)
    # A debit recorded before any credit: the ledger ran below zero.
    pending_purchase(conn, ws, user, world.leads(1)[0])
    conn.execute("SELECT add_credits(%s, 1.00, 'late')", (ws,))
    conn.execute(
        "UPDATE workspace_credits SET balance = 0, total_used = 1 WHERE workspace_id = %s", (ws,)
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["ledger_overdraft"]
    assert "overdraft" in found[0].detail
    assert found[0].rows[0]["lowest_running_total"] == Decimal("-1.00")


def test_a_lost_update_shows_as_overdraft_and_ledger_mismatch(conn, world):
    """What the racy legacy flow leaves: two debits of 1.00 from a 1.00 balance, the second
    written over the first, so the balance says 0 while the ledger says -1."""
    ws, (user,) = world.workspace("racy", balance="1.00")
    for lead in world.leads(2):
        pending_purchase(conn, ws, user, lead)
    conn.execute(
        "UPDATE workspace_credits SET balance = 0, total_used = 2 WHERE workspace_id = %s", (ws,)
    )
    found = {v.name: v for v in check_invariants(conn)}
    assert set(found) == {"balance_ledger_mismatch", "ledger_overdraft"}
    assert "overdraft" in found["ledger_overdraft"].detail
    assert found["ledger_overdraft"].rows[0]["spent"] == Decimal("2.00")
    assert found["ledger_overdraft"].rows[0]["credited"] == Decimal("1.00")


def test_total_used_that_differs_from_purchases_is_reported(conn, shop):
    conn.execute(
        "UPDATE workspace_credits SET total_used = total_used + 0.01 WHERE workspace_id = %s",
        (shop["a"],),
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["total_used_mismatch"]
    assert found[0].rows[0]["credits_of_purchases"] == Decimal("3.00")


def test_refunded_purchases_do_not_count_towards_total_used(conn, shop):
    conn.execute(
        "UPDATE marketplace_purchases SET status = 'refunded', refunded_at = now(), "
        "completed_at = NULL WHERE id = %s",
        (shop["pb"],),
    )
    assert "total_used_mismatch" in names(conn)
    conn.execute(
        "UPDATE workspace_credits SET total_used = 0, balance = 10 WHERE workspace_id = %s",
        (shop["b"],),
    )
    assert "total_used_mismatch" not in names(conn)


def test_completed_purchase_whose_items_do_not_add_up_is_reported(conn, shop):
    conn.execute(
        "UPDATE marketplace_purchase_items SET price_at_purchase = 2.50 "
        "WHERE purchase_id = %s AND lead_id = %s",
        (shop["pa"], shop["open1"]),
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["completed_purchase_items_mismatch"]
    assert found[0].rows[0]["item_total"] == Decimal("4.50")


def test_completed_purchase_missing_an_item_is_reported(conn, shop):
    conn.execute("UPDATE marketplace_purchases SET total_leads = 3 WHERE id = %s", (shop["pa"],))
    # Two reservations for three leads: the reservations say so too.
    assert names(conn) == {"completed_purchase_items_mismatch", "purchase_reservations_mismatch"}


def test_sold_count_that_differs_from_completed_sales_is_reported(conn, shop):
    conn.execute("UPDATE leads SET sold_count = 3 WHERE id = %s", (shop["open1"],))
    found = check_invariants(conn)
    assert [v.name for v in found] == ["sold_count_mismatch"]
    assert found[0].rows[0]["completed_sales"] == 2


def test_a_sale_never_counted_is_reported(conn, shop):
    conn.execute(
        "UPDATE leads SET sold_count = 0, first_sold_at = NULL WHERE id = %s", (shop["open1"],)
    )
    assert names(conn) == {"sold_count_mismatch"}


def test_pending_purchase_between_mark_sold_and_complete_is_tolerated(conn, shop):
    pid = buy(conn, shop["a"], shop["ua"], [shop["open2"]], complete=False)
    conn.execute(
        "INSERT INTO marketplace_purchase_items (purchase_id, lead_id, "
        "price_at_purchase) VALUES (%s, %s, 1.00)",
        (pid, shop["open2"]),
    )
    assert names(conn) == set()
    # Marked as the flows mark: the count and leads_marked_at in one transaction.
    with conn.transaction():
        conn.execute("SELECT mark_leads_sold_batch(%s::uuid[])", ([shop["open2"]],))
        conn.execute(
            "UPDATE marketplace_purchases SET leads_marked_at = now() WHERE id = %s", (pid,)
        )
    assert names(conn) == set()
    assert names(conn, pending_timeout=timedelta(0)) == {"stuck_pending"}


def test_a_pending_purchase_counted_sold_without_its_mark_is_reported(conn, shop):
    """A sale counted for a pending purchase that does not record it: a refund would not
    give it back (what rolling back 0004, which drops leads_marked_at, leaves)."""
    pid = buy(conn, shop["a"], shop["ua"], [shop["open2"]], complete=False)
    conn.execute(
        "INSERT INTO marketplace_purchase_items (purchase_id, lead_id, "
        "price_at_purchase) VALUES (%s, %s, 1.00)",
        (pid, shop["open2"]),
    )
    conn.execute("SELECT mark_leads_sold_batch(%s::uuid[])", ([shop["open2"]],))
    found = check_invariants(conn)
    assert [v.name for v in found] == ["sold_count_mismatch"]
    assert found[0].rows[0]["sold_count"] == 1 and found[0].rows[0]["pending_marked_sales"] == 0


def refund_by_hand(conn, pid, *, release=True, give_back_sales=True) -> None:
    """What refund_purchase does, step by step, so that a test can leave one out."""
    ws, credits = conn.execute(
        "SELECT buyer_workspace_id, credits_used FROM marketplace_purchases WHERE id = %s", (pid,)
    ).fetchone()
    conn.execute(
        "UPDATE workspace_credits SET balance = balance + %s, total_used = total_used - %s "
        "WHERE workspace_id = %s",
        (credits, credits, ws),
    )
    conn.execute(
        "UPDATE marketplace_purchases SET status = 'refunded', refunded_at = now(), "
        "completed_at = NULL WHERE id = %s",
        (pid,),
    )
    if release:
        conn.execute("DELETE FROM lead_reservations WHERE purchase_id = %s", (pid,))
    if give_back_sales:
        conn.execute(
            "UPDATE leads SET sold_count = sold_count - 1, first_sold_at = CASE WHEN "
            "sold_count = 1 THEN NULL ELSE first_sold_at END WHERE id IN (SELECT lead_id "
            "FROM marketplace_purchase_items WHERE purchase_id = %s)",
            (pid,),
        )
    conn.execute("DELETE FROM email_jobs WHERE purchase_id = %s", (pid,))


def test_a_refund_done_right_by_hand_holds_every_invariant(conn, shop):
    refund_by_hand(conn, shop["pb"])
    assert names(conn) == set()


def test_a_refund_that_keeps_its_reservations_is_reported(conn, shop):
    refund_by_hand(conn, shop["pb"], release=False)
    found = check_invariants(conn)
    assert [v.name for v in found] == ["refunded_purchase_holds_leads"]
    assert found[0].rows[0]["purchase_id"] == shop["pb"]


def test_a_refund_that_keeps_its_sales_is_reported(conn, shop):
    refund_by_hand(conn, shop["pb"], give_back_sales=False)
    found = check_invariants(conn)
    assert [v.name for v in found] == ["sold_count_mismatch"]
    assert found[0].rows[0]["lead_id"] == shop["open1"]


def test_a_refunded_purchase_whose_leads_are_still_delivered_is_reported(conn, shop):
    refund_by_hand(conn, shop["pb"])
    # purchase_response_leads as 0004 wrote it: every item, whatever the status.
    conn.execute(
        """CREATE OR REPLACE FUNCTION purchase_response_leads(p_purchase_id uuid)
        RETURNS jsonb LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
          SELECT coalesce(jsonb_agg(jsonb_build_object('lead_id', i.lead_id::text)), '[]')
          FROM marketplace_purchase_items i WHERE i.purchase_id = p_purchase_id $$"""
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["unfinished_purchase_delivers_leads"]
    assert found[0].rows[0]["purchase_id"] == shop["pb"]
    assert found[0].rows[0]["status"] == "refunded"


def test_the_delivery_check_is_skipped_only_without_purchase_response_leads(conn, shop):
    conn.execute("DROP FUNCTION purchase_response_leads(uuid) CASCADE")
    assert check_invariants(conn) == []


def test_a_completed_purchase_with_an_item_it_did_not_reserve_is_reported(conn, shop):
    conn.execute(
        "UPDATE marketplace_purchase_items SET lead_id = %s WHERE purchase_id = %s",
        (shop["open2"], shop["pb"]),
    )
    conn.execute(
        "UPDATE leads SET sold_count = 1, first_sold_at = now() WHERE id IN (%s, %s)",
        (shop["open1"], shop["open2"]),
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["completed_purchase_items_not_its_leads"]
    assert found[0].rows[0]["item_leads"] == [shop["open2"]]
    assert found[0].rows[0]["reserved_leads"] == [shop["open1"]]


def test_a_reservation_held_for_another_workspace_is_reported(conn, shop):
    conn.execute(
        "UPDATE lead_reservations SET workspace_id = %s WHERE purchase_id = %s AND lead_id = %s",
        (shop["b"], shop["pa"], shop["exclusive"]),
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["purchase_reservations_mismatch"]
    assert found[0].rows[0]["for_another_workspace"] == 1


def test_a_refund_without_its_ledger_entry_is_reported(conn, shop):
    refund_by_hand(conn, shop["pb"])
    conn.execute(
        "DELETE FROM credit_ledger WHERE purchase_id = %s AND entry_type = 'refund'", (shop["pb"],)
    )
    conn.execute(
        "UPDATE workspace_credits SET balance = balance - 1 WHERE workspace_id = %s", (shop["b"],)
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["refund_ledger_mismatch"]
    assert found[0].rows[0]["refund_entries"] == 0


def test_a_refund_entry_for_a_purchase_not_refunded_is_reported(conn, shop):
    conn.execute(
        "INSERT INTO credit_ledger (workspace_id, entry_type, amount, purchase_id) "
        "VALUES (%s, 'refund', 1.00, %s)",
        (shop["b"], shop["pb"]),
    )
    conn.execute(
        "UPDATE workspace_credits SET balance = balance + 1 WHERE workspace_id = %s", (shop["b"],)
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["refund_ledger_mismatch"]
    assert found[0].rows[0]["status"] == "completed"


def test_idempotency_keys_that_contradict_their_purchase_are_reported(conn, shop):
    refund_by_hand(conn, shop["pb"])
    keys = (
        ("ok", "completed", shop["pa"]),  # replays a completed purchase: fine
        ("retry", "failed", shop["pb"]),  # its purchase was refunded: may run again, fine
        ("done", "completed", shop["pb"]),  # would replay a purchase that was refunded
        ("gone", "failed", shop["pa"]),  # would run again a purchase that completed
    )
    for key, status, pid in keys:
        conn.execute(
            "INSERT INTO api_idempotency_keys (workspace_id, idempotency_key, "
            "request_fingerprint, status, purchase_id) VALUES (%s, %s, 'f', %s, %s)",
            (shop["a"], key, status, pid),
        )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["idempotency_key_mismatch"]
    assert {(r["idempotency_key"], r["purchase_status"]) for r in found[0].rows} == {
        ("done", "refunded"),
        ("gone", "completed"),
    }


def test_lead_sold_beyond_max_sales_is_reported(conn, shop):
    lead = shop["open2"]
    buy(conn, shop["a"], shop["ua"], [lead])
    buy(conn, shop["b"], shop["ub"], [lead])
    conn.execute("ALTER TABLE leads DROP CONSTRAINT leads_sold_within_max_sales")
    conn.execute("UPDATE leads SET max_sales = 1 WHERE id = %s", (lead,))
    found = check_invariants(conn)
    assert [v.name for v in found] == ["max_sales_exceeded"]
    assert found[0].rows[0]["sales"] == 2 and found[0].rows[0]["max_sales"] == 1


def test_lead_bought_twice_by_one_workspace_is_reported(conn, shop):
    a, lead = shop["a"], shop["open1"]
    pid = conn.execute(
        "INSERT INTO marketplace_purchases (buyer_workspace_id, buyer_user_id, total_leads, "
        "total_price, payment_method, status, completed_at) "
        "VALUES (%s, %s, 1, 1.00, 'card', 'completed', now()) RETURNING id",
        (a, shop["ua"]),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO marketplace_purchase_items (purchase_id, lead_id, "
        "price_at_purchase) VALUES (%s, %s, 1.00)",
        (pid, lead),
    )
    conn.execute("UPDATE leads SET sold_count = sold_count + 1 WHERE id = %s", (lead,))
    conn.execute(
        "INSERT INTO email_jobs (kind, payload, purchase_id) "
        "VALUES ('purchase_confirmation', '{}', %s)",
        (pid,),
    )
    found = {v.name: v for v in check_invariants(conn)}
    # The second purchase cannot hold its own reservation (one per workspace and lead), so
    # the reservation invariants see it too.
    assert set(found) == {
        "lead_bought_twice",
        "completed_purchase_items_not_its_leads",
        "purchase_reservations_mismatch",
    }
    rows = found["lead_bought_twice"].rows
    assert rows[0]["workspace"] == "a"
    assert sorted(rows[0]["purchase_ids"]) == sorted([shop["pa"], pid])


def test_purchase_stuck_in_pending_is_reported_only_past_the_timeout(conn, shop):
    pid = buy(conn, shop["a"], shop["ua"], [shop["open2"]], complete=False)
    assert names(conn) == set()  # no timeout given: not checked
    assert names(conn, pending_timeout=timedelta(hours=1)) == set()
    conn.execute(
        "UPDATE marketplace_purchases SET created_at = now() - interval '10 minutes' WHERE id = %s",
        (pid,),
    )
    found = check_invariants(conn, pending_timeout=timedelta(minutes=5))
    assert [v.name for v in found] == ["stuck_pending"]
    assert found[0].rows[0]["purchase_id"] == pid


def test_completed_purchase_without_confirmation_email_is_reported(conn, shop):
    conn.execute("DELETE FROM email_jobs WHERE purchase_id = %s", (shop["pb"],))
    found = check_invariants(conn)
    assert [v.name for v in found] == ["confirmation_email_missing"]
    assert found[0].rows[0]["purchase_id"] == shop["pb"]


def test_completed_purchase_with_two_confirmation_emails_is_reported(conn, shop):
    conn.execute("ALTER TABLE email_jobs DROP CONSTRAINT email_jobs_one_confirmation_per_purchase")
    conn.execute(
        "INSERT INTO email_jobs (kind, payload, purchase_id) "
        "VALUES ('purchase_confirmation', '{}', %s)",
        (shop["pa"],),
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["confirmation_email_missing"]
    assert found[0].rows[0]["confirmation_jobs"] == 2


def test_email_check_is_skipped_only_when_the_outbox_table_does_not_exist(conn, shop):
    conn.execute("DROP TABLE email_jobs")
    assert check_invariants(conn) == []


def test_debit_naming_no_purchase_is_reported(conn, shop):
    conn.execute(
        "INSERT INTO credit_ledger (workspace_id, entry_type, amount) "
        "VALUES (%s, 'purchase', -1.00)",
        (shop["a"],),
    )
    conn.execute(
        "UPDATE workspace_credits SET balance = balance - 1 WHERE workspace_id = %s", (shop["a"],)
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["debit_without_purchase"]
    assert found[0].rows[0]["problem"] == "debit names no purchase"


def test_debit_naming_a_deleted_purchase_is_reported(conn, shop):
    conn.execute("SET session_replication_role = replica")  # no FK, no ledger trigger
    conn.execute(
        "INSERT INTO credit_ledger (workspace_id, entry_type, amount, purchase_id) "
        "VALUES (%s, 'purchase', -1.00, %s)",
        (shop["a"], uuid.uuid4()),
    )
    conn.execute("RESET session_replication_role")
    conn.execute(
        "UPDATE workspace_credits SET balance = balance - 1 WHERE workspace_id = %s", (shop["a"],)
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["debit_without_purchase"]
    assert found[0].rows[0]["problem"] == "debit names a purchase that does not exist"


def test_debit_of_the_wrong_amount_is_reported(conn, shop):
    conn.execute("UPDATE credit_ledger SET amount = -1.50 WHERE purchase_id = %s", (shop["pb"],))
    conn.execute(
        "UPDATE workspace_credits SET balance = 8.50 WHERE workspace_id = %s", (shop["b"],)
    )
    found = check_invariants(conn)
    assert [v.name for v in found] == ["debit_without_purchase"]


def test_credit_purchase_without_a_debit_is_reported(conn, shop):
    conn.execute("DELETE FROM credit_ledger WHERE purchase_id = %s", (shop["pb"],))
    conn.execute("UPDATE workspace_credits SET balance = 10 WHERE workspace_id = %s", (shop["b"],))
    found = check_invariants(conn)
    assert [v.name for v in found] == ["debit_without_purchase"]
    assert found[0].rows[0]["problem"] == "credit purchase without a debit"


def test_every_invariant_has_a_test_that_breaks_it():
    """Guard: a new invariant needs a test above showing it can fail."""
    source = open(__file__).read()
    untested = [n for n in INVARIANTS if f'"{n}"' not in source.split("def test_every")[0]]
    assert untested == []
