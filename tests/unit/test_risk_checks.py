"""The named pre-trade checks at their boundaries: caps are inclusive, hedges pass."""

from __future__ import annotations

from decimal import Decimal

import pytest

from posbus.actors.model.risk_checks import (
    group_exposure,
    leverage,
    leverage_cap,
    order_notional,
    risk_reducing,
    total_exposure,
)
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_state import RiskState

D = Decimal
LIMITS = RiskLimits(
    daily_loss_limit=D(1_000),
    max_drawdown=D("0.1"),
    max_leverage=D(3),
    warning_fraction=D("0.8"),
    warning_leverage_factor=D("0.5"),
    max_group_exposure=D(20_000),
    max_total_exposure=D(25_000),
    max_order_notional=D(5_000),
    max_orders_per_second=10,
    cooldown_s=300,
    stale_after_s=5,
)


@pytest.mark.parametrize(
    ("position", "order", "reducing"),
    [
        ("2", "-2", True),  # closes it exactly
        ("2", "-0.5", True),
        ("-2", "1", True),
        ("2", "-2.01", False),  # flips past zero
        ("2", "1", False),  # adds
        ("0", "-1", False),  # nothing to reduce
    ],
)
def test_an_order_is_risk_reducing_only_when_it_shrinks_the_position_without_flipping(
    position: str, order: str, reducing: bool
) -> None:
    assert risk_reducing(D(position), D(order)) is reducing


def test_an_order_notional_at_the_cap_passes_and_beyond_it_is_refused() -> None:
    assert order_notional(D(5_000), LIMITS) is None
    refusal = order_notional(D("5000.01"), LIMITS)
    assert refusal is not None and refusal.check == "order_notional"
    assert refusal.values == {"notional": "5000.01", "limit": "5000"}


def test_the_leverage_cap_is_lowered_in_warning_only() -> None:
    assert leverage_cap(LIMITS, RiskState.NORMAL) == 3
    assert leverage_cap(LIMITS, RiskState.WARNING) == D("1.5")
    assert leverage(D(30_000), D(10_000), D(3)) is None
    refusal = leverage(D("30000.5"), D(10_000), D(3))
    assert refusal is not None and refusal.values["projected_leverage"] == "3.00005"


def test_an_exposure_beyond_its_cap_passes_when_the_order_lowers_it() -> None:
    assert group_exposure("crypto", D(30_000), D(29_000), LIMITS) is None
    growing = group_exposure("crypto", D(19_000), D(-20_001), LIMITS)
    assert growing is not None and growing.check == "group_exposure"
    assert total_exposure(D(-26_000), D(-25_500), LIMITS) is None
    assert total_exposure(D(0), D(25_000), LIMITS) is None
    beyond = total_exposure(D(0), D("25000.1"), LIMITS)
    assert beyond is not None and beyond.check == "total_exposure"
