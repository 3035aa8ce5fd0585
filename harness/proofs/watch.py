"""``harness watch``: the spec's "monitor error rates after deployment", read-only.

One read-only transaction reads what a deployment can be judged by: purchases stuck in
pending, the purchase error rate by message, dead-lettered and failing email jobs,
invariant violations, and the slowest statements when ``pg_stat_statements`` is
installed. Each measure has a threshold; any exceeded makes the exit status 1, so a
deploy pipeline can roll back on it.

What "purchase errors" can mean here: a refused or failed purchase that carried an
idempotency key leaves the key ``failed`` with its error; a purchase refunded in the
window is counted as an error too. A refusal without an idempotency key writes nothing,
so it cannot be observed from the database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from harness import db
from harness.config import DB_MESSAGES
from harness.errors import UsageError
from harness.money.invariants import check_invariants
from harness.values import show_duration


@dataclass
class Thresholds:
    """The limits a healthy deployment stays within."""

    pending_timeout: timedelta = timedelta(minutes=5)
    max_stuck_pending: int = 0
    max_error_rate: float = 0.05
    min_attempts: int = 20  # fewer attempts in the window: the rate is reported, not judged
    max_dead_letters: int = 0
    max_failing_jobs: int = 10
    max_violations: int = 0
    max_mean_ms: float | None = None


@dataclass
class Measure:
    """One measure, its threshold, and whether it was exceeded."""

    name: str
    value: Any
    threshold: Any
    exceeded: bool
    detail: str = ""


@dataclass
class WatchReport:
    """Everything one look at the database found."""

    target: str
    since: str
    at: str
    measures: list[Measure] = field(default_factory=list)
    errors_by_message: list[dict] = field(default_factory=list)
    stuck_pending: list[dict] = field(default_factory=list)
    email_errors: list[dict] = field(default_factory=list)
    violations: list[dict] = field(default_factory=list)
    slowest_statements: list[dict] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(m.exceeded for m in self.measures)

    def as_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


def _q(conn: psycopg.Connection, name: str, **params: Any) -> list[dict]:
    return db.fetch_all(conn, "watch", name, params)


def _present(conn: psycopg.Connection, table: str) -> bool:
    return bool(_q(conn, "table-present", table=table)[0]["present"])


def watch(dsn: str, since: timedelta, limits: Thresholds | None = None) -> WatchReport:
    """Look at ``dsn`` once, read-only, and judge it against ``limits``."""
    limits = limits or Thresholds()
    report = WatchReport(
        target=db.redact(dsn),
        since=show_duration(since),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    # Read-only twice over: the session default and the transaction itself.
    with db.connect(
        dsn, options="-c default_transaction_read_only=on -c statement_timeout=30s"
    ) as conn:
        with conn.transaction():
            conn.execute(db.query("watch", "read-only"))
            if not _present(conn, "marketplace_purchases"):
                raise UsageError(
                    f"{report.target} has no marketplace_purchases table: not a "
                    "database the harness migrated"
                )
            _purchases(conn, report, since, limits)
            _emails(conn, report, since, limits)
            _statements(conn, report, limits)
        _invariants(conn, report, limits)
    return report


def _purchases(
    conn: psycopg.Connection, report: WatchReport, since: timedelta, limits: Thresholds
) -> None:
    stuck = _q(conn, "stuck-pending-count", timeout=limits.pending_timeout)[0]["n"]
    report.stuck_pending = [
        {k: str(v) for k, v in r.items()}
        for r in _q(conn, "stuck-pending", timeout=limits.pending_timeout)
    ]
    report.measures.append(
        Measure(
            "stuck_pending",
            stuck,
            limits.max_stuck_pending,
            stuck > limits.max_stuck_pending,
            f"purchases pending for longer than {show_duration(limits.pending_timeout)}",
        )
    )

    window = _q(conn, "purchases-in-window", since=since)[0]
    failed = _q(conn, "failed-keys", since=since)
    # The atomic flow stores the SQL function's message only: its code is in DB_MESSAGES.
    merged: dict[str, dict] = {}
    for r in failed:
        code = r["code"] if r["code"] != "unknown" else DB_MESSAGES.get(r["message"], "unknown")
        entry = merged.setdefault(code, {"code": code, "message": r["message"], "count": 0})
        entry["count"] += r["n"]
    report.errors_by_message = sorted(merged.values(), key=lambda e: (-e["count"], e["code"]))
    if window["refunded"]:
        report.errors_by_message.append(
            {
                "code": "refunded",
                "message": "purchase refunded (repaired by reconcile or short of leads)",
                "count": window["refunded"],
            }
        )
    errors = sum(r["n"] for r in failed) + window["refunded"]
    attempts = window["created"] + sum(r["n"] for r in failed)
    rate = errors / attempts if attempts else 0.0
    judged = attempts >= limits.min_attempts
    detail = (
        f"{errors} failed of {attempts} purchase attempts in the last {report.since} "
        "(failed idempotency keys and refunds over purchases made plus failed keys)"
    )
    if not judged:
        detail += f"; fewer than {limits.min_attempts} attempts, so not judged"
    report.measures.append(
        Measure(
            "purchase_error_rate",
            round(rate, 4),
            limits.max_error_rate,
            judged and rate > limits.max_error_rate,
            detail,
        )
    )
    report.notes.append(
        "refused purchases without an idempotency key leave no row and are not counted"
    )


def _emails(
    conn: psycopg.Connection, report: WatchReport, since: timedelta, limits: Thresholds
) -> None:
    if not _present(conn, "email_jobs"):
        report.notes.append("no email_jobs table (the outbox migration is not applied)")
        return
    jobs = _q(conn, "email-jobs", since=since)[0]
    report.email_errors = [
        {"status": r["status"], "error": r["error"], "count": r["n"]}
        for r in _q(conn, "email-errors", since=since)
    ]
    report.measures.append(
        Measure(
            "dead_letters",
            jobs["dead_in_window"],
            limits.max_dead_letters,
            jobs["dead_in_window"] > limits.max_dead_letters,
            f"email jobs dead-lettered in the last {report.since} ({jobs['dead_total']} in all)",
        )
    )
    report.measures.append(
        Measure(
            "failing_email_jobs",
            jobs["failing"],
            limits.max_failing_jobs,
            jobs["failing"] > limits.max_failing_jobs,
            f"email jobs retrying after a failed attempt; {jobs['waiting']} waiting, "
            f"{jobs['sent_in_window']} sent in the window",
        )
    )


def _statements(conn: psycopg.Connection, report: WatchReport, limits: Thresholds) -> None:
    if not _q(conn, "pg-stat-statements"):
        report.notes.append(
            "pg_stat_statements is not installed in this database: no statement timings"
        )
        return
    try:
        with conn.transaction():  # a savepoint: the view errors when not preloaded
            rows = _q(conn, "slowest-statements", limit=5)
    except psycopg.Error as exc:
        report.notes.append(f"pg_stat_statements unreadable: {' '.join(str(exc).split())}")
        return
    report.slowest_statements = [{k: str(v) for k, v in r.items()} for r in rows]
    if limits.max_mean_ms is not None and rows:
        worst = float(rows[0]["mean_ms"])
        report.measures.append(
            Measure(
                "slowest_mean_ms",
                worst,
                limits.max_mean_ms,
                worst > limits.max_mean_ms,
                rows[0]["query"][:80],
            )
        )


def _invariants(conn: psycopg.Connection, report: WatchReport, limits: Thresholds) -> None:
    found = check_invariants(conn)
    report.violations = [{"name": v.name, "detail": v.detail, "rows": len(v.rows)} for v in found]
    report.measures.append(
        Measure(
            "invariant_violations",
            len(found),
            limits.max_violations,
            len(found) > limits.max_violations,
            "; ".join(f"{v.name}: {v.detail}" for v in found) or "every invariant holds",
        )
    )


# -- output -----------------------------------------------------------------------------


def render(report: WatchReport) -> str:
    lines = [f"watch {report.target}, last {report.since}, at {report.at}"]
    for m in report.measures:
        mark = "ALERT" if m.exceeded else "ok"
        lines.append(f"  {mark:<5} {m.name} = {m.value} (threshold {m.threshold}): {m.detail}")
    for e in report.errors_by_message:
        lines.append(f"        error {e['code']} x{e['count']}: {e['message']}")
    for p in report.stuck_pending[:5]:
        lines.append(f"        stuck purchase {p['id']} pending for {p['age']}")
    for e in report.email_errors[:5]:
        lines.append(f"        email {e['status']} x{e['count']}: {e['error'][:120]}")
    for s in report.slowest_statements or []:
        lines.append(f"        slow {s['mean_ms']} ms x{s['calls']}: {s['query'][:100]}")
    lines += [f"  note: {n}" for n in report.notes]
    lines.append(
        "OK" if report.ok else "ALERT: " + ", ".join(m.name for m in report.measures if m.exceeded)
    )
    return "\n".join(lines)


__all__ = ["Measure", "Thresholds", "WatchReport", "render", "watch"]
