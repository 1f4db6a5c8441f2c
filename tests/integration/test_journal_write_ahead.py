"""The write-ahead rules, checked at the moment each effect happens.

Each test watches an effect as it happens (an order reaching the exchange, a
risk event being announced, a command's reply) and looks into the journal at
that very moment: the record must already be there.
"""

from __future__ import annotations

from typing import Any

from node_inputs import ACCOUNT, BTC, CONFIG_NO_SNAPSHOTS, intent, quote

from posbus.actors.delivery import decode_record
from posbus.actors.events import EventLog
from posbus.actors.model.exchange_reports import ExecutionReport, NewOrder
from posbus.actors.model.side import Side
from posbus.actors.position_actor import position_stream
from posbus.actors.risk_supervisor import DURABLE_RECORD, RISK_STREAM
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimConfig, SimulatedExchange
from posbus.bus.messages import Command, Message, OrderSubmit, RiskEvent

T0 = 1_700_000_000_000_000_000


def messages(journal: MemoryJournal, stream: str) -> list[Message]:
    return [decode_record(r).message for r in journal.read(stream)]


class WatchedExchange(SimulatedExchange):
    """A simulated exchange that looks into the journal whenever an order reaches it."""

    def __init__(self, journal: MemoryJournal) -> None:
        super().__init__(SimConfig(seed=3), ACCOUNT)
        self.journal = journal
        self.submits: list[tuple[str, bool]] = []

    def submit(self, order: NewOrder) -> list[ExecutionReport]:
        journaled = {
            m.client_order_id
            for m in messages(self.journal, position_stream(ACCOUNT, BTC))
            if isinstance(m, OrderSubmit)
        }
        self.submits.append((order.client_order_id, order.client_order_id in journaled))
        return super().submit(order)


def test_an_order_reaches_the_exchange_only_after_its_client_order_id_is_journaled(
    start_node: Any,
) -> None:
    clock, journal = ManualClock(T0), MemoryJournal()
    venue = WatchedExchange(journal)
    node = start_node(CONFIG_NO_SNAPSHOTS, journal=journal, exchange=venue, clock=clock)
    node.market(quote(clock, BTC, "49990", "50010"))
    for qty in ("0.1", "0.2", "0.3"):
        node.signal(intent(clock, BTC, Side.BUY, qty))
    node.settle()
    assert len(venue.submits) == 3
    assert all(journaled for _, journaled in venue.submits), venue.submits


def test_a_risk_state_change_is_journaled_before_it_is_announced(start_node: Any) -> None:
    clock, journal, events = ManualClock(T0), MemoryJournal(), EventLog()
    seen: list[tuple[str, bool]] = []

    def on_event(message: Message) -> None:
        if isinstance(message, RiskEvent) and message.event == "state_change":
            # Runs in the risk supervisor's thread, as the event is published.
            seen.append((message.state, message in messages(journal, RISK_STREAM)))

    events.subscribe(on_event)
    node = start_node(
        CONFIG_NO_SNAPSHOTS,
        journal=journal,
        exchange=SimulatedExchange(SimConfig(), ACCOUNT),
        clock=clock,
        events=events,
    )
    node.market(quote(clock, BTC, "49990", "50010"))
    node.signal(intent(clock, BTC, Side.BUY, "1"))
    node.settle()
    # Mid 49000: unrealized 1 x (49000 - 50010) = -1010, taker fee 50.01:
    # a daily loss of 1060.01 >= 1000 forces CoolDown.
    node.market(quote(clock, BTC, "48990", "49010"))
    node.settle()
    assert ("CoolDown", True) in seen
    assert all(journaled for _, journaled in seen), seen


def test_halt_and_resume_are_journaled_before_their_reply(start_node: Any) -> None:
    clock, journal = ManualClock(T0), MemoryJournal()
    node = start_node(
        CONFIG_NO_SNAPSHOTS,
        journal=journal,
        exchange=SimulatedExchange(SimConfig(), ACCOUNT),
        clock=clock,
    )
    assert node.halt("operator") == "Halted"
    # No settle: the reply came back, so the records must be there already.
    durable, event = messages(journal, RISK_STREAM)[-2:]
    assert isinstance(durable, Command) and durable.name == DURABLE_RECORD
    assert durable.args["durable.halted"] == "true"
    assert durable.args["durable.halt_reason"] == "operator"
    assert isinstance(event, RiskEvent) and event.state == "Halted"

    assert node.resume() == "Normal"
    durable, event = messages(journal, RISK_STREAM)[-2:]
    assert isinstance(durable, Command) and durable.args["durable.halted"] == "false"
    assert isinstance(event, RiskEvent) and event.state == "Normal"
