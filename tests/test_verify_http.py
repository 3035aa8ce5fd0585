"""harness verify --http: the http checks pass against `harness serve` on the project's
migrations, are skipped without --http, and never count as a pass when --http was asked
for and they did not run. (Each fails on its broken example: tests/test_verify_broken.py.)"""

from __future__ import annotations

import json

import pytest

from harness.cli import cli
from harness.drivers.serve.app import AppConfig
from harness.drivers.serve.server import running
from harness.proofs.verify.context import HttpTarget
from harness.proofs.verify.runner import run_suite

SECRET = "h" * 40
HTTP_CHECKS = {"http.schema", "http.hot-wallet", "http.idempotency", "http.money-after-fuzz"}


@pytest.mark.slow
def test_verify_http_passes_against_harness_serve(db, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_JWT_SECRET", SECRET)
    out = tmp_path / "verify.json"
    with running(AppConfig(dsn=db, secret=SECRET)) as url:
        code = cli(["verify", "--dsn", db, "--http", url, "--only", "http", "--json", str(out)])
    report = json.loads(out.read_text())
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses == dict.fromkeys(HTTP_CHECKS, "passed"), report["checks"]
    assert code == 0
    hot = next(c for c in report["checks"] if c["id"] == "http.hot-wallet")
    assert "14 succeeded" in hot["detail"]


def test_without_http_the_http_checks_are_skipped(admin_dsn):
    report = run_suite(admin_dsn, "dsn", None, only=["http"])
    assert {r.id: r.status for r in report.results} == dict.fromkeys(HTTP_CHECKS, "skipped")
    assert report.ok


def test_a_skipped_http_check_is_an_error_when_http_was_asked_for(admin_dsn, monkeypatch):
    """A run given an application must judge it: here the check is forced to skip."""
    from harness.proofs.verify import registry

    original = registry._REGISTRY["http.idempotency"]

    def skip(ctx):
        raise registry.CheckSkipped("pretend")

    monkeypatch.setitem(
        registry._REGISTRY, "http.idempotency", registry.Check(original.id, skip, "s")
    )
    target = HttpTarget(url="http://127.0.0.1:9", dsn=admin_dsn, secret=SECRET)
    report = run_suite(admin_dsn, "dsn", None, only=["http.idempotency"], http=target)
    (result,) = report.results
    assert result.status == "error" and "not run although --http was given" in result.detail
    assert not report.ok


def test_only_http_without_http_is_a_usage_error(capsys):
    assert cli(["verify", "--only", "http"]) == 2
    assert "--http URL" in capsys.readouterr().err


def test_http_without_a_database_or_secret_is_a_usage_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HARNESS_JWT_SECRET", SECRET)
    assert cli(["verify", "--http", "http://127.0.0.1:9", "--only", "http"]) == 2
    assert "give --dsn" in capsys.readouterr().err
    monkeypatch.delenv("HARNESS_JWT_SECRET")
    assert cli(["verify", "--http", "http://127.0.0.1:9", "--dsn", "postgresql:///x"]) == 2
    assert "HARNESS_JWT_SECRET" in capsys.readouterr().err
