"""Migration lint: squawk over every migration file with the packaged configuration,
the timeouts the migration connection runs under, and a stale yoyo lock.

Rollback files exist to drop what their migration created, so squawk's ``ban-drop-*``
findings there are listed as expected rather than failures; whether a rollback drops
exactly what it should is what ``rollback.round-trip`` proves.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import db, packaged
from harness.db.migrations import (
    MIGRATION_LOCK_TIMEOUT,
    MIGRATION_STATEMENT_TIMEOUT,
    Migrator,
    resolve_sources,
)
from harness.errors import UsageError

ROLLBACK_DROP_RULES = frozenset(
    {"ban-drop-table", "ban-drop-function", "ban-drop-type", "ban-drop-column", "ban-drop-not-null"}
)


@dataclass(frozen=True)
class Finding:
    """One squawk finding."""

    file: str
    line: int
    rule: str
    message: str
    expected: bool = False  # a drop in a rollback file


@dataclass
class LintReport:
    """Everything one lint run found."""

    files: list[str]
    config: str
    findings: list[Finding] = field(default_factory=list)
    timeouts: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # timeouts unset, a stale lock

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if not f.expected]

    @property
    def ok(self) -> bool:
        return not self.violations and not self.problems

    def summary(self) -> str:
        expected = len(self.findings) - len(self.violations)
        parts = [
            f"squawk ({self.config}) over {len(self.files)} file(s): "
            f"{len(self.violations)} violation(s)"
            + (f", {expected} expected drop(s) in rollback files" if expected else "")
        ]
        if self.timeouts:
            parts.append(
                "while migrating: " + ", ".join(f"{k} = {v}" for k, v in self.timeouts.items())
            )
        return "; ".join(parts)

    def lines(self) -> list[str]:
        out = [f"{f.file}:{f.line}: {f.rule}: {f.message}" for f in self.violations]
        return out + self.problems


def config_path() -> Path:
    """squawk's configuration for the migration set, shipped in the package."""
    return packaged.squawk_config()


def squawk_binary() -> str:
    found = shutil.which("squawk") or shutil.which("squawk", path=str(Path(sys.executable).parent))
    if not found:
        raise UsageError("squawk is not installed: pip install squawk-cli")
    return found


def migration_files(dirs: list[str] | None) -> list[Path]:
    """Every migration and rollback file of the set, in order."""
    return [f for d in resolve_sources(dirs) for f in sorted(d.glob("*.sql"))]


def run_squawk(files: list[Path], config: Path | None = None) -> list[Finding]:
    config = config or config_path()
    cmd = [squawk_binary(), "--reporter", "json"]
    if config.is_file():
        cmd += ["--config", str(config)]
    result = subprocess.run(
        cmd + [str(f) for f in files], capture_output=True, text=True, timeout=120
    )
    try:
        raw = json.loads(result.stdout or "[]")
    except ValueError as exc:
        raise UsageError(
            f"squawk failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[:300]}"
        ) from exc
    out = []
    for item in raw:
        name = item.get("file", "")
        rule = item.get("rule_name", "")
        out.append(
            Finding(
                file=_relative(name),
                line=int(item.get("line", 0)) + 1,
                rule=rule,
                message=item.get("message", ""),
                expected=name.endswith(".rollback.sql") and rule in ROLLBACK_DROP_RULES,
            )
        )
    return out


def _relative(name: str) -> str:
    """A file as the user would name it: relative to the working directory when inside it."""
    try:
        return str(Path(name).resolve().relative_to(Path.cwd()))
    except ValueError:
        return name


def migration_timeouts(dsn: str, dirs: list[str] | None = None) -> dict[str, str]:
    """lock_timeout and statement_timeout as the migrator's own connection sees them."""
    with Migrator(dsn, dirs) as m:
        cur = m.backend.connection.cursor()
        out = {}
        for name in ("lock_timeout", "statement_timeout"):
            cur.execute(db.query("lint", f"show-{name}"))
            out[name] = cur.fetchone()[0]
        m.backend.connection.rollback()
    return out


def timeout_problems(timeouts: dict[str, str]) -> list[str]:
    wanted = {
        "lock_timeout": MIGRATION_LOCK_TIMEOUT,
        "statement_timeout": MIGRATION_STATEMENT_TIMEOUT,
    }
    return [
        f"{name} is {timeouts.get(name)!r} while migrating (want {value}): a migration "
        "could queue behind a live lock or run unbounded"
        for name, value in wanted.items()
        if timeouts.get(name) in (None, "0", "0ms")
    ]


def lock_problem(dsn: str, dirs: list[str] | None = None) -> str | None:
    """A yoyo lock present on ``dsn``, said with the command that breaks it."""
    with Migrator(dsn, dirs) as m:
        holder = m.lock_holder()
        if holder is None:
            return None
        return m.locked_message(holder, stale=True)


def lint(dirs: list[str] | None = None, dsn: str | None = None) -> LintReport:
    """squawk over the migration set; with ``dsn``, the migration timeouts read through
    the migrator's connection and any yoyo lock held on that database."""
    files = migration_files(dirs)
    config = config_path()
    report = LintReport(
        files=[_relative(str(f)) for f in files],
        config=_relative(str(config)) if config.is_file() else "defaults",
    )
    report.findings = run_squawk(files, config)
    if dsn:
        report.timeouts = migration_timeouts(dsn, dirs)
        report.problems.extend(timeout_problems(report.timeouts))
        lock = lock_problem(dsn, dirs)
        if lock:
            report.problems.append(lock)
    return report


__all__ = ["Finding", "LintReport", "lint", "migration_timeouts", "run_squawk"]
