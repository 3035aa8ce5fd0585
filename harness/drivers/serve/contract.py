"""The HTTP contract of the purchase route: paths, the status of every refusal, and the
shape of the answers, as both sides see it.

``harness serve`` implements it; the load's Locust users, verify's ``http`` checks, the
gate's full-flow item and the pytest plugin's client speak it to any server, the team's
own application included. docs/serve.md is its prose; :data:`ERRORS` is its one table
(the documentation test compares the two).

Money travels as decimal strings with two places (``"9.30"``), never as JSON numbers, so
no amount passes through a binary float; a client of another application that answers
numbers is read with ``Decimal(str(value))``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from harness.config import ERROR_MESSAGES, USER_MESSAGES

PURCHASE = "/api/marketplace/purchase"
PURCHASES = "/api/marketplace/purchases/{purchase_id}"
DOWNLOAD = "/api/marketplace/download/{purchase_id}"
TOPUP = "/api/credits/topup"
HEALTH = "/healthz"
OPENAPI = "/openapi.json"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# The largest request body read: a purchase of the most leads one request may name
# (1000 ids, about 40 KB of JSON) fits with room to spare; anything larger is refused
# before it is parsed, so a huge body costs neither memory nor a parse.
MAX_BODY_BYTES = 128 * 1024
MAX_LEADS_PER_REQUEST = 1000
PAYMENT_METHODS = ("credits",)
# Rate limit buckets, and the MARKETPLACE_CONFIG key each takes its limit from.
BUCKETS = {"purchase": "RATE_LIMIT_PURCHASE", "credits": "RATE_LIMIT_CREDITS"}
WINDOW_S = 60  # the source design's limits are per minute

# The columns of a download, in order: what the buyer bought, as the purchase answer's
# leads carry them.
CSV_COLUMNS = (
    "lead_id",
    "email",
    "company",
    "industry",
    "state",
    "price_at_purchase",
    "intent_score_at_purchase",
    "freshness_score_at_purchase",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ErrorSpec:
    """One stable error code: its HTTP status, when it is answered, and the user's text."""

    code: str
    status: int
    when: str
    message: str


def _spec(code: str, status: int, when: str, message: str | None = None) -> ErrorSpec:
    return ErrorSpec(code, status, when, message or USER_MESSAGES[code])


# Every refusal the route answers, by code. The purchase service's codes keep their
# names; the HTTP layer adds the ones only HTTP has (authentication, rate limits,
# routes, downloads).
ERRORS: dict[str, ErrorSpec] = {
    s.code: s
    for s in (
        _spec(
            "invalid_request",
            422,
            "the body, a header or a path parameter does not match the schema",
        ),
        _spec(
            "invalid_idempotency_key",
            422,
            "the Idempotency-Key is empty, too long or not printable ASCII",
        ),
        _spec("invalid_email", 422, "an email address the service refuses"),
        _spec("no_leads_selected", 422, "lead_ids is empty"),
        _spec("duplicate_leads", 422, "lead_ids names a lead twice"),
        _spec("invalid_amount", 422, "a price or top-up amount is not a positive amount"),
        _spec(
            "not_authenticated",
            401,
            "no bearer token, or one that is malformed, badly signed or expired",
            ERROR_MESSAGES["NOT_AUTHENTICATED"],
        ),
        _spec("not_authorized", 403, "the token's user is no member of the token's workspace"),
        _spec("insufficient_credits", 402, "the balance is below the price of the leads"),
        _spec("no_credits_account", 402, "the workspace has never had credits"),
        _spec("leads_not_found", 404, "some lead_ids name no lead"),
        _spec("unknown_workspace", 404, "the token's workspace does not exist"),
        _spec(
            "purchase_not_found",
            404,
            "no purchase with this id belongs to the token's workspace",
            "We could not find that purchase. Check your purchase history.",
        ),
        _spec(
            "not_found",
            404,
            "no route has this path",
            "There is nothing at this address.",
        ),
        _spec(
            "method_not_allowed",
            405,
            "the route exists but not with this method",
            "This address does not accept that kind of request.",
        ),
        _spec(
            "payload_too_large",
            413,
            f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB",
            "This request is too large. Please select fewer leads and try again.",
        ),
        _spec("duplicate_purchase", 409, "the workspace already bought one of the leads"),
        _spec("leads_no_longer_available", 409, "a lead is sold out or withdrawn"),
        _spec(
            "purchase_in_progress",
            409,
            "a request with this Idempotency-Key is still being processed",
        ),
        _spec(
            "idempotency_mismatch",
            409,
            "the Idempotency-Key was used for a different request",
        ),
        _spec(
            "payment_reference_mismatch",
            409,
            "a top-up repeats a payment_reference that was credited with another amount",
            "This payment was already credited with a different amount. Contact support.",
        ),
        _spec(
            "purchase_not_completed",
            409,
            "a download of a purchase that is still pending",
            "Your purchase is still being processed. Please try the download again in a moment.",
        ),
        _spec(
            "purchase_refunded",
            410,
            "a download of a refunded purchase (its leads are never sent)",
            "This purchase was refunded, so its leads can no longer be downloaded.",
        ),
        _spec(
            "download_expired",
            410,
            "a download more than DOWNLOAD_EXPIRY_DAYS after the purchase completed",
            "This download link has expired. Contact support for a copy of your leads.",
        ),
        _spec(
            "rate_limited",
            429,
            "more requests than RATE_LIMIT_PURCHASE (purchases) or RATE_LIMIT_CREDITS "
            "(top-ups) per user per minute; Retry-After says when to come back",
            "Too many requests. Please wait a moment and try again.",
        ),
        _spec(
            "database_unavailable",
            503,
            "the purchase service could not reach its database, or it timed out",
        ),
        _spec(
            "database_error",
            500,
            "the database answered a purchase or top-up with an error",
        ),
        _spec(
            "purchase_interrupted",
            500,
            "a stepwise purchase was settled by someone else (reconcile) while it ran",
        ),
        _spec(
            "service_unavailable",
            503,
            "GET /healthz when the database does not answer",
            "The service is unavailable. Please try again in a moment.",
        ),
        _spec(
            "internal_error",
            500,
            "anything the route or the service did not expect (a bug)",
        ),
    )
}

# Refusals of the purchase service that are not in ERRORS under their own name go out
# under this status (a code added to harness.errors later still gets a sensible answer;
# tests/test_serve.py asks that every known code has its own row).
DEFAULT_REFUSAL_STATUS = 422


def status_of(code: str) -> int:
    """The HTTP status a refusal with this code is answered with."""
    spec = ERRORS.get(code)
    return spec.status if spec else DEFAULT_REFUSAL_STATUS


def codes_by_status() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for spec in ERRORS.values():
        out.setdefault(spec.status, []).append(spec.code)
    return dict(sorted(out.items()))


def error_table() -> str:
    """The Markdown table of every status and code (docs/serve.md carries it)."""
    rows = ["| status | code | when | what the user reads |", "|---|---|---|---|"]
    for spec in sorted(ERRORS.values(), key=lambda s: (s.status, s.code)):
        rows.append(f"| {spec.status} | `{spec.code}` | {spec.when} | {spec.message} |")
    return "\n".join(rows) + "\n"


# -- reading answers (clients) ----------------------------------------------------------


def money(value: Any) -> Decimal:
    """An amount of an answer: a decimal string (ours) or a JSON number (another app's)."""
    return Decimal(str(value))


def outcome(status: int, body: Any) -> str:
    """What an answer to a purchase means, in one word a load report can count:
    ``purchased``, ``replayed``, a refusal's code, or ``unexpected`` (any status or body
    the contract does not have)."""
    if not isinstance(body, Mapping):
        return "unexpected"
    if status == 200 and body.get("success") is True:
        return "replayed" if body.get("replayed") else "purchased"
    code = body.get("code")
    if isinstance(code, str) and code in ERRORS and ERRORS[code].status == status:
        return code
    return "unexpected"


def purchase_id_of(body: Mapping[str, Any]) -> str | None:
    """The purchase id of a successful purchase answer."""
    purchase = body.get("purchase")
    if isinstance(purchase, Mapping) and purchase.get("id"):
        return str(purchase["id"])
    return None


def purchase_body(lead_ids: Iterable[object]) -> dict[str, Any]:
    return {"lead_ids": [str(i) for i in lead_ids], "payment_method": "credits"}


def headers(token: str, idempotency_key: str | None = None) -> dict[str, str]:
    out = {"Authorization": f"Bearer {token}"}
    if idempotency_key is not None:
        out[IDEMPOTENCY_HEADER] = idempotency_key
    return out


# -- CSV -----------------------------------------------------------------------------------


def safe_cell(value: object) -> str:
    """A cell no spreadsheet runs as a formula: a leading = + - @ tab or carriage return
    is neutralised with a leading apostrophe (OWASP's advice for CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def leads_csv(leads: Sequence[Mapping[str, Any]]) -> str:
    """The purchased leads as CSV, one row per lead, every cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for lead in leads:
        writer.writerow([safe_cell(lead.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


__all__ = [
    "CSV_COLUMNS",
    "DOWNLOAD",
    "ERRORS",
    "HEALTH",
    "MAX_BODY_BYTES",
    "OPENAPI",
    "PURCHASE",
    "PURCHASES",
    "TOPUP",
    "ErrorSpec",
    "error_table",
    "headers",
    "leads_csv",
    "outcome",
    "purchase_body",
    "safe_cell",
    "status_of",
]
