"""The strategy interface: what a trading strategy sees and what it sends.

A strategy turns market updates (and its own fills) into `OrderIntent`s, the
execution_signal every posbus engine accepts: `Node.signal` in the live
in-process engine, `InlineNode.signal` in a backtest, an execution_signal on
the bus from another process. It never touches an order, a position or the
risk supervisor: the position actor turns an intent into an order, and only
if the risk supervisor approves it. So a strategy runs unchanged in a
backtest and live; only where its market data comes from differs.

Calls, all on the engine's thread, in this order: `on_start` once, then
`on_market` for every market update after the engine has applied it (the
positions are marked), and `on_fill` for every fill of the account after its
position has applied it. Each returns the intents to send now, in order.

Pure: this module and the strategies never read a clock, sleep, start a
thread or do I/O; time is `context.now_ns()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from posbus.actors.model.side import Side
from posbus.bus.messages import MarketUpdate, OrderFill, OrderIntent


class StrategyContext(Protocol):
    """What the engine tells a strategy besides market data (read-only, engine thread)."""

    @property
    def account(self) -> str:
        """The account the strategy trades."""
        ...

    def now_ns(self) -> int:
        """The engine's current time (the replay clock in a backtest)."""
        ...

    def position(self, symbol: str) -> Decimal:
        """The signed quantity held in `symbol` (long > 0), as of the last applied fill."""
        ...

    def working(self, symbol: str) -> Decimal:
        """The signed quantity of `symbol`'s live orders not filled yet (intents included)."""
        ...

    def next_intent_id(self) -> str:
        """A fresh, unique intent id."""
        ...


class Strategy(Protocol):
    """A trading strategy: market data and fills in, `OrderIntent`s out."""

    def on_start(self, context: StrategyContext) -> None:
        """Called once before the first market update."""
        ...

    def on_market(self, update: MarketUpdate) -> Sequence[OrderIntent]:
        """A market update was applied; return the intents to send now."""
        ...

    def on_fill(self, fill: OrderFill) -> Sequence[OrderIntent]:
        """A fill of this account was applied to its position; return the intents to send now."""
        ...


def market_intent(
    context: StrategyContext,
    symbol: str,
    side: Side,
    qty: Decimal,
    *,
    reason: str,
    reduce_only: bool = False,
) -> OrderIntent:
    """A market-order intent of the context's account, stamped now, with a fresh id."""
    return OrderIntent(
        account=context.account,
        symbol=symbol,
        side=side,
        qty=qty,
        limit_price=None,
        intent_id=context.next_intent_id(),
        reduce_only=reduce_only,
        reason=reason,
        ts_ns=context.now_ns(),
    )


class TargetPosition:
    """Turns a desired signed position per symbol into market-order intents, once per change.

    `update(symbol, target)` is meant to be called on every market update with
    the position the strategy wants. It sends intents only when the target
    differs from the last one it acted on, and only when no order of the
    symbol is in flight (otherwise it waits and tries again on the next
    call). An intent the risk supervisor refuses is not repeated until the
    target changes: a refusal is an answer, not a glitch to retry every tick.

    With `split_at_zero` (the default) a move across flat is sent as a
    reduce-only close followed by an opening order, so that in CoolDown or
    Halted (closeout only) the close still goes through; without it, as one
    order for the whole difference.
    """

    def __init__(self, context: StrategyContext, *, split_at_zero: bool = True) -> None:
        self.context = context
        self.split_at_zero = split_at_zero
        self._acted: dict[str, Decimal] = {}

    def update(self, symbol: str, target: Decimal, reason: str) -> list[OrderIntent]:
        """The intents that move `symbol` toward `target` now (usually none)."""
        if self._acted.get(symbol) == target:
            return []
        context = self.context
        if context.working(symbol) != 0:
            return []
        self._acted[symbol] = target
        held = context.position(symbol)
        if held == target:
            return []
        intents: list[OrderIntent] = []
        crosses = held != 0 and (target == 0 or (target > 0) != (held > 0))
        if crosses and self.split_at_zero:
            close_side = Side.SELL if held > 0 else Side.BUY
            close = market_intent(
                context, symbol, close_side, abs(held), reason=f"{reason}: close", reduce_only=True
            )
            intents.append(close)
            held = Decimal(0)
        delta = target - held
        if delta != 0:
            side = Side.BUY if delta > 0 else Side.SELL
            intents.append(market_intent(context, symbol, side, abs(delta), reason=reason))
        return intents
