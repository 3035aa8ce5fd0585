"""``harness gate`` (the spec's deployment checklist) and ``harness watch`` (the signals a
deployed database is judged by)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from harness import env
from harness.cli.common import (
    Target,
    add,
    command,
    database,
    note,
    report_errors,
    require_migrated,
    say,
    write_text,
)
from harness.errors import UsageError
from harness.proofs import gate
from harness.proofs.watch import Thresholds, render, watch
from harness.values import duration, non_negative_int, number, whole


@dataclass(frozen=True)
class GateSettings(Target):
    apply: bool = False
    skip_tests: bool = False
    only: tuple[str, ...] | None = None
    scenario: str | None = None
    baseline: str = "reports/watch-baseline.json"
    jobs: int = 3
    pytest_arg: tuple[str, ...] | None = None
    markdown: str | None = None
    junit: str | None = None
    json: str | None = None
    tests: str | None = None
    tests_junit: str | None = None
    api_docs: str | None = None
    user_docs: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class WatchSettings(Target):
    since: timedelta = timedelta(minutes=15)
    json: bool = False
    baseline: str | None = None
    pending_timeout: timedelta = timedelta(minutes=5)
    max_stuck_pending: int = 0
    max_error_rate: float = 0.05
    min_attempts: int = 20
    max_dead_letters: int = 0
    max_failing_jobs: int = 10
    max_violations: int = 0
    max_mean_ms: float | None = None


def cli_commands(parser: argparse.ArgumentParser) -> list[str]:
    """Every command and sub-command of ``harness``, e.g. ``migrate``, ``db start``."""

    def walk(p: argparse.ArgumentParser, prefix: str) -> list[str]:
        out: list[str] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    full = f"{prefix} {name}".strip()
                    out += walk(child, full) or [full]
        return out

    return walk(parser, "")


def run_gate(s: GateSettings) -> int:
    from harness.cli import build_parser

    opts = gate.Options(
        dirs=s.migration_dirs,
        apply=s.apply,
        skip_tests=s.skip_tests,
        only=list(s.only) if s.only else None,
        scenario=s.scenario,
        baseline=s.baseline,
        jobs=s.jobs,
        pytest_args=list(s.pytest_arg or ()),
        commands=cli_commands(build_parser()),
        tests=s.tests,
        tests_junit=s.tests_junit,
        api_docs=s.api_docs,
        user_docs=s.user_docs,
        target=s.target,
        secret=env.read("HARNESS_JWT_SECRET") if s.target else None,
    )
    if s.target and not s.dsn:
        raise UsageError(
            "--target needs --dsn, the deployed application's database: item 9 writes its "
            "scenario's world there and reads the outcome back"
        )
    if s.target and not opts.secret:
        raise UsageError("--target: HARNESS_JWT_SECRET must hold the application's secret")
    if opts.only:
        gate.check_items(opts.only)
    env.read(gate.GATE_ENV)  # read by the gate inside; a bad value stops it here

    def progress(item: gate.Item) -> None:
        note(
            f"[{item.number}/{len(gate.CHECKLIST)}] {item.status:<6} {item.title} "
            f"({item.seconds:.1f} s)"
        )

    writes = "gate --apply" if s.apply else "gate (scratch databases next to)"
    with database(s, writes=writes) as srv:
        report = gate.run_gate(srv.dsn, srv.provider, opts, on_item=progress)
    if s.markdown:
        write_text(s.markdown, gate.markdown(report))
    if s.junit:
        with report_errors(s.junit):
            gate.write_junit(report, s.junit)
    if s.json:
        write_text(s.json, json.dumps(report.as_dict(), indent=2) + "\n")
    say(gate.table(report))
    return 0 if report.ok else 1


def run_watch(s: WatchSettings) -> int:
    if not s.dsn and not s.postgres:
        from harness.cli.common import read_state

        if not read_state():
            raise UsageError("watch needs the database to look at: --dsn URL (env HARNESS_DSN)")
    limits = Thresholds(
        pending_timeout=s.pending_timeout,
        max_stuck_pending=s.max_stuck_pending,
        max_error_rate=s.max_error_rate,
        min_attempts=s.min_attempts,
        max_dead_letters=s.max_dead_letters,
        max_failing_jobs=s.max_failing_jobs,
        max_violations=s.max_violations,
        max_mean_ms=s.max_mean_ms,
    )
    with database(s) as srv:
        require_migrated(srv.dsn, s.migration_dirs)
        report = watch(srv.dsn, s.since, limits)
    data = report.as_dict()
    if s.baseline:
        write_text(s.baseline, json.dumps(data, indent=2, default=str) + "\n")
    say(json.dumps(data, indent=2, default=str) if s.json else render(report))
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    keys = ", ".join(k for k, _ in gate.CHECKLIST)
    p = command(
        sub,
        "gate",
        run_gate,
        GateSettings,
        database=True,
        help="the spec's deployment checklist as a CI gate",
        description="Run the Deployment Checklist of the spec item by item, in its order, "
        "plus the rollback rehearsal; each item PASS, FAIL or MANUAL with evidence. With "
        "--dsn (staging) migrations are only rehearsed on a scratch database unless "
        "--apply is given.",
        epilog=f"Items for --only: {keys}. Exit status: 0 no item failed (manual items "
        "allowed), 1 an item failed, 2 usage or connection error.",
    )
    add(
        p,
        "--apply",
        action="store_true",
        env_var="HARNESS_GATE_APPLY",
        help="apply the migrations to the --dsn target for real",
    )
    add(
        p,
        "--skip-tests",
        action="store_true",
        env_var="HARNESS_GATE_SKIP_TESTS",
        help="do not run pytest: items 1 and 3 become MANUAL",
    )
    add(
        p,
        "--only",
        metavar="ITEM,...",
        env_var="HARNESS_GATE_ONLY",
        help="run only these items; the others are MANUAL",
    )
    add(
        p,
        "--scenario",
        metavar="FILE",
        env_var="HARNESS_GATE_SCENARIO",
        help=f"the full-flow scenario (default the packaged {gate.DEFAULT_SCENARIO})",
    )
    add(
        p,
        "--baseline",
        metavar="OUT",
        env_var="HARNESS_GATE_BASELINE",
        help="where the monitoring baseline goes (default reports/watch-baseline.json)",
    )
    add(
        p,
        "--jobs",
        type=whole(1, 32),
        env_var="HARNESS_GATE_JOBS",
        help="verify checks run at once (default 3)",
    )
    add(
        p,
        "--pytest-arg",
        action="append",
        metavar="ARG",
        help="extra argument for the pytest run, repeatable",
    )
    add(
        p,
        "--markdown",
        metavar="OUT",
        env_var="HARNESS_GATE_MARKDOWN",
        help="write a Markdown report (a pull-request comment) here",
    )
    add(
        p,
        "--junit",
        metavar="OUT",
        env_var="HARNESS_GATE_JUNIT",
        help="write a JUnit XML report here",
    )
    add(p, "--json", metavar="OUT", env_var="HARNESS_GATE_JSON", help="write the JSON report here")
    team = p.add_argument_group("the team's deployment")
    add(
        team,
        "--tests",
        metavar="CMD",
        env_var="HARNESS_GATE_TESTS",
        help="the team's test command, run in a shell here, for items 1 and 3: its exit code "
        "and its JUnit file decide (a pytest command gets --junitxml added); default: the "
        "harness's own pytest inside its checkout, MANUAL elsewhere",
    )
    add(
        team,
        "--tests-junit",
        metavar="FILE",
        help="the JUnit file --tests writes (for a command that is not pytest)",
    )
    add(
        team,
        "--api-docs",
        metavar="PATH",
        env_var="HARNESS_GATE_API_DOCS",
        help="the team's API documentation (file or directory) item 6 checks for every "
        "route of the app's /openapi.json and every error code; default MANUAL outside "
        "the harness's checkout",
    )
    add(
        team,
        "--user-docs",
        metavar="PATH",
        env_var="HARNESS_GATE_USER_DOCS",
        help="the team's user documentation item 7 checks for the text of every error code",
    )
    add(
        team,
        "--target",
        metavar="URL",
        env_var="HARNESS_GATE_TARGET",
        help="the deployed application: item 9 drives it over HTTP with the scenario "
        "(default full-flow.toml) and item 4 races it; needs --dsn (its database) and "
        "HARNESS_JWT_SECRET",
    )

    p = command(
        sub,
        "watch",
        run_watch,
        WatchSettings,
        database=True,
        help="judge a deployed database by its error signals",
        description="Read-only look at a database after a deployment: purchases stuck in "
        "pending, the purchase error rate by message (failed idempotency keys and refunds; "
        "refusals without a key leave no trace), dead-lettered and failing email jobs, "
        "invariant violations, and the slowest statements when pg_stat_statements is "
        "installed. Exit 1 when any threshold is exceeded.",
        epilog="Exit status: 0 within every threshold, 1 a threshold exceeded, 2 usage or "
        "connection error.",
    )
    add(
        p,
        "--since",
        type=duration,
        env_var="HARNESS_WATCH_SINCE",
        help="the window to judge, e.g. 15m, 2h (default 15m)",
    )
    add(p, "--json", action="store_true", default=False, help="machine-readable output")
    add(
        p,
        "--baseline",
        metavar="OUT",
        env_var="HARNESS_WATCH_BASELINE",
        help="also write the JSON report here, as the monitoring baseline",
    )
    g = p.add_argument_group("thresholds")
    add(
        g,
        "--pending-timeout",
        type=duration,
        env_var="HARNESS_WATCH_PENDING_TIMEOUT",
        help="a purchase pending longer is stuck (default 5m)",
    )
    add(
        g,
        "--max-stuck-pending",
        type=non_negative_int,
        env_var="HARNESS_WATCH_MAX_STUCK_PENDING",
        help="stuck purchases allowed (default 0)",
    )
    add(
        g,
        "--max-error-rate",
        type=number(0, 1),
        env_var="HARNESS_WATCH_MAX_ERROR_RATE",
        help="purchase error rate allowed, 0..1 (default 0.05)",
    )
    add(
        g,
        "--min-attempts",
        type=non_negative_int,
        env_var="HARNESS_WATCH_MIN_ATTEMPTS",
        help="attempts needed before the error rate is judged (default 20)",
    )
    add(
        g,
        "--max-dead-letters",
        type=non_negative_int,
        env_var="HARNESS_WATCH_MAX_DEAD_LETTERS",
        help="email jobs dead-lettered in the window allowed (default 0)",
    )
    add(
        g,
        "--max-failing-jobs",
        type=non_negative_int,
        env_var="HARNESS_WATCH_MAX_FAILING_JOBS",
        help="email jobs retrying allowed (default 10)",
    )
    add(
        g,
        "--max-violations",
        type=non_negative_int,
        env_var="HARNESS_WATCH_MAX_VIOLATIONS",
        help="invariant violations allowed (default 0)",
    )
    add(
        g,
        "--max-mean-ms",
        type=number(0),
        env_var="HARNESS_WATCH_MAX_MEAN_MS",
        help="slowest statement's mean time allowed, with pg_stat_statements (default none)",
    )
