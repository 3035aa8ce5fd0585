"""harness reconcile: a crash after any stepwise step, then reconcile, leaves every
invariant holding and no credit lost; reconcile is idempotent, respects its threshold,
settles idempotency keys, and is safe while purchases run."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from harness import cli
from harness import db as database
from harness.errors import DomainError
from harness.money.invariants import check_invariants
from harness.money.reconcile import reconcile
from harness.money.service import CRASH_POINTS, PurchaseRequest, PurchaseService
from harness.values import parse_duration

NOW = timedelta(0)

# What reconcile does with a purchase that crashed after each step.
SETTLED_AS = {
    "debit": "refunded",
    "items": "refunded",
    "mark_sold": "completed",
    "complete": "completed",
}


@pytest.fixture(scope="module")
def db(admin_dsn, template_db):
    """One migrated database for the module: every test leaves it reconciled."""
    name = database.scratch_name("harness_reconcile")
    dsn = database.create_database(admin_dsn, name, template_db)
    yield dsn
    database.drop_database(admin_dsn, name)


@pytest.fixture(scope="module")
def pool(db):
    p = database.pool(db, max_size=8)
    yield p
    p.close()


@pytest.fixture
def service(pool):
    return PurchaseService(pool, "stepwise")


def req(ws, user, leads, key=None):
    return PurchaseRequest(ws, user, tuple(leads), key)


def ledger_sum(conn, ws):
    return conn.execute(
        "SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE workspace_id = %s", (ws,)
    ).fetchone()[0]


def status_of(conn, purchase_id):
    return conn.execute(
        "SELECT status::text FROM marketplace_purchases WHERE id = %s", (purchase_id,)
    ).fetchone()[0]


def key_row(conn, ws, key):
    return conn.execute(
        "SELECT status, purchase_id, response_data FROM api_idempotency_keys "
        "WHERE workspace_id = %s AND idempotency_key = %s",
        (ws, key),
    ).fetchone()


@pytest.mark.parametrize("after", CRASH_POINTS)
def test_a_crash_after_any_step_then_reconcile_leaves_every_invariant_holding(
    conn, world, pool, service, after
):
    ws, (user,) = world.workspace(balance="10.00")
    partner = world.partner()
    leads = world.leads(2, price="1.25", partner=partner)
    pid = service.purchase_and_crash(req(ws, user, leads, "k"), after)
    assert status_of(conn, pid) == ("completed" if after == "complete" else "pending")
    assert world.balance(ws) == Decimal("7.50")
    assert check_invariants(conn, pending_timeout=NOW) != []

    report = reconcile(pool, NOW)
    settled = SETTLED_AS[after]
    assert status_of(conn, pid) == settled
    assert (pid in report.completed) == (after == "mark_sold")
    assert (pid in report.refunded) == (settled == "refunded")
    assert (pid in report.emails_queued) == (after == "complete")
    assert check_invariants(conn, pending_timeout=NOW) == []

    balance = Decimal("10.00") if settled == "refunded" else Decimal("7.50")
    assert world.balance(ws) == balance == ledger_sum(conn, ws)
    sold = {r[0] for r in conn.execute("SELECT sold_count FROM leads WHERE id = ANY(%s)", (leads,))}
    assert sold == ({0} if settled == "refunded" else {1})
    jobs = conn.execute(
        "SELECT count(*) FROM email_jobs WHERE purchase_id = %s", (pid,)
    ).fetchone()[0]
    assert jobs == (1 if settled == "completed" else 0)

    # The key: a completed purchase replays, a refunded one may be retried afresh.
    status, key_purchase, response = key_row(conn, ws, "k")
    retry = service.purchase(req(ws, user, leads, "k"))
    if settled == "completed":
        assert (status, key_purchase) == ("completed", pid)
        assert retry.replayed and retry.purchase_id == pid
        assert retry.new_balance == Decimal("7.50") and len(retry.leads) == 2
    else:
        assert status == "failed"
        assert not retry.replayed and retry.purchase_id != pid
    assert world.balance(ws) == Decimal("7.50") == ledger_sum(conn, ws)
    assert check_invariants(conn, pending_timeout=NOW) == []


def test_reconcile_twice_changes_nothing_the_second_time(conn, world, pool, service):
    ws, (user,) = world.workspace(balance="10.00")
    for after in CRASH_POINTS:
        service.purchase_and_crash(req(ws, user, world.leads(1), f"k-{after}"), after)
    first = reconcile(pool, NOW)
    assert (len(first.completed), len(first.refunded), len(first.emails_queued)) == (1, 2, 1)
    assert (first.keys_completed, first.keys_failed) == (2, 2)
    state = conn.execute(
        "SELECT balance, total_used FROM workspace_credits WHERE workspace_id = %s", (ws,)
    ).fetchone()
    second = reconcile(pool, NOW)
    assert second.changed == 0, second
    assert (
        conn.execute(
            "SELECT balance, total_used FROM workspace_credits WHERE workspace_id = %s", (ws,)
        ).fetchone()
        == state
    )
    assert check_invariants(conn, pending_timeout=NOW) == []


def test_reconcile_leaves_purchases_younger_than_the_threshold(conn, world, pool, service):
    ws, (user,) = world.workspace(balance="10.00")
    pid = service.purchase_and_crash(req(ws, user, world.leads(1)), "items")
    assert reconcile(pool, timedelta(hours=1)).changed == 0
    assert status_of(conn, pid) == "pending"
    assert reconcile(pool, NOW).refunded == (pid,)


def test_a_key_abandoned_before_its_debit_is_failed_and_retryable(conn, world, pool, service):
    ws, (user,) = world.workspace(balance="10.00")
    leads = world.leads(1)
    conn.execute(
        "INSERT INTO api_idempotency_keys (workspace_id, idempotency_key, "
        "request_fingerprint, created_at) VALUES (%s, 'k', %s, now() - interval '1h')",
        (ws, req(ws, user, leads).fingerprint()),
    )
    with pytest.raises(DomainError) as info:
        service.purchase(req(ws, user, leads, "k"))
    assert info.value.code == "purchase_in_progress"
    assert reconcile(pool, timedelta(minutes=5)).keys_failed == 1
    assert not service.purchase(req(ws, user, leads, "k")).replayed


def test_reconcile_is_safe_while_purchases_run(conn, world, pool):
    ws, users = world.workspace(balance="50.00", members=4)
    stuck = [
        PurchaseService(pool, "stepwise").purchase_and_crash(
            req(ws, users[0], world.leads(1)), after
        )
        for after in ("debit", "mark_sold")
    ]
    conn.execute(
        "UPDATE marketplace_purchases SET created_at = now() - interval '10 min' "
        "WHERE id = ANY(%s)",
        (stuck,),
    )
    live_leads = world.leads(24)
    barrier = threading.Barrier(5)
    outcomes: list[object] = []

    def buyer(i):
        barrier.wait()
        svc = PurchaseService(pool, "stepwise" if i % 2 else "atomic")
        for j in range(6):
            outcomes.append(svc.purchase(req(ws, users[i], [live_leads[i * 6 + j]])))

    def reconciler():
        barrier.wait()
        for _ in range(5):
            outcomes.append(reconcile(pool, timedelta(minutes=5)))

    threads = [threading.Thread(target=buyer, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=reconciler))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    purchases = [o for o in outcomes if hasattr(o, "purchase_id")]
    assert len(purchases) == 24
    assert [status_of(conn, pid) for pid in stuck] == ["refunded", "completed"]
    assert world.balance(ws) == Decimal("50.00") - 24 - 1 == ledger_sum(conn, ws)
    assert check_invariants(conn, pending_timeout=NOW) == []


def test_harness_reconcile_command_reports_json(db, world, service, capsys):
    ws, (user,) = world.workspace(balance="5.00")
    pid = service.purchase_and_crash(req(ws, user, world.leads(1)), "debit")
    assert cli.cli(["reconcile", "--dsn", db, "--older-than", "0s", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["refunded"] == [str(pid)]
    assert cli.cli(["reconcile", "--dsn", db, "--older-than", "0s"]) == 0
    assert "completed 0, refunded 0" in capsys.readouterr().out


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0s", timedelta(0)),
        ("90", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5x", "m5", "-1m", "5 m"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)
