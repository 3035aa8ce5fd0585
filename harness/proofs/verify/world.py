"""The calls the checks make through the contract only, and the sessions they race.

Worlds are built with :class:`harness.testing.World` (plain rows, credits through
``add_credits``); purchases go through ``purchase_with_credits`` and
``mark_leads_sold_batch``, the functions under test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from harness import db, testing
from harness.proofs.verify.context import STATEMENT_TIMEOUT as TIMEOUT
from harness.proofs.verify.context import q
from harness.proofs.verify.registry import CheckFailed, CheckInconclusive
from harness.testing import World, diff, snapshot, tables


@dataclass(frozen=True)
class Answer:
    """One row of purchase_with_credits."""

    success: bool
    error_message: str | None
    new_balance: Decimal | None
    purchase_id: uuid.UUID | None

    @classmethod
    def from_atomic(cls, answer: dict[str, Any]) -> Answer:
        """purchase_leads_atomic's answer (see :func:`purchase_atomic`) in these terms."""
        response = answer.get("response") or {}
        balance = response.get("new_balance", answer.get("balance"))
        purchase_id = response.get("purchase_id")
        return cls(
            success=answer.get("status") in ("completed", "replayed"),
            error_message=answer.get("error_message"),
            new_balance=None if balance is None else Decimal(balance),
            purchase_id=None if purchase_id is None else uuid.UUID(purchase_id),
        )


def purchase_atomic(conn: psycopg.Connection, ws, user, leads, total, config) -> dict[str, Any]:
    """Call purchase_leads_atomic without an idempotency key; its jsonb answer ({} for
    NULL, which no version answers: the callers then find no status)."""
    return db.scalar(conn, q("world", "buy-atomic"), (ws, user, leads, total, config)) or {}


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
    "Call",
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
    "waits",
]


class Call(threading.Thread):
    """One call on its own connection and thread: its value, or the exception it raised
    (never lost in the thread)."""

    def __init__(self, conn, fn) -> None:
        super().__init__(daemon=True)
        self.conn, self.fn = conn, fn
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.fn(self.conn)
        except BaseException as exc:
            self.error = exc

    def result(self, what: str, timeout: float = 30.0) -> Any:
        self.join(timeout)
        if self.error is not None:
            raise CheckFailed(f"{what} raised {self.error!r}")
        if self.is_alive():
            raise CheckInconclusive(f"{what} did not answer within {timeout:g} s")
        return self.value


def waits(observer, backend: int, call: threading.Thread | None, timeout: float = 10.0) -> bool:
    """True once ``backend`` waits on a lock (``observer`` in autocommit: each read is a
    new snapshot of pg_stat_activity); False when ``call`` ended first or at the timeout."""
    deadline = time.monotonic() + timeout
    while not db.scalar(observer, q("world", "waiting-on-lock"), (backend,)):
        if (call is not None and not call.is_alive()) or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
