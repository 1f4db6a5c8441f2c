"""The pure risk engine: limits at their boundaries, the state machine, snapshots, aggregates."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model.errors import InvalidState, OrderValidationError
from posbus.actors.model.risk import (
    OrderRequest,
    PositionExposure,
    RiskDecision,
    RiskEngine,
    RiskLimits,
    RiskState,
)
from posbus.actors.model.side import Side

D = Decimal
NS = 1_000_000_000
DAY = 86_400 * NS
# Noon UTC, so that no test crosses a trading-day boundary by accident.
T0 = 20_000 * DAY + 12 * 3_600 * NS
COOLDOWN_S = 300
EQUITY = D("10000")


def limits(**overrides: object) -> RiskLimits:
    base = RiskLimits(
        daily_loss_limit=D("1000"),
        max_drawdown=D("0.10"),
        max_leverage=D("3"),
        warning_fraction=D("0.8"),
        warning_leverage_factor=D("0.5"),
        max_group_exposure=D("20000"),
        max_total_exposure=D("25000"),
        max_order_notional=D("5000"),
        max_orders_per_second=1000,
        cooldown_s=COOLDOWN_S,
        stale_after_s=5,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def exposure(
    symbol: str,
    qty: str,
    mark: str | None = "100",
    *,
    account: str = "acct",
    realized: str = "0",
    unrealized: str = "0",
    group: str = "majors",
    corr: str = "1",
    mark_ts: int = T0,
) -> PositionExposure:
    return PositionExposure(
        account=account,
        symbol=symbol,
        qty=D(qty),
        mark=None if mark is None else D(mark),
        mark_ts_ns=None if mark is None else mark_ts,
        realized_pnl=D(realized),
        unrealized_pnl=D(unrealized),
        group=group,
        correlation=D(corr),
    )


def order(
    symbol: str,
    side: Side,
    qty: str,
    price: str | None = None,
    *,
    ts: int = T0,
    account: str = "acct",
) -> OrderRequest:
    return OrderRequest(
        account=account,
        symbol=symbol,
        side=side,
        qty=D(qty),
        price=None if price is None else D(price),
        order_id="o-1",
        ts_ns=ts,
    )


def engine_with(*exposures: PositionExposure, lim: RiskLimits | None = None) -> RiskEngine:
    engine = RiskEngine(lim or limits(), EQUITY, T0)
    for exp in exposures:
        engine.update_position(exp, T0)
    return engine


def assert_refused(decision: RiskDecision, check: str) -> None:
    assert not decision.approved
    assert decision.check == check, decision.reason
    assert decision.reason


# -- per-order notional ------------------------------------------------------------


@pytest.mark.parametrize(
    ("qty", "approved"),
    [
        ("49.9999", True),  # 49.9999 * 100 = 4999.99 < 5000
        ("50", True),  # 50 * 100 = 5000: at the cap passes
        ("50.0001", False),  # 50.0001 * 100 = 5000.01 > 5000
    ],
)
def test_order_notional_passes_up_to_the_cap_and_is_refused_beyond(
    qty: str, approved: bool
) -> None:
    engine = engine_with(exposure("BTC", "0"))
    decision = engine.check_order(order("BTC", Side.BUY, qty, "100"))
    assert decision.approved is approved
    if not approved:
        assert_refused(decision, "order_notional")
        assert decision.values == {"notional": "5000.01", "limit": "5000"}


def test_market_order_notional_is_priced_at_the_latest_mark() -> None:
    # 40 * 125 = 5000 at the cap; 40.0001 * 125 = 5000.0125 beyond
    engine = engine_with(exposure("BTC", "0", "125"))
    assert engine.check_order(order("BTC", Side.BUY, "40")).approved
    decision = engine.check_order(order("BTC", Side.BUY, "40.0001"))
    assert_refused(decision, "order_notional")
    assert decision.values["notional"] == "5000.0125"


# -- leverage ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qty", "approved"),
    [
        ("99.9999", True),  # 20000 + 9999.99 = 29999.99 < 3 * 10000
        ("100", True),  # 20000 + 10000 = 30000: at the cap passes
        ("100.0001", False),  # 20000 + 10000.01 = 30000.01 > 30000
    ],
)
def test_projected_leverage_passes_up_to_the_cap_and_is_refused_beyond(
    qty: str, approved: bool
) -> None:
    # ETH 80 * 250 = 20000 gross (leverage 2, below the 2.4 warning level);
    # correlation 0.5 keeps its net (10000) clear of the exposure caps.
    engine = engine_with(
        exposure("ETH", "80", "250", group="alts", corr="0.5"),
        exposure("BTC", "0"),
        lim=limits(max_order_notional=D("50000")),
    )
    assert engine.state is RiskState.NORMAL
    decision = engine.check_order(order("BTC", Side.BUY, qty, "100"))
    assert decision.approved is approved
    if not approved:
        assert_refused(decision, "leverage")
        assert decision.values == {
            "projected_gross": "30000.01",
            "equity": "10000",
            "projected_leverage": "3.000001",  # 30000.01 / 10000
            "cap": "3",
        }


def test_leverage_cap_shrinks_in_warning() -> None:
    # Realized -800: daily loss 800 = 0.8 * 1000 -> Warning; equity 9200.
    # Warning cap 3 * 0.5 = 1.5 -> at most 1.5 * 9200 = 13800 gross.
    engine = engine_with(
        exposure("ETH", "0", realized="-800"),
        exposure("BTC", "0"),
        lim=limits(max_order_notional=D("50000"), max_drawdown=D("0.5")),
    )
    assert engine.state is RiskState.WARNING
    assert engine.check_order(order("BTC", Side.BUY, "138", "100")).approved  # 13800
    decision = engine.check_order(order("BTC", Side.BUY, "138.0001", "100"))  # 13800.01
    assert_refused(decision, "leverage")
    assert decision.values["cap"] == "1.5"
    assert decision.values["equity"] == "9200"


def test_non_positive_equity_refuses_new_risk() -> None:
    # Realized -10000 wipes out the 10000 equity: drawdown 100 % forces CoolDown;
    # once it expires the breach persists and equity 0 refuses all new risk.
    engine = engine_with(exposure("BTC", "0", realized="-10000"))
    assert engine.state is RiskState.COOLDOWN
    engine.tick(T0 + COOLDOWN_S * NS)
    decision = engine.check_order(order("BTC", Side.BUY, "1", "100", ts=T0 + COOLDOWN_S * NS))
    assert_refused(decision, "leverage")
    assert decision.values == {"equity": "0"}


# -- correlation-group and total exposure -------------------------------------------


@pytest.mark.parametrize(
    ("qty", "approved"),
    [
        ("99.9999", True),  # 10000 + 9999.99 = 19999.99 < 20000
        ("100", True),  # 10000 + 10000 = 20000: at the cap passes
        ("100.0001", False),  # 10000 + 10000.01 = 20000.01 > 20000
    ],
)
def test_group_exposure_passes_up_to_the_cap_and_is_refused_beyond(
    qty: str, approved: bool
) -> None:
    engine = engine_with(exposure("BTC", "100"), lim=limits(max_order_notional=D("50000")))
    decision = engine.check_order(order("BTC", Side.BUY, qty, "100"))
    assert decision.approved is approved
    if not approved:
        assert_refused(decision, "group_exposure")
        assert decision.values == {
            "group": "majors",
            "exposure": "10000",
            "projected_exposure": "20000.01",
            "limit": "20000",
        }


@pytest.mark.parametrize(
    ("qty", "approved"),
    [
        ("79.9999", True),  # 10000 + 79.9999 * 250 * 0.5 = 19999.9875
        ("80", True),  # 10000 + 80 * 250 * 0.5 = 20000
        ("80.0001", False),  # 10000 + 80.0001 * 250 * 0.5 = 20000.0125
    ],
)
def test_short_in_a_negatively_correlated_symbol_adds_to_group_exposure(
    qty: str, approved: bool
) -> None:
    # ETH correlates -0.5 with the reference: selling it is like buying the group.
    # Leverage cap 5 (50000 gross) keeps the leverage check out of the way.
    engine = engine_with(
        exposure("BTC", "100"),
        exposure("ETH", "0", "250", corr="-0.5"),
        lim=limits(max_order_notional=D("50000"), max_leverage=D("5")),
    )
    decision = engine.check_order(order("ETH", Side.SELL, qty, "250"))
    assert decision.approved is approved
    if not approved:
        assert_refused(decision, "group_exposure")
        assert decision.values["projected_exposure"] == "20000.0125"


def test_hedge_that_lowers_an_over_limit_group_exposure_passes() -> None:
    # BTC 100 marked up to 210: group net 21000 > 20000 (leverage 2.1, Normal).
    engine = engine_with(exposure("BTC", "100", "210"), exposure("ETH", "0", "250"))
    assert_refused(engine.check_order(order("BTC", Side.BUY, "0.01", "210")), "group_exposure")
    # Selling 10 ETH (correlation 1): 21000 - 2500 = 18500, lower than now.
    decision = engine.check_order(order("ETH", Side.SELL, "10", "250"))
    assert decision.approved
    assert not decision.risk_reducing
    assert decision.values["projected_group_exposure"] == "18500"


@pytest.mark.parametrize(
    ("qty", "approved"),
    [
        ("49.9999", True),  # 10000 + 10000 + 4999.99 = 24999.99 < 25000
        ("50", True),  # 10000 + 10000 + 5000 = 25000: at the cap passes
        ("50.0001", False),  # 10000 + 10000 + 5000.01 = 25000.01 > 25000
    ],
)
def test_total_exposure_passes_up_to_the_cap_and_is_refused_beyond(
    qty: str, approved: bool
) -> None:
    engine = engine_with(
        exposure("BTC", "100"),
        exposure("SOL", "100", group="alts"),
        lim=limits(max_order_notional=D("50000")),
    )
    decision = engine.check_order(order("SOL", Side.BUY, qty, "100"))
    assert decision.approved is approved
    if not approved:
        assert_refused(decision, "total_exposure")
        assert decision.values == {
            "exposure": "20000",
            "projected_exposure": "25000.01",
            "limit": "25000",
        }


# -- Warning -------------------------------------------------------------------------


def test_warning_is_entered_at_the_warning_leverage_and_left_below_it() -> None:
    # Warning level: 0.8 * 3 = 2.4 leverage = 24000 gross on 10000 equity.
    engine = engine_with()
    assert engine.update_position(exposure("BTC", "239.99"), T0) == []  # 23999
    assert engine.state is RiskState.NORMAL

    [up] = engine.update_position(exposure("BTC", "240"), T0)  # 24000
    assert (up.previous, up.state) == (RiskState.NORMAL, RiskState.WARNING)
    assert "leverage 2.4" in up.reason
    assert up.values["gross"] == "24000"
    assert up.values["leverage"] == "2.4"

    [down] = engine.update_position(exposure("BTC", "239.99"), T0)
    assert (down.previous, down.state) == (RiskState.WARNING, RiskState.NORMAL)
    assert engine.state is RiskState.NORMAL


# -- CoolDown ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("realized", "state"),
    [
        ("-999.99", RiskState.WARNING),  # loss 999.99 < 1000 (but >= 800: Warning)
        ("-1000", RiskState.COOLDOWN),  # reaching the limit forces CoolDown
        ("-1000.01", RiskState.COOLDOWN),
    ],
)
def test_daily_loss_reaching_the_limit_forces_cooldown(realized: str, state: RiskState) -> None:
    # max_drawdown 0.5 keeps the drawdown (10 % at most here) out of the picture.
    engine = engine_with(lim=limits(max_drawdown=D("0.5")))
    [transition] = engine.update_position(exposure("BTC", "0", realized=realized), T0)
    assert engine.state is state
    assert transition.state is state
    if state is RiskState.COOLDOWN:
        assert "daily loss limit reached" in transition.reason
        assert engine.cooldown_until_ns == T0 + COOLDOWN_S * NS
        assert transition.values["cooldown_until_ns"] == str(T0 + COOLDOWN_S * NS)
    else:
        assert engine.cooldown_until_ns is None


def test_daily_loss_transition_carries_the_numbers() -> None:
    engine = engine_with(lim=limits(max_drawdown=D("0.5")))
    [transition] = engine.update_position(exposure("BTC", "0", realized="-1000"), T0)
    assert transition.previous is RiskState.NORMAL
    assert transition.ts_ns == T0
    assert transition.values["equity"] == "9000"
    assert transition.values["daily_pnl"] == "-1000"  # 9000 - 10000
    assert transition.values["day_start_equity"] == "10000"


@pytest.mark.parametrize(
    ("unrealized", "state", "drawdown"),
    [
        # 12000 - 10800.01 = 1199.99 < 0.10 * 12000; 1199.99 / 12000 = 0.09999916666...
        ("800.01", RiskState.WARNING, "0.099999166667"),
        # 12000 - 10800 = 1200 = 0.10 * 12000: reaching the limit
        ("800", RiskState.COOLDOWN, "0.1"),
        # 1200.01 / 12000 = 0.10000083333...
        ("799.99", RiskState.COOLDOWN, "0.100000833333"),
    ],
)
def test_drawdown_from_peak_reaching_the_limit_forces_cooldown(
    unrealized: str, state: RiskState, drawdown: str
) -> None:
    # +2000 sets the peak at 12000; the fall back to +800 is a drawdown of 1200
    # while the day is still up 800 (no daily loss).
    engine = engine_with(exposure("BTC", "1", unrealized="2000"))
    transitions = engine.update_position(exposure("BTC", "1", unrealized=unrealized), T0)
    assert engine.state is state
    assert engine.metrics()["peak_equity"] == "12000"
    assert engine.metrics()["drawdown"] == drawdown
    [transition] = transitions
    assert transition.values["drawdown"] == drawdown
    if state is RiskState.COOLDOWN:
        assert "drawdown limit reached" in transition.reason


def cooled_down_engine() -> RiskEngine:
    """BTC long 10, and a realized loss of 1000 elsewhere: CoolDown at T0."""
    engine = engine_with(
        exposure("BTC", "10"),
        exposure("ETH", "0", realized="-1000"),
        lim=limits(max_drawdown=D("0.5")),
    )
    assert engine.state is RiskState.COOLDOWN
    return engine


def test_cooldown_lets_risk_reducing_orders_through() -> None:
    engine = cooled_down_engine()
    partial = engine.check_order(order("BTC", Side.SELL, "4"))
    assert partial.approved
    assert partial.risk_reducing
    assert engine.check_order(order("BTC", Side.SELL, "10")).approved  # to flat


@pytest.mark.parametrize(
    ("symbol", "side", "qty"),
    [
        ("BTC", Side.BUY, "1"),  # adds to the long
        ("BTC", Side.SELL, "10.01"),  # flips past zero to a short
        ("ETH", Side.SELL, "1"),  # opens a new position
    ],
)
def test_cooldown_refuses_risk_increasing_and_flipping_orders(
    symbol: str, side: Side, qty: str
) -> None:
    engine = cooled_down_engine()
    decision = engine.check_order(order(symbol, side, qty, "100"))
    assert_refused(decision, "cooldown")
    assert not decision.risk_reducing
    assert decision.values["cooldown_until_ns"] == str(T0 + COOLDOWN_S * NS)


def test_cooldown_expires_by_its_timer_to_the_state_the_numbers_imply() -> None:
    engine = cooled_down_engine()
    until = T0 + COOLDOWN_S * NS
    assert engine.tick(until - 1) == []
    assert engine.state is RiskState.COOLDOWN

    [transition] = engine.tick(until)
    # The loss of 1000 is still there: Warning, and new risk is still refused.
    assert (transition.previous, transition.state) == (RiskState.COOLDOWN, RiskState.WARNING)
    assert "cooldown expired" in transition.reason
    assert engine.cooldown_until_ns is None
    engine.update_position(exposure("BTC", "10", mark_ts=until), until)  # a fresh mark
    decision = engine.check_order(order("BTC", Side.BUY, "1", "100", ts=until))
    assert_refused(decision, "daily_loss")
    assert decision.values == {"daily_loss": "1000", "limit": "1000"}


def test_cooldown_expires_to_normal_once_the_loss_is_recovered() -> None:
    engine = engine_with(lim=limits(max_drawdown=D("0.5")))
    engine.update_position(exposure("BTC", "1", unrealized="-1000"), T0)
    assert engine.state is RiskState.COOLDOWN
    # Marks recover during the cooldown: it keeps running all the same.
    assert engine.update_position(exposure("BTC", "1", unrealized="0"), T0 + NS) == []
    assert engine.state is RiskState.COOLDOWN
    [transition] = engine.tick(T0 + COOLDOWN_S * NS)
    assert transition.state is RiskState.NORMAL


def test_new_trading_day_does_not_lift_cooldown() -> None:
    engine = engine_with(lim=limits(max_drawdown=D("0.5")))
    midnight = T0 + 12 * 3_600 * NS
    engine.update_position(exposure("BTC", "0", realized="-1000"), midnight - 60 * NS)
    assert engine.state is RiskState.COOLDOWN

    assert engine.tick(midnight) == []
    assert engine.state is RiskState.COOLDOWN
    assert engine.metrics()["day_start_equity"] == "9000"  # reset to equity at the boundary

    [transition] = engine.tick(midnight - 60 * NS + COOLDOWN_S * NS)
    # New day: daily loss 0; drawdown 1000 / 10000 = 0.1 < 0.8 * 0.5: Normal.
    assert transition.state is RiskState.NORMAL


def test_cooldown_survives_a_snapshot_round_trip() -> None:
    engine = cooled_down_engine()
    snapshot = json.loads(json.dumps(engine.to_dict()))
    restored = RiskEngine.from_dict(snapshot)

    assert restored.to_dict() == engine.to_dict()
    assert restored.metrics() == engine.metrics()
    assert restored.state is RiskState.COOLDOWN
    assert restored.cooldown_until_ns == T0 + COOLDOWN_S * NS
    assert_refused(restored.check_order(order("BTC", Side.BUY, "1", "100")), "cooldown")
    assert restored.check_order(order("BTC", Side.SELL, "1")).approved
    [transition] = restored.tick(T0 + COOLDOWN_S * NS)
    assert transition.previous is RiskState.COOLDOWN


def test_peak_equity_keeps_every_digit_the_pnl_was_ever_given_with() -> None:
    """The snapshot (and the journaled durable state) writes the peak as an exact string:
    its trailing zeros come from every P&L value the sums have seen, mark changes included."""
    engine = RiskEngine(limits(), EQUITY, T0)
    realized = D("-1.5")
    for i, unrealized in enumerate(["0.250", "2.5", "4.00000"]):
        # A mark change: the position hands over the same realized P&L object every time.
        held = replace(exposure("BTC", "1", unrealized=unrealized), realized_pnl=realized)
        engine.update_position(held, T0 + i)

    snapshot = engine.to_dict()
    assert snapshot["peak_equity"] == "10002.50000"
    assert engine.metrics()["equity"] == "10002.5"
    assert RiskEngine.from_dict(snapshot).to_dict() == snapshot


def test_snapshot_of_an_unknown_version_is_refused() -> None:
    snapshot = engine_with().to_dict()
    snapshot["version"] = 99
    with pytest.raises(ValueError, match="version"):
        RiskEngine.from_dict(snapshot)


# -- trading day -------------------------------------------------------------------


def test_day_rollover_resets_day_start_equity_at_the_offset_boundary() -> None:
    # The trading day starts at 01:00 UTC; a loss of 800 is a Warning (drawdown 0.08
    # stays below 0.8 * 0.5 = 0.4).
    engine = engine_with(lim=limits(trading_day_offset_s=3_600, max_drawdown=D("0.5")))
    engine.update_position(exposure("BTC", "0", realized="-800"), T0)
    assert engine.state is RiskState.WARNING
    next_midnight = T0 + 12 * 3_600 * NS

    assert engine.tick(next_midnight + 30 * 60 * NS) == []  # 00:30 UTC: same trading day
    assert engine.metrics()["day_start_equity"] == "10000"

    [transition] = engine.tick(next_midnight + 3_600 * NS)  # 01:00 UTC: a new day
    assert (transition.previous, transition.state) == (RiskState.WARNING, RiskState.NORMAL)
    assert "trading day rollover" in transition.reason
    metrics = engine.metrics()
    assert metrics["day_start_equity"] == "9200"  # 10000 - 800
    assert metrics["daily_pnl"] == "0"


def test_update_in_a_new_day_measures_its_loss_from_the_new_day_start() -> None:
    engine = engine_with(lim=limits(max_drawdown=D("0.5")))
    engine.update_position(exposure("BTC", "1", unrealized="-700"), T0)
    # Next day, the same position loses 400 more: 1100 from the start, but only
    # 400 today (day starts at 9300): no cooldown, not even a Warning (400 < 800).
    tomorrow = T0 + DAY
    engine.update_position(exposure("BTC", "1", unrealized="-1100"), tomorrow)
    assert engine.state is RiskState.NORMAL
    assert engine.metrics()["daily_pnl"] == "-400"


# -- stale and missing data ----------------------------------------------------------


def test_stale_open_position_refuses_new_risk_anywhere_until_its_mark_is_refreshed() -> None:
    engine = engine_with(exposure("BTC", "1"), exposure("ETH", "1", "250", group="alts"))
    engine.update_position(exposure("ETH", "1", "250", group="alts", mark_ts=T0 + 3 * NS), T0)

    # BTC's mark is exactly 5 s old: still fresh.
    assert engine.check_order(order("ETH", Side.BUY, "1", "250", ts=T0 + 5 * NS)).approved
    decision = engine.check_order(order("ETH", Side.BUY, "1", "250", ts=T0 + 5 * NS + 1))
    assert_refused(decision, "stale_mark")
    assert "acct/BTC" in decision.reason
    assert decision.values == {"mark_ts_ns": str(T0), "age_ns": "5000000001"}

    engine.update_position(exposure("BTC", "1", mark_ts=T0 + 6 * NS), T0 + 6 * NS)
    assert engine.check_order(order("ETH", Side.BUY, "1", "250", ts=T0 + 6 * NS)).approved


def test_stalest_position_is_found_after_many_updates_of_the_others() -> None:
    # 200 updates of ETH push superseded heap entries; BTC (never updated) stays the stalest.
    engine = engine_with(exposure("BTC", "1"))
    for i in range(200):
        engine.update_position(exposure("ETH", str(i + 1), "250", mark_ts=T0 + i), T0 + i)
    decision = engine.check_order(order("ETH", Side.BUY, "1", "250", ts=T0 + 6 * NS))
    assert_refused(decision, "stale_mark")
    assert "acct/BTC" in decision.reason
    # Closing BTC leaves ETH (mark at T0 + 199 ns) as the stalest: 6 s - 199 ns is stale too.
    engine.update_position(exposure("BTC", "0"), T0 + 300)
    decision = engine.check_order(order("BTC", Side.BUY, "1", "100", ts=T0 + 6 * NS))
    assert_refused(decision, "stale_mark")
    assert "acct/ETH" in decision.reason
    assert decision.values["mark_ts_ns"] == str(T0 + 199)


def test_stale_marks_do_not_block_closing_a_position() -> None:
    engine = engine_with(exposure("BTC", "1"))
    decision = engine.check_order(order("BTC", Side.SELL, "1", ts=T0 + 60 * NS))
    assert decision.approved
    assert decision.risk_reducing


def test_market_order_priced_from_a_stale_mark_is_refused() -> None:
    engine = engine_with(exposure("SOL", "0"))  # flat, mark at T0
    late = T0 + 5 * NS + 1
    decision = engine.check_order(order("SOL", Side.BUY, "1", ts=late))
    assert_refused(decision, "stale_mark")
    assert "SOL" in decision.reason
    # A limit order carries its own price and does not need the mark.
    assert engine.check_order(order("SOL", Side.BUY, "1", "100", ts=late)).approved


def test_market_order_without_a_mark_is_refused_as_missing_data() -> None:
    engine = engine_with(exposure("BTC", "0", None))
    decision = engine.check_order(order("BTC", Side.BUY, "1"))
    assert_refused(decision, "missing_data")
    assert "BTC" in decision.reason
    assert engine.check_order(order("BTC", Side.BUY, "1", "100")).approved


def test_order_on_an_unregistered_symbol_is_refused_as_missing_data() -> None:
    decision = engine_with().check_order(order("DOGE", Side.BUY, "1", "0.1"))
    assert_refused(decision, "missing_data")
    assert "DOGE" in decision.reason


def test_open_position_without_a_mark_refuses_new_risk_on_other_symbols() -> None:
    engine = engine_with(exposure("BTC", "1", None), exposure("ETH", "0", "250"))
    decision = engine.check_order(order("ETH", Side.BUY, "1", "250"))
    assert_refused(decision, "missing_data")
    assert "acct/BTC" in decision.reason


# -- halt and resume -----------------------------------------------------------------


def test_halt_refuses_new_risk_but_lets_positions_close() -> None:
    engine = engine_with(exposure("BTC", "10"))
    [transition] = engine.halt("operator kill switch", T0)
    assert (transition.previous, transition.state) == (RiskState.NORMAL, RiskState.HALTED)
    assert "operator kill switch" in transition.reason
    assert_refused(engine.check_order(order("BTC", Side.BUY, "1", "100")), "halted")
    assert engine.check_order(order("BTC", Side.SELL, "10")).approved
    assert engine.halt("again", T0) == []
    assert engine.halt_reason == "operator kill switch"


def test_resume_returns_to_the_state_the_numbers_imply() -> None:
    engine = engine_with(
        exposure("BTC", "0", realized="-800"), lim=limits(max_drawdown=D("0.5"))
    )  # daily loss 800: Warning
    engine.halt("check feeds", T0)
    [transition] = engine.resume(T0 + NS)
    assert (transition.previous, transition.state) == (RiskState.HALTED, RiskState.WARNING)
    assert engine.halt_reason == ""


def test_resume_never_lifts_an_unexpired_cooldown() -> None:
    engine = cooled_down_engine()
    engine.halt("investigate", T0 + 10 * NS)
    assert engine.state is RiskState.HALTED
    [transition] = engine.resume(T0 + 20 * NS)
    assert transition.state is RiskState.COOLDOWN
    assert engine.cooldown_until_ns == T0 + COOLDOWN_S * NS


def test_breach_while_halted_starts_a_cooldown_behind_the_halt() -> None:
    engine = engine_with(lim=limits(max_drawdown=D("0.5")))
    engine.halt("maintenance", T0)
    [transition] = engine.update_position(exposure("BTC", "0", realized="-1000"), T0 + NS)
    assert (transition.previous, transition.state) == (RiskState.HALTED, RiskState.HALTED)
    assert "daily loss limit reached" in transition.reason
    assert engine.cooldown_until_ns == T0 + NS + COOLDOWN_S * NS
    [resumed] = engine.resume(T0 + 2 * NS)
    assert resumed.state is RiskState.COOLDOWN


def test_resume_when_not_halted_raises_invalid_state() -> None:
    with pytest.raises(InvalidState) as caught:
        engine_with().resume(T0)
    assert caught.value.current == "Normal"
    assert caught.value.requested == "resume"


# -- order rate ----------------------------------------------------------------------


def test_order_rate_counts_approved_orders_in_a_sliding_second() -> None:
    engine = engine_with(exposure("BTC", "0"), lim=limits(max_orders_per_second=2))
    assert engine.check_order(order("BTC", Side.BUY, "1", "100", ts=T0)).approved
    assert engine.check_order(order("BTC", Side.BUY, "1", "100", ts=T0 + NS // 2)).approved
    decision = engine.check_order(order("BTC", Side.BUY, "1", "100", ts=T0 + NS - 1))
    assert_refused(decision, "order_rate")
    assert decision.values == {"approved_in_window": "2", "limit": "2"}
    # Exactly 1 s after the first approval it has left the window (ts - 1 s, ts].
    assert engine.check_order(order("BTC", Side.BUY, "1", "100", ts=T0 + NS)).approved
    assert_refused(
        engine.check_order(order("BTC", Side.BUY, "1", "100", ts=T0 + NS + NS // 2 - 1)),
        "order_rate",
    )


def test_refused_orders_do_not_use_up_the_rate_limit() -> None:
    engine = engine_with(exposure("BTC", "0"), lim=limits(max_orders_per_second=1))
    assert_refused(engine.check_order(order("BTC", Side.BUY, "51", "100")), "order_notional")
    assert engine.check_order(order("BTC", Side.BUY, "1", "100")).approved


def test_rate_limit_applies_to_risk_reducing_orders_too() -> None:
    engine = engine_with(exposure("BTC", "5"), lim=limits(max_orders_per_second=1))
    assert engine.check_order(order("BTC", Side.SELL, "1")).approved
    decision = engine.check_order(order("BTC", Side.SELL, "1"))
    assert_refused(decision, "order_rate")
    assert decision.risk_reducing


# -- validation ----------------------------------------------------------------------


def test_order_with_non_positive_qty_is_invalid_with_context() -> None:
    with pytest.raises(OrderValidationError) as caught:
        order("BTC", Side.BUY, "0")
    assert caught.value.order_id == "o-1"
    assert caught.value.symbol == "BTC"


def test_exposure_with_correlation_beyond_one_is_invalid() -> None:
    with pytest.raises(ValueError, match="correlation"):
        exposure("BTC", "1", corr="1.01")


def test_limits_from_toml_values_convert_floats_through_their_repr() -> None:
    raw = {k: v for k, v in limits().to_dict().items() if k != "trading_day_offset_s"}
    raw["max_drawdown"] = 0.1
    loaded = RiskLimits.from_dict(raw)
    assert loaded.max_drawdown == D("0.1")
    assert loaded.trading_day_offset_s == 0
    with pytest.raises(ValueError, match="unknown risk limit keys: max_levrage"):
        RiskLimits.from_dict({**raw, "max_levrage": "3"})


# -- aggregates by deltas --------------------------------------------------------------

_ACCOUNTS = ("a", "b")
_SYMBOLS = ("BTC", "ETH", "SOL", "XRP")
_GROUPS = ("majors", "alts", "memes")

_updates = st.lists(
    st.tuples(
        st.sampled_from(_ACCOUNTS),
        st.sampled_from(_SYMBOLS),
        st.one_of(st.just(D(0)), st.decimals(-1000, 1000, places=4)),  # qty
        st.one_of(st.none(), st.decimals(D("0.01"), 100_000, places=2)),  # mark
        st.integers(0, 10 * NS),  # mark age offset
        st.decimals(-5000, 5000, places=2),  # realized
        st.decimals(-5000, 5000, places=2),  # unrealized
        st.sampled_from(_GROUPS),
        st.decimals(-1, 1, places=2),  # correlation
    ),
    max_size=40,
)


def _as_exposure(update: tuple[object, ...]) -> PositionExposure:
    account, symbol, qty, mark, mark_ts, realized, unrealized, group, corr = update
    assert isinstance(mark_ts, int)
    return PositionExposure(
        account=str(account),
        symbol=str(symbol),
        qty=qty,  # type: ignore[arg-type]
        mark=mark,  # type: ignore[arg-type]
        mark_ts_ns=None if mark is None else T0 + mark_ts,
        realized_pnl=realized,  # type: ignore[arg-type]
        unrealized_pnl=unrealized,  # type: ignore[arg-type]
        group=str(group),
        correlation=corr,  # type: ignore[arg-type]
    )


@settings(max_examples=200, deadline=None)
@given(_updates)
def test_incremental_aggregates_equal_a_recomputation_from_scratch(
    updates: list[tuple[object, ...]],
) -> None:
    """After any sequence of updates, every aggregate equals its from-scratch sum, exactly."""
    engine = RiskEngine(limits(), EQUITY, T0)
    peak = EQUITY
    with localcontext() as ctx:
        ctx.prec = 100
        for i, update in enumerate(updates):
            engine.update_position(_as_exposure(update), T0 + i)
            stored = engine.positions()
            peak = max(peak, EQUITY + sum(e.realized_pnl + e.unrealized_pnl for e in stored))

        stored = engine.positions()
        marked = [e for e in stored if e.mark is not None]
        equity = EQUITY + sum((e.realized_pnl + e.unrealized_pnl for e in stored), D(0))
        gross = sum((abs(e.qty * e.mark) for e in marked if e.mark is not None), D(0))
        groups: dict[str, Decimal] = {}
        for e in marked:
            assert e.mark is not None
            groups[e.group] = groups.get(e.group, D(0)) + e.qty * e.mark * e.correlation
        total = sum(groups.values(), D(0))

    metrics = engine.metrics()
    assert D(metrics["equity"]) == equity
    assert D(metrics["peak_equity"]) == peak
    assert D(metrics["gross"]) == gross
    assert D(metrics["total_exposure"]) == total
    assert int(metrics["open_positions"]) == sum(1 for e in stored if e.qty != 0)
    reported = {
        key.removeprefix("group_exposure:"): D(value)
        for key, value in metrics.items()
        if key.startswith("group_exposure:")
    }
    assert set(groups) <= set(reported)
    for group, net in reported.items():
        assert net == groups.get(group, D(0))
    restored = RiskEngine.from_dict(engine.to_dict())
    assert restored.metrics() == metrics
    assert restored.to_dict() == engine.to_dict()


@settings(max_examples=200, deadline=None)
@given(_updates)
def test_order_is_refused_for_the_stalest_open_position(
    updates: list[tuple[object, ...]],
) -> None:
    """The position a new-risk order is refused for has the oldest (or no) mark of all open ones."""
    engine = RiskEngine(limits(), EQUITY, T0)
    engine.update_position(exposure("REF", "0", account="z"), T0)  # a symbol to order
    for update in updates:
        # No P&L: only staleness is under test, the state must stay open for trading.
        exp = replace(_as_exposure(update), realized_pnl=D(0), unrealized_pnl=D(0))
        engine.update_position(exp, T0)
    open_positions = [e for e in engine.positions() if e.qty != 0 and e.account != "z"]
    ts = T0 + 100 * NS  # every mark is older than 5 s by then
    decision = engine.check_order(order("REF", Side.BUY, "0.0001", "1", ts=ts, account="z"))
    if not open_positions:
        assert decision.check != "stale_mark"
        assert decision.check != "missing_data"
        return
    unmarked = [e for e in open_positions if e.mark_ts_ns is None]
    if unmarked:
        assert decision.check == "missing_data"
        candidates = unmarked
    else:
        assert decision.check == "stale_mark"
        oldest = min(e.mark_ts_ns for e in open_positions if e.mark_ts_ns is not None)
        candidates = [e for e in open_positions if e.mark_ts_ns == oldest]
    assert any(f"{e.account}/{e.symbol} " in decision.reason for e in candidates)
