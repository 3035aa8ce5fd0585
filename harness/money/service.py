"""The purchase service: the source design's purchase route without HTTP.

Three flows, chosen by ``HARNESS_PURCHASE_FLOW`` (the source design's rollback plan: keep
the old path and switch back by environment variable):

``atomic`` (default)
    One call of ``purchase_leads_atomic`` (migration 0004): idempotency record, debit,
    items with commissions, leads sold, completion and the confirmation email job in one
    transaction and one round trip.
``stepwise``
    The source design's sequence of separate calls: purchase_with_credits, add items,
    mark_leads_sold_batch, complete, fetch the leads, queue the email, update the key.
    A crash between two calls leaves a pending purchase; ``harness reconcile`` settles it.
``legacy``
    What the source design replaced: the balance read and checked in Python, then
    written back as a value computed in Python. Racy on purpose (a lost update under
    concurrency) and built on the tables of 0001 alone, so it is the switch-back target.

Idempotency keys are scoped to the workspace and stored with a fingerprint of the request:
a repeat after completion replays the stored response (no second debit), a repeat while
the first runs gets ``purchase_in_progress``, the same key with another request gets
``idempotency_mismatch``; a key whose attempt failed may be used again. A key is 1 to 255
printable characters, not all blank (else ``invalid_idempotency_key``).

Everything a request can be refused for that is knowable before the debit (a bad key, a
malformed id, no or repeated leads, a user who is not a member, a buyer whose email
address cannot receive the confirmation, leads that do not exist) is checked first, in
every flow, before anything is written. Nothing but a :class:`~harness.errors.HarnessError`
leaves the service: refusals are ``DomainError``s, database trouble and anything
unexpected a ``ServiceError``, each with its stable ``code``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from harness import env
from harness.config import MARKETPLACE_CONFIG, USER_MESSAGES
from harness.db import query, scalar
from harness.errors import (
    DOMAIN_ERRORS,
    DatabaseFailure,
    DatabaseUnavailable,
    DomainError,
    HarnessError,
    InsufficientCredits,
    InternalError,
    PurchaseInterrupted,
    ServiceError,
    UsageError,
)
from harness.money.commission import calculate_commission
from harness.money.repository import (
    KeyStatus,
    Lead,
    PurchaseItem,
    PurchaseStatus,
    Repository,
    domain_error,
)
from harness.outbox import queue
from harness.values import CENT

FLOWS = ("atomic", "stepwise", "legacy")
FLOW_ENV = "HARNESS_PURCHASE_FLOW"
DEFAULT_FLOW = "atomic"
CRASH_POINTS = ("debit", "items", "mark_sold", "complete")
DOWNLOAD_PATH = "/api/marketplace/download/"
MAX_KEY_LENGTH = 255
MAX_PACKAGE_LENGTH = 255


def current_flow() -> str:
    """The flow ``HARNESS_PURCHASE_FLOW`` names, ``atomic`` when unset."""
    return check_flow(env.read(FLOW_ENV) or DEFAULT_FLOW)


def check_flow(flow: str) -> str:
    if flow not in FLOWS:
        raise UsageError(
            f"unknown purchase flow {flow!r} ({FLOW_ENV}); choose one of: {', '.join(FLOWS)}"
        )
    return flow


def download_url_prefix() -> str:
    """Download links start with this: the app's URL (``HARNESS_APP_URL``) and the route."""
    return str(env.read("HARNESS_APP_URL")).rstrip("/") + DOWNLOAD_PATH


def download_url(purchase_id: UUID) -> str:
    """Where the buyer downloads a purchase's leads."""
    return download_url_prefix() + str(purchase_id)


def sql_config() -> dict[str, Any]:
    """The numbers the SQL functions of 0004 take as their ``p_config`` argument, from
    ``MARKETPLACE_CONFIG``: the database holds no copy of them."""
    return {
        "commission_bonus_pass_rate": str(MARKETPLACE_CONFIG["COMMISSION_BONUS_PASS_RATE"]),
        "commission_freshness_days": MARKETPLACE_CONFIG["COMMISSION_FRESHNESS_DAYS"],
        "commission_freshness_bonus_rate": str(
            MARKETPLACE_CONFIG["COMMISSION_FRESHNESS_BONUS_RATE"]
        ),
        "download_url_prefix": download_url_prefix(),
        "download_expiry_days": MARKETPLACE_CONFIG["DOWNLOAD_EXPIRY_DAYS"],
        "default_customer_name": queue.DEFAULT_NAME,
    }


@dataclass(frozen=True)
class PurchaseRequest:
    """A buyer's request: these leads, for this workspace, optionally under a key."""

    workspace_id: UUID
    user_id: UUID
    lead_ids: tuple[UUID, ...]
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """What makes two requests under one key the same request: the user and the set
        of leads (order does not matter; the key already names the workspace)."""
        leads = ",".join(sorted(str(i) for i in self.lead_ids))
        return hashlib.sha256(f"v1|{self.user_id}|{leads}".encode()).hexdigest()


@dataclass(frozen=True)
class PurchaseResult:
    """A completed purchase as the buyer sees it; ``replayed`` when an idempotency key
    answered with the stored response of an earlier request."""

    purchase_id: UUID
    new_balance: Decimal
    total_price: Decimal
    leads: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False

    def as_response(self) -> dict[str, Any]:
        """The stored response (JSON: ids and money as strings)."""
        return {
            "purchase_id": str(self.purchase_id),
            "new_balance": str(self.new_balance),
            "total_price": str(self.total_price),
            "leads": self.leads,
        }

    @classmethod
    def from_response(cls, data: dict[str, Any], *, replayed: bool = False) -> PurchaseResult:
        return cls(
            purchase_id=UUID(data["purchase_id"]),
            new_balance=Decimal(data["new_balance"]),
            total_price=Decimal(data["total_price"]),
            leads=list(data.get("leads") or []),
            replayed=replayed,
        )


@dataclass(frozen=True)
class _Prepared:
    """A validated request: its leads and the price computed here, not by the client,
    and the buyer's address (validated) for the confirmation email."""

    req: PurchaseRequest
    leads: tuple[Lead, ...]
    total_price: Decimal
    fingerprint: str
    email: str
    name: str | None

    @property
    def lead_ids(self) -> list[UUID]:
        return list(self.req.lead_ids)

    @property
    def key(self) -> str | None:
        return self.req.idempotency_key


def refuse(
    code: str,
    *,
    amount: object = None,
    lead_ids: Sequence[UUID] = (),
    purchase_id: UUID | None = None,
) -> DomainError:
    """The DomainError for a stable code, with its user-facing message."""
    return DOMAIN_ERRORS[code](
        USER_MESSAGES.get(code), amount=amount, lead_ids=lead_ids, purchase_id=purchase_id
    )


def fail(cls: type[ServiceError], exc: BaseException | None = None) -> ServiceError:
    """The ServiceError of ``cls`` with its user-facing message (and the cause's class
    and first line, for the operator reading the log)."""
    detail = "" if exc is None else f"{type(exc).__name__}: {_first_line(exc)}"
    return cls(USER_MESSAGES.get(cls.code), detail=detail)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


P = ParamSpec("P")
R = TypeVar("R")


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """Let nothing but a HarnessError out: a database that cannot be reached or timed
    out becomes ``database_unavailable``, any other database error ``database_error``,
    anything else ``internal_error`` (each chained to its cause)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except HarnessError:
            raise
        except psycopg.OperationalError as exc:
            raise fail(DatabaseUnavailable, exc) from exc
        except psycopg.Error as exc:
            raise fail(DatabaseFailure, exc) from exc
        except Exception as exc:
            raise fail(InternalError, exc) from exc

    return wrapper


def check_key(key: object) -> str | None:
    """The idempotency key as given, when it is one: None, or 1 to 255 printable
    characters not all blank. Anything else is ``invalid_idempotency_key``."""
    if key is None:
        return None
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_KEY_LENGTH
        or not key.isprintable()
        or not key.strip()
    ):
        raise refuse("invalid_idempotency_key")
    return key


def as_uuid(value: object) -> UUID:
    """A UUID, or the string of one; anything else is ``invalid_request``."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise refuse("invalid_request")


def lead_price(lead: Lead) -> Decimal:
    """What a lead costs: its marketplace price, never less than MIN_MARKETPLACE_PRICE (a
    lead priced below it is refused rather than sold at a price its row does not say)."""
    price = lead.marketplace_price
    if price is None:
        price = MARKETPLACE_CONFIG["MIN_MARKETPLACE_PRICE"]
    if price < MARKETPLACE_CONFIG["MIN_MARKETPLACE_PRICE"]:
        raise refuse("invalid_amount", lead_ids=(lead.id,), amount=price)
    return price


def purchase_items(leads: Sequence[Lead], sale_date: datetime) -> list[PurchaseItem]:
    """Each lead priced, with its partner's commission (none without a partner)."""
    items = []
    for lead in leads:
        price = lead_price(lead)
        if lead.partner is None:
            items.append(
                PurchaseItem(lead.id, price, lead.intent_score_calculated, lead.freshness_score)
            )
            continue
        c = calculate_commission(price, lead.partner, lead.created_at, sale_date)
        items.append(
            PurchaseItem(
                lead.id,
                price,
                lead.intent_score_calculated,
                lead.freshness_score,
                lead.partner_id,
                c.rate,
                c.amount,
                c.bonuses,
            )
        )
    return items


class PurchaseService:
    """Purchases and top-ups on a connection pool, through one of the three flows."""

    def __init__(self, pool: ConnectionPool, flow: str | None = None) -> None:
        self.pool = pool
        self.flow = check_flow(flow) if flow is not None else current_flow()
        self.repo = Repository(pool)

    # -- public ------------------------------------------------------------------------

    @translated
    def purchase(self, req: PurchaseRequest) -> PurchaseResult:
        """Buy the request's leads; raises a DomainError subclass when refused, a
        ServiceError when it could not be done."""
        prep = self._prepare(req)
        flows: dict[str, Callable[[_Prepared], PurchaseResult]] = {
            "atomic": self._atomic,
            "stepwise": self._stepwise,
            "legacy": self._legacy,
        }
        return flows[self.flow](prep)

    @translated
    def purchase_and_crash(self, req: PurchaseRequest, after: str) -> UUID | None:
        """The stepwise flow, stopped after ``after`` (debit | items | mark_sold | complete)
        as if the process died there. The purchase id (an earlier purchase's when the key
        replays); refusals raise as in :meth:`purchase`."""
        if after not in CRASH_POINTS:
            raise UsageError(
                f"unknown crash point {after!r}; choose one of: {', '.join(CRASH_POINTS)}"
            )
        prep = self._prepare(req)
        outcome = self._stepwise_run(prep, crash_after=after)
        return outcome.purchase_id if isinstance(outcome, PurchaseResult) else outcome

    @translated
    def top_up(
        self,
        workspace_id: UUID,
        amount: Decimal,
        package: str,
        email: str | None = None,
        payment_reference: str | None = None,
    ) -> Decimal:
        """Add credits and queue the credit purchase email, in one transaction; the new
        balance. The email goes to ``email``, else to the workspace's owner.

        ``payment_reference`` (the payment provider's id, 1 to 255 printable ASCII
        characters)
        makes a retried top-up safe: the same reference for the same workspace credits
        once, and a repeat answers the balance without crediting or emailing again.
        Every refusal (``invalid_amount``, ``invalid_request``, ``invalid_email``,
        ``unknown_workspace``) comes before anything is written."""
        workspace_id = as_uuid(workspace_id)
        try:
            valid = (
                isinstance(amount, Decimal)
                and amount.is_finite()
                and amount > 0
                and amount == amount.quantize(CENT)
                and amount <= MARKETPLACE_CONFIG["MAX_AMOUNT"]
            )
        except InvalidOperation:
            valid = False
        if not valid:
            raise refuse("invalid_amount", amount=amount)
        if (
            not isinstance(package, str)
            or not 1 <= len(package) <= MAX_PACKAGE_LENGTH
            or not package.isprintable()
            or not package.strip()
        ):
            raise refuse("invalid_request")
        if payment_reference is not None and not (
            isinstance(payment_reference, str)
            and 1 <= len(payment_reference) <= MAX_KEY_LENGTH
            and payment_reference.isascii()
            and payment_reference.isprintable()
        ):
            raise refuse("invalid_request")  # a payment provider's id: printable ASCII
        if email is not None:
            email = queue.recipient(email).address
        with self.repo.transaction() as conn:
            if not self.repo.workspace_exists(workspace_id, conn=conn):
                raise refuse("unknown_workspace")
            contact = self.repo.workspace_contact(workspace_id, email, conn=conn)
            address = queue.recipient(contact.email).address if contact else email
            if payment_reference is not None:
                self.repo.lock_payment_reference(workspace_id, payment_reference, conn=conn)
                if self.repo.payment_reference_seen(workspace_id, payment_reference, conn=conn):
                    # A retried payment: add_credits answers the balance and credits
                    # nothing; the email went with the first.
                    return self.repo.add_credits(
                        workspace_id, amount, package, payment_reference, conn=conn
                    )
            balance = self.repo.add_credits(
                workspace_id, amount, package, payment_reference, conn=conn
            )
            if address and self.repo.outbox_present(conn):
                queue.queue_credit_purchase_email(
                    conn,
                    queue.CreditPurchaseEmail(
                        email=address,
                        name=(contact.full_name if contact else None) or "",
                        credits_amount=amount,
                        total_price=amount,
                        package_name=package,
                        new_balance=balance,
                    ),
                    workspace_id=workspace_id,
                )
        return balance

    # -- validation and idempotency ---------------------------------------------------------

    def _prepare(self, req: PurchaseRequest) -> _Prepared:
        """Every check that needs no lock, before anything is written: the key, the ids,
        the leads asked for, membership, the buyer's address, the leads' existence and
        the total."""
        key = check_key(req.idempotency_key)
        ws, user = as_uuid(req.workspace_id), as_uuid(req.user_id)
        ids = tuple(req.lead_ids or ())
        if not ids:
            raise refuse("no_leads_selected")
        if any(i is None for i in ids):
            raise refuse("leads_not_found")
        ids = tuple(as_uuid(i) for i in ids)
        if len(set(ids)) != len(ids):
            raise refuse("duplicate_leads")
        with self.pool.connection() as conn:
            if not self.repo.is_member(ws, user, conn=conn):
                raise refuse("not_authorized")
            buyer = self.repo.get_user(user, conn=conn)
            if buyer is None:  # removed a moment ago, with its membership
                raise refuse("not_authorized")
            email = queue.recipient(buyer.email).address
            leads = self.repo.load_leads(ids, conn=conn)
        if len(leads) != len(ids):
            missing = sorted(set(ids) - {lead.id for lead in leads}, key=str)
            raise refuse("leads_not_found", lead_ids=missing)
        total = sum((lead_price(lead) for lead in leads), Decimal("0.00"))
        if total > MARKETPLACE_CONFIG["MAX_AMOUNT"]:
            raise refuse("invalid_amount", amount=total)
        req = PurchaseRequest(ws, user, ids, key)
        return _Prepared(req, tuple(leads), total, req.fingerprint(), email, buyer.full_name)

    def _claim_key(self, prep: _Prepared) -> PurchaseResult | None:
        """Take the request's key for this attempt (stepwise and legacy). None: go ahead;
        a result: the stored response to replay. Raises in-progress or mismatch."""
        if prep.key is None:
            return None
        ws = prep.req.workspace_id
        if self.repo.claim_key(ws, prep.key, prep.fingerprint):
            return None
        with self.repo.transaction() as conn:
            try:
                row = self.repo.lock_key_nowait(conn, ws, prep.key)
            except psycopg.errors.LockNotAvailable as exc:
                raise refuse("purchase_in_progress") from exc
            if row is None:  # removed with its workspace a moment ago
                raise refuse("purchase_in_progress")
            if row.request_fingerprint != prep.fingerprint:
                raise refuse("idempotency_mismatch")
            if row.status is KeyStatus.COMPLETED and row.response_data is not None:
                return PurchaseResult.from_response(row.response_data, replayed=True)
            if row.status is KeyStatus.PROCESSING:
                raise refuse("purchase_in_progress")
            self.repo.reclaim_key(conn, row.id)
        return None

    def _fail_key(self, prep: _Prepared, exc: BaseException) -> None:
        if prep.key is not None:
            self.repo.fail_key(
                prep.req.workspace_id,
                prep.key,
                {
                    "error_code": getattr(exc, "code", type(exc).__name__),
                    "error_message": str(exc),
                },
            )

    def _finish(self, prep: _Prepared, result: PurchaseResult) -> PurchaseResult:
        if prep.key is not None:
            self.repo.complete_key(
                prep.req.workspace_id, prep.key, result.purchase_id, result.as_response()
            )
        return result

    def _queue_confirmation(
        self, conn: psycopg.Connection, prep: _Prepared, purchase_id: UUID
    ) -> None:
        """The confirmation to the address validated before the debit."""
        data = queue.PurchaseConfirmationEmail.for_purchase(
            email=prep.email,
            name=prep.name,
            total_leads=len(prep.leads),
            total_price=prep.total_price,
            purchase_id=purchase_id,
            app_url=str(env.read("HARNESS_APP_URL")),
        )
        queue.queue_purchase_confirmation_email(conn, data, workspace_id=prep.req.workspace_id)

    # -- atomic ----------------------------------------------------------------------------

    def _atomic(self, prep: _Prepared) -> PurchaseResult:
        answer = self.repo.atomic_purchase(
            prep.req.workspace_id,
            prep.req.user_id,
            prep.lead_ids,
            prep.total_price,
            prep.key,
            prep.fingerprint if prep.key is not None else None,
            sql_config(),
        )
        status = answer["status"]
        if status == "completed":
            return PurchaseResult.from_response(answer["response"])
        if status == "replayed":
            return PurchaseResult.from_response(answer["response"], replayed=True)
        if status == "in_progress":
            raise refuse("purchase_in_progress")
        if status == "mismatch":
            raise refuse("idempotency_mismatch")
        balance = answer.get("balance")
        raise domain_error(
            answer.get("error_message"),
            required=prep.total_price,
            balance=Decimal(balance) if balance is not None else None,
        )

    # -- stepwise ----------------------------------------------------------------------------

    def _stepwise(self, prep: _Prepared) -> PurchaseResult:
        outcome = self._stepwise_run(prep, crash_after=None)
        assert isinstance(outcome, PurchaseResult)
        return outcome

    def _stepwise_run(self, prep: _Prepared, crash_after: str | None) -> PurchaseResult | UUID:
        replay = self._claim_key(prep)
        if replay is not None:
            return replay
        ws, repo = prep.req.workspace_id, self.repo
        try:
            purchase_id, new_balance = repo.purchase_with_credits(
                ws, prep.req.user_id, prep.lead_ids, prep.total_price
            )
        except Exception as exc:
            self._fail_key(prep, exc)
            raise
        if prep.key is not None:
            repo.link_key(
                ws,
                prep.key,
                purchase_id,
                {
                    "purchase_id": str(purchase_id),
                    "new_balance": str(new_balance),
                    "total_price": str(prep.total_price),
                },
            )
        if crash_after == "debit":
            return purchase_id

        repo.add_purchase_items(purchase_id, purchase_items(prep.leads, datetime.now(UTC)))
        if crash_after == "items":
            return purchase_id

        marked = repo.mark_purchase_leads_sold(purchase_id, prep.lead_ids)
        if marked is None:  # settled by reconcile before it completed
            raise fail(PurchaseInterrupted)
        if marked < len(prep.lead_ids):
            repo.refund_purchase(purchase_id)
            refusal = refuse("leads_no_longer_available", purchase_id=purchase_id)
            self._fail_key(prep, refusal)
            raise refusal
        if crash_after == "mark_sold":
            return purchase_id

        status = repo.complete_purchase(purchase_id)
        if status is not PurchaseStatus.COMPLETED:
            raise fail(PurchaseInterrupted)
        if crash_after == "complete":
            return purchase_id

        leads = repo.get_purchased_leads(purchase_id, ws)
        with repo.transaction() as conn:
            self._queue_confirmation(conn, prep, purchase_id)
        return self._finish(prep, PurchaseResult(purchase_id, new_balance, prep.total_price, leads))

    # -- legacy ------------------------------------------------------------------------------

    def _legacy(self, prep: _Prepared) -> PurchaseResult:
        replay = self._claim_key(prep)
        if replay is not None:
            return replay
        try:
            result = self._legacy_purchase(prep)
        except Exception as exc:
            self._fail_key(prep, exc)
            raise
        return self._finish(prep, result)

    def _legacy_purchase(self, prep: _Prepared) -> PurchaseResult:
        def q(name: str) -> str:
            return query("repository", name)

        ws, ids, total = prep.req.workspace_id, prep.lead_ids, prep.total_price
        with self.pool.connection() as conn:
            row = conn.execute(q("legacy_read_credits"), {"workspace_id": ws}).fetchone()
            if row is None:
                raise refuse("no_credits_account")
            balance, total_used = row
            if scalar(conn, q("legacy_already_purchased"), {"workspace_id": ws, "lead_ids": ids}):
                raise refuse("duplicate_purchase")
            if any(
                not lead.for_sale
                or (lead.max_sales is not None and lead.sold_count >= lead.max_sales)
                for lead in prep.leads
            ):
                raise refuse("leads_no_longer_available")
            if balance < total:
                raise InsufficientCredits(
                    USER_MESSAGES["insufficient_credits"], required=total, balance=balance
                )
            new_balance = balance - total
            try:
                with conn.transaction():
                    conn.execute(
                        q("legacy_write_balance"),
                        {
                            "workspace_id": ws,
                            "balance": new_balance,
                            "total_used": total_used + total,
                        },
                    )
                    purchase_id = scalar(
                        conn,
                        q("legacy_insert_purchase"),
                        {
                            "workspace_id": ws,
                            "user_id": prep.req.user_id,
                            "total_leads": len(ids),
                            "total_price": total,
                        },
                    )
                    conn.execute(
                        q("legacy_reserve"),
                        {"workspace_id": ws, "purchase_id": purchase_id, "lead_ids": ids},
                    )
                    self.repo.add_purchase_items(
                        purchase_id, purchase_items(prep.leads, datetime.now(UTC)), conn=conn
                    )
                    conn.execute(q("legacy_mark_sold"), {"lead_ids": ids})
                    conn.execute(q("legacy_complete"), {"purchase_id": purchase_id})
                    if self.repo.outbox_present(conn):
                        self._queue_confirmation(conn, prep, purchase_id)
            except psycopg.errors.UniqueViolation as exc:
                raise refuse("duplicate_purchase") from exc
            except psycopg.errors.CheckViolation as exc:
                if exc.diag.constraint_name == "leads_sold_within_max_sales":
                    raise refuse("leads_no_longer_available") from exc
                raise
            leads = self.repo.get_purchased_leads(purchase_id, ws, conn=conn)
        return PurchaseResult(purchase_id, new_balance, total, leads)


__all__ = [
    "CRASH_POINTS",
    "check_key",
    "FLOWS",
    "FLOW_ENV",
    "PurchaseRequest",
    "PurchaseResult",
    "PurchaseService",
    "current_flow",
    "download_url",
    "purchase_items",
    "sql_config",
]
