"""The email outbox: enqueue jobs in the caller's transaction, inspect and steer them.

Recipients are validated where they enter: :func:`recipient` (the ``email-validator``
library, no DNS look-up) accepts exactly one mailbox, internationalized ones included,
and refuses lists, display names, quoted local parts, control characters and reserved
domains with :class:`~harness.errors.InvalidEmail`; the email records run it on their
address and strip control characters from the name, so nothing that reaches a header can
add a recipient.

A job row (table ``email_jobs``, migration 0003) is written by the same transaction as
the purchase or top-up it announces, so it exists if and only if that transaction
commits. :mod:`harness.outbox.worker` delivers the jobs; this module adds them
(:func:`queue_purchase_confirmation_email`, :func:`queue_credit_purchase_email`), reports
on them (:func:`queue_status`), requeues dead letters (:func:`retry_dead`) and cancels
(:func:`request_cancel`). It also provides the ``harness queue`` commands.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

import email_validator
import psycopg
from psycopg.rows import class_row, dict_row, tuple_row
from psycopg.types.json import Jsonb

from harness import db
from harness.config import MARKETPLACE_CONFIG, USER_MESSAGES
from harness.db import query
from harness.errors import InvalidEmail, UsageError
from harness.values import CENT

DEFAULT_NAME = "Valued Customer"


class EmailKind(StrEnum):
    """The kinds of email job; values mirror ``email_jobs.kind``."""

    PURCHASE_CONFIRMATION = "purchase_confirmation"
    CREDIT_PURCHASE = "credit_purchase"


class EmailJobStatus(StrEnum):
    """A job's state; values mirror the ``email_job_status`` enum."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"
    CANCELLED = "cancelled"


def _money(value: Decimal, what: str) -> str:
    """A money amount as the payload stores it: a string with exactly two decimals."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{what} must be a finite Decimal, not {value!r}")
    if value != value.quantize(CENT):
        raise ValueError(f"{what} has fractions of a cent: {value}")
    return str(value.quantize(CENT))


@dataclass(frozen=True)
class Recipient:
    """One validated mailbox: ``address`` as it is stored and shown (normalized, Unicode
    kept), its ``local`` part and ``domain``, the ``ascii`` form a server without SMTPUTF8
    can take (the domain IDNA-encoded; None when the local part itself is not ASCII)."""

    address: str
    local: str
    domain: str
    ascii: str | None

    @property
    def needs_smtputf8(self) -> bool:
        return self.ascii is None


def recipient(address: object) -> Recipient:
    """``address`` as exactly one deliverable mailbox, or :class:`InvalidEmail` (a
    ValueError) saying why not. No DNS look-up: syntax, length and reserved domains."""
    if not isinstance(address, str):
        raise InvalidEmail(USER_MESSAGES["invalid_email"])
    return _validated(address)


# A job's address is checked when its data is read and again when its message is built:
# the answer is a pure function of the string (no DNS), so the second check is a look-up.
# Refusals raise and so are never cached.
@functools.lru_cache(maxsize=4096)
def _validated(address: str) -> Recipient:
    try:
        valid = email_validator.validate_email(address, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidEmail(f"{USER_MESSAGES['invalid_email']} ({exc})") from exc
    return Recipient(valid.normalized, valid.local_part, valid.domain, valid.ascii_email)


def display_name(name: object) -> str:
    """A name fit for a header: control characters (CR and LF among them) become spaces,
    runs of spaces one, and an empty name the source design's default."""
    text = name if isinstance(name, str) else ""
    cleaned = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    return " ".join(cleaned.split()) or DEFAULT_NAME


@dataclass(frozen=True)
class PurchaseConfirmationEmail:
    """The purchase confirmation email's data (the source design's fields)."""

    kind: ClassVar[EmailKind] = EmailKind.PURCHASE_CONFIRMATION

    email: str
    name: str
    total_leads: int
    total_price: Decimal
    purchase_id: UUID
    download_url: str
    download_expires_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "email", recipient(self.email).address)
        object.__setattr__(self, "name", display_name(self.name))
        if (
            isinstance(self.total_leads, bool)
            or not isinstance(self.total_leads, int)
            or self.total_leads < 1
        ):
            raise ValueError(f"total_leads must be a positive int, not {self.total_leads!r}")
        _money(self.total_price, "total_price")
        if not isinstance(self.purchase_id, UUID):
            object.__setattr__(self, "purchase_id", UUID(str(self.purchase_id)))
        if self.download_expires_at.tzinfo is None:
            raise ValueError("download_expires_at must carry a time zone")

    @classmethod
    def for_purchase(
        cls,
        *,
        email: str,
        name: str | None,
        total_leads: int,
        total_price: Decimal,
        purchase_id: UUID,
        now: datetime | None = None,
        app_url: str | None = None,
    ) -> PurchaseConfirmationEmail:
        """The email as the source design builds it: download link under the app's URL,
        valid for ``DOWNLOAD_EXPIRY_DAYS``."""
        base = (app_url or MARKETPLACE_CONFIG["APP_URL"]).rstrip("/")
        expires = (now or datetime.now(UTC)) + timedelta(
            days=MARKETPLACE_CONFIG["DOWNLOAD_EXPIRY_DAYS"]
        )
        return cls(
            email=email,
            name=name or DEFAULT_NAME,
            total_leads=total_leads,
            total_price=total_price,
            purchase_id=purchase_id,
            download_url=f"{base}/api/marketplace/download/{purchase_id}",
            download_expires_at=expires,
        )

    def payload(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "total_leads": self.total_leads,
            "total_price": _money(self.total_price, "total_price"),
            "purchase_id": str(self.purchase_id),
            "download_url": self.download_url,
            "download_expires_at": self.download_expires_at.isoformat(),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> PurchaseConfirmationEmail:
        return cls(
            email=payload["email"],
            name=payload["name"],
            total_leads=int(payload["total_leads"]),
            total_price=Decimal(str(payload["total_price"])),
            purchase_id=UUID(payload["purchase_id"]),
            download_url=payload["download_url"],
            download_expires_at=datetime.fromisoformat(payload["download_expires_at"]),
        )


@dataclass(frozen=True)
class CreditPurchaseEmail:
    """The credit purchase (top-up) email's data (the source design's fields)."""

    kind: ClassVar[EmailKind] = EmailKind.CREDIT_PURCHASE

    email: str
    name: str
    credits_amount: Decimal
    total_price: Decimal
    package_name: str
    new_balance: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "email", recipient(self.email).address)
        object.__setattr__(self, "name", display_name(self.name))
        _money(self.credits_amount, "credits_amount")
        _money(self.total_price, "total_price")
        _money(self.new_balance, "new_balance")
        if not self.package_name:
            raise ValueError("package_name must not be empty")

    def payload(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "credits_amount": _money(self.credits_amount, "credits_amount"),
            "total_price": _money(self.total_price, "total_price"),
            "package_name": self.package_name,
            "new_balance": _money(self.new_balance, "new_balance"),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> CreditPurchaseEmail:
        return cls(
            email=payload["email"],
            name=payload["name"],
            credits_amount=Decimal(str(payload["credits_amount"])),
            total_price=Decimal(str(payload["total_price"])),
            package_name=payload["package_name"],
            new_balance=Decimal(str(payload["new_balance"])),
        )


EMAIL_DATA: dict[str, type[PurchaseConfirmationEmail] | type[CreditPurchaseEmail]] = {
    EmailKind.PURCHASE_CONFIRMATION.value: PurchaseConfirmationEmail,
    EmailKind.CREDIT_PURCHASE.value: CreditPurchaseEmail,
}


@dataclass(frozen=True)
class EmailJob:
    """One row of ``email_jobs``."""

    id: int
    kind: str
    status: str
    payload: dict[str, Any]
    purchase_id: UUID | None
    workspace_id: UUID | None
    message_id: str
    attempts: int
    run_at: datetime
    locked_by: str | None
    locked_until: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    cancel_requested_at: datetime | None
    created_at: datetime
    sent_at: datetime | None
    dead_at: datetime | None
    cancelled_at: datetime | None


@dataclass(frozen=True)
class DeadLetter:
    """A job that exhausted its attempts, with the error of its last one."""

    id: int
    kind: str
    attempts: int
    last_error: str | None
    dead_at: datetime
    message_id: str
    purchase_id: UUID | None


@dataclass(frozen=True)
class QueueStatus:
    """Counts by state, the age of the oldest unsettled job, and the dead letters."""

    counts: dict[str, int]
    oldest_pending_age: float | None
    expired_leases: int
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dead_letters"] = [
            {
                **asdict(d),
                "dead_at": d.dead_at.isoformat(),
                "purchase_id": str(d.purchase_id) if d.purchase_id else None,
            }
            for d in self.dead_letters
        ]
        return out


# -- enqueue ------------------------------------------------------------------------------


def _enqueue(
    conn: psycopg.Connection,
    kind: EmailKind,
    payload: dict[str, Any],
    purchase_id: UUID | None,
    workspace_id: UUID | None,
) -> int:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(
            query("queue", "enqueue"),
            {
                "kind": kind.value,
                "payload": Jsonb(payload),
                "purchase_id": purchase_id,
                "workspace_id": workspace_id,
            },
        )
        row = cur.fetchone()
        assert row is not None  # enqueue_email always answers a job id
        return int(row[0])


def queue_purchase_confirmation_email(
    conn: psycopg.Connection, data: PurchaseConfirmationEmail, *, workspace_id: UUID | None = None
) -> int:
    """Add the purchase's confirmation email to the outbox in the caller's transaction;
    the job's id. One per purchase: a repeat returns the first job's id."""
    return _enqueue(conn, data.kind, data.payload(), data.purchase_id, workspace_id)


def queue_credit_purchase_email(
    conn: psycopg.Connection, data: CreditPurchaseEmail, *, workspace_id: UUID | None = None
) -> int:
    """Add a top-up's confirmation email to the outbox in the caller's transaction."""
    return _enqueue(conn, data.kind, data.payload(), None, workspace_id)


# -- inspect and steer ---------------------------------------------------------------------


def require_outbox(conn: psycopg.Connection) -> None:
    """A UsageError unless the database has the outbox (migration 0003)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        if not db.scalar(cur, query("queue", "outbox_exists")):
            raise UsageError(
                "this database has no email outbox (table email_jobs): run `harness migrate` first"
            )


def get_job(conn: psycopg.Connection, job_id: int) -> EmailJob | None:
    with conn.cursor(row_factory=class_row(EmailJob)) as cur:
        cur.execute(query("queue", "get_job"), {"id": job_id})
        return cur.fetchone()


def queue_status(conn: psycopg.Connection, *, dead_limit: int = 50) -> QueueStatus:
    """Counts by state (every state, zeros included), the age in seconds of the oldest
    job not yet settled, leases past their expiry, and up to ``dead_limit`` dead letters."""
    with conn.cursor(row_factory=dict_row) as cur:
        counts = {s.value: 0 for s in EmailJobStatus}
        for row in cur.execute(query("queue", "status_counts")).fetchall():
            counts[row["status"]] = row["n"]
        summary = cur.execute(query("queue", "pending_summary")).fetchone()
        assert summary is not None  # an aggregate answers one row
    with conn.cursor(row_factory=class_row(DeadLetter)) as cur:
        dead = cur.execute(query("queue", "dead_letters"), {"limit": dead_limit}).fetchall()
    return QueueStatus(
        counts=counts,
        oldest_pending_age=summary["oldest_pending_age"],
        expired_leases=summary["expired_leases"],
        dead_letters=dead,
    )


def retry_dead(conn: psycopg.Connection, ids: list[int] | None = None) -> list[int]:
    """Requeue dead letters (all, or those in ``ids``) with a fresh set of attempts,
    due now; their last error stays until they are sent. The requeued ids."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query("queue", "retry_dead"), {"ids": ids})
        return sorted(r[0] for r in cur.fetchall())


def request_cancel(conn: psycopg.Connection, job_id: int) -> EmailJobStatus | None:
    """Stop further attempts of a job, as the source design's ``cancelOn`` does.

    A queued (or dead) job is cancelled at once. A job being sent finishes that send:
    it ends ``sent`` if the send succeeds, ``cancelled`` instead of being retried if it
    fails. A sent job stays sent. Returns the job's state now, None for no such job."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(query("queue", "request_cancel"), {"id": job_id}).fetchone()
    return EmailJobStatus(row[0]) if row else None


__all__ = [
    "CreditPurchaseEmail",
    "Recipient",
    "DeadLetter",
    "EmailJob",
    "EmailJobStatus",
    "EmailKind",
    "PurchaseConfirmationEmail",
    "QueueStatus",
    "get_job",
    "queue_credit_purchase_email",
    "queue_purchase_confirmation_email",
    "queue_status",
    "recipient",
    "display_name",
    "request_cancel",
    "require_outbox",
    "retry_dead",
]
