"""The CLI: exit codes, one-line errors that change nothing, db start/stop, stale locks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from harness import db as database
from harness.cli import cli
from harness.db.migrations import Migrator


def tables(dsn):
    with database.connect(dsn) as conn:
        return sorted(
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )


# The line a writing command prints first: which server and database it touches.
ANNOUNCED = re.compile(r"^[\w -]+(\([^)]*\))?: database \S+ on (socket|host) ")


def one_error_line(capsys) -> str:
    err = [
        line for line in capsys.readouterr().err.strip().splitlines() if not ANNOUNCED.match(line)
    ]
    assert len(err) == 1, err
    return err[0]


def run(argv: list[str]) -> int:
    """cli(argv)'s exit status, usage errors (SystemExit from the parser) included."""
    try:
        return cli(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_migrate_status_rollback_round_trip(empty_db, capsys):
    assert cli(["migrate", "--dsn", empty_db]) == 0
    out = capsys.readouterr().out
    assert "applying 0001_base_schema" in out and "applied" in out
    assert cli(["migrate", "--dsn", empty_db]) == 0
    assert "nothing to apply" in capsys.readouterr().out
    assert cli(["status", "--dsn", empty_db, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pending"] == 0 and all(m["applied"] for m in report["migrations"])
    assert cli(["rollback", "--dsn", empty_db, "--steps", "1"]) == 0
    last = report["migrations"][-1]["id"]
    assert f"rolling back {last}" in capsys.readouterr().out
    assert cli(["status", "--dsn", empty_db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 1
    assert cli(["rollback", "--dsn", empty_db, "--all"]) == 0
    assert tables(empty_db) == ["_yoyo_log", "_yoyo_migration", "_yoyo_version", "yoyo_lock"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--dsn", "host=127.0.0.1 port=1 dbname=x connect_timeout=2"], "cannot connect"),
        (["--dsn", "not a dsn"], "not a valid DSN"),
        (["--migrations", "/nonexistent/dir"], "migrations directory not found"),
        (["--postgres", "oracle"], "unknown --postgres provider"),
    ],
    ids=["unreachable", "bad-dsn", "missing-dir", "bad-provider"],
)
def test_usage_and_connection_errors_exit_2_with_one_line(empty_db, capsys, argv, fragment):
    if "--dsn" not in argv:
        argv = [*argv, "--dsn", empty_db]
    before = tables(empty_db)
    assert run(["migrate", *argv]) == 2
    assert fragment in one_error_line(capsys)
    assert tables(empty_db) == before


def test_password_is_not_printed(capsys):
    assert cli(["status", "--dsn", "postgresql://u:s3cret@127.0.0.1:1/db?connect_timeout=2"]) == 2
    assert "s3cret" not in capsys.readouterr().err


def test_a_failing_migration_exits_1_and_leaves_no_trace_of_itself(empty_db, tmp_path, capsys):
    bad = tmp_path / "candidate"
    bad.mkdir()
    (bad / "0100_bad.sql").write_text(
        "-- depends: 0003_email_outbox\n"
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    (bad / "0100_bad.rollback.sql").write_text("DROP TABLE half_done;\n")
    argv = [
        "migrate",
        "--dsn",
        empty_db,
        "--migrations",
        str(ROOT / "migrations"),
        "--migrations",
        str(bad),
    ]
    assert cli(argv) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "0100_bad failed" in line and "no_such_function" in line
    assert "half_done" not in tables(empty_db)
    with Migrator(empty_db, [ROOT / "migrations", bad]) as m:
        assert m.pending() == ["0100_bad"]


def test_stale_yoyo_lock_is_reported_with_the_command_that_breaks_it(empty_db, capsys):
    assert cli(["migrate", "--dsn", empty_db]) == 0
    with database.connect(empty_db) as conn:
        conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 2147483646)")
    capsys.readouterr()
    assert cli(["rollback", "--dsn", empty_db]) == 2
    line = one_error_line(capsys)
    assert "stale yoyo lock" in line and "harness break-lock" in line
    assert "password=***" in line
    assert cli(["status", "--dsn", empty_db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 0  # nothing was rolled back
    assert cli(["break-lock", "--dsn", empty_db]) == 0
    assert "removed" in capsys.readouterr().out
    assert cli(["rollback", "--dsn", empty_db]) == 0


def test_db_start_keeps_a_server_that_later_commands_use_until_db_stop(tmp_path):
    env = {**os.environ, "HARNESS_STATE_DIR": str(tmp_path)}
    env.pop("HARNESS_DSN", None)
    env.pop("HARNESS_POSTGRES", None)

    def harness(*args):
        return subprocess.run(
            [sys.executable, "-m", "harness", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    started = harness("db", "start")
    assert started.returncode == 0, started.stderr
    dsn = started.stdout.strip()
    state = json.loads((tmp_path / "db.json").read_text())
    try:
        assert state["dsn"] == dsn
        assert harness("migrate").returncode == 0
        status = harness("status", "--json")
        report = json.loads(status.stdout)
        assert report["pending"] == 0 and report["dsn"] == database.redact(dsn)
        assert "password=***" in report["dsn"]
        assert database.server_version(dsn)
    finally:
        stopped = harness("db", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(state["workdir"]).exists()
    assert not (tmp_path / "db.json").exists()


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("migrate", "rollback", "status", "db", "break-lock"):
        assert command in out
    with pytest.raises(SystemExit):
        cli(["migrate", "--help"])
    assert "HARNESS_DSN" in capsys.readouterr().out


def test_explicit_dsn_wins_over_the_provider_variable(empty_db, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_POSTGRES", "docker")  # would fail if it were used
    assert cli(["status", "--dsn", empty_db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["provider"] == "dsn"
    assert cli(["status", "--dsn", empty_db, "--postgres", "system"]) == 2
    assert "not both" in one_error_line(capsys)


# -- options and their environment variables ---------------------------------------------------


def test_help_and_version_read_no_environment_variable(monkeypatch, capsys):
    for name in ("HARNESS_VERIFY_JOBS", "HARNESS_WATCH_MAX_ERROR_RATE", "HARNESS_BENCH_CLIENTS"):
        monkeypatch.setenv(name, "not-a-number")
    with pytest.raises(SystemExit) as info:
        cli(["--help"])
    assert info.value.code == 0
    with pytest.raises(SystemExit) as info:
        cli(["--version"])
    assert info.value.code == 0 and "harness" in capsys.readouterr().out


def test_a_bad_variable_is_one_line_naming_it_and_exit_2_for_its_command_only(
    monkeypatch, capsys, empty_db
):
    monkeypatch.setenv("HARNESS_VERIFY_JOBS", "lots")
    assert cli(["verify", "--dsn", empty_db]) == 2
    line = one_error_line(capsys)
    assert "HARNESS_VERIFY_JOBS='lots'" in line and "whole number" in line
    # Another command does not read it.
    assert cli(["status", "--dsn", empty_db, "--json"]) == 0
    assert "workspaces" not in tables(empty_db)


def test_an_option_given_wins_over_its_variable(monkeypatch, capsys, empty_db):
    monkeypatch.setenv("HARNESS_VERIFY_JOBS", "0")  # out of bounds, but not read
    assert cli(["verify", "--dsn", empty_db, "--jobs", "1", "--only", "security.rls-enabled"]) == 0


@pytest.mark.parametrize("value", ["0", "-3", "33", "1.5", ""])
def test_jobs_out_of_bounds_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as info:
        cli(["verify", "--jobs", value])
    assert info.value.code == 2
    assert "--jobs" in capsys.readouterr().err


def test_every_command_builds_its_typed_settings_from_its_options():
    """Each command's settings class has exactly one option per field: parsing the
    command's minimal arguments builds it (a field without an option would raise)."""
    from harness.cli import build_parser
    from harness.cli.common import resolve, settings
    from harness.cli.deploy import cli_commands

    parser = build_parser()
    positional = {
        "schema diff": ["a", "b"],
        "leads import": ["x.csv", "--partner", "p"],
        "queue cancel": ["1"],
        "partners add": ["acme", "--base-rate", "0.3"],
        "scenario run": ["f.toml"],
        "scenario check": ["f.toml"],
    }
    built = 0
    for command in cli_commands(parser):
        args = parser.parse_args([*command.split(), *positional.get(command, [])])
        resolve(parser, args)
        s = settings(args.settings_cls, args)
        assert type(s).__dataclass_params__.frozen, command
        built += 1
    assert built >= 20
