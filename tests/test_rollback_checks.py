"""The rollback rehearsal (rollback.* and migrations.lint): each check passes on the
project's migrations and fails, naming the damage, on its broken example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from harness import db as database
from harness.db.migrations import Migrator
from harness.proofs.verify import CheckContext, CheckFailed
from harness.proofs.verify.checks.migrations import migrations_lint
from harness.proofs.verify.checks.rollback import (
    data_preserved,
    round_trip,
    switch_back,
)

BROKEN = ROOT / "examples" / "broken"
PWC = "function purchase_with_credits(uuid, uuid, uuid[], numeric, numeric)"


def context(admin_dsn: str, dirs: list[Path]):
    name = database.scratch_name("harness_rbtpl")
    dsn = database.create_database(admin_dsn, name)
    with Migrator(dsn, dirs) as m:
        m.apply()
        applied = [s.id for s in m.status() if s.applied]
        sources = list(m.sources)
    ctx = CheckContext(
        admin_dsn=admin_dsn, migration_dirs=sources, template=name, migrations=applied
    )
    return ctx, name


@pytest.fixture(scope="module")
def make_ctx(admin_dsn):
    made = []

    def make(*extra: str) -> CheckContext:
        ctx, name = context(admin_dsn, [ROOT / "migrations", *(BROKEN / e for e in extra)])
        made.append((ctx, name))
        return ctx

    yield make
    for ctx, name in made:
        ctx.drop_all()
        database.drop_database(admin_dsn, name)


@pytest.fixture(scope="module")
def project(make_ctx):
    return make_ctx()


@pytest.fixture(scope="module")
def drops_function(make_ctx):
    return make_ctx("rollback_drops_function")


@pytest.fixture(scope="module")
def loses_search_path(make_ctx):
    return make_ctx("replace_loses_search_path")


def test_round_trip_passes_on_the_project_migrations(project):
    evidence = round_trip(project)
    assert "fingerprint matched" in evidence


def test_data_preserved_passes_on_the_project_migrations(project):
    evidence = data_preserved(project)
    assert "every row of every surviving table and column kept" in evidence


def test_switch_back_passes_on_the_project_migrations(project):
    evidence = switch_back(project)
    assert "legacy completes purchases" in evidence and "none failed" in evidence
    assert "atomic 2" in evidence or "atomic" in evidence.split("drill:")[1]


def test_migrations_lint_passes_and_names_the_break_lock_command(project):
    evidence = migrations_lint(project)
    assert "0 violation(s)" in evidence
    assert "lock_timeout = 5s" in evidence and "statement_timeout = 5min" in evidence
    assert "harness break-lock --dsn" in evidence


def test_round_trip_fails_when_a_rollback_drops_the_function(drops_function):
    with pytest.raises(CheckFailed) as failed:
        round_trip(drops_function)
    assert (
        f"{PWC}: missing after rolling back 0100_replace_purchase_function" in failed.value.detail
    )


def test_data_preserved_fails_when_a_rollback_drops_the_function(drops_function):
    with pytest.raises(CheckFailed) as failed:
        data_preserved(drops_function)
    assert (
        f"{PWC}: EXECUTE granted to PUBLIC after rolling back and re-applying "
        "0100_replace_purchase_function"
    ) in failed.value.detail


def test_switch_back_fails_when_a_rollback_drops_the_function(drops_function):
    with pytest.raises(CheckFailed) as failed:
        switch_back(drops_function)
    assert (
        "after rolling back 0100_replace_purchase_function the atomic flow, which worked "
        "before 0100_replace_purchase_function was applied, fails: DatabaseFailure"
    ) in failed.value.detail
    assert "UndefinedFunction" in failed.value.detail  # the cause, named


def test_verify_only_rollback_fails_on_a_rollback_that_loses_the_search_path(
    admin_dsn, tmp_path, capsys
):
    from harness.cli import cli

    out = tmp_path / "report.json"
    code = cli(
        [
            "verify",
            "--only",
            "rollback.round-trip",
            "--dsn",
            admin_dsn,
            "--migrations",
            str(ROOT / "migrations"),
            "--migrations",
            str(BROKEN / "replace_loses_search_path"),
            "--json",
            str(out),
        ]
    )
    capsys.readouterr()
    assert code == 1
    (result,) = json.loads(out.read_text())["checks"]
    assert result["id"] == "rollback.round-trip" and result["status"] == "failed"
    assert result["detail"].startswith(
        f"{PWC}: search_path no longer pinned after rolling back 0100_replace_purchase_function"
    )
