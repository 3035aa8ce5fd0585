"""``harness verify``: checks that prove, against a real server, that a migration set
keeps money safe, and fail with evidence when it does not.

A check is a function ``(ctx: CheckContext) -> str`` registered with :func:`check`
under a stable id ``category.name``. It returns its evidence, raises
:class:`CheckFailed` when the property does not hold, or :class:`CheckSkipped` when it
cannot apply; any other exception makes its status ``error``.
"""

from harness.proofs.verify.context import CheckContext
from harness.proofs.verify.registry import (
    CHECK_MODULES,
    Check,
    CheckFailed,
    CheckInconclusive,
    CheckSkipped,
    all_checks,
    check,
)
from harness.proofs.verify.runner import CheckResult, Report, run_suite

__all__ = [
    "CHECK_MODULES",
    "Check",
    "CheckContext",
    "CheckFailed",
    "CheckInconclusive",
    "CheckResult",
    "CheckSkipped",
    "Report",
    "all_checks",
    "check",
    "run_suite",
]
