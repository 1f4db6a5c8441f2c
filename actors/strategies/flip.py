"""Flip: long, then short, then long again, every `every` market updates of one symbol.

No signal at all: a load generator for benchmarks and tests. On the first
update of its symbol it buys `qty`; every `every` updates after that it sends
one market order of twice `qty` that takes the position to the other side.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated

from posbus.actors.strategy import StrategyContext, TargetPosition
from posbus.actors.strategy_params import Range, check_ranges
from posbus.bus.messages import MarketUpdate, OrderFill, OrderIntent


class Flip:
    """Alternates between +qty and -qty of `symbol` every `every` updates of it.

    Params: `every` (updates between flips, >= 1), `qty` (> 0), `symbol`
    (default: the first symbol it sees).
    """

    def __init__(
        self,
        every: Annotated[int, Range(ge=1)] = 1000,
        qty: Annotated[Decimal, Range(gt=0)] = Decimal("0.1"),
        symbol: str = "",
    ) -> None:
        check_ranges(Flip, {"every": every, "qty": qty})
        self.every = every
        self.qty = qty
        self.symbol = symbol
        self._count = 0
        self._sign = 1
        self._target: TargetPosition | None = None

    def on_start(self, context: StrategyContext) -> None:
        """Keep the context; one order per flip (no split at zero)."""
        self._target = TargetPosition(context, split_at_zero=False)

    def on_market(self, update: MarketUpdate) -> Sequence[OrderIntent]:
        """Count the symbol's updates; flip on every `every`-th."""
        if not self.symbol:
            self.symbol = update.symbol
        elif update.symbol != self.symbol:
            return ()
        count = self._count
        self._count = count + 1
        if count % self.every:
            return ()
        assert self._target is not None, "on_start first"
        target = self.qty * self._sign
        self._sign = -self._sign
        return self._target.update(self.symbol, target, "flip")

    def on_fill(self, fill: OrderFill) -> Sequence[OrderIntent]:
        """Fills change nothing: the schedule is fixed."""
        return ()
