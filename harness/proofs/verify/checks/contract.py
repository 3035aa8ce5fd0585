"""contract.*: the two spec functions do what their contract says, on the happy path and
at the edges of the balance."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
from psycopg.types.json import Jsonb

from harness import db
from harness.config import DB_MESSAGES
from harness.money.service import sql_config
from harness.proofs.verify.context import q
from harness.proofs.verify.race import describe
from harness.proofs.verify.registry import CheckFailed, CheckInconclusive, CheckSkipped, check
from harness.proofs.verify.world import (
    Answer,
    Call,
    World,
    diff,
    mark_sold,
    money,
    purchase_atomic,
    snapshot,
    waits,
)
from harness.proofs.verify.world import purchase as _purchase


def purchase(conn, *args):
    """purchase_with_credits, where raising instead of answering is a failure."""
    try:
        return _purchase(conn, *args)
    except psycopg.Error as exc:
        raise CheckFailed(
            f"purchase_with_credits raised instead of answering: {describe(exc)}"
        ) from None


def _world(ctx, audit: bool = True):
    conn = ctx.connect(ctx.new_database(audit=audit))
    return conn, World(conn)


@check("contract.purchase-deducts-price")
def purchase_deducts_price(ctx) -> str:
    """A purchase lowers the balance by exactly its price, returns that balance, and
    records one pending credits purchase whose credits_used and total_price match."""
    conn, world = _world(ctx)
    with conn:
        ws, (user,) = world.workspace(balance="10.00")
        leads = world.leads(1, "1.25") + world.leads(1, "2.50")
        before = {r[0] for r in conn.execute(q("world", "purchases")).fetchall()}
        ans = purchase(conn, ws, user, leads, Decimal("3.75"))
        if not ans.success:
            raise CheckFailed(f"a valid 3.75 purchase on 10.00 was refused: {ans.error_message!r}")
        balance = world.balance(ws)
        if balance != Decimal("6.25") or ans.new_balance != Decimal("6.25"):
            raise CheckFailed(
                f"10.00 - 3.75: balance is {money(balance)}, the function "
                f"answered new_balance {money(ans.new_balance)}; want 6.25"
            )
        rows = [r for r in conn.execute(q("world", "purchases")).fetchall() if r[0] not in before]
        if len(rows) != 1:
            raise CheckFailed(f"{len(rows)} purchase rows recorded for one purchase, want 1")
        pid, pws, puser, total_leads, total, method, used, status = rows[0]
        want = (
            ans.purchase_id,
            ws,
            user,
            2,
            Decimal("3.75"),
            "credits",
            Decimal("3.75"),
            "pending",
        )
        got = (pid, pws, puser, total_leads, total, method, used, status)
        if got != want:
            raise CheckFailed(f"purchase row {got} differs from the expected {want}")
        used_total = {r[0]: r[2] for r in conn.execute(q("world", "balances"))}[ws]
        if used_total != Decimal("3.75"):
            raise CheckFailed(f"total_used is {money(used_total)} after one 3.75 purchase")
    return (
        "10.00 - 3.75 = 6.25 (returned and stored); one pending credits purchase, "
        "2 leads, credits_used = total_price = 3.75, total_used 3.75"
    )


@check("contract.exact-balance")
def exact_balance(ctx) -> str:
    """Spending exactly the whole balance succeeds and leaves 0.00."""
    conn, world = _world(ctx)
    with conn:
        ws, (user,) = world.workspace(balance="3.00")
        leads = world.leads(3, "1.00")
        ans = purchase(conn, ws, user, leads, Decimal("3.00"))
        if not ans.success:
            raise CheckFailed(
                f"a 3.00 purchase on a 3.00 balance was refused: {ans.error_message!r}"
            )
        balance = world.balance(ws)
        if balance != Decimal("0.00") or ans.new_balance != Decimal("0.00"):
            raise CheckFailed(
                f"balance {money(balance)} / new_balance "
                f"{money(ans.new_balance)} after spending all of 3.00"
            )
    return "3.00 purchase on 3.00 succeeded; balance 0.00"


@check("contract.one-cent-more")
def one_cent_more(ctx) -> str:
    """One cent more than the balance is refused with 'Insufficient credits' and changes
    no row anywhere."""
    conn, world = _world(ctx)
    with conn:
        ws, (user,) = world.workspace(balance="2.99")
        leads = world.leads(3, "1.00")
        before = snapshot(conn)
        ans = purchase(conn, ws, user, leads, Decimal("3.00"))
        after = snapshot(conn)
        if ans.success:
            raise CheckFailed(
                f"a 3.00 purchase on 2.99 succeeded (new_balance {money(ans.new_balance)})"
            )
        if ans.error_message != "Insufficient credits":
            raise CheckFailed(f"refused with {ans.error_message!r}, want 'Insufficient credits'")
        if after != before:
            raise CheckFailed(f"the refusal changed rows: {diff(before, after)}")
    return "3.00 on 2.99 refused: 'Insufficient credits', no row changed"


@check("contract.no-credits-account")
def no_credits_account(ctx) -> str:
    """A workspace without a credits account is refused with 'No credits account found'
    and changes nothing."""
    conn, world = _world(ctx)
    with conn:
        ws, (user,) = world.workspace(balance=None)
        leads = world.leads(1, "1.00")
        before = snapshot(conn)
        ans = purchase(conn, ws, user, leads, Decimal("1.00"))
        after = snapshot(conn)
        if ans.success or ans.error_message != "No credits account found":
            raise CheckFailed(
                f"answered success={ans.success} {ans.error_message!r}, want "
                "'No credits account found'"
            )
        if after != before:
            raise CheckFailed(f"the refusal changed rows: {diff(before, after)}")
    return "refused: 'No credits account found', no row changed"


MAX_AMOUNT = Decimal("99999999.99")  # numeric(10,2)'s largest value: a valid amount


@check("contract.refusal-reason-holds")
def refusal_reason_holds(ctx) -> str:
    """purchase_refusal, which a refused attempt reads again at a later snapshot, names a
    reason only when that reason holds at its own read: none for purchases that would go
    through (exactly the balance, a lead another workspace bought, the largest valid
    amount when it is affordable), which purchase_with_credits and purchase_leads_atomic
    both make (each in a transaction rolled back), and for each single defect its own
    message, the one purchase_with_credits answers. It changes nothing. A
    reason that does not hold would be answered for a purchase a concurrent refund had
    made possible, a history no order of events explains."""
    conn, world = _world(ctx)
    with conn:
        if not db.scalar(conn, q("contract", "has-refusal")):
            raise CheckSkipped("no purchase_refusal: the functions do not read a reason again")
        ws, (user,) = world.workspace(balance="3.00")
        rich, (tycoon,) = world.workspace(balance=str(MAX_AMOUNT))
        other, (rival,) = world.workspace(balance="10.00")
        bare, (pauper,) = world.workspace(balance=None)
        outsider = world.user()
        shared = world.leads(1, "1.50")  # bought by another workspace, still for sale
        exclusive = world.leads(1, "1.00", max_sales=1)  # sold out to it
        owned = world.leads(1, "1.00")  # bought by ws: its balance is then 2.00
        for w, u, leads in ((other, rival, shared), (other, rival, exclusive), (ws, user, owned)):
            price = Decimal("1.50") if leads is shared else Decimal("1.00")
            if not purchase(conn, w, u, leads, price).success:
                raise CheckFailed(f"setting up: a {money(price)} purchase was refused")
        exact, dear = world.leads(1, "2.00"), world.leads(1, "2.01")
        withdrawn = world.leads(1, "1.00", for_sale=False)
        largest = world.leads(1, str(MAX_AMOUNT))
        d = Decimal
        would_succeed = [
            ("exactly the balance", ws, user, exact, d("2.00")),
            ("a lead another workspace bought", ws, user, shared, d("1.50")),
            (f"{money(MAX_AMOUNT)} on as much", rich, tycoon, largest, MAX_AMOUNT),
        ]
        refusals = [
            ("one cent more than the balance", ws, user, dear, d("2.01"), "insufficient_credits"),
            (f"{money(MAX_AMOUNT)} on 2.00", ws, user, largest, MAX_AMOUNT, "insufficient_credits"),
            ("a lead the workspace owns", ws, user, owned, d("1.00"), "duplicate_purchase"),
            ("a sold-out lead", ws, user, exclusive, d("1.00"), "leads_no_longer_available"),
            ("a lead not for sale", ws, user, withdrawn, d("1.00"), "leads_no_longer_available"),
            ("a user outside the workspace", ws, outsider, shared, d("1.50"), "not_authorized"),
            ("no credits account", bare, pauper, shared, d("1.50"), "no_credits_account"),
            ("a zero amount", ws, user, shared, d("0.00"), "invalid_amount"),
            ("a total that is not the price", ws, user, shared, d("1.49"), "invalid_amount"),
        ]
        atomic = db.scalar(conn, q("world", "has-atomic"))
        config = Jsonb(sql_config())
        before = snapshot(conn)
        problems: list[str] = []
        for label, w, u, leads, total in would_succeed:
            row = conn.execute(q("contract", "refusal"), (w, u, leads, total, total)).fetchone()
            if row is None or row[0] is not None:
                problems.append(f"{label}: names {row and row[0]!r}, for a purchase that goes")
            conn.execute("BEGIN")
            try:
                ans = purchase(conn, w, u, leads, total)
            finally:
                conn.execute("ROLLBACK")
            if not ans.success:
                problems.append(
                    f"{label}: purchase_with_credits refused it with {ans.error_message!r}"
                )
            if atomic:  # the purchase route's function makes it too, and says so
                conn.execute("BEGIN")
                try:
                    answer = purchase_atomic(conn, w, u, leads, total, config)
                    got = Answer.from_atomic(answer)
                    made = db.scalar(conn, q("contract", "purchase-made"), (got.purchase_id, w))
                finally:
                    conn.execute("ROLLBACK")
                if not got.success or got.purchase_id is None or not made:
                    problems.append(
                        f"{label}: purchase_leads_atomic answered {answer.get('status')!r} "
                        f"{got.error_message or ''}, purchase {got.purchase_id}, "
                        f"{made} such purchase row(s)"
                    )
        for label, w, u, leads, total, code in refusals:
            row = conn.execute(q("contract", "refusal"), (w, u, leads, total, total)).fetchone()
            conn.execute("BEGIN")
            try:
                ans = purchase(conn, w, u, leads, total)
            finally:
                conn.execute("ROLLBACK")
            named = row[0] if row else None
            if DB_MESSAGES.get(named or "") != code:
                problems.append(f"{label}: purchase_refusal names {named!r}, want {code}")
            if ans.success or DB_MESSAGES.get(ans.error_message or "") != code:
                problems.append(
                    f"{label}: purchase_with_credits answers success={ans.success} "
                    f"{ans.error_message!r}, want {code}"
                )
        after = snapshot(conn)
        if after != before:
            problems.append(f"the calls changed rows: {diff(before, after)}")
        if problems:
            raise CheckFailed("; ".join(problems))
    return (
        f"no reason for {len(would_succeed)} purchases that would go through (exactly the "
        f"balance, a lead another workspace bought, {money(MAX_AMOUNT)}); its own message "
        f"for each of {len(refusals)} single defects, as purchase_with_credits answers; "
        "nothing changed"
    )


RATE_WINDOW = 3600  # seconds: one check's calls stay inside one window (else redone)


@check("contract.rate-limit")
def rate_limit(ctx) -> str:
    """http_rate_limit_hit (the purchase route's limits, counted in the database) lets
    exactly the limit through per user, bucket and window, then answers a Retry-After
    within the window; other users and buckets count apart; a request's idempotency key
    is counted once per workspace (its replays go free, a refused key stays uncounted);
    an invalid limit raises and writes nothing."""
    conn, world = _world(ctx, audit=False)
    with conn:
        if not db.scalar(conn, q("contract", "has-rate-limit")):
            raise CheckSkipped("no http_rate_limit_hit: the migrations count no requests")
        for _ in range(3):  # a run that straddles two windows is run again, in the next
            window = db.scalar(conn, q("contract", "rate-limit-window"), (RATE_WINDOW,))
            problems, evidence = _rate_limit_run(conn, world)
            if db.scalar(conn, q("contract", "rate-limit-window"), (RATE_WINDOW,)) == window:
                break
        else:
            raise CheckInconclusive("three runs in a row straddled a window boundary")
        if problems:
            raise CheckFailed("; ".join(problems))
    return evidence


def _rate_limit_run(conn, world: World) -> tuple[list[str], str]:
    problems: list[str] = []

    def call(user, bucket, limit, window=RATE_WINDOW, ws=None, key=None) -> int:
        args = (user, bucket, limit, window, ws, key)
        return int(db.scalar(conn, q("contract", "rate-limit-hit"), args))

    def hit(user, bucket="purchase", limit=3, window=RATE_WINDOW, ws=None, key=None) -> int:
        try:
            return call(user, bucket, limit, window, ws, key)
        except psycopg.Error as exc:
            raise CheckFailed(
                f"a valid request (limit {limit}, window {window} s, workspace "
                f"{'set' if ws else 'none'}, key {key!r}) raised {describe(exc)}"
            ) from None

    (ws, (a, b, c)), (other, _) = world.workspace(members=3), world.workspace()
    first = [hit(a) for _ in range(3)]
    if first != [0, 0, 0]:
        problems.append(f"the first 3 of a limit of 3 answered {first}, want 0 each")
    # Another user and another bucket count apart, and must not reset a's count.
    if hit(b) != 0 or hit(a, bucket="credits") != 0:
        problems.append("another user's or another bucket's first request was refused")
    # The smallest valid limit and window, and a workspace without a key (the route's
    # request without Idempotency-Key), each go through once.
    if hit(b, bucket="one", limit=1, window=1) != 0 or hit(b, bucket="ws", ws=ws) != 0:
        problems.append("a first request under limit 1, window 1 s or without a key was refused")
    over = [hit(a) for _ in range(2)]
    if any(not 1 <= wait <= RATE_WINDOW for wait in over):
        problems.append(
            f"the 4th and 5th of a limit of 3 answered {over}, want a Retry-After of 1 to "
            f"{RATE_WINDOW} s"
        )
    # Keys: counted once per workspace; a refused key is not kept.
    keyed = [
        hit(c, limit=2, ws=ws, key="k1"),
        hit(c, limit=2, ws=ws, key="k1"),  # a replay: free
        hit(c, limit=2, ws=ws, key="k2"),
    ]
    refused = hit(c, limit=2, ws=ws, key="k3")
    replay = hit(c, limit=2, ws=ws, key="k1")
    elsewhere = hit(c, limit=2, ws=other, key="k1")  # another workspace's key
    if keyed != [0, 0, 0] or refused < 1 or replay != 0 or elsewhere < 1:
        problems.append(
            f"limit 2 with keys k1, k1 (replay), k2, k3, k1 (replay), k1 in another "
            f"workspace answered {[*keyed, refused, replay, elsewhere]}, want "
            "[0, 0, 0, >0, 0, >0]"
        )
    kept = [r[0] for r in conn.execute(q("contract", "rate-limit-keys"), (ws, "purchase"))]
    if kept != ["k1", "k2"]:
        problems.append(f"keys counted in the workspace: {kept}, want ['k1', 'k2']")
    before = snapshot(conn)
    invalid = [
        (None, "purchase", 3),
        (a, None, 3),
        (a, "purchase", 0),
        (a, "purchase", None),
        (a, "purchase", 3, 0),
        (a, "purchase", 3, None),
    ]
    for args in invalid:
        try:
            with conn.transaction():
                call(*args)
        except psycopg.errors.InvalidParameterValue:
            pass
        except psycopg.Error as exc:
            problems.append(f"{args}: raised {type(exc).__name__}, want InvalidParameterValue")
        else:
            problems.append(f"{args}: answered instead of raising invalid_parameter_value")
    if snapshot(conn) != before:
        problems.append("an invalid limit wrote rows")
    return problems, (
        f"limit 3: 3 through, then Retry-After {over} s; other users and buckets apart; "
        f"keys counted once per workspace (replays free, the refused key not kept); "
        f"{len(invalid)} invalid limits and windows raised, nothing written"
    )


@check("contract.mark-sold-once")
def mark_sold_once(ctx) -> str:
    """mark_leads_sold_batch counts every distinct lead once (duplicates in the array
    included), sets first_sold_at on the first sale only, and treats an empty array as
    nothing to do."""
    conn, world = _world(ctx, audit=False)
    with conn:
        leads = world.leads(4, "1.00")
        n = mark_sold(conn, leads + [leads[0], leads[2]])
        if n != 4:
            raise CheckFailed(f"returned {n} for 4 distinct leads (2 repeated), want 4")
        first = {r[0]: (r[1], r[2]) for r in conn.execute(q("world", "leads"), (leads,))}
        if any(sold != 1 for sold, _ in first.values()):
            raise CheckFailed(f"sold_count after one sale: {[s for s, _ in first.values()]}")
        if any(at is None for _, at in first.values()):
            raise CheckFailed("first_sold_at left NULL by the first sale")
        n2 = mark_sold(conn, leads)
        again = {r[0]: (r[1], r[2]) for r in conn.execute(q("world", "leads"), (leads,))}
        if n2 != 4 or any(again[i][0] != 2 for i in leads):
            raise CheckFailed(
                f"second sale returned {n2}, sold_counts "
                f"{[again[i][0] for i in leads]}; want 4 and all 2"
            )
        if any(again[i][1] != first[i][1] for i in leads):
            raise CheckFailed("first_sold_at changed on the second sale")
        none = mark_sold(conn, [])
        if none != 0:
            raise CheckFailed(f"an empty array marked {none} leads")
    return (
        "4 distinct of 6 ids -> 4, each sold_count 1 with first_sold_at set; second "
        "sale -> 2 each, first_sold_at unchanged; empty array -> 0"
    )


@check("contract.mark-sold-one-statement")
def mark_sold_one_statement(ctx) -> str:
    """mark_leads_sold_batch updates all its leads in one statement, not one per lead:
    counted by a statement-level trigger on leads in the check's scratch database."""
    conn, world = _world(ctx, audit=False)
    with conn:
        leads = world.leads(5, "1.00")
        conn.execute(q("contract", "count-lead-statements"))
        marked = mark_sold(conn, leads + [leads[0]])
        statements = db.scalar(conn, q("contract", "lead-updates"))
    if statements != 1:
        raise CheckFailed(
            f"marking 5 leads (6 ids) ran {statements} UPDATE statements on "
            f"leads, want 1 (returned {marked})"
        )
    return f"5 leads (6 ids) marked by 1 UPDATE statement (returned {marked})"


@check("contract.mark-sold-max-sales")
def mark_sold_max_sales(ctx) -> str:
    """mark_leads_sold_batch never sells a lead beyond max_sales: an exclusive lead sold
    once is skipped, without an error, by the next batch."""
    conn, world = _world(ctx, audit=False)
    with conn:
        exclusive = world.leads(1, "1.00", max_sales=1)
        twice = world.leads(1, "1.00", max_sales=2)
        plain = world.leads(1, "1.00")
        batch = exclusive + twice + plain
        counts = []
        for _ in range(3):
            try:
                counts.append(mark_sold(conn, batch))
            except Exception as exc:
                raise CheckFailed(
                    f"selling past max_sales raised instead of skipping: {describe(exc)}"
                ) from exc
        sold = {r[0]: r[1] for r in conn.execute(q("world", "leads"), (batch,))}
        got = (sold[exclusive[0]], sold[twice[0]], sold[plain[0]])
        if got != (1, 2, 3) or counts != [3, 2, 1]:
            raise CheckFailed(
                f"three batches returned {counts}, sold_counts (max 1, max 2, "
                f"unlimited) = {got}; want [3, 2, 1] and (1, 2, 3)"
            )
    return "three batches -> [3, 2, 1]; sold_count (max 1, max 2, unlimited) = (1, 2, 3)"


# What each function that takes a purchase id answers for an id that is no purchase.
UNKNOWN_ANSWERS: dict[str, tuple[str, object]] = {
    "public.refund_purchase(uuid)": ("settle-refund", None),
    "public.complete_purchase(uuid)": ("settle-complete", None),
    "public.reconcile_purchase(uuid, jsonb)": ("settle-reconcile", "missing"),
    "public.queue_purchase_confirmation(uuid, jsonb)": ("settle-queue-confirmation", None),
    "public.purchase_response_leads(uuid)": ("settle-response-leads", []),
}
# The functions that take the configuration: a bad one is refused before anything is done.
CONFIGURED = (
    "public.reconcile_purchase(uuid, jsonb)",
    "public.queue_purchase_confirmation(uuid, jsonb)",
)


@check("contract.settle-arguments")
def settle_arguments(ctx) -> str:
    """Every function that takes a purchase id answers an id that is no purchase as
    'nothing there' (refund_purchase and complete_purchase NULL, reconcile_purchase
    'missing', queue_purchase_confirmation NULL, purchase_response_leads no leads), and
    the two that take the configuration refuse a bad one (invalid_parameter_value) before
    they settle or queue anything, here on a pending purchase reconcile would refund;
    nothing changes. An operator's mistyped id answered 'refunded' is a refund that never
    happened told as done."""
    conn, world = _world(ctx)
    with conn:
        present = {f for f, ok in conn.execute(q("contract", "settle-functions")) if ok}
        if not present:
            raise CheckSkipped("no function here takes a purchase id")
        ws, (user,) = world.workspace(balance="5.00")
        leads = world.leads(1, "2.00")
        pending = purchase(conn, ws, user, leads, Decimal("2.00"))
        if not pending.success:
            raise CheckFailed(f"setting up: a 2.00 purchase was refused: {pending.error_message}")
        good = Jsonb(sql_config())
        bad = Jsonb({**sql_config(), "commission_bonus_pass_rate": "2"})
        nobody = uuid.uuid4()
        before = snapshot(conn)
        problems: list[str] = []
        for function in sorted(present):
            name, want = UNKNOWN_ANSWERS[function]
            try:
                got = db.scalar(conn, q("contract", name), {"purchase": nobody, "config": good})
            except psycopg.Error as exc:
                problems.append(f"{function} on an id that is no purchase raised {describe(exc)}")
                continue
            if got != want:
                problems.append(
                    f"{function} on an id that is no purchase answered {got!r}, want {want!r}"
                )
        for function in CONFIGURED:
            if function not in present:
                continue
            name, _ = UNKNOWN_ANSWERS[function]
            try:
                got = db.scalar(
                    conn, q("contract", name), {"purchase": pending.purchase_id, "config": bad}
                )
            except psycopg.errors.InvalidParameterValue:
                continue
            except psycopg.Error as exc:
                problems.append(f"{function} with a bad configuration raised {describe(exc)}")
                continue
            problems.append(
                f"{function} with a pass rate of 2 answered {got!r} for a pending purchase "
                "instead of refusing the configuration"
            )
        after = snapshot(conn)
        if after != before:
            problems.append(f"the calls changed rows: {diff(before, after)}")
        if problems:
            raise CheckFailed("; ".join(problems))
    configured = [f for f in CONFIGURED if f in present]
    return (
        f"{len(present)} function(s) answered an id that is no purchase as nothing there; "
        f"{len(configured)} refused a bad configuration on a pending purchase; nothing changed"
    )


# Top-ups add_credits must refuse with check_violation, writing nothing.
BAD_AMOUNTS = (
    Decimal("0.00"),
    Decimal("-1.00"),
    Decimal("1.005"),
    Decimal("NaN"),
    Decimal("100000000.00"),
    None,
)
BAD_REFERENCES = ("", "r" * 256, "pay\n2", "pay\x7f2")


@check("contract.top-up")
def top_up(ctx) -> str:
    """add_credits, the way credits come in: a top-up with a payment reference credits
    the workspace once (the balance, one ledger entry, the reference recorded); the same
    reference again, after the first committed or while it is still open (a payment
    webhook delivered twice at once), answers this workspace's balance and credits
    nothing; the same reference in another workspace is that workspace's own payment; a
    top-up without a reference credits every time. An amount that is not a positive
    number of cents below 100,000,000, or a reference that is not 1 to 255 printable
    characters, raises check_violation and writes nothing."""
    dsn = ctx.new_database()
    with ctx.connect(dsn) as conn:
        if not db.scalar(conn, q("contract", "has-top-up")):
            raise CheckSkipped("no add_credits with a payment reference")
        world = World(conn)
        ws, _ = world.workspace(balance="5.00")
        other, _ = world.workspace(balance="50.00")
        d = Decimal

        def credit(c, w, amount, reference):
            args = {"workspace": w, "amount": amount, "package": "pro", "reference": reference}
            return db.scalar(c, q("contract", "top-up"), args)

        def rows(w):
            return tuple(conn.execute(q("contract", "top-up-rows"), {"workspace": w}).fetchone())

        problems: list[str] = []
        start = rows(ws)
        steps = [
            ("a first payment", ws, d("10.00"), "pay-1", d("15.00"), (1, 1)),
            ("the same payment again", ws, d("10.00"), "pay-1", d("15.00"), (0, 0)),
            ("its reference in another workspace", other, d("10.00"), "pay-1", d("60.00"), (1, 1)),
            ("a top-up without a reference", ws, d("1.00"), None, d("16.00"), (1, 0)),
            ("another without a reference", ws, d("1.00"), None, d("17.00"), (1, 0)),
        ]
        for label, w, amount, reference, want, (ledger, refs) in steps:
            before = rows(w)
            got = credit(conn, w, amount, reference)
            after = rows(w)
            moved = (after[1] - before[1], after[2] - before[2])
            if got != want or after[0] != want or moved != (ledger, refs):
                problems.append(
                    f"{label}: answered {got}, balance {after[0]}, {moved[0]} ledger "
                    f"entr(y/ies) and {moved[1]} reference(s) added; want {money(want)}, "
                    f"{ledger} and {refs}"
                )
        problems += _top_up_twice_at_once(ctx, dsn, ws, credit)
        kept = snapshot(conn)
        for bad in BAD_AMOUNTS:
            problems += _refused(conn, f"amount {bad}", credit, ws, bad, "pay-bad")
        for reference in BAD_REFERENCES:
            shown = repr(reference) if len(reference) < 20 else f"{len(reference)} characters"
            problems += _refused(conn, f"reference {shown}", credit, ws, d("1.00"), reference)
        if snapshot(conn) != kept:
            problems.append(f"a refused top-up wrote rows: {diff(kept, snapshot(conn))}")
        if problems:
            raise CheckFailed("; ".join(problems))
    return (
        f"balance {money(start[0])} -> 15.00 once for one reference asked twice (and once "
        f"more while the first was open), 60.00 in another workspace under the same "
        f"reference, +1.00 twice without one; {len(BAD_AMOUNTS)} bad amounts and "
        f"{len(BAD_REFERENCES)} bad references raised check_violation, nothing written"
    )


def _top_up_twice_at_once(ctx, dsn: str, ws, credit) -> list[str]:
    """One payment delivered twice at once: the second waits for the first and, once it
    commits, credits nothing."""
    with ctx.connect(dsn) as first, ctx.connect(dsn) as second, ctx.connect(dsn) as observer:
        before = World(observer).balance(ws)
        first.execute("BEGIN")
        credit(first, ws, Decimal("3.00"), "pay-2")
        again = Call(second, lambda c: credit(c, ws, Decimal("3.00"), "pay-2"))
        again.start()
        try:
            waited = waits(observer, second.info.backend_pid, again)
        finally:
            first.execute("COMMIT")
        answer = again.result("the payment delivered again while the first was open")
        after = World(observer).balance(ws)
    want = (before or Decimal(0)) + Decimal("3.00")
    if not waited or answer != want or after != want:
        return [
            f"one payment delivered twice at once: the second "
            f"{'waited' if waited else 'did not wait'} and answered {answer}; balance "
            f"{money(before)} -> {money(after)}, want {money(want)} once"
        ]
    return []


def _refused(conn, label: str, call, *args) -> list[str]:
    try:
        with conn.transaction():
            got = call(conn, *args)
    except psycopg.errors.CheckViolation:
        return []
    except psycopg.Error as exc:
        return [f"{label}: raised {describe(exc)}, want check_violation"]
    return [f"{label}: accepted (answered {got})"]


def _bad_configs() -> list[tuple[str, object]]:
    """Configurations checked_config must refuse, each one defect away from a good one."""
    good = sql_config()
    out: list[tuple[str, object]] = [("no configuration", None), ("a list", [good])]
    for key in ("commission_bonus_pass_rate", "commission_freshness_bonus_rate"):
        out += [(f"{key} {v!r}", {**good, key: v}) for v in ("2", "-0.1", "NaN", "1e-1", "")]
    for key in ("commission_freshness_days", "download_expiry_days"):
        out += [(f"{key} {v!r}", {**good, key: v}) for v in (-1, 3651, "1.5", "x")]
    for key in ("download_url_prefix", "default_customer_name"):
        out += [(f"{key} {v!r}", {**good, key: v}) for v in ("", "   ", 5, None, "x" * 2001)]
    out += [(f"no {key}", {k: v for k, v in good.items() if k != key}) for key in sorted(good)]
    return out


def _edge_configs() -> list[tuple[str, dict]]:
    """Configurations at the edges of what is allowed: checked_config must accept them."""
    good = sql_config()
    out = [
        (f"{key} {v!r}", {**good, key: v})
        for key in ("commission_bonus_pass_rate", "commission_freshness_bonus_rate")
        for v in ("0", "1", "1.0", ".5")
    ]
    out += [
        (f"{key} {v!r}", {**good, key: v})
        for key in ("commission_freshness_days", "download_expiry_days")
        for v in (0, 3650)
    ]
    long_name = {**good, "default_customer_name": "n" * 2000}
    out += [("default_customer_name of 2000 characters", long_name)]
    return out


@check("contract.config-refused")
def config_refused(ctx) -> str:
    """checked_config, which every function taking the configuration calls first, answers
    the service's own configuration unchanged and refuses each configuration one defect
    away from it (a rate outside [0, 1] or not a plain decimal, a number of days outside
    [0, 3650] or not whole, a link prefix or default name that is empty, blank, not a
    string or too long, any key missing, no object at all) with invalid_parameter_value.
    A configuration let through is used: an empty link prefix sends every buyer a
    download link that is only an id."""
    conn = ctx.connect(ctx.new_database(audit=False))
    with conn:
        if not db.scalar(conn, q("contract", "has-checked-config")):
            raise CheckSkipped("no checked_config")
        good = sql_config()
        problems: list[str] = []
        try:
            answered = db.scalar(conn, q("contract", "checked-config"), (Jsonb(good),))
        except psycopg.Error as exc:
            raise CheckFailed(f"the service's own configuration raised {describe(exc)}") from None
        if answered != good:
            problems.append(f"the service's own configuration came back as {answered!r}")
        edges = _edge_configs()
        for label, allowed in edges:
            try:
                db.scalar(conn, q("contract", "checked-config"), (Jsonb(allowed),))
            except psycopg.Error as exc:
                problems.append(f"{label} (allowed): raised {describe(exc)}")
        bad = _bad_configs()
        for label, config in bad:
            try:
                got = db.scalar(
                    conn,
                    q("contract", "checked-config"),
                    (None if config is None else Jsonb(config),),
                )
            except psycopg.errors.InvalidParameterValue:
                continue
            except psycopg.Error as exc:
                problems.append(f"{label}: raised {describe(exc)}, want invalid_parameter_value")
                continue
            problems.append(f"{label}: accepted (answered {str(got)[:80]})")
        if problems:
            raise CheckFailed("; ".join(problems))
    return (
        f"the service's configuration answered unchanged and {len(edges)} at the edges of "
        f"what is allowed accepted; {len(bad)} configurations one defect away raised "
        "invalid_parameter_value"
    )
