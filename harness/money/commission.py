"""Partner commissions on a lead sale: the rules the source design calls but never defines.

Rules, in order (numbers from ``MARKETPLACE_CONFIG``):

1. The partner's ``base_commission_rate``.
2. Plus the partner's ``bonus_commission_rate`` when its ``verification_pass_rate`` is at
   least ``COMMISSION_BONUS_PASS_RATE`` (bonus ``"verification"``).
3. Plus ``COMMISSION_FRESHNESS_BONUS_RATE`` when the lead is sold within
   ``COMMISSION_FRESHNESS_DAYS`` of its creation, i.e. ``sale_date - lead_created_at`` is at
   most that many days (bonus ``"freshness"``).
4. The rate is capped at 1; the amount is ``sale_price x rate`` rounded half-up to cents.

A bonus whose rate is zero is not listed. The atomic purchase computes the same numbers in
SQL (``calculate_commission`` in migration 0004); the tests hold the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

from harness.config import MARKETPLACE_CONFIG
from harness.values import CENT

ONE = Decimal(1)


class CommissionPartner(Protocol):
    """What a commission needs to know about a partner."""

    @property
    def base_commission_rate(self) -> Decimal: ...
    @property
    def bonus_commission_rate(self) -> Decimal: ...
    @property
    def verification_pass_rate(self) -> Decimal: ...


@dataclass(frozen=True)
class Commission:
    """A partner's share of one sale: rate in [0, 1], amount in cents, bonuses by name."""

    rate: Decimal
    amount: Decimal
    bonuses: tuple[str, ...] = ()


def calculate_commission(
    sale_price: Decimal,
    partner: CommissionPartner,
    lead_created_at: datetime,
    sale_date: datetime,
) -> Commission:
    """The commission on selling a lead at ``sale_price`` (see the module's rules)."""
    rate = partner.base_commission_rate or Decimal(0)
    bonuses: list[str] = []
    bonus = partner.bonus_commission_rate or Decimal(0)
    pass_rate = partner.verification_pass_rate or Decimal(0)
    if pass_rate >= MARKETPLACE_CONFIG["COMMISSION_BONUS_PASS_RATE"] and bonus > 0:
        rate += bonus
        bonuses.append("verification")
    freshness = MARKETPLACE_CONFIG["COMMISSION_FRESHNESS_BONUS_RATE"]
    window = timedelta(days=MARKETPLACE_CONFIG["COMMISSION_FRESHNESS_DAYS"])
    if sale_date - lead_created_at <= window and freshness > 0:
        rate += freshness
        bonuses.append("freshness")
    rate = min(rate, ONE)
    amount = (sale_price * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    return Commission(rate=rate, amount=amount, bonuses=tuple(bonuses))


__all__ = ["Commission", "CommissionPartner", "calculate_commission"]
