"""Scenario files driven over HTTP: a deployed application instead of the service.

The scenario's world (workspaces, members, partners, leads, balances) is written into the
application's database under a prefix unique to the run (``s1a2b3c-buyer``), so a shared
staging database is never confused by an earlier run or by real data. Its ``purchase``
steps are ``POST /api/marketplace/purchase`` requests signed as the step's member
(concurrent ones released together by a barrier), its ``topup`` steps ``POST
/api/credits/topup``; each successful purchase's download must answer its leads as CSV
(the source design's "verify download URL works"). ``reconcile``, ``run_worker`` and
``crash_purchase`` are not things a client can do over HTTP: a scenario that has them is
refused. The outcome is read back for the run's own workspaces and leads, compared with
``[expect]`` by the scenario runner's own comparison, and the invariant checker judges
the whole database.
"""

from __future__ import annotations

import csv
import io
import secrets
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

import httpx

from harness import db
from harness.drivers.scenarios.format import UNEXPECTED, Scenario, Step
from harness.drivers.scenarios.runner import ScenarioResult, StepResult, World, compare
from harness.drivers.serve import contract, tokens
from harness.errors import ScenarioError
from harness.money.invariants import check_invariants
from harness.testing import InFlightMonitor, max_overlap, release_together

HTTP_ACTIONS = ("purchase", "topup")
TIMEOUT_S = 60


def run_prefix() -> str:
    """A prefix no earlier run used: the run's names in a shared database."""
    return f"s{secrets.token_hex(3)}-"


def prefixed(scenario: Scenario, prefix: str) -> Scenario:
    """The scenario with every workspace, partner, lead and user name prefixed, and its
    steps' references with them (its expectations keep the plain names)."""

    def name(n: str) -> str:
        return prefix + n

    def step(s: Step) -> Step:
        return replace(
            s,
            workspaces=tuple(map(name, s.workspaces)),
            user=name(s.user) if s.user else None,
            leads=tuple(tuple(map(name, group)) for group in s.leads) if s.leads else s.leads,
            idempotency_key=name(s.idempotency_key) if s.idempotency_key else None,
        )

    return replace(
        scenario,
        workspaces=tuple(replace(w, name=name(w.name)) for w in scenario.workspaces),
        partners=tuple(replace(p, name=name(p.name)) for p in scenario.partners),
        leads=tuple(
            replace(g, name=name(g.name), partner=name(g.partner) if g.partner else None)
            for g in scenario.leads
        ),
        steps=tuple(step(s) for s in scenario.steps),
    )


def check_drivable(scenario: Scenario) -> None:
    """ScenarioError when a step cannot be driven over HTTP."""
    for s in scenario.steps:
        if s.action not in HTTP_ACTIONS:
            raise ScenarioError(
                f"{scenario.path}: {s.label}: a {s.action} step cannot be driven over HTTP "
                f"(only {', '.join(HTTP_ACTIONS)}); run it with `harness scenario run`"
            )


def run_http_scenario(url: str, dsn: str, secret: str, scenario: Scenario) -> ScenarioResult:
    """Run one scenario against the application at ``url`` whose database is ``dsn``."""
    check_drivable(scenario)
    prefix = run_prefix()
    ran = prefixed(scenario, prefix)
    result = ScenarioResult(scenario.name, str(scenario.path), "the application's")
    started = time.perf_counter()
    with db.connect(dsn) as conn:
        world = World.build(conn, ran)
    runner = _HttpSteps(url.rstrip("/"), dsn, secret, world)
    with httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT_S) as client:
        for s in ran.steps:
            step_result = runner.run(client, s)
            result.steps.append(step_result)
            if s.action == "purchase":
                result.succeeded += step_result.succeeded
            result.errors.update(step_result.errors)
            if s.concurrency > 1 and (step_result.peak_in_flight or 0) < 2:
                result.mismatches.append(
                    f"{s.label}: concurrency not achieved (concurrency {s.concurrency}, "
                    f"peak in flight {step_result.peak_in_flight})"
                )
        result.mismatches += runner.check_downloads(client)
    with db.connect(dsn) as conn:
        _observe(conn, world, result, prefix)
    compare(scenario, result)
    result.seconds = time.perf_counter() - started
    return result


class _HttpSteps:
    def __init__(self, url: str, dsn: str, secret: str, world: World) -> None:
        self.url = url
        self.dsn = dsn
        self.secret = secret
        self.world = world
        self.bought: list[tuple[str, str, tuple[uuid.UUID, ...]]] = []  # (id, token, leads)
        self.lock = threading.Lock()

    def token(self, workspace: str, user: str) -> str:
        ws_id = self.world.workspaces[workspace]
        return tokens.issue(self.secret, ws_id, self.world.users[user])

    def run(self, client: httpx.Client, s: Step) -> StepResult:
        result = StepResult(s.index, s.action, concurrency=s.concurrency)
        started = time.perf_counter()
        if s.action == "purchase":
            self.purchases(client, s, result)
        else:
            self.topup(client, s, result)
        result.seconds = time.perf_counter() - started
        return result

    def requests(self, s: Step) -> list[tuple[str, list[uuid.UUID]]]:
        members = self.world.scenario.member_names
        order = self.world.scenario.lead_names
        out = []
        for i in range(s.repeat):
            ws = s.workspaces[i % len(s.workspaces)]
            user = s.user or members[ws][0]
            if s.leads is not None:
                names = s.leads[i % len(s.leads)]
            else:
                n = s.leads_per_purchase or 1
                names = tuple(order[i * n : (i + 1) * n])
            out.append((self.token(ws, user), [self.world.leads[x] for x in names]))
        return out

    def purchases(self, client: httpx.Client, s: Step, result: StepResult) -> None:
        spans: list[tuple[float, float]] = []

        def attempt(token: str, leads: list[uuid.UUID]) -> None:
            t0 = time.monotonic()
            try:
                r = client.post(
                    contract.PURCHASE,
                    json=contract.purchase_body(leads),
                    headers=contract.headers(token, s.idempotency_key),
                )
                body = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                kind = contract.outcome(r.status_code, body)
            except (httpx.HTTPError, ValueError) as exc:
                kind, r, body = UNEXPECTED, None, {"error": str(exc)}
            with self.lock:
                spans.append((t0, time.monotonic()))
                if kind in ("purchased", "replayed"):
                    result.succeeded += 1
                    result.replayed += kind == "replayed"
                    pid = contract.purchase_id_of(body)
                    if pid and kind == "purchased":
                        self.bought.append((pid, token, tuple(leads)))
                else:
                    result.errors[kind] += 1
                    if kind == UNEXPECTED and len(result.unexpected) < 5:
                        status = r.status_code if r is not None else "no answer"
                        result.unexpected.append(f"{status} {str(body)[:200]}")

        reqs = self.requests(s)
        if s.concurrency == 1:
            for token, leads in reqs:
                attempt(token, leads)
            return
        with InFlightMonitor(self.dsn) as sampler:
            for start in range(0, len(reqs), s.concurrency):
                batch = reqs[start : start + s.concurrency]

                def one(i: int, batch: list[tuple[str, list[uuid.UUID]]] = batch) -> None:
                    attempt(*batch[i])

                release_together(len(batch), one)
        result.peak_in_flight = max(sampler.max_seen, max_overlap(spans))
        result.detail["peak_in_flight_sampled"] = sampler.max_seen

    def topup(self, client: httpx.Client, s: Step, result: StepResult) -> None:
        ws = s.workspaces[0]
        members = self.world.scenario.member_names[ws]
        r = client.post(
            contract.TOPUP,
            json={
                "amount": f"{s.amount:.2f}",
                "package": "scenario",
                "payment_reference": f"scenario-{uuid.uuid4()}",
            },
            headers=contract.headers(self.token(ws, members[0])),
        )
        if r.status_code != 200:
            result.errors[UNEXPECTED] += 1
            result.unexpected.append(f"top-up answered {r.status_code} {r.text[:200]}")
            return
        result.detail["new_balance"] = r.json().get("new_balance")

    def check_downloads(self, client: httpx.Client) -> list[str]:
        """Every purchase's download answers its leads: the link the email carries works."""
        problems = []
        for pid, token, leads in self.bought:
            r = client.get(
                contract.DOWNLOAD.format(purchase_id=pid), headers=contract.headers(token)
            )
            if r.status_code != 200:
                problems.append(f"download of purchase {pid}: {r.status_code} {r.text[:200]}")
                continue
            got = {row.get("lead_id") or "" for row in csv.DictReader(io.StringIO(r.text))}
            if got != {str(x) for x in leads}:
                problems.append(f"download of purchase {pid}: leads {sorted(got)} != bought")
        return problems


def _observe(conn: Any, world: World, result: ScenarioResult, prefix: str) -> None:
    ids = list(world.workspaces.values())
    balances = dict(
        conn.execute(db.query("serve", "scenario_balances"), {"workspace_ids": ids}).fetchall()
    )
    result.balances = {name: balances.get(i) for name, i in world.workspaces.items()}
    sold = dict(
        conn.execute(
            db.query("serve", "scenario_sold"), {"lead_ids": list(world.leads.values())}
        ).fetchall()
    )
    result.sold = {name: sold.get(i, 0) for name, i in world.leads.items()}
    row = conn.execute(db.query("serve", "scenario_emails"), {"workspace_ids": ids}).fetchone()
    if row is not None:
        result.emails = {"queued": row[0], "sent": row[1], "dead": row[2]}
    violations = check_invariants(conn)
    result.violations = [
        {"name": v.name, "detail": v.detail, "rows": [str(r) for r in v.rows[:5]]}
        for v in violations
    ]
    # Expectations name the scenario's own names, without the run's prefix.
    result.balances = {k.removeprefix(prefix): v for k, v in result.balances.items()}
    result.sold = {k.removeprefix(prefix): v for k, v in result.sold.items()}


__all__ = ["check_drivable", "prefixed", "run_http_scenario", "run_prefix"]
