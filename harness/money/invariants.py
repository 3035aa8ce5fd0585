"""The invariant checker: read-only SQL over the whole database, returning named violations.

Every command that judges the money path (scenarios, verify, load, watch, gate) calls
:func:`check_invariants`. It reads one snapshot (a READ ONLY, REPEATABLE READ
transaction), so the invariants are judged against a single consistent state even while
purchases are running. Each invariant is one named query in ``harness/sql/invariants.sql``
that returns the rows breaking it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from harness.db import fetch_all, query

# name -> what holding it means (the detail of a violation says it broke).
INVARIANTS: dict[str, str] = {
    "negative_balance": "no workspace balance is below zero",
    "balance_ledger_mismatch": "every balance equals the sum of its workspace's ledger",
    "ledger_overdraft": "no workspace's ledger ever spends more than was credited (overdraft)",
    "total_used_mismatch": "total_used equals the credits of the workspace's non-refunded "
    "purchases",
    "completed_purchase_items_mismatch": "a completed purchase's items match its total_leads "
    "and total_price",
    "sold_count_mismatch": "a lead's sold_count equals its live sales (completed purchases, "
    "and pending ones whose leads were counted)",
    "max_sales_exceeded": "no lead is sold or held more often than its max_sales",
    "lead_bought_twice": "no workspace holds one lead through two non-refunded purchases",
    "stuck_pending": "no purchase stays pending longer than the timeout",
    "confirmation_email_missing": "every completed purchase has exactly one confirmation email job",
    "debit_without_purchase": "every purchase debit belongs to a credit purchase and takes "
    "exactly its credits, and every credit purchase has one debit",
    "refunded_purchase_holds_leads": "a refunded purchase holds no reservation",
    "unfinished_purchase_delivers_leads": "only a completed purchase delivers its leads (a "
    "pending or refunded one's items are not deliverable)",
    "completed_purchase_items_not_its_leads": "a completed purchase's items are exactly the "
    "leads it reserved",
    "purchase_reservations_mismatch": "a pending or completed purchase holds one reservation "
    "per lead, for its buyer's workspace",
    "refund_ledger_mismatch": "a refunded credit purchase has exactly one refund entry of its "
    "credits, and no other purchase has one",
    "idempotency_key_mismatch": "a completed idempotency key names a completed purchase, a "
    "failed one no purchase or a refunded one",
}

# Checks that need a table or function a later migration adds: skipped only when it does
# not exist.
NEEDS_TABLE: dict[str, str] = {"confirmation_email_missing": "email_jobs"}
NEEDS_FUNCTION: dict[str, str] = {
    "unfinished_purchase_delivers_leads": "purchase_response_leads(uuid)",
}


@dataclass(frozen=True)
class Violation:
    """One broken invariant and the rows that break it."""

    name: str
    detail: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "detail": self.detail, "rows": self.rows}


def check_invariants(
    conn: psycopg.Connection, *, pending_timeout: timedelta | None = None
) -> list[Violation]:
    """Every broken invariant, in the order of :data:`INVARIANTS`; empty when all hold.

    ``stuck_pending`` is checked only when ``pending_timeout`` is given. When ``conn`` is
    idle the checks share one read-only repeatable-read snapshot; inside a caller's open
    transaction they run in it (and see what it sees).
    """
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        with conn.transaction():
            conn.execute(query("invariants", "begin_snapshot"))
            return _run(conn, pending_timeout)
    return _run(conn, pending_timeout)


def _run(conn: psycopg.Connection, pending_timeout: timedelta | None) -> list[Violation]:
    present = {
        table: fetch_all(conn, "invariants", "table_exists", {"table": table})[0]["present"]
        for table in set(NEEDS_TABLE.values())
    } | {
        function: fetch_all(conn, "invariants", "function_exists", {"function": function})[0][
            "present"
        ]
        for function in set(NEEDS_FUNCTION.values())
    }
    needs = NEEDS_TABLE | NEEDS_FUNCTION
    names = [
        name
        for name in INVARIANTS
        if (name != "stuck_pending" or pending_timeout is not None)
        and present.get(needs.get(name, ""), True)
    ]
    # Every query sent at once (pipeline mode), the answers read afterwards: one round
    # trip's latency instead of one per invariant.
    cursors = []
    with conn.pipeline():
        for name in names:
            params = {"timeout": pending_timeout} if name == "stuck_pending" else None
            cur = conn.cursor(row_factory=dict_row)
            cur.execute(query("invariants", name), params)
            cursors.append(cur)
    found: list[Violation] = []
    for name, cur in zip(names, cursors, strict=True):
        rows = cur.fetchall()
        cur.close()
        if rows:
            found.append(Violation(name, _detail(name, rows, pending_timeout), rows))
    return found


def _detail(name: str, rows: list[dict[str, Any]], pending_timeout: timedelta | None) -> str:
    n = len(rows)
    if name == "ledger_overdraft":
        worst = min(r["lowest_running_total"] for r in rows)
        return (
            f"overdraft: {n} workspace(s) spent more than was credited (ledger ran down to {worst})"
        )
    if name == "stuck_pending":
        return f"{n} purchase(s) pending longer than {pending_timeout}"
    return f"{n} row(s) break: {INVARIANTS[name]}"


def summary(violations: list[Violation]) -> str:
    """One line naming each violation, or that every invariant holds."""
    if not violations:
        return "every invariant holds"
    return "; ".join(f"{v.name}: {v.detail}" for v in violations)


__all__ = ["INVARIANTS", "Violation", "check_invariants", "summary"]
