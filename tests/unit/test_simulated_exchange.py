"""The simulated exchange: prices, fees, resting orders, rejects, cancels, determinism."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model.exchange_reports import (
    ExchangeOrderStatus,
    ExecutionReport,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
)
from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side
from posbus.adapters.simulation.simulated_exchange import SimConfig, SimulatedExchange

D = Decimal
BTC = "BTC/USDT"
LATENCY = 5


def make_exchange(**overrides: object) -> SimulatedExchange:
    """An exchange with 10 bps taker, 2 bps maker, 10 bps slippage, 5 ns latency."""
    params: dict[str, object] = {
        "seed": 7,
        "taker_fee_rate": D("0.001"),
        "maker_fee_rate": D("0.0002"),
        "slippage_bps": D(10),
        "latency_ns": LATENCY,
        "price_tick": D("0.01"),
        "qty_step": D("0.001"),
        "fee_currency": "USDT",
    }
    params.update(overrides)
    return SimulatedExchange(SimConfig(**params))  # type: ignore[arg-type]


def order(
    cid: str,
    side: Side,
    qty: str,
    limit: str | None = None,
    *,
    symbol: str = BTC,
    ts: int = 2000,
    account: str = "default",
) -> NewOrder:
    return NewOrder(
        client_order_id=cid,
        account=account,
        symbol=symbol,
        side=side,
        qty=D(qty),
        limit_price=None if limit is None else D(limit),
        ts_ns=ts,
    )


def quoted(**overrides: object) -> SimulatedExchange:
    """An exchange whose BTC/USDT touch is 50000.00 / 50010.00 at t=1000."""
    ex = make_exchange(**overrides)
    ex.on_market(BTC, D("50000.00"), D("50010.00"), 1000)
    return ex


def fills_of(reports: list[ExecutionReport]) -> list[Fill]:
    return [r.fill for r in reports if isinstance(r, OrderFilled)]


def only_rejection(reports: list[ExecutionReport]) -> OrderRejected:
    assert len(reports) == 1
    (report,) = reports
    assert isinstance(report, OrderRejected)
    return report


# -- market orders ---------------------------------------------------------------


def test_market_buy_fills_at_ask_plus_slippage_with_taker_fee() -> None:
    ex = quoted()

    reports = ex.submit(order("c1", Side.BUY, "0.5"))

    # price: 50010.00 * (1 + 10/10000) = 50060.01 (already on the 0.01 tick)
    # fee:   0.5 * 50060.01 * 0.001 = 25.030005
    assert reports == [
        OrderAccepted("c1", "default-order-1", BTC, 2000 + LATENCY),
        OrderFilled(
            "c1",
            Fill(
                trade_id="default-trade-1",
                account="default",
                symbol=BTC,
                side=Side.BUY,
                qty=D("0.5"),
                price=D("50060.01"),
                fee=D("25.030005"),
                fee_currency="USDT",
                ts_ns=2000 + LATENCY,
                order_id="c1",
            ),
            "taker",
        ),
    ]


def test_market_sell_fills_at_bid_minus_slippage_with_taker_fee() -> None:
    ex = quoted()

    (fill,) = fills_of(ex.submit(order("c1", Side.SELL, "0.25")))

    # price: 50000.00 * (1 - 10/10000) = 49950.00
    # fee:   0.25 * 49950.00 * 0.001 = 12.4875
    assert (fill.side, fill.qty, fill.price, fill.fee) == (
        Side.SELL,
        D("0.25"),
        D("49950.00"),
        D("12.4875"),
    )


def test_slipped_price_is_rounded_to_tick_half_even() -> None:
    ex = make_exchange(slippage_bps=D("0.5"))
    ex.on_market("A/USDT", D("99.00"), D("100.00"), 1)
    ex.on_market("B/USDT", D("299.00"), D("300.00"), 1)

    (a,) = fills_of(ex.submit(order("a", Side.BUY, "1", symbol="A/USDT")))
    (b,) = fills_of(ex.submit(order("b", Side.BUY, "1", symbol="B/USDT")))

    # 100.00 * 1.00005 = 100.005 -> half a tick, to the even tick 100.00 (half-up would say 100.01)
    # 300.00 * 1.00005 = 300.015 -> half a tick, to the even tick 300.02
    assert a.price == D("100.00")
    assert b.price == D("300.02")


def test_fee_is_rounded_to_eight_decimals_half_even() -> None:
    ex = make_exchange(slippage_bps=D(0), taker_fee_rate=D("0.0001"))
    ex.on_market("A/USDT", D("0.24"), D("0.25"), 1)
    ex.on_market("B/USDT", D("0.74"), D("0.75"), 1)

    (a,) = fills_of(ex.submit(order("a", Side.BUY, "0.001", symbol="A/USDT")))
    (b,) = fills_of(ex.submit(order("b", Side.BUY, "0.001", symbol="B/USDT")))

    # 0.001 * 0.25 * 0.0001 = 0.000000025 -> 0.00000002 (to even)
    # 0.001 * 0.75 * 0.0001 = 0.000000075 -> 0.00000008 (to even)
    assert a.fee == D("0.00000002")
    assert b.fee == D("0.00000008")


# -- limit orders ----------------------------------------------------------------


def test_limit_buy_below_the_ask_rests_without_filling() -> None:
    ex = quoted()

    reports = ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))

    assert reports == [OrderAccepted("c1", "default-order-1", BTC, 2000 + LATENCY)]
    assert [v.client_order_id for v in ex.open_orders()] == ["c1"]
    view = ex.fetch_order("c1")
    assert view is not None
    assert (view.status, view.filled_qty, view.remaining_qty) == (
        ExchangeOrderStatus.OPEN,
        D(0),
        D("0.2"),
    )
    assert ex.fills() == []


def test_resting_limit_buy_fills_at_its_limit_as_maker_when_the_ask_reaches_it() -> None:
    ex = quoted()
    ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))

    assert ex.on_market(BTC, D("49890.00"), D("49900.01"), 3000) == []
    reports = ex.on_market(BTC, D("49880.00"), D("49900.00"), 4000)

    (report,) = reports
    assert isinstance(report, OrderFilled)
    assert report.liquidity == "maker"
    # fee: 0.2 * 49900.00 * 0.0002 = 1.996; stamped with the quote's time
    assert (report.fill.price, report.fill.qty, report.fill.fee, report.fill.ts_ns) == (
        D("49900.00"),
        D("0.2"),
        D("1.996"),
        4000,
    )
    view = ex.fetch_order("c1")
    assert view is not None
    assert (view.status, view.filled_qty, view.remaining_qty) == (
        ExchangeOrderStatus.FILLED,
        D("0.2"),
        D(0),
    )
    assert ex.open_orders() == []


def test_resting_limit_sell_fills_at_its_limit_when_the_bid_reaches_it() -> None:
    ex = quoted()
    ex.submit(order("c1", Side.SELL, "0.3", "50100.00"))

    assert ex.on_market(BTC, D("50099.99"), D("50110.00"), 3000) == []
    (fill,) = fills_of(ex.on_market(BTC, D("50120.00"), D("50130.00"), 4000))

    # at the limit, not the better bid; fee: 0.3 * 50100.00 * 0.0002 = 3.006
    assert (fill.side, fill.price, fill.fee) == (Side.SELL, D("50100.00"), D("3.006"))


def test_quote_on_another_symbol_does_not_fill_a_resting_order() -> None:
    ex = quoted()
    ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))

    assert ex.on_market("ETH/USDT", D("10.00"), D("10.01"), 3000) == []
    assert [v.client_order_id for v in ex.open_orders()] == ["c1"]


def test_a_quote_fills_the_crossed_resting_orders_in_submission_order_and_only_once() -> None:
    ex = quoted()
    ex.submit(order("c1", Side.BUY, "0.1", "49900.00"))
    ex.submit(order("c2", Side.BUY, "0.2", "49950.00"))
    ex.submit(order("c3", Side.BUY, "0.3", "49800.00"))
    ex.submit(order("c4", Side.BUY, "0.4", "49950.00"))
    ex.cancel("c4", 2500)

    crossed = fills_of(ex.on_market(BTC, D("49880.00"), D("49900.00"), 3000))
    again = fills_of(ex.on_market(BTC, D("49880.00"), D("49900.00"), 4000))

    assert [f.order_id for f in crossed] == ["c1", "c2"]
    assert again == []
    assert [v.client_order_id for v in ex.open_orders()] == ["c3"]
    (fill,) = fills_of(ex.on_market(BTC, D("49700.00"), D("49750.00"), 5000))
    assert fill.order_id == "c3"
    assert ex.open_orders() == []


def test_marketable_limit_buy_fills_at_once_as_taker_at_the_touch_without_slippage() -> None:
    ex = quoted()

    reports = ex.submit(order("c1", Side.BUY, "0.1", "50020.00"))

    assert isinstance(reports[0], OrderAccepted)
    (report,) = reports[1:]
    assert isinstance(report, OrderFilled)
    assert report.liquidity == "taker"
    # at the ask 50010.00 (better than the 50020.00 limit); fee: 0.1 * 50010.00 * 0.001 = 5.001
    assert (report.fill.price, report.fill.fee) == (D("50010.00"), D("5.001"))


def test_marketable_limit_sell_fills_at_the_bid() -> None:
    ex = quoted()

    (fill,) = fills_of(ex.submit(order("c1", Side.SELL, "0.1", "49990.00")))

    # 0.1 * 50000.00 * 0.001 = 5.000
    assert (fill.price, fill.fee) == (D("50000.00"), D("5.000"))


def test_limit_at_exactly_the_ask_is_marketable() -> None:
    ex = quoted()

    (fill,) = fills_of(ex.submit(order("c1", Side.BUY, "0.1", "50010.00")))

    assert fill.price == D("50010.00")


# -- partial fills ---------------------------------------------------------------


def test_partial_fills_split_an_order_into_two_or_three_fills_summing_to_its_qty() -> None:
    ex = quoted(partial_fill_rate=1.0)

    reports = ex.submit(order("c1", Side.BUY, "1.000"))
    fills = fills_of(reports)

    assert 2 <= len(fills) <= 3
    assert sum((f.qty for f in fills), D(0)) == D("1.000")
    assert len({f.trade_id for f in fills}) == len(fills)
    assert all(f.price == D("50060.01") for f in fills)
    view = ex.fetch_order("c1")
    assert view is not None
    assert (view.status, view.filled_qty) == (ExchangeOrderStatus.FILLED, D("1.000"))


def test_an_order_of_one_qty_step_is_never_split() -> None:
    ex = quoted(partial_fill_rate=1.0)

    fills = fills_of(ex.submit(order("c1", Side.BUY, "0.001")))

    assert [f.qty for f in fills] == [D("0.001")]


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    steps=st.integers(min_value=1, max_value=10**9),
    maker=st.booleans(),
)
def test_partial_fills_always_sum_exactly_to_the_order_qty(
    seed: int, steps: int, maker: bool
) -> None:
    """Invariant: fills add up to the order qty exactly, each a positive multiple of qty_step."""
    ex = quoted(seed=seed, partial_fill_rate=1.0)
    qty = steps * D("0.001")

    if maker:
        ex.submit(order("c1", Side.BUY, str(qty), "49000.00"))
        fills = fills_of(ex.on_market(BTC, D("48990.00"), D("48995.00"), 3000))
    else:
        fills = fills_of(ex.submit(order("c1", Side.BUY, str(qty))))

    assert sum((f.qty for f in fills), D(0)) == qty
    assert all(f.qty > 0 and f.qty % D("0.001") == 0 for f in fills)
    assert 1 <= len(fills) <= 3


# -- rejects ---------------------------------------------------------------------


def test_order_before_any_market_is_rejected() -> None:
    ex = make_exchange()

    rejected = only_rejection(ex.submit(order("c1", Side.BUY, "1")))

    assert rejected.reason == "unknown symbol or no market yet: 'BTC/USDT'"
    assert rejected.ts_ns == 2000 + LATENCY


def test_order_on_a_symbol_without_a_market_is_rejected() -> None:
    ex = quoted()

    rejected = only_rejection(ex.submit(order("c1", Side.BUY, "1", symbol="DOGE/USDT")))

    assert rejected.reason == "unknown symbol or no market yet: 'DOGE/USDT'"


@pytest.mark.parametrize(
    ("qty", "limit", "reason"),
    [
        ("0", None, "qty must be positive, got 0"),
        ("-1", None, "qty must be positive, got -1"),
        ("NaN", None, "qty must be positive, got NaN"),
        ("0.0005", None, "qty 0.0005 is not a multiple of qty_step 0.001"),
        ("10.001", None, "qty 10.001 exceeds max_order_qty 10"),
        ("1", "49000.005", "limit price 49000.005 is not a multiple of price_tick 0.01"),
        ("1", "0", "limit price must be positive, got 0"),
    ],
)
def test_invalid_order_is_rejected_with_a_reason(qty: str, limit: str | None, reason: str) -> None:
    ex = quoted(max_order_qty=D(10))

    rejected = only_rejection(ex.submit(order("c1", Side.BUY, qty, limit)))

    assert rejected.reason == reason
    assert ex.fetch_order("c1") is None
    assert ex.fills() == []


def test_order_at_exactly_max_order_qty_is_accepted() -> None:
    ex = quoted(max_order_qty=D(10))

    reports = ex.submit(order("c1", Side.BUY, "10"))

    assert isinstance(reports[0], OrderAccepted)


def test_order_for_another_account_is_rejected() -> None:
    ex = quoted()

    rejected = only_rejection(ex.submit(order("c1", Side.BUY, "1", account="other")))

    assert rejected.reason == "unknown account 'other'"


def test_random_reject_says_simulated_reject_and_keeps_no_order() -> None:
    ex = quoted(reject_rate=1.0)

    rejected = only_rejection(ex.submit(order("c1", Side.BUY, "1")))

    assert rejected == OrderRejected("c1", "simulated reject", 2000 + LATENCY)
    assert ex.fetch_order("c1") is None
    assert ex.balances() == {}


def test_rejected_client_order_id_can_be_used_again() -> None:
    ex = quoted()
    only_rejection(ex.submit(order("c1", Side.BUY, "0")))

    reports = ex.submit(order("c1", Side.BUY, "1"))

    assert isinstance(reports[0], OrderAccepted)


# -- idempotent submit -----------------------------------------------------------


def test_duplicate_client_order_id_creates_no_second_order() -> None:
    ex = quoted()
    first = ex.submit(order("c1", Side.BUY, "0.5"))
    balances = ex.balances()

    again = ex.submit(order("c1", Side.BUY, "0.5", ts=9000))

    assert again == first
    assert len(ex.fills()) == 1
    assert ex.balances() == balances


def test_duplicate_of_a_resting_order_returns_its_acceptance_and_ignores_the_new_request() -> None:
    ex = quoted()
    first = ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))

    again = ex.submit(order("c1", Side.SELL, "7", ts=9000))

    assert again == first
    (view,) = ex.open_orders()
    assert (view.side, view.qty, view.limit_price) == (Side.BUY, D("0.2"), D("49900.00"))


def test_duplicate_of_a_later_filled_order_returns_its_whole_history() -> None:
    ex = quoted()
    accepted = ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))
    filled = ex.on_market(BTC, D("49880.00"), D("49890.00"), 3000)

    again = ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))

    assert again == accepted + filled


# -- cancel ----------------------------------------------------------------------


def test_cancel_of_a_resting_order_takes_it_off_the_book() -> None:
    ex = quoted()
    ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))

    reports = ex.cancel("c1", 3000)

    assert reports == [OrderCancelled("c1", 3000 + LATENCY, "cancelled by client")]
    assert ex.open_orders() == []
    view = ex.fetch_order("c1")
    assert view is not None
    assert (view.status, view.filled_qty, view.remaining_qty) == (
        ExchangeOrderStatus.CANCELLED,
        D(0),
        D("0.2"),
    )


def test_cancelled_order_never_fills_when_the_market_crosses_it() -> None:
    ex = quoted()
    ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))
    ex.cancel("c1", 3000)

    assert ex.on_market(BTC, D("49800.00"), D("49810.00"), 4000) == []
    assert ex.fills() == []


def test_cancelling_a_cancelled_order_again_returns_nothing() -> None:
    ex = quoted()
    ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))
    ex.cancel("c1", 3000)

    assert ex.cancel("c1", 4000) == []


def test_cancel_of_an_unknown_order_is_rejected() -> None:
    ex = quoted()

    assert ex.cancel("nope", 3000) == [OrderRejected("nope", "unknown order", 3000 + LATENCY)]


def test_cancel_of_a_filled_order_is_rejected() -> None:
    ex = quoted()
    ex.submit(order("c1", Side.BUY, "0.5"))

    assert ex.cancel("c1", 3000) == [OrderRejected("c1", "already filled", 3000 + LATENCY)]


def test_duplicate_submit_after_cancel_reports_the_cancel() -> None:
    ex = quoted()
    ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))
    ex.cancel("c1", 3000)

    again = ex.submit(order("c1", Side.BUY, "0.2", "49900.00"))

    assert again[-1] == OrderCancelled("c1", 3000 + LATENCY, "cancelled by client")


# -- balances and the fills ledger -----------------------------------------------


def test_balances_move_by_fills_and_fees() -> None:
    ex = SimulatedExchange(
        SimConfig(
            seed=1,
            slippage_bps=D(10),
            price_tick=D("0.01"),
            qty_step=D("0.001"),
            taker_fee_rate=D("0.001"),
        ),
        initial_balances={"USDT": D(100000)},
    )
    ex.on_market(BTC, D("50000.00"), D("50010.00"), 1000)

    ex.submit(order("c1", Side.BUY, "0.5"))
    ex.submit(order("c2", Side.SELL, "0.25"))

    # buy  0.5  @ 50060.01: USDT -25030.005 - fee 25.030005 = -25055.035005
    # sell 0.25 @ 49950.00: USDT +12487.5   - fee 12.4875   = +12475.0125
    # USDT: 100000 - 25055.035005 + 12475.0125 = 87419.977495; BTC: 0.5 - 0.25 = 0.25
    assert ex.balances() == {"USDT": D("87419.977495"), "BTC": D("0.25")}


def test_fees_come_out_of_the_fee_currency_not_the_quote() -> None:
    ex = make_exchange(slippage_bps=D(0), fee_currency="BNB")
    ex.on_market("ETH/BTC", D("0.05"), D("0.06"), 1)

    ex.submit(order("c1", Side.BUY, "2", symbol="ETH/BTC"))

    # 2 ETH @ 0.06 BTC = 0.12 BTC; fee 2 * 0.06 * 0.001 = 0.00012 (charged in BNB)
    assert ex.balances() == {"ETH": D(2), "BTC": D("-0.12"), "BNB": D("-0.00012")}


def test_fills_ledger_lists_every_fill_in_order_and_pages_by_index() -> None:
    ex = quoted(partial_fill_rate=0.5, seed=3)
    reported: list[Fill] = []
    for i in range(6):
        reported += fills_of(ex.submit(order(f"m{i}", Side.BUY, "0.010", ts=2000 + i)))
    ex.submit(order("r1", Side.SELL, "0.1", "50100.00"))
    reported += fills_of(ex.on_market(BTC, D("50100.00"), D("50110.00"), 3000))

    assert ex.fills() == reported
    assert ex.fills(since_index=2) == reported[2:]
    assert ex.fills(since_index=len(reported)) == []
    assert len({f.trade_id for f in reported}) == len(reported)
    assert all(f.order_id for f in reported)


def test_fills_with_a_negative_index_is_an_error() -> None:
    with pytest.raises(ValueError, match="since_index"):
        quoted().fills(since_index=-1)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    orders=st.lists(
        st.tuples(st.sampled_from(Side), st.integers(min_value=1, max_value=5000)),
        min_size=1,
        max_size=12,
    ),
)
def test_balances_always_equal_the_fills_ledger(seed: int, orders: list[tuple[Side, int]]) -> None:
    """Invariant: base = sum of signed fill qty; quote = -sum of signed notional - fees."""
    ex = quoted(seed=seed, partial_fill_rate=0.5, reject_rate=0.2)
    for i, (side, steps) in enumerate(orders):
        ex.submit(order(f"c{i}", side, str(steps * D("0.001")), ts=2000 + i))

    fills = ex.fills()
    base = sum((f.signed_qty for f in fills), D(0))
    quote = -sum((f.signed_qty * f.price + f.fee for f in fills), D(0))
    balances = ex.balances()
    assert balances.get("BTC", D(0)) == base
    assert balances.get("USDT", D(0)) == quote


# -- determinism -----------------------------------------------------------------


def run_script(seed: int) -> list[ExecutionReport]:
    """A fixed sequence of calls on an exchange with chance switched on."""
    ex = quoted(seed=seed, reject_rate=0.3, partial_fill_rate=0.5)
    reports: list[ExecutionReport] = []
    for i in range(20):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        reports += ex.submit(order(f"m{i}", side, "0.500", ts=2000 + i))
        reports += ex.submit(order(f"l{i}", side, "0.250", "49990.00", ts=2000 + i))
        reports += ex.on_market(BTC, D(49980 - i), D(49985 - i), 3000 + i)
        reports += ex.cancel(f"l{i}", 4000 + i)
    return reports


def test_same_seed_and_calls_give_byte_identical_reports() -> None:
    assert repr(run_script(11)) == repr(run_script(11))


def test_different_seeds_give_different_reports_when_chance_is_on() -> None:
    assert repr(run_script(11)) != repr(run_script(12))


# -- bad input -------------------------------------------------------------------


def test_crossed_quote_is_refused() -> None:
    with pytest.raises(ValueError, match="crossed quote"):
        make_exchange().on_market(BTC, D("50010.00"), D("50000.00"), 1)


def test_symbol_without_a_quote_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        make_exchange().on_market("BTCUSDT", D(1), D(2), 1)


def test_probability_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="reject_rate"):
        SimConfig(reject_rate=1.5)


def test_unknown_liquidity_is_refused() -> None:
    fill = Fill("t", "a", BTC, Side.BUY, D(1), D(1), D(0), "USDT", 1)
    with pytest.raises(ValueError, match="liquidity"):
        OrderFilled("c1", fill, "both")  # type: ignore[arg-type]


def test_a_venue_of_another_incarnation_repeats_no_order_or_trade_id() -> None:
    config = make_exchange().config
    ids = []
    for incarnation in ("101.5", "102.9"):
        ex = SimulatedExchange(config, "hedge", incarnation=incarnation)
        ex.on_market(BTC, D("50000.00"), D("50010.00"), 1000)
        reports = ex.submit(order("c1", Side.BUY, "0.5", account="hedge"))
        (fill,) = fills_of(reports)
        accepted = reports[0]
        assert isinstance(accepted, OrderAccepted)
        ids += [accepted.exchange_order_id, fill.trade_id]
    assert ids == [
        "hedge-101.5-order-1",
        "hedge-101.5-trade-1",
        "hedge-102.9-order-1",
        "hedge-102.9-trade-1",
    ]
