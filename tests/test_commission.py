"""Commission rules: worked examples, properties (hypothesis), and agreement between the
Python rules and the SQL calculate_commission the atomic flow uses."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from harness.config import MARKETPLACE_CONFIG
from harness.db import query
from harness.money.commission import calculate_commission
from harness.money.service import sql_config

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FRESH_DAYS = MARKETPLACE_CONFIG["COMMISSION_FRESHNESS_DAYS"]
THRESHOLD = MARKETPLACE_CONFIG["COMMISSION_BONUS_PASS_RATE"]
FRESH_RATE = MARKETPLACE_CONFIG["COMMISSION_FRESHNESS_BONUS_RATE"]


@dataclass(frozen=True)
class P:
    base_commission_rate: Decimal
    bonus_commission_rate: Decimal = Decimal("0")
    verification_pass_rate: Decimal = Decimal("0")


OLD = NOW - timedelta(days=FRESH_DAYS + 30)


def test_base_rate_alone_for_an_old_lead_of_an_unverified_partner():
    c = calculate_commission(
        Decimal("10.00"), P(Decimal("0.30"), Decimal("0.05"), Decimal("0.50")), OLD, NOW
    )
    assert (c.rate, c.amount, c.bonuses) == (Decimal("0.30"), Decimal("3.00"), ())


def test_verification_bonus_applies_from_the_threshold_on():
    partner = P(Decimal("0.30"), Decimal("0.05"), THRESHOLD)
    c = calculate_commission(Decimal("10.00"), partner, OLD, NOW)
    assert (c.rate, c.amount, c.bonuses) == (Decimal("0.35"), Decimal("3.50"), ("verification",))
    below = replace(partner, verification_pass_rate=THRESHOLD - Decimal("0.0001"))
    assert calculate_commission(Decimal("10.00"), below, OLD, NOW).bonuses == ()


def test_freshness_bonus_up_to_exactly_the_configured_days():
    partner = P(Decimal("0.30"))
    edge = NOW - timedelta(days=FRESH_DAYS)
    c = calculate_commission(Decimal("10.00"), partner, edge, NOW)
    assert c.bonuses == ("freshness",) and c.rate == Decimal("0.30") + FRESH_RATE
    late = edge - timedelta(microseconds=1)
    assert calculate_commission(Decimal("10.00"), partner, late, NOW).bonuses == ()


def test_rate_is_capped_at_one_and_amount_at_the_price():
    c = calculate_commission(
        Decimal("1.99"), P(Decimal("0.99"), Decimal("0.50"), Decimal("1")), NOW, NOW
    )
    assert c.rate == 1 and c.amount == Decimal("1.99")
    assert c.bonuses == ("verification", "freshness")


def test_amount_rounds_half_up_to_cents():
    assert calculate_commission(Decimal("0.05"), P(Decimal("0.30")), OLD, NOW).amount == Decimal(
        "0.02"
    )  # 0.015 -> 0.02
    assert calculate_commission(Decimal("0.05"), P(Decimal("0.10")), OLD, NOW).amount == Decimal(
        "0.01"
    )  # 0.005 -> 0.01


rates = st.decimals(min_value=0, max_value=1, places=4)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2)
ages = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60))
partners = st.builds(P, rates, rates, rates)


@given(prices, partners, ages)
def test_rate_between_zero_and_one_and_amount_at_most_the_price(price, partner, age):
    c = calculate_commission(price, partner, NOW - age, NOW)
    assert 0 <= c.rate <= 1
    assert 0 <= c.amount <= price
    assert c.amount == c.amount.quantize(Decimal("0.01"))


@given(prices, partners, ages)
def test_commission_is_deterministic(price, partner, age):
    assert calculate_commission(price, partner, NOW - age, NOW) == calculate_commission(
        price, partner, NOW - age, NOW
    )


@given(prices, partners, rates, ages)
def test_commission_never_falls_when_the_pass_rate_rises(price, partner, other, age):
    low, high = sorted((partner.verification_pass_rate, other))
    a = calculate_commission(price, replace(partner, verification_pass_rate=low), NOW - age, NOW)
    b = calculate_commission(price, replace(partner, verification_pass_rate=high), NOW - age, NOW)
    assert a.rate <= b.rate and a.amount <= b.amount


@pytest.fixture
def sql_commission(conn):
    config = Jsonb(sql_config())

    def run(price, partner, created, sale):
        return conn.execute(
            query("repository", "calculate_commission"),
            {
                "sale_price": price,
                "base_rate": partner.base_commission_rate,
                "bonus_rate": partner.bonus_commission_rate,
                "pass_rate": partner.verification_pass_rate,
                "lead_created_at": created,
                "sale_date": sale,
                "config": config,
            },
        ).fetchone()

    return run


around_edges = st.one_of(
    ages,
    st.integers(-2, 2).map(lambda us: timedelta(days=FRESH_DAYS, microseconds=us)),
)
pass_rates = st.one_of(rates, st.sampled_from([THRESHOLD - Decimal("0.0001"), THRESHOLD]))


@settings(
    max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(prices, rates, rates, pass_rates, around_edges)
def test_python_and_sql_compute_the_same_commission(
    sql_commission, price, base, bonus, pass_rate, age
):
    partner = P(base, bonus, pass_rate)
    py = calculate_commission(price, partner, NOW - age, NOW)
    rate, amount, bonuses = sql_commission(price, partner, NOW - age, NOW)
    assert (rate, amount, tuple(bonuses)) == (py.rate, py.amount, py.bonuses)
