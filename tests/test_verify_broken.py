"""`harness verify` fails on every known-bad migration set in examples/broken/ (and the
source design's functions as written), with the checks its manifest names, and passes on
the project's own migrations."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT
from test_verify import validate_json_report, validate_junit_report

from harness.cli import cli
from harness.proofs.variants import all_variants
from harness.proofs.verify.checks import model as model_checks

EXAMPLES = ROOT / "examples"

# example directory (relative to examples/) -> (--only, the checks that must fail), from
# each example's manifest.toml; the table of examples/broken/README.md is generated from
# the same manifests.
BROKEN = {
    v.directory.relative_to(EXAMPLES).as_posix(): (v.only, set(v.must_fail))
    for v in all_variants(EXAMPLES / "broken")
}


def run_verify(admin_dsn, tmp_path, *args: str) -> tuple[int, dict]:
    out, junit = tmp_path / "verify.json", tmp_path / "verify.xml"
    code = cli(["verify", "--dsn", admin_dsn, "--json", str(out), "--junit", str(junit), *args])
    report = json.loads(out.read_text())
    validate_json_report(report)
    validate_junit_report(junit, report)
    return code, report


@pytest.mark.parametrize("example", sorted(BROKEN))
def test_verify_fails_on_a_broken_migration_with_the_named_checks(
    admin_dsn, tmp_path, monkeypatch, example
):
    only, must_fail = BROKEN[example]
    # model.lifecycle shrinks what it finds for about 10 s; failing is what counts here.
    monkeypatch.setattr(model_checks, "SHRINK_SECONDS", 1.0)
    code, report = run_verify(
        admin_dsn,
        tmp_path,
        "--migrations",
        str(ROOT / "migrations"),
        "--migrations",
        str(EXAMPLES / example),
        "--only",
        only,
    )
    failed = {c["id"] for c in report["checks"] if c["status"] == "failed"}
    assert code == 1
    assert report["ok"] is False
    assert must_fail <= failed, {c["id"]: c["detail"] for c in report["checks"]}
    assert report["target"]["migrations"][-1].startswith("0100_")


def test_every_broken_example_is_listed_in_the_readme():
    readme = (EXAMPLES / "broken" / "README.md").read_text()
    assert {"broken/no_row_lock", "seed_as_written"} <= set(BROKEN)
    for example in BROKEN:
        name = example.split("/", 1)[1] if example.startswith("broken/") else f"../{example}"
        assert f"| `{name}` |" in readme


@pytest.mark.slow
def test_verify_passes_on_the_project_migrations(admin_dsn, tmp_path):
    code, report = run_verify(admin_dsn, tmp_path)
    bad = {c["id"]: c["detail"] for c in report["checks"] if c["status"] in ("failed", "error")}
    assert code == 0 and bad == {}
    assert report["ok"] is True
    assert report["summary"]["passed"] >= 20
