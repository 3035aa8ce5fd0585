"""`harness partners add` makes the partner a lead import needs; `harness leads import`
imports a file once however often it is run (leads already present for the partner and
email are skipped and counted), and refuses amounts that are not plain decimals."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import snapshot

from harness import db as database
from harness.cli import cli
from harness.drivers.leads_import import import_leads

HEADER = "email,industry,state,price\n"


def run(argv: list[str]) -> int:
    try:
        return cli(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def partners(conn) -> list[tuple]:
    return conn.execute(
        "SELECT name, base_commission_rate, bonus_commission_rate, verification_pass_rate "
        "FROM partners ORDER BY name"
    ).fetchall()


def test_partners_add_creates_a_partner_and_a_second_identical_add_changes_nothing(
    db, conn, capsys
):
    argv = ["partners", "add", "Acme Leads", "--base-rate", "0.3", "--bonus-rate", "0.05"]
    assert cli([*argv, "--pass-rate", "0.97", "--dsn", db]) == 0
    assert "added partner Acme Leads" in capsys.readouterr().out
    expected = [("Acme Leads", Decimal("0.3000"), Decimal("0.0500"), Decimal("0.9700"))]
    assert partners(conn) == expected
    assert cli([*argv, "--pass-rate", "0.97", "--dsn", db]) == 0
    assert "already present" in capsys.readouterr().out
    before = snapshot(conn)
    assert cli([*argv, "--pass-rate", "0.5", "--dsn", db]) == 1
    assert "exists with other rates" in last_error(capsys)
    assert snapshot(conn) == before


@pytest.mark.parametrize(
    "rate", ["1.5", "-0.1", "0.12345", "abc", "1e-1", "NaN", "inf", "", "0x1", "\x01"]
)
def test_a_rate_that_is_not_a_decimal_from_0_to_1_is_a_usage_error(db, conn, capsys, rate):
    before = snapshot(conn)
    assert run(["partners", "add", "p", "--base-rate", rate, "--dsn", db]) == 2
    line = last_error(capsys)
    assert "--base-rate" in line and len(capsys.readouterr().err) == 0
    assert snapshot(conn) == before


def test_a_partner_name_must_be_printable_and_bounded(db, conn, capsys):
    before = snapshot(conn)
    for name in ("x" * 201, "bad\tname", "   ", "\udcff"):
        assert run(["partners", "add", name, "--base-rate", "0.1", "--dsn", db]) == 2
        line = last_error(capsys)
        assert "partner name" in line or "NAME: holds a character" in line, line
    assert snapshot(conn) == before


def leads_of(conn, partner: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT l.email FROM leads l JOIN partners p ON p.id = l.partner_id "
            "WHERE p.name = %s ORDER BY l.email",
            (partner,),
        )
    ]


def test_importing_the_same_file_twice_imports_it_once_and_says_so(db, conn, tmp_path, capsys):
    assert cli(["partners", "add", "acme", "--base-rate", "0.3", "--dsn", db]) == 0
    path = tmp_path / "leads.csv"
    path.write_text(HEADER + "ann@example.com,Finance,CA,2.50\nbob@example.com,Retail,NY,1.00\n")
    assert cli(["leads", "import", str(path), "--partner", "acme", "--dsn", db]) == 0
    assert "imported 2 lead(s)" in capsys.readouterr().out
    assert cli(["leads", "import", str(path), "--partner", "acme", "--dsn", db]) == 0
    out = capsys.readouterr().out
    assert "imported 0 lead(s)" in out and "skipped 2 already present" in out
    # Another letter case is the same address; a new one is imported.
    path.write_text(HEADER + "ANN@example.com,Finance,CA,2.50\ncy@example.com,Retail,TX,1.00\n")
    assert cli(["leads", "import", str(path), "--partner", "acme", "--dsn", db]) == 0
    out = capsys.readouterr().out
    assert "imported 1 lead(s)" in out and "skipped 1 already present" in out
    assert leads_of(conn, "acme") == ["ann@example.com", "bob@example.com", "cy@example.com"]
    # The same address for another partner is another lead.
    assert cli(["partners", "add", "other", "--base-rate", "0.2", "--dsn", db]) == 0
    assert cli(["leads", "import", str(path), "--partner", "other", "--dsn", db]) == 0
    assert leads_of(conn, "other") == ["ANN@example.com", "cy@example.com"]


def test_two_imports_of_one_file_at_once_import_it_once(db, conn, tmp_path, world):
    world.partner("acme")
    path = tmp_path / "leads.csv"
    path.write_text(HEADER + "".join(f"l{i}@example.com,Finance,CA,1.00\n" for i in range(50)))
    blocker = database.connect(db)
    results: list[object] = [None, None]
    try:
        blocker.execute("BEGIN")
        blocker.execute("SELECT FROM partners WHERE name = 'acme' FOR NO KEY UPDATE")

        def go(i: int) -> None:
            with database.connect(db) as c:
                results[i] = import_leads(c, path, "acme")

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        # Both imports are under way at once, waiting for the partner's row.
        deadline = time.monotonic() + 30
        while (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ).fetchone()[0]
            < 2
        ):
            assert time.monotonic() < deadline, "the two imports never overlapped"
            time.sleep(0.01)
        blocker.execute("COMMIT")
        for t in threads:
            t.join(60)
    finally:
        blocker.close()
    assert sorted((r.rows, r.skipped) for r in results) == [(0, 50), (50, 0)]
    assert len(leads_of(conn, "acme")) == 50


@pytest.mark.parametrize("price", ["1e400", "1e2", "NaN", "Infinity", "1e-2", "2.505", "1,50"])
def test_a_csv_amount_that_is_not_a_plain_decimal_is_refused_and_nothing_changes(
    db, conn, world, tmp_path, capsys, price
):
    world.partner("acme")
    path = tmp_path / "leads.csv"
    quoted = f'"{price}"' if "," in price else price
    path.write_text(HEADER + f"ann@example.com,Finance,CA,{quoted}\n")
    before = snapshot(conn)
    assert run(["leads", "import", str(path), "--partner", "acme", "--dsn", db]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "line 2: price" in err, err
    assert snapshot(conn) == before


def test_a_dollar_sign_is_still_allowed(db, conn, world, tmp_path):
    world.partner("acme")
    path = Path(tmp_path / "leads.csv")
    path.write_text(HEADER + "ann@example.com,Finance,CA,$2.50\n")
    assert cli(["leads", "import", str(path), "--partner", "acme", "--dsn", db]) == 0
    price = conn.execute("SELECT marketplace_price FROM leads").fetchone()[0]
    assert price == Decimal("2.50")
