"""Working orders count in the pre-trade checks, filled, at their limit prices.

A desk of BTC (group crypto) and ETH (group alt), both at mark 100 and
correlation 1, flat. Each resting order is a buy of 40 at 100: a notional of
4,000, within every per-order limit. The positions report their working
orders in their exposures, as a position actor does after each submit, fill
and cancel. Every number is worked out by hand in a comment.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from posbus.actors.model.risk_engine import RiskEngine
from posbus.actors.model.risk_exposure import PositionExposure
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_request import OrderRequest, RiskDecision
from posbus.actors.model.side import Side

D = Decimal
T0 = 1_704_067_200_000_000_000
LIMITS = RiskLimits(
    daily_loss_limit=D(1_000),
    max_drawdown=D("0.1"),
    max_leverage=D(3),
    warning_fraction=D("0.8"),
    warning_leverage_factor=D("0.5"),
    max_group_exposure=D(20_000),
    max_total_exposure=D(25_000),
    max_order_notional=D(5_000),
    max_orders_per_second=1_000,
    cooldown_s=300,
    stale_after_s=60,
)
GROUPS = {"BTC": "crypto", "ETH": "alt"}
EQUITY = D(100_000)


class Desk:
    """The engine and what each position holds: qty and its working buys (qty at 100)."""

    def __init__(self, limits: RiskLimits = LIMITS, equity: Decimal = EQUITY) -> None:
        self.engine = RiskEngine(limits, equity, T0)
        self.qty = {symbol: D(0) for symbol in GROUPS}
        self.working: dict[str, list[Decimal]] = {symbol: [] for symbol in GROUPS}
        self.orders = 0
        for symbol in GROUPS:
            self.report(symbol)

    def report(self, symbol: str) -> None:
        working = sum(self.working[symbol], D(0))
        exposure = PositionExposure(
            "a",
            symbol,
            self.qty[symbol],
            D(100),
            T0,
            D(0),
            D(0),
            GROUPS[symbol],
            D(1),
            working_buy_qty=working,
            working_buy_notional=working * 100,
        )
        self.engine.update_position(exposure, T0)

    def order(self, symbol: str, qty: str, side: Side = Side.BUY) -> RiskDecision:
        """Check a limit order at 100; an approved one rests (reported working)."""
        self.orders += 1
        request = OrderRequest("a", symbol, side, D(qty), D(100), f"o{self.orders}", T0)
        decision = self.engine.check_order(request)
        if decision.approved and side is Side.BUY:
            self.working[symbol].append(D(qty))
            self.report(symbol)
        return decision

    def fill(self, symbol: str) -> None:
        """The oldest working buy of `symbol` fills whole at 100."""
        self.qty[symbol] += self.working[symbol].pop(0)
        self.report(symbol)

    def cancel(self, symbol: str) -> None:
        """The oldest working buy of `symbol` is cancelled."""
        self.working[symbol].pop(0)
        self.report(symbol)


def six_resting_orders() -> Desk:
    """Three buys each of BTC and ETH: 12,000 per group, 24,000 in total."""
    desk = Desk()
    for symbol in ("BTC", "ETH") * 3:
        assert desk.order(symbol, "40").approved
    return desk


def test_resting_orders_each_within_limits_cannot_together_pass_the_total_cap() -> None:
    desk = six_resting_orders()
    assert desk.engine.metrics()["worst_case_total_exposure"] == "24000"
    assert desk.engine.metrics()["total_exposure"] == "0"  # nothing is held yet

    # A seventh: 24,000 + 4,000 = 28,000 > 25,000, though ETH alone (16,000) is within 20,000.
    refused = desk.order("ETH", "40")
    assert (refused.approved, refused.check) == (False, "total_exposure")
    assert refused.values["exposure"] == "24000"
    assert refused.values["projected_exposure"] == "28000"
    # 10 more lands exactly on the cap (inclusive): 25,000 passes, then 0.01 more does not.
    assert desk.order("ETH", "10").approved
    assert desk.order("ETH", "0.01").check == "total_exposure"


def test_a_group_counts_its_own_resting_orders() -> None:
    desk = Desk()
    for _ in range(5):
        assert desk.order("BTC", "40").approved  # 5 x 4,000 = 20,000: at the group cap
    refused = desk.order("BTC", "0.01")  # 20,001 > 20,000
    assert (refused.approved, refused.check) == (False, "group_exposure")


def test_a_fill_of_a_working_order_is_not_counted_twice() -> None:
    desk = six_resting_orders()
    desk.fill("BTC")
    # Held 40 BTC (4,000) + 20,000 still working: 24,000 as before, not 28,000.
    assert desk.engine.metrics()["total_exposure"] == "4000"
    assert desk.engine.metrics()["worst_case_total_exposure"] == "24000"
    assert desk.order("ETH", "10").approved  # 25,000
    assert desk.order("ETH", "0.01").check == "total_exposure"


def test_a_cancel_frees_the_room_its_order_took() -> None:
    desk = six_resting_orders()
    assert not desk.order("BTC", "40").approved  # 28,000
    desk.cancel("ETH")
    # 20,000 working: 4,000 more makes 24,000.
    assert desk.order("BTC", "40").approved


def test_a_sell_is_judged_on_the_low_end_and_does_not_use_the_buys_room() -> None:
    desk = six_resting_orders()
    # If every buy fills: +24,000; if only the sell fills: -4,000. Neither passes 25,000.
    assert desk.order("BTC", "40", Side.SELL).approved
    # But the sell does not make room for more buys: the buys may fill and the sell not.
    assert desk.order("ETH", "40").check == "total_exposure"


def test_leverage_counts_the_resting_orders_filled() -> None:
    wide = replace(LIMITS, max_group_exposure=D(10**6), max_total_exposure=D(10**6))
    desk = Desk(wide, equity=D(10_000))  # cap 3 x 10,000 = 30,000
    for _ in range(7):
        assert desk.order("BTC", "40").approved  # 7 x 4,000 = 28,000
    refused = desk.order("BTC", "40")  # 28,000 + 4,000 = 32,000 > 30,000
    assert (refused.approved, refused.check) == (False, "leverage")
    assert refused.values["projected_gross"] == "32000"
    assert desk.engine.metrics()["worst_case_gross"] == "28000"
    assert desk.engine.metrics()["gross"] == "0"
