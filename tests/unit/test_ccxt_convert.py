"""Strict ccxt conversion: every rule of ccxt_convert.py and ccxt_derivatives.py, one by one.

A field posbus needs and cannot interpret raises UnreadableField (never a
guess); a trade without an id gets a synthetic id that is the same for the
same fill and different for different fills.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from posbus.actors.model.errors import ExchangeUnavailable
from posbus.actors.model.exchange_reports import ExchangeOrderStatus
from posbus.actors.model.side import Side
from posbus.adapters.exchange.ccxt_convert import (
    UnreadableField,
    balances_of,
    decimal_of,
    is_synthetic_trade_id,
    order_view,
    synthetic_trade_id,
    trade_view,
    trades_in_order,
)
from posbus.adapters.exchange.ccxt_derivatives import funding_payment, position_view
from posbus.adapters.exchange.ccxt_order_book import OrderBook, WorkingOrder

BTC = "BTC/USDT"
NOW_NS = 1_700_000_000_000_000_000


def order(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "e1",
        "clientOrderId": "c1",
        "symbol": BTC,
        "type": "limit",
        "side": "buy",
        "price": "60000",
        "amount": "0.5",
        "filled": "0",
        "status": "open",
        "timestamp": 1_700_000_000_000,
    }
    base.update(fields)
    return base


def trade(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "t1",
        "order": "e1",
        "symbol": BTC,
        "side": "sell",
        "price": "60000.5",
        "amount": "0.25",
        "timestamp": 1_700_000_000_123,
        "takerOrMaker": "maker",
        "fee": {"cost": "0.01", "currency": "USDT"},
    }
    base.update(fields)
    return base


def unreadable(call: Any, field: str) -> UnreadableField:
    with pytest.raises(UnreadableField) as caught:
        call()
    assert caught.value.field == field
    return caught.value


# -- orders -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("open", "0", ExchangeOrderStatus.OPEN),
        ("open", "0.2", ExchangeOrderStatus.PARTIALLY_FILLED),
        ("closed", "0.5", ExchangeOrderStatus.FILLED),
        ("canceled", "0.1", ExchangeOrderStatus.CANCELLED),
        ("expired", "0", ExchangeOrderStatus.EXPIRED),
        ("rejected", "0", ExchangeOrderStatus.CANCELLED),
    ],
)
def test_order_statuses_map_explicitly(
    status: str, filled: str, expected: ExchangeOrderStatus
) -> None:
    view = order_view(order(status=status, filled=filled), "A")
    assert view.status is expected
    assert view.filled_qty == Decimal(filled)


@pytest.mark.parametrize("status", [None, "", "pending", "new", "cancelled", "CANCELED", 1])
def test_an_order_of_unknown_status_is_unreadable_never_cancelled(status: Any) -> None:
    error = unreadable(lambda: order_view(order(status=status), "A"), "status")
    assert error.structure == "order"
    assert error.value == status
    assert error.order_id == "e1"
    assert error.symbol == BTC
    # Transient: asking the venue again may tell (a lookup).
    assert isinstance(error, ExchangeUnavailable)
    assert error.transient


@pytest.mark.parametrize("side", [None, "", "BUY", "long"])
def test_an_order_without_a_unified_side_is_unreadable_never_a_sell(side: Any) -> None:
    unreadable(lambda: order_view(order(side=side), "A"), "side")


@pytest.mark.parametrize("field", ["id", "symbol"])
def test_an_order_without_its_id_or_symbol_is_unreadable(field: str) -> None:
    unreadable(lambda: order_view(order(**{field: None}), "A"), field)


@pytest.mark.parametrize("amount", [None, "", "abc", "0", "-1", "NaN", "Infinity", True])
def test_an_order_without_a_positive_numeric_amount_is_unreadable(amount: Any) -> None:
    unreadable(lambda: order_view(order(amount=amount), "A"), "amount")


@pytest.mark.parametrize("filled", [None, "x", "-0.1", "0.6"])
def test_an_order_without_a_sane_filled_quantity_is_unreadable(filled: Any) -> None:
    unreadable(lambda: order_view(order(filled=filled), "A"), "filled")


def test_a_limit_order_without_a_price_is_unreadable_a_market_order_has_no_limit() -> None:
    unreadable(lambda: order_view(order(price=None), "A"), "price")
    assert order_view(order(type="market", price=None), "A").limit_price is None
    assert order_view(order(), "A").limit_price == Decimal(60000)


def test_an_order_names_posbus_client_order_id_when_the_caller_knows_it() -> None:
    assert order_view(order(clientOrderId=None), "A", "mine").client_order_id == "mine"
    assert order_view(order(clientOrderId=None), "A").client_order_id == ""
    assert order_view(order(), "A").client_order_id == "c1"


def test_an_order_reads_exactly_side_amounts_and_ids() -> None:
    view = order_view(order(side="sell", amount=0.1, filled=0.05, id=12345), "A")
    assert (view.exchange_order_id, view.side) == ("12345", Side.SELL)
    # A float from a ccxt path that ignores `number = str` reads as the decimal sent.
    assert (view.qty, view.filled_qty) == (Decimal("0.1"), Decimal("0.05"))


# -- trades -----------------------------------------------------------------------------


def test_a_trade_reads_exactly() -> None:
    view = trade_view(trade(), "c1", None, NOW_NS)
    assert view.trade_id == "t1"
    assert view.exchange_order_id == "e1"
    assert view.side is Side.SELL
    assert (view.qty, view.price) == (Decimal("0.25"), Decimal("60000.5"))
    assert view.ts_ns == 1_700_000_000_123_000_000
    assert view.liquidity == "maker"


@pytest.mark.parametrize("side", [None, "", "SELL"])
def test_a_trade_without_a_side_is_unreadable_never_a_sell(side: Any) -> None:
    error = unreadable(lambda: trade_view(trade(side=side), "c1", None, NOW_NS), "side")
    assert error.structure == "trade"


@pytest.mark.parametrize("field", ["price", "amount"])
@pytest.mark.parametrize("value", [None, "n/a", "0", "-2"])
def test_a_trade_without_a_positive_price_or_amount_is_unreadable(field: str, value: Any) -> None:
    unreadable(lambda: trade_view(trade(**{field: value}), None, None, NOW_NS), field)


def test_a_trade_without_an_id_gets_a_synthetic_id_never_the_text_none() -> None:
    view = trade_view(trade(id=None), None, None, NOW_NS)
    assert view.trade_id != "None"
    assert is_synthetic_trade_id(view.trade_id)
    assert view.trade_id == synthetic_trade_id(
        "e1", 1_700_000_000_123, Decimal("0.25"), Decimal("60000.5")
    )
    assert not is_synthetic_trade_id(trade_view(trade(), None, None, NOW_NS).trade_id)


def test_the_same_fill_gets_the_same_synthetic_id_however_its_numbers_are_written() -> None:
    first = trade_view(trade(id=None, amount="0.250", price="60000.50"), None, None, NOW_NS)
    again = trade_view(trade(id="", amount=0.25, price="6.00005E+4"), None, None, NOW_NS + 1)
    assert first.trade_id == again.trade_id


@pytest.mark.parametrize(
    "other",
    [{"amount": "0.26"}, {"price": "60000.6"}, {"timestamp": 1_700_000_000_124}, {"order": "e2"}],
)
def test_different_fills_get_different_synthetic_ids(other: dict[str, Any]) -> None:
    first = trade_view(trade(id=None), None, None, NOW_NS)
    second = trade_view(trade(id=None, **other), None, None, NOW_NS)
    assert first.trade_id != second.trade_id


def test_two_id_less_fills_of_one_order_are_both_reported_and_each_only_once() -> None:
    book = OrderBook("A")
    working = WorkingOrder(BTC, "e1")
    fills = [
        trade_view(trade(id=None, amount="0.1"), "c1", None, NOW_NS),
        trade_view(trade(id=None, amount="0.15"), "c1", None, NOW_NS),
    ]
    assert len(book.fills(fills, working)) == 2
    assert working.reported_filled == Decimal("0.25")
    assert book.fills(fills, working) == []


@pytest.mark.parametrize(("field", "value"), [("order", None), ("timestamp", None)])
def test_a_trade_without_an_id_needs_its_order_and_time_to_be_named(field: str, value: Any) -> None:
    unreadable(lambda: trade_view(trade(id=None, **{field: value}), None, None, NOW_NS), field)


def test_a_trade_with_an_id_but_no_time_is_stamped_with_now() -> None:
    assert trade_view(trade(timestamp=None), None, None, NOW_NS).ts_ns == NOW_NS


def test_fills_carried_by_an_order_are_completed_from_the_order() -> None:
    placed = order(
        status="closed",
        filled="0.5",
        trades=[{"id": "t9", "price": "60000", "amount": "0.5"}],
    )
    view = order_view(placed, "A")
    [fill] = trades_in_order(placed, view, "taker", NOW_NS)
    assert (fill.trade_id, fill.exchange_order_id, fill.side) == ("t9", "e1", Side.BUY)
    assert fill.ts_ns == 1_700_000_000_000 * 1_000_000


def test_carried_trades_that_are_only_references_give_no_fills() -> None:
    # Kraken lists an order's trade ids without amounts: the trades are read instead.
    placed = order(status="closed", filled="0.5", trades=[{"id": "t9", "amount": None}])
    assert trades_in_order(placed, order_view(placed, "A"), "taker", NOW_NS) == []


# -- balances ---------------------------------------------------------------------------


def test_balances_are_the_totals_exactly_negative_included() -> None:
    raw = {"total": {"USDT": "1000.5", "BTC": 0.1, "ETH": "-0.2"}, "free": {"USDT": None}}
    assert balances_of(raw) == {
        "USDT": Decimal("1000.5"),
        "BTC": Decimal("0.1"),
        "ETH": Decimal("-0.2"),
    }
    assert balances_of({"total": {}}) == {}


@pytest.mark.parametrize("total", [None, "", "n/a"])
def test_a_currency_without_a_numeric_total_is_unreadable_never_left_out(total: Any) -> None:
    error = unreadable(lambda: balances_of({"total": {"BTC": "1", "USDT": total}}), "total of USDT")
    assert error.structure == "balance"


def test_a_balance_without_totals_is_unreadable() -> None:
    unreadable(lambda: balances_of({"LTC/USDT": {"total": {"LTC": 0}}}), "total")


# -- numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "abc", "NaN", "-Infinity", True, False])
def test_decimal_of_refuses_what_is_not_a_finite_number(value: Any) -> None:
    assert decimal_of(value) is None


def test_decimal_of_reads_strings_and_floats_as_the_decimal_sent() -> None:
    assert decimal_of("0.10000000") == Decimal("0.1")
    assert str(decimal_of(0.1)) == "0.1"
    assert decimal_of(3) == Decimal(3)


# -- positions and funding --------------------------------------------------------------


def test_positions_are_signed_contracts_with_the_stated_contract_size() -> None:
    long = position_view({"symbol": "BTC/USDT:USDT", "contracts": "0.009", "side": "long",
                          "contractSize": "1"})  # fmt: skip
    short = position_view({"symbol": "BTC/USD:BTC", "contracts": 3, "side": "short",
                           "contractSize": 100})  # fmt: skip
    assert (long.contracts, long.contract_size) == (Decimal("0.009"), Decimal(1))
    assert (short.contracts, short.contract_size) == (Decimal(-3), Decimal(100))


def test_a_position_without_a_contract_size_keeps_none_never_one() -> None:
    view = position_view({"symbol": "ADA/USDT", "contracts": 10, "side": "short"})
    assert view.contract_size is None


def test_a_flat_position_needs_no_side() -> None:
    assert position_view({"symbol": "X/USDT:USDT", "contracts": 0, "side": None}).contracts == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"side": None}, "side"),
        ({"side": "buy"}, "side"),
        ({"contracts": None}, "contracts"),
        ({"contracts": "-1"}, "contracts"),
        ({"contractSize": "zero"}, "contractSize"),
        ({"contractSize": 0}, "contractSize"),
        ({"symbol": None}, "symbol"),
    ],
)
def test_a_position_posbus_cannot_read_is_unreadable(fields: dict[str, Any], field: str) -> None:
    raw = {"symbol": "BTC/USDT:USDT", "contracts": "1", "side": "long", "contractSize": 1}
    raw.update(fields)
    assert unreadable(lambda: position_view(raw), field).structure == "position"


def test_a_funding_payment_reads_exactly() -> None:
    entry = {"symbol": "BTC/USDT:USDT", "code": "USDT", "amount": "-0.04618913",
             "timestamp": 1707465600000, "id": "8082457372019390060"}  # fmt: skip
    paid = funding_payment(entry)
    assert paid.amount == Decimal("-0.04618913")
    assert (paid.currency, paid.funding_id) == ("USDT", "8082457372019390060")
    assert paid.ts_ns == 1707465600000 * 1_000_000
    assert funding_payment({**entry, "id": None}).funding_id is None


@pytest.mark.parametrize(
    ("field", "value"), [("amount", None), ("amount", "x"), ("code", None), ("timestamp", None)]
)
def test_a_funding_payment_posbus_cannot_read_is_unreadable(field: str, value: Any) -> None:
    entry = {"symbol": "BTC/USDT:USDT", "code": "USDT", "amount": "1", "timestamp": 1}
    entry[field] = value
    assert unreadable(lambda: funding_payment(entry), field).structure == "funding"
