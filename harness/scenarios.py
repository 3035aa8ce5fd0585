"""``harness scenario run FILE... [--json OUT]``: run scenario files, report, judge.

The format lives in :mod:`harness.scenario_format` (documented in ``scenarios/README.md``),
the runner in :mod:`harness.scenario_runner`. Every file is checked before any runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.scenario_format import load_scenarios
from harness.scenario_runner import ScenarioResult, report, run_scenarios


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "scenario", help="run scenario files",
        description="Scenario files (scenarios/*.toml) describe a world and purchases "
        "against it, and what must come out; see scenarios/README.md.")
    sub = p.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)
    run = sub.add_parser(
        "run", parents=[common], help="run scenarios, each on a fresh scratch database",
        description="Check every file, then run each scenario on its own database cloned "
        "from a template migrated once. Exit 0 when every expectation is met, 1 otherwise.")
    run.add_argument("files", nargs="+", metavar="FILE", type=Path)
    run.add_argument("--json", metavar="OUT", help="write the JSON report here ('-' for "
                     "stdout)")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="check scenario files without running them",
                           description="Parse and validate scenario files; nothing runs.")
    check.add_argument("files", nargs="+", metavar="FILE", type=Path)
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from harness import cli

    for scenario in load_scenarios(args.files):
        cli.say(f"{scenario.path}: {scenario.name}: {len(scenario.steps)} step(s), valid")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness import cli

    scenarios = load_scenarios(args.files)  # a bad file stops everything before it runs
    out = cli.note if args.json == "-" else cli.say

    def show(result: ScenarioResult) -> None:
        errors = ", ".join(f"{k}={v}" for k, v in sorted(result.errors.items())) or "none"
        out(f"{'ok  ' if result.ok else 'FAIL'} {result.name} ({result.flow}, "
            f"{result.seconds:.1f}s): succeeded={result.succeeded} errors: {errors}")
        peaks = [f"steps[{s.index}] {s.peak_in_flight}/{s.concurrency}"
                 for s in result.steps if s.peak_in_flight is not None]
        if peaks:
            out(f"     in flight (peak/concurrency): {', '.join(peaks)}")
        for v in result.violations:
            out(f"     violation {v['name']}: {v['detail']}")
        for m in result.mismatches:
            out(f"     mismatch: {m}")

    with cli.database(args) as srv:
        results = run_scenarios(srv.dsn, scenarios, cli.migration_dirs(args), on_result=show)
    doc = report(results)
    if args.json == "-":
        json.dump(doc, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    failed = sum(not r.ok for r in results)
    out(f"{len(results) - failed} of {len(results)} scenario(s) met every expectation")
    return 0 if doc["ok"] else 1
