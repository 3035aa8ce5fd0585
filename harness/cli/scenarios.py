"""``harness scenario check | run FILE...``: scenario files, checked and run.

The format lives in :mod:`harness.drivers.scenarios.format` (documented in
``scenarios/README.md``), the runner in :mod:`harness.drivers.scenarios.runner`. Every file
is checked before any runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cli.common import Target, add, command, database, group, note, say, write_text
from harness.drivers.scenarios.format import load_scenarios
from harness.drivers.scenarios.runner import ScenarioResult, report, run_scenarios
from harness.env import output_path


@dataclass(frozen=True)
class CheckSettings:
    files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class RunSettings(Target):
    files: tuple[Path, ...] = ()
    json: str | None = None


def run_check(s: CheckSettings) -> int:
    for scenario in load_scenarios(list(s.files)):
        say(f"{scenario.path}: {scenario.name}: {len(scenario.steps)} step(s), valid")
    return 0


def run_run(s: RunSettings) -> int:
    scenarios = load_scenarios(list(s.files))  # a bad file stops everything before it runs
    out = note if s.json == "-" else say

    def show(result: ScenarioResult) -> None:
        errors = ", ".join(f"{k}={v}" for k, v in sorted(result.errors.items())) or "none"
        out(
            f"{'ok  ' if result.ok else 'FAIL'} {result.name} ({result.flow}, "
            f"{result.seconds:.1f}s): succeeded={result.succeeded} errors: {errors}"
        )
        peaks = [
            f"steps[{st.index}] {st.peak_in_flight}/{st.concurrency}"
            for st in result.steps
            if st.peak_in_flight is not None
        ]
        if peaks:
            out(f"     in flight (peak/concurrency): {', '.join(peaks)}")
        for v in result.violations:
            out(f"     violation {v['name']}: {v['detail']}")
        for m in result.mismatches:
            out(f"     mismatch: {m}")

    with database(s, writes="scenario run (scratch databases next to)") as srv:
        results = run_scenarios(srv.dsn, scenarios, s.migration_dirs, on_result=show)
    doc = report(results)
    if s.json:
        write_text(s.json, json.dumps(doc, indent=2, default=str) + "\n")
    failed = sum(not r.ok for r in results)
    out(f"{len(results) - failed} of {len(results)} scenario(s) met every expectation")
    return 0 if doc["ok"] else 1


def register(sub: Any) -> None:
    scenario = group(
        sub,
        "scenario",
        "scenario_command",
        help="run scenario files",
        description="Scenario files (scenarios/*.toml) describe a world and "
        "purchases against it, and what must come out; see scenarios/README.md.",
    )
    p = command(
        scenario,
        "run",
        run_run,
        RunSettings,
        database=True,
        help="run scenarios, each on a fresh scratch database",
        description="Check every file, then run each scenario on its own database "
        "cloned from a template migrated once. Exit 0 when every expectation is met, "
        "1 otherwise.",
    )
    add(p, "files", nargs="+", metavar="FILE", type=Path)
    add(
        p,
        "--json",
        metavar="OUT",
        type=output_path,
        help="write the JSON report here ('-' for stdout)",
    )
    p = command(
        scenario,
        "check",
        run_check,
        CheckSettings,
        help="check scenario files without running them",
        description="Parse and validate scenario files; nothing runs.",
    )
    add(p, "files", nargs="+", metavar="FILE", type=Path)
