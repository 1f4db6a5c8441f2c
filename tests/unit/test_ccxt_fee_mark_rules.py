"""The ccxt gateway's conversion marks: which trades get one, which price, and when none."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from posbus.actors.model.errors import ExchangeUnavailable
from posbus.actors.model.exchange_events import TradeView
from posbus.actors.model.side import Side
from posbus.adapters.clock import ManualClock
from posbus.adapters.exchange.ccxt_convert import ticker_mark
from posbus.adapters.exchange.ccxt_fee_marks import FeeMarks, mark_pair
from posbus.bus.messages import MarketUpdate

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def trade(
    fee_currency: str = "BNB", *, symbol: str = "BTC/USDT", fee: str = "0.01", ts_ns: int = T0
) -> TradeView:
    return TradeView(
        trade_id="t-1",
        exchange_order_id="x-1",
        client_order_id="c-1",
        symbol=symbol,
        side=Side.BUY,
        qty=Decimal("0.1"),
        price=Decimal("60000"),
        fee=Decimal(fee),
        fee_currency=fee_currency,
        ts_ns=ts_ns,
        liquidity="taker",
    )


class Venue:
    """A ccxt client with markets and tickers, whose ticker requests are recorded."""

    def __init__(self, tickers: dict[str, dict[str, Any]], markets: tuple[str, ...]) -> None:
        self.tickers = tickers
        self.markets: dict[str, dict[str, Any]] = {name: {} for name in markets}
        self.asked: list[str] = []

    async def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        self.asked.append(symbol)
        if symbol not in self.tickers:
            raise ExchangeUnavailable("ticker down", symbol=symbol)
        return self.tickers[symbol]


class Guard:
    """The call guard's surface FeeMarks uses: the client, and a request (no retries here)."""

    def __init__(self, venue: Venue) -> None:
        self.exchange = venue

    async def retrying(
        self, what: str, request: Callable[[], Awaitable[Any]], **context: Any
    ) -> Any:
        return await request()


def marks(venue: Venue, clock: ManualClock) -> FeeMarks:
    return FeeMarks(guard=Guard(venue), clock=clock, counts=Counter())  # type: ignore[arg-type]


def stamped(fee_marks: FeeMarks, *trades: TradeView) -> list[Decimal | None]:
    return [t.fee_mark for t in asyncio.run(fee_marks.stamp(trades))]


def test_a_ticker_mark_is_the_mid_of_bid_and_ask_else_the_last_price() -> None:
    assert ticker_mark({"bid": "599.90", "ask": "600.10", "last": "601"}) == Decimal("600.00")
    assert ticker_mark({"bid": None, "ask": "600.10", "last": "601"}) == Decimal("601")
    assert ticker_mark({"bid": "601", "ask": "600", "last": "600.5"}) == Decimal("600.5")  # crossed
    assert ticker_mark({"bid": "0", "ask": "0", "last": None}) is None


def test_only_a_non_zero_fee_in_a_third_currency_needs_a_mark() -> None:
    assert mark_pair(trade("BNB")) == "BNB/USDT"
    assert mark_pair(trade("bnb")) == "BNB/USDT"
    assert mark_pair(trade("BTC", symbol="BTC/USDT:USDT")) == "BTC/USDT"  # a derivative's base
    assert mark_pair(trade("USDT")) is None
    assert mark_pair(trade("BTC")) is None  # a spot base fee is valued at the fill price
    assert mark_pair(trade("BNB", fee="0")) is None
    assert mark_pair(trade("BNB", symbol="BTCUSDT")) is None  # no pair to read


def test_market_data_of_the_pair_is_used_without_a_request() -> None:
    venue = Venue({}, ("BNB/USDT",))
    fee_marks = marks(venue, ManualClock(T0))
    fee_marks.observe(
        MarketUpdate("BNB/USDT", Decimal("599"), Decimal("601"), None, None, None, T0)
    )
    assert stamped(fee_marks, trade()) == [Decimal("600")]
    assert venue.asked == []


def test_one_fetched_mark_serves_the_trades_read_while_it_is_cached() -> None:
    venue = Venue({"BNB/USDT": {"symbol": "BNB/USDT", "bid": "599", "ask": "601"}}, ("BNB/USDT",))
    clock = ManualClock(T0)
    fee_marks = marks(venue, clock)
    assert stamped(fee_marks, trade(), trade("USDT"), trade()) == [Decimal(600), None, Decimal(600)]
    clock.advance(5 * SECOND)
    assert stamped(fee_marks, trade(ts_ns=T0 + 5 * SECOND)) == [Decimal(600)]
    assert venue.asked == ["BNB/USDT"]
    clock.advance(1)
    venue.tickers["BNB/USDT"] = {"bid": "610", "ask": "610"}
    assert stamped(fee_marks, trade(ts_ns=T0 + 5 * SECOND)) == [Decimal(610)]
    assert venue.asked == ["BNB/USDT", "BNB/USDT"]


def test_no_market_a_failed_request_or_an_old_trade_leave_the_trade_without_a_mark() -> None:
    clock = ManualClock(T0)
    no_market = Venue({"BNB/USDT": {"bid": "600", "ask": "600"}}, ("BTC/USDT",))
    assert stamped(marks(no_market, clock), trade()) == [None]
    assert no_market.asked == []
    failing = Venue({}, ("BNB/USDT",))
    fee_marks = marks(failing, clock)
    assert stamped(fee_marks, trade(), trade()) == [None, None]
    assert failing.asked == ["BNB/USDT"]  # the failure is kept as long as a mark would be
    up = Venue({"BNB/USDT": {"bid": "600", "ask": "600"}}, ("BNB/USDT",))
    assert stamped(marks(up, clock), trade(ts_ns=T0 - 61 * SECOND)) == [None]
    assert stamped(marks(up, clock), trade(ts_ns=T0 - 60 * SECOND)) == [Decimal(600)]
