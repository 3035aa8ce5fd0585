"""harness load over HTTP: Locust's HttpUsers buy through the purchase route, from a
`harness serve` the command starts (--http) or from a running application (--target),
then the invariant checker runs on the application's database. Real Locust, real server."""

from __future__ import annotations

import json

import pytest

from harness.cli import cli
from harness.drivers import load
from harness.drivers.serve.app import AppConfig
from harness.drivers.serve.limits import Limits
from harness.drivers.serve.server import running

SECRET = "l" * 40


def test_load_http_starts_harness_serve_and_reports_each_endpoint(admin_dsn, tmp_path, capsys):
    out = tmp_path / "load.json"
    code = cli(
        [
            "load", "--http", "--dsn", admin_dsn, "--users", "8", "--duration", "6s",
            "--json", str(out), "--html", str(tmp_path / "locust.html"),
        ]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["ok"] and report["violations"] == [] and report["unexpected_errors"] == 0
    purchase = report["endpoints"]["POST /api/marketplace/purchase"]
    assert purchase["requests"] > 0 and set(purchase["latency_ms"]) == {"p50", "p95", "p99"}
    assert "200" in purchase["statuses"] and "200" in report["http_statuses"]
    # The hot wallet runs dry within the second; its refused buyers top it up, so it stays
    # contended, and every top-up answered as the contract says.
    assert report["endpoints"]["POST /api/credits/topup"]["statuses"].get("200", 0) > 0
    # Concurrency over HTTP: the users' requests open together at the server (Locust's
    # response times, by Little's law), and the server's transactions overlapping.
    assert report["requests_open_mean"] >= 4 and report["peak_in_flight"] >= 2
    assert (tmp_path / "locust.html").exists()


def test_load_http_fails_when_the_users_requests_were_not_open_together(
    admin_dsn, tmp_path, monkeypatch, capsys
):
    """Users that mostly think leave the server idle: the load did not happen as asked,
    and the command says so instead of passing."""
    monkeypatch.setenv("HARNESS_LOAD_THINK_MS", "2000")
    out = tmp_path / "load.json"
    code = cli(
        [
            "load", "--http", "--dsn", admin_dsn, "--users", "12", "--duration", "4s",
            "--json", str(out),
        ]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 1 and not report["ok"], report
    assert report["violations"] == [] and report["requests_open_mean"] < 6
    assert "calls open at once on average (need 6)" in capsys.readouterr().err


def test_load_target_drives_a_running_application_and_checks_its_database(
    db, tmp_path, monkeypatch
):
    monkeypatch.setenv("HARNESS_JWT_SECRET", SECRET)
    out = tmp_path / "load.json"
    from conftest import ROOT

    config = AppConfig(dsn=db, secret=SECRET, pool_size=10, limits=Limits(0, 0))
    # One wallet every user buys from: its row lock queues the purchases, so they are in
    # flight together even on a busy machine.
    hot = str(ROOT / "loadtests" / "hot-wallet.toml")
    with running(config) as url:
        code = cli(
            [
                "load", "--target", url, "--dsn", db, "--users", "6", "--duration", "5s",
                "--processes", "2", "--scenario", hot, "--json", str(out),
            ]
        )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["target"] == url and report["processes"] == 2
    assert report["endpoints"]["POST /api/marketplace/purchase"]["requests"] > 0


# A top-up that is not replay-safe: the payment reference is forgotten just before it is
# recorded again, so a retried payment credits a second time. Each credit still has its
# ledger row, so every invariant holds; only the retry's answer shows it.
FORGET_PAYMENT_REFERENCES = """
CREATE FUNCTION forget_payment_reference() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM public.credit_payment_references
  WHERE workspace_id = NEW.workspace_id AND payment_reference = NEW.payment_reference;
  RETURN NEW;
END $$;
CREATE TRIGGER forget_payment_reference BEFORE INSERT ON credit_payment_references
  FOR EACH ROW EXECUTE FUNCTION forget_payment_reference();
"""


def test_load_target_fails_when_a_retried_top_up_credits_again(db, tmp_path, monkeypatch):
    from conftest import ROOT

    from harness import db as hdb

    with hdb.connect(db) as conn:
        conn.execute(FORGET_PAYMENT_REFERENCES)
    monkeypatch.setenv("HARNESS_JWT_SECRET", SECRET)
    out = tmp_path / "load.json"
    config = AppConfig(dsn=db, secret=SECRET, pool_size=10, limits=Limits(0, 0))
    hot = str(ROOT / "loadtests" / "hot-wallet.toml")
    with running(config) as url:
        code = cli(
            [
                "load", "--target", url, "--dsn", db, "--users", "8", "--duration", "8s",
                "--scenario", hot, "--json", str(out),
            ]
        )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 1 and report["violations"] == [], report
    (error,) = [e for e in report["errors"] if "credited again" in e["error"]]
    assert error["name"] == "POST /api/credits/topup [retry credited again]"
    assert report["unexpected_errors"] == error["occurrences"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--target", "http://127.0.0.1:9"], "--target needs --dsn"),
        (["--http", "--flow", "atomic"], "--flow applies to the database load"),
        (["--http", "--target", "http://127.0.0.1:9"], "give one"),
    ],
)
def test_http_load_usage_errors(argv, fragment, capsys):
    assert cli(["load", *argv]) == 2
    assert fragment in capsys.readouterr().err


def test_endpoints_merge_the_outcomes_of_one_route():
    entries = [
        {"name": "POST /p [200 purchased]", "num_requests": 3, "num_failures": 0,
         "response_times": {"10": 3}},
        {"name": "POST /p [402 insufficient_credits]", "num_requests": 1, "num_failures": 0,
         "response_times": {"50": 1}},
    ]  # fmt: skip
    (endpoint,) = load.summarize_endpoints(entries).items()
    assert endpoint[0] == "POST /p"
    assert endpoint[1]["statuses"] == {"200": 3, "402": 1}
    assert endpoint[1]["latency_ms"]["p50"] == 10.0 and endpoint[1]["latency_ms"]["p99"] == 50.0


def test_the_http_locustfile_refuses_to_run_when_psycopg_came_before_gevent():
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if k != "PSYCOPG_WAIT_FUNC"}
    script = f"import runpy; runpy.run_path({str(ROOT / 'loadtests' / 'http_locustfile.py')!r})"
    wrong = subprocess.run(
        [sys.executable, "-c", "import psycopg; " + script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert wrong.returncode != 0
    assert "http_locustfile: refusing to run" in wrong.stderr and "C wait" in wrong.stderr
    right = subprocess.run(
        [sys.executable, "-c", script + "; print('cooperative')"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert right.returncode == 0, right.stderr
    assert "cooperative" in right.stdout
