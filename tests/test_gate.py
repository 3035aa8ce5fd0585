"""harness gate: the spec's checklist in its order, PASS/FAIL/MANUAL with evidence, written
as a terminal table, Markdown, JUnit and JSON; red with the failing item named."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from conftest import ROOT

from harness import db as database
from harness.cli import cli
from harness.proofs.gate import CHECKLIST, GATE_ENV, Options, run_gate

PWC = "purchase_with_credits(uuid, uuid, uuid[], numeric, numeric)"


def tables(dsn: str) -> set[str]:
    with database.connect(dsn) as conn:
        return {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }


def test_gate_is_green_on_the_project_and_writes_every_report(admin_dsn, tmp_path, capsys):
    md, xml, js = tmp_path / "gate.md", tmp_path / "gate.xml", tmp_path / "gate.json"
    code = cli(
        [
            "gate",
            "--dsn",
            admin_dsn,
            "--skip-tests",
            "--only",
            "migrations,flow,monitor",
            "--markdown",
            str(md),
            "--junit",
            str(xml),
            "--json",
            str(js),
            "--baseline",
            str(tmp_path / "baseline.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "GATE PASSED" in out
    report = json.loads(js.read_text())
    assert [i["title"] for i in report["items"]] == [t for _, t in CHECKLIST]
    status = {i["key"]: i["status"] for i in report["items"]}
    assert status["migrations"] == "PASS" and status["flow"] == "PASS"
    assert status["tests"] == "MANUAL"
    assert "| 8 | Run database migrations on staging | ✅ PASS |" in md.read_text()
    suite = ET.parse(xml).getroot().find("testsuite")
    assert suite.get("tests") == str(len(CHECKLIST)) and suite.get("failures") == "0"


def test_gate_is_red_on_a_broken_example_and_names_the_item(admin_dsn, tmp_path, capsys):
    code = cli(
        [
            "gate",
            "--dsn",
            admin_dsn,
            "--skip-tests",
            "--only",
            "rollback",
            "--migrations",
            str(ROOT / "migrations"),
            "--migrations",
            str(ROOT / "examples/broken/replace_loses_search_path"),
            "--json",
            str(tmp_path / "gate.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "GATE FAILED: #10 Rollback rehearsal (Rollback Plan)" in out
    (item,) = [
        i
        for i in json.loads((tmp_path / "gate.json").read_text())["items"]
        if i["key"] == "rollback"
    ]
    assert item["status"] == "FAIL"
    assert f"{PWC}: search_path no longer pinned after rolling back" in item["evidence"]


def test_migrations_are_rehearsed_unless_apply_is_given(empty_db, capsys):
    assert cli(["gate", "--dsn", empty_db, "--only", "migrations"]) == 0
    assert "would apply 0001_base_schema" in capsys.readouterr().out
    assert "workspaces" not in tables(empty_db)
    assert cli(["gate", "--dsn", empty_db, "--only", "migrations", "--apply"]) == 0
    assert "applied for real" in capsys.readouterr().out
    assert "workspaces" in tables(empty_db)


def test_a_target_whose_schema_drifted_fails_the_migrations_item(db, conn, capsys):
    conn.execute(f"GRANT EXECUTE ON FUNCTION {PWC} TO PUBLIC")
    assert cli(["gate", "--dsn", db, "--only", "migrations"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"function {PWC}: EXECUTE granted to PUBLIC on the target" in out


def test_the_gate_does_not_recurse_into_pytest(admin_dsn, monkeypatch):
    monkeypatch.setenv(GATE_ENV, "1")
    report = run_gate(admin_dsn, "dsn", Options(only=["tests", "integration"]))
    first, *_ = report.items
    assert first.status == "MANUAL" and GATE_ENV in first.evidence
    assert report.ok


def test_without_a_target_the_monitoring_item_is_manual(admin_dsn, tmp_path):
    """Without --dsn there is nothing deployed to watch: an empty scratch database would
    always look healthy, so item 11 must not pass."""
    from harness.proofs.gate import Options, run_gate

    report = run_gate(
        admin_dsn, "embedded", Options(only=["monitor"], baseline=str(tmp_path / "b.json"))
    )
    (item,) = [i for i in report.items if i.key == "monitor"]
    assert item.status == "MANUAL" and "no --dsn" in item.evidence
    assert not (tmp_path / "b.json").exists()
