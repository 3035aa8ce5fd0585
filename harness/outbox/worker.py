"""The email worker: claims outbox jobs under a lease and delivers them over SMTP.

Delivery is at-least-once. A worker claims a batch of due jobs with
``FOR UPDATE SKIP LOCKED`` (so workers never wait on, or take, each other's jobs) and
holds them under a lease it renews while it lives; a job whose worker died is taken
over once the lease expires. Each job's attempt is begun (counted) just before its send;
the jobs of a batch that were delivered are marked sent together, in one statement, when
the batch ends. Each email carries ``Message-ID: <{message_uuid}@harness>``
(a UUID drawn when the job was queued), so a redelivery after a crash is recognisably the
same message, and no two jobs of any database share one. A failed attempt is
retried after an exponential backoff; after the last attempt (or a permanent 5xx
refusal) the job is dead-lettered with its error. On SIGTERM the worker finishes the
send under way, returns the jobs it claimed but never began, and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from harness import env
from harness.db import connect, query
from harness.errors import ConnectionFailed, UsageError
from harness.outbox.mailer import (
    Mailer,
    SmtpSettings,
    describe_error,
    is_permanent,
    message_id_for,
    recipient_of,
    render,
)
from harness.outbox.queue import require_outbox

log = logging.getLogger("harness.outbox.worker")

DEFAULT_LEASE_SECONDS = 60.0
# libpq before 14 has no pipeline mode: the attempt's statement then simply runs first.
PIPELINE = psycopg.Pipeline.is_supported()
DEFAULT_BATCH_SIZE = 25  # jobs claimed, and then marked sent, per statement
DEFAULT_POLL_INTERVAL = 1.0
DRAIN_POLL_INTERVAL = 0.25
MAX_BACKOFF_SECONDS = 3600.0
RECONNECT_PAUSE = 2.0


@dataclass(frozen=True)
class WorkerSettings:
    """Retry, backoff and lease settings, fixed when a worker is built."""

    retry_attempts: int
    retry_backoff_ms: int
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    batch_size: int = DEFAULT_BATCH_SIZE
    poll_interval: float = DEFAULT_POLL_INTERVAL

    @classmethod
    def resolve(
        cls,
        *,
        retry_attempts: int | None = None,
        retry_backoff_ms: int | None = None,
        lease_seconds: float | None = None,
        batch_size: int | None = None,
        poll_interval: float | None = None,
    ) -> WorkerSettings:
        """Arguments first, then the environment as it is now (``HARNESS_EMAIL_RETRY_*``,
        ``HARNESS_EMAIL_LEASE_SECONDS``, read through :mod:`harness.env`), whose defaults
        are ``EMAIL_CONFIG``'s."""
        s = cls(
            retry_attempts=env.read("HARNESS_EMAIL_RETRY_ATTEMPTS")
            if retry_attempts is None
            else retry_attempts,
            retry_backoff_ms=env.read("HARNESS_EMAIL_RETRY_BACKOFF_MS")
            if retry_backoff_ms is None
            else retry_backoff_ms,
            lease_seconds=lease_seconds
            if lease_seconds is not None
            else env.read("HARNESS_EMAIL_LEASE_SECONDS"),
            batch_size=batch_size or DEFAULT_BATCH_SIZE,
            poll_interval=poll_interval if poll_interval is not None else DEFAULT_POLL_INTERVAL,
        )
        if s.retry_attempts < 1:
            raise UsageError(f"retry attempts must be at least 1, not {s.retry_attempts}")
        if s.retry_backoff_ms < 0:
            raise UsageError(f"retry backoff must not be negative, not {s.retry_backoff_ms}")
        if not s.lease_seconds > 0:
            raise UsageError(f"the lease must be positive, not {s.lease_seconds}")
        if s.batch_size < 1 or not s.poll_interval > 0:
            raise UsageError("batch size and poll interval must be positive")
        return s

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): the base backoff,
        doubled after each further failure, at most an hour."""
        return min(self.retry_backoff_ms / 1000 * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)


@dataclass(frozen=True)
class DrainStats:
    """What one worker run did.

    ``sent``, ``dead`` and ``cancelled`` count jobs this run settled that way; ``retried``
    failed attempts that will be retried; ``released`` claimed jobs handed back unbegun
    at a stop; ``recovered`` jobs taken back from a worker whose lease expired; ``lost``
    jobs whose lease this worker lost before settling them; ``remaining`` jobs still
    queued or being sent when the run ended."""

    sent: int = 0
    dead: int = 0
    cancelled: int = 0
    retried: int = 0
    released: int = 0
    recovered: int = 0
    lost: int = 0
    remaining: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = dict.fromkeys(
            ("sent", "dead", "cancelled", "retried", "released", "recovered", "lost"), 0
        )

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.values[key] += n


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Delivers email jobs from the outbox of the database at ``dsn``."""

    def __init__(
        self,
        dsn: str,
        smtp_url: str | None = None,
        *,
        concurrency: int = 1,
        name: str | None = None,
        sender: str | None = None,
        retry_attempts: int | None = None,
        retry_backoff_ms: int | None = None,
        lease_seconds: float | None = None,
        batch_size: int | None = None,
        poll_interval: float | None = None,
    ) -> None:
        self.dsn = dsn
        self.smtp = SmtpSettings.from_url(smtp_url or env.read("HARNESS_SMTP_URL"), sender=sender)
        self.settings = WorkerSettings.resolve(
            retry_attempts=retry_attempts,
            retry_backoff_ms=retry_backoff_ms,
            lease_seconds=lease_seconds,
            batch_size=batch_size,
            poll_interval=poll_interval,
        )
        if concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, not {concurrency}")
        self.concurrency = concurrency
        self.name = name or worker_name()
        self._stop = threading.Event()
        self._counters = _Counters()

    # -- control ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop gracefully: finish the send under way, release the rest, return."""
        self._stop.set()

    @contextlib.contextmanager
    def signals_stop(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop the worker gracefully while the block runs."""
        handler = lambda signum, frame: self._on_signal(signum)  # noqa: E731
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _on_signal(self, signum: int) -> None:
        log.info("%s: %s, finishing the send under way", self.name, signal.Signals(signum).name)
        self.stop()

    # -- running ----------------------------------------------------------------------------

    def run(self, *, until: str = "forever", wait_for_backoff: bool = True) -> DrainStats:
        """Process jobs. ``until="forever"`` runs until :meth:`stop`; ``"idle"`` until no
        job is due; ``"settled"`` until every job is sent, dead or cancelled (waiting out
        backoffs and other workers' leases unless ``wait_for_backoff`` is false)."""
        if until not in ("forever", "idle", "settled"):
            raise ValueError(f"until must be forever, idle or settled, not {until!r}")
        with connect(self.dsn) as conn:
            require_outbox(conn)
        self._counters = _Counters()
        started = time.monotonic()
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(done,), name=f"{self.name}-heartbeat", daemon=True
        )
        beat.start()
        errors: list[BaseException] = []

        def loop() -> None:
            try:
                self._loop(until, wait_for_backoff)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                self.stop()

        try:
            if self.concurrency == 1:
                loop()
            else:
                threads = [
                    threading.Thread(target=loop, name=f"{self.name}-{i}", daemon=True)
                    for i in range(self.concurrency)
                ]
                for t in threads:
                    t.start()
                while any(t.is_alive() for t in threads):
                    for t in threads:
                        t.join(0.1)
        finally:
            done.set()
            beat.join()
        if errors:
            raise errors[0]
        with connect(self.dsn) as conn:
            _, remaining = self._next_due(conn)
        return DrainStats(
            **self._counters.values,
            remaining=remaining,
            seconds=round(time.monotonic() - started, 3),
        )

    def _loop(self, until: str, wait_for_backoff: bool) -> None:
        with Mailer(self.smtp) as mailer:
            conn: psycopg.Connection | None = None
            try:
                while not self._stop.is_set():
                    try:
                        if conn is None or conn.closed:
                            conn = connect(self.dsn)
                        if self._work_once(conn, mailer):
                            continue
                        # Idle: do not hold an SMTP connection the server will time out.
                        mailer.close()
                        if until == "idle":
                            return
                        wait, unsettled = self._next_due(conn)
                    except (psycopg.Error, ConnectionFailed) as exc:
                        if until != "forever":
                            raise
                        # A daemon outlives database trouble; jobs it held come back to
                        # the queue when their lease expires.
                        log.error("%s: database error, retrying: %s", self.name, exc)
                        if conn is not None and not conn.closed:
                            conn.close()
                        conn = None
                        self._stop.wait(RECONNECT_PAUSE)
                        continue
                    if until == "settled" and (
                        unsettled == 0 or (not wait_for_backoff and (wait or 0) > 0)
                    ):
                        return
                    pause = self.settings.poll_interval if wait is None else wait
                    if until == "settled":
                        pause = min(pause, DRAIN_POLL_INTERVAL)
                    self._stop.wait(min(max(pause, 0.005), self.settings.poll_interval))
            finally:
                if conn is not None:
                    conn.close()

    def _next_due(self, conn: psycopg.Connection) -> tuple[float | None, int]:
        """Seconds until the next job is due (None: nothing waits), and how many jobs are
        not yet settled."""
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(query("queue", "next_due")).fetchone()
        assert row is not None  # an aggregate answers one row
        return row["wait"], int(row["unsettled"])

    def _work_once(self, conn: psycopg.Connection, mailer: Mailer) -> int:
        """Recover expired leases, claim a batch of due jobs and deliver them; how many
        jobs were claimed."""
        with conn.cursor(row_factory=dict_row) as cur:
            for row in cur.execute(
                query("queue", "recover_expired"), {"max_attempts": self.settings.retry_attempts}
            ).fetchall():
                self._counters.add("recovered")
                log.warning(
                    "%s: job %s's lease expired; now %s", self.name, row["id"], row["status"]
                )
                if row["status"] in ("dead", "cancelled"):
                    self._counters.add(row["status"])
            jobs = cur.execute(
                query("queue", "claim"),
                {
                    "limit": self.settings.batch_size,
                    "worker": self.name,
                    "lease": self.settings.lease_seconds,
                },
            ).fetchall()
        jobs.sort(key=lambda j: j["id"])
        delivered: list[tuple[int, int, str]] = []  # (id, attempt, Message-ID)
        try:
            for i, job in enumerate(jobs):
                if self._stop.is_set():
                    self._release(conn, [j["id"] for j in jobs[i:]])
                    break
                attempt = self._deliver(conn, mailer, job)
                if attempt is not None:
                    delivered.append((job["id"], attempt, message_id_for(job)))
        finally:
            # Delivered jobs are marked sent together, once per batch (or before a stop or
            # an error ends it): one statement instead of one per job. Until then they
            # stay 'sending' under this worker's renewed lease; were it to die first,
            # they would be sent again under the same Message-ID (at-least-once).
            if delivered:
                self._mark_sent(conn, delivered)
        return len(jobs)

    def _release(self, conn: psycopg.Connection, ids: list[int]) -> None:
        with conn.cursor(row_factory=tuple_row) as cur:
            released = cur.execute(
                query("queue", "release"), {"ids": ids, "worker": self.name}
            ).fetchall()
        self._counters.add("released", len(released))
        log.info("%s: released %d unbegun job(s)", self.name, len(released))

    def _deliver(self, conn: psycopg.Connection, mailer: Mailer, job: dict[str, Any]) -> int | None:
        """Begin an attempt at one claimed job and send it: the attempt's number when
        the message was accepted (the caller marks it sent), None when the job was
        cancelled, lost or failed (already recorded)."""
        fence = {"id": job["id"], "worker": self.name}
        with conn.cursor(row_factory=tuple_row) as cur:
            # The attempt is counted and committed before the send, as ever; in a pipeline
            # the database runs its UPDATE while the message is built (which needs nothing
            # from it), and leaving the pipeline waits for the commit.
            with conn.pipeline() if PIPELINE else contextlib.nullcontext():
                cur.execute(query("queue", "begin_attempt"), fence)
                built = self._build(job)
            row = cur.fetchone()
            if row is None:
                if cur.execute(query("queue", "cancel_claimed"), fence).fetchone():
                    self._counters.add("cancelled")
                    log.info("%s: job %s cancelled before its send", self.name, job["id"])
                else:
                    self._counters.add("lost")
                    log.warning("%s: lost the lease of job %s", self.name, job["id"])
                return None
        attempt: int = row[0]
        fence["attempt"] = attempt
        if isinstance(built, Exception):
            self._failed(
                conn, fence, f"cannot render the email: {describe_error(built)}", permanent=True
            )
            return None
        msg, to = built
        try:
            mailer.send(msg, to)
        except Exception as exc:  # every failure is recorded on the job, none is lost
            self._failed(conn, fence, describe_error(exc), permanent=is_permanent(exc))
            return None
        return attempt

    def _build(self, job: dict[str, Any]) -> tuple[EmailMessage, str] | Exception:
        """The job's message and recipient, or why they cannot be made (a bad payload: the
        job fails for good once its attempt is counted)."""
        try:
            msg = render(
                job["kind"],
                job["payload"],
                message_id=message_id_for(job),
                date=job["created_at"],
                sender=self.smtp.sender,
            )
            return msg, recipient_of(job["kind"], job["payload"])
        except (KeyError, ValueError, TypeError) as exc:
            return exc

    def _mark_sent(self, conn: psycopg.Connection, delivered: list[tuple[int, int, str]]) -> None:
        with conn.cursor(row_factory=tuple_row) as cur:
            marked = {
                r[0]
                for r in cur.execute(
                    query("queue", "mark_sent"),
                    {
                        "ids": [d[0] for d in delivered],
                        "attempts": [d[1] for d in delivered],
                        "worker": self.name,
                    },
                ).fetchall()
            }
        for job_id, attempt, message_id in delivered:
            if job_id in marked:
                self._counters.add("sent")
                log.info("%s: sent job %s (attempt %d) %s", self.name, job_id, attempt, message_id)
            else:
                # Delivered, but another worker took the job over: it will send it again
                # under the same Message-ID (at-least-once).
                self._counters.add("lost")
                log.warning("%s: sent job %s after losing its lease", self.name, job_id)

    def _failed(
        self, conn: psycopg.Connection, fence: dict[str, Any], error: str, *, permanent: bool
    ) -> None:
        delay = self.settings.backoff(fence["attempt"])
        with conn.cursor(row_factory=tuple_row) as cur:
            row = cur.execute(
                query("queue", "mark_failed"),
                {
                    **fence,
                    "error": error,
                    "permanent": permanent,
                    "max_attempts": self.settings.retry_attempts,
                    "delay": delay,
                },
            ).fetchone()
        if row is None:
            self._counters.add("lost")
            log.warning(
                "%s: job %s failed after losing its lease: %s", self.name, fence["id"], error
            )
            return
        status = row[0]
        self._counters.add("retried" if status == "queued" else status)
        if status == "queued":
            log.warning(
                "%s: job %s attempt %d failed, retry in %.3f s: %s",
                self.name,
                fence["id"],
                fence["attempt"],
                delay,
                error,
            )
        else:
            log.error(
                "%s: job %s attempt %d failed, now %s: %s",
                self.name,
                fence["id"],
                fence["attempt"],
                status,
                error,
            )

    def _heartbeat(self, done: threading.Event) -> None:
        """Renew the leases of every job this worker holds, three times per lease."""
        interval = self.settings.lease_seconds / 3
        conn: psycopg.Connection | None = None
        try:
            while not done.wait(interval):
                try:
                    if conn is None or conn.closed:
                        conn = connect(self.dsn)
                    conn.execute(
                        query("queue", "heartbeat"),
                        {"worker": self.name, "lease": self.settings.lease_seconds},
                    )
                except Exception as exc:  # keep beating; an expired lease is recoverable
                    log.error("%s: could not renew leases: %s", self.name, exc)
                    conn = None
        finally:
            if conn is not None:
                conn.close()


def drain(
    dsn: str,
    smtp_url: str | None = None,
    *,
    wait_for_backoff: bool = True,
    concurrency: int = 1,
    retry_attempts: int | None = None,
    retry_backoff_ms: int | None = None,
    lease_seconds: float | None = None,
    batch_size: int | None = None,
    poll_interval: float = DRAIN_POLL_INTERVAL,
) -> DrainStats:
    """Process the outbox until every job is sent, dead or cancelled, waiting out
    backoffs (and other workers' leases) unless ``wait_for_backoff`` is false, in which
    case it stops when nothing more is due now. The settings are :class:`Worker`'s."""
    worker = Worker(
        dsn,
        smtp_url,
        concurrency=concurrency,
        retry_attempts=retry_attempts,
        retry_backoff_ms=retry_backoff_ms,
        lease_seconds=lease_seconds,
        batch_size=batch_size,
        poll_interval=poll_interval,
    )
    return worker.run(until="settled", wait_for_backoff=wait_for_backoff)


__all__ = ["DrainStats", "Worker", "WorkerSettings", "drain"]
