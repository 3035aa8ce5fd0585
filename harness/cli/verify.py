"""``harness verify``: the command line of the verification suite."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import env
from harness.cli.common import (
    Target,
    add,
    announce,
    command,
    database,
    note,
    report_errors,
    say,
    write_text,
)
from harness.db.servers import Server
from harness.errors import UsageError
from harness.proofs.verify import report as reports
from harness.proofs.verify.context import HttpTarget
from harness.proofs.verify.runner import DEFAULT_JOBS, CheckResult, run_suite
from harness.values import whole

EXIT_HELP = (
    "Exit status: 0 every check passed (skips allowed), 1 a check failed or "
    "errored, 2 the suite could not run (bad DSN, migrations that do not apply)."
)


@dataclass(frozen=True)
class VerifySettings(Target):
    only: tuple[str, ...] | None = None
    json: str | None = None
    junit: str | None = None
    seed: int = 0
    keep: bool = False
    jobs: int = DEFAULT_JOBS
    flow: str | None = None
    save_failures: str | None = None
    http: str | None = None


def http_target(s: VerifySettings) -> HttpTarget | None:
    """The application --http names: its database is --dsn, else the one a `harness serve`
    listening on that URL recorded; its token secret is HARNESS_JWT_SECRET."""
    if s.http is None:
        if s.only and any(o == "http" or o.startswith("http.") for o in s.only):
            raise UsageError("--only http: the http checks need --http URL (a running app)")
        return None
    from harness.cli.serve import serve_state

    dsn = s.dsn
    if dsn is None:
        state = serve_state(s.http)
        if state is None:
            raise UsageError(
                f"--http {s.http}: give --dsn, the application's database (no `harness "
                "serve` recorded one for that URL)"
            )
        dsn = str(state["dsn"])
    secret = env.read("HARNESS_JWT_SECRET")
    if not secret:
        raise UsageError(
            "--http: HARNESS_JWT_SECRET must hold the application's token secret, so that "
            "the checks can sign in as the members they create"
        )
    return HttpTarget(url=s.http, dsn=dsn, secret=str(secret))


def run_verify(s: VerifySettings) -> int:
    tty = sys.stderr.isatty()

    def on_result(result: CheckResult, done: int, total: int) -> None:
        mark = reports.MARKS[result.status]
        line = f"[{done}/{total}] {mark:<5} {result.id} ({result.seconds:.2f} s)"
        if result.status in ("failed", "error"):
            line += f": {' '.join(result.detail.split())[:160]}"
        note(("\r\x1b[K" if tty else "") + line)

    http = http_target(s)
    if http is not None:
        # The http checks build workspaces and leads of their own in the app's database.
        announce(Server(dsn=http.dsn, provider="dsn"), "verify --http (its own workspaces in)")
    with database(s, writes="verify (scratch databases next to)") as srv:
        report = run_suite(
            srv.dsn,
            srv.provider,
            s.migration_dirs,
            only=list(s.only) if s.only else None,
            seed=s.seed,
            keep=s.keep,
            jobs=s.jobs,
            purchase_flow=s.flow,
            save_failures=Path(s.save_failures) if s.save_failures else None,
            http=http,
            on_result=on_result,
            on_note=note,
        )
    to_stdout = "-" in (s.json, s.junit)
    if s.json == "-":
        write_text("-", json.dumps(reports.to_json(report), indent=2))
    elif s.json:
        with report_errors(s.json):
            reports.write_json(report, s.json)
    if s.junit == "-":
        buffer = io.StringIO()
        reports.to_junit(report).write(buffer, encoding="unicode", xml_declaration=True)
        write_text("-", buffer.getvalue())
    elif s.junit:
        with report_errors(s.junit):
            reports.write_junit(report, s.junit)
    # A report on stdout keeps stdout machine-readable: the table goes to stderr then.
    (note if to_stdout else say)(reports.table(report))
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    p = command(
        sub,
        "verify",
        run_verify,
        VerifySettings,
        database=True,
        help="prove the money functions safe, or show why not",
        description="Migrate a scratch database with the migration set, then run every "
        "check against clones of it: contract, input, concurrency, faults, queue, model, "
        "security, invariants, rollback, migrations. With --dsn only scratch databases "
        "harness_verify_* are written, and dropped afterwards. With --http URL the http "
        "checks drive that running application too, building their own workspaces and "
        "leads in its database (--dsn, or the one `harness serve` recorded for URL).",
        epilog=EXIT_HELP,
    )
    add(
        p,
        "--only",
        metavar="CATEGORY,...",
        env_var="HARNESS_VERIFY_ONLY",
        help="run only these categories or check ids, comma separated",
    )
    add(
        p, "--json", metavar="OUT", env_var="HARNESS_VERIFY_JSON", help="write the JSON report here"
    )
    add(
        p,
        "--junit",
        metavar="OUT",
        env_var="HARNESS_VERIFY_JUNIT",
        help="write a JUnit XML report here",
    )
    add(
        p,
        "--seed",
        type=whole(0, 2**63 - 1),
        env_var="HARNESS_VERIFY_SEED",
        help="seed of every random choice and hypothesis run (default 0)",
    )
    add(
        p,
        "--keep",
        action="store_true",
        env_var="HARNESS_VERIFY_KEEP",
        help="leave the scratch databases for inspection",
    )
    add(
        p,
        "--http",
        metavar="URL",
        env_var="HARNESS_VERIFY_HTTP",
        help="a running application implementing the purchase route: run the http checks "
        "against it (its database: --dsn; its token secret: HARNESS_JWT_SECRET)",
    )
    add(
        p,
        "--jobs",
        type=whole(1, 32),
        env_var="HARNESS_VERIFY_JOBS",
        help=f"checks run at once (default {DEFAULT_JOBS})",
    )
    add(
        p,
        "--flow",
        metavar="FLOW",
        env_var="HARNESS_VERIFY_FLOW",
        help="the purchase flow the model.* checks drive: atomic, stepwise or legacy "
        "(default: the project's flows, atomic and stepwise)",
    )
    add(
        p,
        "--save-failures",
        metavar="DIR",
        env_var="HARNESS_VERIFY_SAVE_FAILURES",
        help="write each failing model.* sequence into DIR as a scenario file that "
        "`harness scenario run` replays",
    )
