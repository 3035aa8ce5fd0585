"""harness watch: read-only, exit 0 on a healthy database, 1 when a purchase has been
pending longer than the threshold or email jobs are dead-lettered."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from conftest import snapshot

from harness import db as database
from harness.cli import cli
from harness.errors import InsufficientCredits
from harness.money.service import PurchaseRequest, PurchaseService
from harness.proofs.watch import Thresholds, watch
from harness.values import parse_duration


@pytest.fixture
def healthy(db, world):
    """A database after a few purchases through the service."""
    ws, (user,) = world.workspace(balance="20.00")
    leads = world.leads(4, price="1.00")
    with database.pool(db, max_size=2) as pool:
        svc = PurchaseService(pool, flow="atomic")
        for i, lead in enumerate(leads):
            svc.purchase(PurchaseRequest(ws, user, (lead,), idempotency_key=f"k{i}"))
    return db


def test_watch_exits_0_on_a_healthy_database(healthy, capsys):
    assert cli(["watch", "--dsn", healthy]) == 0
    out = capsys.readouterr().out
    assert "stuck_pending = 0" in out and out.strip().endswith("OK")


def test_watch_exits_1_on_a_purchase_stuck_in_pending(healthy, conn, world, capsys):
    ws, (user,) = world.workspace(balance=None)
    (lead,) = world.leads(1, price="1.00")
    # As a purchase stuck after its debit is: pending, holding its lead's reservation (a
    # pending purchase without its reservations breaks an invariant of its own).
    (purchase,) = conn.execute(
        "INSERT INTO marketplace_purchases (buyer_workspace_id, buyer_user_id, total_leads, "
        "total_price, created_at) VALUES (%s, %s, 1, 1.00, now() - interval '20 minutes') "
        "RETURNING id",
        (ws, user),
    ).fetchone()
    conn.execute(
        "INSERT INTO lead_reservations (lead_id, workspace_id, purchase_id) VALUES (%s, %s, %s)",
        (lead, ws, purchase),
    )
    assert cli(["watch", "--dsn", healthy, "--pending-timeout", "30m"]) == 0
    capsys.readouterr()
    assert cli(["watch", "--dsn", healthy, "--pending-timeout", "10m", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    (stuck,) = [m for m in report["measures"] if m["name"] == "stuck_pending"]
    assert stuck["value"] == 1 and stuck["exceeded"] is True
    assert report["stuck_pending"][0]["workspace_id"] == str(ws)


def test_watch_counts_failed_purchases_by_message(healthy, world):
    ws, (user,) = world.workspace(balance="0.50")
    (lead,) = world.leads(1, price="1.00")
    with database.pool(healthy, max_size=2) as pool:
        svc = PurchaseService(pool, flow="atomic")
        for i in range(3):
            with pytest.raises(InsufficientCredits):
                svc.purchase(PurchaseRequest(ws, user, (lead,), idempotency_key=f"poor-{i}"))
    report = watch(healthy, timedelta(minutes=15), Thresholds(min_attempts=1))
    assert [e["code"] for e in report.errors_by_message] == ["insufficient_credits"]
    assert report.errors_by_message[0]["count"] == 3
    (rate,) = [m for m in report.measures if m.name == "purchase_error_rate"]
    assert rate.value == pytest.approx(3 / 7, abs=1e-3) and rate.exceeded


def test_watch_alerts_on_dead_lettered_email_jobs(healthy, conn):
    conn.execute(
        "UPDATE email_jobs SET status = 'dead', dead_at = now(), "
        "last_error = 'smtp 550' WHERE id = (SELECT min(id) FROM email_jobs)"
    )
    report = watch(healthy, timedelta(minutes=15))
    (dead,) = [m for m in report.measures if m.name == "dead_letters"]
    assert dead.value == 1 and dead.exceeded
    assert report.email_errors[0]["error"] == "smtp 550"


def test_watch_writes_nothing(healthy, conn):
    before = snapshot(conn)
    watch(healthy, timedelta(hours=1))
    assert snapshot(conn) == before


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 90), ("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert Decimal(seconds) > 0
