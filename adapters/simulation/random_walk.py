"""A seeded random-walk market: quotes for the demo and tests, reproducible from a seed.

Each step moves every symbol's mid by a Gaussian log-return (volatility per
step), rounds it to the tick and quotes a fixed spread around it. Exact
Decimal prices; the only randomness is `random.Random(seed)`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal

from posbus.bus.messages import MarketUpdate


class RandomWalkMarket:
    """Quotes for several symbols, one `step(ts_ns)` at a time. Not thread-safe."""

    def __init__(
        self,
        start_prices: Mapping[str, Decimal],
        *,
        seed: int = 0,
        volatility: float = 0.001,
        spread_bps: Decimal = Decimal(2),
        tick: Decimal = Decimal("0.01"),
    ) -> None:
        if not start_prices:
            raise ValueError("a market needs at least one symbol")
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not crypto
        self._mids = dict(start_prices)
        self.volatility = volatility
        self.spread_bps = spread_bps
        self.tick = tick

    @property
    def symbols(self) -> list[str]:
        """The quoted symbols, in a stable order."""
        return sorted(self._mids)

    def mid(self, symbol: str) -> Decimal:
        """The current mid price of `symbol`."""
        return self._mids[symbol]

    def step(self, ts_ns: int) -> list[MarketUpdate]:
        """Move every symbol once and return its new quote, in symbol order."""
        updates = []
        for symbol in self.symbols:
            shock = math.exp(self._rng.gauss(0.0, self.volatility))
            mid = (self._mids[symbol] * Decimal(repr(shock))).quantize(
                self.tick, rounding=ROUND_HALF_EVEN
            )
            mid = max(mid, self.tick * 10)
            self._mids[symbol] = mid
            half = (mid * self.spread_bps / 20_000).quantize(self.tick, rounding=ROUND_HALF_EVEN)
            half = max(half, self.tick)
            updates.append(
                MarketUpdate(
                    symbol=symbol,
                    bid=mid - half,
                    ask=mid + half,
                    last=mid,
                    bid_size=None,
                    ask_size=None,
                    ts_ns=ts_ns,
                )
            )
        return updates
