"""``harness load``: real concurrent purchases driven by Locust, then the invariant checker.

The command provisions a scratch database, migrates it, seeds a data set (a scenario
file's workspaces, partners and leads, or the built-in one), runs
``loadtests/locustfile.py`` headless in a Locust subprocess while a sampler thread counts
the load's open transactions in ``pg_stat_activity``, and reports throughput, latency per
outcome, unexpected errors, the peak of in-flight transactions, and every broken invariant.

The Locust side (:class:`Plan`, :class:`Buyer`, :func:`seed_if_empty`, :func:`check`, and
:class:`HttpPlan` for ``loadtests/http_locustfile.py``, which buys over HTTP from an
application implementing the purchase route) lives here too, so the locustfiles stay thin
Locust adapters. This module never imports locust, and gevent only inside
:func:`cooperative_wait_problem`: the locustfiles import locust first, then this module.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from harness import db, env, packaged
from harness.config import DB_MESSAGES
from harness.drivers.scenarios.format import Scenario, load_scenario, parse_scenario
from harness.errors import DomainError, UsageError
from harness.money import service
from harness.values import show_duration

# The service's flows, and "direct": purchase_with_credits alone, one call.
FLOWS = (*service.FLOWS, "direct")
DEFAULT_FLOW_MIX = "atomic=2,stepwise=1,direct=1"
APPLICATION_NAME = "harness-load-user"
SAMPLE_INTERVAL_S = 0.002
STOP_TIMEOUT_S = 10

# The data set used without --scenario: one hot wallet shared by 24 members, fifteen
# roomy ones, plenty of unlimited leads and some exclusive ones. Purchases therefore end in
# successes and in documented refusals (insufficient_credits once the hot wallet is
# drained, duplicate_purchase, leads_no_longer_available on the exclusive leads).
BUILTIN_DATASET: dict[str, Any] = {
    "name": "built-in",
    "workspaces": [{"name": "hot", "balance": "150.00", "members": 24}]
    + [{"name": f"buyer-{i:02d}", "balance": "5000.00", "members": 1} for i in range(1, 16)],
    "partners": [
        {
            "name": "acme",
            "base_commission_rate": "0.30",
            "bonus_commission_rate": "0.05",
            "verification_pass_rate": "0.97",
        }
    ],
    "leads": [
        {"name": "lead", "count": 5000, "price": "1.00", "partner": "acme"},
        {"name": "exclusive", "count": 500, "price": "2.50", "partner": "acme", "max_sales": 1},
    ],
    # The format needs a step; a load only takes its lead count from it.
    "steps": [{"action": "purchase", "workspace": "hot", "leads_per_purchase": 1}],
}


# -- the data set ----------------------------------------------------------------------


def load_dataset(path: str | Path | None) -> Scenario:
    """The scenario (parsed and checked by the scenario format's own parser) whose data the
    load starts from; the built-in data set without a path."""
    if path is None:
        return parse_scenario(BUILTIN_DATASET, "<built-in data set>")
    return load_scenario(path)


def leads_per_purchase(scenario) -> int:
    """Leads in each load purchase: the first purchase step's, else one."""
    for step in scenario.steps:
        if step.action == "purchase":
            if step.leads_per_purchase:
                return step.leads_per_purchase
            if step.leads:
                return len(step.leads[0])
    return 1


def seed(dsn: str, scenario) -> None:
    """Write the scenario's workspaces, members, balances, partners and leads (its steps
    are not run: the load users are the steps), with the scenario runner's own loader."""
    from harness.drivers.scenarios.runner import World

    with db.connect(dsn) as conn:
        World.build(conn, scenario)


def seed_if_empty(dsn: str) -> None:
    """Seed ``HARNESS_SCENARIO``'s data (or the built-in set) unless workspaces exist."""
    with db.connect(dsn) as conn:
        if db.scalar(conn, db.query("load", "has_workspaces")):
            return
    seed(dsn, load_dataset(env.read("HARNESS_SCENARIO")))


# -- the Locust side: what each user does ----------------------------------------------


def dsn_from_env() -> str:
    dsn = env.read("HARNESS_DSN")
    if not dsn:
        raise UsageError("HARNESS_DSN is not set: the locustfile needs a migrated database")
    return dsn


def parse_flows(spec: str) -> dict[str, float]:
    """``atomic`` or ``atomic=2,direct=1`` -> {flow: weight}."""
    weights: dict[str, float] = {}
    for part in filter(None, (s.strip() for s in spec.split(","))):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in FLOWS:
            raise UsageError(
                f"unknown flow {name!r}: use {', '.join(FLOWS)} or weights like atomic=2,direct=1"
            )
        try:
            weights[name] = float(weight) if weight else 1.0
        except ValueError:
            raise UsageError(f"not a weight: {part!r}") from None
        if weights[name] < 0:
            raise UsageError(f"negative weight: {part!r}")
    if not weights or not any(weights.values()):
        raise UsageError(f"no flow to run in {spec!r}")
    return weights


@dataclass
class Plan:
    """What every user of one Locust process draws from: buyers, leads, flows."""

    dsn: str
    buyers: list[tuple[UUID, UUID]]
    leads: list[tuple[UUID, Decimal]]
    flows: dict[str, float]
    leads_per_purchase: int = 1
    _flow_names: list[str] = field(default_factory=list, repr=False)
    _flow_weights: list[float] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._flow_names = list(self.flows)
        self._flow_weights = [self.flows[f] for f in self._flow_names]

    def pick_flow(self, rng: random.Random) -> str:
        return rng.choices(self._flow_names, self._flow_weights)[0]

    @classmethod
    def from_database(cls, dsn: str) -> Plan:
        flow_spec = env.read("HARNESS_LOAD_FLOW") or (
            env.read("HARNESS_PURCHASE_FLOW")
            if env.given("HARNESS_PURCHASE_FLOW")
            else DEFAULT_FLOW_MIX
        )
        per = env.read("HARNESS_LOAD_LEADS_PER_PURCHASE")
        with db.connect(dsn) as conn:
            buyers = [
                (r["workspace_id"], r["user_id"]) for r in db.fetch_all(conn, "load", "buyers")
            ]
            leads = [
                (r["id"], r["marketplace_price"])
                for r in db.fetch_all(conn, "load", "leads_for_sale")
            ]
        if not buyers or len(leads) < per:
            raise UsageError(f"{db.redact(dsn)} holds no buyers or too few leads to load")
        return cls(dsn, buyers, leads, parse_flows(flow_spec), per)


_PLAN: Plan | None = None


def plan_for(_environment: object = None) -> Plan:
    """The process's plan, read once from the database the first user starts."""
    global _PLAN
    if _PLAN is None:
        _PLAN = Plan.from_database(dsn_from_env())
    return _PLAN


class Buyer:
    """One Locust user's purchases, on its own connection (a pool of exactly one)."""

    def __init__(self, plan: Plan, application_name: str = APPLICATION_NAME) -> None:
        self.plan = plan
        self.pool = db.pool(plan.dsn, min_size=1, max_size=1, application_name=application_name)
        self._services: dict[str, Any] = {}

    def close(self) -> None:
        self.pool.close()

    def service(self, flow: str):
        svc = self._services.get(flow)
        if svc is None:
            from harness.money.service import PurchaseService

            svc = self._services[flow] = PurchaseService(self.pool, flow)
        return svc

    def purchase(self, flow: str, rng: random.Random) -> tuple[str, Exception | None]:
        """(outcome, exception): ``purchased``, a documented code, or ``unexpected``."""
        workspace_id, user_id = rng.choice(self.plan.buyers)
        picked = rng.sample(self.plan.leads, self.plan.leads_per_purchase)
        lead_ids = [lead_id for lead_id, _ in picked]
        try:
            if flow == "direct":
                return self._direct(
                    workspace_id,
                    user_id,
                    lead_ids,
                    sum((price for _, price in picked), Decimal("0")),
                ), None
            from harness.money.service import PurchaseRequest

            self.service(flow).purchase(
                PurchaseRequest(
                    workspace_id=workspace_id, user_id=user_id, lead_ids=tuple(lead_ids)
                )
            )
            return "purchased", None
        except DomainError as exc:
            return exc.code, None
        except Exception as exc:  # anything undocumented is the load's finding
            return "unexpected", exc

    def _direct(
        self, workspace_id: UUID, user_id: UUID, lead_ids: list[UUID], total: Decimal
    ) -> str:
        with self.pool.connection() as conn:
            row = conn.execute(
                db.query("load", "purchase_with_credits"),
                {
                    "workspace_id": workspace_id,
                    "user_id": user_id,
                    "lead_ids": lead_ids,
                    "total": total,
                },
            ).fetchone()
        assert row is not None  # the function answers exactly one row
        ok, message, _balance, _purchase = row
        if ok:
            return "purchased"
        code = DB_MESSAGES.get(message)
        if code is None:
            raise RuntimeError(f"purchase_with_credits answered an unknown message: {message!r}")
        return code


def invariants_enabled() -> bool:
    return bool(env.read("HARNESS_LOAD_INVARIANTS"))


def check(dsn: str) -> list:
    from harness.money.invariants import check_invariants

    with db.connect(dsn) as conn:
        return check_invariants(conn)


def wait_for_load_sessions_to_end(dsn: str, timeout: float) -> bool:
    """Wait until no load user is connected (their last purchases have finished)."""
    deadline = time.monotonic() + timeout
    with db.connect(dsn, application_name="harness-check") as conn:
        q = db.query("load", "load_sessions")
        while time.monotonic() < deadline:
            n = db.scalar(conn, q)
            if n == 0:
                return True
            time.sleep(0.1)
    return False


# -- sampling pg_stat_activity while the load runs -----------------------------------


class InFlightSampler(threading.Thread):
    """Counts, as often as it can, the load users' sessions inside a transaction."""

    def __init__(
        self,
        dsn: str,
        interval: float = SAMPLE_INTERVAL_S,
        query: str = "in_flight",
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name="in-flight-sampler", daemon=True)
        self.dsn = dsn
        self.query = query
        self.params = params
        self.interval = interval
        self.peak = 0
        self.peak_waiting_on_lock = 0
        self.samples = 0
        self.busy_samples = 0
        self.total = 0
        self.connected = 0
        self._stop_event = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        q = db.query("load", self.query)
        try:
            with db.connect(self.dsn, application_name="harness-sampler") as conn:
                while not self._stop_event.is_set():
                    row = conn.execute(q, self.params).fetchone()
                    assert row is not None  # an aggregate answers one row
                    in_flight, waiting, connected = row
                    self.samples += 1
                    self.connected = connected
                    if in_flight:
                        self.busy_samples += 1
                        self.total += in_flight
                    self.peak = max(self.peak, in_flight)
                    self.peak_waiting_on_lock = max(self.peak_waiting_on_lock, waiting)
                    self._stop_event.wait(self.interval)
        except Exception as exc:  # reported, never fatal to the load itself
            self.error = exc

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    @property
    def mean_busy(self) -> float:
        return self.total / self.busy_samples if self.busy_samples else 0.0


# -- reading Locust's results ---------------------------------------------------------


def percentile(histogram: dict[float, int], pct: float) -> float | None:
    """The pct-th percentile of a {response time ms: count} histogram."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = pct / 100 * total
    seen = 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= rank:
            return float(ms)
    return float(max(histogram))


def summarize_stats(entries: list[dict]) -> dict[str, Any]:
    """Requests, rps, outcomes and latency from Locust's ``--json-file`` entries."""
    outcomes: dict[str, Any] = {}
    overall: dict[float, int] = {}
    requests = failures = 0
    busy_ms = 0.0  # the summed response times: request-milliseconds spent waiting
    start = end = None
    for e in entries:
        busy_ms += float(e.get("total_response_time", 0))
        hist = {float(k): int(v) for k, v in e.get("response_times", {}).items()}
        for k, v in hist.items():
            overall[k] = overall.get(k, 0) + v
        requests += e["num_requests"]
        failures += e["num_failures"]
        outcomes[e["name"]] = {
            "requests": e["num_requests"],
            "failures": e["num_failures"],
            "latency_ms": {f"p{p}": percentile(hist, p) for p in (50, 95, 99)},
        }
        if e.get("num_requests"):
            start = e["start_time"] if start is None else min(start, e["start_time"])
            end = (
                e["last_request_timestamp"]
                if end is None
                else max(end, e["last_request_timestamp"])
            )
    elapsed = (end - start) if start is not None and end and end > start else 0
    return {
        "requests": requests,
        "failures": failures,
        "rps": round(requests / elapsed, 1) if elapsed else 0.0,
        "outcomes": dict(sorted(outcomes.items())),
        "latency_ms": {f"p{p}": percentile(overall, p) for p in (50, 95, 99)},
        # Little's law on the client: the mean number of requests open at once.
        "requests_open_mean": round(busy_ms / 1000 / elapsed, 1) if elapsed else 0.0,
    }


# Where the locustfiles write the run's failures when Locust quits (see save_failures).
FAILURES_VARIABLE = "HARNESS_LOAD_FAILURES"


def save_failures_at_quit(environment: Any, **_kwargs: Any) -> None:
    """A Locust ``init`` listener: when Locust quits, the run's failures go, as JSON, to
    $HARNESS_LOAD_FAILURES. Locust rewrites its failures CSV once a second and not when it
    quits, so the CSV can miss the last second's; at quit the master's (or the single
    runner's) stats hold every node's."""
    from locust.runners import WorkerRunner  # a Locust process: locust is imported

    path = os.environ.get(FAILURES_VARIABLE)
    if not path or isinstance(environment.runner, WorkerRunner):
        return

    def save(**_kwargs: Any) -> None:
        rows = [
            {"name": e["name"], "error": e["error"], "occurrences": e["occurrences"]}
            for e in environment.runner.stats.serialize_errors().values()
        ]
        Path(path).write_text(json.dumps(rows))

    environment.events.quit.add_listener(save)


def read_failures(csv_prefix: Path, saved: Path | None = None) -> list[dict]:
    """The run's failures: as the locustfile saved them at quit, else Locust's CSV."""
    if saved is not None and saved.exists():
        return list(json.loads(saved.read_text()))
    path = Path(f"{csv_prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [
            {"name": r["Name"], "error": r["Error"], "occurrences": int(r["Occurrences"])}
            for r in csv.DictReader(f)
        ]


def summarize_endpoints(entries: list[dict]) -> dict[str, Any]:
    """Per endpoint (``POST /api/marketplace/purchase``): requests, failures, the count of
    each HTTP status, and latency percentiles over all its answers. The HTTP users name
    each request ``<endpoint> [<status> <outcome>]``."""
    merged: dict[str, dict[str, Any]] = {}
    for e in entries:
        endpoint, _, tail = e["name"].partition(" [")
        status = tail.split(" ", 1)[0].rstrip("]") or "?"
        m = merged.setdefault(
            endpoint, {"requests": 0, "failures": 0, "statuses": {}, "histogram": {}}
        )
        m["requests"] += e["num_requests"]
        m["failures"] += e["num_failures"]
        m["statuses"][status] = m["statuses"].get(status, 0) + e["num_requests"]
        for k, v in e.get("response_times", {}).items():
            m["histogram"][float(k)] = m["histogram"].get(float(k), 0) + int(v)
    out = {}
    for endpoint, m in sorted(merged.items()):
        hist = m.pop("histogram")
        m["statuses"] = dict(sorted(m["statuses"].items()))
        m["latency_ms"] = {f"p{p}": percentile(hist, p) for p in (50, 95, 99)}
        out[endpoint] = m
    return out


# -- over HTTP ------------------------------------------------------------------------------

HTTP_LOCUSTFILE = "http_locustfile.py"
SERVE_APPLICATION = "harness-serve"  # the application_name of harness serve's pool


@dataclass(frozen=True)
class HttpRun:
    """An HTTP load: the application's URL, its token secret, the run's name prefix (its
    workspaces and leads in the application's database), and the application_name of the
    application's sessions (None: every client session of that database)."""

    url: str
    secret: str
    run: str
    application: str | None = None


@dataclass
class HttpPlan:
    """What every HTTP user of one Locust process draws from: signed buyers and leads."""

    buyers: list[tuple[UUID, UUID, str]]  # workspace, user, bearer token
    leads: list[UUID]
    leads_per_purchase: int = 1

    @classmethod
    def from_database(cls, dsn: str, run: str, secret: str) -> HttpPlan:
        from harness.drivers.serve import tokens

        per = env.read("HARNESS_LOAD_LEADS_PER_PURCHASE")
        with db.connect(dsn) as conn:
            pairs = [
                (r["workspace_id"], r["user_id"])
                for r in db.fetch_all(conn, "load", "http_buyers", {"prefix": run})
            ]
            leads = [r["id"] for r in db.fetch_all(conn, "load", "http_leads", {"prefix": run})]
        if not pairs or len(leads) < per:
            raise UsageError(f"{db.redact(dsn)} holds no buyers or leads of the load run {run!r}")
        return cls([(w, u, tokens.issue(secret, w, u, 86400)) for w, u in pairs], leads, per)


_HTTP_PLAN: HttpPlan | None = None


def http_plan_for(_environment: object = None) -> HttpPlan:
    """The process's HTTP plan, read once (HARNESS_DSN, HARNESS_LOAD_RUN, the secret)."""
    global _HTTP_PLAN
    if _HTTP_PLAN is None:
        run, secret = env.read("HARNESS_LOAD_RUN"), env.read("HARNESS_JWT_SECRET")
        if not run or not secret:
            raise UsageError("the HTTP locustfile needs HARNESS_LOAD_RUN and HARNESS_JWT_SECRET")
        _HTTP_PLAN = HttpPlan.from_database(dsn_from_env(), run, secret)
    return _HTTP_PLAN


def seed_http(dsn: str, scenario: Scenario, run: str) -> None:
    """Seed the data set into the application's database under the run's prefix."""
    from harness.drivers.serve.scenario import prefixed

    seed(dsn, prefixed(scenario, run))


def cooperative_wait_problem() -> str | None:
    """Why psycopg would block a whole Locust process under gevent, or None: psycopg picks
    its wait function when imported, and only a psycopg imported after gevent patched the
    standard library waits cooperatively."""
    import psycopg.waiting

    try:
        import gevent.monkey
    except ImportError:
        return "gevent is not installed"
    if not gevent.monkey.is_module_patched("select"):
        return "gevent has not patched the standard library (import locust first)"
    waiting = psycopg.waiting
    c_wait = getattr(waiting, "wait_c", None)
    if c_wait is not None and waiting.wait is c_wait:
        return (
            "psycopg was imported before gevent patched the standard library: it uses its "
            "C wait function, which blocks every greenlet (import locust before psycopg)"
        )
    import selectors

    if waiting.DefaultSelector is not selectors.DefaultSelector:
        return (
            "psycopg was imported before gevent patched selectors: connecting would block "
            "every greenlet (import locust before psycopg)"
        )
    return None


# -- running Locust ----------------------------------------------------------------------


@dataclass(frozen=True)
class LoadOptions:
    """How Locust runs: users, their spawn rate, how long, in how many processes."""

    users: int = 32
    duration: timedelta = timedelta(seconds=30)
    spawn_rate: float | None = None
    processes: int | None = None
    html: str | None = None
    locustfile: Path | None = None
    keep_logs: bool = False


def locust_command(opts: LoadOptions, workdir: Path, http: HttpRun | None = None) -> list[str]:
    default = HTTP_LOCUSTFILE if http else "locustfile.py"
    locustfile = opts.locustfile or packaged.folder("loadtests") / default
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(opts.users),
        "-r",
        str(opts.spawn_rate or opts.users),
        "-t",
        f"{max(1, round(opts.duration.total_seconds()))}s",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--only-summary",
        "--json-file",
        str(workdir / "stats"),  # Locust adds .json
        "--csv",
        str(workdir / "stats"),
    ]
    if http is not None:
        cmd += ["--host", http.url]
    if opts.processes:
        cmd += ["--processes", str(opts.processes)]
    if opts.html:
        cmd += ["--html", str(Path(opts.html).resolve())]  # Locust runs in its work dir
    return cmd


def run_load(
    dsn: str,
    opts: LoadOptions,
    flow_spec: str,
    per: int,
    note: Callable[[str], None] = lambda _: None,
    http: HttpRun | None = None,
) -> dict[str, Any]:
    """Run Locust against ``dsn`` (already seeded) and return the report (no verdict yet).
    ``http``: drive the application at ``http.url`` (whose database is ``dsn``) with the
    HTTP locustfile instead of the database directly."""
    workdir = Path(tempfile.mkdtemp(prefix="harness-load-"))
    environ = {
        **os.environ,
        "HARNESS_DSN": dsn,
        "HARNESS_LOAD_FLOW": flow_spec,
        "HARNESS_LOAD_LEADS_PER_PURCHASE": str(per),
        "HARNESS_LOAD_INVARIANTS": "off",  # checked here, once, after Locust exits
        "PYTHONUNBUFFERED": "1",
        FAILURES_VARIABLE: str(workdir / "failures.json"),
    }
    environ.pop("HARNESS_SCENARIO", None)
    if http is not None:
        environ.update(
            HARNESS_LOAD_TARGET=http.url, HARNESS_JWT_SECRET=http.secret, HARNESS_LOAD_RUN=http.run
        )
        sampler = InFlightSampler(dsn, query="in_flight_app", params={"app": http.application})
    else:
        sampler = InFlightSampler(dsn)
    seconds = opts.duration.total_seconds()
    log_path = workdir / "locust.log"
    cmd = locust_command(opts, workdir, http)
    note(
        f"load: {opts.users} users, flow {flow_spec}, {show_duration(opts.duration)}"
        + (f", {opts.processes} processes" if opts.processes else "")
    )
    try:
        with log_path.open("w") as log:
            sampler.start()
            proc = subprocess.Popen(
                cmd,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
            )
            started = time.monotonic()
            deadline = started + seconds + STOP_TIMEOUT_S + 90
            totals_q = db.query("load", "purchase_totals")
            with db.connect(dsn, application_name="harness-progress") as conn:
                while proc.poll() is None:
                    if time.monotonic() > deadline:
                        proc.kill()
                        raise UsageError(
                            f"Locust did not finish in time; see its log: {_tail(log_path)}"
                        )
                    time.sleep(2)
                    purchases = db.scalar(conn, totals_q)
                    note(
                        f"load: {time.monotonic() - started:5.1f}s  "
                        f"{sampler.connected} connected  {purchases} purchases  "
                        f"in flight now-peak {sampler.peak}"
                    )
        sampler.stop()
        stats_path = workdir / "stats.json"
        if not stats_path.exists():
            raise UsageError(f"Locust failed (exit {proc.returncode}): {_tail(log_path)}")
        entries = json.loads(stats_path.read_text())
        report = summarize_stats(entries)
        if http is not None:
            report["endpoints"] = summarize_endpoints(entries)
        report["errors"] = read_failures(workdir / "stats", workdir / "failures.json")
        report["locust_exit_code"] = proc.returncode
        report["peak_in_flight"] = sampler.peak
        report["mean_in_flight"] = round(sampler.mean_busy, 1)
        report["peak_waiting_on_lock"] = sampler.peak_waiting_on_lock
        report["samples"] = sampler.samples
        if sampler.error is not None:
            report["sampler_error"] = str(sampler.error)
        return report
    finally:
        sampler.stop()
        if not opts.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"


__all__ = [
    "Buyer",
    "HttpPlan",
    "HttpRun",
    "Plan",
    "check",
    "load_dataset",
    "run_load",
    "seed",
    "seed_http",
    "summarize_endpoints",
    "summarize_stats",
]
