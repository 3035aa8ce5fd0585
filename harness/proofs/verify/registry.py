"""The check registry: stable ids, and the modules that register checks.

To add checks, write a module whose functions carry the :func:`check` decorator and add
its dotted name to :data:`CHECK_MODULES`; nothing else needs to change.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

# The outcome signals live in the one error module; re-exported for check authors.
from harness.errors import CheckFailed as CheckFailed
from harness.errors import CheckInconclusive as CheckInconclusive
from harness.errors import CheckSkipped as CheckSkipped

if TYPE_CHECKING:
    from harness.proofs.verify.context import CheckContext

# Imported in this order; the order is also the order of the report.
CHECK_MODULES: list[str] = [
    "harness.proofs.verify.checks.contract",
    "harness.proofs.verify.checks.input",
    "harness.proofs.verify.checks.concurrency",
    "harness.proofs.verify.checks.faults",
    "harness.proofs.verify.checks.queue",
    "harness.proofs.verify.checks.model",
    "harness.proofs.verify.checks.commission",
    "harness.proofs.verify.checks.security",
    "harness.proofs.verify.checks.attacks",
    "harness.proofs.verify.checks.invariants",
    "harness.proofs.verify.checks.rollback",
    "harness.proofs.verify.checks.migrations",
    "harness.proofs.verify.checks.http",
]

ID_PATTERN = re.compile(r"[a-z][a-z0-9_]*\.[a-z0-9][a-z0-9-]*")


CheckFunction = Callable[["CheckContext"], str]


@dataclass(frozen=True)
class Check:
    """One registered check."""

    id: str
    func: CheckFunction
    summary: str
    final: bool = False  # runs after every other check (it inspects what they left)
    group: str | None = None  # checks of one group run one after another, never at once

    @property
    def category(self) -> str:
        return self.id.split(".", 1)[0]


_REGISTRY: dict[str, Check] = {}


def check(
    check_id: str, summary: str | None = None, *, final: bool = False, group: str | None = None
):
    """Register ``func`` as the check ``check_id``; ``summary`` defaults to its docstring.

    ``final``: run after every other check. ``group``: run one after another with the
    other checks of the same group (for libraries that keep global state)."""
    if not ID_PATTERN.fullmatch(check_id):
        raise ValueError(f"check id {check_id!r} is not category.name")

    def decorate(func: CheckFunction) -> CheckFunction:
        if check_id in _REGISTRY and _REGISTRY[check_id].func is not func:
            raise ValueError(f"check id {check_id!r} registered twice")
        text = summary or " ".join((func.__doc__ or "").split())
        _REGISTRY[check_id] = Check(check_id, func, text, final, group)
        return func

    return decorate


def all_checks() -> list[Check]:
    """Every registered check, in module order then definition order."""
    for name in CHECK_MODULES:
        importlib.import_module(name)
    return list(_REGISTRY.values())


def select(checks: list[Check], only: list[str] | None) -> list[Check]:
    """The checks named by ``--only``: categories or full ids. Unknown names are an error."""
    if not only:
        return checks
    known = {c.category for c in checks} | {c.id for c in checks}
    unknown = [o for o in only if o not in known]
    if unknown:
        from harness.errors import UsageError

        raise UsageError(
            f"--only: unknown categories or check ids {unknown}; known categories: "
            f"{sorted({c.category for c in checks})}"
        )
    return [c for c in checks if c.category in only or c.id in only]
