"""The purchase service against a real server: flow selection, every error code through
each flow, idempotency keys (replay, in progress, mismatch, retry after failure), top-ups."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest
from conftest import snapshot

from harness import db as database
from harness.errors import DatabaseFailure, DomainError, UsageError
from harness.money.service import (
    FLOW_ENV,
    PurchaseRequest,
    PurchaseResult,
    PurchaseService,
    current_flow,
    sql_config,
)
from harness.testing import max_overlap, release_together

FLOWS = ("atomic", "stepwise", "legacy")


@pytest.fixture(scope="module")
def db(admin_dsn, template_db):
    """One migrated database for the whole module (tests keep apart by making their own
    workspaces and leads): a clone per test would cost more than the tests themselves."""
    name = database.scratch_name("harness_service")
    dsn = database.create_database(admin_dsn, name, template_db)
    yield dsn
    database.drop_database(admin_dsn, name)


@pytest.fixture(scope="module")
def pool(db):
    p = database.pool(db, max_size=6)
    yield p
    p.close()


@pytest.fixture(params=FLOWS)
def flow(request):
    return request.param


@pytest.fixture
def service(pool, flow):
    return PurchaseService(pool, flow)


@pytest.fixture
def buyer(world):
    ws, (user,) = world.workspace(balance="10.00")
    return ws, user


def req(ws, user, leads, key=None):
    return PurchaseRequest(ws, user, tuple(leads), key)


def ledger_sum(conn, ws):
    return conn.execute(
        "SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE workspace_id = %s", (ws,)
    ).fetchone()[0]


def purchases(conn, ws):
    return conn.execute(
        "SELECT count(*) FROM marketplace_purchases WHERE buyer_workspace_id = %s", (ws,)
    ).fetchone()[0]


# -- flow selection ----------------------------------------------------------------------


def test_flow_defaults_to_atomic_and_follows_the_environment(monkeypatch, pool):
    monkeypatch.delenv(FLOW_ENV, raising=False)
    assert current_flow() == "atomic"
    assert PurchaseService(pool).flow == "atomic"
    monkeypatch.setenv(FLOW_ENV, "legacy")
    assert PurchaseService(pool).flow == "legacy"
    assert PurchaseService(pool, "stepwise").flow == "stepwise"


def test_an_unknown_flow_is_a_usage_error(monkeypatch, pool):
    monkeypatch.setenv(FLOW_ENV, "fast")
    with pytest.raises(UsageError, match="fast"):
        PurchaseService(pool)
    with pytest.raises(UsageError):
        PurchaseService(pool, "nope")


# -- every error code through every flow ---------------------------------------------------


def assert_refused(conn, service, request, code):
    before = snapshot(conn)
    with pytest.raises(DomainError) as info:
        service.purchase(request)
    assert info.value.code == code, info.value
    after = snapshot(conn)
    # A refusal may leave a 'failed' idempotency key, nothing else.
    before.pop("api_idempotency_keys", None)
    after.pop("api_idempotency_keys", None)
    assert after == before, "a refused purchase changed rows"
    return info.value


def test_no_leads_selected(conn, service, buyer):
    assert_refused(conn, service, req(*buyer, []), "no_leads_selected")


def test_duplicate_leads(conn, world, service, buyer):
    (lead,) = world.leads(1)
    assert_refused(conn, service, req(*buyer, [lead, lead]), "duplicate_leads")


def test_leads_not_found(conn, world, service, buyer):
    (lead,) = world.leads(1)
    assert_refused(conn, service, req(*buyer, [lead, uuid.uuid4()]), "leads_not_found")


def test_not_authorized(conn, world, service, buyer):
    ws, _ = buyer
    outsider = world.user("outsider")
    assert_refused(conn, service, req(ws, outsider, world.leads(1)), "not_authorized")


def test_insufficient_credits(conn, world, service):
    ws, (user,) = world.workspace(balance="2.99")
    exc = assert_refused(conn, service, req(ws, user, world.leads(3)), "insufficient_credits")
    assert exc.required == Decimal("3.00")
    assert exc.balance == Decimal("2.99")


def test_no_credits_account(conn, world, service):
    ws, (user,) = world.workspace(balance=None)
    assert_refused(conn, service, req(ws, user, world.leads(1)), "no_credits_account")


def test_invalid_amount_for_a_lead_priced_below_the_minimum(conn, world, service, buyer):
    cheap = world.leads(1, price="0.01")
    assert_refused(conn, service, req(*buyer, cheap), "invalid_amount")


def test_leads_no_longer_available(conn, world, service, buyer):
    hidden = world.leads(1, for_sale=False)
    assert_refused(conn, service, req(*buyer, hidden), "leads_no_longer_available")
    exclusive = world.leads(1, max_sales=1)
    other, (other_user,) = world.workspace(balance="5.00")
    service.purchase(req(other, other_user, exclusive))
    assert_refused(conn, service, req(*buyer, exclusive), "leads_no_longer_available")


def test_duplicate_purchase(conn, world, service, buyer):
    leads = world.leads(2)
    service.purchase(req(*buyer, leads[:1]))
    assert_refused(conn, service, req(*buyer, leads), "duplicate_purchase")


def test_domain_errors_carry_the_user_message_and_the_sql_message(world, pool, buyer):
    ws, (user,) = world.workspace(balance="0.50")
    with pytest.raises(DomainError) as info:
        PurchaseService(pool, "stepwise").purchase(req(ws, user, world.leads(1)))
    assert info.value.sql_message == "Insufficient credits"
    assert info.value.message.startswith("You don't have enough credits")


# -- idempotency keys -------------------------------------------------------------------------


def test_a_repeat_after_completion_replays_without_a_second_debit(conn, world, service, buyer):
    ws, user = buyer
    leads = world.leads(2)
    first = service.purchase(req(ws, user, leads, "k1"))
    assert not first.replayed
    again = service.purchase(req(ws, user, list(reversed(leads)), "k1"))
    assert again.replayed
    assert (again.purchase_id, again.new_balance, again.total_price, again.leads) == (
        first.purchase_id,
        first.new_balance,
        first.total_price,
        first.leads,
    )
    assert world.balance(ws) == Decimal("8.00") == ledger_sum(conn, ws)
    assert purchases(conn, ws) == 1


def test_the_same_key_with_another_request_is_a_mismatch(conn, world, service, buyer):
    ws, user = buyer
    leads = world.leads(2)
    service.purchase(req(ws, user, leads[:1], "k1"))
    assert_refused(conn, service, req(ws, user, leads, "k1"), "idempotency_mismatch")


def test_keys_are_scoped_to_the_workspace(world, service, buyer):
    ws, user = buyer
    other, (other_user,) = world.workspace(balance="5.00")
    (lead,) = world.leads(1)
    a = service.purchase(req(ws, user, [lead], "shared"))
    b = service.purchase(req(other, other_user, [lead], "shared"))
    assert a.purchase_id != b.purchase_id and not b.replayed


def test_a_repeat_while_the_key_row_is_locked_is_in_progress(conn, db, world, service, buyer):
    ws, user = buyer
    leads = world.leads(2)
    service.purchase(req(ws, user, leads[:1], "k1"))
    with database.connect(db, autocommit=False) as holder:
        holder.execute(
            "SELECT FROM api_idempotency_keys WHERE idempotency_key = 'k1' "
            "AND workspace_id = %s FOR UPDATE",
            (ws,),
        )
        assert_refused(conn, service, req(ws, user, leads[:1], "k1"), "purchase_in_progress")
        holder.rollback()
    assert service.purchase(req(ws, user, leads[:1], "k1")).replayed


def test_a_repeat_while_a_stepwise_attempt_is_processing_is_in_progress(
    conn, world, service, buyer
):
    ws, user = buyer
    leads = world.leads(1)
    fingerprint = req(ws, user, leads).fingerprint()
    conn.execute(
        "INSERT INTO api_idempotency_keys (workspace_id, idempotency_key, "
        "request_fingerprint) VALUES (%s, 'k1', %s)",
        (ws, fingerprint),
    )
    assert_refused(conn, service, req(ws, user, leads, "k1"), "purchase_in_progress")


def test_a_repeat_while_an_atomic_purchase_is_uncommitted_is_in_progress(
    db, conn, world, pool, flow, buyer
):
    ws, user = buyer
    leads = world.leads(1)
    first = PurchaseService(pool, "atomic")
    request = req(ws, user, leads, "k1")
    prep = first._prepare(request)
    with database.connect(db, autocommit=False) as running:
        first.repo.atomic_purchase(
            ws, user, leads, prep.total_price, "k1", prep.fingerprint, sql_config(), conn=running
        )
        if flow == "atomic":  # stepwise/legacy would queue behind the uncommitted key row
            assert_refused(conn, PurchaseService(pool, flow), request, "purchase_in_progress")
        running.commit()
    assert PurchaseService(pool, flow).purchase(request).replayed
    assert world.balance(ws) == Decimal("9.00")


def test_a_key_whose_attempt_failed_can_be_retried(conn, world, pool, flow):
    ws, (user,) = world.workspace(balance="0.50")
    leads = world.leads(1)
    service = PurchaseService(pool, flow)
    with pytest.raises(DomainError) as info:
        service.purchase(req(ws, user, leads, "k1"))
    assert info.value.code == "insufficient_credits"
    status = conn.execute(
        "SELECT status FROM api_idempotency_keys WHERE workspace_id = %s", (ws,)
    ).fetchone()
    assert status in (None, ("failed",))
    world.conn.execute("SELECT add_credits(%s, 5.00, 'more')", (ws,))
    result = service.purchase(req(ws, user, leads, "k1"))
    assert not result.replayed and result.new_balance == Decimal("4.50")
    assert service.purchase(req(ws, user, leads, "k1")).replayed


def test_concurrent_repeats_of_one_key_debit_once(conn, world, pool, flow):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(1)
    service = PurchaseService(pool, flow)

    def go(_: int) -> object:
        try:
            return service.purchase(req(ws, user, leads, "storm"))
        except DomainError as exc:
            return exc.code

    outcomes, spans = release_together(4, go)
    # Every thread answered: a result, or the documented in-progress refusal, nothing else.
    assert len(outcomes) == 4
    refusals = [o for o in outcomes if isinstance(o, str)]
    results = [o for o in outcomes if not isinstance(o, str)]
    assert all(isinstance(r, PurchaseResult) for r in results), outcomes
    assert refusals == ["purchase_in_progress"] * len(refusals)
    assert results and len({r.purchase_id for r in results}) == 1
    assert max_overlap(spans) > 1, "the repeats never overlapped: nothing was raced"
    assert world.balance(ws) == Decimal("9.00") == ledger_sum(conn, ws)


def test_an_empty_idempotency_key_is_refused_with_its_code(world, service, buyer):
    with pytest.raises(DomainError) as info:
        service.purchase(req(*buyer, world.leads(1), "  "))
    assert info.value.code == "invalid_idempotency_key"


# -- top-ups ------------------------------------------------------------------------------------


def test_top_up_adds_credits_and_queues_the_credit_email_in_one_transaction(conn, world, pool):
    ws, (user,) = world.workspace(balance=None)
    service = PurchaseService(pool, "atomic")
    assert service.top_up(ws, Decimal("25.00"), "starter") == Decimal("25.00")
    assert service.top_up(ws, Decimal("5.00"), "mini") == Decimal("30.00")
    assert ledger_sum(conn, ws) == Decimal("30.00")
    jobs = conn.execute(
        "SELECT kind, payload, workspace_id FROM email_jobs WHERE workspace_id = %s ORDER BY id",
        (ws,),
    ).fetchall()
    assert [j[0] for j in jobs] == ["credit_purchase", "credit_purchase"]
    email = conn.execute("SELECT email FROM users WHERE id = %s", (user,)).fetchone()[0]
    assert jobs[1][1] == {
        "email": email,
        "name": jobs[1][1]["name"],
        "credits_amount": "5.00",
        "total_price": "5.00",
        "package_name": "mini",
        "new_balance": "30.00",
    }
    assert jobs[1][2] == ws


@pytest.mark.parametrize(
    "amount", [Decimal("0"), Decimal("-1"), Decimal("0.001"), Decimal("NaN"), Decimal("100000000")]
)
def test_top_up_refuses_bad_amounts_and_changes_nothing(conn, world, pool, amount):
    ws, _ = world.workspace(balance="1.00")
    before = snapshot(conn)
    with pytest.raises(DomainError) as info:
        PurchaseService(pool, "atomic").top_up(ws, amount, "p")
    assert info.value.code == "invalid_amount"
    assert snapshot(conn) == before


def test_top_up_of_an_unknown_workspace_is_a_usage_error(pool):
    with pytest.raises(UsageError) as info:
        PurchaseService(pool, "atomic").top_up(uuid.uuid4(), Decimal("1.00"), "p")
    assert info.value.code == "unknown_workspace"


def test_a_failed_email_insert_rolls_the_top_up_back(conn, world, pool):
    ws, _ = world.workspace(balance=None)
    conn.execute("ALTER TABLE email_jobs ADD CONSTRAINT no_jobs CHECK (false) NOT VALID")
    try:
        with pytest.raises(DatabaseFailure) as info:
            PurchaseService(pool, "atomic").top_up(ws, Decimal("5.00"), "p")
        assert isinstance(info.value.__cause__, psycopg.errors.CheckViolation)
    finally:
        conn.execute("ALTER TABLE email_jobs DROP CONSTRAINT no_jobs")
    assert world.balance(ws) is None and ledger_sum(conn, ws) == 0
