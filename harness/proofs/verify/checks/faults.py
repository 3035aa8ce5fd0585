"""faults.*: what a crash leaves behind. A backend killed in the middle of a purchase
must take its whole purchase with it; a stepwise flow cut after any step must be
repaired by reconcile until every invariant holds."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import psycopg

from harness import db
from harness.money import invariants, service
from harness.money import reconcile as reconcile_mod
from harness.proofs.verify.context import q
from harness.proofs.verify.race import describe, run_race
from harness.proofs.verify.registry import CheckFailed, CheckInconclusive, check
from harness.proofs.verify.world import World, money, purchase

STEPS = ("debit", "items", "mark_sold", "complete")


@check("faults.terminate-mid-purchase")
def terminate_mid_purchase(ctx) -> str:
    """12 sessions buy in loops while their backends are terminated (pg_terminate_backend)
    after purchase_with_credits returned and before COMMIT: every balance equals its
    start minus the purchases present, every present purchase was committed (or its
    commit was cut, and then it is there whole), and none is half-done."""
    rng = ctx.rng("faults.terminate-mid-purchase")
    dsn = ctx.new_database()
    n, rounds, start = 12, 6, Decimal("20.00")
    with ctx.connect(dsn) as conn:
        world = World(conn)
        buyers = [world.workspace(balance=start) for _ in range(n)]
        leads = [world.leads(rounds, "1.00") for _ in range(n)]
    pids: list[int] = []
    victims: set[int] = set()
    done = threading.Event()

    def buy(c, i, r):
        if r == 0:
            pids.append(db.scalar(c, q("world", "backend-pid")))
        ws, (user,) = buyers[i]
        return purchase(c, ws, user, [leads[i][r]], Decimal("1.00"))

    def killer() -> None:
        with ctx.connect(dsn) as kc:
            while not done.is_set():
                time.sleep(rng.uniform(0.02, 0.06))
                alive = [p for p in pids if p not in victims]
                if not alive:
                    continue
                chosen = rng.sample(alive, k=min(len(alive), rng.randint(1, 2)))
                for pid, killed in kc.execute(q("world", "terminate-sleepers"), (chosen,)):
                    if killed:
                        victims.add(pid)
                if len(victims) >= n // 2:
                    return

    k = threading.Thread(target=killer, name="killer")
    k.start()
    try:
        outcomes, seen = run_race(dsn, n, None, rounds=rounds, between=buy, hold=0.05)
    finally:
        done.set()
        k.join()
    if not victims:
        raise CheckInconclusive("no backend was terminated mid-purchase")
    committed = {o.value.purchase_id for o in outcomes if o.committed and o.value.success}
    cut = {o.value.purchase_id for o in outcomes if o.error is not None and o.value}
    odd = [
        o
        for o in outcomes
        if o.error is not None and not isinstance(o.error, psycopg.OperationalError)
    ]
    problems = [
        f"a surviving session raised {describe(o.error)}" for o in odd[:1] if o.error is not None
    ]
    with ctx.connect(dsn) as conn:
        rows = {r[0]: r for r in conn.execute(q("world", "purchases")).fetchall()}
        balances = {r[0]: r[1] for r in conn.execute(q("world", "balances"))}
        reserved = {
            r[0]: (r[1], r[2]) for r in conn.execute(q("world", "reservations-per-purchase"))
        }
        ledger = list(conn.execute(q("world", "ledger-per-workspace")))
    missing = committed - set(rows)
    if missing:
        problems.append(f"{len(missing)} committed purchases are gone")
    unexplained = set(rows) - committed - cut
    if unexplained:
        problems.append(f"{len(unexplained)} purchases present that no session committed")
    for pid, (total_leads, n_res) in reserved.items():
        if total_leads != n_res:
            problems.append(
                f"purchase {str(pid)[:8]} half-done: {n_res} reservations for {total_leads} leads"
            )
            break
    for ws, _members in buyers:
        spent = sum((r[6] for r in rows.values() if r[1] == ws), Decimal(0))
        if balances.get(ws) != start - spent:
            problems.append(
                f"workspace {str(ws)[:8]}: balance {money(balances.get(ws))}, "
                f"purchases present say {money(start - spent)}"
            )
            break
    problems += [
        f"{str(w)[:8]} balance {money(b)} but ledger {money(led)}"
        for w, b, led, _ in ledger
        if b != led
    ][:1]
    if problems:
        raise CheckFailed("; ".join(problems))
    kinds = Counter(
        "committed" if o.committed else "killed" if o.error else "other" for o in outcomes
    )
    return (
        f"{len(victims)} backends terminated mid-transaction; {dict(kinds)}; "
        f"{len(rows)} purchases present, all whole, balances and ledger agree"
    )


@check("faults.stepwise-reconcile")
def stepwise_reconcile(ctx) -> str:
    """The stepwise purchase flow stopped after each step (debit, items, mark_sold,
    complete), then reconciled: every invariant holds and no purchase stays pending."""
    from harness import db

    dsn = ctx.new_database()
    with ctx.connect(dsn) as conn:
        world = World(conn)
        buyers = [world.workspace(balance="10.00") for _ in STEPS]
        leads = [world.leads(2, "1.50") for _ in STEPS]
    pool = db.pool(dsn, min_size=1, max_size=4)
    try:
        svc = service.PurchaseService(pool, flow="stepwise")
        left = []
        for (ws, (user,)), lead_ids, step in zip(buyers, leads, STEPS, strict=True):
            req = service.PurchaseRequest(workspace_id=ws, user_id=user, lead_ids=tuple(lead_ids))
            left.append((step, svc.purchase_and_crash(req, after=step)))
        report = reconcile_mod.reconcile(pool, older_than=timedelta(0))
    finally:
        pool.close()
    with ctx.connect(dsn) as conn:
        violations = invariants.check_invariants(conn, pending_timeout=timedelta(0))
    if violations:
        raise CheckFailed("after crash and reconcile: " + invariants.summary(violations))
    cut = ", ".join(f"{s} -> {str(p)[:8] if p else 'nothing'}" for s, p in left)
    return (
        f"crashed after {cut}; reconcile completed {len(report.completed)}, refunded "
        f"{len(report.refunded)}, queued {len(report.emails_queued)} emails; every "
        "invariant holds, nothing pending"
    )
