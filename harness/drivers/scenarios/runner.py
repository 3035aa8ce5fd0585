"""Running scenarios: each in its own database cloned from a template migrated once.

A scenario's world (workspaces, members, partners, leads, opening balances) is built
with plain SQL; its steps drive the real purchase service, reconciler and email worker;
then its outcome is read back and compared with ``[expect]``, and the invariant checker
judges the whole database. Concurrent purchases are released together by a barrier, each
on its own pooled connection, while a sampler watches ``pg_stat_activity`` to prove that
they were really in flight at once.
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

from harness import db, env, testing
from harness.db import connect, fetch_all
from harness.db.migrations import Migrator
from harness.drivers.scenarios.format import UNEXPECTED, Scenario, Step
from harness.errors import DomainError
from harness.money.invariants import check_invariants
from harness.testing import InFlightMonitor, max_overlap, release_together

UNEXPECTED_KEPT = 5  # unexpected exception messages kept per step


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

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "action": self.action}
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
    sold: dict[str, int] = field(default_factory=dict)
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
    given (a migrated database on the same server), else one migrated for this run."""
    if template is not None:
        return _run_all(admin_dsn, scenarios, template, on_result)
    template = db.scratch_name("harness_scenario_template")
    template_dsn = db.create_database(admin_dsn, template)
    try:
        with Migrator(template_dsn, migration_dirs) as migrator:
            migrator.apply()
        return _run_all(admin_dsn, scenarios, template, on_result)
    finally:
        db.drop_database(admin_dsn, template)


def _run_all(
    admin_dsn: str,
    scenarios: Sequence[Scenario],
    template: str,
    on_result: Callable[[ScenarioResult], None] | None,
) -> list[ScenarioResult]:
    results = []
    for scenario in scenarios:
        with db.scratch_database(admin_dsn, prefix="harness_scenario", template=template) as dsn:
            result = run_scenario(dsn, scenario)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def run_scenario(dsn: str, scenario: Scenario) -> ScenarioResult:
    """Run one scenario on a migrated database of its own."""
    from harness.money import service as service_module

    flow = scenario.flow or service_module.current_flow()
    result = ScenarioResult(scenario.name, str(scenario.path), flow)
    started = time.perf_counter()
    with connect(dsn) as conn:
        world = World.build(conn, scenario)
    width = max([s.concurrency for s in scenario.steps] + [1])
    pool = db.pool(dsn, min_size=width, max_size=width + 1)
    try:
        runner = _StepRunner(dsn, pool, world, flow)
        for step in scenario.steps:
            step_result = runner.run(step)
            result.steps.append(step_result)
            if step.action == "purchase":
                result.succeeded += step_result.succeeded
            result.errors.update(step_result.errors)
            if step.concurrency > 1 and (step_result.peak_in_flight or 0) < 2:
                result.mismatches.append(
                    f"{step.label}: concurrency not achieved (concurrency "
                    f"{step.concurrency}, peak in flight {step_result.peak_in_flight})"
                )
    finally:
        pool.close()
    with connect(dsn) as conn:
        _observe(conn, world, result)
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


class _StepRunner:
    def __init__(self, dsn: str, pool: Any, world: World, flow: str) -> None:
        self.dsn = dsn
        self.pool = pool
        self.world = world
        self.flow = flow
        self._services: dict[str, Any] = {}

    def service(self, flow: str) -> Any:
        if flow not in self._services:
            from harness.money.service import PurchaseService

            self._services[flow] = PurchaseService(self.pool, flow=flow)
        return self._services[flow]

    def run(self, step: Step) -> StepResult:
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
        result.seconds = time.perf_counter() - started
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
        if step.action == "crash_purchase":
            after = step.after

            def call(req: Any) -> None:
                service.purchase_and_crash(req, after)
                with lock:
                    result.crashed += 1
        else:

            def call(req: Any) -> None:
                outcome = service.purchase(req)
                with lock:
                    result.succeeded += 1
                    result.replayed += bool(getattr(outcome, "replayed", False))

        lock = threading.Lock()

        spans: list[tuple[float, float]] = []

        def attempt(req: Any) -> None:
            started = time.monotonic()
            try:
                call(req)
            except DomainError as exc:
                with lock:
                    result.errors[exc.code] += 1
            except Exception as exc:  # any other failure is the scenario's finding
                with lock:
                    result.errors[UNEXPECTED] += 1
                    if len(result.unexpected) < UNEXPECTED_KEPT:
                        result.unexpected.append(f"{type(exc).__name__}: {exc}")
            finally:
                with lock:
                    spans.append((started, time.monotonic()))

        requests = self.requests(step)
        if step.concurrency == 1:
            for req in requests:
                attempt(req)
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

    # -- other actions ----------------------------------------------------------------

    def topup(self, step: Step, result: StepResult) -> None:
        ws = step.workspaces[0]
        members = self.world.scenario.member_names[ws]
        email = self.world.emails[members[0]] if members else None
        balance = self.service(self.flow).top_up(
            self.world.workspaces[ws], step.amount, "scenario", email
        )
        result.detail["new_balance"] = str(balance)

    def reconcile(self, step: Step, result: StepResult) -> None:
        from harness.money.reconcile import reconcile

        report = reconcile(self.pool, step.older_than)
        result.detail["reconciled"] = _as_plain(report)

    def run_worker(self, result: StepResult) -> None:
        from harness.outbox.worker import drain

        with _smtp_url() as url:
            stats = drain(self.dsn, url, wait_for_backoff=True)
        result.detail["worker"] = _as_plain(stats)


@contextlib.contextmanager
def _smtp_url() -> Iterator[str]:
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


def _observe(conn: psycopg.Connection, world: World, result: ScenarioResult) -> None:
    result.balances = {
        r["name"]: r["balance"] for r in fetch_all(conn, "scenario_runner", "balances")
    }
    by_id = {r["id"]: r["sold_count"] for r in fetch_all(conn, "scenario_runner", "sold_counts")}
    result.sold = {name: by_id[lead_id] for name, lead_id in world.leads.items()}
    present = db.scalar(conn, "SELECT to_regclass('email_jobs') IS NOT NULL")
    if present:
        result.emails = dict(fetch_all(conn, "scenario_runner", "email_counts")[0])
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
    for name, count in expect.sold.items():
        if result.sold.get(name) != count:
            miss.append(f"sold.{name}: expected {count}, got {result.sold.get(name)}")
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
    "StepResult",
    "World",
    "compare",
    "report",
    "run_scenario",
    "run_scenarios",
]
