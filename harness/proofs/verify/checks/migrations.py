"""migrations.lint: squawk with the packaged configuration over every migration file, the
migration timeouts, and a stale yoyo lock reported with the command that breaks it."""

from __future__ import annotations

import subprocess
import sys

from harness import db
from harness.db.lint import lint
from harness.db.migrations import BREAK_LOCK_HINT, Migrator
from harness.errors import MigrationLocked
from harness.proofs.verify.context import CheckContext
from harness.proofs.verify.registry import CheckFailed, check


def _dead_pid() -> int:
    """The pid of a process that has just exited (a lock holder that died)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@check("migrations.lint")
def migrations_lint(ctx: CheckContext) -> str:
    """squawk with the packaged configuration finds nothing over every migration file;
    lock_timeout and statement_timeout are set on the migration connection; a stale
    yoyo lock is refused with the command that breaks it."""
    dsn = ctx.new_database(audit=False)
    report = lint([str(d) for d in ctx.migration_dirs], dsn)
    problems = report.lines()
    with db.connect(dsn) as conn:
        conn.execute(db.query("rollback", "plant-stale-lock"), {"pid": _dead_pid()})
    with Migrator(dsn, ctx.migration_dirs) as m:
        try:
            with m.locked(timeout=1):
                problems.append("a stale yoyo lock did not stop the migrator")
        except MigrationLocked as exc:
            if BREAK_LOCK_HINT not in exc.message:
                problems.append(
                    f"the stale-lock message does not say how to break it: {exc.message}"
                )
        m.break_lock()
    if problems:
        raise CheckFailed(
            "; ".join(problems[:12])
            + (f"; and {len(problems) - 12} more" if len(problems) > 12 else "")
        )
    return (
        f"{report.summary()}; stale-lock refusal tested: a lock planted for a dead "
        f"process stopped the migrator, which named `{BREAK_LOCK_HINT} --dsn ...`"
    )
