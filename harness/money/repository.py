"""The purchase repository: the source design's repository methods over a psycopg pool.

Each method runs its named statement from ``harness/sql/repository.sql`` on a connection
from the pool, or on the connection passed as ``conn`` (to share the caller's
transaction). Rows come back as frozen dataclasses; a refusal from a SQL function comes
back as the :class:`~harness.errors.DomainError` its message maps to (``DB_MESSAGES``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from harness.config import DB_MESSAGES, USER_MESSAGES
from harness.db import query
from harness.errors import DOMAIN_ERRORS, DomainError, HarnessError

MODULE = "repository"


class PurchaseStatus(StrEnum):
    """A purchase's state; values mirror the ``purchase_status`` enum."""

    PENDING = "pending"
    COMPLETED = "completed"
    REFUNDED = "refunded"


class KeyStatus(StrEnum):
    """An idempotency key's state; values mirror ``api_idempotency_keys.status``."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class Partner:
    """A lead supplier and its commission terms."""

    id: UUID
    name: str
    base_commission_rate: Decimal
    bonus_commission_rate: Decimal
    verification_pass_rate: Decimal


@dataclass(frozen=True)
class Lead:
    """A lead as a purchase sees it, with its partner when it has one."""

    id: UUID
    partner_id: UUID | None
    marketplace_price: Decimal
    intent_score_calculated: int
    freshness_score: int
    for_sale: bool
    max_sales: int | None
    sold_count: int
    created_at: datetime
    partner: Partner | None = None


@dataclass(frozen=True)
class PurchaseItem:
    """One lead of a purchase, priced and with its partner's commission."""

    lead_id: UUID
    price_at_purchase: Decimal
    intent_score_at_purchase: int | None = None
    freshness_score_at_purchase: int | None = None
    partner_id: UUID | None = None
    commission_rate: Decimal | None = None
    commission_amount: Decimal | None = None
    commission_bonuses: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        def text(value: object) -> str | None:
            return None if value is None else str(value)

        return {
            "lead_id": str(self.lead_id),
            "price_at_purchase": str(self.price_at_purchase),
            "intent_score_at_purchase": self.intent_score_at_purchase,
            "freshness_score_at_purchase": self.freshness_score_at_purchase,
            "partner_id": text(self.partner_id),
            "commission_rate": text(self.commission_rate),
            "commission_amount": text(self.commission_amount),
            "commission_bonuses": list(self.commission_bonuses),
        }


@dataclass(frozen=True)
class Purchase:
    """A row of ``marketplace_purchases``."""

    id: UUID
    buyer_workspace_id: UUID
    buyer_user_id: UUID
    total_leads: int
    total_price: Decimal
    payment_method: str
    credits_used: Decimal
    status: PurchaseStatus
    created_at: datetime
    completed_at: datetime | None
    refunded_at: datetime | None


@dataclass(frozen=True)
class IdempotencyKey:
    """A row of ``api_idempotency_keys``."""

    id: UUID
    workspace_id: UUID
    idempotency_key: str
    request_fingerprint: str
    status: KeyStatus
    response_data: dict[str, Any] | None = field(default=None, compare=False)
    purchase_id: UUID | None = None


@dataclass(frozen=True)
class User:
    """Who receives an email."""

    id: UUID
    email: str
    full_name: str | None


def domain_error(
    sql_message: str | None, *, required: Decimal | None = None, balance: Decimal | None = None
) -> DomainError:
    """The DomainError a SQL function's refusal message stands for; the SQL text is kept
    as ``sql_message``, the user-facing text is the exception's message."""
    code = DB_MESSAGES.get(sql_message or "")
    cls = DOMAIN_ERRORS[code] if code is not None else DomainError
    message = USER_MESSAGES.get(code) if code is not None else sql_message
    return cls(message, sql_message=sql_message, required=required, balance=balance)


class Repository:
    """Purchase persistence on a connection pool."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    # -- connections -----------------------------------------------------------------

    @contextlib.contextmanager
    def connection(self, conn: psycopg.Connection | None = None) -> Iterator[psycopg.Connection]:
        """``conn`` itself when given, else a connection from the pool for the block."""
        if conn is not None:
            yield conn
            return
        with self.pool.connection() as pooled:
            yield pooled

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A pooled connection inside one transaction, committed when the block ends."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    def _one(self, name: str, params: dict[str, Any], conn: psycopg.Connection | None) -> Any:
        with self.connection(conn) as c:
            row = c.execute(query(MODULE, name), params).fetchone()
        return row[0] if row else None

    # -- the source design's repository methods ---------------------------------------

    def purchase_with_credits(
        self,
        workspace_id: UUID,
        user_id: UUID,
        lead_ids: Sequence[UUID],
        total_price: Decimal,
        credits_used: Decimal | None = None,
        *,
        conn: psycopg.Connection | None = None,
    ) -> tuple[UUID, Decimal]:
        """Debit the credits and record a pending purchase; (purchase_id, new_balance)."""
        credits = total_price if credits_used is None else credits_used
        with self.connection(conn) as c:
            row = c.execute(
                query(MODULE, "purchase_with_credits"),
                {
                    "workspace_id": workspace_id,
                    "user_id": user_id,
                    "lead_ids": list(lead_ids),
                    "total_price": total_price,
                    "credits_used": credits,
                },
            ).fetchone()
        if row is None:
            raise HarnessError("purchase_with_credits answered no row")
        ok, message, new_balance, purchase_id = row
        if not ok:
            raise domain_error(message, required=total_price, balance=new_balance)
        return purchase_id, new_balance

    def mark_leads_sold_batch(
        self, lead_ids: Sequence[UUID], *, conn: psycopg.Connection | None = None
    ) -> int:
        """Count one sale for each distinct lead (never beyond max_sales); how many."""
        return int(self._one("mark_leads_sold_batch", {"lead_ids": list(lead_ids)}, conn))

    def mark_purchase_leads_sold(self, purchase_id: UUID, lead_ids: Sequence[UUID]) -> int | None:
        """The stepwise flow's mark step: mark_leads_sold_batch for a still-pending purchase,
        all or nothing, recording on the purchase that its leads were marked.

        Returns how many leads were marked: all of them, or fewer when some sold out (and
        then the transaction is rolled back: none is marked). None when the purchase is no
        longer pending (reconcile settled it). Locks the purchase row, then the leads."""
        with self.pool.connection() as conn, conn.transaction() as tx:
            status = self._one("lock_purchase", {"purchase_id": purchase_id}, conn)
            if status != PurchaseStatus.PENDING.value:
                return None
            marked: int = self.mark_leads_sold_batch(lead_ids, conn=conn)
            if marked != len(set(lead_ids)):
                raise psycopg.Rollback(tx)  # a shortfall: none of them is marked
            conn.execute(query(MODULE, "stamp_leads_marked"), {"purchase_id": purchase_id})
        return marked

    def add_purchase_items(
        self,
        purchase_id: UUID,
        items: Sequence[PurchaseItem],
        *,
        conn: psycopg.Connection | None = None,
    ) -> int:
        """Insert every item in one multi-row statement; how many rows."""
        with self.connection(conn) as c:
            cur = c.execute(
                query(MODULE, "add_purchase_items"),
                {
                    "purchase_id": purchase_id,
                    "items": Jsonb([item.as_json() for item in items]),
                },
            )
            return cur.rowcount

    def complete_purchase(
        self, purchase_id: UUID, *, conn: psycopg.Connection | None = None
    ) -> PurchaseStatus | None:
        """pending -> completed (idempotent); the status afterwards, None if unknown."""
        status = self._one("complete_purchase", {"purchase_id": purchase_id}, conn)
        return PurchaseStatus(status) if status else None

    def refund_purchase(
        self, purchase_id: UUID, *, conn: psycopg.Connection | None = None
    ) -> PurchaseStatus | None:
        """pending -> refunded with the credits back (idempotent); the status afterwards."""
        status = self._one("refund_purchase", {"purchase_id": purchase_id}, conn)
        return PurchaseStatus(status) if status else None

    def get_purchase(
        self, purchase_id: UUID, *, conn: psycopg.Connection | None = None
    ) -> Purchase | None:
        with self.connection(conn) as c, c.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                query(MODULE, "get_purchase"), {"purchase_id": purchase_id}
            ).fetchone()
        if row is None:
            return None
        return Purchase(**{**row, "status": PurchaseStatus(row["status"])})

    def get_purchased_leads(
        self, purchase_id: UUID, workspace_id: UUID, *, conn: psycopg.Connection | None = None
    ) -> list[dict[str, Any]]:
        """The leads of a purchase, for its buyer only (JSON-ready dicts, by lead id)."""
        with self.connection(conn) as c:
            rows = c.execute(
                query(MODULE, "get_purchased_leads"),
                {"purchase_id": purchase_id, "workspace_id": workspace_id},
            )
            return [r[0] for r in rows.fetchall()]

    def add_credits(
        self,
        workspace_id: UUID,
        amount: Decimal,
        package: str,
        payment_reference: str | None = None,
        *,
        conn: psycopg.Connection | None = None,
    ) -> Decimal:
        """A top-up through add_credits(); the new balance. With a payment reference,
        through its four-argument form: the same reference credits the workspace once,
        a repeat answers the balance."""
        params = {"workspace_id": workspace_id, "amount": amount, "package": package}
        if payment_reference is None:
            balance: Decimal = self._one("add_credits", params, conn)
        else:
            balance = self._one(
                "add_credits_reference", {**params, "reference": payment_reference}, conn
            )
        return balance

    def workspace_exists(
        self, workspace_id: UUID, *, conn: psycopg.Connection | None = None
    ) -> bool:
        return bool(self._one("workspace_exists", {"workspace_id": workspace_id}, conn))

    def lock_payment_reference(
        self, workspace_id: UUID, reference: str, *, conn: psycopg.Connection
    ) -> None:
        """Serialize top-ups carrying the same reference (until the transaction ends)."""
        conn.execute(
            query(MODULE, "lock_payment_reference"),
            {"workspace_id": workspace_id, "reference": reference},
        )

    def payment_reference_seen(
        self, workspace_id: UUID, reference: str, *, conn: psycopg.Connection | None = None
    ) -> bool:
        """Whether a top-up with this reference was already credited to the workspace."""
        return bool(
            self._one(
                "payment_reference_seen",
                {"workspace_id": workspace_id, "reference": reference},
                conn,
            )
        )

    # -- what the service needs besides -------------------------------------------------

    def load_leads(
        self, lead_ids: Sequence[UUID], *, conn: psycopg.Connection | None = None
    ) -> list[Lead]:
        """The leads that exist among ``lead_ids``, by id, each with its partner."""
        with self.connection(conn) as c, c.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query(MODULE, "load_leads"), {"lead_ids": list(lead_ids)}).fetchall()
        leads = []
        for r in rows:
            partner = None
            if r["partner_id"] is not None:
                partner = Partner(
                    r["partner_id"],
                    r["partner_name"],
                    r["base_commission_rate"],
                    r["bonus_commission_rate"],
                    r["verification_pass_rate"],
                )
            leads.append(
                Lead(
                    id=r["id"],
                    partner_id=r["partner_id"],
                    marketplace_price=r["marketplace_price"],
                    intent_score_calculated=r["intent_score_calculated"],
                    freshness_score=r["freshness_score"],
                    for_sale=r["for_sale"],
                    max_sales=r["max_sales"],
                    sold_count=r["sold_count"],
                    created_at=r["created_at"],
                    partner=partner,
                )
            )
        return leads

    def is_member(
        self, workspace_id: UUID, user_id: UUID, *, conn: psycopg.Connection | None = None
    ) -> bool:
        return bool(
            self._one("is_member", {"workspace_id": workspace_id, "user_id": user_id}, conn)
        )

    def get_user(self, user_id: UUID, *, conn: psycopg.Connection | None = None) -> User | None:
        with self.connection(conn) as c:
            row = c.execute(query(MODULE, "get_user"), {"user_id": user_id}).fetchone()
        return User(*row) if row else None

    def workspace_contact(
        self,
        workspace_id: UUID,
        email: str | None = None,
        *,
        conn: psycopg.Connection | None = None,
    ) -> User | None:
        """The user ``email`` names, else the workspace's first owner/admin/member."""
        with self.connection(conn) as c:
            row = c.execute(
                query(MODULE, "workspace_contact"), {"workspace_id": workspace_id, "email": email}
            ).fetchone()
        return User(*row) if row else None

    def outbox_present(self, conn: psycopg.Connection | None = None) -> bool:
        """Whether the email outbox (migration 0003) is installed."""
        return bool(self._one("outbox_present", {}, conn))

    def atomic_purchase(
        self,
        workspace_id: UUID,
        user_id: UUID,
        lead_ids: Sequence[UUID],
        total_price: Decimal,
        idempotency_key: str | None,
        fingerprint: str | None,
        config: dict[str, Any],
        *,
        conn: psycopg.Connection | None = None,
    ) -> dict[str, Any]:
        """One call of purchase_leads_atomic; its jsonb answer."""
        answer: dict[str, Any] = self._one(
            "atomic_purchase",
            {
                "workspace_id": workspace_id,
                "user_id": user_id,
                "lead_ids": list(lead_ids),
                "total_price": total_price,
                "idempotency_key": idempotency_key,
                "fingerprint": fingerprint,
                "config": Jsonb(config),
            },
            conn,
        )
        return answer

    # -- idempotency keys -----------------------------------------------------------------

    def claim_key(
        self,
        workspace_id: UUID,
        key: str,
        fingerprint: str,
        *,
        conn: psycopg.Connection | None = None,
    ) -> bool:
        """Insert the key as 'processing'; False when the key already exists."""
        return (
            self._one(
                "claim_key",
                {"workspace_id": workspace_id, "key": key, "fingerprint": fingerprint},
                conn,
            )
            is not None
        )

    def lock_key_nowait(
        self, conn: psycopg.Connection, workspace_id: UUID, key: str
    ) -> IdempotencyKey | None:
        """The key's row, locked; raises LockNotAvailable when another holds it."""
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                query(MODULE, "lock_key_nowait"), {"workspace_id": workspace_id, "key": key}
            ).fetchone()
        if row is None:
            return None
        return IdempotencyKey(**{**row, "status": KeyStatus(row["status"])})

    def reclaim_key(self, conn: psycopg.Connection, key_id: UUID) -> None:
        conn.execute(query(MODULE, "reclaim_key"), {"id": key_id})

    def link_key(
        self, workspace_id: UUID, key: str, purchase_id: UUID, partial: dict[str, Any]
    ) -> None:
        with self.connection() as c:
            c.execute(
                query(MODULE, "link_key"),
                {
                    "workspace_id": workspace_id,
                    "key": key,
                    "purchase_id": purchase_id,
                    "partial": Jsonb(partial),
                },
            )

    def complete_key(
        self, workspace_id: UUID, key: str, purchase_id: UUID, response: dict[str, Any]
    ) -> None:
        with self.connection() as c:
            c.execute(
                query(MODULE, "complete_key"),
                {
                    "workspace_id": workspace_id,
                    "key": key,
                    "purchase_id": purchase_id,
                    "response": Jsonb(response),
                },
            )

    def fail_key(self, workspace_id: UUID, key: str, response: dict[str, Any]) -> None:
        with self.connection() as c:
            c.execute(
                query(MODULE, "fail_key"),
                {"workspace_id": workspace_id, "key": key, "response": Jsonb(response)},
            )


__all__ = [
    "IdempotencyKey",
    "KeyStatus",
    "Lead",
    "Partner",
    "Purchase",
    "PurchaseItem",
    "PurchaseStatus",
    "Repository",
    "User",
    "domain_error",
]
