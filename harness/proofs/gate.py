"""``harness gate``: the spec's Deployment Checklist, item by item and in its order, as a
CI gate. Each item ends PASS, FAIL or MANUAL (cannot be decided here; the evidence says
why), and the gate passes only when no item FAILs. The harness's own tests and
documentation are used only when the gate runs inside the harness's own checkout; a
team's gate names its own with ``--tests``, ``--api-docs`` and ``--user-docs``.

The checklist, and what proves each item:

1. Run all existing tests: the team's test command (``--tests CMD``: its exit code and its
   JUnit file), or in the harness's own checkout its ``pytest`` over ``tests/``.
2. Run new unit tests: verify's ``contract`` and ``input`` checks (purchase_with_credits
   and mark_leads_sold_batch, one call at a time: the spec's unit tests).
3. Run integration tests: the end-to-end test modules (or classes) of the same run.
4. Test race condition fix with concurrent requests: verify's ``concurrency`` checks.
5. Test email queue: verify's ``queue`` checks.
6. Update API documentation: the team's API docs (``--api-docs PATH``) name every path of
   the application's ``/openapi.json`` and every stable error code; in the harness's own
   checkout, its README and docs/ name every CLI command and check id.
7. Update user documentation: the team's user docs (``--user-docs PATH``) quote the text
   users read for every error code; in the harness's own checkout, every message the code
   defines.
8. Run database migrations on staging: with ``--dsn``, applied for real only with
   ``--apply``; otherwise rehearsed on a scratch database rebuilt to the target's schema.
9. Test full flow on staging: with ``--target URL``, a scenario driven over HTTP against
   the deployed application (its world written into the target's database under a run
   prefix); otherwise a scenario in a scratch database on that server.
10. Rollback rehearsal (the spec's Rollback Plan): verify's ``rollback`` and
    ``migrations`` checks, and the list ``harness rollback --all --dry-run`` prints: every
    table and column each step drops, with the rows it holds on the target.
11. Monitor error rates after deployment: with ``--dsn``, ``harness watch`` once on the
    target, its report stored as the monitoring baseline; without a target there is
    nothing deployed to watch, so the item is MANUAL.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from harness import db, packaged
from harness.config import DB_MESSAGES, USER_MESSAGES
from harness.db.fingerprint import diff, fingerprint_dsn
from harness.db.migrations import Migrator
from harness.drivers.scenarios.format import load_scenario
from harness.drivers.scenarios.runner import run_scenarios
from harness.errors import HarnessError, UsageError
from harness.proofs.verify.registry import all_checks
from harness.proofs.verify.runner import run_suite
from harness.proofs.watch import watch

GATE_ENV = "HARNESS_GATE_ACTIVE"  # set for the pytest the gate runs: no gate within a gate
STATUSES = ("PASS", "FAIL", "MANUAL")

CHECKLIST: tuple[tuple[str, str], ...] = (
    ("tests", "Run all existing tests"),
    ("unit", "Run new unit tests"),
    ("integration", "Run integration tests"),
    ("race", "Test race condition fix with concurrent requests"),
    ("queue", "Test email queue (the outbox in place of Inngest)"),
    ("api-docs", "Update API documentation"),
    ("user-docs", "Update user documentation"),
    ("migrations", "Run database migrations on staging"),
    ("flow", "Test full flow on staging"),
    ("rollback", "Rollback rehearsal (Rollback Plan)"),
    ("monitor", "Monitor error rates after deployment"),
)
VERIFY_CATEGORIES = {
    "unit": ("contract", "input"),
    "race": ("concurrency",),
    "queue": ("queue",),
    "rollback": ("rollback", "migrations"),
}
# Test modules that drive a whole flow (the spec's integration test): by name.
INTEGRATION_MODULES = re.compile(r"(scenario|service|flow|worker|e2e|integration|reconcile)")
DEFAULT_SCENARIO = "emails.toml"  # of the packaged scenarios/
DEFAULT_HTTP_SCENARIO = "full-flow.toml"  # over HTTP: no step a client cannot take
DOC_SUFFIXES = (".md", ".rst", ".txt", ".html", ".adoc")
HTTP_RACE_CHECKS = ("http.hot-wallet", "http.idempotency")


@dataclass
class Item:
    """One checklist item and its outcome."""

    number: int
    key: str
    title: str
    status: str = "MANUAL"
    evidence: str = ""
    seconds: float = 0.0


@dataclass
class GateReport:
    """The whole checklist."""

    target: str
    provider: str
    items: list[Item] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(i.status != "FAIL" for i in self.items)

    def as_dict(self) -> dict:
        counts = {s: sum(i.status == s for i in self.items) for s in STATUSES}
        return {
            "ok": self.ok,
            "target": self.target,
            "provider": self.provider,
            "seconds": round(self.seconds, 1),
            "summary": counts,
            "items": [asdict(i) for i in self.items],
        }


@dataclass
class Options:
    """How the gate runs."""

    dirs: list[str] | None = None
    apply: bool = False
    skip_tests: bool = False
    only: list[str] | None = None
    scenario: str | None = None
    baseline: str = "reports/watch-baseline.json"
    jobs: int = 3
    pytest_args: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # the CLI's, for the docs items
    tests: str | None = None  # the team's test command
    tests_junit: str | None = None  # the JUnit file it writes
    api_docs: str | None = None
    user_docs: str | None = None
    target: str | None = None  # the deployed application's URL
    secret: str | None = None  # its token secret


def check_items(only: list[str]) -> None:
    """A UsageError naming any item ``--only`` names that the checklist lacks."""
    unknown = sorted(set(only) - {k for k, _ in CHECKLIST})
    if unknown:
        raise UsageError(f"--only: unknown items {unknown}; known: {[k for k, _ in CHECKLIST]}")


# -- 1-3: pytest --------------------------------------------------------------------------


@dataclass
class PytestRun:
    code: int
    cases: list[dict]  # {"module", "name", "outcome"}
    seconds: float
    output: str

    def counts(self, cases: list[dict] | None = None) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for c in self.cases if cases is None else cases:
            out[c["outcome"]] += 1
        return out


def run_pytest(root: Path, dsn: str, extra: list[str]) -> PytestRun:
    """pytest over ``root``/tests as a subprocess, on the server at ``dsn``."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "pytest.xml"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "--test-dsn",
            dsn,
            *extra,
            "tests",
        ]
        env = os.environ | {GATE_ENV: "1"}
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        cases = _junit_cases(junit) if junit.exists() else []
    return PytestRun(
        proc.returncode, cases, time.perf_counter() - start, (proc.stdout + proc.stderr)[-2000:]
    )


def run_tests_command(command: str, junit: str | None, cwd: Path) -> PytestRun:
    """The team's test command in a shell, in ``cwd``: its exit code and the cases of its
    JUnit file (``junit``; for a pytest command without one, the gate adds
    ``--junitxml``)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(junit) if junit else None
        words = command.split()
        if (
            report is None
            and words
            and (Path(words[0]).name == "pytest" or words[1:3] == ["-m", "pytest"])
        ):
            report = Path(tmp) / "tests.xml"
            command = f"{command} --junitxml={report}"
        if report is not None and report.exists():
            report.unlink()  # never read an earlier run's file
        env = os.environ | {GATE_ENV: "1"}
        start = time.perf_counter()
        proc = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
        cases = _junit_cases(report) if report is not None and report.exists() else []
    return PytestRun(
        proc.returncode, cases, time.perf_counter() - start, (proc.stdout + proc.stderr)[-2000:]
    )


def _junit_cases(path: Path) -> list[dict]:
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for tag, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            if case.find(tag) is not None:
                outcome = name
                break
        out.append(
            {
                "module": case.get("classname", "").split(".")[-1],
                "name": case.get("name", ""),
                "outcome": outcome,
            }
        )
    return out


def _pytest_verdict(run: PytestRun, cases: list[dict], what: str) -> tuple[str, str]:
    c = run.counts(cases)
    text = (
        f"{c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
        f"{c['skipped']} skipped {what}"
    )
    if not cases and run.code not in (0, 5):
        return "FAIL", f"pytest exited {run.code}: {' '.join(run.output.split())[-400:]}"
    failed = [f"{x['module']}::{x['name']}" for x in cases if x["outcome"] in ("failed", "error")]
    if failed:
        return "FAIL", f"{text}; failing: {', '.join(failed[:10])}"
    return "PASS", text


# -- 6-7: documentation --------------------------------------------------------------------


def check_ids() -> list[str]:
    return [c.id for c in all_checks()]


def error_messages() -> list[str]:
    """The SQL functions' messages and the texts users see for each code."""
    return list(DB_MESSAGES) + [m for m in USER_MESSAGES.values() if isinstance(m, str)]


def documentation(root: Path | None) -> str:
    """The README and every page of docs/ under ``root``, as one text."""
    if root is None:
        return ""
    pages = [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]
    return "\n".join(p.read_text(encoding="utf-8") for p in pages if p.is_file())


def documentation_gaps(
    commands: list[str], root: Path | None = None, text: str | None = None
) -> dict[str, list[str]]:
    """What the code defines and the documentation (README and docs/) does not mention:
    ``commands`` (as ``harness <command>``), ``checks`` (ids) and ``messages``
    (verbatim)."""
    flat = " ".join((text if text is not None else documentation(root)).split())
    return {
        "commands": [c for c in commands if f"harness {c}" not in flat],
        "checks": [c for c in check_ids() if c not in flat],
        "messages": [m for m in error_messages() if " ".join(m.split()) not in flat],
    }


def _docs_item(
    kinds: tuple[str, ...], gaps: dict[str, list[str]], commands: list[str]
) -> tuple[str, str]:
    label = {
        "commands": lambda x: f"command `harness {x}`",
        "checks": lambda x: f"check id `{x}`",
        "messages": lambda x: f"message {x!r}",
    }
    missing = [label[kind](x) for kind in kinds for x in gaps[kind]]
    total = {
        "commands": len(commands),
        "checks": len(check_ids()),
        "messages": len(error_messages()),
    }
    scope = " and ".join(f"{total[k]} {k}" for k in kinds)
    if missing:
        shown = "; ".join(missing[:15]) + (
            f"; and {len(missing) - 15} more" if len(missing) > 15 else ""
        )
        counts = ", ".join(f"{len(gaps[k])} of {total[k]} {k}" for k in kinds)
        return "FAIL", f"the documentation (README.md, docs/) leaves out {counts}: {shown}"
    return "PASS", f"the documentation (README.md, docs/) mentions all {scope} the code defines"


def team_documentation(path: str) -> str:
    """A file, or every documentation file under a directory, as one text."""
    root = Path(path)
    if root.is_file():
        return root.read_text(encoding="utf-8", errors="replace")
    if not root.is_dir():
        raise UsageError(f"no documentation at {path}")
    files = sorted(p for p in root.rglob("*") if p.suffix in DOC_SUFFIXES and p.is_file())
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)


def exposed(target: str | None) -> tuple[list[str], list[str], str]:
    """The routes and stable error codes the application exposes: every path of its
    /openapi.json and the codes its error body enumerates (else the contract's), and
    where they were read."""
    from harness.drivers.serve import contract

    codes = list(contract.ERRORS)
    if target is None:
        paths = [contract.PURCHASE, contract.PURCHASES, contract.DOWNLOAD, contract.TOPUP]
        return paths, codes, "the purchase route's contract"
    import httpx

    try:
        doc = httpx.get(target.rstrip("/") + contract.OPENAPI, timeout=30).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise HarnessError(f"cannot read {target}{contract.OPENAPI}: {exc}") from exc
    paths = sorted(doc.get("paths", {}))
    enum = doc.get("components", {}).get("schemas", {}).get("ErrorCode", {}).get("enum")
    return paths, list(enum or codes), f"{target}{contract.OPENAPI}"


def team_docs_item(key: str, path: str, target: str | None) -> tuple[str, str]:
    """Item 6 (API docs name every route and code) or 7 (user docs quote what users read
    for every code) on the team's own documentation."""
    from harness.drivers.serve import contract

    flat = " ".join(team_documentation(path).split())
    paths, codes, source = exposed(target)
    if key == "api-docs":
        wanted = [f"route {p}" for p in paths if p not in flat]
        wanted += [f"code {c}" for c in codes if c not in flat]
        scope = f"{len(paths)} routes and {len(codes)} error codes of {source}"
    else:
        texts = {c: contract.ERRORS[c].message for c in codes if c in contract.ERRORS}
        wanted = [f"{c}: {m!r}" for c, m in texts.items() if " ".join(m.split()) not in flat]
        scope = f"the user-facing text of {len(texts)} error codes of {source}"
    if wanted:
        shown = "; ".join(wanted[:12]) + (
            f"; and {len(wanted) - 12} more" if len(wanted) > 12 else ""
        )
        return "FAIL", f"{path} leaves out {len(wanted)} of {scope}: {shown}"
    return "PASS", f"{path} names all {scope}"


# -- 8: migrations on the target -----------------------------------------------------------


def _public_only(fp: dict) -> dict:
    """The objects of the public schema: their keys carry no schema name."""
    nested = {"columns", "constraints", "triggers", "policies"}  # keyed table.name

    def public(section: str, key: str) -> bool:
        return key.split("(")[0].count(".") == (1 if section in nested else 0)

    return {
        s: {k: v for k, v in objs.items() if public(s, k)}
        for s, objs in fp.items()
        if s not in ("schemas", "extensions")
    }


def migrations_item(
    dsn: str, is_target: bool, dirs: list[str] | None, apply: bool
) -> tuple[str, str]:
    if not is_target:
        with db.scratch_database(dsn, prefix="harness_gate") as scratch:
            with Migrator(scratch, dirs) as m:
                start = time.perf_counter()
                done = m.apply()
        return "PASS", (
            f"no --dsn: {len(done)} migration(s) applied to a scratch database "
            f"in {time.perf_counter() - start:.1f} s: {', '.join(done)}"
        )
    with Migrator(dsn, dirs) as m:
        holder = m.lock_holder()
        if holder:
            return "FAIL", m.locked_message(holder, stale=False)
        applied = [s.id for s in m.status() if s.applied]
        if apply:
            start = time.perf_counter()
            done = m.apply()
            return "PASS", (
                f"applied for real to {db.redact(dsn)}: "
                f"{', '.join(done) or 'nothing pending'} "
                f"({time.perf_counter() - start:.1f} s)"
            )
    with db.scratch_database(dsn, prefix="harness_gate_rehearsal") as scratch:
        with Migrator(scratch, dirs) as s:
            for mig in s.migrations:
                if mig.id in applied:
                    s.backend.apply_one(mig)
            ours = _public_only(fingerprint_dsn(scratch))
            theirs = _public_only(fingerprint_dsn(dsn))
            known = {
                sec: {k: v for k, v in objs.items() if k in ours.get(sec, {})}
                for sec, objs in theirs.items()
            }
            drift = diff(ours, known, "on the target")
            extra = sum(len(objs) - len(known[sec]) for sec, objs in theirs.items())
            if drift:
                return "FAIL", (
                    "the target's schema is not what its applied migrations "
                    "build: " + "; ".join(drift[:10])
                )
            start = time.perf_counter()
            done = s.apply()
    note = f"; {extra} object(s) on the target no migration creates" if extra else ""
    return "PASS", (
        f"rehearsed on a scratch database rebuilt to the target's schema "
        f"({len(applied)} applied migration(s) replayed, fingerprint equal to "
        f"the target's{note}): would apply {', '.join(done) or 'nothing'} "
        f"({time.perf_counter() - start:.1f} s); --apply applies for real"
    )


# -- 9: full flow ----------------------------------------------------------------------------


def http_flow_item(dsn: str, target: str, secret: str, scenario: str | None) -> tuple[str, str]:
    """The scenario driven over HTTP against the deployed application."""
    from harness.drivers.serve.scenario import run_http_scenario

    path = Path(scenario) if scenario else packaged.folder("scenarios") / DEFAULT_HTTP_SCENARIO
    result = run_http_scenario(target, dsn, secret, load_scenario(path))
    peaks = [s.peak_in_flight for s in result.steps if s.peak_in_flight is not None]
    facts = (
        f"scenario {result.name} ({path.name}) over HTTP against {target}: "
        f"{result.succeeded} purchases succeeded, every download answered its leads, "
        f"balances { {k: str(v) for k, v in result.balances.items()} }, emails {result.emails}"
        + (f", peak in flight {max(peaks)}" if peaks else "")
    )
    if result.ok:
        return "PASS", facts
    problems = list(result.mismatches) + [f"{v['name']}: {v['detail']}" for v in result.violations]
    return "FAIL", f"{facts}; " + "; ".join(problems[:8])


def flow_item(dsn: str, dirs: list[str] | None, scenario: str | None) -> tuple[str, str]:
    path = Path(scenario) if scenario else packaged.folder("scenarios") / DEFAULT_SCENARIO
    if not path.is_file():
        return "MANUAL", f"no scenario file {path} to run the full flow with"
    (result,) = run_scenarios(dsn, [load_scenario(path)], dirs)
    facts = (
        f"scenario {result.name} ({path.name}, {result.flow} flow) in a scratch "
        f"database on the target's server: {result.succeeded} purchases succeeded, "
        f"emails {result.emails}, balances "
        f"{ {k: str(v) for k, v in result.balances.items()} }"
    )
    if result.ok:
        return "PASS", facts
    problems = list(result.mismatches) + [f"{v['name']}: {v['detail']}" for v in result.violations]
    return "FAIL", f"{facts}; " + "; ".join(problems[:8])


# -- 11: monitoring baseline ----------------------------------------------------------------


def monitor_item(dsn: str, is_target: bool, baseline: str) -> tuple[str, str]:
    """Record the monitoring baseline on the target; without one there is nothing deployed
    to watch (an empty scratch database would always look healthy), so MANUAL."""
    if not is_target:
        return "MANUAL", (
            "no --dsn: nothing deployed to watch; after the deployment run "
            f"`harness watch --dsn URL --baseline {baseline}`"
        )
    try:
        report = watch(dsn, timedelta(minutes=15))
    except UsageError as exc:
        return "MANUAL", (
            f"{exc.message}; after the deployment run `harness watch --dsn "
            f"URL --baseline {baseline}` to record the baseline"
        )
    out = Path(baseline)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    values = ", ".join(f"{m.name}={m.value}" for m in report.measures)
    exceeded = [m.name for m in report.measures if m.exceeded]
    text = f"baseline of the target {db.redact(dsn)} written to {out}: {values}"
    if exceeded:
        return "FAIL", f"{text}; thresholds exceeded: {', '.join(exceeded)}"
    return "PASS", text + "; after deploying, `harness watch --dsn URL` exits 1 on alert"


# -- the run --------------------------------------------------------------------------------


def own_checkout() -> Path | None:
    """The harness's own checkout when the gate runs inside it (its tests and docs are
    then the ones to check); None anywhere else, an editable install included."""
    root = packaged.source_checkout()
    if root is None:
        return None
    return root if Path.cwd().resolve().is_relative_to(root.resolve()) else None


def run_gate(
    dsn: str, provider: str, opts: Options, on_item: Callable[[Item], None] | None = None
) -> GateReport:
    """Every checklist item, in order. ``dsn`` is the target (``provider == "dsn"``) or a
    throwaway server."""
    start = time.perf_counter()
    is_target = provider == "dsn"
    report = GateReport(db.redact(dsn), provider)
    items = [Item(n, key, title) for n, (key, title) in enumerate(CHECKLIST, 1)]
    chosen = {i.key for i in items if not opts.only or i.key in opts.only}
    if opts.only:
        check_items(opts.only)

    # One test run serves items 1 and 3; one verify run items 2, 4, 5 and 10.
    run = None
    root = own_checkout()
    pytest_state = None
    if chosen & {"tests", "integration"}:
        if os.environ.get(GATE_ENV):
            pytest_state = (
                f"not run: already inside a gate run ({GATE_ENV} is set), "
                "the gate does not recurse into the tests"
            )
        elif opts.skip_tests:
            pytest_state = "not run: --skip-tests"
        elif opts.tests:
            run = run_tests_command(opts.tests, opts.tests_junit, Path.cwd())
            pytest_state = f"{run.seconds:.0f} s"
        elif root is None:
            pytest_state = (
                "not run: outside the harness's own checkout; name the team's test "
                "command with --tests CMD"
            )
        else:
            run = run_pytest(root, dsn, opts.pytest_args)
            pytest_state = f"{run.seconds:.0f} s"
    verify_results: dict[str, list] = {}
    wanted = sorted({c for k, cats in VERIFY_CATEGORIES.items() if k in chosen for c in cats})
    known = {c.category for c in all_checks()}
    http = None
    if opts.target and "race" in chosen and is_target and opts.secret:
        # Item 4 also races the deployed application over HTTP.
        from harness.proofs.verify.context import HttpTarget

        http = HttpTarget(url=opts.target, dsn=dsn, secret=opts.secret)
    if wanted and known & set(wanted):
        only = sorted(known & set(wanted)) + (list(HTTP_RACE_CHECKS) if http else [])
        suite = run_suite(dsn, provider, opts.dirs, only=only, jobs=opts.jobs, http=http)
        for r in suite.results:
            category = "concurrency" if r.category == "http" else r.category
            verify_results.setdefault(category, []).append(r)
    gaps = documentation_gaps(opts.commands, root) if chosen & {"api-docs", "user-docs"} else {}

    for item in items:
        t = time.perf_counter()
        if item.key not in chosen:
            item.status, item.evidence = "MANUAL", "not selected (--only)"
        else:
            try:
                item.status, item.evidence = _decide(
                    item.key,
                    dsn,
                    is_target,
                    opts,
                    run,
                    pytest_state,
                    verify_results,
                    gaps,
                    known,
                    root,
                )
            except HarnessError as exc:
                item.status, item.evidence = "FAIL", exc.message
            except Exception as exc:  # an item that crashes has proved nothing
                item.status = "FAIL"
                item.evidence = f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
        item.seconds = time.perf_counter() - t
        if item.key in VERIFY_CATEGORIES:  # ran before the items, in one verify suite
            item.seconds += sum(
                r.seconds for c in VERIFY_CATEGORIES[item.key] for r in verify_results.get(c, [])
            )
        elif item.key == "tests" and run is not None:
            item.seconds += run.seconds
        report.items.append(item)
        if on_item:
            on_item(item)
    report.seconds = time.perf_counter() - start
    return report


def _decide(
    key: str,
    dsn: str,
    is_target: bool,
    opts: Options,
    run: PytestRun | None,
    pytest_state: str | None,
    verify_results: dict[str, list],
    gaps: dict[str, list[str]],
    known: set[str],
    root: Path | None,
) -> tuple[str, str]:
    if key == "tests":
        if run is None:
            return "MANUAL", f"tests {pytest_state}"
        if run.code == 5 and not run.cases:
            return "MANUAL", f"tests {pytest_state}: no test was collected"
        if opts.tests and not run.cases:
            verdict = "PASS" if run.code == 0 else "FAIL"
            tail = " ".join(run.output.split())[-300:]
            return verdict, f"`{opts.tests}` exited {run.code} (no JUnit file to count): {tail}"
        where = f"`{opts.tests}`" if opts.tests else "over tests/"
        return _pytest_verdict(run, run.cases, f"{where} ({pytest_state})")
    if key == "integration":
        if run is None:
            return "MANUAL", f"tests {pytest_state}"
        cases = [c for c in run.cases if INTEGRATION_MODULES.search(c["module"])]
        if not cases:
            return (
                "MANUAL",
                "no end-to-end test modules among the tests (names with scenario, "
                "service, flow, worker, e2e, integration)",
            )
        modules = sorted({c["module"] for c in cases})
        return _pytest_verdict(run, cases, f"in {', '.join(modules)}")
    if key == "rollback":
        status, text = _verify_item(key, verify_results, known)
        return status, f"{text}; {rollback_plan_text(dsn, is_target, opts.dirs)}"
    if key in VERIFY_CATEGORIES:
        return _verify_item(key, verify_results, known)
    if key in ("api-docs", "user-docs"):
        team = opts.api_docs if key == "api-docs" else opts.user_docs
        if team:
            return team_docs_item(key, team, opts.target)
        if root is None:
            flag = "--api-docs" if key == "api-docs" else "--user-docs"
            return "MANUAL", (
                f"outside the harness's own checkout: name the team's documentation with "
                f"{flag} PATH"
            )
        kinds = ("commands", "checks") if key == "api-docs" else ("messages",)
        return _docs_item(kinds, gaps, opts.commands)
    if key == "migrations":
        return migrations_item(dsn, is_target, opts.dirs, opts.apply)
    if key == "flow":
        if opts.target:
            if not is_target or not opts.secret:
                return "MANUAL", (
                    "--target needs --dsn (the application's database) and "
                    "HARNESS_JWT_SECRET (its token secret) to drive a scenario over HTTP"
                )
            return http_flow_item(dsn, opts.target, opts.secret, opts.scenario)
        return flow_item(dsn, opts.dirs, opts.scenario)
    if key == "monitor":
        return monitor_item(dsn, is_target, opts.baseline)
    raise UsageError(f"unknown checklist item {key}")


def _verify_item(key: str, verify_results: dict[str, list], known: set[str]) -> tuple[str, str]:
    cats = VERIFY_CATEGORIES[key]
    results = [r for c in cats for r in verify_results.get(c, [])]
    if not results:
        return (
            "MANUAL",
            f"no verify checks in {', '.join(cats)} (registered: {', '.join(sorted(known))})",
        )
    bad = [r for r in results if r.status in ("failed", "error")]
    if bad:
        return "FAIL", "; ".join(
            f"{r.id} {r.status}: {' '.join(r.detail.split())[:300]}" for r in bad
        )
    passed = [r.id for r in results if r.status == "passed"]
    skipped = [r.id for r in results if r.status == "skipped"]
    text = f"harness verify --only {','.join(cats)}: {len(passed)} passed ({', '.join(passed)})"
    if skipped:
        text += f"; skipped: {', '.join(skipped)}"
    return ("PASS" if passed else "MANUAL"), text


def rollback_plan_text(dsn: str, is_target: bool, dirs: list[str] | None) -> str:
    """What ``harness rollback --all --dry-run`` lists: every table and column each
    applied migration's rollback drops, with its rows on the target (without a target,
    on a scratch database with the migration set applied, where every count is 0)."""
    try:
        if is_target:
            with Migrator(dsn, dirs) as m:
                plan = m.rollback_plan(None)
        else:
            with db.scratch_database(dsn, prefix="harness_gate") as scratch:
                with Migrator(scratch, dirs) as m:
                    m.apply()
                    plan = m.rollback_plan(None)
    except HarnessError as exc:
        return f"rollback plan not rehearsed: {exc.message}"
    where = "on the target" if is_target else "on a scratch database"
    text = f"rollback plan {where} (harness rollback --all --dry-run): {plan.summary()}"
    if plan.losses:
        text += (
            f"; {len(plan.losses)} of them hold rows, so harness rollback refuses them "
            "without --accept-data-loss"
        )
    return text


# -- output ---------------------------------------------------------------------------------


def table(report: GateReport, width: int = 100) -> str:
    lines = [f"{'#':>2}  {'checklist item':<50} {'status':<6}  evidence"]
    for i in report.items:
        wrapped = textwrap.wrap(" ".join(i.evidence.split()), width) or [""]
        lines.append(f"{i.number:>2}  {i.title[:50]:<50} {i.status:<6}  {wrapped[0]}")
        lines += [f"{'':>62}{w}" for w in wrapped[1:4]]
        if len(wrapped) > 4:
            lines.append(f"{'':>62}...")
    d = report.as_dict()["summary"]
    verdict = (
        "GATE PASSED"
        if report.ok
        else "GATE FAILED: "
        + ", ".join(f"#{i.number} {i.title}" for i in report.items if i.status == "FAIL")
    )
    lines.append(
        f"\n{verdict} ({d['PASS']} pass, {d['FAIL']} fail, {d['MANUAL']} manual; "
        f"{report.seconds:.0f} s on {report.target}, {report.provider})"
    )
    return "\n".join(lines)


def markdown(report: GateReport) -> str:
    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")

    mark = {"PASS": "✅ PASS", "FAIL": "❌ FAIL", "MANUAL": "✋ MANUAL"}
    d = report.as_dict()["summary"]
    head = "passed" if report.ok else "failed"
    out = [
        f"## Deployment gate {head}",
        "",
        f"{d['PASS']} pass, {d['FAIL']} fail, {d['MANUAL']} manual; target "
        f"`{report.target}` ({report.provider}), {report.seconds:.0f} s.",
        "",
        "| # | Checklist item | Status | Evidence |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {i.number} | {cell(i.title)} | {mark[i.status]} | {cell(i.evidence)} |"
        for i in report.items
    ]
    return "\n".join(out) + "\n"


def junit(report: GateReport) -> ET.ElementTree:
    d = report.as_dict()["summary"]
    attrs = {
        "name": "harness gate",
        "tests": str(len(report.items)),
        "failures": str(d["FAIL"]),
        "errors": "0",
        "skipped": str(d["MANUAL"]),
        "time": f"{report.seconds:.3f}",
    }
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", attrs)
    for i in report.items:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="gate",
            name=f"{i.number:02d} {i.title}",
            time=f"{i.seconds:.3f}",
        )
        if i.status == "FAIL":
            ET.SubElement(case, "failure", message=i.evidence[:500]).text = i.evidence
        elif i.status == "MANUAL":
            ET.SubElement(case, "skipped", message=i.evidence[:500])
        else:
            ET.SubElement(case, "system-out").text = i.evidence
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(report: GateReport, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    junit(report).write(path, encoding="utf-8", xml_declaration=True)


__all__ = ["CHECKLIST", "GateReport", "Item", "Options", "documentation_gaps", "run_gate"]
