"""Racing sessions: many connections released together by a barrier, each running its
work in one transaction that is held open a moment before COMMIT.

Holding the transaction open after the function returns widens the race window: a
function that reads the balance without locking the row lets every session read the
same balance, so the race is lost (or won) every run, not by luck.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from harness.proofs.verify.context import q
from harness.proofs.verify.world import InFlightMonitor, sessions

HOLD_SECONDS = 0.05
BARRIER_TIMEOUT = 60


@dataclass
class Outcome:
    """What one racing transaction did."""

    worker: int
    value: Any = None
    error: BaseException | None = None
    committed: bool = False
    started: float = 0.0
    ended: float = 0.0


def run_race(
    dsn: str,
    n: int,
    body: Callable[[psycopg.Connection, int], Any] | None,
    *,
    hold: float = HOLD_SECONDS,
    rounds: int = 1,
    between: Callable[[psycopg.Connection, int, int], Any] | None = None,
) -> tuple[list[Outcome], int]:
    """Run ``body(conn, worker)`` in ``n`` sessions at once, ``rounds`` times each.

    Returns every outcome and the largest number of transactions seen in flight at once
    in this database (sampled from pg_stat_activity while the race ran).
    """
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)
    sleep = q("world", "sleep")

    with sessions(dsn, n) as conns, InFlightMonitor(dsn) as monitor:

        def worker(i: int) -> None:
            conn = conns[i]
            barrier.wait(timeout=BARRIER_TIMEOUT)
            for r in range(rounds):
                out = Outcome(worker=i, started=time.monotonic())
                try:
                    conn.execute("BEGIN")
                    if between is not None:
                        out.value = between(conn, i, r)
                    elif body is not None:
                        out.value = body(conn, i)
                    conn.execute(sleep, (hold,))
                    conn.execute("COMMIT")
                    out.committed = True
                except Exception as exc:
                    out.error = exc
                    try:
                        if not conn.closed:
                            conn.execute("ROLLBACK")
                    except Exception:
                        pass
                out.ended = time.monotonic()
                with lock:
                    outcomes.append(out)
                if conn.closed:
                    return

        threads = [threading.Thread(target=worker, args=(i,), name=f"race-{i}") for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen = monitor.max_seen
    return outcomes, seen


def describe(exc: BaseException) -> str:
    sqlstate = getattr(getattr(exc, "diag", None), "sqlstate", None)
    code = f" [{sqlstate}]" if sqlstate else ""
    return f"{type(exc).__name__}{code}: {' '.join(str(exc).split())[:200]}"
