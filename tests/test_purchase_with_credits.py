"""purchase_with_credits and mark_leads_sold_batch against a real server: every rejection
answers success = false with its stable message and changes nothing."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from conftest import snapshot

from harness.config import DB_MESSAGES

CALL = "SELECT * FROM purchase_with_credits(%s, %s, %s::uuid[], %s, %s)"


def call(conn, ws, user, leads, total, credits=None):
    credits = total if credits is None else credits
    return conn.execute(CALL, (ws, user, leads, total, credits)).fetchone()


def assert_refused(conn, ws, user, leads, total, credits, message):
    before = snapshot(conn)
    row = call(conn, ws, user, leads, total, credits)
    assert row[0] is False, row
    assert row[1] == message
    assert row[3] is None
    assert message in DB_MESSAGES
    assert snapshot(conn) == before, "a refused purchase changed rows"


@pytest.fixture
def buyer(world):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(3, price="1.00")
    return ws, user, leads


def test_purchase_deducts_exactly_its_price_and_records_one_pending_purchase(conn, world, buyer):
    ws, user, leads = buyer
    ok, err, new_balance, pid = call(conn, ws, user, leads[:2], Decimal("2.00"))
    assert (ok, err, new_balance) == (True, None, Decimal("8.00"))
    row = conn.execute(
        "SELECT status, credits_used, total_price, total_leads, buyer_user_id "
        "FROM marketplace_purchases WHERE id = %s",
        (pid,),
    ).fetchone()
    assert row == ("pending", Decimal("2.00"), Decimal("2.00"), 2, user)
    assert world.balance(ws) == Decimal("8.00")
    ledger = conn.execute(
        "SELECT sum(amount) FROM credit_ledger WHERE workspace_id = %s", (ws,)
    ).fetchone()[0]
    assert ledger == Decimal("8.00")


def test_spending_the_exact_balance_succeeds(conn, world):
    ws, (user,) = world.workspace(balance="3.00")
    leads = world.leads(3, price="1.00")
    row = call(conn, ws, user, leads, Decimal("3.00"))
    assert row[0] is True and row[2] == Decimal("0.00")
    assert world.balance(ws) == Decimal("0.00")


def test_one_cent_more_than_the_balance_is_refused(conn, world):
    ws, (user,) = world.workspace(balance="2.99")
    leads = world.leads(3, price="1.00")
    assert_refused(conn, ws, user, leads, Decimal("3.00"), Decimal("3.00"), "Insufficient credits")


def test_workspace_without_credits_account_is_refused(conn, world):
    ws, (user,) = world.workspace(balance=None)
    leads = world.leads(1)
    assert_refused(
        conn, ws, user, leads, Decimal("1.00"), Decimal("1.00"), "No credits account found"
    )


@pytest.mark.parametrize(
    "total, credits",
    [
        (None, None),
        (Decimal("0"), Decimal("0")),
        (Decimal("-1000"), Decimal("-1000")),
        (Decimal("0.004"), Decimal("0.004")),
        (Decimal("1.005"), Decimal("1.005")),
        (Decimal("100000000"), Decimal("100000000")),
        (Decimal("1.00"), None),
        (None, Decimal("1.00")),
    ],
    ids=[
        "null",
        "zero",
        "negative",
        "sub-cent",
        "sub-cent-above-one",
        "out-of-range",
        "null-credits",
        "null-total",
    ],
)
def test_bad_amounts_are_refused(conn, buyer, total, credits):
    ws, user, leads = buyer
    before = snapshot(conn)
    row = conn.execute(CALL, (ws, user, leads[:1], total, credits)).fetchone()
    assert row[0] is False and row[1] == "Invalid amount"
    assert snapshot(conn) == before


def test_credits_used_must_equal_total_price(conn, buyer):
    ws, user, leads = buyer
    assert_refused(
        conn,
        ws,
        user,
        leads[:1],
        Decimal("1.00"),
        Decimal("0.50"),
        "Credits used must equal the total price",
    )


def test_total_must_be_the_sum_of_the_leads_prices(conn, buyer):
    ws, user, leads = buyer
    assert_refused(
        conn,
        ws,
        user,
        leads[:2],
        Decimal("1.00"),
        Decimal("1.00"),
        "Total price does not match the leads",
    )


@pytest.mark.parametrize("lead_ids", [None, []], ids=["null", "empty"])
def test_no_leads_is_refused(conn, buyer, lead_ids):
    ws, user, _ = buyer
    assert_refused(conn, ws, user, lead_ids, Decimal("1.00"), Decimal("1.00"), "No leads selected")


def test_duplicate_lead_ids_are_refused(conn, buyer):
    ws, user, leads = buyer
    assert_refused(
        conn,
        ws,
        user,
        [leads[0], leads[0]],
        Decimal("2.00"),
        Decimal("2.00"),
        "Duplicate leads selected",
    )


def test_unknown_and_null_lead_ids_are_refused(conn, buyer):
    ws, user, leads = buyer
    assert_refused(
        conn,
        ws,
        user,
        [leads[0], uuid.uuid4()],
        Decimal("2.00"),
        Decimal("2.00"),
        "Leads not found",
    )
    assert_refused(
        conn, ws, user, [leads[0], None], Decimal("2.00"), Decimal("2.00"), "Leads not found"
    )


def test_leads_not_for_sale_or_sold_out_are_refused(conn, world, buyer):
    ws, user, _ = buyer
    hidden = world.leads(1, for_sale=False)
    assert_refused(
        conn, ws, user, hidden, Decimal("1.00"), Decimal("1.00"), "Leads no longer available"
    )
    exclusive = world.leads(1, max_sales=1)
    other, (other_user,) = world.workspace(balance="5.00")
    assert call(conn, other, other_user, exclusive, Decimal("1.00"))[0] is True
    assert_refused(
        conn, ws, user, exclusive, Decimal("1.00"), Decimal("1.00"), "Leads no longer available"
    )


def test_leads_already_bought_by_this_workspace_are_refused(conn, buyer):
    ws, user, leads = buyer
    assert call(conn, ws, user, leads[:1], Decimal("1.00"))[0] is True
    assert_refused(
        conn, ws, user, leads[:2], Decimal("2.00"), Decimal("2.00"), "Leads already purchased"
    )


def test_a_user_who_is_not_a_member_is_refused(conn, world, buyer):
    ws, _, leads = buyer
    outsider = world.user("outsider")
    _, (foreign_member,) = world.workspace(balance="5.00")
    for user in (outsider, foreign_member, None, uuid.uuid4()):
        assert_refused(
            conn,
            ws,
            user,
            leads[:1],
            Decimal("1.00"),
            Decimal("1.00"),
            "Not a member of this workspace",
        )
    assert_refused(
        conn,
        None,
        outsider,
        leads[:1],
        Decimal("1.00"),
        Decimal("1.00"),
        "Not a member of this workspace",
    )


def test_mark_leads_sold_batch_counts_each_lead_once_and_respects_max_sales(conn, world):
    leads = world.leads(3)
    exclusive = world.leads(1, max_sales=1)
    assert (
        conn.execute(
            "SELECT mark_leads_sold_batch(%s::uuid[])", (leads + [leads[0]] + exclusive,)
        ).fetchone()[0]
        == 4
    )
    first = dict(conn.execute("SELECT id, first_sold_at FROM leads").fetchall())
    assert all(first[i] is not None for i in leads + exclusive)
    assert (
        conn.execute("SELECT mark_leads_sold_batch(%s::uuid[])", (leads + exclusive,)).fetchone()[0]
        == 3
    )
    rows = dict(conn.execute("SELECT id, sold_count FROM leads").fetchall())
    assert [rows[i] for i in leads] == [2, 2, 2]
    assert rows[exclusive[0]] == 1
    again = dict(conn.execute("SELECT id, first_sold_at FROM leads").fetchall())
    assert again == first, "first_sold_at must be set only by the first sale"
    assert conn.execute("SELECT mark_leads_sold_batch(NULL)").fetchone()[0] == 0


REFUSAL = "SELECT error_message, balance FROM purchase_refusal(%s, %s, %s::uuid[], %s, %s)"


def test_the_refusal_names_only_a_reason_that_holds_when_it_is_read(conn, world):
    """A refused attempt's reason is read again, with a later snapshot. When nothing
    refuses the purchase at that read (a refund gave back the lead or the credits in
    between), the answer is no reason, and the purchase functions attempt again instead
    of refusing for a reason that held at neither moment (model.linearizable found such
    an `Insufficient credits` on PostgreSQL 15)."""
    ws, (user,) = world.workspace(balance="1.00")
    cheap, dear = world.leads(1, price="1.00")[0], world.leads(1, price="2.00")[0]
    one, two = Decimal("1.00"), Decimal("2.00")
    assert conn.execute(REFUSAL, (ws, user, [cheap], one, one)).fetchone() == (None, one)
    assert conn.execute(REFUSAL, (ws, user, [dear], two, two)).fetchone() == (
        "Insufficient credits",
        one,
    )
    # and the purchase the first read found nothing against goes through
    assert call(conn, ws, user, [cheap], one)[:3] == (True, None, Decimal("0.00"))


# A purchase_refusal that never finds a reason: the state "changing" under every attempt.
NEVER_A_REASON = """
CREATE OR REPLACE FUNCTION public.purchase_refusal(
  p_workspace_id uuid, p_user_id uuid, p_lead_ids uuid[], p_total_price numeric,
  p_credits_used numeric, OUT error_message text, OUT balance numeric(10,2))
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT NULL::text, NULL::numeric(10,2) $$
"""


def test_a_purchase_whose_state_keeps_changing_gives_up_with_a_serialization_failure(conn, world):
    """After a hundred attempts each refused for no reason that still held, both money
    functions raise serialization_failure (SQLSTATE 40001, which callers retry) and leave
    nothing behind, instead of looping for ever or answering a reason that held at neither
    moment."""
    from psycopg import errors
    from psycopg.types.json import Jsonb

    from harness.money.service import sql_config

    ws, (user,) = world.workspace(balance="1.00")
    dear = world.leads(1, price="2.00")
    conn.execute(NEVER_A_REASON)
    before = snapshot(conn)
    for statement, args in (
        (
            "SELECT * FROM purchase_with_credits(%s, %s, %s::uuid[], %s, %s)",
            (ws, user, dear, Decimal("2.00"), Decimal("2.00")),
        ),
        (
            "SELECT purchase_leads_atomic(%s, %s, %s::uuid[], %s, NULL, NULL, %s)",
            (ws, user, dear, Decimal("2.00"), Jsonb(sql_config())),
        ),
    ):
        with pytest.raises(errors.SerializationFailure, match="kept changing"):
            conn.execute(statement, args)
        assert snapshot(conn) == before


# A purchase_refusal read just after a refund landed: the credits the refused attempt
# lacked are back (once), so no reason holds any more.
A_REFUND_LANDS = """
CREATE OR REPLACE FUNCTION public.purchase_refusal(
  p_workspace_id uuid, p_user_id uuid, p_lead_ids uuid[], p_total_price numeric,
  p_credits_used numeric, OUT error_message text, OUT balance numeric(10,2))
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE public.workspace_credits c SET balance = c.balance + 1.00
  WHERE c.workspace_id = p_workspace_id AND c.balance < p_total_price
  RETURNING NULL, c.balance INTO error_message, balance;
  IF NOT FOUND THEN
    error_message := 'Insufficient credits';
  END IF;
END
$$
"""


@pytest.mark.parametrize("entry", ["purchase_with_credits", "purchase_leads_atomic"])
def test_a_refusal_whose_reason_is_gone_is_attempted_again_and_goes_through(conn, world, entry):
    """When the re-read finds no reason (a refund gave back what the refused attempt
    lacked), both money functions attempt the purchase again, on the new state, and
    make it: not a refusal, nor an error the caller would see."""
    from psycopg.types.json import Jsonb

    from harness.money.service import sql_config

    ws, (user,) = world.workspace(balance="1.00")
    dear = world.leads(1, price="2.00")
    conn.execute(A_REFUND_LANDS)
    if entry == "purchase_with_credits":
        success, message, balance, purchase_id = call(conn, ws, user, dear, Decimal("2.00"))
    else:
        (answer,) = conn.execute(
            "SELECT purchase_leads_atomic(%s, %s, %s::uuid[], %s, NULL, NULL, %s)",
            (ws, user, dear, Decimal("2.00"), Jsonb(sql_config())),
        ).fetchone()
        success, message = answer["status"] == "completed", answer.get("error_message")
        balance = Decimal(answer.get("response", {}).get("new_balance", "NaN"))
    assert (success, message, balance) == (True, None, Decimal("0.00"))
