"""The reference model of the money lifecycle (harness.money.model) on its own: each rule
it states, checked on small worlds without a database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from harness.money import model
from harness.money.model import Bought, Crashed, Delivered, Reconciled, Refused, Request
from harness.money.repository import KeyStatus, PurchaseStatus

D = Decimal


@pytest.fixture
def start() -> model.State:
    world = model.World(
        workspaces=(
            model.Workspace("a", ("a-0", "a-1"), D("5.00")),
            model.Workspace("b", ("b-0",), D("1.00")),
            model.Workspace("n", ("n-0",), None),
        ),
        leads=(
            model.Lead("x", D("1.00"), 1),
            model.Lead("y", D("1.50"), 2),
            model.Lead("z", D("0.50")),
        ),
    )
    return model.initial(world)


def test_the_opening_balances_are_top_ups_without_email(start):
    assert start.accounts["a"] == model.Account(D("5.00"))
    assert "n" not in start.accounts
    assert model.Entry("a", "topup", D("5.00")) in start.ledger
    assert start.emails == ()
    assert dict(start.sold) == {"x": 0, "y": 0, "z": 0}


def test_a_purchase_takes_its_price_reserves_sells_completes_and_confirms(start):
    state, answer = model.purchase(start, Request("a", "a-1", ("z", "y")))
    assert answer == Bought("p1", D("3.00"), D("2.00"), ("y", "z"))
    assert state.accounts["a"] == model.Account(D("3.00"), D("2.00"))
    assert model.Entry("a", "purchase", D("-2.00"), "p1") in state.ledger
    assert state.reservations == {("y", "a", "p1"), ("z", "a", "p1")}
    assert (state.sold["y"], state.sold["z"]) == (1, 1)
    p = state.purchases["p1"]
    assert (p.status, p.items, p.marked) == (PurchaseStatus.COMPLETED, True, True)
    assert state.emails == (model.Email("purchase_confirmation", "a-1", "a", "p1"),)
    assert model.deliverable(state, "p1") == ("y", "z")


@pytest.mark.parametrize(
    "request_, code",
    [
        (Request("a", "b-0", ("z",)), "not_authorized"),
        (Request("n", "n-0", ("z",)), "no_credits_account"),
        (Request("b", "b-0", ("y",)), "insufficient_credits"),
    ],
)
def test_a_refused_purchase_changes_nothing(start, request_, code):
    state, answer = model.purchase(start, request_)
    assert answer == Refused(code)
    assert state == start


def test_refusals_come_in_their_order(start):
    state, _ = model.purchase(start, Request("a", "a-0", ("x",)))
    # b holds nothing, x is sold out to a, and b cannot afford y: availability comes first.
    _, answer = model.purchase(state, Request("b", "b-0", ("x", "y")))
    assert answer == Refused("leads_no_longer_available")
    # a already holds x: a duplicate before anything else.
    _, answer = model.purchase(state, Request("a", "a-0", ("x", "z")))
    assert answer == Refused("duplicate_purchase")


def test_a_reservation_of_a_pending_purchase_holds_an_exclusive_lead(start):
    state, answer = model.crash_purchase(start, Request("a", "a-0", ("x",)), "debit")
    assert answer == Crashed("p1")
    assert state.sold["x"] == 0 and state.held("x") == 1
    _, answer = model.purchase(state, Request("b", "b-0", ("x",)))
    assert answer == Refused("leads_no_longer_available")


@pytest.mark.parametrize(
    "after, status, items, marked, sold",
    [
        ("debit", PurchaseStatus.PENDING, False, False, 0),
        ("items", PurchaseStatus.PENDING, True, False, 0),
        ("mark_sold", PurchaseStatus.PENDING, True, True, 1),
        ("complete", PurchaseStatus.COMPLETED, True, True, 1),
    ],
)
def test_a_crash_leaves_the_steps_before_it_done(start, after, status, items, marked, sold):
    state, answer = model.crash_purchase(start, Request("a", "a-0", ("z",)), after)
    assert answer == Crashed("p1")
    p = state.purchases["p1"]
    assert (p.status, p.items, p.marked, state.sold["z"]) == (status, items, marked, sold)
    assert state.accounts["a"].balance == D("4.50")
    assert not state.emailed("p1")  # no step of the flow before the email ran


def test_idempotency_keys_replay_refuse_a_mismatch_and_wait_for_an_unfinished_attempt(start):
    req = Request("a", "a-0", ("z",), "k")
    state, first = model.purchase(start, req)
    again, replay = model.purchase(state, req)
    assert replay == first.replay() and again == state  # no second debit
    _, answer = model.purchase(state, Request("a", "a-0", ("y",), "k"))
    assert answer == Refused("idempotency_mismatch")
    _, answer = model.purchase(state, Request("a", "a-1", ("z",), "k"))
    assert answer == Refused("idempotency_mismatch")
    # A key in another workspace is another key.
    _, answer = model.purchase(state, Request("b", "b-0", ("z",), "k"))
    assert isinstance(answer, Bought)
    cut, _ = model.crash_purchase(start, req, "items")
    _, answer = model.purchase(cut, req)
    assert answer == Refused("purchase_in_progress")


def test_a_key_whose_attempt_was_refused_may_run_again(start):
    req = Request("b", "b-0", ("y",), "k")
    state, answer = model.purchase(start, req)
    assert answer == Refused("insufficient_credits")
    assert state.keys[("b", "k")].status is KeyStatus.FAILED
    state, _ = model.top_up(state, "b", D("1.00"))
    state, answer = model.purchase(state, req)
    assert answer == Bought("p1", D("0.50"), D("1.50"), ("y",))
    assert state.keys[("b", "k")].status is KeyStatus.COMPLETED


def test_a_refund_gives_back_exactly_what_the_purchase_took(start):
    state, _ = model.purchase(start, Request("b", "b-0", ("z",)))  # a sale of z by b
    for after, sold_after in (("items", 1), ("mark_sold", 1)):
        cut, _ = model.crash_purchase(state, Request("a", "a-0", ("z",)), after)
        refunded, answer = model.refund(cut, "p2")
        assert answer == "refunded"
        assert refunded.accounts["a"] == state.accounts["a"]
        assert refunded.reservations == state.reservations  # its own released, b's kept
        assert refunded.sold["z"] == sold_after  # b's sale stays; its own given back
        assert model.Entry("a", "refund", D("0.50"), "p2") in refunded.ledger
        assert model.deliverable(refunded, "p2") == ()  # its items stay, undeliverable


@pytest.mark.parametrize("op", [model.refund, model.complete, model.reconcile_purchase])
def test_a_final_state_is_final(start, op):
    done, _ = model.purchase(start, Request("a", "a-0", ("z",)))
    state, answer = op(done, "p1")
    assert state == done
    assert answer == ("unchanged" if op is model.reconcile_purchase else "completed")
    refunded, _ = model.refund(
        model.crash_purchase(start, Request("a", "a-0", ("z",)), "debit")[0], "p1"
    )
    state, answer = op(refunded, "p1")
    assert state == refunded
    assert answer == ("unchanged" if op is model.reconcile_purchase else "refunded")
    assert op(start, "p9")[1] == "missing"


def test_complete_needs_the_items_and_the_sales_recorded(start):
    for after, expected in (("debit", "pending"), ("items", "pending"), ("mark_sold", "completed")):
        cut, _ = model.crash_purchase(start, Request("a", "a-0", ("z",)), after)
        state, answer = model.complete(cut, "p1")
        assert answer == expected
        assert not state.emailed("p1")  # reconcile queues it later


def test_mark_sold_counts_a_pending_purchase_once_and_nothing_after(start):
    cut, _ = model.crash_purchase(start, Request("a", "a-0", ("z",)), "items")
    state, answer = model.mark_sold(cut, "p1")
    assert answer == "marked" and state.sold["z"] == 1
    with pytest.raises(ValueError, match="precondition"):
        model.mark_sold(state, "p1")
    settled, _ = model.reconcile_purchase(state, "p1")
    assert model.mark_sold(settled, "p1") == (settled, "not_pending")


def test_reconcile_completes_what_reached_its_last_step_and_refunds_the_rest(start):
    state = start
    for ws, lead, after in (
        ("a", "x", "debit"),
        ("a", "y", "items"),
        ("a", "z", "mark_sold"),
        ("b", "z", "complete"),
    ):
        state, _ = model.crash_purchase(state, Request(ws, f"{ws}-0", (lead,)), after)
    state, answer = model.reconcile(state)
    assert answer == Reconciled(
        completed=frozenset({"p3"}),
        refunded=frozenset({"p1", "p2"}),
        emails_queued=frozenset({"p4"}),
    )
    assert all(state.emailed(p) for p in ("p3", "p4"))
    assert model.reconcile(state)[1] == Reconciled()  # nothing left to settle


def test_reconcile_settles_the_keys_a_crash_left_unfinished(start):
    done = Request("a", "a-0", ("z",), "k1")
    lost = Request("a", "a-0", ("y",), "k2")
    state, _ = model.crash_purchase(start, done, "mark_sold")
    state, _ = model.crash_purchase(state, lost, "debit")
    state, answer = model.reconcile(state)
    assert (answer.keys_completed, answer.keys_failed) == (1, 1)
    _, replay = model.purchase(state, done)
    assert replay == Bought("p1", D("4.50"), D("0.50"), ("z",), replayed=True)
    _, again = model.purchase(state, lost)  # refunded: the request runs afresh
    assert again == Bought("p3", D("3.00"), D("1.50"), ("y",))


def test_leads_go_only_to_the_buyer_of_a_completed_purchase(start):
    state, _ = model.purchase(start, Request("a", "a-0", ("z",)))
    assert model.leads(state, "p1", "a")[1] == Delivered(("z",), ("z",))
    assert model.leads(state, "p1", "b")[1] == Delivered((), ("z",))
    cut, _ = model.crash_purchase(start, Request("a", "a-0", ("z",)), "items")
    assert model.leads(cut, "p1", "a")[1] == Delivered((), ())


def test_the_worker_sends_every_queued_email(start):
    state, _ = model.top_up(start, "n", D("2.00"))
    assert state.accounts["n"] == model.Account(D("2.00"))
    state, _ = model.purchase(state, Request("n", "n-0", ("z",)))
    state, sent = model.run_worker(state)
    assert sent == 2 and {e.status for e in state.emails} == {"sent"}
    assert model.run_worker(state)[1] == 0


def test_a_top_up_of_a_bad_amount_is_refused(start):
    for amount in (D("0"), D("-1"), D("0.001"), D("NaN")):
        assert model.top_up(start, "a", amount) == (start, Refused("invalid_amount"))


def test_reapply_changes_nothing(start):
    assert model.reapply(start) == (start, "reapplied")


def test_states_are_values_the_same_however_they_were_reached(start):
    one, _ = model.top_up(model.top_up(start, "a", D("1.00"))[0], "b", D("2.00"))
    two, _ = model.top_up(model.top_up(start, "b", D("2.00"))[0], "a", D("1.00"))
    assert one == two and hash(one) == hash(two)
    assert len({one, two, start}) == 2


def test_an_observation_names_what_differs(start):
    state, _ = model.purchase(start, Request("a", "a-0", ("z",)))
    differences = model.observe(state).differences(model.observe(start))
    assert any(d.startswith("accounts: expected a 4.50") for d in differences)
    assert any(d.startswith("sold: expected z 1, got z 0") for d in differences)
