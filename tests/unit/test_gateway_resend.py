"""A re-sent submit of an order the exchange rejected never reaches the exchange again.

The simulated exchange, like a real one, keeps no trace of an order it
rejected: the same client order id sent again is a new order, which may
trade. The gateway remembers what was rejected on submit and ignores a
re-send of it (a position re-sends after a restart or on a resync, before
it has heard of the rejection). The actor is driven in the caller's thread.
"""

from __future__ import annotations

from decimal import Decimal

from posbus.actors.control import SubmitOrder
from posbus.actors.delivery import Outbox
from posbus.actors.gateway_actor import GatewayActor
from posbus.actors.model.exchange_reports import ExecutionReport, NewOrder, OrderRejected
from posbus.actors.model.side import Side
from posbus.actors.position_actor import position_stream
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimConfig, SimulatedExchange
from posbus.bus.codec import decode
from posbus.bus.messages import MarketUpdate

ACCOUNT, SYMBOL = "acc", "BTC/USDT"
STREAM = position_stream(ACCOUNT, SYMBOL)


class _RejectsFirstSubmits(SimulatedExchange):
    """Rejects the first submit of each client order id (a venue's random reject)."""

    def __init__(self) -> None:
        super().__init__(SimConfig(), ACCOUNT)
        self.seen: set[str] = set()

    def submit(self, order: NewOrder) -> list[ExecutionReport]:
        if order.client_order_id not in self.seen:
            self.seen.add(order.client_order_id)
            return [OrderRejected(order.client_order_id, "simulated reject", order.ts_ns)]
        return super().submit(order)


class _Silent:
    def publish(self, message: object) -> None:
        pass


def _submit() -> SubmitOrder:
    order = NewOrder("c-1", ACCOUNT, SYMBOL, Side.BUY, Decimal(1), None, 5)
    return SubmitOrder(order, f"{ACCOUNT}:{SYMBOL}:1", STREAM, resend=False)


def test_a_resent_submit_of_a_rejected_order_does_not_trade() -> None:
    journal = MemoryJournal()
    exchange = _RejectsFirstSubmits()
    gateway = GatewayActor(
        None,
        account=ACCOUNT,
        exchange=exchange,
        outbox=Outbox(journal, "gateway", ManualClock(1)),
        lookup=lambda stream: None,
        events=_Silent(),
    )
    gateway.on_receive(MarketUpdate(SYMBOL, Decimal(100), Decimal(101), None, None, None, 1))
    gateway.on_receive(_submit())
    gateway.on_receive(_submit())  # re-sent before the position heard of the rejection
    kinds = [type(decode(r.payload).message).__name__ for r in journal.read(STREAM, 0)]
    assert kinds == ["OrderRejected"]
    assert exchange.fills(0) == []
    assert gateway.counts["resends_of_rejected_ignored"] == 1
