"""model.lifecycle against a real server: the state machine holds on the project's
migrations, fails on a sequence-only defect with the shrunk sequence one line per step, and
its failure replays as a scenario file (``harness verify --save-failures``) that fails on
the defective migrations and passes on the project's."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from harness.cli import cli
from harness.db.migrations import Migrator
from harness.drivers.scenarios.format import dump, load_scenario
from harness.drivers.scenarios.runner import run_scenarios
from harness.proofs.lifecycle import ModelFailure, run_lifecycle
from harness.proofs.verify.checks import model as model_checks

MIGRATIONS = ROOT / "migrations"
BROKEN = ROOT / "examples" / "broken"


def migrated(clone_db, *dirs) -> str:
    dsn = clone_db(None)
    with Migrator(dsn, [str(d) for d in dirs]) as m:
        m.apply()
    return dsn


def test_every_step_agrees_with_the_model_on_the_project_migrations(db):
    report = run_lifecycle(db, seed_value=0, migration_dirs=[str(MIGRATIONS)], budget_seconds=6)
    assert report.examples >= 8 and report.steps >= 40
    # Every kind of operation ran, the lifecycle functions included.
    for action in ("purchase", "crash_purchase", "refund", "complete", "reconcile_purchase"):
        assert report.actions.get(action, 0) > 0, report.actions
    for action in ("reconcile", "leads"):
        assert report.actions.get(action, 0) > 0, report.actions


def test_a_sequence_only_defect_fails_with_the_shrunk_sequence(clone_db):
    dirs = [MIGRATIONS, BROKEN / "complete_trusts_items"]
    dsn = migrated(clone_db, *dirs)
    with pytest.raises(ModelFailure) as info:
        run_lifecycle(dsn, seed_value=0, migration_dirs=[str(d) for d in dirs])
    failure = info.value
    assert "the model says pending, the database completed" in failure.problem
    lines = failure.detail.splitlines()
    assert re.fullmatch(r"after \d+ step\(s\):", lines[1])
    steps = lines[2:]
    assert steps and all(re.match(r" ?\d+\. \S", line) for line in steps)
    assert "after items" in failure.detail and steps[-1].endswith("-> pending")
    assert 2 <= len(steps) <= 10  # shrunk


@pytest.mark.slow
def test_save_failures_writes_a_scenario_that_replays_the_failure(
    admin_dsn, tmp_path, capsys, monkeypatch
):
    # Any failing sequence replays, shrunk or not: a short shrink keeps the test fast.
    monkeypatch.setattr(model_checks, "SHRINK_SECONDS", 1.0)
    broken = BROKEN / "complete_trusts_items"
    saved = tmp_path / "failures"
    code = cli(
        [
            "verify",
            "--dsn",
            admin_dsn,
            "--only",
            "model.lifecycle",
            "--migrations",
            str(MIGRATIONS),
            "--migrations",
            str(broken),
            "--save-failures",
            str(saved),
        ]
    )
    assert code == 1
    assert "saved as" in capsys.readouterr().out
    path = saved / "model.lifecycle.toml"
    scenario = load_scenario(path)  # a valid scenario file
    assert any(step.action == "complete" for step in scenario.steps)
    assert load_scenario(path) == scenario and dump(scenario) == path.read_text()
    args = ["scenario", "run", str(path), "--dsn", admin_dsn]
    assert cli([*args, "--migrations", str(MIGRATIONS), "--migrations", str(broken)]) == 1
    assert "expected 'pending', got completed" in capsys.readouterr().out
    assert cli(args) == 0


def test_the_saved_scenario_replays_on_its_own(admin_dsn, clone_db):
    dirs = [MIGRATIONS, BROKEN / "refund_gives_back_unmade_sales"]
    dsn = migrated(clone_db, *dirs)
    with pytest.raises(ModelFailure) as info:
        # Any failing sequence replays, shrunk or not: a short shrink keeps the test fast.
        run_lifecycle(dsn, seed_value=0, migration_dirs=[str(d) for d in dirs], shrink_seconds=2)
    scenario = info.value.scenario
    [bad] = run_scenarios(admin_dsn, [scenario], [str(d) for d in dirs])
    [good] = run_scenarios(admin_dsn, [scenario], [str(MIGRATIONS)])
    assert not bad.ok and good.ok, (bad.mismatches, good.mismatches)


def test_save_failures_refuses_a_directory_it_cannot_write_before_running(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as info:
        cli(["verify", "--only", "model", "--save-failures", str(blocker / "sub")])
    assert info.value.code == 2
    assert "--save-failures" in capsys.readouterr().err
