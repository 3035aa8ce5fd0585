"""The purchase route as an ASGI application (FastAPI), over ``PurchaseService``.

Routes (the contract: :mod:`harness.drivers.serve.contract`, docs/serve.md):

``POST /api/marketplace/purchase``
    ``{"lead_ids": [...], "payment_method": "credits"}`` with an optional
    ``Idempotency-Key`` header; answers the source design's shape ``{"success": true,
    "purchase": {...}, "leads": [...], "totalPrice", "creditsRemaining"}`` (plus
    ``replayed``), or a refusal ``{"code", "error", ...}`` with its status.
``GET /api/marketplace/purchases/{purchase_id}``
    the buyer's own purchase, with its leads once completed.
``GET /api/marketplace/download/{purchase_id}``
    the purchased leads as CSV: the buyer's workspace only, a completed purchase only,
    within ``DOWNLOAD_EXPIRY_DAYS`` of its completion; a refunded one answers 410.
``POST /api/credits/topup``
    ``{"amount", "package", "payment_reference"}``: credits added once per reference.
``GET /healthz``
    the database answers.

Every route but ``/healthz`` takes a bearer token (:mod:`.tokens`) whose user must be a
member of its workspace; purchases and top-ups are rate limited per user
(:mod:`.limits`). Handlers are plain functions: FastAPI runs them on its thread pool,
each with a pooled connection, so purchases really run side by side in the database.
The OpenAPI document at ``/openapi.json`` names every status and error body each route
can answer.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations at
# run time, and the aliases defined inside create_app would not resolve as strings.
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

import psycopg
from fastapi import Depends, FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harness import __version__, db
from harness.config import MARKETPLACE_CONFIG
from harness.drivers.serve import contract, tokens
from harness.drivers.serve.limits import Limiter, Limits
from harness.errors import DomainError, HarnessError, ServiceError, UsageError
from harness.money.repository import PurchaseStatus, Repository
from harness.money.service import PurchaseRequest, PurchaseService
from harness.outbox import queue
from harness.values import CENT

log = logging.getLogger("harness.serve")

APPLICATION_NAME = "harness-serve"
DEFAULT_POOL_SIZE = 20
MONEY_PATTERN = r"^\d{1,8}(\.\d{1,2})?$"
Money = Annotated[str, Field(pattern=MONEY_PATTERN, examples=["9.30"])]
# Text the database stores and an email shows: no control character (PostgreSQL text holds
# no NUL byte), and none of the invisible ones that disguise text (soft hyphen, zero-width
# characters, bidirectional overrides, line and paragraph separators, byte order mark). A
# pattern rather than a validator, so that schema-driven clients generate what the route
# really accepts.
PRINTABLE_PATTERN = (
    r"^[^\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    r"\ufeff\ufff9-\ufffb]+$"
)


def default_limits() -> Limits:
    """The source design's limits: RATE_LIMIT_PURCHASE and RATE_LIMIT_CREDITS."""
    return Limits(
        purchase=MARKETPLACE_CONFIG["RATE_LIMIT_PURCHASE"],
        credits=MARKETPLACE_CONFIG["RATE_LIMIT_CREDITS"],
    )


@dataclass(frozen=True)
class AppConfig:
    """What one server process needs: its database, the token secret, its pool, limits,
    and the purchase flow (None: ``HARNESS_PURCHASE_FLOW``)."""

    dsn: str
    secret: str
    pool_size: int = DEFAULT_POOL_SIZE
    limits: Limits = field(default_factory=default_limits)
    flow: str | None = None


# -- the documents: request and answer bodies ----------------------------------------------

ErrorCode = StrEnum("ErrorCode", {c: c for c in contract.ERRORS})  # type: ignore[misc]


class ErrorBody(BaseModel):
    """A refusal: its stable code and the text a user reads, with what it is about."""

    code: ErrorCode
    error: str
    required: Money | None = None
    balance: Money | None = None
    lead_ids: list[UUID] | None = None
    retry_after: int | None = None
    detail: list[str] | None = None


class PurchaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lead_ids: list[UUID] = Field(
        max_length=contract.MAX_LEADS_PER_REQUEST, description="the leads to buy, each once"
    )
    payment_method: Literal["credits"] = Field(description="only credits are accepted here")


class TopUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Money = Field(description="credits to add: a positive amount, two decimals at most")
    package: str = Field(
        min_length=1, max_length=100, pattern=PRINTABLE_PATTERN, examples=["starter"]
    )
    payment_reference: str = Field(
        min_length=1,
        max_length=contract.MAX_KEY_LENGTH,
        pattern=r"^[\x20-\x7e]+$",
        description="the payment provider's reference (printable ASCII); a second top-up "
        "with the same reference adds nothing and answers the first one's balance",
    )


class PurchaseOut(BaseModel):
    id: UUID
    status: Literal["pending", "completed", "refunded"]
    total_leads: int
    total_price: Money
    payment_method: str
    credits_used: Money
    created_at: datetime
    completed_at: datetime | None
    refunded_at: datetime | None
    download_url: str | None = Field(description="set once the purchase is completed")
    download_expires_at: datetime | None


class LeadOut(BaseModel):
    lead_id: UUID
    email: str | None
    company: str | None
    industry: str | None
    state: str | None
    price_at_purchase: Money
    intent_score_at_purchase: int | None
    freshness_score_at_purchase: int | None


class PurchaseAnswer(BaseModel):
    """The source design's response: the purchase, its leads, the price, the balance."""

    success: Literal[True]
    purchase: PurchaseOut
    leads: list[LeadOut]
    totalPrice: Money  # noqa: N815 (the source design's names)
    creditsRemaining: Money  # noqa: N815
    replayed: bool = Field(description="an Idempotency-Key replay of an earlier request")


class PurchaseView(BaseModel):
    purchase: PurchaseOut
    leads: list[LeadOut] = Field(description="the leads, once the purchase is completed")


class TopUpAnswer(BaseModel):
    success: Literal[True]
    workspace_id: UUID
    amount: Money
    package: str
    payment_reference: str
    new_balance: Money
    replayed: bool


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    flow: str
    version: str


# -- refusals ---------------------------------------------------------------------------------


class Refusal(Exception):
    """An answer other than success: a stable code, its status, and what it is about."""

    def __init__(self, code: str, *, headers: dict[str, str] | None = None, **fields: Any) -> None:
        super().__init__(code)
        self.code = code
        self.status = contract.status_of(code)
        self.headers = headers or {}
        self.fields = {k: v for k, v in fields.items() if v is not None}

    def response(self) -> JSONResponse:
        spec = contract.ERRORS.get(self.code)
        body: dict[str, Any] = {
            "code": self.code,
            "error": self.fields.pop("message", None) or (spec.message if spec else self.code),
            **self.fields,
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def refusal_of(exc: DomainError) -> Refusal:
    def text(value: object) -> str | None:
        return None if value is None else f"{Decimal(str(value)):.2f}"

    money_fields: dict[str, Any] = {}
    if exc.code == "insufficient_credits":
        money_fields = {"required": text(exc.required), "balance": text(exc.balance)}
    return Refusal(
        exc.code,
        message=exc.message,
        lead_ids=[str(i) for i in exc.lead_ids] or None,
        **money_fields,
    )


def failure_of(exc: ServiceError) -> Refusal:
    """The answer to a purchase the service could not do: its code's 5xx, the cause in
    the log (never in the answer)."""
    log.error("%s: %s", exc.code, exc)
    return Refusal(exc.code if exc.code in contract.ERRORS else "internal_error")


def _documented(*codes: str, headers: dict[str, Any] | None = None) -> dict[int | str, Any]:
    """The ``responses`` of a route: each status its codes share, with ErrorBody."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(contract.ERRORS[code].status, []).append(code)
    out: dict[int | str, Any] = {}
    for status, names in sorted(by_status.items()):
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": "; ".join(f"`{n}`: {contract.ERRORS[n].when}" for n in names),
        }
        if status == 429:
            entry["headers"] = {
                "Retry-After": {
                    "description": "seconds until the user's window ends",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}
            }
        out[status] = entry
    return out


AUTH_CODES = ("not_authenticated", "not_authorized", "invalid_request", "internal_error")


# -- the application --------------------------------------------------------------------------


class BodyTooLarge(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodyLimit:
    """Refuses a request body above ``limit`` bytes with 413 ``payload_too_large`` before
    any of it is parsed: at once when Content-Length announces it, else as soon as the
    chunks received pass the limit (a chunked body announces no length)."""

    def __init__(self, app: ASGIApp, limit: int = contract.MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await Refusal("payload_too_large").response()(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge()
            return message

        await self.app(scope, limited, send)


class State:
    """What the routes share once the application has started."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.pool = db.pool(
            config.dsn,
            min_size=1,
            max_size=config.pool_size,
            application_name=APPLICATION_NAME,
        )
        try:
            self.service = PurchaseService(self.pool, config.flow)
            self.repo = Repository(self.pool)
            self.limiter = Limiter(self.pool, config.limits)
            self.limiter.require_schema()
        except BaseException:
            self.pool.close()
            raise

    def close(self) -> None:
        self.pool.close()


def create_app(config: AppConfig) -> FastAPI:
    """The application; its pool opens when it starts and closes when it stops."""
    holder: dict[str, State] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        holder["state"] = State(config)
        try:
            yield
        finally:
            holder.pop("state").close()

    app = FastAPI(
        title="harness serve: the lead marketplace's purchase route",
        version=__version__,
        description="The source design's purchase route over the money-path functions. "
        "Every refusal is an ErrorBody with a stable code; the status of each code is in "
        "docs/serve.md. Money is a decimal string with two places.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit)
    bearer = HTTPBearer(auto_error=False, description="HS256 JWT naming workspace_id and sub")

    def state() -> State:
        return holder["state"]

    def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        st: Annotated[State, Depends(state)],
    ) -> tokens.Principal:
        if credentials is None:
            raise Refusal("not_authenticated", headers={"WWW-Authenticate": "Bearer"})
        try:
            who = tokens.verify(st.config.secret, credentials.credentials)
        except tokens.TokenError:
            raise Refusal("not_authenticated", headers={"WWW-Authenticate": "Bearer"}) from None
        with st.pool.connection() as conn:
            member = db.scalar(
                conn,
                db.query("serve", "is_member"),
                {"workspace_id": who.workspace_id, "user_id": who.user_id},
            )
        if not member:
            raise Refusal("not_authorized")
        return who

    Who = Annotated[tokens.Principal, Depends(principal)]
    St = Annotated[State, Depends(state)]
    PurchaseId = Annotated[UUID, Path(description="a purchase of the token's workspace")]

    def limit(st: State, who: tokens.Principal, bucket: str, key: str | None) -> None:
        wait = st.limiter.hit(who.user_id, bucket, who.workspace_id, key)
        if wait:
            raise Refusal("rate_limited", retry_after=wait, headers={"Retry-After": str(wait)})

    @app.exception_handler(Refusal)
    async def on_refusal(_request: Request, exc: Refusal) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        ]
        return Refusal("invalid_request", detail=problems[:20]).response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals: no route, wrong method, a body it cannot parse.
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code
        )
        if code is None:
            return Refusal("invalid_request", detail=[str(exc.detail)]).response()
        return Refusal(code).response()

    @app.exception_handler(Exception)
    async def on_crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error: %s", exc)
        return Refusal("internal_error").response()

    def purchase_out(request: Request, p: Any) -> dict[str, Any]:
        completed = p.status is PurchaseStatus.COMPLETED
        expires = (
            p.completed_at + timedelta(days=MARKETPLACE_CONFIG["DOWNLOAD_EXPIRY_DAYS"])
            if completed and p.completed_at
            else None
        )
        link = str(request.url_for("download", purchase_id=str(p.id))) if completed else None
        return {
            "id": str(p.id),
            "status": p.status.value,
            "total_leads": p.total_leads,
            "total_price": f"{p.total_price:.2f}",
            "payment_method": p.payment_method,
            "credits_used": f"{p.credits_used:.2f}",
            "created_at": p.created_at,
            "completed_at": p.completed_at,
            "refunded_at": p.refunded_at,
            "download_url": link,
            "download_expires_at": expires,
        }

    @app.post(
        contract.PURCHASE,
        response_model=PurchaseAnswer,
        summary="Buy leads with credits",
        operation_id="purchase",
        responses=_documented(
            *AUTH_CODES,
            "no_leads_selected",
            "duplicate_leads",
            "invalid_amount",
            "insufficient_credits",
            "no_credits_account",
            "leads_not_found",
            "unknown_workspace",
            "invalid_idempotency_key",
            "database_unavailable",
            "database_error",
            "purchase_interrupted",
            "duplicate_purchase",
            "leads_no_longer_available",
            "purchase_in_progress",
            "idempotency_mismatch",
            "rate_limited",
            "payload_too_large",
        ),
        openapi_extra={
            "responses": {
                "200": {
                    "links": {
                        "GetPurchase": {
                            "operationId": "get_purchase",
                            "parameters": {"purchase_id": "$response.body#/purchase/id"},
                        },
                        "DownloadPurchase": {
                            "operationId": "download",
                            "parameters": {"purchase_id": "$response.body#/purchase/id"},
                        },
                    }
                }
            }
        },
    )
    def purchase(
        request: Request,
        body: PurchaseIn,
        who: Who,
        st: St,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias=contract.IDEMPOTENCY_HEADER,
                min_length=1,
                max_length=contract.MAX_KEY_LENGTH,
                pattern=r"^[\x21-\x7e]+$",
                description="a retry with the same key and body replays the first answer "
                "instead of buying again",
            ),
        ] = None,
    ) -> Any:
        limit(st, who, "purchase", idempotency_key)
        req = PurchaseRequest(who.workspace_id, who.user_id, tuple(body.lead_ids), idempotency_key)
        try:
            result = st.service.purchase(req)
        except DomainError as exc:
            raise refusal_of(exc) from None
        except ServiceError as exc:
            raise failure_of(exc) from None
        except UsageError as exc:
            raise Refusal("invalid_request", detail=[exc.message]) from None
        bought = st.repo.get_purchase(result.purchase_id)
        if bought is None:
            raise HarnessError(f"purchase {result.purchase_id} vanished after it was made")
        return {
            "success": True,
            "purchase": purchase_out(request, bought),
            "leads": result.leads,
            "totalPrice": f"{result.total_price:.2f}",
            "creditsRemaining": f"{result.new_balance:.2f}",
            "replayed": result.replayed,
        }

    def own_purchase(st: State, who: tokens.Principal, purchase_id: UUID) -> Any:
        bought = st.repo.get_purchase(purchase_id)
        if bought is None or bought.buyer_workspace_id != who.workspace_id:
            raise Refusal("purchase_not_found")
        return bought

    @app.get(
        contract.PURCHASES,
        response_model=PurchaseView,
        summary="One purchase of the token's workspace",
        operation_id="get_purchase",
        responses=_documented(*AUTH_CODES, "purchase_not_found"),
    )
    def get_purchase(request: Request, purchase_id: PurchaseId, who: Who, st: St) -> Any:
        bought = own_purchase(st, who, purchase_id)
        leads = (
            st.repo.get_purchased_leads(purchase_id, who.workspace_id)
            if bought.status is PurchaseStatus.COMPLETED
            else []
        )
        return {"purchase": purchase_out(request, bought), "leads": leads}

    @app.get(
        contract.DOWNLOAD,
        name="download",
        summary="The purchased leads as CSV",
        operation_id="download",
        response_class=Response,
        responses={
            200: {
                "description": "the leads, one row each; cells a spreadsheet would run as a "
                "formula are neutralised with a leading apostrophe",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            **_documented(
                *AUTH_CODES,
                "purchase_not_found",
                "purchase_not_completed",
                "purchase_refunded",
                "download_expired",
            ),
        },
    )
    def download(purchase_id: PurchaseId, who: Who, st: St) -> Response:
        bought = own_purchase(st, who, purchase_id)
        if bought.status is PurchaseStatus.REFUNDED:
            raise Refusal("purchase_refunded")
        if bought.status is not PurchaseStatus.COMPLETED or bought.completed_at is None:
            raise Refusal("purchase_not_completed")
        expiry = timedelta(days=MARKETPLACE_CONFIG["DOWNLOAD_EXPIRY_DAYS"])
        if datetime.now(UTC) > bought.completed_at + expiry:
            raise Refusal("download_expired")
        leads = st.repo.get_purchased_leads(purchase_id, who.workspace_id)
        return Response(
            contract.leads_csv(leads),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="purchase-{purchase_id}.csv"'},
        )

    @app.post(
        contract.TOPUP,
        response_model=TopUpAnswer,
        summary="Add credits to the token's workspace, once per payment reference",
        operation_id="topup",
        responses=_documented(
            *AUTH_CODES,
            "invalid_amount",
            "payment_reference_mismatch",
            "database_error",
            "rate_limited",
            "payload_too_large",
        ),
    )
    def topup(body: TopUpIn, who: Who, st: St) -> Any:
        try:
            amount = Decimal(body.amount)
        except InvalidOperation:
            raise Refusal("invalid_amount") from None
        if amount <= 0 or amount != amount.quantize(CENT):
            raise Refusal("invalid_amount")
        limit(st, who, "credits", body.payment_reference)
        try:
            balance, replayed = top_up(st, who.workspace_id, amount, body)
        except DomainError as exc:
            raise refusal_of(exc) from None
        except psycopg.errors.NumericValueOutOfRange:
            raise Refusal(
                "invalid_amount",
                message="This top-up would take the balance past the largest amount an "
                "account can hold.",
            ) from None
        return {
            "success": True,
            "workspace_id": str(who.workspace_id),
            "amount": f"{amount:.2f}",
            "package": body.package,
            "payment_reference": body.payment_reference,
            "new_balance": f"{balance:.2f}",
            "replayed": replayed,
        }

    @app.get(
        contract.HEALTH,
        response_model=Health,
        summary="The server and its database answer",
        operation_id="health",
        responses=_documented("service_unavailable", "internal_error"),
    )
    def health(st: St) -> Any:
        try:
            with st.pool.connection(timeout=5) as conn:
                db.scalar(conn, db.query("serve", "health"))
        except Exception:
            raise Refusal("service_unavailable") from None
        return {"status": "ok", "database": "ok", "flow": st.service.flow, "version": __version__}

    return app


def top_up(st: State, workspace_id: UUID, amount: Decimal, body: TopUpIn) -> tuple[Decimal, bool]:
    """Credit the top-up once per payment reference (add_credits of migration 0005) and,
    the first time only, queue the credit purchase email, in one transaction. The new
    balance, and whether the reference had been credited before."""
    with st.repo.transaction() as conn:
        balance = db.scalar(
            conn,
            db.query("serve", "add_credits"),
            {
                "workspace_id": workspace_id,
                "amount": amount,
                "package": body.package,
                "reference": body.payment_reference,
            },
        )
        row = conn.execute(
            db.query("serve", "payment_reference"),
            {"workspace_id": workspace_id, "reference": body.payment_reference},
        ).fetchone()
        if row is None:
            raise HarnessError("add_credits recorded no payment reference")
        credited, new = row
        if not new:
            if credited != amount:
                raise Refusal("payment_reference_mismatch")
            return Decimal(balance), True
        contact = st.repo.workspace_contact(workspace_id, conn=conn)
        if contact is not None and st.repo.outbox_present(conn):
            queue.queue_credit_purchase_email(
                conn,
                queue.CreditPurchaseEmail(
                    email=contact.email,
                    name=contact.full_name or "",
                    credits_amount=amount,
                    total_price=amount,
                    package_name=body.package,
                    new_balance=Decimal(balance),
                ),
                workspace_id=workspace_id,
            )
    return Decimal(balance), False


def app_from_env() -> FastAPI:
    """The application as a server worker process builds it (``--workers`` above 1):
    from the variables ``harness serve`` exported for its workers."""
    from harness import env

    dsn = env.read("HARNESS_DSN")
    secret = env.read("HARNESS_JWT_SECRET")
    if not dsn or not secret:
        raise UsageError("a server worker needs HARNESS_DSN and HARNESS_JWT_SECRET")
    return create_app(
        AppConfig(
            dsn=dsn,
            secret=secret,
            pool_size=env.read("HARNESS_SERVE_POOL_SIZE"),
            limits=Limits(
                purchase=env.read("HARNESS_RATE_LIMIT_PURCHASE"),
                credits=env.read("HARNESS_RATE_LIMIT_CREDITS"),
            ),
        )
    )


Factory = Callable[[], FastAPI]

__all__ = ["AppConfig", "ErrorBody", "Refusal", "app_from_env", "create_app", "default_limits"]
