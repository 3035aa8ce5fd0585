"""``harness reconcile`` (settle purchases a crash left pending), ``harness partners add``
(a partner leads come from) and ``harness leads import`` (a partner's CSV of leads)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness import db
from harness.cli.common import (
    Target,
    add,
    command,
    database,
    group,
    note,
    require_migrated,
    say,
)
from harness.config import MARKETPLACE_CONFIG
from harness.drivers.leads_import import (
    COLUMNS,
    MAX_PARTNER_NAME,
    REQUIRED,
    add_partner,
    import_leads,
    rate,
    read_leads_csv,
)
from harness.errors import ImportRejected
from harness.money.reconcile import DEFAULT_OLDER_THAN, reconcile
from harness.values import duration


@dataclass(frozen=True)
class ReconcileSettings(Target):
    older_than: timedelta = timedelta(minutes=5)
    json: bool = False


@dataclass(frozen=True)
class ImportSettings(Target):
    file: Path = Path()
    partner: str = ""


@dataclass(frozen=True)
class PartnerSettings(Target):
    name: str = ""
    base_rate: Decimal = Decimal(0)
    bonus_rate: Decimal = Decimal(0)
    pass_rate: Decimal = Decimal(0)


def run_reconcile(s: ReconcileSettings) -> int:
    with database(s, writes="reconcile") as srv:
        require_migrated(srv.dsn, s.migration_dirs)
        pool = db.pool(srv.dsn, max_size=2)
        try:
            report = reconcile(pool, s.older_than)
        finally:
            pool.close()
    if s.json:
        say(json.dumps(report.as_dict(), indent=2))
        return 0
    say(
        f"completed {len(report.completed)}, refunded {len(report.refunded)} stuck "
        f"purchase(s); queued {len(report.emails_queued)} missing confirmation "
        f"email(s); settled {report.keys_completed + report.keys_failed} idempotency "
        f"key(s) ({report.keys_completed} completed, {report.keys_failed} failed)"
    )
    return 0


def run_import(s: ImportSettings) -> int:
    try:
        read_leads_csv(s.file)  # refuse a bad file before starting or reaching a server
        with database(s, writes="leads import") as srv:
            require_migrated(srv.dsn, s.migration_dirs)
            with db.connect(srv.dsn) as conn:
                result = import_leads(conn, s.file, s.partner)
    except ImportRejected as exc:
        for problem in exc.problems:
            note(str(problem))
        raise
    skipped = (
        f"; skipped {result.skipped} already present for the partner (same email)"
        if result.skipped
        else ""
    )
    say(
        f"imported {result.rows} lead(s) for partner {result.partner}{skipped} in "
        f"{result.seconds:.3f}s (COPY {result.copy_seconds:.3f}s)"
    )
    return 0


def run_partner_add(s: PartnerSettings) -> int:
    with database(s, writes="partners add") as srv:
        require_migrated(srv.dsn, s.migration_dirs)
        with db.connect(srv.dsn) as conn:
            p = add_partner(conn, s.name, s.base_rate, s.bonus_rate, s.pass_rate)
    rates = f"base rate {p.base_rate}, bonus rate {p.bonus_rate}, pass rate {p.pass_rate}"
    say(f"{'added' if p.created else 'already present:'} partner {p.name} ({rates})")
    return 0


def register(sub: Any) -> None:
    p = command(
        sub,
        "reconcile",
        run_reconcile,
        ReconcileSettings,
        database=True,
        help="settle purchases a crash left pending",
        description="Complete or refund purchases stuck in 'pending' (a crash of the "
        "stepwise flow), queue missing confirmation emails and settle abandoned "
        "idempotency keys. Idempotent; safe while purchases run.",
    )
    add(
        p,
        "--older-than",
        type=duration,
        metavar="DURATION",
        env_var="HARNESS_RECONCILE_OLDER_THAN",
        help=f"only purchases pending longer than this (default {DEFAULT_OLDER_THAN}; e.g. "
        "30s, 5m, 2h, 0s for all)",
    )
    add(p, "--json", action="store_true", default=False, help="machine-readable output")

    partners = group(
        sub,
        "partners",
        "partners_command",
        help="the partners leads come from",
        description="Work with the partners leads come from.",
    )
    p = command(
        partners,
        "add",
        run_partner_add,
        PartnerSettings,
        database=True,
        help="add a partner",
        description="Add a partner with its commission rates (decimals from 0 to 1, at most "
        "four places). Adding a partner that exists with the same rates changes nothing; "
        "with other rates it is refused.",
    )
    add(p, "name", metavar="NAME", help=f"the partner's name (1 to {MAX_PARTNER_NAME} characters)")
    add(p, "--base-rate", type=rate, required=True, metavar="R", help="base commission rate")
    add(
        p,
        "--bonus-rate",
        type=rate,
        default=Decimal(0),
        metavar="R",
        help="bonus commission rate for verified leads (default 0)",
    )
    add(
        p,
        "--pass-rate",
        type=rate,
        default=Decimal(0),
        metavar="R",
        help="the partner's verification pass rate (default 0)",
    )

    leads = group(
        sub,
        "leads",
        "leads_command",
        help="partner lead files",
        description="Work with partner lead files.",
    )
    p = command(
        leads,
        "import",
        run_import,
        ImportSettings,
        database=True,
        help="import a partner's CSV of leads, all or nothing",
        description="Check a partner's CSV of leads and load it with COPY, all or nothing. "
        f"Columns (header required, any order): {', '.join(COLUMNS)}; required: "
        f"{', '.join(REQUIRED)}. Limits: .csv, {MARKETPLACE_CONFIG['MAX_FILE_SIZE_MB']} MB, "
        f"{MARKETPLACE_CONFIG['MAX_CSV_ROWS']:,} rows. Every bad row is listed with its "
        "line number and nothing is written. Leads the partner already has (same email, any "
        "letter case) are skipped and counted, so importing a file twice imports it once.",
    )
    add(p, "file", metavar="FILE.csv", type=Path)
    add(
        p,
        "--partner",
        required=True,
        metavar="NAME",
        help="the partner the leads come from (`harness partners add` makes one)",
    )
