"""Partner lead import: a CSV file checked whole, then loaded with one COPY, or not at all;
and the partners leads come from (:func:`add_partner`).

The file must be a ``.csv`` of at most ``MAX_FILE_SIZE_MB`` and ``MAX_CSV_ROWS`` data rows,
UTF-8, with a header naming its columns (:data:`COLUMNS`; order free, unknown names
refused). Every row is checked before anything is written; when any row is bad the import
is refused with every bad row's line number and nothing changes. A lead already present
for the same partner and email (any letter case) is skipped and counted, so importing a
file twice imports it once; two imports for one partner take turns on the partner's row.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import psycopg

from harness import values
from harness.config import ERROR_MESSAGES, INDUSTRIES, MARKETPLACE_CONFIG, US_STATES
from harness.db import fetch_all, query
from harness.errors import HarnessError, ImportRejected, UsageError

# column -> (required, what it holds)
COLUMNS: dict[str, tuple[bool, str]] = {
    "email": (True, "the lead's email address"),
    "company": (False, "company name (may be empty)"),
    "industry": (True, "one of config.INDUSTRIES, any letter case"),
    "state": (True, "two-letter US state code, any letter case"),
    "price": (
        True,
        "marketplace price in dollars, at most two decimals, at least "
        f"{MARKETPLACE_CONFIG['MIN_MARKETPLACE_PRICE']}",
    ),
    "intent_score": (
        False,
        f"whole number 0-100; empty: {MARKETPLACE_CONFIG['DEFAULT_INTENT_SCORE']}",
    ),
    "freshness_score": (
        False,
        f"whole number 0-100; empty: {MARKETPLACE_CONFIG['DEFAULT_FRESHNESS_SCORE']}",
    ),
    "max_sales": (False, "how many workspaces may buy it, at least 1; empty: unlimited"),
}
REQUIRED = tuple(name for name, (required, _) in COLUMNS.items() if required)
# A loose shape check; deliverability is not the importer's business.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TEXT = 320
_INDUSTRY_BY_KEY = {name.casefold(): name for name in INDUSTRIES}


@dataclass(frozen=True)
class RowProblem:
    """One bad row: its line in the file and what is wrong with it."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class LeadRow:
    """A checked row, ready for COPY."""

    line: int
    email: str
    company: str | None
    industry: str
    state: str
    price: Decimal
    intent_score: int
    freshness_score: int
    max_sales: int | None


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote."""

    partner: str
    rows: int  # leads written
    seconds: float  # reading and checking the file included
    copy_seconds: float  # the COPY and its commit alone
    skipped: int = 0  # leads of the file already present for the partner


def check_file(path: Path) -> None:
    """The file-level limits: type, existence, size."""
    if path.suffix.lower() != ".csv":
        raise ImportRejected(ERROR_MESSAGES["INVALID_FILE_TYPE"])
    if not path.is_file():
        raise ImportRejected(f"file not found: {path}")
    size = path.stat().st_size
    limit = MARKETPLACE_CONFIG["MAX_FILE_SIZE_MB"] * 1024 * 1024
    if size > limit:
        raise ImportRejected(ERROR_MESSAGES["FILE_TOO_LARGE"](size / (1024 * 1024)))


def read_leads_csv(path: str | Path) -> list[LeadRow]:
    """Every row of the file, checked; ImportRejected listing every bad row otherwise."""
    path = Path(path)
    check_file(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected(
            f"{ERROR_MESSAGES['INVALID_FILE_TYPE']} (not UTF-8 text: byte {exc.start})"
        ) from exc
    if "\x00" in text:
        raise ImportRejected(ERROR_MESSAGES["INVALID_FILE_TYPE"])

    records = list(_records(text))
    if not records:
        raise ImportRejected("the file is empty: expected a header line naming the columns")
    (_, header), body = records[0], records[1:]
    columns = [h.strip().lower() for h in header]
    _check_header(columns)
    if len(body) > MARKETPLACE_CONFIG["MAX_CSV_ROWS"]:
        raise ImportRejected(ERROR_MESSAGES["TOO_MANY_ROWS"](len(body)))
    if not body:
        raise ImportRejected("the file holds a header but no leads")

    rows: list[LeadRow] = []
    problems: list[RowProblem] = []
    first_line_of_email: dict[str, int] = {}
    for line, fields in body:
        if len(fields) != len(columns):
            problems.append(
                RowProblem(line, f"expected {len(columns)} fields, found {len(fields)}")
            )
            continue
        values = {c: f.strip() for c, f in zip(columns, fields, strict=True)}
        row, errors = _check_row(line, values)
        problems.extend(RowProblem(line, e) for e in errors)
        if row is None:
            continue
        key = row.email.casefold()
        if key in first_line_of_email:
            problems.append(
                RowProblem(
                    line, f"email {row.email!r} is already on line {first_line_of_email[key]}"
                )
            )
            continue
        first_line_of_email[key] = line
        rows.append(row)
    if problems:
        raise ImportRejected(
            f"{path.name}: {len(problems)} problem(s) in the rows; nothing was imported",
            problems,
        )
    return rows


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields); blank lines skipped."""
    reader = csv.reader(text.splitlines(keepends=True))
    end = 0
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            if fields and any(f.strip() for f in fields):
                yield start, fields
    except csv.Error as exc:
        raise ImportRejected(f"line {reader.line_num}: not valid CSV: {exc}") from exc


def _check_header(columns: list[str]) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in REQUIRED if c not in columns]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
    if missing:
        problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
    if dupes:
        problems.append(f"column(s) named twice {', '.join(map(repr, dupes))}")
    if problems:
        raise ImportRejected(
            f"line 1: {'; '.join(problems)}. Columns: {', '.join(COLUMNS)} "
            f"(required: {', '.join(REQUIRED)})"
        )


def _check_row(line: int, v: dict[str, str]) -> tuple[LeadRow | None, list[str]]:
    errors: list[str] = []
    for name in REQUIRED:
        if not v.get(name):
            errors.append(f"{name} is empty")

    email = v.get("email", "")
    if email and (len(email) > MAX_TEXT or not EMAIL_RE.match(email)):
        errors.append(f"{email!r} is not an email address")
    company = v.get("company") or None
    if company and len(company) > MAX_TEXT:
        errors.append(f"company is longer than {MAX_TEXT} characters")

    industry = _INDUSTRY_BY_KEY.get(v.get("industry", "").casefold())
    if v.get("industry") and industry is None:
        errors.append(ERROR_MESSAGES["INVALID_INDUSTRY"](v["industry"], INDUSTRIES))
    state = v.get("state", "").upper()
    if v.get("state") and state not in US_STATES:
        errors.append(ERROR_MESSAGES["INVALID_STATE"](v["state"]))

    price = _price(v.get("price", ""), errors)
    intent = _whole(v, "intent_score", 0, 100, MARKETPLACE_CONFIG["DEFAULT_INTENT_SCORE"], errors)
    fresh = _whole(
        v, "freshness_score", 0, 100, MARKETPLACE_CONFIG["DEFAULT_FRESHNESS_SCORE"], errors
    )
    max_sales = _whole(v, "max_sales", 1, 2**31 - 1, None, errors)
    if errors:
        return None, errors
    return LeadRow(
        line,
        email,
        company,
        industry or "",
        state,
        price or Decimal(0),
        intent or 0,
        fresh or 0,
        max_sales,
    ), []


def _price(text: str, errors: list[str]) -> Decimal | None:
    """A plain decimal with at most two places (a leading ``$`` allowed): exponents,
    ``NaN`` and amounts beyond numeric(10,2) are refused, never rounded."""
    if not text:
        return None
    shown = text if len(text) <= 40 else text[:37] + "..."
    lowest = MARKETPLACE_CONFIG["MIN_MARKETPLACE_PRICE"]
    try:
        price = values.amount(text.removeprefix("$"))
    except ValueError as exc:
        if "fractions of a cent" in str(exc):
            errors.append(f"price {shown!r} must have at most two decimals")
        elif "more than" in str(exc) or "at least" in str(exc):
            errors.append(
                f"price {shown!r} must be between {lowest} and {MARKETPLACE_CONFIG['MAX_AMOUNT']}"
            )
        else:
            errors.append(f"price {shown!r} is not an amount: {exc}")
        return None
    if price < lowest:
        errors.append(
            f"price {shown!r} must be between {lowest} and {MARKETPLACE_CONFIG['MAX_AMOUNT']}"
        )
        return None
    return price


def _whole(
    v: dict[str, str], name: str, low: int, high: int, default: int | None, errors: list[str]
) -> int | None:
    text = v.get(name, "")
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        errors.append(f"{name} {text!r} must be a whole number from {low} to {high}")
        return None
    return int(text)


def import_leads(conn: psycopg.Connection, path: str | Path, partner: str) -> ImportResult:
    """Check the file, then load its rows for ``partner`` in one transaction: COPY into a
    temporary table, then insert those whose email the partner does not have yet."""
    started = time.perf_counter()
    rows = read_leads_csv(path)
    present = fetch_all(conn, "leads_import", "leads_table_exists")[0]["present"]
    if not present:
        raise UsageError("the database has no leads table: run harness migrate first")
    copy_started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        # Two imports for one partner take turns, so neither misses the other's leads.
        found = fetch_all(conn, "leads_import", "lock_partner", {"name": partner})
        if not found:
            raise UsageError(f"no partner named {partner!r}: nothing was imported")
        partner_id = found[0]["id"]
        cur.execute(query("leads_import", "create_staging"))
        with cur.copy(query("leads_import", "copy_staged")) as copy:
            for r in rows:
                copy.write_row(_copy_values(partner_id, r))
        cur.execute(query("leads_import", "insert_new"))
        written = cur.rowcount
    done = time.perf_counter()
    return ImportResult(partner, written, done - started, done - copy_started, len(rows) - written)


@dataclass(frozen=True)
class Partner:
    """A partner and its commission rates."""

    name: str
    base_rate: Decimal
    bonus_rate: Decimal
    pass_rate: Decimal
    created: bool  # False: it was there already, with these rates


def rate(text: str) -> Decimal:
    """A commission or pass rate: a plain decimal in [0, 1] with at most four places
    (``partners`` stores numeric(5,4))."""
    raw = str(text).strip()
    if len(raw) > 20 or not re.fullmatch(r"(\d+(\.\d*)?|\.\d+)", raw):
        raise ValueError(f"not a rate: {raw[:20]!r} (a decimal from 0 to 1, e.g. 0.30)")
    try:
        value = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"not a rate: {raw!r}") from None
    if value > 1:
        raise ValueError(f"must be at most 1: {raw!r}")
    if value != value.quantize(Decimal("0.0001")):
        raise ValueError(f"at most four decimal places: {raw!r}")
    return value.quantize(Decimal("0.0001"))


MAX_PARTNER_NAME = 200


def add_partner(
    conn: psycopg.Connection,
    name: str,
    base_rate: Decimal,
    bonus_rate: Decimal = Decimal(0),
    pass_rate: Decimal = Decimal(0),
) -> Partner:
    """Create the partner ``name``. Adding one that exists with the same rates changes
    nothing (a pipeline may run it twice); with other rates it is refused."""
    name = name.strip()
    if not name or len(name) > MAX_PARTNER_NAME or not name.isprintable():
        raise UsageError(
            f"a partner name is 1 to {MAX_PARTNER_NAME} printable characters: {name[:40]!r}"
        )
    present = fetch_all(conn, "leads_import", "leads_table_exists")[0]["present"]
    if not present:
        raise UsageError("the database has no partners table: run harness migrate first")
    wanted = (base_rate, bonus_rate, pass_rate)
    params = {"name": name, "base": base_rate, "bonus": bonus_rate, "pass_rate": pass_rate}
    with conn.transaction():
        made = fetch_all(conn, "leads_import", "insert_partner", params)
        if made:
            return Partner(name, *wanted, created=True)
        have = fetch_all(conn, "leads_import", "lock_partner", {"name": name})[0]
    rates = tuple(
        have[k] for k in ("base_commission_rate", "bonus_commission_rate", "verification_pass_rate")
    )
    if rates != wanted:
        raise HarnessError(
            f"a partner named {name!r} exists with other rates (base {rates[0]}, bonus "
            f"{rates[1]}, pass {rates[2]}); nothing was changed"
        )
    return Partner(name, *wanted, created=False)


def _copy_values(partner_id: Any, r: LeadRow) -> tuple:
    return (
        partner_id,
        r.email,
        r.company,
        r.industry,
        r.state,
        r.price,
        r.intent_score,
        r.freshness_score,
        r.max_sales,
    )


__all__ = [
    "COLUMNS",
    "ImportRejected",
    "ImportResult",
    "LeadRow",
    "Partner",
    "RowProblem",
    "add_partner",
    "import_leads",
    "rate",
    "read_leads_csv",
]
