"""concurrency.*: races between real sessions. Every call must answer success or a
documented refusal (a raised deadlock, check violation or serialization failure fails
the check), the outcome must be exactly what the balances allow, and each check must
observe more than one transaction in flight at once or it reports an error."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from harness import db
from harness.config import DB_MESSAGES
from harness.money import invariants, service
from harness.money.service import sql_config
from harness.proofs.verify.context import q
from harness.proofs.verify.race import describe, run_race
from harness.proofs.verify.registry import CheckFailed, CheckInconclusive, CheckSkipped, check
from harness.proofs.verify.world import (
    Answer,
    Call,
    World,
    mark_sold,
    money,
    purchase,
    purchase_atomic,
    waits,
)

HOT_WALLET_SESSIONS = 24


def _require_concurrency(seen: int) -> None:
    if seen < 2:
        raise CheckInconclusive(
            f"at most {seen} transaction(s) of the check were seen in flight at once; the "
            "race did not happen, so nothing was proved"
        )


def _raised(outcomes) -> None:
    errors = [o for o in outcomes if o.error is not None]
    if errors:
        kinds = Counter(describe(o.error).split(":")[0] for o in errors)
        raise CheckFailed(
            f"{len(errors)} of {len(outcomes)} racing calls raised instead of "
            f"answering ({dict(kinds)}); first: {describe(errors[0].error)}"
        )


def _ledger_mismatches(conn) -> list[str]:
    bad = []
    for ws, balance, ledger, _spent in conn.execute(q("world", "ledger-per-workspace")):
        if balance != ledger:
            bad.append(f"{str(ws)[:8]} balance {money(balance)} but ledger {money(ledger)}")
    return bad


@check("concurrency.hot-wallet")
def hot_wallet(ctx) -> str:
    """24 sessions released by a barrier buy from one workspace at once: exactly
    floor(balance / price) succeed, the rest answer 'Insufficient credits', the balance
    never goes negative and equals what the ledger says. The race is run through
    purchase_with_credits and again through purchase_leads_atomic, which has its own copy
    of the debit (the purchase route runs it)."""
    results = [_hot_wallet(ctx, "purchase_with_credits")]
    with ctx.connect(ctx.new_database(audit=False)) as conn:
        has_atomic = conn.execute(q("world", "has-atomic")).fetchone()[0]
    if has_atomic:
        results.append(_hot_wallet(ctx, "purchase_leads_atomic"))
    return "; ".join(results)


def _hot_wallet(ctx, entry: str) -> str:
    dsn = ctx.new_database()
    balance, price = Decimal("5.00"), Decimal("0.70")
    with ctx.connect(dsn) as conn:
        world = World(conn)
        ws, (user,) = world.workspace(balance=balance)
        leads = world.leads(HOT_WALLET_SESSIONS, price)
    config = Jsonb(sql_config())

    def buy(c, i):
        if entry == "purchase_with_credits":
            return purchase(c, ws, user, [leads[i]], price)
        return Answer.from_atomic(purchase_atomic(c, ws, user, [leads[i]], price, config))

    outcomes, seen = run_race(dsn, HOT_WALLET_SESSIONS, buy)
    _raised(outcomes)
    _require_concurrency(seen)
    allowed = int(balance // price)
    wins = [o for o in outcomes if o.value.success and o.committed]
    refusals = Counter(o.value.error_message for o in outcomes if not o.value.success)
    with ctx.connect(dsn) as conn:
        final = World(conn).balance(ws)
        purchases = [r for r in conn.execute(q("world", "purchases")).fetchall() if r[1] == ws]
        ledger = _ledger_mismatches(conn)
    want_final = balance - allowed * price
    problems = []
    if len(wins) != allowed:
        problems.append(f"{len(wins)} purchases succeeded, the balance allows {allowed}")
    if set(refusals) - {"Insufficient credits"}:
        problems.append(f"refusals other than 'Insufficient credits': {dict(refusals)}")
    if final is None or final < 0 or final != want_final:
        problems.append(f"final balance {money(final)}, want {money(want_final)}")
    if (
        len(purchases) != len(wins)
        or sum((p[6] for p in purchases), Decimal(0)) != len(wins) * price
    ):
        problems.append(f"{len(purchases)} purchase rows for {len(wins)} successes")
    problems += ledger
    if problems:
        raise CheckFailed(
            f"{entry}: {HOT_WALLET_SESSIONS} sessions x {price} on {balance}: "
            + "; ".join(problems)
        )
    return (
        f"{entry}: {HOT_WALLET_SESSIONS} sessions x {price} on {balance}: {len(wins)} "
        f"succeeded (= floor), {sum(refusals.values())} 'Insufficient credits', final "
        f"{money(final)}; {seen} transactions seen in flight at once"
    )


SETTLE = {"refund": ("refund", "refunded"), "complete": ("complete", "completed")}


@check("concurrency.settle-once")
def settle_once(ctx) -> str:
    """A pending purchase whose items and sales are recorded is settled once when
    complete_purchase and refund_purchase arrive together: with its row held, the first
    caller is queued, then the second; released, the first settles it and the second
    answers the status it finds, in both orders. The credits follow the status (given
    back when refunded, spent when completed) and every invariant holds. A caller that
    reads the status without locking the row settles a purchase the other already has."""
    dsn = ctx.new_database()
    with ctx.connect(dsn) as conn:
        world = World(conn)
        buyers = [world.workspace(balance="10.00") for _ in SETTLE]
        leads = [world.leads(2, "1.50") for _ in SETTLE]
    pool = db.pool(dsn, min_size=1, max_size=2)
    try:
        svc = service.PurchaseService(pool, flow="stepwise")
        pending = [
            svc.purchase_and_crash(
                service.PurchaseRequest(workspace_id=ws, user_id=user, lead_ids=tuple(ids)),
                after="mark_sold",
            )
            for (ws, (user,)), ids in zip(buyers, leads, strict=True)
        ]
    finally:
        pool.close()
    problems, done = [], []
    for first, (ws, _), pid in zip(SETTLE, buyers, pending, strict=True):
        if pid is None:
            raise CheckInconclusive("the stepwise flow left no pending purchase to settle")
        second = "complete" if first == "refund" else "refund"
        answers = _settle_race(ctx, dsn, pid, (first, second))
        want = SETTLE[first][1]
        with ctx.connect(dsn) as conn:
            status = db.scalar(conn, q("world", "purchase-status"), (pid,))
            balance = World(conn).balance(ws)
        want_balance = Decimal("10.00") if want == "refunded" else Decimal("7.00")
        if answers != {first: want, second: want} or status != want:
            problems.append(
                f"{first} then {second}: answered {answers}, status {status}; want {want} from both"
            )
        if balance != want_balance:
            problems.append(
                f"{first} then {second}: balance {money(balance)}, want {money(want_balance)}"
            )
        done.append(f"{first} then {second} -> {status}")
    with ctx.connect(dsn) as conn:
        violations = invariants.check_invariants(conn)
    if violations:
        problems.append(invariants.summary(violations))
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"{'; '.join(done)}; both callers answered the one status; invariants hold"


def _settle_race(ctx, dsn: str, pid, order: tuple[str, str]) -> dict[str, str]:
    """Hold the purchase row, queue ``order[0]`` then ``order[1]`` behind it, release it;
    each caller's answer."""

    def settle(what: str):
        def call(conn) -> str:
            # As the service completes: the confirmation email queued in the same transaction.
            with conn.transaction():
                answer = db.scalar(conn, q("world", SETTLE[what][0]), (pid,))
                if what == "complete" and answer == "completed":
                    conn.execute(q("world", "queue-confirmation"), (pid, Jsonb(sql_config())))
            return answer

        return call

    calls: dict[str, Call] = {}
    try:
        with ctx.connect(dsn) as holder, ctx.connect(dsn) as observer:
            holder.execute("BEGIN")
            holder.execute(q("world", "hold-purchase"), (pid,))
            try:
                for what in order:
                    calls[what] = call = Call(ctx.connect(dsn), settle(what))
                    call.start()
                    if not waits(observer, call.conn.info.backend_pid, call):
                        raise CheckInconclusive(f"{what} never waited for the held purchase row")
            finally:
                holder.execute("ROLLBACK")
        return {w: c.result(f"{order[0]} then {order[1]}: {w}") for w, c in calls.items()}
    finally:
        for c in calls.values():
            c.join(30)
            c.conn.close()


# Tables purchase_refusal reads: each held in turn pauses the refusal before its read of
# it, while the session holding it refunds the pending purchase and commits. Every table,
# so that whatever order a function reads them in, a change lands between two of its reads.
# The first must make it wait.
REFUSAL_PAUSES = ("leads", "workspace_members", "workspace_credits", "lead_reservations")


@check("concurrency.refusal-one-moment")
def refusal_one_moment(ctx) -> str:
    """A refusal's reason and balance are read at one moment, whatever lands while the
    call waits. (1) purchase_refusal: a workspace whose whole balance (2.00) went to a
    pending purchase of a lead asks why it cannot buy that lead again; the call is paused
    between reads (each table it reads is held in turn in ACCESS EXCLUSIVE mode, by a
    session that refunds the pending purchase meanwhile and then commits). The answer
    must have held at one moment: 'Leads already purchased' with 0.00, or no reason with
    2.00; a function reading at several moments mixes them ('Insufficient credits' with
    the old balance and the new leads, or 'Leads already purchased' with the new
    balance). (2) purchase_leads_atomic: its debit waits behind a purchase that spends the
    whole balance; the credits table is asked for in ACCESS EXCLUSIVE mode behind both,
    so when the debit is refused and undone the call waits for it; meanwhile the spending
    purchase is refunded. The answer must be 'Insufficient credits' with 0.00 or the
    purchase made: never 'Insufficient credits' with a balance that covers the price."""
    dsn = ctx.new_database()
    with ctx.connect(dsn) as conn:
        if not db.scalar(conn, q("contract", "has-refusal")):
            raise CheckSkipped("no purchase_refusal: the functions do not read a reason again")
        atomic = db.scalar(conn, q("world", "has-atomic"))
    problems: list[str] = []
    paused: list[str] = []
    for table in REFUSAL_PAUSES:
        with ctx.connect(dsn) as conn:
            world = World(conn)
            ws, (user,) = world.workspace(balance="2.00")
            # Exclusive: the pending purchase also makes it unavailable to anyone else, so
            # a read of its availability goes stale with the refund too.
            leads = world.leads(1, "2.00", max_sales=1)
            pid = _bought(conn, ws, user, leads)
        answer, waited = _paused_refusal(ctx, dsn, table, (ws, user, leads), pid)
        if waited:
            paused.append(table)
        reason, balance = answer
        held_before = DB_MESSAGES.get(reason or "") == "duplicate_purchase" and balance == 0
        held_after = reason is None and balance == Decimal("2.00")
        if not (held_before or held_after):
            problems.append(
                f"purchase_refusal paused on {table}: named {reason!r} with balance "
                f"{money(balance)}; at the call's start the lead was the workspace's (balance "
                "0.00), at its end the purchase would go (balance 2.00)"
            )
    if REFUSAL_PAUSES[0] not in paused:
        raise CheckInconclusive(
            f"purchase_refusal never waited for the held {REFUSAL_PAUSES[0]} table: the "
            "refund could not land between its reads, so nothing was proved"
        )
    seen = [f"purchase_refusal paused on {', '.join(paused)}"]
    if atomic:
        got, waited = _refused_debit(ctx, dsn)
        if waited:
            seen.append("purchase_leads_atomic's refused debit paused")
        made = got.success and got.new_balance == 0
        refused = DB_MESSAGES.get(got.error_message or "") == "insufficient_credits"
        if not (made or (refused and got.new_balance == 0)):
            problems.append(
                f"purchase_leads_atomic, its debit refused while the balance was spent and "
                f"refunded: answered success={got.success} {got.error_message!r} with "
                f"balance {money(got.new_balance)}; want 'Insufficient credits' with 0.00 "
                "(before the refund) or the purchase made (after it)"
            )
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"{'; '.join(seen)}; each answer held at one moment of its call"


def _bought(conn, ws, user, leads):
    """A pending 2.00 purchase of ``leads`` through purchase_with_credits: its id."""
    bought = purchase(conn, ws, user, leads, Decimal("2.00"))
    if not bought.success or bought.purchase_id is None:
        raise CheckFailed(f"setting up: the 2.00 purchase was refused ({bought.error_message})")
    return bought.purchase_id


def _paused_refusal(ctx, dsn: str, table: str, ask: tuple, pid) -> tuple[tuple, bool]:
    """purchase_refusal(``ask``) with ``table`` held, ``pid`` refunded while it waits:
    its (reason, balance) and whether it was seen waiting."""
    ws, user, leads = ask

    def refusal(conn) -> tuple:
        row = conn.execute(q("contract", "refusal"), (ws, user, leads, 2, 2)).fetchone()
        return tuple(row) if row else (None, None)

    with ctx.connect(dsn) as holder, ctx.connect(dsn) as observer, ctx.connect(dsn) as asker:
        holder.execute("BEGIN")
        holder.execute(_lock_table(table))
        call = Call(asker, refusal)
        try:
            call.start()
            waited = waits(observer, asker.info.backend_pid, call)
            if waited:  # the refund, by the session holding the table, lands first
                _refund(holder, pid)
                holder.execute("COMMIT")
        finally:
            if holder.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                holder.execute("ROLLBACK")
        return call.result("purchase_refusal"), waited


def _refused_debit(ctx, dsn: str) -> tuple[Answer, bool]:
    """purchase_leads_atomic buying a 2.00 lead on a 2.00 balance while another purchase
    spends it; once its refused debit is undone it waits for the credits table, which
    holds the refund of that other purchase: its answer, and whether it was seen waiting."""
    with ctx.connect(dsn) as conn:
        world = World(conn)
        ws, (user,) = world.workspace(balance="2.00")
        spent, wanted = world.leads(1, "2.00"), world.leads(1, "2.00")
    config = Jsonb(sql_config())
    with (
        ctx.connect(dsn) as spender,
        ctx.connect(dsn) as locker,
        ctx.connect(dsn) as observer,
        ctx.connect(dsn) as buyer,
    ):
        spender.execute("BEGIN")
        pid = _bought(spender, ws, user, spent)  # holds the credits row, uncommitted
        buy = Call(buyer, lambda c: purchase_atomic(c, ws, user, wanted, Decimal("2.00"), config))
        locker.execute("BEGIN")
        lock = Call(locker, lambda c: c.execute(_lock_table("workspace_credits")))
        try:
            buy.start()
            if not waits(observer, buyer.info.backend_pid, buy):
                raise CheckInconclusive("purchase_leads_atomic never waited for the credits row")
            lock.start()
            if not waits(observer, locker.info.backend_pid, lock):
                raise CheckInconclusive("the credits table was granted behind two writers")
            spender.execute("COMMIT")  # the debit is refused: the balance is 0.00
            lock.result("LOCK TABLE workspace_credits")
            waited = waits(observer, buyer.info.backend_pid, buy)
            if waited:  # the refund, by the session holding the table
                _refund(locker, pid)
            locker.execute("COMMIT")
        finally:
            for conn in (spender, locker):
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.cancel()
                    conn.execute("ROLLBACK")
        return Answer.from_atomic(buy.result("purchase_leads_atomic")), waited


def _lock_table(table: str) -> sql.Composed:
    return sql.SQL("LOCK TABLE public.{} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table))


def _refund(conn, pid) -> None:
    """Refund the pending purchase ``pid`` on ``conn``."""
    refunded = db.scalar(conn, q("world", "refund"), (pid,))
    if refunded != "refunded":
        raise CheckFailed(f"refund_purchase answered {refunded!r}, not 'refunded'")


@check("concurrency.conservation")
def conservation(ctx) -> str:
    """Random purchases and top-ups from 16 sessions over 8 workspaces (a bank test):
    every balance equals its start plus committed top-ups minus committed purchases, the
    ledger explains every balance, and every purchase row is one that was committed."""
    rng = ctx.rng("concurrency.conservation")
    dsn = ctx.new_database()
    n_ws, sessions, rounds, start = 8, 16, 10, Decimal("10.00")
    with ctx.connect(dsn) as conn:
        world = World(conn)
        members = [world.workspace(balance=start) for _ in range(n_ws)]
        prices = {}
        for _ in range(30):
            p = Decimal(rng.randint(5, 300)).scaleb(-2)
            prices[world.leads(1, p)[0]] = p
    lead_ids = sorted(prices)
    plans: list[list[tuple[str, int, Any]]] = []
    for _ in range(sessions):
        wrng = random.Random(rng.random())
        plan: list[tuple[str, int, Any]] = []
        for _ in range(rounds):
            w = wrng.randrange(n_ws)
            if wrng.random() < 0.3:
                plan.append(("topup", w, Decimal(wrng.randint(1, 500)).scaleb(-2)))
            else:
                plan.append(("buy", w, wrng.sample(lead_ids, wrng.randint(1, 3))))
        plans.append(plan)

    def step(c, i, r):
        kind, w, arg = plans[i][r]
        ws, (user,) = members[w]
        if kind == "topup":
            return kind, w, arg, World(c).top_up(ws, arg, "verify")
        total = sum((prices[x] for x in arg), Decimal(0))
        return kind, w, (arg, total), purchase(c, ws, user, arg, total)

    outcomes, seen = run_race(dsn, sessions, None, rounds=rounds, between=step, hold=0.005)
    _raised(outcomes)
    _require_concurrency(seen)
    expected = [start] * n_ws
    committed: dict = {}
    refusals: Counter = Counter()
    per_lead: Counter = Counter()
    topups = buys = 0
    for o in outcomes:
        kind, w, arg, result = o.value
        if kind == "topup":
            expected[w] += arg
            topups += 1
        elif result.success:
            leads, total = arg
            expected[w] -= total
            committed[result.purchase_id] = (members[w][0], total, len(leads))
            per_lead.update(leads)
            buys += 1
        else:
            refusals[result.error_message] += 1
    problems = []
    odd = set(refusals) - {"Insufficient credits", "Leads already purchased"}
    if odd:
        problems.append(
            f"unexpected refusals {sorted(odd)} (documented: {all(m in DB_MESSAGES for m in odd)})"
        )
    with ctx.connect(dsn) as conn:
        actual = {r[0]: r[1] for r in conn.execute(q("world", "balances"))}
        rows = {r[0]: r for r in conn.execute(q("world", "purchases")).fetchall()}
        reserved = {
            r[0]: (r[1], r[2]) for r in conn.execute(q("world", "reservations-per-purchase"))
        }
        lead_res = dict(conn.execute(q("world", "reservations-per-lead")).fetchall())
        problems += _ledger_mismatches(conn)
    for w, (ws, _) in enumerate(members):
        if actual.get(ws) != expected[w]:
            problems.append(
                f"workspace {w}: balance {money(actual.get(ws))}, committed "
                f"operations say {money(expected[w])}"
            )
    if set(rows) != set(committed):
        problems.append(
            f"{len(rows)} purchase rows, {len(committed)} committed purchases "
            f"({len(set(rows) - set(committed))} unexplained, "
            f"{len(set(committed) - set(rows))} missing)"
        )
    for pid, (ws, total, n) in committed.items():
        row = rows.get(pid)
        if row is not None and (row[1], row[6], row[3]) != (ws, total, n):
            problems.append(
                f"purchase {str(pid)[:8]}: row says ({row[6]}, {row[3]} leads), "
                f"committed ({total}, {n} leads)"
            )
            break
        held = reserved.get(pid, (n, 0))[1]
        if held != n:
            problems.append(f"purchase {str(pid)[:8]}: {held} reservations for {n} leads")
            break
    if dict(per_lead) != {k: v for k, v in lead_res.items() if v}:
        problems.append("reservations per lead differ from the committed purchases")
    if problems:
        raise CheckFailed("; ".join(problems[:6]))
    return (
        f"{len(outcomes)} operations from {sessions} sessions on {n_ws} workspaces: "
        f"{buys} purchases, {topups} top-ups, refusals {dict(refusals)}; every balance "
        f"and ledger matches the committed history; {seen} in flight at once"
    )


@check("concurrency.exclusive-lead")
def exclusive_lead(ctx) -> str:
    """An exclusive lead (max_sales = 1) raced by 12 workspaces, each buying it and
    marking it sold in one transaction, is sold exactly once; the others answer 'Leads no
    longer available' and keep their credits. Then purchase_leads_atomic arrives while
    the stepwise flow holds the lead, reserved but not yet marked sold: it waits for the
    lead, counts that reservation and refuses, so the lead keeps one holder."""
    dsn = ctx.new_database(audit=False)
    racers, start = 12, Decimal("5.00")
    with ctx.connect(dsn) as conn:
        world = World(conn)
        buyers = [world.workspace(balance=start) for _ in range(racers)]
        (lead,) = world.leads(1, "1.00", max_sales=1)

    def buy(c, i):
        ws, (user,) = buyers[i]
        ans = purchase(c, ws, user, [lead], Decimal("1.00"))
        return ans, (mark_sold(c, [lead]) if ans.success else None)

    outcomes, seen = run_race(dsn, racers, buy)
    _raised(outcomes)
    _require_concurrency(seen)
    wins = [o for o in outcomes if o.value[0].success]
    refusals = Counter(o.value[0].error_message for o in outcomes if not o.value[0].success)
    with ctx.connect(dsn) as conn:
        (row,) = conn.execute(q("world", "leads"), ([lead],)).fetchall()
        balances = sorted(r[1] for r in conn.execute(q("world", "balances")))
        purchases = conn.execute(q("world", "purchases")).fetchall()
    problems = []
    if len(wins) != 1:
        problems.append(f"{len(wins)} workspaces bought the exclusive lead")
    if row[1] != 1:
        problems.append(f"sold_count {row[1]}")
    if set(refusals) - {"Leads no longer available"}:
        problems.append(f"refusals {dict(refusals)}")
    if len(purchases) != 1 or balances != sorted([start - 1] + [start] * (racers - 1)):
        problems.append(f"{len(purchases)} purchase rows; balances {[money(b) for b in balances]}")
    if problems:
        raise CheckFailed(f"{racers} racers for one exclusive lead: " + "; ".join(problems))
    behind = _atomic_behind_reservation(ctx, dsn)
    return (
        f"{racers} racers: 1 sale, sold_count 1, {sum(refusals.values())} 'Leads no "
        f"longer available', losers kept {start}; {seen} in flight at once; {behind}"
    )


def _atomic_behind_reservation(ctx, dsn: str) -> str:
    """The stepwise flow reserves an exclusive lead (purchase_with_credits, uncommitted:
    it holds the lead) and marks it sold only later, in a transaction of its own;
    purchase_leads_atomic for another workspace arrives meanwhile and must wait for the
    lead, then count that reservation and refuse. Counting the lead's holders before
    taking its lock, it would not see the reservation, and its own sale (the lead's
    sold_count still 0) would go through: two holders of an exclusive lead."""
    with ctx.connect(dsn) as conn:
        if not db.scalar(conn, q("world", "has-atomic")):
            return "no purchase_leads_atomic to race with a reservation"
        world = World(conn)
        (first, (user1,)), (second, (user2,)) = (world.workspace(balance="5.00") for _ in "ab")
        (lead,) = world.leads(1, "1.00", max_sales=1)
    config = Jsonb(sql_config())
    with ctx.connect(dsn) as stepwise, ctx.connect(dsn) as observer, ctx.connect(dsn) as buyer:
        stepwise.execute("BEGIN")
        reserved = purchase(stepwise, first, user1, [lead], Decimal("1.00"))
        buy = Call(
            buyer, lambda c: purchase_atomic(c, second, user2, [lead], Decimal("1.00"), config)
        )
        try:
            if not reserved.success:
                raise CheckFailed(f"setting up: the reservation was refused ({reserved})")
            buy.start()
            if not waits(observer, buyer.info.backend_pid, buy):
                raise CheckFailed(
                    "purchase_leads_atomic did not wait for an exclusive lead another "
                    "workspace's purchase held"
                )
            stepwise.execute("COMMIT")
        finally:
            if stepwise.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                stepwise.execute("ROLLBACK")
        got = Answer.from_atomic(buy.result("purchase_leads_atomic"))
    with ctx.connect(dsn) as conn:
        holders = db.scalar(conn, q("world", "reservations-of-lead"), (lead,))
    if got.success or DB_MESSAGES.get(got.error_message or "") != "leads_no_longer_available":
        raise CheckFailed(
            "purchase_leads_atomic, waiting while another workspace's purchase reserved the "
            f"exclusive lead: answered success={got.success} {got.error_message!r}, want "
            f"'Leads no longer available'; the lead has {holders} holders"
        )
    if holders != 1:
        raise CheckFailed(f"the exclusive lead has {holders} holders after the race, not 1")
    return "purchase_leads_atomic behind an uncommitted reservation waited, then refused"


@check("concurrency.no-deadlock")
def no_deadlock(ctx) -> str:
    """16 workspaces buy overlapping lead sets given in opposite orders, and mark them
    sold in the same transaction, while 16 refunds give back earlier purchases of the same
    workspaces whose leads the buyers are taking: purchases lock leads then the credits
    row, refunds the purchase, its leads, then the credits row, so no deadlock (or any
    other error) surfaces, and every lead is sold once per purchase that holds it."""
    from harness import db
    from harness.money import service

    dsn = ctx.new_database(audit=False)
    racers = 16
    with ctx.connect(dsn) as conn:
        world = World(conn)
        buyers = [world.workspace(balance="20.00") for _ in range(racers)]
        a, b, c, d = world.leads(4, "1.00")
    orders = [[a, b, c], [c, b, a], [b, c, d], [d, c, b]]
    # Each buyer's earlier purchase, stopped pending with its leads marked sold: of the one
    # lead its own purchase below does not take, which half of the other buyers do.
    pool = db.pool(dsn, min_size=1, max_size=2)
    try:
        stepwise = service.PurchaseService(pool, flow="stepwise")
        earlier = [
            stepwise.purchase_and_crash(
                service.PurchaseRequest(
                    workspace_id=ws, user_id=user, lead_ids=(d if i % 4 < 2 else a,)
                ),
                after="mark_sold",
            )
            for i, (ws, (user,)) in enumerate(buyers)
        ]
    finally:
        pool.close()

    def race(conn, i):
        if i >= racers:
            return db.scalar(conn, q("world", "refund"), (earlier[i - racers],))
        ws, (user,) = buyers[i]
        leads = orders[i % 4]
        ans = purchase(conn, ws, user, leads, Decimal("3.00"))
        return ans, (mark_sold(conn, leads) if ans.success else None)

    outcomes, seen = run_race(dsn, 2 * racers, race, hold=0.02)
    _raised(outcomes)
    _require_concurrency(seen)
    bought = [o.value for o in outcomes if o.worker < racers]
    refused = [ans.error_message for ans, _ in bought if not ans.success]
    if refused:
        raise CheckFailed(f"{len(refused)} purchases refused: {Counter(refused)}")
    refunds = Counter(o.value for o in outcomes if o.worker >= racers)
    if refunds != {"refunded": racers}:
        raise CheckFailed(f"refunds answered {dict(refunds)}, want {racers} 'refunded'")
    expected: defaultdict[uuid.UUID, int] = defaultdict(int)
    for i in range(racers):
        for lead in orders[i % 4]:
            expected[lead] += 1
    with ctx.connect(dsn) as conn:
        sold = {r[0]: r[1] for r in conn.execute(q("world", "leads"), ([a, b, c, d],))}
        mismatches = _ledger_mismatches(conn)
    if sold != dict(expected):
        raise CheckFailed(f"sold_count {sorted(sold.values())}, want {sorted(expected.values())}")
    if mismatches:
        raise CheckFailed("balance and ledger disagree: " + "; ".join(mismatches))
    return (
        f"{racers} purchases over overlapping sets in opposite orders and {racers} refunds "
        f"of the same workspaces' earlier purchases of those leads: all succeeded, no "
        f"deadlock, sold_counts {[sold[x] for x in (a, b, c, d)]}; {seen} in flight"
    )
