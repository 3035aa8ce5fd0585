"""Partner lead import: the spec's limits and messages, all or nothing, COPY for loading."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from conftest import snapshot

from harness.cli import cli
from harness.config import ERROR_MESSAGES, INDUSTRIES, MARKETPLACE_CONFIG
from harness.drivers.leads_import import ImportRejected, import_leads, read_leads_csv

HEADER = "email,company,industry,state,price,intent_score,freshness_score,max_sales\n"


def good_rows(n: int, start: int = 0) -> str:
    return "".join(
        f"lead{i}@example.com,Company {i},{INDUSTRIES[i % len(INDUSTRIES)]},CA,"
        f"{1 + i % 5}.25,{i % 101},{100 - i % 101},{'' if i % 2 else 3}\n"
        for i in range(start, start + n)
    )


@pytest.fixture
def csv_file(tmp_path: Path):
    def make(text: str, name: str = "leads.csv") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return make


@pytest.fixture
def partner(world):
    world.partner("acme")
    return "acme"


def rejected(path: Path) -> ImportRejected:
    with pytest.raises(ImportRejected) as info:
        read_leads_csv(path)
    return info.value


def test_good_file_is_loaded_with_every_field(conn, csv_file, partner):
    path = csv_file(
        HEADER + "ann@example.com,Acme Corp,healthcare,ny,2.50,80,90,2\n"
        "bob@example.com,,Finance,TX,0.05,,,\n"
    )
    result = import_leads(conn, path, partner)
    assert result.rows == 2
    rows = conn.execute(
        "SELECT l.email, company, industry, state, marketplace_price, intent_score_calculated, "
        "freshness_score, max_sales, p.name FROM leads l JOIN partners p ON p.id = partner_id "
        "ORDER BY email"
    ).fetchall()
    assert rows == [
        ("ann@example.com", "Acme Corp", "Healthcare", "NY", Decimal("2.50"), 80, 90, 2, "acme"),
        (
            "bob@example.com",
            None,
            "Finance",
            "TX",
            Decimal("0.05"),
            MARKETPLACE_CONFIG["DEFAULT_INTENT_SCORE"],
            MARKETPLACE_CONFIG["DEFAULT_FRESHNESS_SCORE"],
            None,
            "acme",
        ),
    ]


def test_columns_may_come_in_any_order_and_optional_ones_may_be_left_out(conn, csv_file, partner):
    path = csv_file("price,state,industry,email\n1.00,WA,Retail,x@example.com\n")
    assert import_leads(conn, path, partner).rows == 1


def test_ten_thousand_rows_load_in_one_copy(conn, csv_file, partner):
    limit = MARKETPLACE_CONFIG["MAX_CSV_ROWS"]
    path = csv_file(HEADER + good_rows(limit))
    result = import_leads(conn, path, partner)
    assert result.rows == limit
    assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == limit
    # reported, not asserted
    print(f"\nimported {limit} rows in {result.seconds:.3f}s (COPY {result.copy_seconds:.3f}s)")


def test_every_bad_row_is_reported_by_line_and_nothing_is_written(conn, csv_file, partner):
    before = snapshot(conn)
    path = csv_file(
        HEADER
        + good_rows(2)  # lines 2-3
        + "bad@example.com,X,Astrology,CA,1.00,,,\n"  # 4 industry
        + "bad2@example.com,X,Retail,ZZ,1.00,,,\n"  # 5 state
        + "\n"  # 6 blank: skipped
        + "not-an-email,X,Retail,CA,1.00,,,\n"  # 7 email
        + "p@example.com,X,Retail,CA,1.001,,,\n"  # 8 price decimals
        + "q@example.com,X,Retail,CA,0.01,,,\n"  # 9 below the minimum
        + "r@example.com,X,Retail,CA,1.00,101,,\n"  # 10 score range
        + "s@example.com,X,Retail,CA,1.00,,,0\n"  # 11 max_sales
        + "lead0@example.com,X,Retail,CA,1.00,,,\n"  # 12 duplicate of line 2
        + "t@example.com,X,Retail\n"  # 13 short row
        + ',"two\nlines",Retail,CA,,,,\n'  # 14-15 empty email, price
    )
    exc = rejected(path)
    lines = [(p.line, p.message) for p in exc.problems]
    assert [n for n, _ in lines] == [4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 14]
    messages = dict(lines[:2])
    assert messages[4] == ERROR_MESSAGES["INVALID_INDUSTRY"]("Astrology", INDUSTRIES)
    assert messages[5] == ERROR_MESSAGES["INVALID_STATE"]("ZZ")
    assert "already on line 2" in dict(lines)[12]
    assert "expected 8 fields, found 3" in dict(lines)[13]
    with pytest.raises(ImportRejected):
        import_leads(conn, path, partner)
    assert snapshot(conn) == before


def test_a_file_that_is_not_csv_is_refused(csv_file):
    exc = rejected(csv_file(HEADER, name="leads.xlsx"))
    assert exc.message == ERROR_MESSAGES["INVALID_FILE_TYPE"]


def test_a_binary_file_named_csv_is_refused(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert ERROR_MESSAGES["INVALID_FILE_TYPE"] in rejected(path).message


def test_a_file_over_the_size_limit_is_refused_with_its_size(csv_file):
    limit = MARKETPLACE_CONFIG["MAX_FILE_SIZE_MB"] * 1024 * 1024
    path = csv_file(HEADER + "x" * limit)
    size_mb = path.stat().st_size / (1024 * 1024)
    exc = rejected(path)
    assert exc.message == ERROR_MESSAGES["FILE_TOO_LARGE"](size_mb)
    assert "10.00 MB" in exc.message


def test_a_file_at_the_size_limit_is_accepted_by_the_size_check(csv_file):
    limit = MARKETPLACE_CONFIG["MAX_FILE_SIZE_MB"] * 1024 * 1024
    body = HEADER + good_rows(1)
    pad = limit - len(body)
    blank = " " * 99_999 + "\n"  # blank lines are skipped
    path = csv_file(body + blank * (pad // len(blank)) + "\n" * (pad % len(blank)))
    assert path.stat().st_size == limit
    assert len(read_leads_csv(path)) == 1


def test_more_rows_than_the_limit_are_refused_with_the_count(csv_file):
    limit = MARKETPLACE_CONFIG["MAX_CSV_ROWS"]
    exc = rejected(csv_file(HEADER + good_rows(limit + 1)))
    assert exc.message == ERROR_MESSAGES["TOO_MANY_ROWS"](limit + 1)
    assert "10,001 rows" in exc.message


def test_unknown_and_missing_columns_are_named(csv_file):
    exc = rejected(csv_file("email,colour,price\na@example.com,red,1.00\n"))
    assert "unknown column(s) 'colour'" in exc.message
    assert "missing column(s) 'industry', 'state'" in exc.message


def test_an_empty_file_and_a_header_only_file_are_refused(csv_file):
    assert "empty" in rejected(csv_file("")).message
    assert "no leads" in rejected(csv_file(HEADER)).message


def test_unknown_partner_is_a_clear_error_and_writes_nothing(conn, csv_file, partner):
    before = snapshot(conn)
    with pytest.raises(Exception) as info:
        import_leads(conn, csv_file(HEADER + good_rows(3)), "nobody")
    assert "no partner named 'nobody'" in str(info.value)
    assert snapshot(conn) == before


def test_command_imports_a_good_file(db, conn, csv_file, partner, capsys):
    path = csv_file(HEADER + good_rows(5))
    assert cli(["leads", "import", str(path), "--partner", partner, "--dsn", db]) == 0
    assert "imported 5 lead(s) for partner acme" in capsys.readouterr().out
    assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == 5


def test_command_lists_every_bad_line_and_exits_nonzero(db, conn, csv_file, partner, capsys):
    path = csv_file(
        HEADER
        + good_rows(1)
        + "a@example.com,X,Retail,QQ,1.00,,,\n"
        + "b@example.com,X,Nope,CA,1.00,,,\n"
    )
    code = cli(["leads", "import", str(path), "--partner", partner, "--dsn", db])
    err = capsys.readouterr().err
    assert code == 2
    assert "line 3: " + ERROR_MESSAGES["INVALID_STATE"]("QQ") in err
    assert "line 4: " in err and "Nope" in err
    assert "nothing was imported" in err
    assert conn.execute("SELECT count(*) FROM leads").fetchone()[0] == 0


def test_command_with_unknown_partner_exits_nonzero(db, csv_file, capsys):
    code = cli(
        ["leads", "import", str(csv_file(HEADER + good_rows(1))), "--partner", "ghost", "--dsn", db]
    )
    assert code == 2
    assert "no partner named 'ghost'" in capsys.readouterr().err
