"""queue.*: the email outbox. A job exists if and only if the purchase that queued it
committed; delivery retries, then dead-letters, against a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import uuid
from collections import Counter
from decimal import Decimal

import psycopg
from aiosmtpd.controller import Controller

from harness import db
from harness.outbox import queue, worker
from harness.proofs.verify.context import q
from harness.proofs.verify.registry import CheckFailed, CheckInconclusive, check
from harness.proofs.verify.world import World, purchase

FATES = ("commit", "rollback", "terminate", "refuse")


@check("queue.outbox-iff-committed")
def outbox_iff_committed(ctx) -> str:
    """Purchases that queue their confirmation email in their own transaction, then
    commit, roll back, lose their backend before COMMIT, or are refused: a job exists for
    exactly the committed ones, one each. Through harness.money.service too when present."""
    rng = ctx.rng("queue.outbox-iff-committed")
    dsn = ctx.new_database()
    with ctx.connect(dsn) as conn:
        world = World(conn)
        ws, (user,) = world.workspace(balance="100.00")
        outsider = world.user("outsider")
        leads = world.leads(24, "1.00")
    fates = [FATES[i % len(FATES)] for i in range(len(leads))]
    rng.shuffle(fates)
    committed: set[uuid.UUID] = set()
    outcome: Counter[str] = Counter()
    with ctx.connect(dsn) as admin:
        for lead, fate in zip(leads, fates, strict=True):
            conn = ctx.connect(dsn)
            try:
                pid = db.scalar(conn, q("world", "backend-pid"))
                conn.execute("BEGIN")
                buyer = outsider if fate == "refuse" else user
                ans = purchase(conn, ws, buyer, [lead], Decimal("1.00"))
                purchase_id = ans.purchase_id
                if ans.success and purchase_id is None:
                    raise CheckFailed(
                        "purchase_with_credits answered success without a "
                        "purchase_id: there is no purchase to announce"
                    )
                if ans.success and purchase_id is not None:
                    queue.queue_purchase_confirmation_email(
                        conn,
                        queue.PurchaseConfirmationEmail.for_purchase(
                            email="buyer@example.com",
                            name="Buyer",
                            total_leads=1,
                            total_price=Decimal("1.00"),
                            purchase_id=purchase_id,
                        ),
                        workspace_id=ws,
                    )
                if fate == "commit":
                    conn.execute("COMMIT")
                    if purchase_id is not None:
                        committed.add(purchase_id)
                elif fate == "terminate":
                    admin.execute(q("queue", "terminate"), (pid,))
                    try:
                        conn.execute("COMMIT")
                        raise CheckInconclusive("a terminated backend committed")
                    except psycopg.OperationalError:
                        pass
                else:
                    conn.execute("ROLLBACK")
                outcome[f"{fate}:{'ok' if ans.success else 'refused'}"] += 1
            finally:
                conn.close()
    service_note = _through_service(dsn, ctx, committed)
    with ctx.connect(dsn) as conn:
        jobs = conn.execute(q("queue", "jobs")).fetchall()
    confirmations = Counter(j[3] for j in jobs if j[1] == "purchase_confirmation")
    problems = []
    if set(confirmations) != committed:
        problems.append(
            f"{len(set(confirmations) - committed)} jobs without a committed "
            f"purchase, {len(committed - set(confirmations))} committed purchases "
            "without a job"
        )
    if any(n != 1 for n in confirmations.values()):
        problems.append("a purchase has more than one confirmation job")
    if problems:
        raise CheckFailed("; ".join(problems) + f" (fates {dict(outcome)})")
    return (
        f"{sum(outcome.values())} purchases {dict(sorted(outcome.items()))}: "
        f"{len(confirmations)} jobs, exactly the committed purchases; {service_note}"
    )


def _through_service(dsn: str, ctx, committed: set) -> str:
    """Completed service purchases have a job; refused ones do not."""
    from harness import db
    from harness.errors import DomainError
    from harness.money import service

    with ctx.connect(dsn) as conn:
        world = World(conn)
        ws, (user,) = world.workspace(balance="2.00")
        leads = world.leads(3, "1.00")
    pool = db.pool(dsn, min_size=1, max_size=2)
    refused = 0
    try:
        svc = service.PurchaseService(pool, flow="atomic")
        for lead in leads:
            try:
                result = svc.purchase(
                    service.PurchaseRequest(workspace_id=ws, user_id=user, lead_ids=(lead,))
                )
                committed.add(result.purchase_id)
            except DomainError:
                refused += 1
    finally:
        pool.close()
    return f"service: {len(leads) - refused} completed, {refused} refused"


# -- delivery against a loopback SMTP server -------------------------------------------------


class _FlakyHandler:
    """Accepts ok@, refuses flaky@ once then accepts, refuses dead@ (451) ``give_up``
    times. Only a worker that never dead-letters tries dead@ that often; the send it then
    accepts settles the job, so the drain ends and the check fails instead of hanging."""

    def __init__(self, give_up: int) -> None:
        self.give_up = give_up
        self.tries: Counter = Counter()
        self.accepted: Counter = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        rcpt = envelope.rcpt_tos[0].split("@")[0]
        with self.lock:
            self.tries[rcpt] += 1
            n = self.tries[rcpt]
        if (rcpt == "dead" and n <= self.give_up) or (rcpt == "flaky" and n == 1):
            return "451 4.3.0 try again later"
        with self.lock:
            self.accepted[rcpt] += 1
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@check("queue.retry-dead-letter")
def retry_dead_letter(ctx) -> str:
    """Against a real SMTP server on loopback: a job whose first attempt is refused is
    retried and sent once; a job always refused is retried up to the attempt limit, then
    dead-lettered with its last error; a healthy one is sent on the first attempt."""
    dsn = ctx.new_database()
    attempts = 3
    with ctx.connect(dsn) as conn:
        ids = {}
        for who in ("ok", "flaky", "dead"):
            ids[who] = queue.queue_credit_purchase_email(
                conn,
                queue.CreditPurchaseEmail(
                    email=f"{who}@example.com",
                    name=who,
                    credits_amount=Decimal("10.00"),
                    total_price=Decimal("10.00"),
                    package_name="starter",
                    new_balance=Decimal("10.00"),
                ),
            )
    handler = _FlakyHandler(give_up=3 * attempts)
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop())
    controller.start()
    # The worker logs each refused attempt; here they are the expected evidence.
    quiet = logging.NullHandler()
    worker_log = logging.getLogger("harness.outbox.worker")
    worker_log.addHandler(quiet)
    propagate, worker_log.propagate = worker_log.propagate, False
    try:
        stats = worker.drain(
            dsn,
            f"smtp://127.0.0.1:{port}",
            wait_for_backoff=True,
            retry_attempts=attempts,
            retry_backoff_ms=20,
        )
    finally:
        worker_log.propagate = propagate
        worker_log.removeHandler(quiet)
        controller.stop()
    with ctx.connect(dsn) as conn:
        jobs = {j[0]: j for j in conn.execute(q("queue", "jobs")).fetchall()}
    got = {who: (jobs[i][2], jobs[i][4]) for who, i in ids.items()}
    want = {"ok": ("sent", 1), "flaky": ("sent", 2), "dead": ("dead", attempts)}
    problems = []
    if got != want:
        problems.append(f"(status, attempts) {got}, want {want}")
    if dict(handler.accepted) != {"ok": 1, "flaky": 1}:
        problems.append(f"server accepted {dict(handler.accepted)}, want ok 1, flaky 1")
    if handler.tries["dead"] != attempts:
        problems.append(f"dead@ tried {handler.tries['dead']} times, want {attempts}")
    if not jobs[ids["dead"]][5]:
        problems.append("the dead letter carries no last_error")
    if problems:
        raise CheckFailed("; ".join(problems))
    return (
        f"ok sent at attempt 1, flaky sent at attempt 2, dead dead after {attempts} "
        f"refusals (last error {jobs[ids['dead']][5][:60]!r}); drain: sent {stats.sent}, "
        f"retried {stats.retried}, dead {stats.dead}"
    )
