"""harness rollback cannot lose data by accident: it lists every table and column each step
drops with the rows it holds (rehearsed on a scratch database, from catalog fingerprints),
refuses when any holds rows unless --accept-data-loss, and --dry-run changes nothing. A
rollback and re-apply of any migration, then reconcile, leaves every invariant holding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from yoyo import read_migrations

from harness import db as database
from harness.cli import cli
from harness.db.migrations import Migrator, resolve_sources
from harness.money.invariants import check_invariants
from harness.money.service import CRASH_POINTS, PurchaseRequest, PurchaseService
from harness.testing import World, snapshot
from harness.values import parse_duration

NOW = parse_duration("0s")


def migration_ids() -> list[str]:
    """The packaged migrations, in order (those added later are covered too)."""
    return [m.id for m in read_migrations(*map(str, resolve_sources(None)))]


def applied(dsn: str) -> list[str]:
    with Migrator(dsn) as m:
        return [s.id for s in m.status() if s.applied]


def scratch_databases(admin_dsn: str) -> list[str]:
    with database.connect(admin_dsn) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'harness_rollback_plan%'"
            )
        ]


def queue_email_job(dsn: str) -> None:
    """A top-up and its queued email: a row in email_jobs, which 0003's rollback drops."""
    with database.connect(dsn) as conn:
        ws, _ = World(conn).workspace()
    pool = database.pool(dsn, max_size=1)
    try:
        PurchaseService(pool).top_up(ws, Decimal("5.00"), "small", "a@example.com")
    finally:
        pool.close()


def test_rollback_that_would_drop_rows_is_refused_naming_them_and_changes_nothing(db, conn, capsys):
    queue_email_job(db)
    last = applied(db)[-1]
    before = snapshot(conn)
    steps = len(applied(db)) - migration_ids().index("0003_email_outbox")
    code = cli(["rollback", "--dsn", db, "--steps", str(steps)])
    err = capsys.readouterr().err
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert "refusing to roll back" in line and "table email_jobs (1 row(s))" in line
    assert "--accept-data-loss" in line
    assert applied(db)[-1] == last and snapshot(conn) == before


def test_dry_run_prints_every_drop_with_its_rows_and_changes_nothing(db, conn, capsys):
    queue_email_job(db)
    before_applied, before = applied(db), snapshot(conn)
    assert cli(["rollback", "--dsn", db, "--all", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "roll back 0003_email_outbox" in out
    assert "drops table email_jobs (1 row(s))" in out
    assert "drops column marketplace_purchases.leads_marked_at (a value in 0 row(s))" in out
    assert "drops table workspaces (1 row(s))" in out
    assert "nothing was changed" in out
    assert applied(db) == before_applied and snapshot(conn) == before


def test_empty_tables_roll_back_without_being_asked(db, capsys):
    steps = len(applied(db)) - migration_ids().index("0003_email_outbox")
    assert cli(["rollback", "--dsn", db, "--steps", str(steps)]) == 0
    captured = capsys.readouterr()
    assert "drops table email_jobs (0 row(s))" in captured.err
    assert "0003_email_outbox" not in applied(db)


def test_accept_data_loss_rolls_back_and_the_plan_leaves_no_scratch_database(
    db, conn, admin_dsn, capsys
):
    queue_email_job(db)
    steps = len(applied(db)) - migration_ids().index("0003_email_outbox")
    assert cli(["rollback", "--dsn", db, "--steps", str(steps), "--accept-data-loss"]) == 0
    assert "0003_email_outbox" not in applied(db)
    assert conn.execute("SELECT to_regclass('email_jobs')").fetchone()[0] is None
    assert scratch_databases(admin_dsn) == []


def test_the_plan_comes_from_fingerprints_not_from_reading_sql(db, tmp_path):
    """A rollback file that drops a table by way of dynamic SQL is still caught."""
    from conftest import ROOT

    extra = tmp_path / "extra"
    extra.mkdir()
    last = migration_ids()[-1]
    (extra / "0100_notes.sql").write_text(
        f"-- depends: {last}\nCREATE TABLE notes (id int, body text);\n"
    )
    (extra / "0100_notes.rollback.sql").write_text(
        "DO $$ BEGIN EXECUTE 'DROP ' || 'TABLE ' || 'notes'; END $$;\n"
    )
    dirs = [ROOT / "migrations", extra]
    with Migrator(db, dirs) as m:
        m.apply()
    with database.connect(db) as conn:
        conn.execute("INSERT INTO notes VALUES (1, 'kept')")
    with Migrator(db, dirs) as m:
        plan = m.rollback_plan(1)
    assert plan.migrations == ("0100_notes",)
    assert [str(d) for d in plan.losses] == ["table notes (1 row(s))"]


# -- a rollback and re-apply of any migration, then reconcile: every invariant holds ------


def busy_world(dsn: str) -> None:
    """Purchases in every state a crash can leave, exclusive leads, credit top-ups."""
    pool = database.pool(dsn, max_size=4)
    try:
        with database.connect(dsn) as conn:
            world = World(conn)
            ws, (user,) = world.workspace(balance="50.00")
            partner = world.partner()
            stepwise = PurchaseService(pool, "stepwise")
            atomic = PurchaseService(pool, "atomic")
            for after in CRASH_POINTS:
                leads = world.leads(2, price="1.25", max_sales=1, partner=partner)
                stepwise.purchase_and_crash(
                    PurchaseRequest(ws, user, tuple(leads), f"k-{after}"), after
                )
            atomic.purchase(PurchaseRequest(ws, user, tuple(world.leads(1, max_sales=1)), "a"))
            atomic.top_up(ws, Decimal("3.00"), "small")
    finally:
        pool.close()


@pytest.mark.parametrize("migration", migration_ids())
def test_rolling_back_and_reapplying_any_migration_then_reconcile_keeps_every_invariant(
    db, migration, capsys
):
    busy_world(db)
    steps = len(applied(db)) - migration_ids().index(migration)
    assert cli(["rollback", "--dsn", db, "--steps", str(steps), "--accept-data-loss"]) == 0
    assert migration not in applied(db)
    assert cli(["migrate", "--dsn", db]) == 0
    assert cli(["reconcile", "--dsn", db, "--older-than", "0s"]) == 0
    with database.connect(db) as conn:
        violations = check_invariants(conn, pending_timeout=NOW)
    assert violations == [], capsys.readouterr().out


def test_the_gates_rollback_rehearsal_reports_the_same_list(db, admin_dsn):
    from harness.proofs.gate import rollback_plan_text

    queue_email_job(db)
    on_target = rollback_plan_text(db, True, None)
    assert "rollback plan on the target (harness rollback --all --dry-run)" in on_target
    assert "table email_jobs (1 row(s)) (0003_email_outbox)" in on_target
    assert "refuses them without --accept-data-loss" in on_target
    without = rollback_plan_text(admin_dsn, False, None)
    assert "on a scratch database" in without and "table email_jobs (0 row(s))" in without
    assert "refuses" not in without
    assert scratch_databases(admin_dsn) == []
