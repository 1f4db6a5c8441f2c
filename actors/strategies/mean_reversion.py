"""Mean reversion: fade moves of the mid price away from its rolling mean.

Per symbol, over the last `window` market updates, the mean and the sample
standard deviation (ddof = 1) of the mid price, and the z-score of the
latest mid. Once the window is full: z <= -entry_z targets +qty (bought the
dip), z >= entry_z targets -qty, and |z| <= exit_z targets flat; in between,
the last target holds. Orders go through `TargetPosition`.

Exact and deterministic: Decimal running sums; the standard deviation is a
Decimal square root, and z is compared against the thresholds as
|mid - mean| against z * stdev.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated

from posbus.actors.strategy import StrategyContext, TargetPosition
from posbus.actors.strategy_params import Range, check_ranges
from posbus.bus.messages import MarketUpdate, OrderFill, OrderIntent

_TWO = Decimal(2)


class MeanReversion:
    """Rolling z-score mean reversion on the mid price.

    Params: `window` (updates, >= 2), `entry_z` (> exit_z), `exit_z` (>= 0),
    `qty` (> 0), `symbol` (default: every symbol it sees).
    """

    def __init__(
        self,
        window: Annotated[int, Range(ge=2)] = 100,
        entry_z: Annotated[Decimal, Range(gt=0)] = Decimal(2),
        exit_z: Annotated[Decimal, Range(ge=0)] = Decimal("0.5"),
        qty: Annotated[Decimal, Range(gt=0)] = Decimal("0.1"),
        symbol: str = "",
    ) -> None:
        check_ranges(
            MeanReversion, {"window": window, "entry_z": entry_z, "exit_z": exit_z, "qty": qty}
        )
        if not exit_z < entry_z:
            raise ValueError("need exit_z < entry_z")
        self.window = window
        self.entry_z = entry_z
        self.exit_z = exit_z
        self.qty = qty
        self.symbol = symbol
        self._values: dict[str, deque[Decimal]] = {}
        self._sums: dict[str, tuple[Decimal, Decimal]] = {}
        self._wanted: dict[str, Decimal] = {}
        self._target: TargetPosition | None = None

    def on_start(self, context: StrategyContext) -> None:
        """Keep the context."""
        self._target = TargetPosition(context)

    def on_market(self, update: MarketUpdate) -> Sequence[OrderIntent]:
        """Update the rolling statistics; trade when the z-score crosses a threshold."""
        symbol = update.symbol
        if self.symbol and symbol != self.symbol:
            return ()
        mid = (update.bid + update.ask) / _TWO
        values = self._values.setdefault(symbol, deque())
        total, squares = self._sums.get(symbol, (Decimal(0), Decimal(0)))
        values.append(mid)
        total += mid
        squares += mid * mid
        if len(values) > self.window:
            old = values.popleft()
            total -= old
            squares -= old * old
        self._sums[symbol] = (total, squares)
        n = len(values)
        if n < self.window:
            return ()
        mean = total / n
        variance = (squares - total * total / n) / (n - 1)
        if variance <= 0:
            return ()  # a flat window has no z-score
        stdev = variance.sqrt()
        distance = mid - mean
        wanted = self._wanted.get(symbol, Decimal(0))
        if distance <= -self.entry_z * stdev:
            wanted = self.qty
        elif distance >= self.entry_z * stdev:
            wanted = -self.qty
        elif abs(distance) <= self.exit_z * stdev:
            wanted = Decimal(0)
        self._wanted[symbol] = wanted
        assert self._target is not None, "on_start first"
        return self._target.update(symbol, wanted, f"mean_reversion: target {wanted}")

    def on_fill(self, fill: OrderFill) -> Sequence[OrderIntent]:
        """Fills change nothing: the target follows the z-score."""
        return ()
