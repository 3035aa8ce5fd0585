"""`harness verify` fails on every known-bad migration set in examples/broken/ (and the
source design's functions as written), with the checks its manifest names, and passes on
the project's own migrations."""

from __future__ import annotations

import contextlib
import json

import pytest
from conftest import ROOT
from test_verify import validate_json_report, validate_junit_report

from harness import db as database
from harness.cli import cli
from harness.db.migrations import migrate
from harness.drivers.serve.app import AppConfig
from harness.drivers.serve.server import running
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


SECRET = "b" * 40


@contextlib.contextmanager
def application(admin_dsn, monkeypatch, dirs, only):
    """For examples whose checks include http ones: `harness serve`'s application on a
    database migrated with the example, and the options that point verify at it."""
    if not any(o.startswith("http") for o in only.split(",")):
        yield ["--dsn", admin_dsn]
        return
    with database.scratch_database(admin_dsn, prefix="harness_test_app") as dsn:
        migrate(dsn, dirs)
        monkeypatch.setenv("HARNESS_JWT_SECRET", SECRET)
        with running(AppConfig(dsn=dsn, secret=SECRET)) as url:
            yield ["--dsn", dsn, "--http", url]


@pytest.mark.parametrize("example", sorted(BROKEN))
def test_verify_fails_on_a_broken_migration_with_the_named_checks(
    admin_dsn, tmp_path, monkeypatch, example
):
    only, must_fail = BROKEN[example]
    # model.lifecycle shrinks what it finds for about 10 s; failing is what counts here.
    monkeypatch.setattr(model_checks, "SHRINK_SECONDS", 1.0)
    dirs = [str(ROOT / "migrations"), str(EXAMPLES / example)]
    with application(admin_dsn, monkeypatch, dirs, only) as target:
        code, report = run_verify(
            target[1],
            tmp_path,
            *target[2:],
            "--migrations",
            dirs[0],
            "--migrations",
            dirs[1],
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
