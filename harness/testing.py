"""One shared way to build a small marketplace in a database, to prove that nothing
changed, and to make calls race for real: used by the test suite, by ``harness verify``'s
checks and by the scenario runner alike (and by any team's own tests).

:class:`World` inserts workspaces, members, partners and leads as plain rows and adds
credits through ``add_credits``, as a top-up does; :func:`snapshot` reads every row of
every table, and :func:`diff` says briefly what differs between two snapshots.
:func:`release_together` runs calls in threads released at once by a barrier, and
:class:`InFlightMonitor` and :func:`max_overlap` witness that they really overlapped.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

import psycopg
from psycopg import sql

from harness import db

MODULE = "testing"


def _one(conn: psycopg.Connection, name: str, params: dict[str, object]) -> object:
    row = conn.execute(db.query(MODULE, name), params).fetchone()
    return row[0] if row else None


class World:
    """Builds workspaces, members, partners and leads in the database ``conn`` is on."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def workspace(
        self, name: str | None = None, balance: Decimal | str | None = None, members: int = 1
    ) -> tuple[uuid.UUID, list[uuid.UUID]]:
        """A workspace with ``members`` users (the first its owner) and, when ``balance``
        is given, a credits account holding it (0 opens an empty account)."""
        name = name or f"ws-{uuid.uuid4().hex[:10]}"
        ws = _one(self.conn, "insert-workspace", {"name": name})
        assert isinstance(ws, uuid.UUID)
        users = []
        for i in range(members):
            uid = self.user(f"{name}-{i}")
            self.member(ws, uid, "owner" if i == 0 else "member")
            users.append(uid)
        if balance is not None:
            self.account(ws, Decimal(balance))
        return ws, users

    def user(self, name: str | None = None, email: str | None = None) -> uuid.UUID:
        name = name or uuid.uuid4().hex[:10]
        email = email or f"{name}-{uuid.uuid4().hex[:6]}@example.com"
        uid = _one(self.conn, "insert-user", {"email": email, "name": name})
        assert isinstance(uid, uuid.UUID)
        return uid

    def member(self, ws: uuid.UUID, user: uuid.UUID, role: str = "member") -> None:
        self.conn.execute(
            db.query(MODULE, "insert-member"), {"workspace_id": ws, "user_id": user, "role": role}
        )

    def account(self, ws: uuid.UUID, balance: Decimal) -> None:
        """A credits account holding ``balance`` (a top-up), or empty for 0."""
        if balance > 0:
            self.top_up(ws, balance)
        else:
            self.conn.execute(db.query(MODULE, "open-empty-account"), {"workspace_id": ws})

    def top_up(self, ws: uuid.UUID, amount: Decimal | str, package: str = "test") -> Decimal:
        value = _one(
            self.conn,
            "add-credits",
            {"workspace_id": ws, "amount": Decimal(amount), "package": package},
        )
        assert isinstance(value, Decimal)
        return value

    def partner(
        self,
        name: str | None = None,
        base: str | Decimal = "0.30",
        bonus: str | Decimal = "0.05",
        pass_rate: str | Decimal = "0.97",
    ) -> uuid.UUID:
        pid = _one(
            self.conn,
            "insert-partner",
            {
                "name": name or f"p-{uuid.uuid4().hex[:8]}",
                "base": Decimal(base),
                "bonus": Decimal(bonus),
                "pass_rate": Decimal(pass_rate),
            },
        )
        assert isinstance(pid, uuid.UUID)
        return pid

    def named_leads(
        self,
        name: str,
        count: int = 1,
        price: Decimal | str = "1.00",
        max_sales: int | None = None,
        partner: uuid.UUID | None = None,
        for_sale: bool = True,
        age_days: int = 0,
    ) -> dict[str, uuid.UUID]:
        """``count`` leads named ``name-0``, ``name-1``, ...: {name: id}."""
        rows = self.conn.execute(
            db.query(MODULE, "insert-leads"),
            {
                "partner_id": partner,
                "name": name,
                "price": Decimal(price),
                "max_sales": max_sales,
                "for_sale": for_sale,
                "age_days": age_days,
                "count": count,
            },
        ).fetchall()
        return {r[1]: r[0] for r in rows}

    def leads(
        self,
        count: int = 1,
        price: Decimal | str = "1.00",
        max_sales: int | None = None,
        partner: uuid.UUID | None = None,
        for_sale: bool = True,
    ) -> list[uuid.UUID]:
        """``count`` leads, their ids in id order."""
        made = self.named_leads(
            f"lead-{uuid.uuid4().hex[:8]}", count, price, max_sales, partner, for_sale
        )
        return sorted(made.values())

    def balance(self, ws: uuid.UUID) -> Decimal | None:
        value = _one(self.conn, "balance", {"workspace_id": ws})
        return value if isinstance(value, Decimal) else None


def tables(conn: psycopg.Connection) -> list[str]:
    """Every table of the public schema except yoyo's bookkeeping."""
    return [r[0] for r in conn.execute(db.query(MODULE, "tables")).fetchall()]


def snapshot(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every row of every table of the public schema (yoyo's excepted), as text, sorted:
    compare two to prove that nothing changed."""
    out = {}
    for table in tables(conn):
        rows = conn.execute(
            sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table))
        ).fetchall()
        out[table] = sorted(r[0] for r in rows)
    return out


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


# -- racing ---------------------------------------------------------------------------------

T = TypeVar("T")
BARRIER_TIMEOUT = 60.0


def release_together(
    n: int, work: Callable[[int], T]
) -> tuple[list[T | BaseException], list[tuple[float, float]]]:
    """Run ``work(i)`` for every ``i < n`` in ``n`` threads released at once by a barrier.

    Every thread's outcome comes back, in order: its result, or the exception it raised
    (never lost), and the (start, end) of its call on the monotonic clock."""
    barrier = threading.Barrier(n)
    outcomes: list[T | BaseException] = [RuntimeError("thread did not run")] * n
    spans = [(0.0, 0.0)] * n

    def go(i: int) -> None:
        try:
            barrier.wait(timeout=BARRIER_TIMEOUT)
        except threading.BrokenBarrierError:
            pass  # a thread that could not start: the others still run, and count
        start = time.monotonic()
        try:
            outcomes[i] = work(i)
        except BaseException as exc:  # returned to the caller, who judges it
            outcomes[i] = exc
        spans[i] = (start, time.monotonic())

    threads = [
        threading.Thread(target=go, args=(i,), name=f"racer-{i}", daemon=True) for i in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, spans


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals open at one instant."""
    events = sorted(
        [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
        key=lambda e: (e[0], e[1]),
    )
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


class InFlightMonitor:
    """Samples pg_stat_activity for other sessions of one database inside a transaction,
    on its own connection, so a race can prove that transactions really overlapped."""

    def __init__(self, dsn: str, interval: float = 0.002) -> None:
        self.dsn = dsn
        self.interval = interval
        self.max_seen = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        with db.connect(self.dsn) as conn:
            statement = db.query(MODULE, "in-flight")
            while not self._stop.is_set():
                self.max_seen = max(self.max_seen, int(db.scalar(conn, statement)))
                time.sleep(self.interval)

    def __enter__(self) -> InFlightMonitor:
        self._thread = threading.Thread(target=self._run, name="in-flight", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


__all__ = [
    "InFlightMonitor",
    "World",
    "diff",
    "max_overlap",
    "release_together",
    "snapshot",
    "tables",
]
