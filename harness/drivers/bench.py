"""``harness bench``: how close the money functions come to what the server can do.

One run, one server (a throwaway one unless ``--dsn``), one scratch database. pgbench drives
the SQL, so that no Python client sets the pace: a one-row UPDATE on one hot row and on rows
spread over many accounts (the baselines), ``purchase_with_credits`` on one hot workspace
and spread over many, and the atomic full flow (``purchase_leads_atomic``) spread. The
stepwise flow is a sequence of client calls, so it runs from Python: the same number of
clients as threads, each with its own connection; the atomic flow is run that way too, for
a like-for-like comparison.

Every purchase buys a lead its workspace never bought (a shared sequence hands out lead
numbers), so each run measures purchases that succeed, never the cheaper refusal; the
count of purchases each run committed is checked against what the client reported.
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
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from harness import db
from harness.errors import HarnessError, ProvisionError

SPREAD = 1000  # accounts / workspaces the spread runs draw from
HOT_SCRIPTS = ("update_hot", "purchase_with_credits_hot")
PGBENCH_RUNS = (
    "update_hot",
    "update_spread",
    "purchase_with_credits_hot",
    "purchase_with_credits_spread",
    "atomic_spread",
)
PYTHON_RUNS = ("atomic_spread_python", "stepwise_spread_python")
RATIOS = {
    "purchase_with_credits_hot_vs_update_hot": ("purchase_with_credits_hot", "update_hot"),
    "purchase_with_credits_spread_vs_update_spread": (
        "purchase_with_credits_spread",
        "update_spread",
    ),
    "atomic_vs_stepwise_spread": ("atomic_spread", "stepwise_spread_python"),
}
# Leads a run may buy at most, per second of duration (each purchase takes a new one).
LEADS_PER_SECOND = 25_000


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
    """Bench objects, SPREAD workspaces with members and credits, and ``leads`` leads."""
    from harness.money.service import sql_config

    q = db.queries("bench")
    with db.connect(dsn) as conn:
        conn.execute(q["setup"])
        conn.execute(q["accounts"], {"spread": SPREAD})
        conn.execute(q["config"], {"config": Jsonb(sql_config())})
        conn.execute(q["workspaces"], {"spread": SPREAD})
        conn.execute(q["credits"], {"spread": SPREAD})
        conn.execute(q["partner"])
        step = 100_000
        for first in range(1, leads + 1, step):
            conn.execute(q["leads"], {"first": first, "last": min(first + step - 1, leads)})
        conn.execute("VACUUM ANALYZE")


# -- runs ----------------------------------------------------------------------------


def pgbench(pgbench_bin: Path, dsn: str, script: str, clients: int, seconds: int) -> dict:
    """One pgbench run of a script; its tps and transaction count."""
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
        f"--time={seconds}",
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
    if proc.returncode != 0 or not tps or not done:
        raise HarnessError(
            f"pgbench {script} failed: {(proc.stderr or proc.stdout).strip()[-600:]}"
        )
    return {
        "tps": float(tps.group(1)),
        "transactions": int(done.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
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


# -- profiling -----------------------------------------------------------------------


def profiling(dsn: str) -> bool:
    """Turn on pg_stat_statements (nested statements too) for the bench database."""
    with db.connect(dsn) as conn:
        if not db.fetch_all(conn, "bench", "stat_statements_available")[0]["available"]:
            return False
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SET pg_stat_statements.track = 'all'")
        conn.execute(_alter_database_track(db.dbname_of(dsn)))
    return True


def _alter_database_track(dbname: str):
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


# -- the command ---------------------------------------------------------------------


def run_bench(
    srv,
    dsn: str,
    clients: int,
    seconds: int,
    profile: bool = False,
    only: list[str] | None = None,
    note=lambda *a: None,
) -> dict[str, Any]:
    pgbench_bin = find_pgbench(srv.bin_dir)
    leads = seconds * LEADS_PER_SECOND + 20_000
    note(f"bench: preparing {SPREAD} workspaces and {leads:,} leads")
    prepare(dsn, leads)
    profiled = profile and profiling(dsn)
    results: dict[str, float] = {}
    runs: dict[str, dict] = {}
    profiles: dict[str, list] = {}
    names = [n for n in PGBENCH_RUNS + PYTHON_RUNS if not only or n in only]
    for name in names:
        if profiled:
            profile_reset(dsn)
        since = datetime.now(UTC)
        note(f"bench: {name} ({clients} clients, {seconds}s)")
        if name in PYTHON_RUNS:
            with db.connect(dsn) as conn:
                first = db.scalar(conn, db.query("bench", "next_lead"))
            run = python_flow(dsn, name.split("_")[0], clients, seconds, first)
            with db.connect(dsn) as conn:
                conn.execute(db.query("bench", "skip_leads"), {"last": run["last_lead"]})
        else:
            run = pgbench(pgbench_bin, dsn, name, clients, seconds)
        with db.connect(dsn) as conn:
            committed = db.scalar(conn, db.query("bench", "purchases_since"), {"since": since})
            used = db.scalar(conn, db.query("bench", "next_lead"))
        if not name.startswith("update"):
            run["purchases_committed"] = committed
            if committed != run["transactions"] or used > leads:
                run["warning"] = (
                    f"{run['transactions']} calls but {committed} purchases "
                    "committed: some were refused, the figure is not clean"
                )
        results[name] = round(run["tps"], 1)
        runs[name] = run
        note(f"bench: {name}: {results[name]:,.0f} tps")
        if profiled:
            profiles[name] = profile_top(dsn)
    ratios: dict[str, float | None] = {}
    for ratio, (num, den) in RATIOS.items():
        if results.get(num) and results.get(den):
            ratios[ratio] = round(results[num] / results[den], 2)
    ratios["atomic_vs_stepwise_spread_python"] = (
        round(results["atomic_spread_python"] / results["stepwise_spread_python"], 2)
        if results.get("atomic_spread_python") and results.get("stepwise_spread_python")
        else None
    )
    report = {
        "server_version": db.server_version(dsn),
        "clients": clients,
        "duration_s": seconds,
        "cpus": os.cpu_count(),
        "provider": srv.provider,
        "pgbench": str(pgbench_bin),
        "results": results,
        "ratios": ratios,
        "runs": runs,
    }
    if profiled:
        report["profile"] = profiles
    return report


__all__ = ["PGBENCH_RUNS", "PYTHON_RUNS", "find_pgbench", "pgbench", "run_bench"]
