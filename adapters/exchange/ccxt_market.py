"""Market data from ccxt: `watch_ticker` over ccxt.pro's websocket, or REST polling of tickers.

`CcxtMarketFeed` runs on the ccxt gateway's I/O loop and hands every usable
ticker to a sink as a `market_update` (the node's `market`, which feeds the
positions). Mode "websocket" streams, "rest" polls (the gateway's timer calls
`poll_once`), "auto" streams when ccxt.pro has `watchTicker` for the exchange
and polls otherwise. A stream that fails reconnects with the gateway's retry
backoff; a failed poll waits for the next tick. Market data is conflatable:
a lost ticker is replaced by the next one, so nothing here is retried
beyond that.

This module must never block the loop, and never turn a quote it cannot
read into a price (a ticker without a positive, uncrossed bid and ask, or
one naming another symbol than was asked for, is skipped and counted).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import ccxt

from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import PosbusError
from posbus.adapters.exchange.ccxt_convert import market_update
from posbus.adapters.exchange.retry import RetryPolicy
from posbus.bus.messages import MarketUpdate

logger = logging.getLogger(__name__)

MarketSink = Callable[[MarketUpdate], None]


class CcxtMarketFeed:
    """The market data of one ccxt gateway (its I/O loop only).

    Args:
        symbols, sink: what to watch, and who gets the updates.
        mode: "auto", "rest" or "websocket".
        fetch_ticker: the gateway's guarded REST call for one symbol.
        new_websocket_exchange: builds the ccxt.pro exchange (None when ccxt.pro
            has no such exchange).
        clock: stamps the updates (the node's clock, as its staleness checks use).
        retry, rng: the reconnect backoff of a stream.
        counts: the gateway's counters.
    """

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        sink: MarketSink,
        mode: str,
        fetch_ticker: Callable[[str], Awaitable[Mapping[str, Any]]],
        new_websocket_exchange: Callable[[], Any | None],
        clock: Clock,
        retry: RetryPolicy,
        rng: random.Random,
        counts: Counter[str],
    ) -> None:
        self.symbols = tuple(symbols)
        self.sink = sink
        self.mode = mode
        self._fetch_ticker = fetch_ticker
        self._new_websocket_exchange = new_websocket_exchange
        self._clock = clock
        self._retry = retry
        self._rng = rng
        self.counts = counts
        self._ws: Any = None
        self.streaming = False
        self.polling = False

    def start(self) -> list[asyncio.Task[None]]:
        """Open the streams when the mode says so; returns their tasks (none when polling)."""
        if self.mode == "rest":
            return []
        self._ws = self._new_websocket_exchange()
        if self._ws is None or not self._ws.has.get("watchTicker"):
            if self.mode == "websocket":
                raise ValueError("this exchange has no websocket watch_ticker in ccxt.pro")
            return []
        self.streaming = True
        loop = asyncio.get_running_loop()
        return [loop.create_task(self._watch(symbol)) for symbol in self.symbols]

    async def poll_once(self) -> None:
        """One round of REST tickers (the gateway's timer calls it while not streaming)."""
        self.polling = True
        try:
            for symbol in self.symbols:
                try:
                    ticker = await self._fetch_ticker(symbol)
                except PosbusError as error:
                    self.counts["market_failures"] += 1
                    logger.info(
                        "ticker poll failed", extra={"symbol": symbol, "error": error.message}
                    )
                    return
                self._emit(symbol, ticker)
        finally:
            self.polling = False

    async def close(self) -> None:
        """Close the websocket connections."""
        if self._ws is not None:
            await self._ws.close()

    async def _watch(self, symbol: str) -> None:
        """Stream one symbol's tickers; reconnect with backoff after a failure."""
        attempt = 0
        while True:
            try:
                ticker = await self._ws.watch_ticker(symbol)
                attempt = 0
            except ccxt.BaseError as exc:
                self.counts["market_failures"] += 1
                logger.info("ticker stream failed", extra={"symbol": symbol, "error": repr(exc)})
                await asyncio.sleep(self._retry.delay(attempt, self._rng))
                attempt += 1
                continue
            self._emit(symbol, ticker)

    def _emit(self, symbol: str, ticker: Mapping[str, Any]) -> None:
        named = ticker.get("symbol")
        if named is not None and named != symbol:
            # Another symbol's ticker: its price taken for this symbol's mark would
            # let risk judge orders at the wrong price. Counted and dropped.
            self.counts["market_mismatched"] += 1
            logger.warning(
                "ticker of another symbol dropped", extra={"asked": symbol, "got": named}
            )
            return
        update = market_update(symbol, ticker, self._clock.now_ns())
        if update is None:
            self.counts["market_skipped"] += 1
            return
        self.counts["market_updates"] += 1
        self.sink(update)
