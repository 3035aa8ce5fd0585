"""Running the checks: migrate a template once, clone it per check, run the checks on a
small thread pool, collect one result per check."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from harness import db
from harness.db.migrations import Migrator
from harness.errors import CannotRun, MigrationError
from harness.proofs.verify.context import SCRATCH_PREFIX, CheckContext, HttpTarget
from harness.proofs.verify.registry import (
    Check,
    CheckFailed,
    CheckInconclusive,
    CheckSkipped,
    all_checks,
    select,
)

STATUSES = ("passed", "failed", "error", "skipped")
DEFAULT_JOBS = 3
# Long checks are started first so that the pool stays busy with the short ones.
START_FIRST = ("concurrency", "faults", "queue", "input")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    id: str
    category: str
    status: str
    detail: str
    seconds: float


@dataclass
class Report:
    """Everything a verification run found, in registry order."""

    provider: str
    server_version: str
    migrations: list[str]
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            counts[r.status] += 1
        return counts

    @property
    def ok(self) -> bool:
        s = self.summary
        return s["failed"] == 0 and s["error"] == 0


def run_check(chk: Check, ctx: CheckContext) -> CheckResult:
    """Run one check; its exceptions become its status."""
    ctx._current.check_id = chk.id
    start = time.perf_counter()
    try:
        evidence = chk.func(ctx)
        status, detail = "passed", str(evidence or "")
    except CheckFailed as exc:
        status, detail = "failed", exc.detail
    except CheckSkipped as exc:
        status, detail = "skipped", exc.reason
    except CheckInconclusive as exc:
        status, detail = "error", f"inconclusive: {exc}"
    except Exception as exc:  # a check that crashes has proved nothing
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        status, detail = "error", f"{type(exc).__name__}: {_one_line(exc)}{where}"
    finally:
        ctx._current.check_id = ""
    return CheckResult(chk.id, chk.category, status, detail, time.perf_counter() - start)


def run_suite(
    admin_dsn: str,
    provider: str,
    migration_dirs: Sequence[str | Path] | None,
    *,
    only: list[str] | None = None,
    seed: int = 0,
    keep: bool = False,
    jobs: int = DEFAULT_JOBS,
    http: HttpTarget | None = None,
    on_start: Callable[[Check, int, int], None] | None = None,
    on_result: Callable[[CheckResult, int, int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Report:
    """Migrate a scratch template with ``migration_dirs``, run the selected checks against
    clones of it, drop every scratch database (unless ``keep``), and report. ``http``: the
    running application the ``http`` checks drive (without it they are skipped)."""
    note = on_note or (lambda _msg: None)
    checks = select(all_checks(), only)
    started = time.perf_counter()
    version = db.server_version(admin_dsn)
    template = db.scratch_name(SCRATCH_PREFIX)
    template_dsn = db.create_database(admin_dsn, template)
    ctx = None
    try:
        note(f"migrating template database {template} (PostgreSQL {version}, {provider})")
        try:
            with Migrator(template_dsn, migration_dirs) as migrator:
                migrator.apply()
                applied = [s.id for s in migrator.status() if s.applied]
                dirs = list(migrator.sources)
        except MigrationError as exc:
            raise CannotRun(f"the migrations do not apply: {exc.message}") from exc
        ctx = CheckContext(
            admin_dsn=admin_dsn,
            migration_dirs=dirs,
            template=template,
            seed=seed,
            provider=provider,
            server_version=version,
            migrations=applied,
            keep=keep,
            http=http,
        )
        report = Report(provider, version, applied)
        results: dict[str, CheckResult] = {}
        regular = [c for c in checks if not c.final]
        finals = [c for c in checks if c.final]
        order = sorted(
            regular,
            key=lambda c: (
                START_FIRST.index(c.category) if c.category in START_FIRST else len(START_FIRST)
            ),
        )
        tasks: list[list[Check]] = []
        grouped: dict[str, list[Check]] = {}
        for chk in order:
            if chk.group is None:
                tasks.append([chk])
            elif chk.group in grouped:
                grouped[chk.group].append(chk)
            else:
                grouped[chk.group] = [chk]
                tasks.append(grouped[chk.group])
        total, done = len(checks), 0
        lock = threading.Lock()

        def finish(result: CheckResult) -> None:
            nonlocal done
            with lock:
                done += 1
                results[result.id] = result
                if on_result:
                    on_result(result, done, total)

        def run_task(task: list[Check]) -> None:
            for chk in task:
                finish(_started(chk, ctx, on_start, total))

        pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="verify")
        try:
            futures = [pool.submit(run_task, task) for task in tasks]
            for fut in as_completed(futures):
                fut.result()
        except BaseException:
            # Ctrl-C: start nothing more; the scratch databases are dropped WITH (FORCE)
            # below, which ends the sessions of the checks still running.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        for chk in finals:
            finish(_started(chk, ctx, on_start, total))
        if http is not None:
            # A run that was given an application must judge it: an http check that did
            # not run is an error there, never a pass.
            for cid, r in results.items():
                if r.category == "http" and r.status == "skipped":
                    results[cid] = CheckResult(
                        r.id,
                        r.category,
                        "error",
                        f"not run although --http was given: {r.detail}",
                        r.seconds,
                    )
        report.results = [results[c.id] for c in checks]
        report.seconds = time.perf_counter() - started
        return report
    finally:
        if ctx is not None and keep:
            kept = [name for name, _, _ in ctx.databases()] + [template]
            note("kept scratch databases: " + ", ".join(kept))
        else:
            if ctx is not None:
                ctx.drop_all()
            db.drop_database(admin_dsn, template)


def _started(chk: Check, ctx: CheckContext, on_start, total: int) -> CheckResult:
    if on_start:
        on_start(chk, 0, total)
    return run_check(chk, ctx)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:600] or type(exc).__name__
