"""Conversion marks of third-currency fees, stamped on trades before they become fills.

A trade whose fee is in neither its symbol's quote nor (spot) base currency
(BNB on Binance, a rebate token, a derivative's base) is valued by the
position at the fill's `fee_mark`, the price of one FEECCY in QUOTE
(docs/accounting.md, "Fees in any currency"). `FeeMarks.stamp` sets it on
such trades before the gateway reports them, so the journaled fill carries
its mark and a replay values it the same way.

The mark is the FEECCY/QUOTE price: the mid of bid and ask, else the last
trade price (`ticker_mark`). It comes from the gateway's own market data for
that pair when it has a quote (`observe`), else from one `fetch_ticker`
through the call guard (breaker, and retries within the retry policy), kept
for `CACHE_S` and shared by the trades read meanwhile; a failure is kept as
long, so a burst of trades costs one request. A mark serves only trades
within `MAX_SKEW_S` of its time: a trade read long after it happened (a
reconciliation after downtime) is not valued at today's price. Without a
mark (no such market, a failed request, a ticker without a price, a trade
too old) the trade goes out as it is, counted (`fee_marks.missing`) and
logged; the position counts its fee as unconverted and warns.

Everything here runs on the gateway's I/O loop. It must never hold a trade
back beyond one guarded request, and never drop one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from functools import partial

from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.exchange_events import TradeView
from posbus.actors.model.symbol_currencies import FeeKind, SymbolCurrencies
from posbus.adapters.exchange.ccxt_call_guard import CallGuard, log_fields
from posbus.adapters.exchange.ccxt_convert import ticker_mark
from posbus.bus.messages import MarketUpdate

logger = logging.getLogger(__name__)

#: How long a fetched mark (or a failure to get one) is reused, in seconds.
CACHE_S = 5.0
#: The farthest a mark's time may be from a trade's time for it to value the trade's fee.
MAX_SKEW_S = 60.0

_NS = 1_000_000_000


def mark_pair(trade: TradeView) -> str | None:
    """ "FEECCY/QUOTE" when `trade` pays a non-zero fee in a third currency and has no mark yet."""
    if trade.fee_mark is not None or not trade.fee:
        return None
    currencies = SymbolCurrencies.of(trade.symbol)
    if currencies is None or currencies.fee_kind(trade.fee_currency) is not FeeKind.OTHER:
        return None
    return f"{trade.fee_currency.upper()}/{currencies.quote}"


class FeeMarks:
    """The conversion marks of one gateway (I/O loop only).

    Args:
        guard: the breaker and retries around the ccxt client.
        clock: the time of a fetched mark (the gateway's clock).
        counts: the gateway's counters (`fee_marks.*`).
    """

    def __init__(self, *, guard: CallGuard, clock: Clock, counts: Counter[str]) -> None:
        self._guard = guard
        self._clock = clock
        self._counts = counts
        self._quotes: dict[str, MarketUpdate] = {}
        self._fetched: dict[str, tuple[Decimal | None, int]] = {}  # pair -> (mark, taken at)

    def observe(self, update: MarketUpdate) -> None:
        """Remember the gateway's latest quote of a symbol (its market data)."""
        self._quotes[update.symbol] = update

    async def stamp(self, trades: Sequence[TradeView]) -> list[TradeView]:
        """`trades`, those paying a fee in a third currency with their mark when one is had."""
        out = []
        for trade in trades:
            pair = mark_pair(trade)
            mark = None if pair is None else await self._mark(pair, trade)
            out.append(trade if mark is None else dataclasses.replace(trade, fee_mark=mark))
        return out

    async def _mark(self, pair: str, trade: TradeView) -> Decimal | None:
        skew_ns = int(MAX_SKEW_S * _NS)
        quote = self._quotes.get(pair)
        if quote is not None and abs(quote.ts_ns - trade.ts_ns) <= skew_ns:
            self._counts["fee_marks.market_data"] += 1
            return quote.mid()
        now = self._clock.now_ns()
        fetched = self._fetched.get(pair)
        if fetched is None or now - fetched[1] > int(CACHE_S * _NS):
            fetched = self._fetched[pair] = (await self._fetch(pair), now)
        mark, taken_ns = fetched
        if mark is not None and abs(taken_ns - trade.ts_ns) <= skew_ns:
            self._counts["fee_marks.fetched"] += 1
            return mark
        self._counts["fee_marks.missing"] += 1
        logger.info(
            "no conversion mark for a fee in a third currency; the fill goes out without one",
            extra={
                "trade_id": trade.trade_id,
                "symbol": trade.symbol,
                "fee_currency": trade.fee_currency,
                "pair": pair,
                "reason": "no mark" if mark is None else "mark too far from the trade's time",
            },
        )
        return None

    async def _fetch(self, pair: str) -> Decimal | None:
        """The pair's ticker price, through the guard; None when it cannot be had."""
        ex = self._guard.exchange
        markets = getattr(ex, "markets", None)
        if markets and pair not in markets:
            return None  # the venue lists no such market: nothing to ask
        try:
            ticker = await self._guard.retrying(
                "fetch_ticker", partial(ex.fetch_ticker, pair), symbol=pair
            )
        except PosbusError as error:
            logger.info("conversion mark request failed", extra=log_fields(error))
            return None
        named = ticker.get("symbol")
        if named is not None and named != pair:
            return None  # another market's price is no mark of this one
        return ticker_mark(ticker)
