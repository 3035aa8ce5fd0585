"""``harness verify``: the command line of the verification suite."""

from __future__ import annotations

import argparse
import os
import sys

from harness import cli
from harness.verify import report as reports
from harness.verify.runner import DEFAULT_JOBS, CheckResult, run_suite

EXIT_HELP = ("Exit status: 0 every check passed (skips allowed), 1 a check failed or "
             "errored, 2 the suite could not run (bad DSN, migrations that do not apply).")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "verify", parents=[common], help="prove the money functions safe, or show why not",
        description="Migrate a scratch database with the migration set, then run every "
        "check against clones of it: contract, input, concurrency, faults, queue, "
        "security, invariants. With --dsn only scratch databases harness_verify_* are "
        "written, and dropped afterwards.",
        epilog=EXIT_HELP,
    )
    p.add_argument("--only", metavar="CATEGORY,...",
                   default=os.environ.get("HARNESS_VERIFY_ONLY"),
                   help="run only these categories or check ids, comma separated "
                   "(env HARNESS_VERIFY_ONLY)")
    p.add_argument("--json", metavar="OUT", default=os.environ.get("HARNESS_VERIFY_JSON"),
                   help="write the JSON report here (env HARNESS_VERIFY_JSON)")
    p.add_argument("--junit", metavar="OUT", default=os.environ.get("HARNESS_VERIFY_JUNIT"),
                   help="write a JUnit XML report here (env HARNESS_VERIFY_JUNIT)")
    p.add_argument("--seed", type=int, default=os.environ.get("HARNESS_VERIFY_SEED", "0"),
                   help="seed of every random choice and hypothesis run (default 0, env "
                   "HARNESS_VERIFY_SEED)")
    p.add_argument("--keep", action="store_true",
                   default=os.environ.get("HARNESS_VERIFY_KEEP", "") not in ("", "0"),
                   help="leave the scratch databases for inspection (env HARNESS_VERIFY_KEEP)")
    p.add_argument("--jobs", type=int,
                   default=os.environ.get("HARNESS_VERIFY_JOBS", str(DEFAULT_JOBS)),
                   help=f"checks run at once (default {DEFAULT_JOBS}, env HARNESS_VERIFY_JOBS)")
    p.set_defaults(func=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    only = [o.strip() for o in args.only.split(",") if o.strip()] if args.only else None
    tty = sys.stderr.isatty()

    def on_result(result: CheckResult, done: int, total: int) -> None:
        mark = reports.MARKS[result.status]
        line = f"[{done}/{total}] {mark:<5} {result.id} ({result.seconds:.2f} s)"
        if result.status in ("failed", "error"):
            line += f": {' '.join(result.detail.split())[:160]}"
        cli.note(("\r\x1b[K" if tty else "") + line)

    with cli.database(args) as srv:
        report = run_suite(
            srv.dsn, srv.provider, cli.migration_dirs(args), only=only, seed=args.seed,
            keep=args.keep, jobs=args.jobs, on_result=on_result, on_note=cli.note,
        )
    if args.json:
        reports.write_json(report, args.json)
    if args.junit:
        reports.write_junit(report, args.junit)
    cli.say(reports.table(report))
    return 0 if report.ok else 1
