"""Running scenarios: each in its own database cloned from a template migrated once.

A scenario's world (workspaces, members, partners, leads, opening balances) is built
with plain SQL; its steps drive the real purchase service, the lifecycle functions,
reconciler and email worker through a :class:`Session`; then its outcome is read back
and compared with ``[expect]``, and the invariant checker judges the whole database.
Concurrent purchases are released together by a barrier, each on its own pooled
connection, while a sampler watches ``pg_stat_activity`` to prove that they were really
in flight at once. A step of one purchase or one lifecycle call also gets its answer, in
the model's terms (:mod:`harness.money.model`: labels for purchases, names for leads), so
``harness verify``'s model checks drive the database through the same code as a file.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from harness import db, env, testing
from harness.db import connect, fetch_all
from harness.db.migrations import Migrator
from harness.drivers.scenarios.format import UNEXPECTED, Scenario, ScenarioError, Step
from harness.errors import DomainError
from harness.money import model
from harness.money.invariants import check_invariants
from harness.testing import InFlightMonitor, max_overlap, release_together

UNEXPECTED_KEPT = 5  # unexpected exception messages kept per step
MODULE = "scenario_runner"
# Connections a run holds besides one per concurrent purchase: the pool's spare and the
# in-flight sampler.
EXTRA_CONNECTIONS = 2
# How often the worker of a run_worker step looks for jobs: it stops once every job is
# settled, so a short poll ends the step as soon as the last email is sent.
WORKER_POLL = 0.02


@dataclass
class StepResult:
    """What one step did."""

    index: int
    action: str
    succeeded: int = 0
    replayed: int = 0
    crashed: int = 0
    errors: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    concurrency: int = 1
    peak_in_flight: int | None = None
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    # The answer of a step of one purchase or one lifecycle call, in the model's terms.
    answer: model.Answer = None
    mismatches: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "action": self.action}
        if self.answer is not None:
            out["answer"] = show_answer(self.answer)
        if self.action in ("purchase", "crash_purchase"):
            out.update(
                succeeded=self.succeeded,
                replayed=self.replayed,
                crashed=self.crashed,
                errors=dict(sorted(self.errors.items())),
                concurrency=self.concurrency,
                peak_in_flight=self.peak_in_flight,
            )
            if self.unexpected:
                out["unexpected"] = self.unexpected
        out.update(self.detail)
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass
class ScenarioResult:
    """A scenario's outcome, checked against its expectations."""

    name: str
    file: str
    flow: str
    succeeded: int = 0
    errors: Counter = field(default_factory=Counter)
    balances: dict[str, Decimal | None] = field(default_factory=dict)
    total_used: dict[str, Decimal | None] = field(default_factory=dict)
    sold: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    emails: dict[str, int] = field(default_factory=dict)
    violations: list[dict] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "succeeded": self.succeeded,
            "errors": dict(sorted(self.errors.items())),
            "balances": {k: (None if v is None else str(v)) for k, v in self.balances.items()},
            "violations": self.violations,
            "mismatches": self.mismatches,
            "file": self.file,
            "flow": self.flow,
            "sold": self.sold,
            "total_used": {k: (None if v is None else str(v)) for k, v in self.total_used.items()},
            "statuses": self.statuses,
            "emails": self.emails,
            "steps": [s.as_dict() for s in self.steps],
            "seconds": round(self.seconds, 3),
        }


# -- the run --------------------------------------------------------------------------------


def run_scenarios(
    admin_dsn: str,
    scenarios: Sequence[Scenario],
    migration_dirs: Sequence[str] | None = None,
    *,
    template: str | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> list[ScenarioResult]:
    """Run each scenario in a fresh database cloned from a template: ``template`` when
    given (a migrated database on the same server), else one migrated for this run.
    Before anything is created, the server must allow the most concurrent step's
    connections (:func:`check_capacity`)."""
    check_capacity(admin_dsn, scenarios)
    if template is not None:
        return _run_all(admin_dsn, scenarios, template, on_result, migration_dirs)
    template = db.scratch_name("harness_scenario_template")
    template_dsn = db.create_database(admin_dsn, template)
    try:
        with Migrator(template_dsn, migration_dirs) as migrator:
            migrator.apply()
        return _run_all(admin_dsn, scenarios, template, on_result, migration_dirs)
    finally:
        db.drop_database(admin_dsn, template)


def check_capacity(admin_dsn: str, scenarios: Sequence[Scenario]) -> None:
    """Refuse, before anything runs, a step whose purchases at once need more connections
    than the server has free: ``max_connections`` less the reserved slots and the
    sessions already open. (Otherwise the run floods the log with refused connections.)"""
    widest = [(s, st) for s in scenarios for st in s.steps if st.concurrency > 1]
    if not widest:
        return
    scenario, step = max(widest, key=lambda pair: pair[1].concurrency)
    with connect(admin_dsn) as conn:
        cap = fetch_all(conn, MODULE, "connection_capacity")[0]
    free = cap["max_connections"] - cap["reserved"] - cap["in_use"]
    need = step.concurrency + EXTRA_CONNECTIONS
    if need > free:
        raise ScenarioError(
            f"{scenario.path}: steps[{step.index}].concurrency: {step.concurrency} purchases "
            f"at once need {need} connections, but the server allows "
            f"{cap['max_connections']} (max_connections), {cap['reserved']} of them reserved "
            f"and {cap['in_use']} in use: at most {max(free - EXTRA_CONNECTIONS, 0)} at once "
            "on this server"
        )


def _run_all(
    admin_dsn: str,
    scenarios: Sequence[Scenario],
    template: str,
    on_result: Callable[[ScenarioResult], None] | None,
    migration_dirs: Sequence[str] | None = None,
) -> list[ScenarioResult]:
    results = []
    for scenario in scenarios:
        with db.scratch_database(admin_dsn, prefix="harness_scenario", template=template) as dsn:
            result = run_scenario(dsn, scenario, migration_dirs)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def run_scenario(
    dsn: str, scenario: Scenario, migration_dirs: Sequence[str] | None = None
) -> ScenarioResult:
    """Run one scenario on a migrated database of its own (``migration_dirs``: the set it
    was migrated with, which a ``reapply`` step rolls back and re-applies)."""
    from harness.money import service as service_module

    flow = scenario.flow or service_module.current_flow()
    result = ScenarioResult(scenario.name, str(scenario.path), flow)
    started = time.perf_counter()
    with connect(dsn) as conn:
        world = World.build(conn, scenario)
    width = max([s.concurrency for s in scenario.steps] + [1])
    with Session(dsn, world, flow, width=width, migration_dirs=migration_dirs) as session:
        for step in scenario.steps:
            step_result = session.run(step)
            result.steps.append(step_result)
            if step.action == "purchase":
                result.succeeded += step_result.succeeded
            result.errors.update(step_result.errors)
            result.mismatches.extend(step_result.mismatches)
            if step.concurrency > 1 and (step_result.peak_in_flight or 0) < 2:
                result.mismatches.append(
                    f"{step.where}: concurrency not achieved (concurrency "
                    f"{step.concurrency}, peak in flight {step_result.peak_in_flight})"
                )
        with connect(dsn) as conn:
            _observe(conn, session, result)
    _compare(scenario, result)
    result.seconds = time.perf_counter() - started
    return result


# -- the world ------------------------------------------------------------------------------


@dataclass
class World:
    """The ids behind a scenario's names."""

    scenario: Scenario
    workspaces: dict[str, uuid.UUID]
    users: dict[str, uuid.UUID]
    emails: dict[str, str]
    leads: dict[str, uuid.UUID]

    @classmethod
    def build(cls, conn: psycopg.Connection, scenario: Scenario) -> World:
        workspaces: dict[str, uuid.UUID] = {}
        users: dict[str, uuid.UUID] = {}
        emails: dict[str, str] = {}
        leads: dict[str, uuid.UUID] = {}
        builder = testing.World(conn)
        with conn.transaction():
            for ws in scenario.workspaces:
                ws_id, _ = builder.workspace(ws.name, members=0)
                workspaces[ws.name] = ws_id
                for i, member in enumerate(ws.member_names):
                    emails[member] = f"{member}@scenario.example.com"
                    users[member] = builder.user(member, emails[member])
                    builder.member(ws_id, users[member], "owner" if i == 0 else "member")
                if ws.balance is not None:
                    builder.account(ws_id, ws.balance)
            # A step's user that is no member of any workspace is an outsider.
            for step in scenario.steps:
                if step.user and step.user not in users:
                    emails[step.user] = f"{step.user}@outsider.example.com"
                    users[step.user] = builder.user(step.user, emails[step.user])
            partners = {
                p.name: builder.partner(
                    p.name,
                    p.base_commission_rate,
                    p.bonus_commission_rate,
                    p.verification_pass_rate,
                )
                for p in scenario.partners
            }
            for group in scenario.leads:
                leads.update(
                    builder.named_leads(
                        group.name,
                        group.count,
                        group.price,
                        group.max_sales,
                        partners.get(group.partner) if group.partner else None,
                        age_days=group.age_days,
                    )
                )
        return cls(scenario, workspaces, users, emails, leads)


# -- steps ----------------------------------------------------------------------------------


class Session:
    """Runs steps against one scenario database: the purchase service for each flow on a
    pool of ``width`` connections, the lifecycle functions, reconcile, the worker, and the
    rollback and re-apply of the latest migration. It knows the purchases by label, so a
    step can name one an earlier step made, and answers in the model's terms."""

    def __init__(
        self,
        dsn: str,
        world: World,
        flow: str,
        *,
        width: int = 1,
        migration_dirs: Sequence[str] | None = None,
        smtp_url: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.smtp_url = smtp_url
        self.world = world
        self.flow = flow
        self.width = width
        self.migration_dirs = migration_dirs
        self.pool = db.pool(dsn, min_size=width, max_size=width + 1)
        self._services: dict[str, Any] = {}
        self._migrator: Migrator | None = None
        self.labels: dict[uuid.UUID, str] = {}  # purchase id -> label
        self.ids: dict[str, uuid.UUID] = {}  # label -> purchase id
        self.requested: dict[str, tuple[uuid.UUID, ...]] = {}  # label -> its leads
        self.lead_names = {v: k for k, v in world.leads.items()}
        self.user_names = {v: k for k, v in world.emails.items()}

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.close()
        if self._migrator is not None:
            self._migrator.close()

    def service(self, flow: str) -> Any:
        if flow not in self._services:
            from harness.money.service import PurchaseService

            self._services[flow] = PurchaseService(self.pool, flow=flow)
        return self._services[flow]

    @property
    def repo(self) -> Any:
        return self.service(self.flow).repo

    def label_of(self, purchase_id: uuid.UUID, proposed: str | None = None) -> str:
        """The label of a purchase: the one it was given, else ``proposed`` (the label
        of the step that made it), else ``?`` and its id's first characters."""
        if purchase_id not in self.labels:
            label = proposed if proposed and proposed not in self.ids else None
            label = label or f"?{str(purchase_id)[:8]}"
            self.labels[purchase_id] = label
            self.ids[label] = purchase_id
        return self.labels[purchase_id]

    def run(self, step: Step) -> StepResult:
        """Run one step; its answer (a single purchase or lifecycle call), and each way
        it differs from what the step expects, go in the result."""
        result = StepResult(step.index, step.action, concurrency=step.concurrency)
        started = time.perf_counter()
        if step.action in ("purchase", "crash_purchase"):
            self.purchases(step, result)
        elif step.action == "topup":
            self.topup(step, result)
        elif step.action == "reconcile":
            self.reconcile(step, result)
        elif step.action == "run_worker":
            self.run_worker(result)
        elif step.action == "reapply":
            self.reapply(result)
        else:
            self.lifecycle(step, result)
        result.seconds = time.perf_counter() - started
        result.mismatches += expectation_mismatches(step, result.answer)
        return result

    # -- purchases --------------------------------------------------------------------

    def requests(self, step: Step) -> list[Any]:
        from harness.money.service import PurchaseRequest

        members = self.world.scenario.member_names
        lead_order = self.world.scenario.lead_names
        out = []
        for i in range(step.repeat):
            ws = step.workspaces[i % len(step.workspaces)]
            user = step.user or members[ws][0]  # the format refuses a step with neither
            if step.leads is not None:
                names = step.leads[i % len(step.leads)]
            else:
                n = step.leads_per_purchase or 1
                names = tuple(lead_order[i * n : (i + 1) * n])
            out.append(
                PurchaseRequest(
                    workspace_id=self.world.workspaces[ws],
                    user_id=self.world.users[user],
                    lead_ids=tuple(self.world.leads[name] for name in names),
                    idempotency_key=step.idempotency_key,
                )
            )
        return out

    def purchases(self, step: Step, result: StepResult) -> None:
        flow = "stepwise" if step.action == "crash_purchase" else step.flow or self.flow
        result.detail["flow"] = flow
        service = self.service(flow)
        lock = threading.Lock()
        spans: list[tuple[float, float]] = []

        def call(req: Any) -> Any:
            if step.action == "crash_purchase":
                outcome = service.purchase_and_crash(req, step.after)
                with lock:
                    result.crashed += 1
                return outcome
            outcome = service.purchase(req)
            with lock:
                result.succeeded += 1
                result.replayed += bool(getattr(outcome, "replayed", False))
            return outcome

        def attempt(req: Any) -> Any:
            started = time.monotonic()
            try:
                return call(req)
            except DomainError as exc:
                with lock:
                    result.errors[exc.code] += 1
                return exc
            except Exception as exc:  # any other failure is the scenario's finding
                with lock:
                    result.errors[UNEXPECTED] += 1
                    if len(result.unexpected) < UNEXPECTED_KEPT:
                        result.unexpected.append(f"{type(exc).__name__}: {exc}")
                return exc
            finally:
                with lock:
                    spans.append((started, time.monotonic()))

        requests = self.requests(step)
        if step.concurrency == 1:
            outcomes = [attempt(req) for req in requests]
            if len(requests) == 1:
                result.answer = self.purchase_answer(step, requests[0], outcomes[0])
            return
        with InFlightMonitor(self.dsn) as sampler:
            for start in range(0, len(requests), step.concurrency):
                batch = requests[start : start + step.concurrency]

                def one(i: int, batch: list[Any] = batch) -> None:
                    attempt(batch[i])

                release_together(len(batch), one)
        # Two witnesses: the server's (sessions seen busy at once) and the client's
        # (calls outstanding at once). A fast step can finish between two samples.
        result.peak_in_flight = max(sampler.max_seen, max_overlap(spans))
        result.detail["peak_in_flight_sampled"] = sampler.max_seen

    def purchase_answer(self, step: Step, req: Any, outcome: Any) -> model.Answer:
        if isinstance(outcome, DomainError):
            return model.Refused(outcome.code)
        if isinstance(outcome, BaseException):
            return model.Refused(UNEXPECTED)
        if step.action == "crash_purchase":
            label = self.label_of(outcome, step.label)
            self.requested.setdefault(label, tuple(req.lead_ids))
            return model.Crashed(label)
        label = self.label_of(outcome.purchase_id, None if outcome.replayed else step.label)
        self.requested.setdefault(label, tuple(req.lead_ids))
        return model.Bought(
            label,
            outcome.new_balance,
            outcome.total_price,
            self.names(outcome.leads),
            outcome.replayed,
        )

    def names(self, leads: list[dict[str, Any]]) -> tuple[str, ...]:
        """Lead names of a list of buyer-facing lead details, sorted."""
        return tuple(
            sorted(self.lead_names.get(uuid.UUID(x["lead_id"]), x["lead_id"]) for x in leads)
        )

    # -- one purchase's lifecycle -------------------------------------------------------

    def lifecycle(self, step: Step, result: StepResult) -> None:
        assert step.purchase is not None  # the format requires it
        pid = self.ids.get(step.purchase)
        if pid is None:
            result.answer = f"{step.purchase} was never made"
            result.mismatches.append(f"{step.where}: {result.answer}")
            return
        repo = self.repo
        try:
            if step.action == "refund":
                status = repo.refund_purchase(pid)
                result.answer = status.value if status else "missing"
            elif step.action == "complete":
                status = repo.complete_purchase(pid)
                result.answer = status.value if status else "missing"
            elif step.action == "reconcile_purchase":
                from harness.money.service import sql_config

                with self.pool.connection() as conn:
                    result.answer = str(
                        db.scalar(
                            conn,
                            db.query(MODULE, "reconcile_purchase"),
                            {"purchase_id": pid, "config": Jsonb(sql_config())},
                        )
                    )
            elif step.action == "mark_sold":
                leads = self.requested.get(step.purchase, ())
                marked = repo.mark_purchase_leads_sold(pid, leads)
                result.answer = (
                    "not_pending"
                    if marked is None
                    else "marked"
                    if marked == len(leads)
                    else "sold_out"
                )
            else:
                result.answer = self.delivered(step, pid)
        except Exception as exc:  # a lifecycle call must answer, never raise
            result.errors[UNEXPECTED] += 1
            result.unexpected.append(f"{type(exc).__name__}: {exc}")
            result.answer = f"{UNEXPECTED}: {type(exc).__name__}"

    def delivered(self, step: Step, pid: uuid.UUID) -> model.Delivered:
        with self.pool.connection() as conn:
            buyer, response = conn.execute(
                db.query(MODULE, "purchase_response"), {"purchase_id": pid}
            ).fetchone() or (None, [])
        asker = self.world.workspaces[step.workspaces[0]] if step.workspaces else buyer
        given = self.repo.get_purchased_leads(pid, asker)
        return model.Delivered(self.names(given), self.names(response or []))

    # -- other actions ----------------------------------------------------------------

    def topup(self, step: Step, result: StepResult) -> None:
        ws = step.workspaces[0]
        members = self.world.scenario.member_names[ws]
        email = self.world.emails[members[0]] if members else None
        try:
            balance = self.service(self.flow).top_up(
                self.world.workspaces[ws], step.amount, "scenario", email
            )
        except DomainError as exc:
            result.errors[exc.code] += 1
            result.answer = model.Refused(exc.code)
            return
        result.detail["new_balance"] = str(balance)
        result.answer = balance

    def reconcile(self, step: Step, result: StepResult) -> None:
        from harness.money.reconcile import reconcile

        report = reconcile(self.pool, step.older_than)
        result.detail["reconciled"] = _as_plain(report)
        result.answer = model.Reconciled(
            frozenset(self.label_of(i) for i in report.completed),
            frozenset(self.label_of(i) for i in report.refunded),
            frozenset(self.label_of(i) for i in report.emails_queued),
            report.keys_completed,
            report.keys_failed,
        )

    def run_worker(self, result: StepResult) -> None:
        from harness.outbox.worker import drain

        with contextlib.ExitStack() as stack:
            url = self.smtp_url or stack.enter_context(smtp_url())
            stats = drain(self.dsn, url, wait_for_backoff=True, poll_interval=WORKER_POLL)
        result.detail["worker"] = _as_plain(stats)
        result.answer = stats.sent

    def reapply(self, result: StepResult) -> None:
        """Roll back the latest migration of the set and apply it again. The pool is
        replaced: its sessions may hold plans of the schema as it was."""
        self.pool.close()
        try:
            if self._migrator is None:  # kept: reading and parsing the set again is slow
                self._migrator = Migrator(self.dsn, self.migration_dirs)
            done = self._migrator.rollback(1)
            self._migrator.apply()
        finally:
            self.pool = db.pool(self.dsn, min_size=self.width, max_size=self.width + 1)
            self._services.clear()
        result.detail["reapplied"] = done
        result.answer = "reapplied"

    # -- the state, for the model ---------------------------------------------------------

    def observe(self, conn: psycopg.Connection) -> model.Observation:
        """The database's side of the model's :class:`~harness.money.model.Observation`,
        in names and labels (a purchase no step labelled shows as ``?`` and its id)."""
        ws_names = {str(v): k for k, v in self.world.workspaces.items()}
        leads = {str(k): v for k, v in self.lead_names.items()}
        row = fetch_all(conn, MODULE, "observe")[0]

        def ws(value: str | None) -> str:
            return ws_names.get(str(value), "?")

        def label(value: str | None) -> str:
            return "" if value is None else self.label_of(uuid.UUID(value))

        def money(value: str | None) -> Decimal | None:
            return None if value is None else Decimal(value)

        return model.Observation(
            accounts=tuple(sorted((n, money(b), money(u)) for n, b, u in row["accounts"])),
            ledger=tuple(sorted((ws(w), kind, Decimal(a)) for w, kind, a in row["ledger"])),
            sold=tuple(sorted((leads[i], n) for i, n in row["sold"] if i in leads)),
            reservations=tuple(
                sorted((leads.get(i, "?"), ws(w), label(p)) for i, w, p in row["reservations"])
            ),
            purchases=tuple(
                sorted(
                    (label(i), ws(w), status, price, self.names(delivered or []))
                    for i, w, status, price, delivered in row["purchases"]
                )
            ),
            emails=tuple(
                sorted(
                    (kind, self.user_names.get(email, email or ""), ws(w), label(p), status)
                    for kind, email, w, p, status in row["emails"]
                )
            ),
            keys=tuple(sorted((ws(w), key, status, label(p)) for w, key, status, p in row["keys"])),
        )


def show_answer(answer: model.Answer) -> str:
    """An answer in one short line: ``ok p1 balance 4.00 leads lead-0,lead-1``."""
    if isinstance(answer, model.Bought):
        kind = "replayed" if answer.replayed else "ok"
        leads = ",".join(answer.leads) or "none"
        return f"{kind} {answer.purchase} balance {answer.new_balance} leads {leads}"
    if isinstance(answer, model.Refused):
        return answer.code
    if isinstance(answer, model.Crashed):
        return f"crashed {answer.purchase}"
    if isinstance(answer, model.Reconciled):
        parts = [
            f"{name} {','.join(sorted(getattr(answer, name)))}"
            for name in ("completed", "refunded", "emails_queued")
            if getattr(answer, name)
        ]
        parts += [f"keys completed {answer.keys_completed}"] if answer.keys_completed else []
        parts += [f"keys failed {answer.keys_failed}"] if answer.keys_failed else []
        return "; ".join(parts) or "nothing to settle"
    if isinstance(answer, model.Delivered):
        return (
            f"delivers {','.join(answer.to_asker) or 'nothing'}"
            f" (response {','.join(answer.in_response) or 'nothing'})"
        )
    if isinstance(answer, Decimal):
        return f"balance {answer}"
    return str(answer)


def outcome_of(answer: model.Answer) -> str | None:
    """The word a step's ``expect`` names for an answer."""
    if isinstance(answer, model.Bought):
        return "replayed" if answer.replayed else "ok"
    if isinstance(answer, model.Refused):
        return answer.code
    if isinstance(answer, model.Crashed):
        return "crashed"
    if isinstance(answer, str):
        return answer
    return None


def expectation_mismatches(step: Step, answer: model.Answer) -> list[str]:
    """Each way ``answer`` differs from what ``step`` expects, one line each."""
    out = []

    def differ(what: str, want: object, got: object) -> None:
        out.append(f"{step.where}: {what}: expected {want}, got {got}")

    if step.expect is not None and outcome_of(answer) != step.expect:
        differ("answer", repr(step.expect), show_answer(answer))
    if step.expect_balance is not None:
        got = answer.new_balance if isinstance(answer, model.Bought) else answer
        if got != step.expect_balance:
            differ("balance", step.expect_balance, show_answer(answer))
    if step.expect_leads is not None:
        if isinstance(answer, model.Delivered):
            got_leads: Any = answer.to_asker
        else:
            got_leads = answer.leads if isinstance(answer, model.Bought) else None
        if got_leads is None or tuple(sorted(got_leads)) != tuple(sorted(step.expect_leads)):
            differ("leads", list(step.expect_leads), show_answer(answer))
        if (
            isinstance(answer, model.Delivered)
            and not step.workspaces
            and answer.in_response != answer.to_asker
        ):
            differ("purchase_response_leads", list(answer.to_asker), list(answer.in_response))
    if step.expect_purchase is not None:
        named = getattr(answer, "purchase", None)
        if named != step.expect_purchase:
            differ("purchase", step.expect_purchase, show_answer(answer))
    for name in ("completed", "refunded", "emailed"):
        want = getattr(step, f"expect_{name}")
        if want is None:
            continue
        field_name = "emails_queued" if name == "emailed" else name
        got_set = (
            getattr(answer, field_name, None) if isinstance(answer, model.Reconciled) else None
        )
        if got_set is None or set(got_set) != set(want):
            differ(name, sorted(want), sorted(got_set or ()))
    return out


@contextlib.contextmanager
def smtp_url() -> Iterator[str]:
    """HARNESS_SMTP_URL when set, else a local sink that accepts every message."""
    url = env.read("HARNESS_SMTP_URL")
    if url:
        yield url
        return
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def _as_plain(obj: Any) -> Any:
    if hasattr(obj, "as_dict"):
        obj = obj.as_dict()
    elif hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        obj = asdict(obj)
    if isinstance(obj, dict):
        return {k: _as_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_as_plain(v) for v in obj]
    if isinstance(obj, int | float | str | bool) or obj is None:
        return obj
    return str(obj)


# -- outcome --------------------------------------------------------------------------------


def _observe(conn: psycopg.Connection, session: Session, result: ScenarioResult) -> None:
    world = session.world
    accounts = {r["name"]: r for r in fetch_all(conn, MODULE, "observe_accounts")}
    result.balances = {name: r["balance"] for name, r in accounts.items()}
    result.total_used = {name: r["total_used"] for name, r in accounts.items()}
    by_id = {r["id"]: r["sold_count"] for r in fetch_all(conn, MODULE, "sold_counts")}
    result.sold = {name: by_id[lead_id] for name, lead_id in world.leads.items()}
    statuses = {r["id"]: r["status"] for r in fetch_all(conn, MODULE, "statuses")}
    result.statuses = {label: statuses.get(pid, "missing") for label, pid in session.ids.items()}
    present = db.scalar(conn, "SELECT to_regclass('email_jobs') IS NOT NULL")
    if present:
        result.emails = dict(fetch_all(conn, MODULE, "email_counts")[0])
    # Every step has finished: anything still pending is stuck.
    violations = check_invariants(conn, pending_timeout=timedelta(0))
    result.violations = [_as_plain(v.as_dict()) for v in violations]


def _compare(scenario: Scenario, result: ScenarioResult) -> None:
    expect = scenario.expect
    miss = result.mismatches
    if expect.succeeded is not None and result.succeeded != expect.succeeded:
        miss.append(f"succeeded: expected {expect.succeeded}, got {result.succeeded}")
    if expect.errors is not None:
        want = {k: v for k, v in expect.errors.items() if v}
        got = {k: v for k, v in result.errors.items() if v}
        if want != got:
            miss.append(f"errors: expected {want}, got {got}")
    elif result.errors.get(UNEXPECTED):
        detail = "; ".join(m for s in result.steps for m in s.unexpected)
        miss.append(f"errors: {result.errors[UNEXPECTED]} unexpected error(s): {detail}")
    for name, amount in expect.balances.items():
        balance = result.balances.get(name)
        if balance != amount:
            miss.append(f"balances.{name}: expected {amount}, got {balance}")
    for name, amount in expect.total_used.items():
        used = result.total_used.get(name)
        if used != amount:
            miss.append(f"total_used.{name}: expected {amount}, got {used}")
    for name, count in expect.sold.items():
        if result.sold.get(name) != count:
            miss.append(f"sold.{name}: expected {count}, got {result.sold.get(name)}")
    for label, status in expect.statuses.items():
        now = result.statuses.get(label, "never made")
        if now != status:
            miss.append(f"statuses.{label}: expected {status}, got {now}")
    for key, count in expect.emails.items():
        if result.emails.get(key) != count:
            miss.append(f"emails.{key}: expected {count}, got {result.emails.get(key)}")
    if expect.invariants == "hold" and result.violations:
        names = ", ".join(v["name"] for v in result.violations)
        miss.append(f"invariants: expected hold, violated: {names}")
    if expect.invariants == "violated" and not result.violations:
        miss.append("invariants: expected violated, every invariant holds")


def compare(scenario: Scenario, result: ScenarioResult) -> None:
    """Add to ``result.mismatches`` every expectation of ``scenario`` it does not meet
    (for runners that drive the steps another way, e.g. over HTTP)."""
    _compare(scenario, result)


def report(results: Sequence[ScenarioResult]) -> dict[str, Any]:
    """The JSON report: ``{"ok": bool, "scenarios": [...]}``."""
    return {"ok": all(r.ok for r in results), "scenarios": [r.as_dict() for r in results]}


__all__ = [
    "ScenarioResult",
    "Session",
    "StepResult",
    "World",
    "check_capacity",
    "compare",
    "expectation_mismatches",
    "report",
    "run_scenario",
    "run_scenarios",
    "show_answer",
    "smtp_url",
]
