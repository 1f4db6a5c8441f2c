"""An order's whole life through the actor layer: intent to fill, close, re-open.

A real `Node` (risk supervisor, gateway, position actors under their
supervisors) on the in-memory journal and the seeded simulated exchange, with
a ManualClock. Every expected number is worked out by hand in a comment.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from node_inputs import ACCOUNT, BTC, CONFIG, intent, quote

from posbus.actors.delivery import decode_record
from posbus.actors.model.side import Side
from posbus.actors.node import Node
from posbus.actors.position_actor import position_stream
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimConfig, SimulatedExchange
from posbus.bus.messages import (
    OrderAck,
    OrderFill,
    OrderIntent,
    OrderSubmit,
)

STREAM = position_stream(ACCOUNT, BTC)
T0 = 1_700_000_000_000_000_000


def child(node: Node, name: str) -> dict[str, Any]:
    """The supervisor's view of child `name`."""
    (found,) = [c for c in node.actors() if c["name"] == name]
    return found


def test_intent_is_approved_submitted_acked_filled_closed_and_reopened(start_node: Any) -> None:
    clock = ManualClock(T0)
    journal = MemoryJournal()
    exchange = SimulatedExchange(SimConfig(seed=2), account=ACCOUNT)
    node = start_node(CONFIG, journal=journal, exchange=exchange, clock=clock)

    # -- open: buy 0.1 at market -----------------------------------------------------
    node.market(quote(clock, BTC, "49990", "50010"))
    node.signal(intent(clock, BTC, Side.BUY, "0.1"))
    node.settle()

    # The write-ahead trail of the position: each step journaled before it took effect.
    trail = [type(decode_record(r).message) for r in journal.read(STREAM)]
    assert trail == [OrderIntent, OrderSubmit, OrderAck, OrderFill]
    state = node.inspect(STREAM)
    assert state["status"] == "Open"
    assert Decimal(state["qty"]) == Decimal("0.1")
    # A market buy takes the ask.
    assert Decimal(state["avg_entry_price"]) == Decimal("50010")
    # taker fee 0.1 x 50010 x 0.001 = 5.001; realized P&L carries the fee
    assert Decimal(state["fees"]) == Decimal("5.001")
    assert Decimal(state["realized_pnl"]) == Decimal("-5.001")
    (first_order,) = state["orders"].values()
    assert first_order["status"] == "Filled"
    assert node.inspect("risk")["decisions_since_start"] == {"approved": 1}
    assert [view.client_order_id for view in exchange.open_orders()] == []
    (fill,) = exchange.fills()
    assert fill.order_id == first_order["client_order_id"]

    # -- close: a reduce-only intent flattens it --------------------------------------
    node.market(quote(clock, BTC, "50490", "50510"))
    node.settle()
    # unrealized at mid 50500: 0.1 x (50500 - 50010) = 49
    assert Decimal(node.inspect(STREAM)["unrealized_pnl"]) == Decimal("49")
    # A reduce-only intent's side and size are the position's: 1 BTC asks for more than is open.
    node.signal(intent(clock, BTC, Side.BUY, "1", reduce_only=True))
    node.settle()

    # A closed position's actor stops and stays down (transient)...
    position_child = child(node, STREAM)
    assert position_child["status"] == "terminated"
    assert position_child["alive"] is False
    assert position_child["restarts"] == 0
    assert STREAM not in node.running_position_names()
    # ...but its state is rebuilt from the journal.
    closed = node.inspect(STREAM)
    assert closed["status"] == "Closed"
    assert Decimal(closed["qty"]) == 0
    # sold 0.1 at the bid 50490: gross 0.1 x (50490 - 50010) = 48,
    # fee 0.1 x 50490 x 0.001 = 5.049; realized -5.001 + 48 - 5.049 = 37.95
    assert Decimal(closed["realized_pnl"]) == Decimal("37.95")
    # 5.001 + 5.049
    assert Decimal(closed["fees"]) == Decimal("10.05")
    closing_order = closed["orders"][f"{ACCOUNT}:{BTC}:5"]
    assert closing_order["side"] == Side.SELL.value
    assert Decimal(closing_order["qty"]) == Decimal("0.1")
    assert closing_order["status"] == "Filled"

    # -- re-open: a new intent starts the position again ------------------------------
    node.signal(intent(clock, BTC, Side.BUY, "0.2"))
    node.settle()
    reopened = node.inspect(STREAM)
    assert reopened["status"] == "Open"
    assert STREAM in node.running_position_names()
    assert Decimal(reopened["qty"]) == Decimal("0.2")
    assert Decimal(reopened["avg_entry_price"]) == Decimal("50510")
    # cumulative: 37.95 - fee 0.2 x 50510 x 0.001 (10.102) = 27.848
    assert Decimal(reopened["realized_pnl"]) == Decimal("27.848")
    assert Decimal(reopened["fees"]) == Decimal("20.152")
    assert len(reopened["orders"]) == 3
    assert node.inspect("risk")["decisions_since_start"] == {"approved": 3}
