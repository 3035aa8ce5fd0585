"""`harness verify` fails on every known-bad migration set in examples/broken/ (and the
source design's functions as written), with the checks its README names, and passes on
the project's own migrations."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from test_verify import validate_json_report, validate_junit_report

from harness.cli import cli

# example directory -> (--only, the checks that must fail). The README of
# examples/broken/ says the same in prose.
BROKEN = {
    "broken/no_row_lock": ("concurrency.hot-wallet", {"concurrency.hot-wallet"}),
    "broken/off_by_one": ("contract", {"contract.exact-balance"}),
    "broken/overdraw_one_cent": ("contract", {"contract.one-cent-more"}),
    "broken/no_account_as_zero": ("contract", {"contract.no-credits-account"}),
    "broken/mark_sold_loop": (
        "contract", {"contract.mark-sold-once", "contract.mark-sold-one-statement"}),
    "broken/no_purchase_row": (
        "contract,invariants", {"contract.purchase-deducts-price", "invariants.after-checks"}),
    "broken/stale_reservation_count": (
        "concurrency.exclusive-lead", {"concurrency.exclusive-lead"}),
    "broken/granted_to_public": ("security", {"security.execute-not-public"}),
    "broken/security_definer_no_search_path": (
        "security", {"security.search-path-pinned", "security.definer-has-search-path"}),
    "broken/rls_disabled": ("security", {"security.rls-enabled"}),
    "broken/lead_locks_in_caller_order": (
        "concurrency.no-deadlock", {"concurrency.no-deadlock"}),
    "broken/debit_via_dblink": (
        "faults.terminate-mid-purchase", {"faults.terminate-mid-purchase"}),
    "broken/reconcile_trusts_items": (
        "faults.stepwise-reconcile", {"faults.stepwise-reconcile"}),
    "broken/atomic_flow_no_email": (
        "queue.outbox-iff-committed", {"queue.outbox-iff-committed"}),
    "broken/requeue_resets_attempts": (
        "queue.retry-dead-letter", {"queue.retry-dead-letter"}),
    "broken/rewrite_money_column": ("migrations.lint", {"migrations.lint"}),
    "seed_as_written": ("input,contract,security", {
        "input.amounts", "input.price-mismatch", "input.lead-ids", "input.membership",
        "input.availability", "input.combined", "contract.mark-sold-max-sales",
        "security.search-path-pinned"}),
}


def run_verify(admin_dsn, tmp_path, *args: str) -> tuple[int, dict]:
    out, junit = tmp_path / "verify.json", tmp_path / "verify.xml"
    code = cli(["verify", "--dsn", admin_dsn, "--json", str(out), "--junit", str(junit),
                *args])
    report = json.loads(out.read_text())
    validate_json_report(report)
    validate_junit_report(junit, report)
    return code, report


@pytest.mark.parametrize("example", sorted(BROKEN))
def test_verify_fails_on_a_broken_migration_with_the_named_checks(admin_dsn, tmp_path,
                                                                  example):
    only, must_fail = BROKEN[example]
    code, report = run_verify(admin_dsn, tmp_path, "--migrations", str(ROOT / "migrations"),
                              "--migrations", str(ROOT / "examples" / example),
                              "--only", only)
    failed = {c["id"] for c in report["checks"] if c["status"] == "failed"}
    assert code == 1
    assert report["ok"] is False
    assert must_fail <= failed, {c["id"]: c["detail"] for c in report["checks"]}
    assert report["target"]["migrations"][-1].startswith("0100_")


def test_every_broken_example_is_listed_in_the_readme():
    readme = (ROOT / "examples" / "broken" / "README.md").read_text()
    for example in BROKEN:
        if example.startswith("broken/"):
            assert f"`{example.split('/', 1)[1]}`" in readme


@pytest.mark.slow
def test_verify_passes_on_the_project_migrations(admin_dsn, tmp_path):
    code, report = run_verify(admin_dsn, tmp_path)
    bad = {c["id"]: c["detail"] for c in report["checks"] if c["status"] in ("failed", "error")}
    assert code == 0 and bad == {}
    assert report["ok"] is True
    assert report["summary"]["passed"] >= 20
