"""model.commission: partners' commissions, computed in SQL, against the rules in
:mod:`harness.money.commission`: at the edges of every rule, and on the items the atomic
purchase records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from harness import db
from harness.config import MARKETPLACE_CONFIG
from harness.money.commission import calculate_commission
from harness.money.service import sql_config
from harness.proofs.properties import run_property
from harness.proofs.verify.context import CheckContext, q
from harness.proofs.verify.registry import CheckFailed, CheckSkipped, check
from harness.proofs.verify.world import Answer, World, purchase_atomic

EXAMPLES = 300
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
THRESHOLD = MARKETPLACE_CONFIG["COMMISSION_BONUS_PASS_RATE"]
WINDOW = timedelta(days=MARKETPLACE_CONFIG["COMMISSION_FRESHNESS_DAYS"])

prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000.00"), places=2)
rates = st.one_of(
    st.decimals(min_value=Decimal("0"), max_value=Decimal("1"), places=4),
    st.sampled_from([Decimal("0"), Decimal("0.5"), Decimal("0.9999"), Decimal("1")]),
)
# Each rule's edge, from both sides: the pass rate at the threshold and a hair below;
# the lead's age at the freshness window and a microsecond either side.
pass_rates = st.one_of(rates, st.sampled_from([THRESHOLD - Decimal("0.0001"), THRESHOLD]))
ages = st.one_of(
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
    st.integers(-1, 1).map(lambda us: WINDOW + timedelta(microseconds=us)),
)


def _partner(base: Decimal, bonus: Decimal, pass_rate: Decimal) -> Any:
    return SimpleNamespace(
        base_commission_rate=base, bonus_commission_rate=bonus, verification_pass_rate=pass_rate
    )


def _model(price, base, bonus, pass_rate, created, sale) -> tuple[Decimal, Decimal, tuple]:
    c = calculate_commission(price, _partner(base, bonus, pass_rate), created, sale)
    return c.rate, c.amount, c.bonuses


@check("model.commission", group="hypothesis")
def model_commission(ctx: CheckContext) -> str:
    """calculate_commission gives every sale the rules' rate, amount and bonuses: base
    rate, plus the partner's bonus from a pass rate at the threshold up, plus the freshness
    bonus within the window (its last microsecond included), capped at 1, rounded half up
    to cents, a zero bonus not listed; hypothesis draws each rule's edge from both sides.
    The items purchase_leads_atomic records carry the same figures for fresh and old
    leads of a partner with and without the bonus."""
    conn = ctx.connect(ctx.new_database(audit=False))
    with conn:
        if not db.scalar(conn, q("model", "has-commission")):
            raise CheckSkipped("no calculate_commission(...): the migrations pay no commission")
        config = Jsonb(sql_config())
        count = [0]
        failing: list[str] = []

        def prop(price, base, bonus, pass_rate, age) -> None:
            count[0] += 1
            created, sale = NOW - age, NOW
            got = conn.execute(
                q("model", "commission"),
                {
                    "price": price,
                    "base": base,
                    "bonus": bonus,
                    "pass_rate": pass_rate,
                    "created": created,
                    "sale": sale,
                    "config": config,
                },
            ).fetchone()
            want = _model(price, base, bonus, pass_rate, created, sale)
            if got is None or (got[0], got[1], tuple(got[2] or ())) != want:
                failing.append(
                    f"price {price}, base {base}, bonus {bonus}, pass rate {pass_rate}, lead "
                    f"{age} old: SQL gives {got and (got[0], got[1], got[2])}, the rules {want}"
                )
                raise CheckFailed(failing[-1])

        try:
            run_property(
                prop, prices, rates, rates, pass_rates, ages, seed_value=ctx.seed, examples=EXAMPLES
            )
        except CheckFailed:
            raise CheckFailed(failing[-1] if failing else "a commission differs") from None
        recorded = _recorded(conn, config)
    return (
        f"{count[0]} sales (seed {ctx.seed}) at the rules' edges: the rules' rate, amount "
        f"and bonuses; {recorded}"
    )


def _recorded(conn, config: Jsonb) -> str:
    """The commissions on the items of real purchases (the atomic flow), against the rules."""
    if not db.scalar(conn, q("world", "has-atomic")):
        return "no purchase_leads_atomic, so no recorded items to compare"
    world = World(conn)
    ws, (user,) = world.workspace(balance="100.00")
    items = 0
    for base, bonus, pass_rate in (("0.30", "0.05", "0.97"), ("0.25", "0.10", "0.50")):
        partner = world.partner(base=base, bonus=bonus, pass_rate=pass_rate)
        fresh = world.named_leads("fresh", 1, "3.33", partner=partner, age_days=0)
        old = world.named_leads("old", 1, "7.77", partner=partner, age_days=30)
        leads = sorted([*fresh.values(), *old.values()])
        answer = purchase_atomic(conn, ws, user, leads, Decimal("11.10"), config)
        purchase_id = Answer.from_atomic(answer).purchase_id
        if purchase_id is None:
            raise CheckFailed(f"setting up: the atomic purchase of two leads answered {answer}")
        for row in conn.execute(q("model", "items-with-commission"), (purchase_id,)):
            lead, price, rate, amount, bonuses, created, sold, b, bb, pr = row
            want = _model(price, b, bb, pr, created, sold)
            if (rate, amount, tuple(bonuses or ())) != want:
                raise CheckFailed(
                    f"purchase_leads_atomic recorded rate {rate}, amount {amount}, bonuses "
                    f"{bonuses} for lead {lead} ({price}, created {created}, sold {sold}); "
                    f"the rules give {want}"
                )
            items += 1
    return f"{items} items recorded by purchase_leads_atomic carry the same figures"
