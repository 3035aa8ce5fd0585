"""Configuration and user-facing messages, from the source design's Fix #4 and Fix #5.

``MARKETPLACE_CONFIG`` and ``EMAIL_CONFIG`` hold every number the code uses;
``ERROR_MESSAGES`` every text a user sees; ``DB_MESSAGES`` maps each message the SQL
functions answer with to its stable error code, and ``USER_MESSAGES`` each code to its
user-facing text. Nothing else in the package spells these out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Final, TypedDict, cast


class MarketplaceConfig(TypedDict):
    """The keys of :data:`MARKETPLACE_CONFIG` and their types."""

    DOWNLOAD_EXPIRY_DAYS: int
    COMMISSION_HOLDBACK_DAYS: int
    MAX_FILE_SIZE_MB: int
    MAX_CSV_ROWS: int
    RATE_LIMIT_PURCHASE: int
    RATE_LIMIT_UPLOAD: int
    RATE_LIMIT_CREDITS: int
    DEFAULT_INTENT_SCORE: int
    DEFAULT_FRESHNESS_SCORE: int
    MIN_MARKETPLACE_PRICE: Decimal
    COMMISSION_BONUS_PASS_RATE: Decimal
    COMMISSION_FRESHNESS_DAYS: int
    COMMISSION_FRESHNESS_BONUS_RATE: Decimal
    MAX_AMOUNT: Decimal
    APP_URL: str


class EmailConfig(TypedDict):
    RETRY_ATTEMPTS: int
    RETRY_BACKOFF_MS: int


class ErrorMessages(TypedDict):
    """The keys of :data:`ERROR_MESSAGES`: texts, and functions that build a text."""

    INSUFFICIENT_CREDITS: str
    LEADS_NO_LONGER_AVAILABLE: str
    DUPLICATE_PURCHASE: str
    PURCHASE_IN_PROGRESS: str
    NO_CREDITS_ACCOUNT: str
    INVALID_AMOUNT: str
    NO_LEADS_SELECTED: str
    DUPLICATE_LEADS: str
    LEADS_NOT_FOUND: str
    IDEMPOTENCY_MISMATCH: str
    INVALID_IDEMPOTENCY_KEY: str
    INVALID_EMAIL: str
    INVALID_REQUEST: str
    UNKNOWN_WORKSPACE: str
    SERVICE_UNAVAILABLE: str
    SERVICE_FAILED: str
    PURCHASE_INTERRUPTED: str
    INVALID_FILE_TYPE: str
    FILE_TOO_LARGE: Callable[[float], str]
    TOO_MANY_ROWS: Callable[[int], str]
    INVALID_INDUSTRY: Callable[[str, Sequence[str]], str]
    INVALID_STATE: Callable[[str], str]
    FEATURE_NOT_AVAILABLE: str
    LIMIT_EXCEEDED: Callable[[str, int], str]
    NOT_AUTHENTICATED: str
    NOT_AUTHORIZED: str
    PARTNER_NOT_APPROVED: str


# Read-only at run time (a mapping proxy), typed key by key for the checker.
MARKETPLACE_CONFIG: Final = cast(
    MarketplaceConfig,
    MappingProxyType(
        {
            # Purchase settings
            "DOWNLOAD_EXPIRY_DAYS": 90,
            "COMMISSION_HOLDBACK_DAYS": 14,
            # Upload limits
            "MAX_FILE_SIZE_MB": 10,
            "MAX_CSV_ROWS": 10_000,
            # Rate limits (requests per minute)
            "RATE_LIMIT_PURCHASE": 10,
            "RATE_LIMIT_UPLOAD": 5,
            "RATE_LIMIT_CREDITS": 10,
            # Scoring
            "DEFAULT_INTENT_SCORE": 50,
            "DEFAULT_FRESHNESS_SCORE": 100,
            "MIN_MARKETPLACE_PRICE": Decimal("0.05"),
            # Commission rules (not in the source design, which never defines them)
            "COMMISSION_BONUS_PASS_RATE": Decimal("0.95"),
            "COMMISSION_FRESHNESS_DAYS": 7,
            "COMMISSION_FRESHNESS_BONUS_RATE": Decimal("0.02"),
            # Largest amount numeric(10,2) holds
            "MAX_AMOUNT": Decimal("99999999.99"),
            # Where download links point; HARNESS_APP_URL overrides it (harness.env).
            "APP_URL": "http://localhost:3000",
        }
    ),
)

# The worker's defaults; HARNESS_EMAIL_RETRY_ATTEMPTS and HARNESS_EMAIL_RETRY_BACKOFF_MS
# override them when a worker is built (harness.outbox.worker.WorkerSettings.resolve).
EMAIL_CONFIG: Final = cast(
    EmailConfig,
    MappingProxyType(
        {
            "RETRY_ATTEMPTS": 3,
            "RETRY_BACKOFF_MS": 1000,
        }
    ),
)

US_STATES: Final = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV "
    "NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY".split()
)


def _file_too_large(size_mb: float) -> str:
    return (
        f"Your file is {size_mb:.2f} MB. The maximum file size is "
        f"{MARKETPLACE_CONFIG['MAX_FILE_SIZE_MB']} MB. Please split your file into smaller "
        "batches."
    )


def _too_many_rows(count: int) -> str:
    return (
        f"Your file contains {count:,} rows. The maximum is "
        f"{MARKETPLACE_CONFIG['MAX_CSV_ROWS']:,} rows. Please split your file."
    )


ERROR_MESSAGES: Final = cast(
    ErrorMessages,
    MappingProxyType(
        {
            # Purchase errors
            "INSUFFICIENT_CREDITS": "You don't have enough credits to complete this purchase. "
            "Please add credits or select fewer leads.",
            "LEADS_NO_LONGER_AVAILABLE": "Some of the leads you selected are no longer available. "
            "Please refresh and try again.",
            "DUPLICATE_PURCHASE": "You've already purchased some of these leads. Check your "
            "purchase history.",
            "PURCHASE_IN_PROGRESS": "Your purchase is already being processed. Please wait a "
            "moment.",
            "NO_CREDITS_ACCOUNT": "Your workspace has no credits account yet. Please add credits "
            "first.",
            "INVALID_AMOUNT": "The purchase amount is not valid. Please refresh and try again.",
            "NO_LEADS_SELECTED": "Please select at least one lead.",
            "DUPLICATE_LEADS": "The same lead was selected more than once. Please check your "
            "selection.",
            "LEADS_NOT_FOUND": "Some of the leads you selected do not exist. Please refresh and "
            "try again.",
            "IDEMPOTENCY_MISMATCH": "This request reuses an idempotency key with different "
            "details. Use a new key for a new purchase.",
            # Not in the source design: the refusals and failures the service adds.
            "INVALID_IDEMPOTENCY_KEY": "The idempotency key must be 1 to 255 printable characters.",
            "INVALID_EMAIL": "Your account's email address cannot receive the confirmation. "
            "Please update it to one valid address and try again.",
            "INVALID_REQUEST": "The request is not valid. Please refresh and try again.",
            "UNKNOWN_WORKSPACE": "This workspace does not exist.",
            "SERVICE_UNAVAILABLE": "The service is busy. Please try again in a moment.",
            "SERVICE_FAILED": "Something went wrong on our side. Please try again in a moment "
            "or contact support.",
            "PURCHASE_INTERRUPTED": "Your purchase was interrupted and is being settled. Check "
            "your purchase history in a few minutes.",
            # Upload errors
            "INVALID_FILE_TYPE": "Please upload a CSV file. Other file types are not supported.",
            "FILE_TOO_LARGE": _file_too_large,
            "TOO_MANY_ROWS": _too_many_rows,
            "INVALID_INDUSTRY": lambda industry, valid: (
                f'"{industry}" is not a valid industry. Valid options are: {", ".join(valid)}'
            ),
            "INVALID_STATE": lambda state: (
                f'"{state}" is not a valid US state code. Please use 2-letter codes '
                "(e.g., CA, NY, TX)."
            ),
            # Campaign errors
            "FEATURE_NOT_AVAILABLE": "This feature requires a paid plan. Upgrade your account to "
            "access campaigns.",
            "LIMIT_EXCEEDED": lambda resource, limit: (
                f"You've reached your limit of {limit} {resource}. "
                "Upgrade your plan to create more."
            ),
            # Auth errors
            "NOT_AUTHENTICATED": "Please sign in to continue.",
            "NOT_AUTHORIZED": "You don't have permission to access this resource.",
            "PARTNER_NOT_APPROVED": "Your partner account is pending approval. Please contact "
            "support for assistance.",
        }
    ),
)

# The exact messages the SQL functions answer with (success = false), and their codes.
# 'Insufficient credits' and 'No credits account found' are the source design's, verbatim.
DB_MESSAGES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "Insufficient credits": "insufficient_credits",
        "No credits account found": "no_credits_account",
        "Invalid amount": "invalid_amount",
        "Credits used must equal the total price": "invalid_amount",
        "Total price does not match the leads": "invalid_amount",
        "No leads selected": "no_leads_selected",
        "Duplicate leads selected": "duplicate_leads",
        "Leads not found": "leads_not_found",
        "Leads no longer available": "leads_no_longer_available",
        "Leads already purchased": "duplicate_purchase",
        "Not a member of this workspace": "not_authorized",
    }
)

# Each stable code and the text a user sees for it.
USER_MESSAGES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "insufficient_credits": ERROR_MESSAGES["INSUFFICIENT_CREDITS"],
        "no_credits_account": ERROR_MESSAGES["NO_CREDITS_ACCOUNT"],
        "invalid_amount": ERROR_MESSAGES["INVALID_AMOUNT"],
        "no_leads_selected": ERROR_MESSAGES["NO_LEADS_SELECTED"],
        "duplicate_leads": ERROR_MESSAGES["DUPLICATE_LEADS"],
        "leads_not_found": ERROR_MESSAGES["LEADS_NOT_FOUND"],
        "leads_no_longer_available": ERROR_MESSAGES["LEADS_NO_LONGER_AVAILABLE"],
        "duplicate_purchase": ERROR_MESSAGES["DUPLICATE_PURCHASE"],
        "purchase_in_progress": ERROR_MESSAGES["PURCHASE_IN_PROGRESS"],
        "idempotency_mismatch": ERROR_MESSAGES["IDEMPOTENCY_MISMATCH"],
        "not_authorized": ERROR_MESSAGES["NOT_AUTHORIZED"],
        "invalid_idempotency_key": ERROR_MESSAGES["INVALID_IDEMPOTENCY_KEY"],
        "invalid_email": ERROR_MESSAGES["INVALID_EMAIL"],
        "invalid_request": ERROR_MESSAGES["INVALID_REQUEST"],
        "unknown_workspace": ERROR_MESSAGES["UNKNOWN_WORKSPACE"],
        # Failures that are not refusals (ServiceError): what the user is told.
        "database_unavailable": ERROR_MESSAGES["SERVICE_UNAVAILABLE"],
        "database_error": ERROR_MESSAGES["SERVICE_FAILED"],
        "internal_error": ERROR_MESSAGES["SERVICE_FAILED"],
        "purchase_interrupted": ERROR_MESSAGES["PURCHASE_INTERRUPTED"],
    }
)

# Industries a partner's lead may carry (the source design names the check, not the list).
# Matched case-insensitively on import and stored as spelled here.
INDUSTRIES: Final = (
    "Technology",
    "Software",
    "Healthcare",
    "Finance",
    "Insurance",
    "Real Estate",
    "Retail",
    "E-commerce",
    "Manufacturing",
    "Construction",
    "Education",
    "Legal",
    "Marketing",
    "Hospitality",
    "Transportation",
    "Energy",
    "Telecommunications",
    "Nonprofit",
    "Government",
    "Other",
)
