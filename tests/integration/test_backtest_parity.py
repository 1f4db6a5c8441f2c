"""Parity: the backtest runtime and the live in-process engine give the same positions and P&L.

The same inputs (quotes and intents, on a ManualClock) go through a live
`Node` (pykka threads, supervisors, settled after each step), an
`InlineNode` (the same actors on the inline scheduler) and the `Backtest`
engine (with zero latency, so orders reach the exchange on the quote they
were decided on, as in the Node). The simulated exchange rejects and splits
fills at random (seeded), so the exchange's RNG must be consumed in the
same order too.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from posbus.actors.model.side import Side
from posbus.actors.node import Node
from posbus.actors.runtime.inline_node import InlineNode
from posbus.actors.strategy import StrategyContext
from posbus.adapters.backtest import Backtest
from posbus.adapters.clock import ManualClock
from posbus.adapters.config import Config
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimulatedExchange
from posbus.bus.messages import MarketUpdate, OrderFill, OrderIntent

D = Decimal
T0 = 1_704_067_200_000_000_000
STEP = 250_000_000  # 250 ms between steps
ACCOUNT = "default"
SYMBOLS = ("BTC/USDT", "ETH/USDT")

Step = tuple[MarketUpdate, list[OrderIntent]]


def make_config() -> Config:
    base = Config()
    risk = replace(
        base.risk,
        daily_loss_limit=D(10**9),
        max_drawdown=D("0.99"),
        max_order_notional=D(10**9),
        max_leverage=D(1000),
        max_group_exposure=D(10**12),
        max_total_exposure=D(10**12),
        max_orders_per_second=1000,
    )
    # Random rejects and partial fills on: the exchange's RNG must be used identically.
    exchange = replace(
        base.exchange, seed=11, latency_ns=0, reject_rate=0.15, partial_fill_rate=0.5
    )
    return replace(base, account=ACCOUNT, risk=risk, exchange=exchange)


def make_script(n: int = 240, seed: int = 5) -> list[Step]:
    """Quotes alternating over two symbols; now and then an intent (some reduce-only)."""
    rng = random.Random(seed)
    mids = {"BTC/USDT": 42_000.0, "ETH/USDT": 2_300.0}
    steps: list[Step] = []
    count = 0
    for i in range(n):
        symbol = SYMBOLS[i % 2]
        mids[symbol] *= 1 + rng.gauss(0, 0.002)
        mid = round(mids[symbol], 2)
        ts = T0 + i * STEP
        update = MarketUpdate(
            symbol, D(f"{mid - 0.5:.2f}"), D(f"{mid + 0.5:.2f}"), None, None, None, ts
        )
        intents: list[OrderIntent] = []
        if i >= 2 and rng.random() < 0.2:
            count += 1
            reduce_only = rng.random() < 0.3
            intents.append(
                OrderIntent(
                    account=ACCOUNT,
                    symbol=symbol,
                    side=Side.BUY if rng.random() < 0.5 else Side.SELL,
                    qty=D(rng.choice(["0.1", "0.25", "1"])),
                    limit_price=None,
                    intent_id=f"parity-{count}",
                    reduce_only=reduce_only,
                    reason="parity",
                    ts_ns=ts,
                )
            )
        steps.append((update, intents))
    return steps


def position_view(state: dict[str, Any]) -> dict[str, Any]:
    """The part of a position's state that must match: money, quantities, fills, orders.

    A flat position's unrealized P&L is 0 by definition; the node reports None
    for it when the closed position's actor has stopped (no mark is kept).
    """
    qty = D(state["qty"])
    unrealized = state["unrealized_pnl"]
    return {
        "qty": qty,
        "avg_entry_price": D(state["avg_entry_price"]),
        "realized_pnl": D(state["realized_pnl"]),
        "unrealized_pnl": D(0) if qty == 0 else D(unrealized),
        "fees": D(state["fees"]),
        "trade_ids": sorted(state["trade_ids"]),
        "orders": {oid: o["status"] for oid, o in state["orders"].items()},
    }


def drive(node: Node | InlineNode, clock: ManualClock, script: Sequence[Step]) -> None:
    for update, intents in script:
        clock.set(update.ts_ns)
        node.market(update)
        node.settle()
        for intent in intents:
            node.signal(intent)
        node.settle()


def test_the_inline_node_and_the_threaded_node_end_with_identical_positions_and_journals(
    start_node: Any,
) -> None:
    config = make_config()
    script = make_script()

    live_clock, live_journal = ManualClock(T0), MemoryJournal()
    live = start_node(
        config.node_config(),
        journal=live_journal,
        exchange=SimulatedExchange(config.exchange, ACCOUNT),
        clock=live_clock,
    )
    drive(live, live_clock, script)

    inline_clock, inline_journal = ManualClock(T0), MemoryJournal()
    inline = InlineNode(
        config.node_config(),
        journal=inline_journal,
        exchange=SimulatedExchange(config.exchange, ACCOUNT),
        clock=inline_clock,
    )
    inline.start()
    drive(inline, inline_clock, script)

    streams = [f"position/{ACCOUNT}/{symbol}" for symbol in SYMBOLS]
    for stream in streams:
        assert position_view(inline.inspect(stream)) == position_view(live.inspect(stream))
    # The run did something worth comparing: fills, rejects and partial fills.
    orders = [s for stream in streams for s in inline.inspect(stream)["orders"].values()]
    assert {o["status"] for o in orders} >= {"Filled", "Rejected"}
    assert len(inline.inspect(streams[0])["trade_ids"]) > len(
        [o for o in orders if o["symbol"] == SYMBOLS[0] and o["status"] == "Filled"]
    )
    # Every record each position journaled, byte for byte.
    for stream in streams:
        live_records = [r.payload for r in live_journal.read(stream)]
        inline_records = [r.payload for r in inline_journal.read(stream)]
        assert inline_records == live_records


class ScriptedIntents:
    """Replays the intents of a script on the market update they belong to."""

    def __init__(self, script: Sequence[Step]) -> None:
        self.by_ts = {update.ts_ns: intents for update, intents in script}

    def on_start(self, context: StrategyContext) -> None:
        pass

    def on_market(self, update: MarketUpdate) -> Sequence[OrderIntent]:
        return self.by_ts.get(update.ts_ns, [])

    def on_fill(self, fill: OrderFill) -> Sequence[OrderIntent]:
        return ()


def test_the_backtest_engine_and_the_threaded_node_give_the_same_positions_and_pnl(
    start_node: Any,
) -> None:
    config = make_config()
    # The backtest ticks risk once a second of replay time; with these limits a
    # tick changes nothing, so the node needs none.
    script = make_script(seed=9)

    live_clock = ManualClock(T0)
    live = start_node(
        config.node_config(),
        journal=MemoryJournal(),
        exchange=SimulatedExchange(config.exchange, ACCOUNT),
        clock=live_clock,
    )
    drive(live, live_clock, script)

    backtest = Backtest(config, ScriptedIntents(script))
    result = backtest.run([update for update, _ in script])

    for symbol in SYMBOLS:
        expected = position_view(live.inspect(f"position/{ACCOUNT}/{symbol}"))
        actor = backtest.node.position_actor(ACCOUNT, symbol)
        assert actor is not None
        got = position_view(actor.inspect())
        assert got == expected, symbol
        assert D(result.positions[symbol]["realized_pnl"]) == expected["realized_pnl"]
    assert result.fills == len(backtest.exchange.fills()) > 10
