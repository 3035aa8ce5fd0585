"""queue.*: the email outbox. A job exists if and only if the purchase that queued it
committed; delivery retries, then dead-letters, against a real SMTP server on loopback;
every message reaches exactly the one mailbox it is meant for, or its purchase is refused
before it commits."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg
from aiosmtpd.controller import Controller
from psycopg.types.json import Jsonb

from harness import db
from harness.money.service import sql_config
from harness.outbox import queue, worker
from harness.proofs.verify.context import q
from harness.proofs.verify.registry import CheckFailed, CheckInconclusive, check
from harness.proofs.verify.world import Answer, World, purchase, purchase_atomic, snapshot

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


# -- recipients ----------------------------------------------------------------------------

# (label, address, display name): what a buyer may have typed into a profile page ({}:
# the flow, so that every buyer's address is its own).
RECIPIENTS = (
    ("several addresses", "victim-{}@example.com, evil@attacker.example", "Victim"),
    ("several addresses, no space", "victim-{}@example.com;evil@attacker.example", "Victim"),
    ("a display name in the address", "Victim <victim-{}@example.com>", "Victim"),
    ("CR/LF in the address", "victim-{}@example.com\r\nBcc: evil@attacker.example", "Victim"),
    ("CR/LF in the name", "crlf-{}@example.com", "Eve\r\nBcc: evil@attacker.example"),
    ("a comma in the name", "comma-{}@example.com", "Doe, John <evil@attacker.example>"),
    ("a Unicode local part", "pépé-{}@example.com", "Pépé"),
    ("a Unicode domain", "bob-{}@exämple.com", "Bob"),
)
FORBIDDEN = "attacker.example"


class _Recorder:
    """An aiosmtpd handler that keeps every envelope and the To header it came with."""

    def __init__(self, pipelining: bool = False) -> None:
        self.messages: list[tuple[tuple[str, ...], list[str]]] = []
        self.lock = threading.Lock()
        self.pipelining = pipelining

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        # Offering PIPELINING puts the mailer on the path production relays take it down:
        # MAIL, RCPT and DATA written together.
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        text = envelope.content.decode("utf-8", errors="replace")
        msg = email.message_from_string(text, policy=email.policy.default)
        to = [a.addr_spec for a in getattr(msg["To"], "addresses", ())]
        with self.lock:
            self.messages.append((tuple(envelope.rcpt_tos), to))
        return "250 OK"


@contextmanager
def _smtp_server(smtputf8: bool):
    # The server with SMTPUTF8 also offers PIPELINING, as Postfix does; the other offers
    # neither, as a bare relay: the attacks run down both of the mailer's paths.
    handler = _Recorder(pipelining=smtputf8)
    port = _free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        loop=asyncio.new_event_loop(),
        enable_SMTPUTF8=smtputf8,
    )
    controller.start()
    try:
        yield handler, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def _intended(address: str, smtputf8: bool) -> set[str]:
    """The mailboxes a message for ``address`` may go to: the address itself, and its
    IDNA form where the server cannot take Unicode."""
    r = queue.recipient(address)
    out = {r.address}
    if not smtputf8 and r.ascii:
        out.add(r.ascii)
    return out


def _recipients_run(ctx, smtputf8: bool) -> tuple[list[str], Counter]:
    """Buy through every flow as every kind of buyer, write forged jobs too, deliver
    them all to a loopback server; what went wrong."""
    from harness.errors import HarnessError
    from harness.money import service

    dsn = ctx.new_database(audit=False)
    problems: list[str] = []
    tally: Counter = Counter()
    flows = ["legacy"]
    with ctx.connect(dsn) as conn:
        if db.scalar(conn, q("world", "has-atomic")):
            flows = ["atomic", "stepwise", "legacy"]
        world = World(conn)
        buyers = []
        for label, template, name in RECIPIENTS:
            for flow in flows:
                address = template.format(flow)
                ws, _ = world.workspace(balance="10.00")
                user = db.scalar(
                    conn,
                    q("queue", "insert-buyer"),
                    {"email": address, "name": name, "workspace_id": ws},
                )
                buyers.append((label, address, flow, ws, user, world.leads(1, "1.00")[0]))
        forged = {
            db.scalar(
                conn,
                q("queue", "enqueue-raw"),
                {"payload": Jsonb(_credit_payload(template.format("forged"), name))},
            ): (label, template.format("forged"))
            for label, template, name in RECIPIENTS
        }
    committed: dict[uuid.UUID, tuple[str, str, str]] = {}
    pool = db.pool(dsn, min_size=1, max_size=2)
    counter = ctx.connect(dsn)
    try:
        for label, address, flow, ws, user, lead in buyers:
            before = db.scalar(counter, q("queue", "count-purchases"), {"workspace_id": ws})
            svc = service.PurchaseService(pool, flow=flow)
            try:
                result = svc.purchase(service.PurchaseRequest(ws, user, (lead,), f"k-{flow}"))
                committed[result.purchase_id] = (label, address, flow)
                tally[f"{flow}:bought"] += 1
            except HarnessError as exc:
                code = getattr(exc, "code", type(exc).__name__)
                tally[f"{flow}:{code}"] += 1
                after = db.scalar(counter, q("queue", "count-purchases"), {"workspace_id": ws})
                if after != before:
                    problems.append(f"{flow}, {label}: refused ({code}) after a purchase row")
            except Exception as exc:  # a raw error out of the service is a finding too
                problems.append(f"{flow}, {label}: {type(exc).__name__} out of the service")
    finally:
        counter.close()
        pool.close()
    quiet = logging.NullHandler()
    worker_log = logging.getLogger("harness.outbox.worker")
    worker_log.addHandler(quiet)
    propagate, worker_log.propagate = worker_log.propagate, False
    try:
        with _smtp_server(smtputf8) as (handler, url):
            worker.drain(dsn, url, retry_attempts=2, retry_backoff_ms=10)
    finally:
        worker_log.propagate = propagate
        worker_log.removeHandler(quiet)
    server = "SMTPUTF8" if smtputf8 else "no SMTPUTF8"
    for rcpts, to in handler.messages:
        if len(rcpts) != 1:
            problems.append(f"{server}: one message went to {len(rcpts)} RCPTs: {list(rcpts)}")
        if len(to) != 1 or tuple(to) != rcpts:
            problems.append(f"{server}: RCPT {list(rcpts)} under To {to}")
        if any(FORBIDDEN in r for r in rcpts + tuple(to)):
            problems.append(f"{server}: a message reached {FORBIDDEN}")
    delivered = Counter(r for rcpts, _ in handler.messages for r in rcpts)
    with ctx.connect(dsn) as conn:
        jobs = conn.execute(q("queue", "job-outcomes")).fetchall()
    for job_id, status, error, _address, purchase_id in jobs:
        if purchase_id in committed:
            label, original, flow = committed[purchase_id]
            intended = _intended(original, smtputf8)
            if status == "sent":
                if not any(delivered[m] for m in intended):
                    problems.append(f"{server}, {flow}, {label}: sent, but not to {original}")
                continue
            needs = queue.recipient(original).needs_smtputf8
            if status == "dead" and needs and not smtputf8 and "smtputf8" in (error or ""):
                tally["dead:explained"] += 1
                continue
            problems.append(
                f"{server}, {flow}, {label}: committed, then {status} ({(error or '')[:80]})"
            )
        elif job_id in forged:
            label, original = forged[job_id]
            if status == "sent" and not any(
                delivered[m] for m in _intended_or_empty(original, smtputf8)
            ):
                problems.append(f"{server}: forged job ({label}) sent elsewhere than {original}")
            if status == "dead" and not error:
                problems.append(f"{server}: forged job ({label}) dead without a reason")
    tally["messages"] += len(handler.messages)
    return problems, tally


def _intended_or_empty(address: str, smtputf8: bool) -> set[str]:
    try:
        return _intended(address, smtputf8)
    except ValueError:
        return set()


def _credit_payload(address: str, name: str) -> dict:
    return {
        "email": address,
        "name": name,
        "credits_amount": "1.00",
        "total_price": "1.00",
        "package_name": "starter",
        "new_balance": "1.00",
    }


def _confirmation_payload(purchase_id) -> dict:
    return {
        "email": "buyer@example.com",
        "name": "Buyer",
        "total_leads": 1,
        "total_price": "1.00",
        "purchase_id": str(purchase_id),
        "download_url": f"https://app.example.com/download/{purchase_id}",
        "download_expires_at": "2030-01-01T00:00:00+00:00",
    }


@check("queue.enqueue-contract")
def enqueue_contract(ctx) -> str:
    """enqueue_email, the outbox's one way in: a purchase gets one confirmation job
    however often it is asked for (its id read from the payload when not given); credit
    emails are not merged; an unknown kind, a payload that is not an object or lacks a
    key (or holds null for it), and a confirmation whose payload names another purchase
    raise invalid_parameter_value and write nothing."""
    conn = ctx.connect(ctx.new_database(audit=False))
    with conn:
        world = World(conn)
        ws, (user,) = world.workspace(balance="10.00")
        bought = []
        for lead in world.leads(2, "1.00"):
            ans = purchase(conn, ws, user, [lead], Decimal("1.00"))
            if not ans.success:
                raise CheckInconclusive(f"setting up: a purchase was refused: {ans.error_message}")
            bought.append(ans.purchase_id)
        p1, p2 = bought
        problems: list[str] = []

        def raw(kind, payload, purchase_id=None):
            return db.scalar(
                conn,
                q("queue", "enqueue"),
                (kind, None if payload is None else Jsonb(payload), purchase_id, ws),
            )

        def enqueue(kind, payload, purchase_id=None):
            try:
                return raw(kind, payload, purchase_id)
            except psycopg.Error as exc:
                raise CheckFailed(
                    f"a valid {kind} email (purchase {purchase_id}) raised "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
                ) from None

        first = enqueue("purchase_confirmation", _confirmation_payload(p1), p1)
        again = enqueue("purchase_confirmation", _confirmation_payload(p1), p1)
        inferred = enqueue("purchase_confirmation", _confirmation_payload(p2))
        named = enqueue("purchase_confirmation", _confirmation_payload(p2), p2)
        for pid, want in ((p1, [first]), (p2, [inferred])):
            got = [r[0] for r in conn.execute(q("queue", "jobs-of-purchase"), (pid,))]
            if got != want:
                problems.append(f"confirmation jobs of one purchase: {got}, want {want}")
        if again != first or named != inferred:
            problems.append(
                f"asking again answered jobs {again} and {named}, want the first ones "
                f"{first} and {inferred}"
            )
        credit = _credit_payload("buyer@example.com", "Buyer")
        if enqueue("credit_purchase", credit) == enqueue("credit_purchase", credit):
            problems.append("two credit emails were merged into one job")
        missing = {k: v for k, v in _confirmation_payload(p1).items() if k != "email"}
        bad = [
            ("an unknown kind", "refund_notice", credit, None),
            ("no payload", "credit_purchase", None, None),
            ("a payload that is a list", "credit_purchase", ["email"], None),
            ("a payload without email", "purchase_confirmation", missing, p1),
            ("a null email", "credit_purchase", {**credit, "email": None}, None),
            ("another purchase's payload", "purchase_confirmation", _confirmation_payload(p1), p2),
        ]
        before = snapshot(conn)
        for label, kind, payload, pid in bad:
            try:
                with conn.transaction():
                    raw(kind, payload, pid)
            except psycopg.errors.InvalidParameterValue:
                continue
            except psycopg.Error as exc:
                problems.append(
                    f"{label}: raised {type(exc).__name__}, want invalid_parameter_value"
                )
            else:
                problems.append(f"{label}: accepted")
        if snapshot(conn) != before:
            problems.append("a refused enqueue wrote rows")
        if problems:
            raise CheckFailed("; ".join(problems))
    return (
        "one confirmation job per purchase, asked for twice each (once with its id read "
        f"from the payload); credit emails kept apart; {len(bad)} bad calls raised "
        "invalid_parameter_value and wrote nothing"
    )


@check("queue.confirmation-payload")
def confirmation_payload(ctx) -> str:
    """The confirmation email a purchase queues says what the purchase is, in both
    places that write one: purchase_leads_atomic's own copy and queue_purchase_confirmation
    (what reconcile and the stepwise flow call). One job, of the buyer's workspace and
    purchase, whose payload holds exactly the worker's keys: the buyer's address; their
    name, or the configured default when it is blank; the purchase's lead count, price
    and id; the configured download prefix followed by the id; an expiry the configured
    number of days after the purchase's own moment (its transaction's now()). The worker
    reads it back as the same email."""
    conn = ctx.connect(ctx.new_database(audit=False))
    config = sql_config()
    days = int(config["download_expiry_days"])
    with conn:
        # Days added in UTC are 24 hours each; in a zone with summer time one may be 23.
        conn.execute("SET TIME ZONE 'UTC'")
        world = World(conn)
        ws, (owner, member) = world.workspace(balance="20.00", members=2)
        conn.execute(q("queue", "blank-name"), (member,))
        problems: list[str] = []
        # (where, purchase, buyer, leads, price, the now() its confirmation was queued at)
        made: list[tuple[str, uuid.UUID, uuid.UUID, int, Decimal, datetime]] = []
        atomic = db.scalar(conn, q("world", "has-atomic"))
        for who in (owner, member) if atomic else ():
            leads = world.leads(2, "1.50")
            answer = Answer.from_atomic(
                purchase_atomic(conn, ws, who, leads, Decimal("3.00"), Jsonb(config))
            )
            if not answer.success or answer.purchase_id is None:
                raise CheckInconclusive(f"setting up: refused: {answer.error_message}")
            moment = db.scalar(conn, q("queue", "purchase-time"), (answer.purchase_id,))
            made.append(
                ("purchase_leads_atomic", answer.purchase_id, who, 2, Decimal("3.00"), moment)
            )
        for who in (owner, member):
            pending = purchase(conn, ws, who, world.leads(1, "2.00"), Decimal("2.00"))
            if not pending.success or pending.purchase_id is None:
                raise CheckInconclusive(f"setting up: refused: {pending.error_message}")
            with conn.transaction():
                moment = db.scalar(conn, q("queue", "now"))
                conn.execute(q("world", "queue-confirmation"), (pending.purchase_id, Jsonb(config)))
            made.append(
                (
                    "queue_purchase_confirmation",
                    pending.purchase_id,
                    who,
                    1,
                    Decimal("2.00"),
                    moment,
                )
            )
        for where, pid, who, count, price, moment in made:
            problems += _payload_problems(
                conn, where, ws, pid, who, count, price, moment, config, days
            )
        if problems:
            raise CheckFailed("; ".join(problems))
    return (
        f"{len(made)} confirmations ({', '.join(sorted({m[0] for m in made}))}): one job each, "
        f"for the buyer, their name or the default, the purchase's count, price and id, the "
        f"configured link, expiring {days} days after the purchase; the worker reads each back"
    )


def _payload_problems(conn, where, ws, pid, who, count, price, moment, config, days) -> list[str]:
    """What is wrong with the confirmation job ``where`` wrote for purchase ``pid``."""
    jobs = conn.execute(q("queue", "confirmation-jobs"), (pid,)).fetchall()
    if len(jobs) != 1:
        return [f"{where}: {len(jobs)} confirmation job(s) for one purchase, want 1"]
    kind, payload, job_purchase, job_workspace = jobs[0]
    address, full_name = conn.execute(q("queue", "buyer"), (who,)).fetchone()
    want = {
        "email": address,
        "name": (full_name or "").strip() or config["default_customer_name"],
        "total_leads": count,
        "total_price": f"{price:.2f}",
        "purchase_id": str(pid),
        "download_url": f"{config['download_url_prefix']}{pid}",
    }
    problems = []
    if (kind, job_purchase, job_workspace) != ("purchase_confirmation", pid, ws):
        problems.append(
            f"job of kind {kind!r} for purchase {job_purchase}, workspace {job_workspace}"
        )
    if not isinstance(payload, dict) or set(payload) != {*want, "download_expires_at"}:
        keys = sorted(payload) if isinstance(payload, dict) else payload
        return [f"{where}: payload keys {keys}, want {sorted({*want, 'download_expires_at'})}"]
    problems += [f"{k} {payload[k]!r}, want {v!r}" for k, v in want.items() if payload[k] != v]
    try:
        expires = datetime.fromisoformat(payload["download_expires_at"])
    except (TypeError, ValueError):
        expires = None
    if expires != moment + timedelta(days=days):
        problems.append(
            f"download_expires_at {payload['download_expires_at']!r}, want {days} days after "
            f"the purchase ({(moment + timedelta(days=days)).isoformat()})"
        )
    try:
        queue.PurchaseConfirmationEmail.from_payload(payload)
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"the worker cannot read it: {exc}")
    return [f"{where}: {p}" for p in problems]


@check("queue.recipients")
def recipients(ctx) -> str:
    """Buyers whose address is several addresses, has a display name or CR/LF in it,
    whose name has CR/LF or a comma, or whose address is internationalized, buy through
    every flow, and jobs with those addresses are also written straight into the outbox;
    the worker delivers to a real SMTP server on loopback, once with SMTPUTF8 and
    PIPELINING and once with neither. Every message has exactly one RCPT, the intended
    mailbox (its IDNA form without SMTPUTF8), and one To address, the same; nothing
    reaches the attacker; a purchase is either refused before it commits (a stable code,
    no purchase row) or its email is sent, dead-lettered only with its reason when the
    server cannot take a Unicode local part."""
    problems: list[str] = []
    tallies: Counter = Counter()
    # The two servers' runs are independent (each its own database): run them at once.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="recipients") as pool:
        for found, tally in pool.map(lambda utf8: _recipients_run(ctx, utf8), (True, False)):
            problems += found
            tallies.update(tally)
    if problems:
        raise CheckFailed(f"{len(problems)} problems: " + "; ".join(problems[:10]))
    return (
        f"{len(RECIPIENTS)} kinds of recipient through every flow and as forged jobs, "
        f"delivered with and without SMTPUTF8 and PIPELINING: {tallies['messages']} "
        f"messages, each to one RCPT, the intended one; outcomes {dict(sorted(tallies.items()))}"
    )
