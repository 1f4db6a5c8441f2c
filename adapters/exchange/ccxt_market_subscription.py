"""The ccxt gateway's market data subscription: which feed, and its requests through the call guard.

`MarketSubscription.start` builds the gateway's `CcxtMarketFeed` (ccxt_market.py)
for the subscribed symbols: websockets through ccxt.pro, or REST tickers sent
through the gateway's breaker. "auto" polls REST when the REST URLs are
overridden (a testnet, an emulator), since ccxt's websocket URLs would still
name the production venue. `tick` starts a REST round when one is due.

Everything here runs on the gateway's I/O loop. It must never start a second
REST round while one runs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any

from posbus.actors.model.clock import Clock
from posbus.adapters.exchange.ccxt_call_guard import CallGuard
from posbus.adapters.exchange.ccxt_client import new_ccxt_client
from posbus.adapters.exchange.ccxt_config import Credentials, GatewayConfig
from posbus.adapters.exchange.ccxt_loop import GatewayLoop
from posbus.adapters.exchange.ccxt_market import CcxtMarketFeed, MarketSink


class MarketSubscription:
    """The market data of one gateway, once subscribed (I/O loop only)."""

    def __init__(
        self,
        config: GatewayConfig,
        credentials: Credentials,
        *,
        clock: Clock,
        guard: CallGuard,
        loop: GatewayLoop,
        rng: random.Random,
        counts: Counter[str],
    ) -> None:
        self._config = config
        self._credentials = credentials
        self._clock = clock
        self._guard = guard
        self._loop = loop
        self._rng = rng
        self._counts = counts
        self._feed: CcxtMarketFeed | None = None

    def start(self, symbols: Sequence[str], sink: MarketSink) -> None:
        """Feed top-of-book updates of `symbols` to `sink` from now on."""
        mode = self._config.market_data
        if mode == "auto" and self._config.urls:
            mode = "rest"
        feed = CcxtMarketFeed(
            symbols=symbols,
            sink=sink,
            mode=mode,
            fetch_ticker=self._fetch_ticker,
            new_websocket_exchange=self._new_websocket_exchange,
            clock=self._clock,
            retry=self._config.retry,
            rng=self._rng,
            counts=self._counts,
        )
        self._feed = feed
        self._loop.keep_in_background(*feed.start())

    def tick(self) -> None:
        """Start a round of REST tickers unless the feed streams or a round runs."""
        feed = self._feed
        if feed is not None and not feed.streaming and not feed.polling:
            feed.polling = True  # set now: the next tick must not start a second round
            self._loop.spawn_local(feed.poll_once())

    async def close(self) -> None:
        """Close the feed's websocket connections (nothing when never subscribed)."""
        if self._feed is not None:
            await self._feed.close()

    async def _fetch_ticker(self, symbol: str) -> Any:
        ex = self._guard.exchange
        return await self._guard.call(
            "fetch_ticker", partial(ex.fetch_ticker, symbol), symbol=symbol
        )

    def _new_websocket_exchange(self) -> Any | None:
        import ccxt.pro as ccxt_pro  # noqa: PLC0415 - websockets only when used

        if getattr(ccxt_pro, self._config.exchange_id, None) is None:
            return None
        return new_ccxt_client(ccxt_pro, self._config, self._credentials)
