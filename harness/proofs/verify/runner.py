"""Running the checks: migrate a template once, clone it per check, run the checks on a
small thread pool, collect one result per check.

Interrupted (Ctrl-C, SIGTERM: an exception in the main thread), the run stops reporting,
tells the checks to stop (their next database call raises), drops every scratch database
it created so far WITH (FORCE) (which ends the sessions of the checks still running),
waits a moment for the checks' threads to wind down, sweeps once more for a database
created meanwhile, and lets the exception go on."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
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
# After an interruption, how long the checks' threads get to notice and end.
STOP_SECONDS = 10.0
# Long checks are started first so that the pool stays busy with the short ones.
START_FIRST = ("input", "model", "concurrency", "faults", "queue")


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
    purchase_flow: str | None = None,
    save_failures: Path | None = None,
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
    existing = db.created_databases()  # anything made after this is the run's
    template = db.scratch_name(SCRATCH_PREFIX)
    ctx = None
    aborted = False
    template_dsn = db.create_database(admin_dsn, template)
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
            purchase_flow=purchase_flow,
            save_failures=save_failures,
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
                if ctx.cancelled:  # nothing is reported after an interruption
                    return
                done += 1
                results[result.id] = result
                if on_result:
                    on_result(result, done, total)

        def run_task(task: list[Check]) -> None:
            for chk in task:
                if ctx.cancelled:
                    return
                finish(_started(chk, ctx, on_start, total))

        pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="verify")
        futures: list[Future[None]] = []
        try:
            futures = [pool.submit(run_task, task) for task in tasks]
            for fut in as_completed(futures):
                fut.result()
        except BaseException:
            aborted = True
            ctx.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            if not keep:
                db.drop_created(existing)  # ends the running checks' sessions
            wait(futures, timeout=STOP_SECONDS)
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
    except BaseException:
        aborted = True
        if ctx is not None:
            ctx.cancel()
        raise
    finally:
        if ctx is not None and keep:
            kept = [name for name, _, _ in ctx.databases()] + [template]
            if not aborted:
                note("kept scratch databases: " + ", ".join(kept))
        elif aborted:
            db.drop_created(existing)
        else:
            if ctx is not None:
                ctx.drop_all()
            db.drop_database(admin_dsn, template)
            db.drop_created(existing)  # a check that made one and did not drop it


def _started(chk: Check, ctx: CheckContext, on_start, total: int) -> CheckResult:
    if on_start and not ctx.cancelled:
        on_start(chk, 0, total)
    return run_check(chk, ctx)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:600] or type(exc).__name__
