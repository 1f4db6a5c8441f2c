"""Moving-average crossover: long when the fast average of the mid is above the slow one.

Per symbol, simple moving averages of the mid price ((bid + ask) / 2) over
the last `fast` and `slow` market updates. Once both windows are full, the
target position is +qty while fast > slow and -qty while fast < slow (0
instead of -qty with `allow_short=false`); equal averages keep the last
target. Orders are market orders sent through `TargetPosition` (a reversal
is a reduce-only close, then an open).

Exact: the averages are kept as Decimal running sums and compared by cross
multiplication, so no float rounding can move a crossover.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated

from posbus.actors.strategy import StrategyContext, TargetPosition
from posbus.actors.strategy_params import Range, check_ranges
from posbus.bus.messages import MarketUpdate, OrderFill, OrderIntent

_TWO = Decimal(2)


@dataclass(slots=True)
class _Window:
    """A running sum over the last `size` values."""

    size: int
    values: deque[Decimal] = field(default_factory=deque)
    total: Decimal = Decimal(0)

    def push(self, value: Decimal) -> None:
        self.values.append(value)
        self.total += value
        if len(self.values) > self.size:
            self.total -= self.values.popleft()

    @property
    def full(self) -> bool:
        return len(self.values) == self.size


class MovingAverageCrossover:
    """Fast/slow simple moving-average crossover on the mid price.

    Params: `fast` (updates, >= 1), `slow` (updates, > fast), `qty` (> 0),
    `symbol` (default: every symbol it sees), `allow_short` (default true).
    """

    def __init__(
        self,
        fast: Annotated[int, Range(ge=1)] = 20,
        slow: Annotated[int, Range(ge=2)] = 80,
        qty: Annotated[Decimal, Range(gt=0)] = Decimal("0.1"),
        symbol: str = "",
        allow_short: bool = True,
    ) -> None:
        check_ranges(MovingAverageCrossover, {"fast": fast, "slow": slow, "qty": qty})
        if not fast < slow:
            raise ValueError("need 1 <= fast < slow")
        self.fast = fast
        self.slow = slow
        self.qty = qty
        self.symbol = symbol
        self.allow_short = allow_short
        self._windows: dict[str, tuple[_Window, _Window]] = {}
        self._target: TargetPosition | None = None
        self._wanted: dict[str, Decimal] = {}

    def on_start(self, context: StrategyContext) -> None:
        """Keep the context."""
        self._target = TargetPosition(context)

    def on_market(self, update: MarketUpdate) -> Sequence[OrderIntent]:
        """Update the averages of the symbol; trade when the crossover changes side."""
        symbol = update.symbol
        if self.symbol and symbol != self.symbol:
            return ()
        windows = self._windows.get(symbol)
        if windows is None:
            windows = self._windows[symbol] = (_Window(self.fast), _Window(self.slow))
        fast, slow = windows
        mid = (update.bid + update.ask) / _TWO
        fast.push(mid)
        slow.push(mid)
        if not slow.full:
            return ()
        # fast.total / fast.size vs slow.total / slow.size, without dividing.
        left = fast.total * self.slow
        right = slow.total * self.fast
        if left > right:
            wanted = self.qty
        elif left < right:
            wanted = -self.qty if self.allow_short else Decimal(0)
        else:
            wanted = self._wanted.get(symbol, Decimal(0))
        self._wanted[symbol] = wanted
        assert self._target is not None, "on_start first"
        reason = "ma_crossover: fast above slow" if wanted > 0 else "ma_crossover: fast below slow"
        return self._target.update(symbol, wanted, reason)

    def on_fill(self, fill: OrderFill) -> Sequence[OrderIntent]:
        """Fills change nothing: the target follows the averages."""
        return ()
