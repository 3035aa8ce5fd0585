"""The three purchase flows end to end against a real server: what a purchase leaves
behind, that the flows agree with each other, real concurrency, and the legacy flow's
known lost update and independence from migrations 0002-0004."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from psycopg.types.json import Jsonb

from harness import db as database
from harness.db.migrations import Migrator
from harness.errors import DomainError
from harness.money.invariants import check_invariants
from harness.money.repository import Repository
from harness.money.service import PurchaseRequest, PurchaseService, download_url, sql_config

FLOWS = ("atomic", "stepwise", "legacy")


@pytest.fixture(scope="module")
def db(admin_dsn, template_db):
    """One migrated database for the module; tests keep apart by their own workspaces.
    Tests that break an invariant on purpose take a clone of their own."""
    name = database.scratch_name("harness_flows")
    dsn = database.create_database(admin_dsn, name, template_db)
    yield dsn
    database.drop_database(admin_dsn, name)


@pytest.fixture(scope="module")
def pool(db):
    p = database.pool(db, min_size=4, max_size=40)
    yield p
    p.close()


@pytest.fixture
def own_db(clone_db, template_db):
    return clone_db(template_db)


def req(ws, user, leads, key=None):
    return PurchaseRequest(ws, user, tuple(leads), key)


def ledger_sum(conn, ws):
    return conn.execute(
        "SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE workspace_id = %s", (ws,)
    ).fetchone()[0]


def run_together(n, work):
    """Run work(i) in n threads released together by a barrier; (results, spans)."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n
    spans: list[tuple[float, float]] = [(0.0, 0.0)] * n

    def go(i):
        barrier.wait()
        start = time.monotonic()
        try:
            results[i] = work(i)
        except DomainError as exc:
            results[i] = exc.code
        except Exception as exc:  # surfaced by the assertions below
            results[i] = exc
        spans[i] = (start, time.monotonic())

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, spans


# -- happy paths ------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", FLOWS)
def test_a_purchase_leaves_exactly_what_the_spec_promises(conn, world, pool, flow):
    ws, (user,) = world.workspace(balance="10.00")
    partner = world.partner(base="0.30", bonus="0.05", pass_rate="0.97")
    leads = world.leads(2, price="1.50", partner=partner) + world.leads(1, price="2.00")
    result = PurchaseService(pool, flow).purchase(req(ws, user, leads))

    assert (result.new_balance, result.total_price, result.replayed) == (
        Decimal("5.00"),
        Decimal("5.00"),
        False,
    )
    assert world.balance(ws) == Decimal("5.00") == ledger_sum(conn, ws)
    status, total_leads, credits_used, total_used = conn.execute(
        "SELECT p.status::text, p.total_leads, p.credits_used, c.total_used "
        "FROM marketplace_purchases p JOIN workspace_credits c "
        "ON c.workspace_id = p.buyer_workspace_id WHERE p.id = %s",
        (result.purchase_id,),
    ).fetchone()
    assert (status, total_leads, credits_used, total_used) == (
        "completed",
        3,
        Decimal("5.00"),
        Decimal("5.00"),
    )

    items = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT lead_id, price_at_purchase, partner_id, commission_rate, commission_amount, "
            "commission_bonuses FROM marketplace_purchase_items WHERE purchase_id = %s",
            (result.purchase_id,),
        )
    }
    # Fresh lead of a verified partner: 0.30 base + 0.05 verification + 0.02 freshness.
    assert items[leads[0]] == (
        Decimal("1.50"),
        partner,
        Decimal("0.3700"),
        Decimal("0.56"),
        ["verification", "freshness"],
    )
    assert items[leads[2]] == (Decimal("2.00"), None, None, None, [])

    sold = dict(conn.execute("SELECT id, sold_count FROM leads WHERE id = ANY(%s)", (leads,)))
    assert set(sold.values()) == {1}
    assert (
        conn.execute(
            "SELECT count(*) FROM lead_reservations WHERE purchase_id = %s", (result.purchase_id,)
        ).fetchone()[0]
        == 3
    )

    payload = conn.execute(
        "SELECT payload FROM email_jobs WHERE purchase_id = %s AND kind = 'purchase_confirmation'",
        (result.purchase_id,),
    ).fetchone()[0]
    email = conn.execute("SELECT email FROM users WHERE id = %s", (user,)).fetchone()[0]
    assert {
        k: payload[k]
        for k in ("email", "total_leads", "total_price", "purchase_id", "download_url")
    } == {
        "email": email,
        "total_leads": 3,
        "total_price": "5.00",
        "purchase_id": str(result.purchase_id),
        "download_url": download_url(result.purchase_id),
    }
    expires = datetime.fromisoformat(payload["download_expires_at"])
    assert expires.utcoffset() == timedelta(0)
    assert abs(expires - datetime.now(UTC) - timedelta(days=90)) < timedelta(minutes=5)

    assert [lead["lead_id"] for lead in result.leads] == sorted(str(i) for i in leads)
    assert result.leads == Repository(pool).get_purchased_leads(result.purchase_id, ws)
    assert check_invariants(conn) == []


def test_the_flows_write_the_same_items_and_email_payload(conn, world, pool):
    partner = world.partner(base="0.25", bonus="0.10", pass_rate="0.96")
    seen = {}
    for flow in FLOWS:
        ws, (user,) = world.workspace(balance="10.00")
        conn.execute("UPDATE users SET full_name = '  ' WHERE id = %s", (user,))
        leads = world.leads(1, price="3.33", partner=partner)
        result = PurchaseService(pool, flow).purchase(req(ws, user, leads))
        item = conn.execute(
            "SELECT price_at_purchase, commission_rate, commission_amount, commission_bonuses "
            "FROM marketplace_purchase_items WHERE purchase_id = %s",
            (result.purchase_id,),
        ).fetchone()
        payload = conn.execute(
            "SELECT payload FROM email_jobs WHERE purchase_id = %s", (result.purchase_id,)
        ).fetchone()[0]
        seen[flow] = (
            item,
            sorted(payload),
            payload["name"],
            payload["total_price"],
            len(payload["download_expires_at"]),
        )
    assert seen["atomic"] == seen["stepwise"] == seen["legacy"], seen
    assert seen["atomic"][2] == "Valued Customer"


def test_purchased_leads_are_shown_to_their_buyer_only(world, pool):
    ws, (user,) = world.workspace(balance="5.00")
    other, _ = world.workspace(balance="5.00")
    result = PurchaseService(pool, "atomic").purchase(req(ws, user, world.leads(2)))
    repo = Repository(pool)
    assert len(repo.get_purchased_leads(result.purchase_id, ws)) == 2
    assert repo.get_purchased_leads(result.purchase_id, other) == []


def test_add_purchase_items_writes_every_item_in_one_statement(conn, world, pool):
    ws, (user,) = world.workspace(balance="5.00")
    leads = world.leads(3)
    repo = Repository(pool)
    pid, _ = repo.purchase_with_credits(ws, user, leads, Decimal("3.00"))
    from harness.money.service import purchase_items

    items = purchase_items(repo.load_leads(leads), datetime.now(UTC))
    assert repo.add_purchase_items(pid, items) == 3
    # Not complete until its sales are recorded too (0005).
    assert repo.complete_purchase(pid).value == "pending"
    assert repo.mark_purchase_leads_sold(pid, leads) == 3
    assert repo.complete_purchase(pid).value == "completed"
    assert repo.complete_purchase(pid).value == "completed"  # idempotent
    assert repo.refund_purchase(pid).value == "completed"  # a completed purchase stays
    config = Jsonb(sql_config())
    first = conn.execute("SELECT queue_purchase_confirmation(%s, %s)", (pid, config)).fetchone()
    again = conn.execute("SELECT queue_purchase_confirmation(%s, %s)", (pid, config)).fetchone()
    assert first == again and first[0] is not None  # one job per purchase


# -- sold out between the debit and the mark ------------------------------------------------


@pytest.mark.parametrize("flow", ["atomic", "stepwise"])
def test_a_lead_that_sold_out_behind_the_reservations_is_refused_and_refunded(own_db, flow):
    # sold_count at max_sales with no reservation: what the source design's unreserved
    # purchase_with_credits leaves behind. The debit passes, the mark falls short.
    p = database.pool(own_db, max_size=2)
    with database.connect(own_db) as conn:
        from conftest import World

        world = World(conn)
        ws, (user,) = world.workspace(balance="5.00")
        leads = world.leads(2, max_sales=1)
        conn.execute(
            "UPDATE leads SET sold_count = 1, first_sold_at = now() WHERE id = %s", (leads[1],)
        )
        with pytest.raises(DomainError) as info:
            PurchaseService(p, flow).purchase(req(ws, user, leads, "k"))
        assert info.value.code == "leads_no_longer_available"
        assert world.balance(ws) == Decimal("5.00") == ledger_sum(conn, ws)
        sold = dict(conn.execute("SELECT id, sold_count FROM leads"))
        assert sold == {leads[0]: 0, leads[1]: 1}
        statuses = [r[0] for r in conn.execute("SELECT status::text FROM marketplace_purchases")]
        assert statuses == ([] if flow == "atomic" else ["refunded"])
        assert conn.execute("SELECT count(*) FROM lead_reservations").fetchone()[0] == 0
        assert conn.execute("SELECT status FROM api_idempotency_keys").fetchone()[0] == "failed"
        assert conn.execute("SELECT total_used FROM workspace_credits").fetchone()[0] == 0
    p.close()


# -- concurrency ----------------------------------------------------------------------------


def test_concurrent_purchases_never_overdraw_a_hot_wallet(conn, db, world, pool):
    n, price = 24, Decimal("1.00")
    ws, users = world.workspace(balance="10.00", members=3)
    leads = world.leads(n, price=str(price))
    service = PurchaseService(pool, "atomic")
    active: list[int] = []
    stop = threading.Event()

    def sample():
        with database.connect(db) as mon:
            while not stop.is_set():
                active.append(
                    mon.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                        "AND query LIKE '%%purchase_leads_atomic(%%' AND pid <> pg_backend_pid()"
                    ).fetchone()[0]
                )

    monitor = threading.Thread(target=sample)
    monitor.start()
    try:
        results, spans = run_together(
            n, lambda i: service.purchase(req(ws, users[i % 3], [leads[i]]))
        )
    finally:
        stop.set()
        monitor.join()

    ok = [r for r in results if not isinstance(r, str | Exception)]
    assert len(ok) == int(Decimal("10.00") // price)
    assert sorted(set(map(str, results)) - {str(r) for r in ok}) == ["insufficient_credits"]
    assert world.balance(ws) == Decimal("0.00") == ledger_sum(conn, ws)
    assert max(active) > 1, "no two purchases were ever in flight at once"
    assert max(s for s, _ in spans) < min(e for _, e in spans), "the calls did not overlap"
    assert check_invariants(conn) == []


@pytest.mark.parametrize("flow", ["atomic", "stepwise"])
def test_overlapping_lead_sets_in_opposite_orders_never_deadlock(conn, world, pool, flow):
    leads = world.leads(6)
    buyers = [world.workspace(balance="10.00") for _ in range(8)]
    service = PurchaseService(pool, flow)

    def work(i):
        ws, (user,) = buyers[i]
        order = leads if i % 2 else list(reversed(leads))
        return service.purchase(req(ws, user, order))

    results, _ = run_together(len(buyers), work)
    assert all(not isinstance(r, str | Exception) for r in results), results
    assert {
        r[0] for r in conn.execute("SELECT sold_count FROM leads WHERE id = ANY(%s)", (leads,))
    } == {8}


@pytest.mark.parametrize("flow", ["atomic", "stepwise"])
def test_an_exclusive_lead_raced_by_many_workspaces_is_sold_once(conn, world, pool, flow):
    (lead,) = world.leads(1, max_sales=1)
    buyers = [world.workspace(balance="5.00") for _ in range(6)]
    service = PurchaseService(pool, flow)
    results, _ = run_together(
        len(buyers), lambda i: service.purchase(req(buyers[i][0], buyers[i][1][0], [lead]))
    )
    assert sum(not isinstance(r, str | Exception) for r in results) == 1
    assert {r for r in results if isinstance(r, str)} == {"leads_no_longer_available"}
    assert conn.execute("SELECT sold_count FROM leads WHERE id = %s", (lead,)).fetchone()[0] == 1


def test_the_legacy_flow_loses_updates_under_concurrency(own_db):
    with database.connect(own_db) as conn:
        from conftest import World

        world = World(conn)
        ws, (user,) = world.workspace(balance="5.00")
        leads = world.leads(16)
        p = database.pool(own_db, min_size=16, max_size=16)
        service = PurchaseService(p, "legacy")
        results, _ = run_together(16, lambda i: service.purchase(req(ws, user, [leads[i]])))
        p.close()
        sold = sum(not isinstance(r, str | Exception) for r in results)
        assert sold > 5, "legacy should let more purchases through than the balance pays for"
        names = {v.name for v in check_invariants(conn)}
        assert "balance_ledger_mismatch" in names or "ledger_overdraft" in names, names


# -- the switch-back target -------------------------------------------------------------------


def test_the_legacy_flow_needs_nothing_beyond_the_base_schema(own_db):
    with Migrator(own_db) as m:
        m.rollback(len([s for s in m.status() if s.applied]) - 1)
        assert [s.id for s in m.status() if s.applied] == ["0001_base_schema"]
    with database.connect(own_db) as conn:
        from conftest import World

        world = World(conn)
        ws, (user,) = world.workspace(balance="5.00")
        leads = world.leads(2)
        p = database.pool(own_db, max_size=2)
        result = PurchaseService(p, "legacy").purchase(req(ws, user, leads, "k"))
        replay = PurchaseService(p, "legacy").purchase(req(ws, user, leads, "k"))
        p.close()
        assert replay.replayed and replay.purchase_id == result.purchase_id
        assert world.balance(ws) == Decimal("3.00") == ledger_sum(conn, ws)
        names = {v.name for v in check_invariants(conn)}
        assert names <= {"confirmation_email_missing"}, names
