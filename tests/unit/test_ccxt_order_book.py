"""The ccxt gateway's order book reports each exchange trade once and remembers ended orders."""

from __future__ import annotations

from decimal import Decimal

from posbus.actors.model.exchange_events import TradeView
from posbus.actors.model.exchange_reports import (
    ExchangeOrderStatus,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderView,
)
from posbus.actors.model.side import Side
from posbus.adapters.exchange.ccxt_order_book import OrderBook

BTC = "BTC/USDT"


def view(status: ExchangeOrderStatus, filled: str = "0", cid: str = "c1") -> OrderView:
    return OrderView(
        client_order_id=cid,
        exchange_order_id="e1",
        account="A",
        symbol=BTC,
        side=Side.BUY,
        qty=Decimal(1),
        limit_price=Decimal(60000),
        status=status,
        filled_qty=Decimal(filled),
    )


def trade(trade_id: str, qty: str) -> TradeView:
    return TradeView(
        trade_id=trade_id,
        exchange_order_id="e1",
        client_order_id="c1",
        symbol=BTC,
        side=Side.BUY,
        qty=Decimal(qty),
        price=Decimal(60000),
        fee=Decimal("0.1"),
        fee_currency="USDT",
        ts_ns=5,
        liquidity="maker",
    )


def test_a_trade_seen_again_is_not_reported_twice() -> None:
    book = OrderBook("A")
    working = book.working_of(view(ExchangeOrderStatus.PARTIALLY_FILLED, "0.4"))

    first = book.fills([trade("t1", "0.4")], working)
    again = book.fills([trade("t1", "0.4"), trade("t2", "0.1")], working)

    assert [r.fill.trade_id for r in first if isinstance(r, OrderFilled)] == ["t1"]
    assert [r.fill.trade_id for r in again if isinstance(r, OrderFilled)] == ["t2"]
    assert working.reported_filled == Decimal("0.5")
    filled = again[0]
    assert isinstance(filled, OrderFilled)
    assert filled.fill.account == "A"
    assert filled.fill.order_id == "c1"


def test_an_open_order_stays_working_and_reports_no_end() -> None:
    book = OrderBook("A")
    open_view = view(ExchangeOrderStatus.OPEN)

    assert book.settle(open_view, book.working_of(open_view), ts_ns=7) == []
    assert list(book.working) == ["c1"]
    assert book.knows("c1")


def test_a_closed_order_reports_how_it_ended_and_is_remembered_as_done() -> None:
    book = OrderBook("A")
    book.track("c1", BTC, "e1")
    book.track("c2", BTC, "e2")
    cancelled = view(ExchangeOrderStatus.CANCELLED)
    expired = view(ExchangeOrderStatus.EXPIRED, cid="c2")

    assert book.settle(cancelled, book.working_of(cancelled), ts_ns=7) == [
        OrderCancelled("c1", 7, "cancelled at the exchange")
    ]
    assert book.settle(expired, book.working_of(expired), ts_ns=8) == [OrderExpired("c2", 8)]
    assert book.working == {}
    # Done orders stay known, so a repeated submit of either is ignored.
    assert book.knows("c1")
    assert book.knows("c2")


def test_tracking_a_done_order_makes_it_working_again() -> None:
    book = OrderBook("A")
    book.forget("c1")

    book.track("c1", BTC, "e1")

    assert book.status()["working_orders"] == ["c1"]
    filled = view(ExchangeOrderStatus.FILLED, "1")
    assert book.settle(filled, book.working_of(filled), ts_ns=9) == []
    assert book.working == {}
    assert book.knows("c1")


def test_an_order_in_flight_or_unresolved_has_an_unknown_outcome() -> None:
    book = OrderBook("A")
    book.inflight.add("c1")

    assert book.outcome_unknown("c1")
    assert book.knows("c1")
    assert not book.outcome_unknown("c2")
    assert not book.knows("c2")
