"""A simple seeded signal source for the demo: opens and closes positions at random.

It sends `OrderIntent`s, the same execution_signal a live strategy sends, and
keeps no position state of its own beyond which symbols it believes it holds
(the positions are the truth; a refused intent just leaves a belief wrong for
a while, which is what a real strategy has to live with too).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from decimal import Decimal

from posbus.actors.model.side import Side
from posbus.bus.messages import OrderIntent

_CLOSE_ALL = Decimal(10**9)


class RandomSignalSource:
    """Each `step` may open a position in a symbol it does not hold or close one it does."""

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        account: str,
        seed: int = 0,
        order_qty: Mapping[str, Decimal],
        open_probability: float = 0.05,
        close_probability: float = 0.03,
    ) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - simulation, not crypto
        self.symbols = list(symbols)
        self.account = account
        self.order_qty = order_qty
        self.open_probability = open_probability
        self.close_probability = close_probability
        self.holding: set[str] = set()
        self._count = 0

    def step(self, ts_ns: int) -> list[OrderIntent]:
        """The intents for this step (usually none)."""
        intents = []
        for symbol in self.symbols:
            roll = self._rng.random()
            if symbol in self.holding and roll < self.close_probability:
                self.holding.discard(symbol)
                intents.append(self._intent(symbol, Side.SELL, True, "close", ts_ns))
            elif symbol not in self.holding and roll < self.open_probability:
                self.holding.add(symbol)
                side = Side.BUY if self._rng.random() < 0.5 else Side.SELL
                intents.append(self._intent(symbol, side, False, "open", ts_ns))
        return intents

    def _intent(
        self, symbol: str, side: Side, reduce_only: bool, reason: str, ts_ns: int
    ) -> OrderIntent:
        self._count += 1
        return OrderIntent(
            account=self.account,
            symbol=symbol,
            side=side,
            # A reduce-only intent is clamped to the open quantity by the position.
            qty=self.order_qty[symbol] if not reduce_only else _CLOSE_ALL,
            limit_price=None,
            intent_id=f"demo-{self._count}",
            reduce_only=reduce_only,
            reason=reason,
            ts_ns=ts_ns,
        )
