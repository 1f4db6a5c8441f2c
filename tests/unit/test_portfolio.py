"""Portfolio: cash, equity, exposures, P&L aggregates, the mark rule, the order index, snapshots."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model.errors import OrderError, OrderValidationError
from posbus.actors.model.fill import Fill
from posbus.actors.model.portfolio import Mark, MissingMark, PnL, Portfolio
from posbus.actors.model.side import Side

D = Decimal
_ids = itertools.count(1)


def fill(
    side: str,
    qty: str,
    price: str,
    fee: str = "0",
    *,
    symbol: str = "BTC",
    account: str = "default",
    trade_id: str | None = None,
) -> Fill:
    n = next(_ids)
    return Fill(
        trade_id=trade_id if trade_id is not None else f"t{n}",
        account=account,
        symbol=symbol,
        side=Side(side),
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency="USDT",
        ts_ns=n,
    )


def desk() -> Portfolio:
    """Long 2 BTC @ 100 (fee 0.2), short 10 ETH @ 6 (fee 0.06), marked at 110 and 5."""
    portfolio = Portfolio(cash=D("1000"))
    portfolio.apply_fill(fill("buy", "2", "100", "0.2", symbol="BTC"))
    portfolio.apply_fill(fill("sell", "10", "6", "0.06", symbol="ETH"))
    portfolio.set_mark("BTC", D("110"), ts_ns=1)
    portfolio.set_mark("ETH", D("5"), ts_ns=1)
    return portfolio


# -- cash and equity ----------------------------------------------------------------


def test_a_fill_moves_cash_by_notional_and_fee() -> None:
    portfolio = Portfolio(cash=D("1000"))

    portfolio.apply_fill(fill("buy", "2", "100", "0.2"))
    # 1000 - (2 * 100 + 0.2) = 799.8
    assert portfolio.cash == D("799.8")

    portfolio.apply_fill(fill("sell", "1", "105", "0.105"))
    # 799.8 - (-1 * 105 + 0.105) = 904.695
    assert portfolio.cash == D("904.695")


def test_a_duplicate_fill_moves_neither_cash_nor_position() -> None:
    portfolio = Portfolio(cash=D("1000"))
    portfolio.apply_fill(fill("buy", "2", "100", "0.2", trade_id="x"))

    assert portfolio.apply_fill(fill("buy", "2", "100", "0.2", trade_id="x")) is False
    assert portfolio.cash == D("799.8")
    position = portfolio.position("BTC")
    assert position is not None
    assert position.qty == D("2")


def test_equity_is_cash_plus_the_market_value_of_every_position() -> None:
    portfolio = desk()

    # cash 1000 - (200 + 0.2) - (-60 + 0.06) = 859.74
    assert portfolio.cash == D("859.74")
    # values: 2 * 110 = 220 and -10 * 5 = -50; equity 859.74 + 220 - 50 = 1029.74
    assert portfolio.equity() == D("1029.74")


def test_exposures_are_signed_and_absolute_sums_of_market_values() -> None:
    portfolio = desk()

    # net 220 + (-50) = 170; gross |220| + |-50| = 270
    assert portfolio.net_exposure() == D("170")
    assert portfolio.gross_exposure() == D("270")


def test_pnl_per_symbol_and_total() -> None:
    portfolio = desk()

    # BTC realized -0.2 (fee), unrealized 2 * (110 - 100) = 20
    assert portfolio.pnl("BTC") == PnL(D("-0.2"), D("20"))
    # ETH realized -0.06 (fee), unrealized -10 * (5 - 6) = 10
    assert portfolio.pnl("ETH") == PnL(D("-0.06"), D("10"))
    # total realized -0.26, unrealized 30, total 29.74 == equity - starting cash
    total = portfolio.total_pnl()
    assert total == PnL(D("-0.26"), D("30"))
    assert total.total == D("29.74") == portfolio.equity() - D("1000")
    assert portfolio.pnl_by_symbol() == {
        "BTC": PnL(D("-0.2"), D("20")),
        "ETH": PnL(D("-0.06"), D("10")),
    }


def test_a_symbol_never_traded_has_zero_pnl() -> None:
    assert Portfolio().pnl("XRP") == PnL(D("0"), D("0"))


def test_aggregates_follow_a_new_mark_and_a_closing_fill() -> None:
    portfolio = desk()

    portfolio.set_mark("BTC", D("90"), ts_ns=2)
    # net 2 * 90 - 50 = 130; gross 180 + 50 = 230
    assert portfolio.net_exposure() == D("130")
    assert portfolio.gross_exposure() == D("230")

    portfolio.apply_fill(fill("buy", "10", "5", "0.05", symbol="ETH"))
    # ETH flat: realized -0.06 + 10 * (6 - 5) - 0.05 = 9.89, no exposure left
    assert portfolio.pnl("ETH") == PnL(D("9.89"), D("0"))
    assert portfolio.net_exposure() == D("180")
    assert portfolio.gross_exposure() == D("180")


def test_positions_in_two_accounts_share_cash_and_sum_per_symbol() -> None:
    portfolio = Portfolio(cash=D("500"), account="main")
    portfolio.apply_fill(fill("buy", "1", "100", account="main"))
    portfolio.apply_fill(fill("sell", "3", "100", account="hedge"))
    portfolio.set_mark("BTC", D("102"), ts_ns=1)

    main, hedge = portfolio.position("BTC"), portfolio.position("BTC", account="hedge")
    assert main is not None
    assert hedge is not None
    assert (main.qty, hedge.qty) == (D("1"), D("-3"))
    # cash 500 - 100 + 300 = 700
    assert portfolio.cash == D("700")
    # unrealized 1 * (102 - 100) + (-3) * (102 - 100) = 2 - 6 = -4
    assert portfolio.pnl_by_symbol() == {"BTC": PnL(D("0"), D("-4"))}
    # net 102 - 306 = -204; gross 102 + 306 = 408
    assert portfolio.net_exposure() == D("-204")
    assert portfolio.gross_exposure() == D("408")


# -- the mark rule -------------------------------------------------------------------


def test_an_unmarked_open_position_makes_valuations_raise_missing_mark() -> None:
    portfolio = Portfolio(cash=D("100"))
    portfolio.apply_fill(fill("buy", "1", "10", symbol="SOL"))
    portfolio.apply_fill(fill("buy", "1", "10", symbol="ADA"))

    assert portfolio.missing_marks() == ["ADA", "SOL"]
    for valuation in (
        portfolio.equity,
        portfolio.net_exposure,
        portfolio.gross_exposure,
        portfolio.total_pnl,
        portfolio.pnl_by_symbol,
    ):
        with pytest.raises(MissingMark) as excinfo:
            valuation()
        assert excinfo.value.symbols == ("ADA", "SOL")
    with pytest.raises(MissingMark):
        portfolio.pnl("SOL")
    # realized P&L needs no mark
    assert portfolio.realized_pnl() == D("0")


def test_a_flat_position_needs_no_mark() -> None:
    portfolio = Portfolio(cash=D("100"))
    portfolio.apply_fill(fill("buy", "1", "10", symbol="SOL"))
    portfolio.apply_fill(fill("sell", "1", "12", symbol="SOL"))

    assert portfolio.missing_marks() == []
    # 100 - 10 + 12 = 102
    assert portfolio.equity() == D("102")


def test_a_mark_older_than_the_current_one_is_ignored() -> None:
    portfolio = desk()

    assert portfolio.set_mark("BTC", D("50"), ts_ns=0) is False
    assert portfolio.mark("BTC") == Mark(D("110"), 1)
    assert portfolio.set_mark("BTC", D("111"), ts_ns=1) is True
    assert portfolio.mark("BTC") == Mark(D("111"), 1)


@pytest.mark.parametrize("price", [D("0"), D("-3"), D("NaN"), D("Infinity")])
def test_a_mark_that_is_not_a_positive_finite_price_is_rejected(price: Decimal) -> None:
    portfolio = desk()

    with pytest.raises(ValueError, match="BTC"):
        portfolio.set_mark("BTC", price, ts_ns=5)
    assert portfolio.mark("BTC") == Mark(D("110"), 1)


def test_float_cash_is_refused() -> None:
    with pytest.raises(TypeError):
        Portfolio(cash=0.1)


# -- order index ----------------------------------------------------------------------


@dataclass
class FakeOrder:
    order_id: str
    symbol: str
    status: str


def test_orders_are_indexed_by_id_symbol_and_status() -> None:
    portfolio = Portfolio()
    a, b, c = (
        FakeOrder("a", "BTC", "Open"),
        FakeOrder("b", "ETH", "Open"),
        FakeOrder("c", "BTC", "New"),
    )
    for order in (a, b, c):
        portfolio.add_order(order)

    assert portfolio.order("b") is b
    assert portfolio.order("zzz") is None
    assert portfolio.orders_for_symbol("BTC") == [a, c]
    assert portfolio.orders_with_status("Open") == [a, b]
    assert portfolio.orders() == [a, b, c]


def test_update_order_index_moves_an_order_to_its_new_status() -> None:
    portfolio = Portfolio()
    order = FakeOrder("a", "BTC", "AwaitingFill")
    portfolio.add_order(order)

    order.status = "Filled"
    portfolio.update_order_index(order)

    assert portfolio.orders_with_status("AwaitingFill") == []
    assert portfolio.orders_with_status("Filled") == [order]
    assert portfolio.orders_for_symbol("BTC") == [order]


def test_removed_orders_leave_every_index() -> None:
    portfolio = Portfolio()
    order = FakeOrder("a", "BTC", "Cancelled")
    portfolio.add_order(order)

    assert portfolio.remove_order("a") is order

    assert portfolio.order("a") is None
    assert portfolio.orders_for_symbol("BTC") == []
    assert portfolio.orders_with_status("Cancelled") == []
    with pytest.raises(OrderError):
        portfolio.remove_order("a")


def test_order_index_refuses_reused_ids_unknown_ids_and_symbol_changes() -> None:
    portfolio = Portfolio()
    portfolio.add_order(FakeOrder("a", "BTC", "Open"))

    with pytest.raises(OrderValidationError):
        portfolio.add_order(FakeOrder("a", "BTC", "Open"))
    with pytest.raises(OrderError):
        portfolio.update_order_index(FakeOrder("b", "BTC", "Open"))
    with pytest.raises(OrderValidationError):
        portfolio.update_order_index(FakeOrder("a", "ETH", "Open"))
    assert portfolio.orders_for_symbol("BTC")[0].order_id == "a"


# -- snapshots ------------------------------------------------------------------------


def test_snapshot_round_trip_restores_cash_positions_marks_and_aggregates() -> None:
    portfolio = desk()

    restored = Portfolio.from_dict(json.loads(json.dumps(portfolio.to_dict())))

    assert restored.to_dict() == portfolio.to_dict()
    assert restored.equity() == D("1029.74")
    assert restored.gross_exposure() == D("270")
    assert restored.mark("ETH") == Mark(D("5"), 1)


def test_a_snapshot_with_two_positions_for_one_account_and_symbol_is_rejected() -> None:
    data = desk().to_dict()
    data["positions"].append(data["positions"][0])

    with pytest.raises(OrderValidationError, match="duplicate position"):
        Portfolio.from_dict(data)


# -- incremental aggregates ------------------------------------------------------------------

_qty = st.builds(lambda n: D(n).scaleb(-2), st.integers(1, 500))
_price = st.builds(lambda n: D(n).scaleb(-2), st.integers(1, 100_000))
_event = st.one_of(
    st.tuples(
        st.just("fill"),
        st.sampled_from(["A", "B"]),
        st.sampled_from(["X", "Y", "Z"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        _qty,
        _price,
        st.builds(lambda n: D(n).scaleb(-4), st.integers(-10, 100)),
    ),
    st.tuples(st.just("mark"), st.sampled_from(["X", "Y", "Z"]), _price),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_event, max_size=40))
def test_incremental_aggregates_equal_a_full_recomputation(
    events: list[tuple[object, ...]],
) -> None:
    """Aggregates kept by deltas equal sums over positions; equity - start cash == total P&L.

    Exactly (==), after any interleaving of fills (two accounts) and marks; an
    unmarked open position makes equity raise MissingMark first.
    """
    portfolio = Portfolio(cash=D("10000"), account="A")
    for i, event in enumerate(events):
        if event[0] == "fill":
            _, account, symbol, side, qty, price, fee = event
            portfolio.apply_fill(Fill(f"t{i}", account, symbol, side, qty, price, fee, "USDT", i))
        else:
            _, symbol, price = event
            portfolio.set_mark(symbol, price, ts_ns=i)

    open_positions = portfolio.open_positions()
    unmarked = sorted({p.symbol for p in open_positions if portfolio.mark(p.symbol) is None})
    assert portfolio.missing_marks() == unmarked
    if unmarked:
        with pytest.raises(MissingMark):
            portfolio.equity()
        for symbol in unmarked:  # mark them, so every example reaches the full check
            portfolio.set_mark(symbol, D("1.5"), ts_ns=len(events))
    with localcontext() as ctx:
        ctx.prec = 500
        ctx.traps[Inexact] = True
        realized = sum((p.realized_pnl for p in portfolio.positions()), D(0))
        assert portfolio.realized_pnl() == realized
        marks = {p.symbol: portfolio.mark(p.symbol).price for p in open_positions}
        values = [p.qty * marks[p.symbol] for p in open_positions]
        unrealized = sum(
            (p.qty * (marks[p.symbol] - p.avg_entry_price) for p in open_positions), D(0)
        )
        assert portfolio.equity() == portfolio.cash + sum(values, D(0))
        assert portfolio.net_exposure() == sum(values, D(0))
        assert portfolio.gross_exposure() == sum((abs(v) for v in values), D(0))
        assert portfolio.total_pnl() == PnL(realized, unrealized)
        assert portfolio.equity() - D("10000") == realized + unrealized
