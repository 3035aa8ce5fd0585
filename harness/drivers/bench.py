"""``harness bench``: how close the money functions come to what the server can do, and to
the source design's functions they replace.

One run, one server (a throwaway one unless ``--dsn``), one scratch database. pgbench drives
the SQL, so that no Python client sets the pace: a one-row UPDATE on one hot row and on rows
spread over many accounts (the limits), the source design's ``purchase_with_credits`` exactly
as written (installed as ``seed.purchase_with_credits`` in the bench database only) and the
project's, each on one hot workspace and spread over many, and the atomic full flow
(``purchase_leads_atomic``) spread. The stepwise flow is a sequence of client calls, so it
runs from Python: the same number of clients as threads, each with its own connection; the
atomic flow is run that way too, for a like-for-like comparison.

Every purchase buys a lead its workspace never bought (a shared sequence hands out lead
numbers), so each run measures purchases that succeed, never the cheaper refusal; the
count of purchases each run committed is checked against what the client reported.

Two more questions, each its own phase: how throughput follows the number of clients (the
hot and spread runs again at each of ``client_counts``), and whether a purchase costs more
as history piles up (a synthetic history of completed purchases, with their items,
reservations, ledger rows and email jobs, grown to 10 and 100 times its first size; at each
size one client's calls are timed, the buffers each call touches are counted, and the plan
of every statement of the functions is recorded with auto_explain).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from harness import db
from harness.db.migrations import migrate
from harness.errors import HarnessError, ProvisionError

SPREAD = 1000  # accounts / workspaces the spread runs draw from
# In the order they run: each of the project's runs right after its seed counterpart, so
# that the two see the same database and, as far as can be, the same machine.
PGBENCH_RUNS = (
    "update_hot",
    "seed_hot",
    "purchase_with_credits_hot",
    "update_spread",
    "seed_spread",
    "purchase_with_credits_spread",
    "atomic_spread",
)
PYTHON_RUNS = ("atomic_spread_python", "stepwise_spread_python")
RUNS = PGBENCH_RUNS + PYTHON_RUNS
RATIOS = {
    "purchase_with_credits_hot_vs_update_hot": ("purchase_with_credits_hot", "update_hot"),
    "purchase_with_credits_spread_vs_update_spread": (
        "purchase_with_credits_spread",
        "update_spread",
    ),
    "purchase_with_credits_hot_vs_seed_hot": ("purchase_with_credits_hot", "seed_hot"),
    "purchase_with_credits_spread_vs_seed_spread": (
        "purchase_with_credits_spread",
        "seed_spread",
    ),
    "atomic_vs_stepwise_spread": ("atomic_spread", "stepwise_spread_python"),
    "atomic_vs_stepwise_spread_python": ("atomic_spread_python", "stepwise_spread_python"),
}
# What the issue asks of the project's function, measured in one run.
TARGETS = {
    "purchase_with_credits_hot_vs_seed_hot": 1.2,
    "purchase_with_credits_spread_vs_seed_spread": 0.6,
    "atomic_vs_stepwise_spread": 3.0,
}
# The runs repeated at every client count, and the runs timed at every history size.
SCALING_RUNS = (
    "update_hot",
    "seed_hot",
    "purchase_with_credits_hot",
    "update_spread",
    "seed_spread",
    "purchase_with_credits_spread",
)
CLIENT_COUNTS = (1, 8, 32)
HISTORY_RUNS = ("purchase_with_credits_hot", "purchase_with_credits_spread", "atomic_spread")
HISTORY_FACTORS = (1, 10, 100)
HISTORY_BASE = 10_000  # purchases of history at the first size
STARTING_HISTORY = 10_000  # purchases of history the runs start from
HISTORY_CALLS = 1_000  # calls timed per run and size, by one client
HISTORY_CHUNK = 50_000  # history purchases written per statement
# Leads a run may buy at most, per second of duration (each purchase takes a new one).
LEADS_PER_SECOND = 25_000
LEAD_CHUNK = 100_000
ROUNDS = 3  # each run is split into this many rounds, taken in turn with the others
MIN_ROUND = 2  # seconds: a shorter round is mostly pgbench connecting


def script_path(name: str) -> Path:
    return Path(str(resources.files("harness.sql").joinpath("bench", f"{name}.sql")))


def bench_uuid(n: int) -> UUID:
    """The id the bench gives row number ``n`` (SQL's ``bench_uuid``)."""
    return UUID(hex=hashlib.md5(str(n).encode()).hexdigest())


def find_pgbench(bin_dir: Path | None) -> Path:
    """pgbench beside the server's binaries, else on PATH, else in Debian's folders."""
    candidates = []
    if bin_dir is not None:
        candidates.append(bin_dir / "pgbench")
    if found := shutil.which("pgbench"):
        candidates.append(Path(found))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        candidates += sorted(debian.glob("*/bin/pgbench"), reverse=True)
    for c in candidates:
        if c.exists() and os.access(c, os.X_OK):
            return c
    raise ProvisionError(
        "pgbench not found (beside the server, on PATH, or in "
        "/usr/lib/postgresql/*/bin): install PostgreSQL's client tools"
    )


# -- the data ------------------------------------------------------------------------


def prepare(dsn: str, leads: int) -> None:
    """Bench objects, SPREAD workspaces with members and credits, ``leads`` leads, and the
    source design's functions as written, in schema ``seed``."""
    from harness.money.service import sql_config

    q = db.queries("bench")
    with db.connect(dsn) as conn:
        conn.execute(q["setup"])
        conn.execute(q["accounts"], {"spread": SPREAD})
        conn.execute(q["config"], {"config": Jsonb(sql_config())})
        conn.execute(q["workspaces"], {"spread": SPREAD})
        conn.execute(q["credits"], {"spread": SPREAD})
        conn.execute(q["partner"])
        add_leads(conn, 1, leads)
        install_seed(conn)
        conn.execute("VACUUM ANALYZE")


def add_leads(conn: psycopg.Connection[Any], first: int, last: int) -> None:
    for start in range(first, last + 1, LEAD_CHUNK):
        conn.execute(
            db.query("bench", "leads"), {"first": start, "last": min(start + LEAD_CHUNK - 1, last)}
        )


def install_seed(conn: psycopg.Connection[Any]) -> None:
    """``examples/seed_as_written`` byte for byte, its functions created in schema ``seed``."""
    conn.execute(db.query("bench", "seed_schema"))
    try:
        conn.execute(script_path("seed_as_written").read_text())
    finally:
        conn.execute(db.query("bench", "seed_schema_done"))


# -- runs ----------------------------------------------------------------------------


def pgbench(
    pgbench_bin: Path,
    dsn: str,
    script: str,
    clients: int,
    seconds: int | None = None,
    *,
    transactions: int | None = None,
) -> dict[str, Any]:
    """One pgbench run of a script, for ``seconds`` or ``transactions`` per client: its tps,
    transaction count and mean latency."""
    params = db.check_dsn(dsn)
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = params["password"]
    cmd = [
        str(pgbench_bin),
        "--no-vacuum",
        "--protocol=prepared",
        f"--client={clients}",
        f"--jobs={min(clients, os.cpu_count() or 1)}",
        f"--time={seconds}" if transactions is None else f"--transactions={transactions}",
        f"--file={script_path(script)}",
        f"--define=spread={SPREAD}",
    ]
    for key, flag in (("host", "--host"), ("port", "--port"), ("user", "--username")):
        if params.get(key):
            cmd.append(f"{flag}={params[key]}")
    cmd.append(params.get("dbname") or "postgres")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    tps = re.search(r"^tps = ([\d.]+)", proc.stdout, re.M)
    done = re.search(r"actually processed: (\d+)", proc.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", proc.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", proc.stdout)
    if proc.returncode != 0 or not tps or not done:
        raise HarnessError(
            f"pgbench {script} failed: {(proc.stderr or proc.stdout).strip()[-600:]}"
        )
    return {
        "tps": float(tps.group(1)),
        "transactions": int(done.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
        "latency_ms": float(latency.group(1)) if latency else None,
    }


def python_flow(dsn: str, flow: str, clients: int, seconds: int, first_lead: int) -> dict:
    """``clients`` threads, each with its own connection, buying through PurchaseService."""
    from harness.errors import DomainError
    from harness.money.service import PurchaseRequest, PurchaseService

    leads = itertools.count(first_lead)
    lock = threading.Lock()
    done: list[int] = []
    refused: list[str] = []
    errors: list[BaseException] = []
    ready = threading.Barrier(clients + 1)  # every thread connected
    go = threading.Event()  # set once the deadline is known
    deadline = [0.0]

    def worker(i: int) -> None:
        import random

        rng = random.Random(i)
        pool = None
        n = 0
        try:
            pool = db.pool(dsn, min_size=1, max_size=1, application_name="harness-bench")
            service = PurchaseService(pool, flow)
            ready.wait()
            go.wait()
            while time.perf_counter() < deadline[0]:
                with lock:
                    lead = next(leads)
                w = bench_uuid(rng.randint(1, SPREAD))
                try:
                    service.purchase(
                        PurchaseRequest(workspace_id=w, user_id=w, lead_ids=(bench_uuid(lead),))
                    )
                    n += 1
                except DomainError as exc:
                    refused.append(exc.code)
        except threading.BrokenBarrierError:
            pass  # another thread failed to start; its error is reported
        except BaseException as exc:  # reported after the run
            errors.append(exc)
            ready.abort()
        finally:
            if pool is not None:
                pool.close()
            done.append(n)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    started = time.perf_counter()
    deadline[0] = started + seconds
    go.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise HarnessError(f"{flow} flow failed: {errors[0]!r}") from errors[0]
    total = sum(done)
    return {
        "tps": round(total / elapsed, 1),
        "transactions": total,
        "failed": len(refused),
        "last_lead": next(leads) - 1,
    }


class Bench:
    """One bench database and the pgbench found for its server: runs and their checks."""

    def __init__(self, dsn: str, pgbench_bin: Path, leads: int, note: Callable[..., None]):
        self.dsn = dsn
        self.pgbench_bin = pgbench_bin
        self.leads = leads
        self.note = note

    def ensure_leads(self, more: int) -> None:
        """At least ``more`` unused leads beyond the sequence's position."""
        with db.connect(self.dsn) as conn:
            used = db.scalar(conn, db.query("bench", "lead_position"))
            if used + more > self.leads:
                add_leads(conn, self.leads + 1, used + more)
                self.leads = used + more

    def run(
        self,
        name: str,
        clients: int,
        seconds: int | None = None,
        *,
        transactions: int | None = None,
    ) -> dict[str, Any]:
        """One run; a purchase run also counts the purchases it committed and carries a
        ``warning`` when they differ from the calls the client reported."""
        since = datetime.now(UTC)
        if name in PYTHON_RUNS:
            assert seconds is not None
            with db.connect(self.dsn) as conn:
                first = db.scalar(conn, db.query("bench", "next_lead"))
            run = python_flow(self.dsn, name.split("_")[0], clients, seconds, first)
            with db.connect(self.dsn) as conn:
                conn.execute(db.query("bench", "skip_leads"), {"last": run.pop("last_lead")})
        else:
            run = pgbench(
                self.pgbench_bin, self.dsn, name, clients, seconds, transactions=transactions
            )
        run["clients"] = clients
        if not name.startswith("update"):
            with db.connect(self.dsn) as conn:
                committed = db.scalar(conn, db.query("bench", "purchases_since"), {"since": since})
                used = db.scalar(conn, db.query("bench", "lead_position"))
            run["purchases_committed"] = committed
            if committed != run["transactions"] or used > self.leads:
                run["warning"] = (
                    f"{run['transactions']} calls but {committed} purchases "
                    "committed: some were refused, the figure is not clean"
                )
        return run


# -- profiling -----------------------------------------------------------------------


def stat_statements(dsn: str) -> bool:
    """Whether pg_stat_statements is loaded; creates its view in the bench database."""
    with db.connect(dsn) as conn:
        if not db.fetch_all(conn, "bench", "stat_statements_available")[0]["available"]:
            return False
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return True


def profiling(dsn: str) -> bool:
    """Turn on pg_stat_statements (nested statements too) for the bench database."""
    if not stat_statements(dsn):
        return False
    with db.connect(dsn) as conn:
        conn.execute("SET pg_stat_statements.track = 'all'")
        conn.execute(_alter_database_track(db.dbname_of(dsn)))
    return True


def _alter_database_track(dbname: str) -> psycopg.sql.Composed:
    from psycopg import sql

    return sql.SQL("ALTER DATABASE {} SET pg_stat_statements.track = 'all'").format(
        sql.Identifier(dbname)
    )


def profile_reset(dsn: str) -> None:
    with db.connect(dsn) as conn:
        conn.execute(db.query("bench", "stat_statements_reset"))


def profile_top(dsn: str, limit: int = 8) -> list[dict]:
    with db.connect(dsn) as conn:
        rows = db.fetch_all(conn, "bench", "stat_statements_top", {"limit": limit})
    return [{**r, "mean_ms": float(r["mean_ms"]), "total_ms": float(r["total_ms"])} for r in rows]


def top_call(dsn: str) -> dict[str, Any] | None:
    """The repeated statement of the last run: calls, mean ms and buffers per call."""
    with db.connect(dsn) as conn:
        rows = db.fetch_all(conn, "bench", "stat_statements_top_call")
    if not rows:
        return None
    r = rows[0]
    return {
        "calls": r["calls"],
        "mean_ms": float(r["mean_ms"]),
        "buffers_per_call": float(r["buffers_per_call"]),
    }


def explain_calls(dsn: str, workspace: int = 1) -> dict[str, list[str]] | None:
    """One call of each money function with auto_explain on: the plan of every statement
    it ran, nested ones included, with actual rows, times and buffers. None when the server
    will not load auto_explain (it needs a superuser)."""
    plans: dict[str, list[str]] = {}
    with db.connect(dsn) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        try:
            conn.execute(db.query("bench", "explain_session"))
        except psycopg.Error:
            return None
        for name in ("purchase_with_credits", "atomic"):
            notices.clear()
            conn.execute(db.query("bench", f"explain_{name}"), {"ws": workspace})
            plans["purchase_leads_atomic" if name == "atomic" else name] = [
                _plan_text(n) for n in notices if "plan:" in n
            ]
    return plans


def _plan_text(notice: str) -> str:
    """A plan notice without its leading ``duration: ...  plan:`` line."""
    head, _, plan = notice.partition("plan:")
    return f"{head.strip()}\n{plan.strip()}"


# -- the phases ----------------------------------------------------------------------


def client_scaling(
    bench: Bench,
    runs: Sequence[str],
    counts: Sequence[int],
    seconds: int,
    measured: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """tps of each run at each client count (the main runs stand for their own count),
    and the warnings of any run whose figure is not clean."""
    tps: dict[str, dict[str, float]] = {name: {} for name in runs}
    warnings: list[str] = []
    for n in counts:
        for name in runs:
            if name in measured and measured[name]["clients"] == n:
                tps[name][str(n)] = round(measured[name]["tps"], 1)
                continue
            bench.ensure_leads(seconds * LEADS_PER_SECOND)
            bench.note(f"bench: {name} at {n} clients ({seconds}s)")
            run = bench.run(name, n, seconds)
            tps[name][str(n)] = round(run["tps"], 1)
            if run.get("warning"):
                warnings.append(f"{name} at {n} clients: {run['warning']}")
    return {"client_counts": list(counts), "tps": tps, "warnings": warnings}


def grow_history(dsn: str, have: int, want: int) -> None:
    """Write history purchases ``have + 1 .. want`` (see bench.sql ``history_grow``)."""
    q = db.queries("bench")
    with db.connect(dsn) as conn:
        conn.execute(q["history_leads"], {"first": 1, "last": want // SPREAD + 1})
        for first in range(have + 1, want + 1, HISTORY_CHUNK):
            last = min(first + HISTORY_CHUNK - 1, want)
            with conn.transaction():
                try:
                    conn.execute(q["history_replica"])
                except psycopg.errors.InsufficientPrivilege as exc:
                    raise HarnessError(
                        "growing the bench's history needs a role that may set "
                        "session_replication_role (a superuser); run with --history 0"
                    ) from exc
                conn.execute(q["history_grow"], {"first": first, "last": last, "spread": SPREAD})
        conn.execute(q["history_sold"], {"leads": want // SPREAD + 1})
        conn.execute("VACUUM ANALYZE")


def history(
    bench: Bench, runs: Sequence[str], base: int, factors: Sequence[int], calls: int
) -> dict[str, Any]:
    """Per-call cost of ``runs`` after ``base`` times each factor purchases of history:
    one client's mean latency over ``calls`` calls, the buffers a call touches, and the
    plans of every statement of the money functions."""
    counted = stat_statements(bench.dsn)
    steps: list[dict[str, Any]] = []
    with db.connect(bench.dsn) as conn:
        have = db.scalar(conn, db.query("bench", "history_count"))
    for factor in factors:
        want = base * factor
        if want > have:
            bench.note(f"bench: history: writing purchases {have + 1:,}..{want:,}")
            started = time.perf_counter()
            grow_history(bench.dsn, have, want)
            bench.note(f"bench: history: written in {time.perf_counter() - started:.0f}s")
            have = want
        with db.connect(bench.dsn) as conn:
            purchases = db.scalar(conn, db.query("bench", "history_count"))
        step: dict[str, Any] = {"factor": factor, "purchases": purchases, "runs": {}}
        for name in runs:
            bench.ensure_leads(calls + 10)
            if counted:
                profile_reset(bench.dsn)
            bench.note(f"bench: history x{factor}: {name}, {calls} calls by 1 client")
            run = bench.run(name, 1, transactions=calls)
            figures: dict[str, Any] = {"tps": round(run["tps"], 1), "mean_ms": run["latency_ms"]}
            if counted and (top := top_call(bench.dsn)) is not None:
                figures["buffers_per_call"] = top["buffers_per_call"]
            if run.get("warning"):
                figures["warning"] = run["warning"]
            step["runs"][name] = figures
        if factor in (factors[0], factors[-1]):
            bench.ensure_leads(10)
            step["plans"] = explain_calls(bench.dsn, workspace=2)
        steps.append(step)
    return {"base": base, "calls": calls, "steps": steps}


# -- the command ---------------------------------------------------------------------


def split(seconds: int, rounds: int) -> list[int]:
    """``seconds`` in ``rounds`` whole parts of at least MIN_ROUND seconds (fewer rounds
    when it is too short), the longer parts first."""
    n = max(1, min(rounds, seconds // MIN_ROUND))
    return [seconds // n + (1 if i < seconds % n else 0) for i in range(n)]


def merge_round(run: dict[str, Any] | None, part: dict[str, Any], seconds: int) -> dict[str, Any]:
    """A run's figures over its rounds so far: tps weighted by each round's length, counts
    added up, each round's tps kept, the first warning kept."""
    if run is None:
        return {**part, "round_tps": [round(part["tps"], 1)], "seconds": seconds}
    total = run["seconds"] + seconds
    merged = {
        **run,
        "tps": (run["tps"] * run["seconds"] + part["tps"] * seconds) / total,
        "seconds": total,
        "round_tps": [*run["round_tps"], round(part["tps"], 1)],
    }
    for key in ("transactions", "failed", "purchases_committed"):
        if key in part:
            merged[key] = run.get(key, 0) + part[key]
    if part.get("latency_ms") is not None and run.get("latency_ms") is not None:
        merged["latency_ms"] = round(
            (run["latency_ms"] * run["seconds"] + part["latency_ms"] * seconds) / total, 3
        )
    if "warning" in part and "warning" not in run:
        merged["warning"] = part["warning"]
    return merged


def ratios_of(results: dict[str, float]) -> dict[str, float | None]:
    return {
        ratio: round(results[num] / results[den], 2)
        if results.get(num) and results.get(den)
        else None
        for ratio, (num, den) in RATIOS.items()
    }


def run_bench(
    srv: Any,
    dsn: str,
    clients: int,
    seconds: int,
    profile: bool = False,
    only: Iterable[str] | None = None,
    client_counts: Sequence[int] = CLIENT_COUNTS,
    history_base: int = HISTORY_BASE,
    history_calls: int = HISTORY_CALLS,
    migrations: list[str] | None = None,
    keep: bool = False,
    rounds: int = ROUNDS,
    note: Callable[..., None] = lambda *a: None,
) -> dict[str, Any]:
    """Every run, then the client counts and the history phases, as one JSON-able report."""
    chosen = set(only or RUNS)
    pgbench_bin = find_pgbench(srv.bin_dir)
    leads = seconds * LEADS_PER_SECOND + 20_000
    note(
        f"bench: preparing {SPREAD} workspaces, {leads:,} leads and {STARTING_HISTORY:,} "
        "purchases of history"
    )
    prepare(dsn, leads)
    # Runs start from a database with some history and fresh statistics, as a live one
    # has: from empty tables the planner would pick sequential scans that every later
    # call in the run repeats on a growing table (foreign-key checks included).
    grow_history(dsn, 0, STARTING_HISTORY)
    bench = Bench(dsn, pgbench_bin, leads, note)
    load_before = os.getloadavg()
    profiled = profile and profiling(dsn)
    # Each run is split into rounds taken in turn with the others, so that a change in the
    # machine's load during the bench falls on every run alike, not on whichever ran then.
    # (A profile is reset before each run, so a profiled bench takes one round.)
    slices = split(seconds, 1 if profiled else rounds)
    results: dict[str, float] = {}
    runs: dict[str, dict] = {}
    profiles: dict[str, list] = {}
    names = [n for n in RUNS if n in chosen]
    for r, length in enumerate(slices):
        for name in names:
            bench.ensure_leads(length * LEADS_PER_SECOND)
            if profiled:
                profile_reset(dsn)
            note(
                f"bench: {name} ({clients} clients, {length}s"
                + (f", round {r + 1} of {len(slices)})" if len(slices) > 1 else ")")
            )
            part = bench.run(name, clients, length)
            runs[name] = merge_round(runs.get(name), part, length)
            note(f"bench: {name}: {part['tps']:,.0f} tps")
            if profiled:
                profiles[name] = profile_top(dsn)
    for name, run in runs.items():
        run["tps"] = results[name] = round(run["tps"], 1)
    report: dict[str, Any] = {
        "server_version": db.server_version(dsn),
        "clients": clients,
        "duration_s": seconds,
        "rounds": len(slices),
        "cpus": os.cpu_count(),
        "provider": srv.provider,
        "pgbench": str(pgbench_bin),
        "results": results,
        "ratios": ratios_of(results),
        "targets": TARGETS,
        "runs": runs,
    }
    if profiled:
        report["profile"] = profiles
    scaling = [n for n in SCALING_RUNS if n in chosen]
    counts = sorted(set(client_counts))
    if scaling and counts != [clients]:
        report["client_scaling"] = client_scaling(bench, scaling, counts, seconds, runs)
    timed = [n for n in HISTORY_RUNS if n in chosen]
    if timed and history_base > 0:
        # A database of its own, so that the history is what the phase wrote, not what
        # the runs above left behind.
        with db.scratch_database(srv.dsn, prefix="harness_bench_history", keep=keep) as hdsn:
            note(f"bench: history phase in database {db.dbname_of(hdsn)}")
            migrate(hdsn, migrations)
            prepare(hdsn, 20_000)
            report["history"] = history(
                Bench(hdsn, pgbench_bin, 20_000, note),
                timed,
                history_base,
                HISTORY_FACTORS,
                history_calls,
            )
    report["load_average"] = {"start": list(load_before), "end": list(os.getloadavg())}
    return report


__all__ = [
    "CLIENT_COUNTS",
    "ROUNDS",
    "HISTORY_BASE",
    "PGBENCH_RUNS",
    "PYTHON_RUNS",
    "RATIOS",
    "RUNS",
    "TARGETS",
    "find_pgbench",
    "pgbench",
    "run_bench",
]
