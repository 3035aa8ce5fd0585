"""faults.*: what a crash or a refusal leaves behind. A backend killed in the middle of a
purchase must take its whole purchase with it; a stepwise flow cut after any step must be
repaired by reconcile until every invariant holds; a purchase refused for a reason it
could know before the debit must leave nothing behind, in every flow."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from harness import db
from harness.money import invariants, service
from harness.money import reconcile as reconcile_mod
from harness.proofs.verify import attacks as A
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


# -- refusals knowable before the debit --------------------------------------------------------

RELAY = "victim@example.com, evil@attacker.example"
CRLF = "victim@example.com\r\nBcc: evil@attacker.example"


def _purchase_cases(w: dict[str, Any]) -> list[tuple[str, dict[str, Any], set[str]]]:
    """(what, the request's fields, the codes it may be refused with)."""
    ok = {"workspace_id": w["ws"], "user_id": w["user"], "lead_ids": (w["leads"][0],)}
    keys = [
        ("an empty idempotency key", ""),
        ("a blank idempotency key", "   "),
        ("a 256-character idempotency key", "k" * 256),
        ("a 10,000-character idempotency key", "k" * 10_000),
        ("an idempotency key with a NUL", "a\x00b"),
        ("an idempotency key with a newline", "a\nb"),
        ("an idempotency key that is not text", 42),
    ]
    cases = [
        (what, {**ok, "idempotency_key": key}, {"invalid_idempotency_key"}) for what, key in keys
    ]
    cases += [
        (
            "a buyer whose address is several addresses",
            {**ok, "user_id": w["relay"]},
            {"invalid_email"},
        ),
        ("a buyer whose address holds CR/LF", {**ok, "user_id": w["crlf"]}, {"invalid_email"}),
        ("an unknown user", {**ok, "user_id": uuid.uuid4()}, {"not_authorized"}),
        ("a user of another workspace", {**ok, "user_id": w["outsider"]}, {"not_authorized"}),
        ("an unknown workspace", {**ok, "workspace_id": uuid.uuid4()}, {"not_authorized"}),
        ("a malformed workspace id", {**ok, "workspace_id": "not-a-uuid"}, {"invalid_request"}),
        ("a malformed user id", {**ok, "user_id": 7}, {"invalid_request"}),
        ("a malformed lead id", {**ok, "lead_ids": ("not-a-uuid",)}, {"invalid_request"}),
        ("no leads", {**ok, "lead_ids": ()}, {"no_leads_selected"}),
        ("a lead twice", {**ok, "lead_ids": (w["leads"][0], w["leads"][0])}, {"duplicate_leads"}),
        ("an unknown lead", {**ok, "lead_ids": (uuid.uuid4(),)}, {"leads_not_found"}),
        ("a lead priced below the minimum", {**ok, "lead_ids": (w["cheap"],)}, {"invalid_amount"}),
    ]
    return [
        (what, {"idempotency_key": f"k-{i}", **fields}, codes)
        for i, (what, fields, codes) in enumerate(cases)
    ]


def _top_up_cases(w: dict[str, Any]) -> list[tuple[str, dict[str, Any], set[str]]]:
    ok = {"workspace_id": w["ws"], "amount": Decimal("5.00"), "package": "starter"}
    return [
        ("a top-up for several addresses", {**ok, "email": RELAY}, {"invalid_email"}),
        ("a top-up whose address holds CR/LF", {**ok, "email": CRLF}, {"invalid_email"}),
        (
            "a top-up of an unknown workspace",
            {**ok, "workspace_id": uuid.uuid4()},
            {"unknown_workspace"},
        ),
        (
            "a top-up with a 256-character payment reference",
            {**ok, "payment_reference": "r" * 256},
            {"invalid_request"},
        ),
        ("a top-up with an empty package", {**ok, "package": ""}, {"invalid_request"}),
        (
            "a top-up of a fraction of a cent",
            {**ok, "amount": Decimal("0.001")},
            {"invalid_amount"},
        ),
    ]


def _sql_cases(w: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The flows' SQL entry points called directly (an API may call them): (what, the
    query, its parameters). Each answers a refusal, or raises; none may change a row."""
    lead = w["leads"][0]
    base = {"ws": w["ws"], "user": w["user"], "leads": [lead], "price": Decimal("1.00")}
    cases = [
        ("a user of another workspace", {**base, "user": w["outsider"]}),
        ("an unknown user", {**base, "user": uuid.uuid4()}),
        ("no leads", {**base, "leads": []}),
        ("a lead twice", {**base, "leads": [lead, lead], "price": Decimal("2.00")}),
        ("an unknown lead", {**base, "leads": [uuid.uuid4()]}),
        ("a total that is not the leads' price", {**base, "price": Decimal("0.50")}),
        ("a price with a fraction of a cent", {**base, "price": Decimal("1.001")}),
        ("more than the balance", {**base, "leads": [w["dear"]], "price": Decimal("500.00")}),
    ]
    out = [(f"purchase_with_credits: {what}", "sql-debit", p) for what, p in cases]
    if w["atomic"]:
        out += [(f"purchase_leads_atomic: {what}", "sql-atomic", p) for what, p in cases]
    return out


@check("faults.no-charge-then-fail")
def no_charge_then_fail(ctx) -> str:
    """Every reason a purchase can be refused that is knowable before the debit (a bad
    idempotency key, a buyer address that is not one mailbox, an unknown or outside user,
    an unknown workspace, malformed ids, no, repeated or unknown leads, a price below the
    minimum), provoked in every flow through the service, and for top-ups: each is
    refused with its stable code and leaves every table and sequence as it was (no debit,
    no purchase row, no key left processing, no email job). The flows' SQL entry points,
    called directly with the refusals they can know, change nothing either."""
    from harness.errors import HarnessError
    from harness.money import service

    dsn = ctx.new_database(audit=False)
    with ctx.connect(dsn) as conn:
        world = World(conn)
        ws, (user,) = world.workspace(balance="10.00")
        w: dict[str, Any] = {
            "ws": ws,
            "user": user,
            "outsider": world.workspace(balance="10.00")[1][0],
            "relay": db.scalar(
                conn, q("faults", "insert-member"), {"workspace_id": ws, "email": RELAY}
            ),
            "crlf": db.scalar(
                conn, q("faults", "insert-member"), {"workspace_id": ws, "email": CRLF}
            ),
            "leads": world.leads(2, "1.00"),
            "dear": world.leads(1, "500.00")[0],
            "cheap": db.scalar(conn, q("faults", "insert-cheap-lead")),
            "atomic": bool(db.scalar(conn, q("world", "has-atomic"))),
        }
    flows = ["atomic", "stepwise", "legacy"] if w["atomic"] else ["legacy"]
    problems: list[str] = []
    tried: Counter = Counter()
    pool = db.pool(dsn, min_size=1, max_size=2)
    safe = db.connect(dsn, options=A.SAFE_OPTIONS)
    try:
        statement = A.digest_statement(safe)
        baseline = A.digests(safe, statement)

        def judge(what: str, expected: set[str], run) -> None:
            nonlocal baseline
            outcome = "changed nothing"
            try:
                run()
                outcome = "was accepted"
                problems.append(f"{what}: accepted")
            except HarnessError as exc:
                tried[getattr(exc, "code", type(exc).__name__)] += 1
                if expected and getattr(exc, "code", None) not in expected:
                    problems.append(
                        f"{what}: refused with {getattr(exc, 'code', exc)!r}, "
                        f"not {sorted(expected)}"
                    )
            except Exception as exc:  # raw errors out of the service are findings too
                problems.append(f"{what}: {type(exc).__name__} out of the service")
            now = A.digests(safe, statement)
            moved = A.changed(baseline, now)
            if moved and outcome != "was accepted":
                problems.append(f"{what}: refused after writing to {', '.join(moved)}")
            baseline = now

        for flow in flows:
            svc = service.PurchaseService(pool, flow=flow)
            for what, fields, expected in _purchase_cases(w):
                judge(
                    f"{flow}, {what}",
                    expected,
                    functools.partial(svc.purchase, service.PurchaseRequest(**fields)),
                )
        svc = service.PurchaseService(pool, flow=flows[0])
        for what, fields, expected in _top_up_cases(w):
            judge(what, expected, functools.partial(svc.top_up, **fields))
        cfg = Jsonb(service.sql_config())
        with ctx.connect(dsn) as conn:
            for what, name, params in _sql_cases(w):
                try:
                    answer = conn.execute(q("faults", name), {**params, "config": cfg}).fetchone()
                    if answer is None or answer[0] not in (False, "refused"):
                        problems.append(f"{what}: not refused ({answer})")
                except psycopg.Error:
                    pass  # raising is refusing: the transaction is rolled back
                tried["sql refusals"] += 1
                now = A.digests(safe, statement)
                moved = A.changed(baseline, now)
                if moved:
                    problems.append(f"{what}: refused after writing to {', '.join(moved)}")
                baseline = now
    finally:
        safe.close()
        pool.close()
    if problems:
        raise CheckFailed(f"{len(problems)} problems: " + "; ".join(problems[:10]))
    return (
        f"{sum(tried.values())} refusals in {'/'.join(flows)}, top-ups and the SQL entry "
        f"points, each with its code and no row or sequence changed: {dict(sorted(tried.items()))}"
    )
