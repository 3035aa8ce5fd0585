"""The verification framework: check statuses, the registry, --only, the JSON and JUnit
reports, exit codes, and that a run against --dsn leaves only what it found."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ROOT

from harness import db as database
from harness.cli import cli
from harness.errors import UsageError
from harness.proofs.gate import documentation
from harness.proofs.verify import (
    CheckContext,
    CheckFailed,
    CheckInconclusive,
    CheckSkipped,
    Report,
    all_checks,
)
from harness.proofs.verify.registry import Check, select
from harness.proofs.verify.report import table, to_json, to_junit
from harness.proofs.verify.runner import CheckResult, run_check

STATUSES = {"passed", "failed", "error", "skipped"}


def validate_json_report(report: dict) -> None:
    """The JSON report format of the README (`harness verify` > Reports), exactly."""
    assert set(report) == {"ok", "target", "checks", "summary"}
    assert isinstance(report["ok"], bool)
    assert set(report["target"]) == {"server_version", "provider", "migrations"}
    assert isinstance(report["target"]["server_version"], str)
    assert isinstance(report["target"]["provider"], str)
    assert all(isinstance(m, str) for m in report["target"]["migrations"])
    for c in report["checks"]:
        assert set(c) == {"id", "category", "status", "detail", "seconds"}
        assert c["id"].startswith(c["category"] + ".")
        assert c["status"] in STATUSES
        assert isinstance(c["detail"], str)
        assert isinstance(c["seconds"], int | float) and c["seconds"] >= 0
    assert set(report["summary"]) == STATUSES
    for status in STATUSES:
        assert report["summary"][status] == sum(c["status"] == status for c in report["checks"])
    assert report["ok"] == (report["summary"]["failed"] == 0 and report["summary"]["error"] == 0)


def validate_junit_report(path: Path, report: dict) -> None:
    """One testcase per check, with a failure, error or skipped element as its status says."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c["id"] for c in report["checks"]]
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == report["summary"]["failed"]
    assert int(suite.get("errors")) == report["summary"]["error"]
    assert int(suite.get("skipped")) == report["summary"]["skipped"]
    tag = {"failed": "failure", "error": "error", "skipped": "skipped"}
    for case, check in zip(cases, report["checks"], strict=True):
        assert case.get("classname") == f"harness.proofs.verify.{check['category']}"
        float(case.get("time"))
        children = {child.tag for child in case} - {"system-out"}
        assert children == ({tag[check["status"]]} if check["status"] in tag else set())


def scratch_databases(admin_dsn: str) -> set[str]:
    with database.connect(admin_dsn) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'harness\\_verify\\_%'"
            )
        }


# -- framework, no server --------------------------------------------------------------------


def _ctx() -> CheckContext:
    return CheckContext(admin_dsn="dbname=none", migration_dirs=[], template="none")


def _result(func) -> CheckResult:
    return run_check(Check("demo.check", func, "demo"), _ctx())


def _fails(ctx):
    raise CheckFailed("balance went negative")


def _skips(ctx):
    raise CheckSkipped("nothing to do")


def _crashes(ctx):
    raise ZeroDivisionError("boom")


def _inconclusive(ctx):
    raise CheckInconclusive("one transaction at a time")


def test_a_check_status_follows_what_it_returns_or_raises():
    assert (_result(lambda ctx: "evidence").status, _result(lambda ctx: "evidence").detail) == (
        "passed",
        "evidence",
    )
    assert (_result(_fails).status, _result(_fails).detail) == ("failed", "balance went negative")
    assert _result(_skips).status == "skipped"
    crashed = _result(_crashes)
    assert crashed.status == "error" and "ZeroDivisionError: boom" in crashed.detail
    assert _result(_inconclusive).status == "error"


def test_registered_check_ids_are_stable_unique_and_documented():
    checks = all_checks()
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*\.[a-z0-9][a-z0-9-]*", i) for i in ids)
    for category in (
        "contract",
        "input",
        "concurrency",
        "faults",
        "queue",
        "security",
        "invariants",
    ):
        assert any(c.category == category for c in checks), category
    docs = documentation(ROOT)
    undocumented = [
        c.id
        for c in checks
        if c.id.split(".")[0]
        in {"contract", "input", "concurrency", "faults", "queue", "security", "invariants"}
        and f"`{c.id}`" not in docs
    ]
    assert undocumented == []
    assert all(c.summary for c in checks)


def test_only_selects_categories_and_ids_and_refuses_unknown_names():
    checks = all_checks()
    chosen = select(checks, ["security", "contract.exact-balance"])
    assert {c.category for c in chosen} == {"security", "contract"}
    assert [c.id for c in chosen if c.category == "contract"] == ["contract.exact-balance"]
    with pytest.raises(UsageError):
        select(checks, ["no-such-category"])


def test_reports_carry_every_check_in_both_formats(tmp_path):
    report = Report(
        "embedded",
        "18.0",
        ["0001_base_schema"],
        [
            CheckResult("contract.a", "contract", "passed", "fine", 0.1),
            CheckResult("contract.b", "contract", "failed", "went negative\nsecond line", 0.2),
            CheckResult("security.c", "security", "error", "KeyError: x", 0.0),
            CheckResult("queue.d", "queue", "skipped", "no aiosmtpd", 0.0),
        ],
        seconds=0.3,
    )
    data = to_json(report)
    validate_json_report(data)
    assert data["ok"] is False
    assert data["summary"] == {"passed": 1, "failed": 1, "error": 1, "skipped": 1}
    path = tmp_path / "junit.xml"
    to_junit(report).write(path, encoding="utf-8", xml_declaration=True)
    validate_junit_report(path, data)
    text = table(report, width=100)
    assert "contract.b" in text and "FAIL" in text and "NOT OK" in text


# -- the command against the test server --------------------------------------------------------


def test_verify_on_dsn_writes_only_scratch_databases_and_drops_them(admin_dsn, tmp_path):
    before = scratch_databases(admin_dsn)
    out, junit = tmp_path / "report.json", tmp_path / "report.xml"
    code = cli(
        [
            "verify",
            "--dsn",
            admin_dsn,
            "--only",
            "security,contract",
            "--json",
            str(out),
            "--junit",
            str(junit),
        ]
    )
    report = json.loads(out.read_text())
    validate_json_report(report)
    validate_junit_report(junit, report)
    assert code == 0, [c for c in report["checks"] if c["status"] != "passed"]
    assert report["target"]["provider"] == "dsn"
    assert "0002_atomic_credit_purchase" in report["target"]["migrations"]
    assert scratch_databases(admin_dsn) == before
    with database.connect(admin_dsn) as conn:
        assert conn.execute("SELECT to_regclass('workspaces')").fetchone()[0] is None


def test_keep_leaves_the_scratch_databases(admin_dsn):
    before = scratch_databases(admin_dsn)
    assert cli(["verify", "--dsn", admin_dsn, "--only", "security.rls-enabled", "--keep"]) == 0
    kept = scratch_databases(admin_dsn) - before
    assert len(kept) == 2  # the template and the check's clone
    for name in kept:
        database.drop_database(admin_dsn, name)


def test_migrations_that_do_not_apply_exit_2(admin_dsn, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "0100_bad.sql").write_text(
        "-- depends: 0002_atomic_credit_purchase\nSELECT * FROM no_such_table;\n"
    )
    (bad / "0100_bad.rollback.sql").write_text("SELECT 1;\n")
    before = scratch_databases(admin_dsn)
    code = cli(
        [
            "verify",
            "--dsn",
            admin_dsn,
            "--migrations",
            str(ROOT / "migrations"),
            "--migrations",
            str(bad),
        ]
    )
    assert code == 2
    assert "do not apply" in capsys.readouterr().err
    assert scratch_databases(admin_dsn) == before


def test_unknown_only_and_bad_dsn_exit_2(admin_dsn):
    assert cli(["verify", "--dsn", admin_dsn, "--only", "nonsense"]) == 2
    assert cli(["verify", "--dsn", "host=/nonexistent-socket-dir dbname=x"]) == 2
