"""Settle purchases a crash of the stepwise flow left unfinished (``harness reconcile``).

For every purchase pending longer than the threshold, ``reconcile_purchase`` (migration
0004) takes the same locks as a purchase, in the same order (the workspace's credits row,
then the purchase row), re-checks that it is still pending, and then:

* completes it when it provably reached the last step before completion: its items match
  ``total_leads`` and ``total_price`` and its leads were marked sold (``leads_marked_at``);
  the confirmation email job is queued in the same transaction;
* refunds it otherwise: credits back, reservations released, sales undone if marked.

Then completed purchases without a confirmation email job get one, and idempotency keys
left ``processing`` are settled: ``completed`` with the response the request would have
stored when their purchase completed, ``failed`` (retryable) when it was refunded or never
made. Every step only touches rows older than the threshold and is a no-op the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from harness.db import query, scalar
from harness.errors import UsageError
from harness.money.service import sql_config

MODULE = "reconcile"
DEFAULT_OLDER_THAN = "5m"


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconcile run changed."""

    completed: tuple[UUID, ...] = ()
    refunded: tuple[UUID, ...] = ()
    emails_queued: tuple[UUID, ...] = ()
    keys_completed: int = 0
    keys_failed: int = 0

    @property
    def changed(self) -> int:
        return (
            len(self.completed)
            + len(self.refunded)
            + len(self.emails_queued)
            + self.keys_completed
            + self.keys_failed
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "completed": [str(i) for i in self.completed],
            "refunded": [str(i) for i in self.refunded],
            "emails_queued": [str(i) for i in self.emails_queued],
            "keys_completed": self.keys_completed,
            "keys_failed": self.keys_failed,
        }


def reconcile(pool: ConnectionPool, older_than: timedelta) -> ReconcileReport:
    """Complete or refund every purchase pending longer than ``older_than``, queue missing
    confirmation emails, settle abandoned idempotency keys. Idempotent; safe while
    purchases run (each purchase is settled in its own transaction, under its locks)."""
    if older_than < timedelta(0):
        raise UsageError("older_than must not be negative")
    config = Jsonb(sql_config())
    params = {"older_than": older_than}
    completed: list[UUID] = []
    refunded: list[UUID] = []
    emails: list[UUID] = []
    with pool.connection() as conn:
        stuck = [r[0] for r in conn.execute(query(MODULE, "stuck_purchases"), params)]
        for purchase_id in stuck:
            outcome = scalar(
                conn,
                query(MODULE, "reconcile_purchase"),
                {"purchase_id": purchase_id, "config": config},
            )
            if outcome == "completed":
                completed.append(purchase_id)
            elif outcome == "refunded":
                refunded.append(purchase_id)
        for (purchase_id,) in conn.execute(
            query(MODULE, "completed_without_email"), params
        ).fetchall():
            conn.execute(
                query(MODULE, "queue_purchase_confirmation"),
                {"purchase_id": purchase_id, "config": config},
            )
            emails.append(purchase_id)
        keys_completed = len(conn.execute(query(MODULE, "complete_keys"), params).fetchall())
        keys_failed = len(conn.execute(query(MODULE, "fail_keys"), params).fetchall())
    return ReconcileReport(
        tuple(completed), tuple(refunded), tuple(emails), keys_completed, keys_failed
    )


__all__ = ["DEFAULT_OLDER_THAN", "ReconcileReport", "reconcile"]
