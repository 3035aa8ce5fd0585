"""``harness queue status | retry-dead | cancel`` and ``harness worker``: the email
outbox and the process that delivers it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from harness import db, env
from harness.cli.common import (
    ScrubSecrets,
    Target,
    add,
    command,
    database,
    group,
    note,
    require_migrated,
    say,
)
from harness.outbox.queue import (
    EmailJobStatus,
    queue_status,
    request_cancel,
    require_outbox,
    retry_dead,
)
from harness.outbox.worker import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_POLL_INTERVAL,
    Worker,
)
from harness.values import number, positive_int, whole


@dataclass(frozen=True)
class StatusSettings(Target):
    json: bool = False
    dead_limit: int = 50


@dataclass(frozen=True)
class RetrySettings(Target):
    ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class CancelSettings(Target):
    job_id: int = 0


@dataclass(frozen=True)
class WorkerCommandSettings(Target):
    once: bool = False
    concurrency: int = 1
    smtp_url: str | None = None
    retry_attempts: int = 3
    retry_backoff_ms: int = 1000
    lease: float = DEFAULT_LEASE_SECONDS
    batch_size: int = DEFAULT_BATCH_SIZE
    poll_interval: float = DEFAULT_POLL_INTERVAL
    json: bool = False


def _format_age(seconds: float | None) -> str:
    if seconds is None:
        return "none pending"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def run_status(s: StatusSettings) -> int:
    with database(s) as srv, db.connect(srv.dsn) as conn:
        require_migrated(srv.dsn, s.migration_dirs)
        require_outbox(conn)
        status = queue_status(conn, dead_limit=s.dead_limit)
    if s.json:
        say(json.dumps(status.as_dict(), indent=2))
        return 0
    say("  ".join(f"{k} {v}" for k, v in status.counts.items()))
    say(f"oldest pending: {_format_age(status.oldest_pending_age)}")
    if status.expired_leases:
        say(f"expired leases: {status.expired_leases} (the next worker recovers them)")
    if status.dead_letters:
        say(f"dead letters ({status.counts['dead']}; `harness queue retry-dead` requeues):")
        for d in status.dead_letters:
            say(
                f"  #{d.id} {d.kind} attempts={d.attempts} dead {d.dead_at:%Y-%m-%d %H:%M:%S}"
                f": {d.last_error}"
            )
    return 0


def run_retry_dead(s: RetrySettings) -> int:
    with database(s, writes="queue retry-dead") as srv, db.connect(srv.dsn) as conn:
        require_migrated(srv.dsn, s.migration_dirs)
        require_outbox(conn)
        ids = retry_dead(conn, list(s.ids) if s.ids else None)
    say(f"requeued {len(ids)} dead letter(s)" + (f": {', '.join(map(str, ids))}" if ids else ""))
    return 0


def run_cancel(s: CancelSettings) -> int:
    with database(s, writes="queue cancel") as srv, db.connect(srv.dsn) as conn:
        require_migrated(srv.dsn, s.migration_dirs)
        require_outbox(conn)
        status = request_cancel(conn, s.job_id)
    if status is None:
        say(f"no email job #{s.job_id}")
        return 1
    if status is EmailJobStatus.SENDING:
        say(f"job #{s.job_id}: cancel requested; the send under way finishes first")
    else:
        say(f"job #{s.job_id}: {status.value}")
    return 0


def run_worker(s: WorkerCommandSettings) -> int:
    env.read("HARNESS_EMAIL_FROM")  # read when mail goes out; a bad value stops it here
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        for handler in logging.getLogger().handlers:
            handler.addFilter(ScrubSecrets())
    with database(s, writes="worker") as srv:
        require_migrated(srv.dsn, s.migration_dirs)
        worker = Worker(
            srv.dsn,
            s.smtp_url,
            concurrency=s.concurrency,
            retry_attempts=s.retry_attempts,
            retry_backoff_ms=s.retry_backoff_ms,
            lease_seconds=s.lease,
            batch_size=s.batch_size,
            poll_interval=s.poll_interval,
        )
        settings = worker.settings
        note(
            f"worker {worker.name}: {worker.smtp.describe()}, {settings.retry_attempts} "
            f"attempts, lease {settings.lease_seconds:g} s"
        )
        with worker.signals_stop():
            stats = worker.run(until="idle" if s.once else "forever")
    if s.json:
        say(json.dumps(stats.as_dict()))
    else:
        note(
            f"worker {worker.name} stopped: sent {stats.sent}, retried {stats.retried}, "
            f"dead {stats.dead}, cancelled {stats.cancelled}, released {stats.released}, "
            f"{stats.remaining} unsettled"
        )
    return 0


def register(sub: Any) -> None:
    q = group(
        sub,
        "queue",
        "queue_command",
        help="inspect and steer the email outbox",
        description="Inspect the email outbox (email_jobs), requeue dead letters, cancel jobs.",
    )
    p = command(
        q,
        "status",
        run_status,
        StatusSettings,
        database=True,
        help="counts by state and dead letters",
        description="Jobs by state, the age of the oldest unsettled job, and the "
        "dead letters with their last error.",
    )
    add(p, "--json", action="store_true", default=False, help="machine-readable output")
    add(
        p,
        "--dead-limit",
        type=whole(0, 100_000),
        default=50,
        metavar="N",
        help="list at most N dead letters (default 50)",
    )
    p = command(
        q,
        "retry-dead",
        run_retry_dead,
        RetrySettings,
        database=True,
        help="requeue dead letters",
        description="Requeue dead letters after the cause is fixed, each with a fresh "
        "set of attempts (the worker's setting).",
    )
    add(
        p,
        "--id",
        dest="ids",
        type=positive_int,
        action="append",
        metavar="JOB",
        help="only this job, repeatable (default every dead letter)",
    )
    p = command(
        q,
        "cancel",
        run_cancel,
        CancelSettings,
        database=True,
        help="cancel a job",
        description="Stop further attempts of a job; a send under way finishes.",
    )
    add(p, "job_id", type=positive_int, metavar="JOB")

    p = command(
        sub,
        "worker",
        run_worker,
        WorkerCommandSettings,
        database=True,
        help="deliver queued emails",
        description="Deliver the email outbox over SMTP: claim due jobs under a lease, "
        "retry failures with exponential backoff, dead-letter after the last attempt. "
        "SIGTERM finishes the send under way and releases the rest.",
    )
    add(
        p,
        "--once",
        action="store_true",
        default=False,
        help="deliver what is due now, then exit (backoffs are not waited out)",
    )
    add(
        p,
        "--concurrency",
        metavar="N",
        env_var="HARNESS_WORKER_CONCURRENCY",
        help="sending threads, each with its own connections (default 1)",
    )
    add(
        p,
        "--smtp-url",
        metavar="URL",
        env_var="HARNESS_SMTP_URL",
        help="smtp://[user:password@]host[:port][?starttls=1&timeout=S]",
    )
    add(
        p,
        "--retry-attempts",
        metavar="N",
        env_var="HARNESS_EMAIL_RETRY_ATTEMPTS",
        help="attempts per job before it is dead-lettered (default 3)",
    )
    add(
        p,
        "--retry-backoff-ms",
        metavar="MS",
        env_var="HARNESS_EMAIL_RETRY_BACKOFF_MS",
        help="wait after the first failure, doubled after each further one (default 1000)",
    )
    add(
        p,
        "--lease",
        metavar="SECONDS",
        env_var="HARNESS_EMAIL_LEASE_SECONDS",
        help="how long a claim outlives a worker that stopped renewing it "
        f"(default {DEFAULT_LEASE_SECONDS:g})",
    )
    add(
        p,
        "--batch-size",
        type=whole(1, 1000),
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"jobs claimed at a time (default {DEFAULT_BATCH_SIZE})",
    )
    add(
        p,
        "--poll-interval",
        type=number(0.001, 3600),
        default=DEFAULT_POLL_INTERVAL,
        metavar="SECONDS",
        help=f"pause when nothing is due (default {DEFAULT_POLL_INTERVAL:g})",
    )
    add(p, "--json", action="store_true", default=False, help="print the run's counts as JSON")
