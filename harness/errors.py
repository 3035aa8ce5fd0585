"""Every error the harness raises, in one tree.

::

    HarnessError                       exit status 1 unless a subclass says otherwise
    ├── UsageError                     (2) bad option, missing directory, bad input file
    │   ├── ScenarioError              (2) a scenario file is not valid
    │   └── ImportRejected             (2) a lead file was refused; nothing imported
    ├── CannotRun                      (2) verification could not run (e.g. migrations fail)
    ├── ScenarioSetupError             a scenario could not be set up
    ├── ProvisionError                 (2) no database could be had
    │   ├── DockerUnavailable          (2) asked for Docker, no daemon answers
    │   └── PostgresNotFound           (2) asked for a system PostgreSQL, none installed
    ├── ConnectionFailed               (2) bad DSN or unreachable server
    ├── MigrationError                 a migration failed to apply or roll back
    │   └── MigrationLocked            (2) a stale yoyo lock holds the database
    ├── ServiceError                   the purchase service failed (not a refusal);
    │   │                              ``code`` is stable
    │   ├── DatabaseUnavailable        the database could not be reached or timed out
    │   ├── DatabaseFailure            the database answered with an error
    │   ├── PurchaseInterrupted        a stepwise purchase was settled by someone else
    │   └── InternalError              a bug: an exception the service did not expect
    └── DomainError                    a request was refused; ``code`` is stable
        ├── InsufficientCredits
        ├── NoCreditsAccount
        ├── InvalidAmount
        ├── NoLeadsSelected
        ├── DuplicateLeads
        ├── LeadsNotFound
        ├── LeadsNoLongerAvailable
        ├── DuplicatePurchase
        ├── PurchaseInProgress
        ├── IdempotencyMismatch
        ├── InvalidIdempotencyKey
        ├── InvalidEmail               (also a ValueError: the email records raise it)
        ├── InvalidRequest
        ├── UnknownWorkspace           (also a UsageError, exit status 2)
        └── NotAuthorized

Checks of ``harness verify`` signal their outcome with three exceptions that are not
errors of the harness: ``CheckFailed`` (the property does not hold), ``CheckSkipped``
(it does not apply here) and ``CheckInconclusive`` (its premise, e.g. real concurrency,
could not be established: reported as an error, never as a pass).

Each class's docstring is its default message. Each refusal's and each service
failure's stable ``code`` is declared once, on its class; :data:`DOMAIN_ERRORS` and
:data:`SERVICE_ERRORS` are filled from those declarations, and no code is declared twice
across the two. Nothing but a ``HarnessError`` leaves ``PurchaseService``: a refusal is a
``DomainError``, anything else a ``ServiceError``.
Driver errors are translated into this tree where they are caught, always with
``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar
from uuid import UUID


class HarnessError(Exception):
    """The harness failed."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class UsageError(HarnessError):
    """Invalid usage."""

    exit_code = 2


class ScenarioError(UsageError):
    """A scenario file is not valid."""


class ImportRejected(UsageError):
    """The lead file was refused; nothing was imported."""

    def __init__(self, message: str, problems: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class CannotRun(HarnessError):
    """The verification could not run."""

    exit_code = 2


class ScenarioSetupError(HarnessError):
    """A scenario could not be run."""


class ProvisionError(HarnessError):
    """No PostgreSQL server could be provisioned."""

    exit_code = 2


class DockerUnavailable(ProvisionError):
    """Docker was asked for, but no Docker daemon is reachable."""


class PostgresNotFound(ProvisionError):
    """No PostgreSQL server binaries (initdb, pg_ctl) were found on this machine."""


class ConnectionFailed(HarnessError):
    """Could not connect to the database."""

    exit_code = 2


class MigrationError(HarnessError):
    """A migration failed."""


class MigrationLocked(MigrationError):
    """The database is locked by another migration run."""

    exit_code = 2


# Every refusal class by its code, and every service failure by its code, filled as the
# classes below are defined.
DOMAIN_ERRORS: dict[str, type[DomainError]] = {}
SERVICE_ERRORS: dict[str, type[ServiceError]] = {}


def _register(cls: type, registry: dict[str, type]) -> None:
    code = cls.__dict__.get("code")
    if code is None:
        return
    if code in DOMAIN_ERRORS or code in SERVICE_ERRORS:
        raise TypeError(f"error code {code!r} declared twice")
    registry[code] = cls


class ServiceError(HarnessError):
    """The purchase service could not complete the request.

    ``detail`` names the cause (its class and first line) for the operator; the message
    is the text a user sees."""

    code: ClassVar[str] = "service_error"

    def __init__(self, message: str | None = None, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail

    def __str__(self) -> str:
        # The user sees .message; logs and reports get the cause as well.
        return f"{self.message} ({self.detail})" if self.detail else self.message

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls, SERVICE_ERRORS)


class DatabaseUnavailable(ServiceError):
    """The database could not be reached, or did not answer in time. Try again."""

    code = "database_unavailable"


class DatabaseFailure(ServiceError):
    """The database refused the operation."""

    code = "database_error"


class PurchaseInterrupted(ServiceError):
    """The purchase was settled by another process before it completed."""

    code = "purchase_interrupted"


class InternalError(ServiceError):
    """The service failed unexpectedly."""

    code = "internal_error"


class DomainError(HarnessError):
    """The request was refused.

    ``code`` is the refusal's stable name (each subclass declares its own); the message is
    the text a user sees. The fields say what was refused: ``required`` and ``balance``
    for money, ``amount`` for an amount that is not valid, ``lead_ids`` and
    ``purchase_id`` for what the refusal is about, ``sql_message`` for the SQL function's
    own words when the database refused."""

    code: ClassVar[str] = "domain_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        required: Decimal | None = None,
        balance: Decimal | None = None,
        amount: object = None,
        lead_ids: Sequence[UUID] = (),
        purchase_id: UUID | None = None,
        sql_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.required = required
        self.balance = balance
        self.amount = amount
        self.lead_ids = tuple(lead_ids)
        self.purchase_id = purchase_id
        self.sql_message = sql_message

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls, DOMAIN_ERRORS)


class InsufficientCredits(DomainError):
    """Insufficient credits."""

    code = "insufficient_credits"


class NoCreditsAccount(DomainError):
    """No credits account found."""

    code = "no_credits_account"


class InvalidAmount(DomainError):
    """Invalid amount."""

    code = "invalid_amount"


class NoLeadsSelected(DomainError):
    """No leads selected."""

    code = "no_leads_selected"


class DuplicateLeads(DomainError):
    """The same lead was selected more than once."""

    code = "duplicate_leads"


class LeadsNotFound(DomainError):
    """Some leads do not exist."""

    code = "leads_not_found"


class LeadsNoLongerAvailable(DomainError):
    """Some leads are no longer available."""

    code = "leads_no_longer_available"


class DuplicatePurchase(DomainError):
    """Some leads were already purchased by this workspace."""

    code = "duplicate_purchase"


class PurchaseInProgress(DomainError):
    """A purchase with this idempotency key is still being processed."""

    code = "purchase_in_progress"


class IdempotencyMismatch(DomainError):
    """The idempotency key was already used for a different request."""

    code = "idempotency_mismatch"


class InvalidIdempotencyKey(DomainError):
    """An idempotency key must be 1 to 255 printable characters, not all blank."""

    code = "invalid_idempotency_key"


class InvalidEmail(DomainError, ValueError):
    """The email address cannot receive the confirmation: it is not one valid address."""

    code = "invalid_email"


class InvalidRequest(DomainError):
    """The request is not valid (an id that is not a UUID)."""

    code = "invalid_request"


class UnknownWorkspace(DomainError, UsageError):
    """No such workspace."""

    code = "unknown_workspace"


class NotAuthorized(DomainError):
    """The user is not allowed to buy for this workspace."""

    code = "not_authorized"


class CheckFailed(Exception):
    """The property the check proves does not hold; the message is the evidence."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class CheckSkipped(Exception):
    """The check does not apply here (a module it needs is absent, nothing to check)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CheckInconclusive(Exception):
    """The check ran but could not establish its premise (e.g. no real concurrency):
    reported as ``error``, never as a pass."""
