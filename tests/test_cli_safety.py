"""Operator safety at the command line (issue 11): an empty target is never a fallback,
writing commands say where they write, every variable and report path is checked before
anything runs, an unmigrated database gets `run harness migrate first`, and no message
shows a password."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from conftest import ROOT
from psycopg.conninfo import conninfo_to_dict

from harness import db as database
from harness import env
from harness.cli import build_parser, cli
from harness.cli.common import ENV_ATTR
from harness.cli.deploy import cli_commands
from harness.db.migrations import Migrator
from harness.testing import snapshot

HARNESS = Path(sys.executable).with_name("harness")
UNREACHABLE = "host=/nonexistent-harness-socket dbname=x connect_timeout=1"
ANNOUNCED = re.compile(r"^[\w -]+(\([^)]*\))?: database (\S+) on (socket|host) ")
# Arguments a command needs besides its options.
POSITIONAL = {
    "schema diff": [UNREACHABLE, UNREACHABLE],
    "leads import": ["x.csv", "--partner", "p"],
    "queue cancel": ["1"],
    "partners add": ["acme", "--base-rate", "0.3"],
    "scenario run": [str(ROOT / "scenarios" / "emails.toml")],
    "scenario check": [str(ROOT / "scenarios" / "emails.toml")],
}


def run(argv: list[str]) -> int:
    """cli(argv)'s exit status, usage errors from the parser included."""
    try:
        return cli(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def error_lines(err: str) -> list[str]:
    return [line for line in err.strip().splitlines() if not ANNOUNCED.match(line)]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def shell(command: str, tmp: Path, **extra: str) -> subprocess.CompletedProcess:
    """``command`` in bash, with ``harness`` on PATH, servers (if any) made under ``tmp``."""
    env_ = {k: v for k, v in os.environ.items() if not k.startswith(("HARNESS_", "STAGING"))}
    env_.update(
        PATH=f"{HARNESS.parent}{os.pathsep}{os.environ['PATH']}",
        TMPDIR=str(tmp),
        HARNESS_STATE_DIR=str(tmp / "state"),
        **extra,
    )
    return subprocess.run(
        ["bash", "-c", command], env=env_, capture_output=True, text=True, timeout=120
    )


def databases(admin_dsn: str) -> set[str]:
    with database.connect(admin_dsn) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


# -- 1. explicit targets --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "verify", "rollback"])
def test_a_blank_dsn_from_a_missing_secret_is_a_usage_error_never_a_throwaway_server(
    tmp_path, command
):
    """The issue's command, literally: the variable is unset, so --dsn gets ""."""
    result = shell(f'unset STAGING_DSN; harness {command} --dsn "$STAGING_DSN"', tmp_path)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--dsn" in lines[0] and "empty DSN" in lines[0], lines
    assert result.stdout == ""
    assert list(tmp_path.glob("harness-pg-*")) == []  # no throwaway server was started


@pytest.mark.parametrize("command", ["migrate", "verify", "rollback"])
def test_harness_dsn_set_but_empty_is_a_usage_error_whatever_else_is_given(tmp_path, command):
    for extra in ([], ["--postgres", "embedded"]):
        result = shell(f"harness {command} {' '.join(extra)}", tmp_path, HARNESS_DSN="")
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert lines == ["harness: error: HARNESS_DSN is set but empty: unset it, or give a value"]
        assert list(tmp_path.glob("harness-pg-*")) == []


def test_every_writing_command_names_the_server_and_database_it_touches(
    db, admin_dsn, tmp_path, capsys
):
    name = database.dbname_of(db)
    csv = tmp_path / "leads.csv"
    csv.write_text("email,industry,state,price\nann@example.com,Finance,CA,2.50\n")
    commands = [
        ["status"],
        ["migrate"],
        ["partners", "add", "acme", "--base-rate", "0.3"],
        ["leads", "import", str(csv), "--partner", "acme"],
        ["reconcile"],
        ["queue", "retry-dead"],
        ["queue", "cancel", "1"],
        ["break-lock"],
        ["rollback", "--dry-run"],
    ]
    version = database.server_version(db)
    password = conninfo_to_dict(db).get("password")
    for argv in commands:
        run([*argv, "--dsn", db])
        err = capsys.readouterr().err
        first = err.splitlines()[0]
        match = ANNOUNCED.match(first)
        assert match and match.group(2) == name, (argv, err)
        assert f"port {conninfo_to_dict(db)['port']}" in first
        assert f"(PostgreSQL {version})" in first
        assert not password or password not in err


# -- 4. every HARNESS_* variable --------------------------------------------------------------

# Variables no command option carries, and a command that reads them.
READERS: dict[str, list[str]] = {
    "HARNESS_DSN": ["status"],
    "HARNESS_POSTGRES": ["status"],
    "HARNESS_MIGRATIONS": ["status", "--dsn", UNREACHABLE],
    "HARNESS_STATE_DIR": ["db", "stop"],
    "HARNESS_PURCHASE_FLOW": ["load", "--dsn", UNREACHABLE],
    "HARNESS_APP_URL": ["load", "--dsn", UNREACHABLE],
    "HARNESS_EMAIL_FROM": ["worker", "--once", "--dsn", UNREACHABLE],
    "HARNESS_GATE_ACTIVE": ["gate", "--dsn", UNREACHABLE],
    "HARNESS_LOAD_INVARIANTS": ["load", "--dsn", UNREACHABLE],
    "HARNESS_LOAD_LEADS_PER_PURCHASE": ["load", "--dsn", UNREACHABLE],
    "HARNESS_LOAD_THINK_MS": ["load", "--dsn", UNREACHABLE],
    "HARNESS_LOAD_KEEP_LOGS": ["load", "--dsn", UNREACHABLE],
    "HARNESS_LOAD_RUN": ["load", "--dsn", UNREACHABLE],
    "HARNESS_JWT_SECRET": ["serve", "--issue-token", str(uuid.uuid4()), str(uuid.uuid4())],
}
# Read by the test suite itself, not by a harness command.
SUITE_ONLY = {"HARNESS_TEST_DSN", "HARNESS_FUZZ_EXAMPLES"}
BAD = {
    "wrong type": "lots",
    "negative": "-1",
    "huge": "9" * 100_000,
    "odd bytes": "\x01\x1b[2J",
    "undecodable bytes": "\udcff\udcfe",  # what bytes that are not UTF-8 become
}
ALWAYS_REFUSED = ("huge", "odd bytes", "undecodable bytes")


def option_readers() -> dict[str, list[str]]:
    """Variable -> a command whose option takes its default from it (from the parser)."""
    parser = build_parser()
    found: dict[str, list[str]] = {}

    def walk(p: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, [*prefix, name])
            declared = getattr(action, ENV_ATTR, None)
            if declared and declared[0] not in found:
                command = " ".join(prefix)
                dsn = (
                    ["--dsn", UNREACHABLE]
                    if any("--dsn" in a.option_strings for a in p._actions)
                    else []
                )
                found[declared[0]] = [*prefix, *POSITIONAL.get(command, []), *dsn]

    walk(parser, [])
    return found


def clean_environment(monkeypatch) -> None:
    for name in env.VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_every_declared_variable_has_a_reader_this_test_knows():
    readers = option_readers() | READERS
    unknown = sorted(set(env.VARIABLES) - set(readers) - SUITE_ONLY)
    assert unknown == [], f"add a command that reads {unknown} to READERS"


@pytest.mark.parametrize("name", sorted(env.VARIABLES))
def test_a_bad_value_in_any_variable_is_one_line_naming_it_and_exit_2(
    name, monkeypatch, capsys, tmp_path
):
    clean_environment(monkeypatch)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a server would show here
    var = env.VARIABLES[name]
    refused = {}
    for kind, value in BAD.items():
        try:
            var.read({name: value})
        except Exception as exc:  # noqa: BLE001 - exactly one kind is allowed, below
            assert type(exc).__name__ == "UsageError", (kind, exc)
            refused[kind] = value
    assert set(ALWAYS_REFUSED) <= set(refused), f"{name} accepts {set(BAD) - set(refused)}"
    if name in SUITE_ONLY:
        return
    argv = (option_readers() | READERS)[name]
    for kind, value in refused.items():
        monkeypatch.setenv(name, value)
        assert run(argv) == 2, (kind, argv)
        line = one_line(capsys)
        assert line.startswith(f"harness: error: {name}"), (kind, line)
        assert len(line) < 400
    assert list(tmp_path.glob("harness-pg-*")) == []


@pytest.mark.parametrize("name", sorted(env.VARIABLES))
def test_a_bad_value_does_not_stop_a_command_that_does_not_read_it(name, monkeypatch, capsys):
    clean_environment(monkeypatch)
    monkeypatch.setenv(name, BAD["odd bytes"])
    assert cli(["scenario", "check", str(ROOT / "scenarios" / "emails.toml")]) == 0
    assert "valid" in capsys.readouterr().out


# -- 5. report paths, checked before anything runs ----------------------------------------------

REPORT_FLAGS = ("--json", "--junit", "--markdown", "--html", "--baseline")


def report_options() -> list[tuple[str, str]]:
    """(command, flag) of every option that names a report file (from the parser)."""
    parser = build_parser()
    out = []
    for command in cli_commands(parser):
        p = parser
        for word in command.split():
            sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
            p = sub.choices[word]
        for action in p._actions:
            for flag in set(action.option_strings) & set(REPORT_FLAGS):
                if action.nargs != 0:
                    out.append((command, flag))
    return out


def test_every_report_option_is_found():
    found = set(report_options())
    for expected in [
        ("verify", "--json"),
        ("verify", "--junit"),
        ("gate", "--markdown"),
        ("gate", "--baseline"),
        ("watch", "--baseline"),
        ("load", "--html"),
        ("bench", "--json"),
        ("scenario run", "--json"),
    ]:
        assert expected in found


@pytest.mark.parametrize("command, flag", report_options())
def test_an_unwritable_report_path_is_exit_2_before_anything_runs(
    command, flag, admin_dsn, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    before = databases(admin_dsn)
    for bad in (str(tmp_path), str(a_file / "report.out"), "/proc/harness-report.out"):
        argv = [*command.split(), *POSITIONAL.get(command, []), "--dsn", admin_dsn, flag, bad]
        assert run(argv) == 2, argv
        line = one_line(capsys)
        assert flag in line and bad in line, line
        # and without --dsn: no throwaway server either
        argv = [*command.split(), *POSITIONAL.get(command, []), flag, bad]
        assert run(argv) == 2
        capsys.readouterr()
    assert databases(admin_dsn) == before
    assert list(tmp_path.glob("harness-pg-*")) == []
    assert a_file.read_text() == ""


def test_an_unwritable_report_path_in_a_variable_is_exit_2_naming_it(
    admin_dsn, monkeypatch, capsys
):
    before = databases(admin_dsn)
    monkeypatch.setenv("HARNESS_VERIFY_JUNIT", "/proc/harness-report.xml")
    assert run(["verify", "--dsn", admin_dsn]) == 2
    assert one_line(capsys).startswith("harness: error: HARNESS_VERIFY_JUNIT=")
    assert databases(admin_dsn) == before


# -- 6. unmigrated and partly migrated databases ------------------------------------------------

NEEDS_MIGRATIONS = [
    ["reconcile"],
    ["queue", "status"],
    ["queue", "retry-dead"],
    ["queue", "cancel", "1"],
    ["worker", "--once"],
    ["watch"],
    ["leads", "import", "{csv}", "--partner", "acme"],
    ["partners", "add", "acme", "--base-rate", "0.3"],
]


@pytest.fixture
def partly_migrated(empty_db):
    with Migrator(empty_db) as m:
        m.backend.apply_one(m.migrations[0])  # the base schema only
    return empty_db


@pytest.mark.parametrize("state", ["unmigrated", "partly migrated"])
@pytest.mark.parametrize("argv", NEEDS_MIGRATIONS, ids=lambda a: " ".join(a[:2]))
def test_a_command_on_a_database_not_migrated_says_run_harness_migrate_first(
    request, state, argv, tmp_path, capsys
):
    dsn = request.getfixturevalue("empty_db" if state == "unmigrated" else "partly_migrated")
    csv = tmp_path / "leads.csv"
    csv.write_text("email,industry,state,price\nann@example.com,Finance,CA,2.50\n")
    with database.connect(dsn) as conn:
        before = snapshot(conn) if state != "unmigrated" else None
    argv = [a.format(csv=csv) for a in argv]
    assert run([*argv, "--dsn", dsn]) == 2
    line = one_line(capsys)
    assert "run harness migrate first" in line, line
    if before is not None:
        with database.connect(dsn) as conn:
            assert snapshot(conn) == before


# -- 7. secrets -----------------------------------------------------------------------------------

SECRET_DSNS = [
    "host=/nonexistent-harness-socket user=u password='top secret' dbname=d connect_timeout=1",
    r"host=/nonexistent-harness-socket password='it\'s top secret' dbname=d connect_timeout=1",
    "postgresql://u:top%20secret@/d?host=/nonexistent-harness-socket&connect_timeout=1",
    "postgresql://u@/d?host=/nonexistent-harness-socket&password=top%20secret",
    "host=/nonexistent-harness-socket password='top secret",  # unterminated: not a DSN
    "host=/nonexistent-harness-socket password=top secret dbname=d",  # not a DSN either
]


@pytest.mark.parametrize("dsn", SECRET_DSNS)
def test_a_password_is_masked_whole_whatever_the_dsn_form(dsn, capsys, monkeypatch):
    for argv in (["status", "--dsn", dsn], ["migrate", "--dsn", dsn]):
        assert run(argv) == 2
        line = one_line(capsys)
        assert "top" not in line and "secret" not in line, line
    monkeypatch.setenv("HARNESS_DSN", dsn)
    assert run(["status"]) == 2
    line = one_line(capsys)
    assert "top" not in line and "secret" not in line, line
    assert database.redact(dsn).count("***") >= 1
    assert "secret" not in database.redact(dsn)


def test_pgpassword_and_remembered_passwords_are_masked_in_messages_and_logs(monkeypatch):
    import logging

    from harness.cli.common import ScrubSecrets

    monkeypatch.setenv("PGPASSWORD", "pgpass-value-42")
    database.redact("host=x password='remembered secret 7'")
    text = "x pgpass-value-42 y remembered secret 7 z"
    assert database.scrub(text) == "x *** y *** z"
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "sent with %s", ("pgpass-value-42",), None
    )
    assert ScrubSecrets().filter(record) and record.getMessage() == "sent with ***"


def test_the_throwaway_servers_password_never_reaches_the_output(tmp_path):
    tmp = Path(tempfile.mkdtemp(dir="/tmp"))  # the server's account may pass through /tmp
    tmp.chmod(0o711)
    try:
        result = shell("harness db start && harness status --json && harness db stop", tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert result.returncode == 0, result.stderr
    dsn = result.stdout.splitlines()[0]
    password = conninfo_to_dict(dsn)["password"]
    rest = "\n".join(result.stdout.splitlines()[1:])
    assert password not in rest and password not in result.stderr
    assert json.loads(rest[: rest.rindex("}") + 1])["dsn"].count("password=***") == 1


# -- 9 and item 7: the smaller findings ----------------------------------------------------------


def test_version_and_bounds_of_jobs_and_only(capsys):
    with pytest.raises(SystemExit) as info:
        cli(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("harness ")
    for argv in (["verify", "--jobs", "0"], ["verify", "--jobs", "-3"], ["gate", "--jobs", "0"]):
        assert run(argv) == 2
        assert "--jobs" in one_line(capsys)
    for argv in (["verify", "--only", ","], ["gate", "--only", " , "]):
        assert run(argv) == 2
        assert "empty list" in one_line(capsys)


def test_usage_errors_are_one_line(capsys):
    for argv in (["verify", "--no-such-flag"], ["rollback", "--steps", "x"], ["nonsense"]):
        assert run(argv) == 2
        line = one_line(capsys)
        assert line.startswith("harness") and "error:" in line and "--help" in line


def test_lint_pass_evidence_reads_like_a_pass(db, admin_dsn, capsys):
    assert cli(["verify", "--dsn", admin_dsn, "--only", "migrations.lint", "--json", "-"]) == 0
    report, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
    (check,) = report["checks"]
    assert check["status"] == "passed"
    assert "held by" not in check["detail"] and "FAIL" not in check["detail"], check
