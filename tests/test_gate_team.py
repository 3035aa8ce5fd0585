"""harness gate for a team's deployment: its own test command (exit code and JUnit), its
own API and user documentation checked against the application's routes and error codes,
and item 9 driving the deployed application over HTTP. Outside the harness's checkout
nothing of the harness's own tests or docs is read."""

from __future__ import annotations

import pytest

from harness.cli import cli
from harness.drivers.serve import contract
from harness.drivers.serve.app import AppConfig
from harness.drivers.serve.server import running
from harness.proofs.gate import Options, run_gate

SECRET = "g" * 40


def items(report) -> dict[str, tuple[str, str]]:
    return {i.key: (i.status, i.evidence) for i in report.items}


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A team's repository: a directory outside this checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_outside_the_checkout_the_harness_tests_and_docs_are_never_used(admin_dsn, elsewhere):
    report = run_gate(
        admin_dsn, "dsn", Options(only=["tests", "integration", "api-docs", "user-docs"])
    )
    got = items(report)
    assert got["tests"][0] == "MANUAL" and "--tests CMD" in got["tests"][1]
    assert got["integration"][0] == "MANUAL"
    assert got["api-docs"][0] == "MANUAL" and "--api-docs PATH" in got["api-docs"][1]
    assert got["user-docs"][0] == "MANUAL" and "--user-docs PATH" in got["user-docs"][1]


def test_the_teams_test_command_decides_items_1_and_3(admin_dsn, elsewhere):
    (elsewhere / "test_flow_ok.py").write_text("def test_ok():\n    assert True\n")
    (elsewhere / "test_flow_bad.py").write_text("def test_bad():\n    assert 1 == 2\n")
    report = run_gate(
        admin_dsn,
        "dsn",
        Options(only=["tests", "integration"], tests="python -m pytest -q -p no:cacheprovider"),
    )
    got = items(report)
    assert got["tests"][0] == "FAIL" and "test_flow_bad::test_bad" in got["tests"][1]
    assert got["integration"][0] == "FAIL"
    (elsewhere / "test_flow_bad.py").unlink()
    report = run_gate(admin_dsn, "dsn", Options(only=["tests"], tests="python -m pytest -q"))
    assert items(report)["tests"][0] == "PASS"
    assert "1 passed" in items(report)["tests"][1]


def test_a_command_that_is_not_pytest_is_judged_by_its_exit_code_and_junit(admin_dsn, elsewhere):
    ok = run_gate(admin_dsn, "dsn", Options(only=["tests"], tests="true"))
    bad = run_gate(admin_dsn, "dsn", Options(only=["tests"], tests="echo broken; false"))
    assert items(ok)["tests"][0] == "PASS"
    assert items(bad)["tests"][0] == "FAIL" and "broken" in items(bad)["tests"][1]
    junit = elsewhere / "out.xml"
    command = (
        'printf \'<testsuite><testcase classname="e2e" name="t"><failure/></testcase>'
        f"</testsuite>' > {junit}"
    )
    report = run_gate(
        admin_dsn, "dsn", Options(only=["tests"], tests=command, tests_junit=str(junit))
    )
    assert items(report)["tests"][0] == "FAIL" and "e2e::t" in items(report)["tests"][1]
    none = run_gate(admin_dsn, "dsn", Options(only=["tests"], tests="python -m pytest -q"))
    assert items(none)["tests"][0] == "MANUAL"  # no test collected


def test_the_teams_docs_must_name_every_route_code_and_message(db, elsewhere):
    api, user = elsewhere / "api.md", elsewhere / "user"
    user.mkdir()
    with running(AppConfig(dsn=db, secret=SECRET)) as url:
        api.write_text(contract.error_table())  # every code, but no route
        (user / "errors.md").write_text(
            "\n".join(s.message for s in contract.ERRORS.values() if s.code != "rate_limited")
        )
        opts = Options(only=["api-docs", "user-docs"], api_docs=str(api), user_docs=str(user))
        first = items(run_gate(db, "dsn", Options(**{**opts.__dict__, "target": url})))
        routes = [contract.PURCHASE, contract.PURCHASES, contract.DOWNLOAD, contract.TOPUP]
        api.write_text(contract.error_table() + "\n".join([*routes, contract.HEALTH]))
        second = items(run_gate(db, "dsn", Options(**{**opts.__dict__, "target": url})))
    assert first["api-docs"][0] == "FAIL" and f"route {contract.PURCHASE}" in first["api-docs"][1]
    assert first["user-docs"][0] == "FAIL" and "rate_limited" in first["user-docs"][1]
    assert second["api-docs"][0] == "PASS" and "5 routes" in second["api-docs"][1]


def test_item_9_drives_the_deployed_application_over_http(db, elsewhere, tmp_path):
    with running(AppConfig(dsn=db, secret=SECRET)) as url:
        report = run_gate(db, "dsn", Options(only=["flow"], target=url, secret=SECRET))
        wrong = tmp_path / "scenarios-wrong.toml"
        from conftest import ROOT

        text = (ROOT / "scenarios" / "full-flow.toml").read_text()
        wrong.write_text(
            text.replace('balances = { buyer = "9.00" }', 'balances = { buyer = "8.00" }')
        )
        bad = run_gate(
            db, "dsn", Options(only=["flow"], target=url, secret=SECRET, scenario=str(wrong))
        )
    status, evidence = items(report)["flow"]
    assert status == "PASS" and "over HTTP" in evidence and "every download" in evidence
    status, evidence = items(bad)["flow"]
    assert status == "FAIL" and "balances.buyer: expected 8.00, got 9.00" in evidence


def test_target_without_a_database_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_JWT_SECRET", SECRET)
    assert cli(["gate", "--target", "http://127.0.0.1:9"]) == 2
    assert "--target needs --dsn" in capsys.readouterr().err
