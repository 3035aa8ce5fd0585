"""Migrations: apply, roll back, re-apply; the privileges they set; the source design's SQL
still applies on top; yoyo's own CLI builds the same schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import ROOT

from harness import db as database
from harness.db.migrations import YOYO_TABLES, Migrator, yoyo_url

FUNCTIONS = (
    "purchase_with_credits(uuid, uuid, uuid[], numeric, numeric)",
    "mark_leads_sold_batch(uuid[])",
)

# A catalog summary, enough to tell two schemas apart (the full fingerprint lives in
# harness.db.fingerprint once it exists).
SCHEMA_QUERY = """
SELECT 'column', c.table_name || '.' || c.column_name || ' ' || c.data_type || ' '
       || coalesce(c.column_default, '') || ' ' || c.is_nullable
FROM information_schema.columns c WHERE c.table_schema = 'public'
UNION ALL
SELECT 'constraint', conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'function', p.oid::regprocedure || ' ' || md5(p.prosrc) || ' '
       || coalesce(p.proconfig::text, '') || ' ' || coalesce(p.proacl::text, '')
       || ' ' || p.prosecdef
FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'trigger', tgname || ' ' || tgrelid::regclass FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'policy', tablename || ' ' || policyname FROM pg_policies WHERE schemaname = 'public'
ORDER BY 1, 2
"""


def schema(dsn: str) -> list[tuple]:
    with database.connect(dsn) as conn:
        return conn.execute(SCHEMA_QUERY).fetchall()


def tables(dsn: str) -> set[str]:
    with database.connect(dsn) as conn:
        return {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }


def objects(dsn: str) -> list[tuple]:
    """Every non-yoyo object in the public schema: relations, functions, types."""
    with database.connect(dsn) as conn:
        return conn.execute("""
            SELECT 'rel', relname FROM pg_class
             WHERE relnamespace = 'public'::regnamespace AND relname NOT LIKE '%%yoyo%%'
            UNION ALL SELECT 'func', proname FROM pg_proc
             WHERE pronamespace = 'public'::regnamespace
            UNION ALL SELECT 'type', typname FROM pg_type
             WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd', 'c')
               AND typname NOT LIKE '%%yoyo%%'
        """).fetchall()


def test_migrate_then_rollback_all_leaves_only_yoyo_bookkeeping(empty_db):
    with Migrator(empty_db) as m:
        applied = m.apply()
        assert applied == [s.id for s in m.status()]
        after_first = schema(empty_db)
        m.rollback(None)
        assert tables(empty_db) == set(YOYO_TABLES)
        assert [o for o in objects(empty_db) if not o[1].startswith("_yoyo")] == []
        assert not any(s.applied for s in m.status())
        m.apply()
        assert schema(empty_db) == after_first


def test_yoyo_cli_builds_the_same_schema_as_harness_migrate(clone_db):
    ours, theirs = clone_db(None), clone_db(None)
    result = subprocess.run(
        [sys.executable, "-m", "harness", "migrate", "--dsn", ours],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    yoyo = subprocess.run(
        [
            str(Path(sys.executable).parent / "yoyo"),
            "apply",
            "--batch",
            "--database",
            yoyo_url(theirs),
            str(ROOT / "migrations"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert yoyo.returncode == 0, yoyo.stderr
    assert schema(ours) == schema(theirs)
    assert len(schema(ours)) > 50


@pytest.mark.parametrize("role", ["public", "anon", "authenticated"])
@pytest.mark.parametrize("function", FUNCTIONS)
def test_api_roles_cannot_execute_the_money_functions(conn, role, function):
    assert (
        conn.execute(
            "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, function)
        ).fetchone()[0]
        is False
    )
    assert (
        conn.execute(
            "SELECT has_function_privilege('service_role', %s, 'EXECUTE')", (function,)
        ).fetchone()[0]
        is True
    )


def test_set_role_anon_cannot_call_purchase_with_credits(conn, world):
    ws, (user,) = world.workspace(balance="5.00")
    leads = world.leads(1)
    conn.execute("SET ROLE anon")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "SELECT * FROM purchase_with_credits(%s, %s, %s::uuid[], 1.00, 1.00)", (ws, user, leads)
        )
    conn.execute("RESET ROLE")
    assert world.balance(ws) == 5


def test_service_role_can_purchase_under_row_level_security(conn, world):
    ws, (user,) = world.workspace(balance="5.00")
    leads = world.leads(1)
    conn.execute("SET ROLE service_role")
    row = conn.execute(
        "SELECT * FROM purchase_with_credits(%s, %s, %s::uuid[], 1.00, 1.00)", (ws, user, leads)
    ).fetchone()
    conn.execute("RESET ROLE")
    assert row[0] is True


def test_every_function_pins_its_search_path(conn):
    unpinned = conn.execute("""
        SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND NOT coalesce(array_to_string(p.proconfig, ',') LIKE '%%search_path=%%', false)
    """).fetchall()
    assert unpinned == []


def test_source_design_sql_as_written_applies_and_runs_on_the_base_schema(empty_db):
    with Migrator(empty_db) as m:
        m.backend.apply_one(m.migrations[0])  # the base schema alone
    spec = (ROOT / "examples/seed_as_written/0100_seed_as_written.sql").read_text()
    with database.connect(empty_db) as conn:
        conn.execute(spec)
        ws = conn.execute("INSERT INTO workspaces (name) VALUES ('w') RETURNING id").fetchone()[0]
        user = conn.execute("INSERT INTO users (email) VALUES ('a@b.c') RETURNING id").fetchone()[0]
        conn.execute("SELECT add_credits(%s, 10.00, 'p')", (ws,))
        lead = conn.execute(
            "INSERT INTO leads (marketplace_price) VALUES (1.00) RETURNING id"
        ).fetchone()[0]
        row = conn.execute(
            "SELECT * FROM purchase_with_credits(%s, %s, ARRAY[%s]::uuid[], 1.00, 1.00)",
            (ws, user, lead),
        ).fetchone()
        assert row[0] is True and row[2] == 9
        assert (
            conn.execute("SELECT mark_leads_sold_batch(ARRAY[%s]::uuid[])", (lead,)).fetchone()[0]
            == 1
        )
        # As written, the functions are executable by anyone: the defect 0002 fixes.
        assert (
            conn.execute(
                "SELECT has_function_privilege('anon', "
                "'purchase_with_credits(uuid,uuid,uuid[],numeric,numeric)', "
                "'EXECUTE')"
            ).fetchone()[0]
            is True
        )


def test_source_design_sql_layers_over_the_project_migrations(empty_db):
    dirs = [ROOT / "migrations", ROOT / "examples/seed_as_written"]
    with Migrator(empty_db, dirs) as m:
        assert m.apply()[-1] == "0100_seed_as_written"
    with database.connect(empty_db) as conn:
        config = conn.execute(
            "SELECT proconfig FROM pg_proc WHERE proname = 'purchase_with_credits'"
        ).fetchone()[0]
        assert config is None  # CREATE OR REPLACE dropped the pinned search_path
