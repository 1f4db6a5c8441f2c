"""The ccxt market feed turns only the asked symbol's usable tickers into quotes."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from decimal import Decimal
from typing import Any

from posbus.adapters.clock import ManualClock
from posbus.adapters.exchange.ccxt_market import CcxtMarketFeed
from posbus.adapters.exchange.retry import RetryPolicy
from posbus.bus.messages import MarketUpdate

TICKERS: dict[str, dict[str, Any]] = {
    "BTC/USDT": {"symbol": "BTC/USDT", "bid": "60000", "ask": "60001"},
    # A ticker of another symbol answered for ETH (a crossed HTTP answer):
    # taken as ETH's price, it would let risk judge ETH orders at BTC's price.
    "ETH/USDT": {"symbol": "BTC/USDT", "bid": "60000", "ask": "60001"},
    "SOL/USDT": {"symbol": "SOL/USDT", "bid": "150", "ask": "150.1"},
}


def test_a_ticker_naming_another_symbol_is_dropped_and_counted() -> None:
    quotes: list[MarketUpdate] = []
    counts: Counter[str] = Counter()

    async def fetch(symbol: str) -> dict[str, Any]:
        return TICKERS[symbol]

    feed = CcxtMarketFeed(
        symbols=list(TICKERS),
        sink=quotes.append,
        mode="rest",
        fetch_ticker=fetch,
        new_websocket_exchange=lambda: None,
        clock=ManualClock(1),
        retry=RetryPolicy(),
        rng=random.Random(1),
        counts=counts,
    )
    asyncio.run(feed.poll_once())
    assert [(q.symbol, q.bid) for q in quotes] == [
        ("BTC/USDT", Decimal(60000)),
        ("SOL/USDT", Decimal(150)),
    ]
    assert counts["market_mismatched"] == 1
    assert counts["market_updates"] == 2
