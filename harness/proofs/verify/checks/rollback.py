"""rollback.*: the spec's Rollback Plan, rehearsed.

* ``rollback.round-trip``: every migration, in order, on an empty database: rolled back,
  the schema is what it was before; re-applied, what it was after (schema fingerprints).
* ``rollback.data-preserved``: with data loaded, the migrations after the base schema are
  rolled back and re-applied, newest first and one more each time: every row of every
  table that outlives the rollback is kept, and the schema comes back as it was.
* ``rollback.switch-back``: the purchase flows that worked at each migration level still
  work after rolling back to it; with everything after the base schema rolled back the
  legacy flow completes purchases; after re-applying the atomic flow does; a drill flips
  the flow flag while threads purchase and reports every failed purchase.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from harness import db
from harness.db.fingerprint import Fingerprint, diff, fingerprint
from harness.db.migrations import YOYO_TABLES, Migrator
from harness.money.invariants import check_invariants
from harness.money.service import PurchaseRequest, PurchaseService
from harness.proofs.verify.context import SCRATCH_PREFIX, CheckContext
from harness.proofs.verify.registry import CheckFailed, CheckSkipped, check
from harness.proofs.verify.world import World

MAX_LISTED = 12
# The flows probed at each migration level: the default, the one that calls
# purchase_with_credits (the atomic flow does not since 0006), and the switch-back target.
PROBED_FLOWS = ("atomic", "stepwise", "legacy")


# -- helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def empty_database(ctx: CheckContext) -> Iterator[str]:
    """A scratch database with no migrations applied, dropped afterwards unless --keep."""
    name = db.scratch_name(SCRATCH_PREFIX)
    dsn = db.create_database(ctx.admin_dsn, name)
    try:
        yield dsn
    finally:
        if not ctx.keep:
            db.drop_database(ctx.admin_dsn, name)


def _fp(dsn: str) -> Fingerprint:
    with db.connect(dsn) as conn:
        return fingerprint(conn)


def _listed(items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    more = f"; and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return "; ".join(shown) + more


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _step(action: Callable[[Any], Any], migration: Any, verb: str) -> None:
    try:
        action(migration)
    except Exception as exc:
        raise CheckFailed(f"{verb} {migration.id} failed: {_one_line(exc)}") from exc


# -- rollback.round-trip ------------------------------------------------------------------


@check("rollback.round-trip")
def round_trip(ctx: CheckContext) -> str:
    """For every migration in order, on a fresh empty database: rolling it back restores
    the schema fingerprint from before it, and re-applying it restores the one after it
    (catches a rollback that drops instead of restoring, and a CREATE OR REPLACE that
    resets SECURITY DEFINER, search_path or grants)."""
    problems: list[str] = []
    with empty_database(ctx) as dsn, Migrator(dsn, ctx.migration_dirs) as m:
        before = _fp(dsn)
        for migration in m.migrations:
            _step(m.backend.apply_one, migration, "applying")
            after = _fp(dsn)
            _step(m.backend.rollback_one, migration, "rolling back")
            problems += diff(before, _fp(dsn), f"after rolling back {migration.id}")
            _step(m.backend.apply_one, migration, "re-applying")
            before = _fp(dsn)  # also the state the next migration starts from
            problems += diff(after, before, f"after rolling back and re-applying {migration.id}")
        count = len(m.migrations)
    if problems:
        raise CheckFailed(_listed(problems))
    return (
        f"{count} migration(s), each applied, rolled back and re-applied in order on an "
        "empty database: the schema fingerprint matched before and after every step"
    )


# -- rollback.data-preserved --------------------------------------------------------------


def _tables(conn: psycopg.Connection) -> dict[str, list[str]]:
    rows = db.fetch_all(conn, "rollback", "tables", {"skip": list(YOYO_TABLES)})
    return {r["table_name"]: r["columns"] for r in rows}


def _rows(conn: psycopg.Connection, tables: dict[str, list[str]]) -> dict[str, list[dict]]:
    out = {}
    for table in tables:
        query = sql.SQL("SELECT to_jsonb(t) FROM {} t").format(sql.Identifier(table))
        out[table] = [r[0] for r in conn.execute(query).fetchall()]
    return out


def _digest(rows: list[dict], columns: list[str]) -> tuple[int, str]:
    """(row count, md5 over the rows' given columns, sorted) for one table."""
    texts = sorted(json.dumps([r.get(c) for c in columns], default=str) for r in rows)
    return len(texts), hashlib.md5("\n".join(texts).encode()).hexdigest()


@dataclass
class DataState:
    """Every business row, and the tables and columns they sit in."""

    tables: dict[str, list[str]]
    rows: dict[str, list[dict]]

    @classmethod
    def read(cls, conn: psycopg.Connection) -> DataState:
        tables = _tables(conn)
        return cls(tables, _rows(conn, tables))

    @property
    def total(self) -> int:
        return sum(len(r) for r in self.rows.values())


@dataclass
class Comparison:
    """What became of the starting rows at one point of a round trip."""

    lost: list[str] = field(default_factory=list)  # rows of surviving data changed
    dropped: list[str] = field(default_factory=list)  # tables/columns the rollback removed


def compare(start: DataState, now: DataState, dropped_before: set[str]) -> Comparison:
    """What happened to the starting rows. A table or column absent now was dropped by the
    rollback; one that was dropped earlier in this round trip and is back may have lost
    its rows with it (that is reported, not counted as a loss of surviving data)."""
    out = Comparison()
    for table, columns in start.tables.items():
        if table not in now.tables:
            out.dropped.append(f"table {table} ({len(start.rows[table])} rows)")
            continue
        gone = [c for c in columns if c not in now.tables[table]]
        for col in gone:
            values = sum(1 for r in start.rows[table] if r.get(col) is not None)
            out.dropped.append(f"column {table}.{col} ({values} values)")
        kept = [
            c for c in columns if c in now.tables[table] and f"{table}.{c}" not in dropped_before
        ]
        table_dropped = table in dropped_before
        if table_dropped:
            kept = []
        a = _digest(start.rows[table], kept)
        b = _digest(now.rows[table], kept)
        if a != b and kept:
            out.lost.append(
                f"{table}: {a[0]} rows (md5 {a[1][:8]}) became {b[0]} rows "
                f"(md5 {b[1][:8]}) over columns {', '.join(kept)}"
            )
        restored = [
            c
            for c in columns
            if c in now.tables[table] and (table_dropped or f"{table}.{c}" in dropped_before)
        ]
        if restored and _digest(start.rows[table], restored) != _digest(now.rows[table], restored):
            what = (
                f"table {table}"
                if table_dropped
                else f"column(s) {', '.join(f'{table}.{c}' for c in restored)}"
            )
            out.dropped.append(f"{what}: back empty after re-applying, its old values lost")
    return out


def _dropped_names(start: DataState, now: DataState) -> set[str]:
    names = set()
    for table, columns in start.tables.items():
        if table not in now.tables:
            names.add(table)
            names.update(f"{table}.{c}" for c in columns)
        else:
            names.update(f"{table}.{c}" for c in columns if c not in now.tables[table])
    return names


def load_scenario(conn: psycopg.Connection, dsn: str) -> str:
    """A small marketplace with purchases made the way the application makes them, through
    the service's atomic flow. Returns what was loaded, briefly."""
    world = World(conn)
    buyers = [world.workspace(balance="40.00", members=2) for _ in range(3)]
    leads = world.leads(18, "1.50") + world.leads(6, "2.25", max_sales=2)
    made = 0
    with contextlib.closing(db.pool(dsn, max_size=2)) as pool:
        svc = PurchaseService(pool, flow="atomic")
        for i, (ws, users) in enumerate(buyers):
            for j in range(3):
                chosen = tuple(leads[(i * 5 + j * 2) % len(leads) :][:2])
                svc.purchase(
                    PurchaseRequest(ws, users[j % 2], chosen, idempotency_key=f"rehearsal-{i}-{j}")
                )
                made += 1
            svc.top_up(ws, Decimal("5.00"), "rehearsal")
    return (
        f"{len(buyers)} workspaces, {len(leads)} leads, {made} purchases through the "
        "service's atomic flow"
    )


@check("rollback.data-preserved")
def data_preserved(ctx: CheckContext) -> str:
    """With a scenario's data loaded, rolling the migrations after the base schema back
    and forward again (newest first, one more each round) keeps every business row of every
    table that outlives the rollback (row count and md5 per table), and the schema comes
    back with the same fingerprint."""
    dsn = ctx.new_database(audit=False)
    with db.connect(dsn) as conn:
        loaded = load_scenario(conn, dsn)
        start = DataState.read(conn)
    start_fp = _fp(dsn)
    lost: list[str] = []
    notes: dict[str, str] = {}  # what a rollback dropped -> the migration that dropped it
    rounds = 0
    with Migrator(dsn, ctx.migration_dirs) as m:
        applied = list(m.backend.to_rollback(m.migrations))  # newest first
        base = m.migrations[0].id
        later = [mig for mig in applied if mig.id != base]
        if not later:
            raise CheckSkipped("no migration after the base schema to roll back")
        for depth in range(1, len(later) + 1):
            batch = later[:depth]
            label = f"{batch[-1].id}..{batch[0].id}" if depth > 1 else batch[0].id
            for mig in batch:
                _step(m.backend.rollback_one, mig, "rolling back")
            with db.connect(dsn) as conn:
                down = DataState.read(conn)
            dropped = _dropped_names(start, down)
            cmp = compare(start, down, set())
            lost += [f"rolled back {label}: {x}" for x in cmp.lost]
            for mig in reversed(batch):
                _step(m.backend.apply_one, mig, "re-applying")
            with db.connect(dsn) as conn:
                up = DataState.read(conn)
            cmp_up = compare(start, up, dropped)
            lost += [f"rolled back and re-applied {label}: {x}" for x in cmp_up.lost]
            for item in cmp.dropped + cmp_up.dropped:
                notes.setdefault(item, batch[-1].id)
            lost += diff(start_fp, _fp(dsn), f"after rolling back and re-applying {label}")
            rounds += 1
            if lost:  # the database no longer matches the start: later rounds cannot tell
                break
    if lost:
        raise CheckFailed(_listed(lost))
    evidence = (
        f"{loaded}; {start.total} rows in {len(start.tables)} tables; {rounds} "
        f"round(s) of rollback and re-apply of {', '.join(m.id for m in later)}: "
        "every row of every surviving table and column kept (count and md5), "
        "schema fingerprint restored"
    )
    if notes:
        evidence += (
            "; dropped by the rollback of the migration that creates them, so "
            "their values do not come back: "
            + _listed([f"{item} by {mig}" for item, mig in notes.items()])
        )
    return evidence


# -- rollback.switch-back -----------------------------------------------------------------


class Prober:
    """Makes one purchase of one fresh lead through a given flow, on demand."""

    def __init__(self, conn: psycopg.Connection, services: dict[str, Any], request: Any) -> None:
        world = World(conn)
        self.ws, (self.user,) = world.workspace(balance="500.00")
        self.leads = iter(world.leads(200, "1.00"))
        self.services, self.request = services, request

    def probe(self, flow: str) -> str | None:
        """None when the purchase completed, else why it did not."""
        try:
            self.services[flow].purchase(
                self.request(
                    self.ws,
                    self.user,
                    (next(self.leads),),
                    idempotency_key=f"probe-{uuid.uuid4().hex[:12]}",
                )
            )
        except Exception as exc:  # any refusal or error is what the probe reports
            return f"{type(exc).__name__}: {_one_line(exc)}"
        return None


@dataclass
class Drill:
    """What the flag-flip drill saw."""

    purchases: int = 0
    by_flow: dict[str, int] = field(default_factory=dict)
    flips: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def flip_drill(
    dsn: str,
    services: dict[str, Any],
    request: Any,
    *,
    threads: int = 4,
    per_thread: int = 10,
    flips: tuple[str, ...] = ("legacy", "atomic", "legacy", "atomic"),
) -> Drill:
    """Threads purchase one lead at a time (each its own workspace, enough credits) while
    the flow flag flips; every purchase is expected to complete."""
    with db.connect(dsn) as conn:
        world = World(conn)
        buyers = [
            (world.workspace(balance="100.00"), world.leads(per_thread, "1.00"))
            for _ in range(threads)
        ]
    flag = {"flow": "atomic"}
    drill = Drill()
    lock = threading.Lock()
    start = threading.Barrier(threads + 1)

    def buyer(ws: uuid.UUID, user: uuid.UUID, leads: list[uuid.UUID]) -> None:
        start.wait()
        for lead in leads:
            flow = flag["flow"]
            try:
                services[flow].purchase(request(ws, user, (lead,), idempotency_key=f"drill-{lead}"))
                with lock:
                    drill.purchases += 1
                    drill.by_flow[flow] = drill.by_flow.get(flow, 0) + 1
            except Exception as exc:
                with lock:
                    drill.failures.append(
                        f"{flow} purchase of lead {lead} for workspace "
                        f"{ws}: {type(exc).__name__}: {_one_line(exc)}"
                    )
            time.sleep(0.005)

    workers = [
        threading.Thread(target=buyer, args=(ws, users[0], leads), daemon=True)
        for (ws, users), leads in buyers
    ]
    for w in workers:
        w.start()
    start.wait()
    total = threads * per_thread
    deadline = time.monotonic() + 60
    for n, flow in enumerate(flips, 1):
        # Flip after each equal share of the run, so every flow takes part mid-run.
        while (
            drill.purchases + len(drill.failures) < total * n // (len(flips) + 1)
            and time.monotonic() < deadline
            and any(w.is_alive() for w in workers)
        ):
            time.sleep(0.002)
        flag["flow"] = flow
        drill.flips.append(flow)
    for w in workers:
        w.join(timeout=60)
    with db.connect(dsn) as conn:
        for (ws, _), _leads in buyers:
            balance = World(conn).balance(ws)
            bought = db.fetch_all(conn, "rollback", "reserved", {"workspace_id": ws})[0]["leads"]
            if balance != Decimal("100.00") - bought:
                drill.failures.append(
                    f"workspace {ws}: balance {balance} after {bought} "
                    "purchases of 1.00 from 100.00"
                )
        drill.failures += [f"invariant {v.name}: {v.detail}" for v in check_invariants(conn)]
    return drill


@check("rollback.switch-back")
def switch_back(ctx: CheckContext) -> str:
    """Rolling back to any migration level keeps every purchase flow that worked at that
    level; with everything after the base schema rolled back the legacy flow
    (HARNESS_PURCHASE_FLOW=legacy) completes purchases; after re-applying, atomic does
    again; flipping the flow flag during a concurrent run fails no purchase."""
    dsn = ctx.new_database(audit=False)
    problems: list[str] = []
    with (
        contextlib.closing(db.pool(dsn, max_size=6)) as pool,
        db.connect(dsn) as conn,
        Migrator(dsn, ctx.migration_dirs) as m,
    ):
        services = {flow: PurchaseService(pool, flow=flow) for flow in PROBED_FLOWS}
        prober = Prober(conn, services, PurchaseRequest)
        base = m.migrations[0].id
        later = [mig for mig in m.backend.to_rollback(m.migrations) if mig.id != base]
        # Forward, one migration at a time: which flows work at each level.
        for mig in later:
            _step(m.backend.rollback_one, mig, "rolling back")
        levels = [base] + [mig.id for mig in reversed(later)]
        worked: dict[str, dict[str, str | None]] = {
            base: {f: prober.probe(f) for f in PROBED_FLOWS}
        }
        for mig in reversed(later):
            _step(m.backend.apply_one, mig, "applying")
            worked[mig.id] = {f: prober.probe(f) for f in PROBED_FLOWS}
        top = levels[-1]
        if worked[top]["atomic"] is not None:
            problems.append(
                f"with every migration applied the atomic flow fails: {worked[top]['atomic']}"
            )
        # Back down, one migration at a time: the same flows must still work.
        for mig, level in zip(later, reversed(levels[:-1]), strict=True):
            _step(m.backend.rollback_one, mig, "rolling back")
            for flow in PROBED_FLOWS:
                if worked[level][flow] is None:
                    why = prober.probe(flow)
                    if why is not None:
                        problems.append(
                            f"after rolling back {mig.id} the {flow} flow, which "
                            f"worked before {mig.id} was applied, fails: {why}"
                        )
        legacy = prober.probe("legacy")
        if legacy is not None:
            problems.append(
                f"with everything after {base} rolled back the legacy flow "
                f"fails (it needs something the new migrations add): {legacy}"
            )
        for mig in reversed(later):
            _step(m.backend.apply_one, mig, "re-applying")
        atomic = prober.probe("atomic")
        if atomic is not None:
            problems.append(f"after re-applying every migration the atomic flow fails: {atomic}")
    # The drill on a database of its own: purchases made above while the outbox was
    # rolled back have (rightly) no confirmation job, which is not the drill's business.
    drill_dsn = ctx.new_database(audit=False)
    with contextlib.closing(db.pool(drill_dsn, max_size=6)) as pool:
        services = {flow: PurchaseService(pool, flow=flow) for flow in PROBED_FLOWS}
        drill = flip_drill(drill_dsn, services, PurchaseRequest)
    problems += [f"drill: {f}" for f in drill.failures]
    if problems:
        raise CheckFailed(_listed(problems))
    table = ", ".join(
        f"{lvl}: " + "/".join(f for f in PROBED_FLOWS if worked[lvl][f] is None) for lvl in levels
    )
    return (
        f"flows that work at each level, forward and after rolling back to it: {table}; "
        f"legacy completes purchases with {', '.join(m.id for m in later)} rolled back; "
        f"atomic again after re-applying; drill: {drill.purchases} purchases by 4 "
        f"threads ({', '.join(f'{k} {v}' for k, v in sorted(drill.by_flow.items()))}), "
        f"flow flipped {' -> '.join(['atomic', *drill.flips])} mid-run, none failed"
    )
