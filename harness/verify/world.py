"""Data the checks build, and the calls they make through the contract only.

Workspaces, users and leads are inserted as plain rows; credits are added with
``add_credits``; purchases go through ``purchase_with_credits`` and
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

import psycopg
from psycopg import sql

from harness import database
from harness.verify.context import STATEMENT_TIMEOUT as TIMEOUT
from harness.verify.context import q
from harness.verify.registry import CheckInconclusive

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Answer:
    """One row of purchase_with_credits."""

    success: bool
    error_message: str | None
    new_balance: Decimal | None
    purchase_id: uuid.UUID | None


class World:
    """Builds a small marketplace in one scratch database."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def workspace(self, balance: Decimal | str | None = None, members: int = 1
                  ) -> tuple[uuid.UUID, list[uuid.UUID]]:
        tag = uuid.uuid4().hex[:10]
        ws = self.conn.execute(q("world", "insert-workspace"), (f"ws-{tag}",)).fetchone()[0]
        users = []
        for i in range(members):
            uid = self.user(f"{tag}-{i}")
            self.conn.execute(q("world", "insert-member"), (ws, uid))
            users.append(uid)
        if balance is not None and Decimal(balance) > 0:
            self.top_up(ws, Decimal(balance))
        return ws, users

    def user(self, name: str | None = None) -> uuid.UUID:
        name = name or uuid.uuid4().hex[:10]
        return self.conn.execute(q("world", "insert-user"),
                                 (f"{name}-{uuid.uuid4().hex[:6]}@example.com", name)
                                 ).fetchone()[0]

    def top_up(self, ws: uuid.UUID, amount: Decimal, package: str = "verify") -> Decimal:
        return self.conn.execute(q("world", "add-credits"), (ws, amount, package)).fetchone()[0]

    def leads(self, count: int = 1, price: Decimal | str = "1.00", max_sales: int | None = None,
              for_sale: bool = True) -> list[uuid.UUID]:
        rows = self.conn.execute(q("world", "insert-leads"),
                                 (Decimal(price), max_sales, for_sale, count)).fetchall()
        return sorted(r[0] for r in rows)

    def balance(self, ws: uuid.UUID) -> Decimal | None:
        row = self.conn.execute(q("world", "balance"), (ws,)).fetchone()
        return row[0] if row else None


def purchase(conn: psycopg.Connection, ws, user, leads, total, credits=None) -> Answer:
    """Call purchase_with_credits; exactly one row is the contract."""
    credits = total if credits is None else credits
    rows = conn.execute(q("world", "purchase"), (ws, user, leads, total, credits)).fetchall()
    if len(rows) != 1:
        raise AssertionError(f"purchase_with_credits returned {len(rows)} rows, not 1")
    return Answer(*rows[0])


def mark_sold(conn: psycopg.Connection, leads) -> int:
    return conn.execute(q("world", "mark-sold"), (leads,)).fetchone()[0]


def snapshot(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every row of every table of the public schema, as text, sorted."""
    out = {}
    for (table,) in conn.execute(q("world", "tables")).fetchall():
        rows = conn.execute(
            sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table))).fetchall()
        out[table] = sorted(r[0] for r in rows)
    return out


def fingerprint_query(conn: psycopg.Connection) -> sql.Composed:
    """One statement giving (table, md5 of all its rows) for every table a snapshot
    covers: a cheap way to ask "did anything change" many times."""
    tables = [r[0] for r in conn.execute(q("world", "tables")).fetchall()]
    return sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}::text, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
                " FROM {} t").format(sql.Literal(table), sql.Identifier(table))
        for table in tables)


def diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> str:
    """Which tables changed and how, briefly."""
    parts = []
    for table in sorted(set(before) | set(after)):
        b, a = set(before.get(table, [])), set(after.get(table, []))
        if a != b:
            added, removed = sorted(a - b), sorted(b - a)
            bits = []
            if added:
                bits.append(f"+{len(added)} e.g. {added[0][:160]}")
            if removed:
                bits.append(f"-{len(removed)} e.g. {removed[0][:160]}")
            parts.append(f"{table}: {'; '.join(bits)}")
    return " | ".join(parts)


class InFlightMonitor:
    """Samples pg_stat_activity for sessions of one database inside a transaction, so a
    concurrency check can prove it really ran transactions at the same time."""

    def __init__(self, dsn: str, interval: float = 0.002) -> None:
        self.dsn = dsn
        self.interval = interval
        self.max_seen = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        with database.connect(self.dsn) as conn:
            query = q("world", "in-flight")
            while not self._stop.is_set():
                n = conn.execute(query).fetchone()[0]
                self.max_seen = max(self.max_seen, n)
                time.sleep(self.interval)

    def __enter__(self) -> InFlightMonitor:
        self._thread = threading.Thread(target=self._run, name="in-flight", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def require(self, at_least: int = 2) -> None:
        if self.max_seen < at_least:
            raise CheckInconclusive(
                f"at most {self.max_seen} transaction(s) observed in flight at once; "
                "the race did not happen, so nothing was proved")


@contextmanager
def sessions(dsn: str, n: int) -> Iterator[list[psycopg.Connection]]:
    """``n`` autocommit connections, each its own backend, closed afterwards."""
    conns: list[psycopg.Connection] = []
    try:
        for _ in range(n):
            conns.append(database.connect(dsn, options=f"-c statement_timeout={TIMEOUT}"))
        yield conns
    finally:
        for c in conns:
            try:
                c.close()
            except Exception:
                pass


def money(value) -> str:
    return f"{Decimal(value):.2f}" if value is not None else "NULL"
