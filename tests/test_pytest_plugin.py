"""The pytest plugin in a team's own suite: scenario files as items (with their mismatch
as the failure text and pytest's JUnit), the fixtures, and no server started when none of
them is used. Each case runs a real pytest in a subprocess, outside this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import ROOT


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_scenario_files_are_items_and_a_failing_one_shows_its_mismatch(admin_dsn, tmp_path):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    shutil.copy(ROOT / "scenarios" / "exact-balance.toml", scenarios)
    wrong = (ROOT / "scenarios" / "hot-wallet-race.toml").read_text()
    wrong = wrong.replace('name = "hot-wallet-race"', 'name = "wrong-expectation"')
    (scenarios / "wrong.toml").write_text(wrong.replace("succeeded = 10", "succeeded = 11"))
    # Another tool's TOML in the same directory is left alone.
    (scenarios / "other-tool.toml").write_text('[tool]\nname = "not a scenario"\n')
    junit = tmp_path / "junit.xml"
    out = run_pytest(tmp_path, "scenarios/", "--harness-dsn", admin_dsn, f"--junitxml={junit}")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 failed, 1 passed" in out.stdout and "error" not in out.stdout.splitlines()[-1]
    assert "succeeded: expected 11, got 10" in out.stdout
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"exact-balance", "wrong-expectation"}
    assert cases["wrong-expectation"].find("failure") is not None
    # A scenario with a mistake is a collection error naming the key.
    (scenarios / "typo.toml").write_text(wrong.replace("[expect]", "[expect]\nsucceded = 1"))
    out = run_pytest(tmp_path, "scenarios/typo.toml", "--harness-dsn", admin_dsn)
    assert out.returncode == 2 and "succeded" in out.stdout, out.stdout + out.stderr


def test_the_fixtures_in_a_teams_own_test(admin_dsn, tmp_path):
    (tmp_path / "test_team.py").write_text(
        """
from decimal import Decimal
from harness.money.service import PurchaseRequest
from harness.testing import World
from harness import db


def test_buy_through_the_service(harness_db, purchase_service):
    with db.connect(harness_db) as conn:
        world = World(conn)
        ws, (user,) = world.workspace(balance="5.00")
        lead = world.leads(1, "2.00")[0]
    result = purchase_service.purchase(PurchaseRequest(ws, user, (lead,)))
    assert result.new_balance == Decimal("3.00")


def test_buy_over_http(harness_client):
    with db.connect(harness_client.dsn) as conn:
        world = World(conn)
        ws, (user,) = world.workspace(balance="5.00")
        lead = world.leads(1, "2.00")[0]
    r = harness_client.post(
        "/api/marketplace/purchase",
        json={"lead_ids": [str(lead)], "payment_method": "credits"},
        headers=harness_client.auth_headers(ws, user),
    )
    assert r.status_code == 200 and r.json()["creditsRemaining"] == "3.00"


def test_each_test_gets_its_own_database(harness_db, harness_server):
    with db.connect(harness_db) as conn:
        assert db.scalar(conn, "SELECT count(*) FROM workspaces") == 0
"""
    )
    out = run_pytest(tmp_path, "-q", "--harness-dsn", admin_dsn)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 passed" in out.stdout


def test_no_server_starts_when_no_fixture_or_scenario_is_used(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_nothing():\n    assert True\n")
    # An unreachable server: anything that tried to use it would fail the run.
    out = run_pytest(tmp_path, "-q", "--harness-dsn", "host=/nonexistent dbname=x")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "harness" in run_pytest(tmp_path, "--help").stdout


def test_the_plugin_is_registered_as_an_entry_point():
    from importlib.metadata import entry_points

    names = {e.name: e.value for e in entry_points(group="pytest11")}
    assert names.get("harness") == "harness.pytest_plugin"
