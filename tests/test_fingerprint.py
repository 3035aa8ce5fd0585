"""Schema fingerprints: equal for databases built alike, and every kind of change named in
a sentence a reviewer would write."""

from __future__ import annotations

import pytest

from harness import db as database
from harness.db.fingerprint import diff, digest, fingerprint, fingerprint_dsn
from harness.db.migrations import Migrator

PWC = "purchase_with_credits(uuid, uuid, uuid[], numeric, numeric)"
PWC_SIG = PWC


@pytest.fixture(autouse=True)
def _dsn_not_provider(monkeypatch):
    """HARNESS_POSTGRES chose the test server; the CLI refuses it next to --dsn."""
    monkeypatch.delenv("HARNESS_POSTGRES", raising=False)


def test_two_databases_migrated_alike_have_the_same_fingerprint(clone_db):
    first, second = clone_db(None), clone_db(None)
    for dsn in (first, second):
        with Migrator(dsn) as m:
            m.apply()
    a, b = fingerprint_dsn(first), fingerprint_dsn(second)
    assert diff(a, b) == []
    assert digest(a) == digest(b)
    assert PWC in a["functions"]
    assert len(a["columns"]) > 80


def test_fingerprint_leaves_out_yoyo_bookkeeping(conn):
    fp = fingerprint(conn)
    names = [key for section in fp.values() for key in section]
    assert not [n for n in names if "yoyo" in n]


def test_fingerprint_reads_function_security_attributes(conn):
    attrs = fingerprint(conn)["functions"][PWC]
    assert attrs["config"] == ["search_path=pg_catalog, pg_temp"]
    assert attrs["security_definer"] is False
    assert "PUBLIC" not in attrs["grants"]
    assert attrs["grants"]["service_role"] == ["EXECUTE"]
    assert attrs["language"] == "plpgsql"


CHANGES = [
    ("ALTER TABLE leads DROP COLUMN company", "table leads: column company missing"),
    ("ALTER TABLE leads ADD COLUMN note text", "table leads: column note added"),
    (
        "ALTER TABLE leads ALTER COLUMN sold_count TYPE bigint",
        "table leads: column sold_count type changed from integer to bigint",
    ),
    (
        "ALTER TABLE leads ALTER COLUMN for_sale DROP DEFAULT",
        "table leads: column for_sale default true dropped",
    ),
    ("ALTER TABLE leads ALTER COLUMN email SET NOT NULL", "table leads: column email now NOT NULL"),
    (
        "ALTER TABLE leads DROP CONSTRAINT leads_sold_within_max_sales",
        "table leads: constraint leads_sold_within_max_sales missing",
    ),
    ("DROP INDEX leads_partner_id_idx", "index leads_partner_id_idx: missing"),
    (
        "ALTER TYPE purchase_status ADD VALUE 'disputed'",
        'type purchase_status: labels changed from ["pending", "completed", "refunded"] '
        'to ["pending", "completed", "refunded", "disputed"]',
    ),
    (
        "ALTER SEQUENCE credit_ledger_id_seq INCREMENT BY 2",
        "sequence credit_ledger_id_seq: increment changed from 1 to 2",
    ),
    (
        f"GRANT EXECUTE ON FUNCTION {PWC_SIG} TO PUBLIC",
        f"function {PWC}: EXECUTE granted to PUBLIC",
    ),
    (
        f"REVOKE EXECUTE ON FUNCTION {PWC_SIG} FROM service_role",
        f"function {PWC}: EXECUTE revoked from service_role",
    ),
    (
        f"ALTER FUNCTION {PWC_SIG} RESET search_path",
        f"function {PWC}: search_path no longer pinned",
    ),
    (
        f"ALTER FUNCTION {PWC_SIG} SET search_path = public",
        f"function {PWC}: search_path changed from pg_catalog, pg_temp to public",
    ),
    (f"ALTER FUNCTION {PWC_SIG} SECURITY DEFINER", f"function {PWC}: now SECURITY DEFINER"),
    (
        "ALTER FUNCTION mark_leads_sold_batch(uuid[]) STABLE",
        "function mark_leads_sold_batch(uuid[]): volatility changed from volatile to stable",
    ),
    (
        "CREATE OR REPLACE FUNCTION record_purchase_in_ledger() RETURNS trigger "
        "LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$BEGIN RETURN NULL; END$$",
        "function record_purchase_in_ledger(): body changed",
    ),
    (
        "DROP FUNCTION mark_leads_sold_batch(uuid[])",
        "function mark_leads_sold_batch(uuid[]): missing",
    ),
    (
        "ALTER TABLE marketplace_purchases DISABLE TRIGGER marketplace_purchases_ledger",
        "table marketplace_purchases: trigger marketplace_purchases_ledger enabled changed "
        "from enabled to disabled",
    ),
    ("GRANT SELECT ON leads TO anon", "table leads: SELECT granted to anon"),
    ("ALTER TABLE leads DISABLE ROW LEVEL SECURITY", "table leads: row level security disabled"),
    ("ALTER TABLE leads FORCE ROW LEVEL SECURITY", "table leads: row level security forced"),
    ("DROP POLICY service_role_all ON leads", "table leads: policy service_role_all missing"),
    (
        "ALTER POLICY service_role_all ON leads TO service_role, authenticated",
        'table leads: policy service_role_all roles changed from ["service_role"] to '
        '["authenticated", "service_role"]',
    ),
]


@pytest.mark.parametrize("change, sentence", CHANGES, ids=[c[1][:60] for c in CHANGES])
def test_each_kind_of_change_is_named_in_one_sentence(conn, change, sentence):
    before = fingerprint(conn)
    conn.execute(change)
    assert diff(before, fingerprint(conn)) == [sentence]


def test_a_new_owner_is_named_with_the_privileges_that_moved(conn):
    before = fingerprint(conn)
    conn.execute("ALTER FUNCTION mark_leads_sold_batch(uuid[]) OWNER TO service_role")
    owner = conn.execute("SELECT current_user").fetchone()[0]
    assert diff(before, fingerprint(conn)) == [
        f"function mark_leads_sold_batch(uuid[]): EXECUTE revoked from {owner}",
        f"function mark_leads_sold_batch(uuid[]): owner changed from {owner} to service_role",
    ]


def test_dropping_a_column_names_it_and_what_went_with_it(conn):
    before = fingerprint(conn)
    conn.execute("ALTER TABLE leads DROP COLUMN max_sales CASCADE")
    sentences = diff(before, fingerprint(conn))
    assert sentences[0] == "table leads: column max_sales missing"
    assert "table leads: constraint leads_sold_within_max_sales missing" in sentences


def test_a_column_dropped_and_re_added_is_reported_as_moved(conn):
    before = fingerprint(conn)
    conn.execute("ALTER TABLE leads DROP COLUMN company")
    conn.execute("ALTER TABLE leads ADD COLUMN company text")
    (sentence,) = diff(before, fingerprint(conn))
    assert sentence.startswith(
        "table leads: column order changed from id, partner_id, email, company, industry"
    )


def test_diff_appends_when_the_change_was_seen(conn):
    before = fingerprint(conn)
    conn.execute(f"GRANT EXECUTE ON FUNCTION {PWC_SIG} TO PUBLIC")
    assert diff(before, fingerprint(conn), "after rollback") == [
        f"function {PWC}: EXECUTE granted to PUBLIC after rollback"
    ]


def test_schema_fingerprint_command_prints_objects_and_a_hash(db, capsys):
    from harness.cli import cli

    assert cli(["schema", "fingerprint", "--dsn", db]) == 0
    out = capsys.readouterr().out
    assert f"function {PWC}:" in out
    with database.connect(db) as conn:
        assert out.strip().splitlines()[-1] == f"fingerprint {digest(fingerprint(conn))}"
