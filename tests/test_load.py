"""`harness load` against the session's real server, with real Locust (`harness bench` is in
test_bench.py).

The load runs are short (a few seconds each); what they prove is not speed but that the
load was really concurrent, that a correct flow keeps every invariant under it, that the
racy legacy flow is caught, and that Locust's distributed mode adds up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from harness import db as database
from harness.cli import cli
from harness.drivers import load
from harness.values import parse_duration

LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
HOT_WALLET = ROOT / "loadtests" / "hot-wallet.toml"

pytestmark = pytest.mark.slow


def run_load(admin_dsn: str, tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "load.json"
    code = cli(["load", "--dsn", admin_dsn, "--json", str(out), *args])
    return code, json.loads(out.read_text())


def test_atomic_flow_under_concurrent_load_holds_every_invariant(admin_dsn, tmp_path, capsys):
    code, report = run_load(
        admin_dsn, tmp_path, "--flow", "atomic", "--users", "16", "--duration", "6s"
    )
    assert code == 0, capsys.readouterr()
    assert report["ok"] is True
    assert report["violations"] == [] and report["unexpected_errors"] == 0
    # the load was concurrent: calls open together, transactions overlapping
    assert report["requests_open_mean"] >= 8 and report["peak_in_flight"] >= 2
    assert report["outcomes"]["atomic:purchased"]["requests"] > 0
    # the hot wallet drains: its refusals are documented outcomes, counted as successes
    assert all(
        name.startswith("atomic:") and o["failures"] == 0 for name, o in report["outcomes"].items()
    )
    assert report["requests"] == sum(o["requests"] for o in report["outcomes"].values())
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert report["rps"] > 0
    assert "load: " in capsys.readouterr().err  # progress while it ran


def test_legacy_flow_on_a_hot_wallet_fails_naming_the_overdraft(admin_dsn, tmp_path, capsys):
    code, report = run_load(
        admin_dsn,
        tmp_path,
        "--scenario",
        str(HOT_WALLET),
        "--flow",
        "legacy",
        "--users",
        "16",
        "--duration",
        "5s",
    )
    err = capsys.readouterr().err
    assert code == 1
    assert report["ok"] is False
    names = {v["name"] for v in report["violations"]}
    assert names & {"ledger_overdraft", "balance_ledger_mismatch", "negative_balance"}, names
    assert "invariant violated" in err and "overdraft" in err


def test_locustfile_refuses_to_run_when_psycopg_was_imported_before_gevent_patching():
    env = {k: v for k, v in os.environ.items() if k != "PSYCOPG_WAIT_FUNC"}
    script = f"import runpy; runpy.run_path({str(LOCUSTFILE)!r})"
    wrong = subprocess.run(
        [sys.executable, "-c", "import psycopg; " + script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert wrong.returncode != 0
    assert "refusing to run" in wrong.stderr and "C wait" in wrong.stderr
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_master_and_two_workers_totals_add_up(db, tmp_path):
    load.seed(db, load.load_dataset(None))
    port = _free_port()
    env = {
        **os.environ,
        "HARNESS_DSN": db,
        "HARNESS_LOAD_FLOW": "atomic=1,direct=1",
        "PYTHONUNBUFFERED": "1",
    }
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    logs = [tmp_path / f"{n}.log" for n in ("master", "worker1", "worker2")]
    master = subprocess.Popen(
        locust
        + [
            "--master",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(port),
            "--expect-workers",
            "2",
            "--headless",
            "-u",
            "8",
            "-r",
            "8",
            "-t",
            "5s",
            "--stop-timeout",
            "10",
            "--only-summary",
            "--json-file",
            str(tmp_path / "stats"),
        ],
        env=env,
        cwd=tmp_path,
        stdout=logs[0].open("w"),
        stderr=subprocess.STDOUT,
    )
    workers = [
        subprocess.Popen(
            locust + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for log in logs[1:]
    ]
    try:
        assert master.wait(timeout=90) == 0, logs[0].read_text()[-2000:]
        for w in workers:
            assert w.wait(timeout=30) == 0
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
                p.wait()

    stats = json.loads((tmp_path / "stats.json").read_text())
    counted = {e["name"]: e["num_requests"] for e in stats}
    failures = sum(e["num_failures"] for e in stats)
    with database.connect(db) as conn:
        atomic, direct = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'), "
            "count(*) FILTER (WHERE status = 'pending') FROM marketplace_purchases"
        ).fetchone()
    assert failures == 0
    assert counted.get("atomic:purchased", 0) > 0 and counted.get("direct:purchased", 0) > 0
    # every purchase the master counted is in the database, and nothing more
    assert atomic == counted["atomic:purchased"]
    assert direct == counted["direct:purchased"]
    assert load.wait_for_load_sessions_to_end(db, timeout=10)
    # both workers ran users; the invariant check ran once, on the master only
    for log in logs[1:]:
        assert "invariants:" not in log.read_text()
    assert logs[0].read_text().count("invariants: hold") == 1


def test_parse_flows_and_durations():
    assert load.parse_flows("atomic") == {"atomic": 1.0}
    assert load.parse_flows("atomic=2, direct=1") == {"atomic": 2.0, "direct": 1.0}
    with pytest.raises(Exception, match="unknown flow"):
        load.parse_flows("fast")
    assert parse_duration("20s").total_seconds() == 20
    assert parse_duration("1m30s").total_seconds() == 90
    assert load.percentile({1.0: 50, 10.0: 45, 100.0: 5}, 95) == 10.0
    assert load.percentile({1.0: 50, 10.0: 45, 100.0: 5}, 99) == 100.0
