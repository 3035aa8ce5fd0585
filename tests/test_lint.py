"""harness lint: squawk with the committed configuration finds nothing in the project's
migrations, finds what it should in a bad one, and the migration timeouts are read back."""

from __future__ import annotations

from conftest import ROOT

from harness.cli import cli
from harness.db.lint import lint, migration_timeouts, run_squawk


def test_project_migrations_pass_squawk_with_the_committed_configuration():
    report = lint()
    assert report.config.endswith("harness/db/squawk.toml")
    assert report.violations == []
    assert all(f.file.endswith(".rollback.sql") for f in report.findings)


def test_an_index_built_without_concurrently_on_an_existing_table_is_a_violation(tmp_path):
    bad = tmp_path / "0100_index.sql"
    bad.write_text("-- depends: 0001_base_schema\nCREATE INDEX leads_email_idx ON leads (email);\n")
    (finding,) = run_squawk([bad])
    assert finding.rule == "require-concurrent-index-creation" and not finding.expected
    assert finding.line == 2


def test_migration_connection_runs_with_lock_and_statement_timeouts(empty_db):
    assert migration_timeouts(empty_db) == {"lock_timeout": "5s", "statement_timeout": "5min"}


def test_a_stale_yoyo_lock_is_reported_with_the_command_that_breaks_it(db, conn, capsys):
    conn.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 2147483647)")
    assert cli(["lint", "--dsn", db]) == 1
    out = capsys.readouterr().out
    assert "stale yoyo lock" in out and "harness break-lock --dsn" in out
    assert (ROOT / "harness" / "db" / "squawk.toml").is_file()
