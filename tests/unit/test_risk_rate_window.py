"""The rate limit's window with orders stamped out of time order.

Two position actors' intents may reach risk out of stamp order. An order is
counted against the seconds around its own stamp, never against a window
that is not its own, and no second ever holds more approvals than the limit,
whatever the arrival order. The expected outcomes are counted by hand.
"""

from __future__ import annotations

from decimal import Decimal

from posbus.actors.model.risk_engine import RiskEngine
from posbus.actors.model.risk_exposure import PositionExposure
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_request import OrderRequest
from posbus.actors.model.side import Side

D = Decimal
S = 1_000_000_000
T0 = 1_704_067_200_000_000_000
LIMITS = RiskLimits(
    daily_loss_limit=D(1_000),
    max_drawdown=D("0.5"),
    max_leverage=D(10),
    warning_fraction=D("0.9"),
    warning_leverage_factor=D("0.5"),
    max_group_exposure=D(1_000_000),
    max_total_exposure=D(1_000_000),
    max_order_notional=D(1_000_000),
    max_orders_per_second=3,
    cooldown_s=30,
    stale_after_s=3_600,
)


def _engine() -> RiskEngine:
    engine = RiskEngine(LIMITS, D(100_000), T0)
    flat = PositionExposure("a", "BTC", D(0), D(100), T0, D(0), D(0), "crypto", D(1))
    engine.update_position(flat, T0)
    return engine


def _approved(engine: RiskEngine, ts_ns: int, n: int) -> bool:
    order = OrderRequest("a", "BTC", Side.BUY, D(1), D(100), f"o{n}", ts_ns)
    return engine.check_order(order).approved


def test_an_order_stamped_after_a_full_second_of_approvals_counts_only_its_own_second() -> None:
    engine = _engine()
    stamps = [T0 + 2 * S, T0 + 2 * S, T0 + 2 * S]
    assert [_approved(engine, ts, i) for i, ts in enumerate(stamps)] == [True] * 3
    # Stamped 1.5 s before them: its window (T0, T0 + 0.5 s] holds no approval.
    assert _approved(engine, T0 + S // 2, 9), "refused for approvals outside its window"


def test_no_second_holds_more_approvals_than_the_limit_whatever_the_arrival_order() -> None:
    engine = _engine()
    stamps = [T0, T0 + S // 10, T0 + S // 5, T0 + 3 * S, T0 + S // 2]
    approved = [ts for i, ts in enumerate(stamps) if _approved(engine, ts, i)]
    # Four approvals stamped within T0 .. T0 + 0.5 s: one more than the limit allows.
    busiest = max(sum(1 for t in approved if end - S < t <= end) for end in approved)
    assert busiest <= LIMITS.max_orders_per_second, approved


def test_a_late_order_is_refused_when_it_would_overfill_a_later_second() -> None:
    engine = _engine()
    # Three approvals at T0 + 0.6, 0.7, 0.8 s; an order stamped T0 + 0.5 s would
    # make the second (T0 - 0.2 s, T0 + 0.8 s] hold four.
    for i, ts in enumerate((T0 + 6 * S // 10, T0 + 7 * S // 10, T0 + 8 * S // 10)):
        assert _approved(engine, ts, i)
    assert not _approved(engine, T0 + S // 2, 9)
    # Stamped 1 s before the first of them, it shares no second with two of them.
    assert _approved(engine, T0 - 4 * S // 10, 10)


def test_an_order_stamped_before_the_late_horizon_is_judged_at_the_horizon() -> None:
    engine = _engine()
    for i in range(3):
        assert _approved(engine, T0 + 20 * S + i, i)
    # 20 s late: judged as if 10 s late, where no approval is: approved, never counted
    # against the full second at T0 + 20 s.
    assert _approved(engine, T0, 9)
    assert not _approved(engine, T0 + 20 * S + 5, 10)
