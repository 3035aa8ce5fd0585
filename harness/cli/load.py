"""``harness load`` (real concurrent purchases under Locust, then the invariants) and
``harness bench`` (the money functions against the server's limits)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness import db, env
from harness.cli.common import Target, add, announce, command, database, note, say, write_text
from harness.db.migrations import migrate
from harness.db.servers import Server
from harness.drivers import bench, bench_report, load, queue_bench
from harness.drivers.serve import tokens
from harness.drivers.serve.server import ServeProcess
from harness.errors import UsageError
from harness.money.invariants import summary
from harness.values import duration, number, whole


@dataclass(frozen=True)
class LoadSettings(Target):
    scenario: str | None = None
    users: int = 32
    spawn_rate: float | None = None
    duration: timedelta = timedelta(seconds=30)
    processes: int | None = None
    flow: str | None = None
    json: str | None = None
    html: str | None = None
    keep: bool = False
    locustfile: str | None = None
    target: str | None = None
    http: bool = False


@dataclass(frozen=True)
class BenchSettings(Target):
    json: str | None = None
    html: str | None = None
    clients: int = 8
    duration: int = 10
    rounds: int = bench.ROUNDS
    profile: bool = False
    only: tuple[str, ...] | None = None
    client_counts: tuple[int, ...] = bench.CLIENT_COUNTS
    history: int = bench.HISTORY_BASE
    queue: bool = False
    jobs: int = queue_bench.JOBS
    keep: bool = False


# Read by the locustfile in Locust's own processes: a bad value must stop the command
# here, in one line, not in every Locust worker.
LOCUSTFILE_VARIABLES = (
    "HARNESS_LOAD_INVARIANTS",
    "HARNESS_LOAD_LEADS_PER_PURCHASE",
    "HARNESS_LOAD_THINK_MS",
    "HARNESS_APP_URL",
    "HARNESS_LOAD_RUN",
)


def run_load(s: LoadSettings) -> int:
    for name in LOCUSTFILE_VARIABLES:
        env.read(name)
    if s.target or s.http:
        return run_http_load(s)
    ds = load.load_dataset(s.scenario)
    flow_spec = (
        s.flow
        or ds.flow
        or (
            env.read("HARNESS_PURCHASE_FLOW")
            if env.given("HARNESS_PURCHASE_FLOW")
            else load.DEFAULT_FLOW_MIX
        )
    )
    load.parse_flows(flow_spec)
    opts = _options(s)
    with (
        database(s, writes="load (a scratch database next to)") as srv,
        db.scratch_database(srv.dsn, prefix="harness_load", keep=s.keep) as dsn,
    ):
        note(f"load: database {db.dbname_of(dsn)} on {srv.provider}; migrating, seeding {ds.name}")
        migrate(dsn, s.migration_dirs)
        load.seed(dsn, ds)
        raw = load.run_load(dsn, opts, flow_spec, load.leads_per_purchase(ds), note=note)
        violations = load.check(dsn)
        raw["server_version"] = db.server_version(dsn)

    return _judge(s, raw, violations, flow_spec, ds.name)


def _options(s: LoadSettings) -> load.LoadOptions:
    return load.LoadOptions(
        users=s.users,
        duration=s.duration,
        spawn_rate=s.spawn_rate,
        processes=s.processes,
        html=s.html,
        locustfile=Path(s.locustfile) if s.locustfile else None,
        keep_logs=bool(env.read("HARNESS_LOAD_KEEP_LOGS")),
    )


def run_http_load(s: LoadSettings) -> int:
    """Locust's HTTP users against --target (whose database is --dsn), or against a
    `harness serve` started here on a scratch database (--http)."""
    if s.target and s.http:
        raise UsageError("--target and --http: give one (--http starts harness serve itself)")
    if s.flow:
        raise UsageError("--flow applies to the database load; over HTTP the server's flow runs")
    ds = load.load_dataset(s.scenario)
    per = load.leads_per_purchase(ds)
    opts = _options(s)
    run = f"load-{secrets.token_hex(3)}-"
    if s.target:
        if not s.dsn:
            raise UsageError(
                "--target needs --dsn, the application's database: the load seeds its "
                "buyers and leads there and checks the invariants there afterwards"
            )
        secret = env.read("HARNESS_JWT_SECRET")
        if not secret:
            raise UsageError("--target: HARNESS_JWT_SECRET must hold the application's secret")
        announce(Server(dsn=s.dsn, provider="dsn"), f"load --target (seeding {run}* into)")
        load.seed_http(s.dsn, ds, run)
        http = load.HttpRun(url=s.target, secret=str(secret), run=run)
        raw = load.run_load(s.dsn, opts, "the application's", per, note=note, http=http)
        violations = load.check(s.dsn)
        raw["server_version"] = db.server_version(s.dsn)
        return _judge(s, raw, violations, "the application's", ds.name, target=s.target)
    secret = tokens.new_secret()
    flow = str(env.read("HARNESS_PURCHASE_FLOW"))
    with (
        database(s, writes="load --http (a scratch database next to)") as srv,
        db.scratch_database(srv.dsn, prefix="harness_load", keep=s.keep) as dsn,
    ):
        note(f"load: database {db.dbname_of(dsn)} on {srv.provider}; migrating, seeding {ds.name}")
        migrate(dsn, s.migration_dirs)
        load.seed_http(dsn, ds, run)
        # The load measures the purchase path, not the limiter (tested on its own): the
        # server it starts has no rate limit, and a pool as wide as the users.
        args = ["--port", "0", "--pool-size", str(min(max(s.users, 20), 200))]
        args += ["--rate-limit-purchase", "0", "--rate-limit-credits", "0"]
        # The DSN (a throwaway server's carries its password) and the secret travel in the
        # child's environment, not on its command line where any local user could read them.
        child = {**os.environ, "HARNESS_DSN": dsn, "HARNESS_JWT_SECRET": secret}
        if s.migration_dirs:  # the same set, so the server finds nothing left to apply
            child["HARNESS_MIGRATIONS"] = os.pathsep.join(s.migration_dirs)
        with ServeProcess(args, env=child) as server:
            note(f"load: harness serve at {server.url} (flow {flow})")
            http = load.HttpRun(
                url=server.url, secret=secret, run=run, application=load.SERVE_APPLICATION
            )
            raw = load.run_load(dsn, opts, flow, per, note=note, http=http)
        violations = load.check(dsn)
        raw["server_version"] = db.server_version(dsn)
    return _judge(s, raw, violations, flow, ds.name, target="harness serve (--http)")


def _judge(
    s: LoadSettings,
    raw: dict[str, Any],
    violations: list[Any],
    flow_spec: str,
    dataset: str,
    target: str | None = None,
) -> int:
    needed = s.users / 2
    # Concurrent: half the users' transactions seen in flight at once; or else both the
    # users' calls open together (Locust's summed response times over the run, by Little's
    # law) and the database's transactions overlapping. The second is what a fast call
    # leaves to see: a purchase takes about a millisecond at the server, and the sampler
    # rarely catches many at once. A process whose driver blocks (one call at a time)
    # fails both: its calls never overlap.
    opened = raw.get("requests_open_mean", 0.0)
    concurrent = raw["peak_in_flight"] >= needed or (
        opened >= needed and raw["peak_in_flight"] >= 2
    )
    report = {
        "ok": not violations and not raw["failures"] and concurrent,
        "requests": raw["requests"],
        "rps": raw["rps"],
        "outcomes": raw["outcomes"],
        "unexpected_errors": raw["failures"],
        "latency_ms": raw["latency_ms"],
        "peak_in_flight": raw["peak_in_flight"],
        "requests_open_mean": raw.get("requests_open_mean", 0.0),
        "violations": [v.as_dict() for v in violations],
        "errors": raw["errors"],
        "users": s.users,
        "processes": s.processes or 1,
        "flow": flow_spec,
        "duration": f"{s.duration.total_seconds():g}s",
        "dataset": dataset,
        "mean_in_flight": raw["mean_in_flight"],
        "peak_waiting_on_lock": raw["peak_waiting_on_lock"],
        "in_flight_samples": raw["samples"],
        "server_version": raw["server_version"],
    }
    if target is not None:
        report["target"] = target
        report["endpoints"] = raw.get("endpoints", {})
        statuses: dict[str, int] = {}
        for e in report["endpoints"].values():
            for code, n in e["statuses"].items():
                statuses[code] = statuses.get(code, 0) + n
        report["http_statuses"] = dict(sorted(statuses.items()))
    if s.json:
        write_text(s.json, json.dumps(report, indent=2, default=str) + "\n")
    _print_load(report)
    problems = []
    if violations:
        problems.append(f"invariant violated: {summary(violations)}")
    if report["unexpected_errors"]:
        problems.append(f"{report['unexpected_errors']} unexpected error(s)")
    if not concurrent:
        problems.append(
            f"concurrency not achieved: peak in-flight transactions "
            f"{report['peak_in_flight']} (need {needed:g}, half of {s.users} users, or 2 "
            f"with the users' calls open together) and {report['requests_open_mean']} "
            f"calls open at once on average (need {needed:g})"
        )
    for p in problems:
        note(f"load: FAILED: {p}")
    return 1 if problems else 0


def _print_load(r: dict[str, Any]) -> None:
    lat = r["latency_ms"]
    what = "requests" if "target" in r else "purchases"
    say(
        f"{r['requests']} {what} in {r['duration']} ({r['rps']} per second), "
        f"{r['users']} users, flow {r['flow']}, PostgreSQL {r['server_version']}"
    )
    say(f"latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}")
    if "target" in r:
        say(f"over HTTP: {r['target']}; statuses {r['http_statuses']}")
        for name, e in r["endpoints"].items():
            el = e["latency_ms"]
            say(
                f"  {name:48} {e['requests']:8}  p50 {el['p50']}  p95 {el['p95']}  "
                f"p99 {el['p99']}  {e['statuses']}"
            )
    for name, o in r["outcomes"].items():
        ol = o["latency_ms"]
        mark = "FAIL" if o["failures"] else "ok"
        say(
            f"  {name:40} {o['requests']:8}  p50 {ol['p50']}  p95 {ol['p95']}  "
            f"p99 {ol['p99']}  {mark}"
        )
    for e in r["errors"]:
        say(f"  unexpected: {e['name']}: {e['error']} (x{e['occurrences']})")
    what_open = "requests" if "target" in r else "calls"
    say(f"{what_open} open at once: {r['requests_open_mean']} on average")
    say(
        f"peak in-flight transactions: {r['peak_in_flight']} (mean while busy "
        f"{r['mean_in_flight']}, peak waiting on a lock {r['peak_waiting_on_lock']}, "
        f"{r['in_flight_samples']} samples)"
    )
    if r["violations"]:
        for v in r["violations"]:
            say(f"VIOLATION {v['name']}: {v['detail']}")
    else:
        say("invariants: every invariant holds")
    say("ok" if r["ok"] else "FAILED")


def run_bench(s: BenchSettings) -> int:
    with (
        database(s, writes="bench (a scratch database next to)") as srv,
        db.scratch_database(srv.dsn, prefix="harness_bench", keep=s.keep) as dsn,
    ):
        note(f"bench: database {db.dbname_of(dsn)} on {srv.provider}")
        migrate(dsn, s.migration_dirs)
        report: dict[str, Any]
        if s.queue:
            report = {
                "server_version": db.server_version(dsn),
                "provider": srv.provider,
                "queue": queue_bench.run_queue_bench(dsn, s.jobs, rounds=s.rounds, note=note),
            }
        else:
            report = bench.run_bench(
                srv,
                dsn,
                s.clients,
                s.duration,
                profile=s.profile,
                only=s.only,
                client_counts=s.client_counts,
                history_base=s.history,
                migrations=s.migration_dirs,
                keep=s.keep,
                rounds=s.rounds,
                note=note,
            )
    if s.json:
        write_text(s.json, json.dumps(report, indent=2, default=str) + "\n")
    if s.html:
        write_text(s.html, bench_report.html_report(report))
        note(f"bench: HTML report written to {s.html}")
    if s.json != "-":
        for line in bench_report.text_report(report):
            say(line)
    problems = report.get("queue", {}).get("problems", [])
    for p in problems:
        note(f"bench --queue: FAILED: {p}")
    return 1 if problems else 0


def register(sub: Any) -> None:
    p = command(
        sub,
        "load",
        run_load,
        LoadSettings,
        database=True,
        help="concurrent purchases under Locust, then the invariants",
        description="Provision a scratch database, seed a data set, run Locust headless "
        "against it (the packaged loadtests/locustfile.py), sample in-flight transactions "
        "from pg_stat_activity, then run the invariant checker. Exit 1 on a violated "
        "invariant, an unexpected error, or a peak in-flight below half the users.",
    )
    add(
        p,
        "--scenario",
        metavar="FILE",
        env_var="HARNESS_SCENARIO",
        help="scenario TOML whose workspaces, partners and leads are loaded (default a "
        "built-in data set)",
    )
    add(
        p,
        "--users",
        type=whole(1, 10_000),
        env_var="HARNESS_LOAD_USERS",
        help="concurrent Locust users (default 32)",
    )
    add(
        p,
        "--spawn-rate",
        type=number(0.001),
        metavar="R",
        env_var="HARNESS_LOAD_SPAWN_RATE",
        help="users started per second (default all at once)",
    )
    add(
        p,
        "--duration",
        type=duration,
        env_var="HARNESS_LOAD_DURATION",
        help="run time, e.g. 30s, 2m (default 30s)",
    )
    add(
        p,
        "--processes",
        type=whole(1, 256),
        env_var="HARNESS_LOAD_PROCESSES",
        help="Locust worker processes on this machine (Locust's --processes; default one process)",
    )
    add(
        p,
        "--flow",
        env_var="HARNESS_LOAD_FLOW",
        help="atomic, stepwise, legacy, direct, or weights like atomic=2,direct=1 (default "
        f"the scenario's flow, else {load.DEFAULT_FLOW_MIX})",
    )
    add(p, "--json", metavar="OUT", env_var="HARNESS_LOAD_JSON", help="write the JSON report here")
    add(p, "--html", metavar="OUT", env_var="HARNESS_LOAD_HTML", help="Locust's HTML report")
    add(
        p,
        "--keep",
        action="store_true",
        default=False,
        help="keep the scratch database (on --dsn) for inspection",
    )
    add(
        p,
        "--locustfile",
        env_var="HARNESS_LOCUSTFILE",
        help="a locustfile of your own (default the packaged one)",
    )
    g = p.add_argument_group("over HTTP")
    add(
        g,
        "--target",
        metavar="URL",
        env_var="HARNESS_LOAD_TARGET",
        help="buy over HTTP from this application (the purchase route's contract); --dsn is "
        "its database (seeded under a run prefix, checked afterwards); its token secret is "
        "HARNESS_JWT_SECRET",
    )
    add(
        g,
        "--http",
        action="store_true",
        default=False,
        help="start harness serve on the scratch database and buy over HTTP from it",
    )

    runs = bench.RUNS
    p = command(
        sub,
        "bench",
        run_bench,
        BenchSettings,
        database=True,
        help="pgbench the money functions against the limits and the source design",
        description="Measure, in one run on one server, with pgbench: a hot and a spread "
        "one-row UPDATE (the limits), the source design's purchase_with_credits as written "
        "and the project's, each hot and spread, and the atomic flow spread; the stepwise "
        "and atomic flows spread from Python with the same number of clients; the hot and "
        "spread runs again at each client count; and one client's cost per purchase as "
        "history grows 10x and 100x, with the plan of every statement. Reports tps, the "
        "ratios and the targets. With --queue, the email worker's throughput against the "
        "ceiling measured in the same run instead.",
    )
    add(
        p,
        "--json",
        metavar="OUT",
        env_var="HARNESS_BENCH_JSON",
        help="write the JSON report here, '-' for stdout",
    )
    add(
        p,
        "--html",
        metavar="OUT",
        env_var="HARNESS_BENCH_HTML",
        help="write a self-contained HTML report with a chart of every run here",
    )
    add(
        p,
        "--clients",
        type=whole(1, 1000),
        env_var="HARNESS_BENCH_CLIENTS",
        help="concurrent clients of every run (default 8)",
    )
    add(
        p,
        "--duration",
        type=whole(1, 86400),
        env_var="HARNESS_BENCH_DURATION",
        help="seconds per run, all its rounds together (default 10)",
    )
    add(
        p,
        "--rounds",
        metavar="N",
        env_var="HARNESS_BENCH_ROUNDS",
        help="split each run into N rounds of at least 2 s, taken in turn with the other "
        "runs, so that the machine's load falls on every run alike (default 3)",
    )
    add(
        p,
        "--profile",
        action="store_true",
        env_var="HARNESS_BENCH_PROFILE",
        help="record the top statements of each run with pg_stat_statements (nested ones "
        "too; costs some throughput)",
    )
    add(
        p,
        "--only",
        action="append",
        choices=runs,
        metavar="RUN",
        help="run only this one, repeatable (the client counts and history phases too): "
        + ", ".join(runs),
    )
    add(
        p,
        "--client-counts",
        metavar="N,N,...",
        env_var="HARNESS_BENCH_CLIENT_COUNTS",
        help="client counts the hot and spread runs are repeated at (default 1,8,32; "
        "give only --clients' count to skip the phase)",
    )
    add(
        p,
        "--history",
        metavar="PURCHASES",
        env_var="HARNESS_BENCH_HISTORY",
        help="purchases of history the cost-with-history phase starts from, then grows "
        "10x and 100x (default 10000; 0 skips the phase)",
    )
    add(
        p,
        "--queue",
        action="store_true",
        default=False,
        help="instead of the pgbench runs: the email worker (1 and 4 processes) against "
        "the ceiling of a bare send loop, into an SMTP sink in its own process",
    )
    add(
        p,
        "--jobs",
        metavar="N",
        env_var="HARNESS_BENCH_QUEUE_JOBS",
        help="with --queue: confirmation emails per measurement (default 2000)",
    )
    add(
        p,
        "--keep",
        action="store_true",
        default=False,
        help="keep the scratch database (on --dsn) for inspection",
    )
