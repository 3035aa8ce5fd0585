"""The calls the checks make through the contract only, and the sessions they race.

Worlds are built with :class:`harness.testing.World` (plain rows, credits through
``add_credits``); purchases go through ``purchase_with_credits`` and
``mark_leads_sold_batch``, the functions under test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import psycopg
from psycopg import sql

from harness import db, testing
from harness.proofs.verify.context import STATEMENT_TIMEOUT as TIMEOUT
from harness.proofs.verify.context import q
from harness.proofs.verify.registry import CheckInconclusive
from harness.testing import World, diff, snapshot, tables


@dataclass(frozen=True)
class Answer:
    """One row of purchase_with_credits."""

    success: bool
    error_message: str | None
    new_balance: Decimal | None
    purchase_id: uuid.UUID | None


def purchase(conn: psycopg.Connection, ws, user, leads, total, credits=None) -> Answer:
    """Call purchase_with_credits; exactly one row is the contract."""
    credits = total if credits is None else credits
    rows = conn.execute(q("world", "purchase"), (ws, user, leads, total, credits)).fetchall()
    if len(rows) != 1:
        raise AssertionError(f"purchase_with_credits returned {len(rows)} rows, not 1")
    return Answer(*rows[0])


def mark_sold(conn: psycopg.Connection, leads) -> int:
    return db.scalar(conn, q("world", "mark-sold"), (leads,))


def fingerprint_query(conn: psycopg.Connection) -> sql.Composed:
    """One statement giving (table, md5 of all its rows) for every table a snapshot
    covers: a cheap way to ask "did anything change" many times."""
    return sql.SQL(" UNION ALL ").join(
        sql.SQL(
            "SELECT {}::text, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
            " FROM {} t"
        ).format(sql.Literal(table), sql.Identifier(table))
        for table in tables(conn)
    )


class InFlightMonitor(testing.InFlightMonitor):
    """The shared monitor, and the check's verdict on what it saw."""

    def require(self, at_least: int = 2) -> None:
        if self.max_seen < at_least:
            raise CheckInconclusive(
                f"at most {self.max_seen} transaction(s) observed in flight at once; "
                "the race did not happen, so nothing was proved"
            )


@contextmanager
def sessions(dsn: str, n: int) -> Iterator[list[psycopg.Connection]]:
    """``n`` autocommit connections, each its own backend, closed afterwards."""
    conns: list[psycopg.Connection] = []
    try:
        for _ in range(n):
            conns.append(db.connect(dsn, options=f"-c statement_timeout={TIMEOUT}"))
        yield conns
    finally:
        for c in conns:
            try:
                c.close()
            except Exception:
                pass


def money(value) -> str:
    return f"{Decimal(value):.2f}" if value is not None else "NULL"


__all__ = [
    "Answer",
    "InFlightMonitor",
    "World",
    "diff",
    "fingerprint_query",
    "mark_sold",
    "money",
    "purchase",
    "sessions",
    "snapshot",
]
