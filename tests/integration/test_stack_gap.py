"""Between gateway and positions: lost signals repaired from the gateway, orders never lost.

Subscriber gap repair (Clone pattern): a lost execution signal is fetched
from the gateway's journal, also one an earlier gateway incarnation published
last; an order whose submit never reached the gateway ends Rejected.

Real workers, a real broker and real sockets, in one process (threads) so the
test can lose exactly one frame: the gateway journals a fill and publishes it
under a topic no positions worker hears, which is what a dropped frame looks
like downstream (its sequence number is used, its content never arrives).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import zmq
from inprocess_workers import hear_quotes, in_process_bus, order, quote
from stack_harness import wait_for

from posbus.actors.execution_feed import APPLIED_PREFIX
from posbus.actors.gateway_worker import GatewayWorker
from posbus.actors.positions_worker import PositionsWorker
from posbus.actors.worker_io import WorkerIO
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.bus.client import CommandClient
from posbus.bus.codec import decode, encode
from posbus.bus.messages import (
    Command,
    CommandArg,
    Message,
    OrderFill,
    OrderIntent,
    OrderSubmit,
)
from posbus.bus.publisher import Publisher
from posbus.bus.topics import market_topic


class LossyGateway(GatewayWorker):
    """Loses its first fill (every signal once `lose_all`): journaled, never delivered."""

    lost = 0
    lose_all = False

    def publish_signal(self, stream: str, message: Message) -> None:
        if (isinstance(message, OrderFill) and self.lost == 0) or self.lose_all:
            self.lost += 1
            publisher = self.io.publisher
            assert publisher is not None
            self.journal.append(self.published_stream, _payload(stream, message))
            publisher.publish(message, topic=market_topic("nobody-listens"), ts_ns=time.time_ns())
            return
        super().publish_signal(stream, message)


def _payload(stream: str, message: Message) -> bytes:
    return encode(message, seq=0, sender=stream, ts_ns=time.time_ns())


@pytest.fixture
def workers() -> Iterator[dict[str, Any]]:
    with in_process_bus() as bus:
        # On disk, as in production: a restarted gateway reads what the dead one wrote.
        gateway_journal = bus.root / "gateway.sqlite"
        exchange = bus.exchange()
        gateway = LossyGateway(
            bus.settings("gateway.default", "gateway"),
            journal=SqliteJournal(gateway_journal),
            clock=bus.clock,
            exchange=exchange,
        )
        positions = bus.positions()
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        market = Publisher(context, bus.endpoints.events_in, sender="test-market")
        client = CommandClient(context, bus.endpoints.commands, sender="test")

        def restart_gateway() -> GatewayWorker:
            # A new incarnation (new publisher name) on the same journal and exchange.
            bus.stop(gateway)
            again = GatewayWorker(
                bus.settings("gateway.default", "gateway"),
                journal=SqliteJournal(gateway_journal),
                clock=bus.clock,
                exchange=exchange,
            )
            bus.start(again)
            return again

        try:
            bus.start(bus.risk(), gateway, positions)
            yield {
                "positions": positions,
                "gateway": gateway,
                "market": market,
                "client": client,
                "restart_gateway": restart_gateway,
                "stop_gateway": lambda: bus.stop(gateway),
            }
        finally:
            client.close()
            market.close()


def test_a_lost_fill_is_repaired_from_the_gateway_journal(workers: dict[str, Any]) -> None:
    positions: PositionsWorker = workers["positions"]
    market: Publisher = workers["market"]
    client: CommandClient = workers["client"]

    hear_quotes(positions, market)
    order(client, "0.1")
    wait_for("the first fill was lost", lambda: workers["gateway"].lost == 1)
    # The next order's signals come after the lost one: the positions worker
    # sees the sequence jump and fetches the missing record from the gateway.
    order(client, "0.2")

    def qty() -> Decimal | None:
        state = positions.inspect({"actor": "position/default/BTC/USDT"})
        return Decimal(state["qty"]) if Decimal(state["qty"]) == Decimal("0.3") else None

    # 0.1 (the lost fill, repaired) + 0.2 (delivered) = 0.3
    assert wait_for("both fills applied", qty) == Decimal("0.3")
    assert positions.feeds["default"].gaps_repaired == 1
    assert positions.feeds["default"].gaps_unrepaired == 0


def test_a_repair_stops_at_the_frame_that_revealed_the_gap(workers: dict[str, Any]) -> None:
    """Frames published after the one that revealed a gap are the live path's, not the repair's.

    The gateway's journal already holds them when the repair reads it: a
    repair that counted them as applied made their live copies stale and
    dropped them (a lost ack or fill; found by the chaos run).
    """
    positions: PositionsWorker = workers["positions"]
    gateway: LossyGateway = workers["gateway"]
    market: Publisher = workers["market"]

    hear_quotes(positions, market)
    # Hold the control thread while two orders trade: the first one's fill is
    # lost, and everything after it is journaled by the gateway and waiting
    # in the positions worker before the gap is seen.
    release = threading.Event()
    positions.io.control(lambda: release.wait(30))
    order: dict[str, CommandArg] = {"account": "default", "symbol": "BTC/USDT", "side": "buy"}
    positions.on_command(Command("positions.order", order | {"qty": "0.1"}, "o1"))
    wait_for("the first fill lost", lambda: gateway.lost == 1)
    positions.on_command(Command("positions.order", order | {"qty": "0.2"}, "o2"))
    published = gateway.journal.last_seq

    def both_orders_done() -> bool:
        kinds = [
            type(decode(r.payload).message).__name__
            for r in gateway.journal.read(gateway.published_stream, 0)
        ]
        return kinds.count("OrderAck") == 2 and published(gateway.published_stream) >= 4

    wait_for("both orders acknowledged and filled at the gateway", both_orders_done)
    # Let the fills of the second order finish being published too.
    wait_for("the orders filled", lambda: _filled(gateway) == Decimal("0.3"))
    release.set()
    last = published(gateway.published_stream)
    wait_for(
        "everything applied",
        lambda: positions.feeds["default"].applied.get(gateway.io.sender) == last,
    )
    stream = "position/default/BTC/USDT"
    received = [
        decode(r.payload).message
        for r in positions.journal.read(stream, 0)
        if not isinstance(decode(r.payload).message, OrderIntent | OrderSubmit)
    ]
    sent = [decode(r.payload).message for r in gateway.journal.read(gateway.published_stream, 0)]
    assert received == sent
    state = positions.inspect({"actor": stream})
    assert Decimal(state["qty"]) == Decimal("0.3")


def _filled(gateway: GatewayWorker) -> Decimal:
    return sum(
        (
            m.qty
            for r in gateway.journal.read(gateway.published_stream, 0)
            if isinstance(m := decode(r.payload).message, OrderFill)
        ),
        Decimal(0),
    )


def test_what_a_dead_gateway_published_last_is_fetched_from_its_journal(
    workers: dict[str, Any],
) -> None:
    """The last signals of a gateway incarnation, lost with it, reach the positions anyway.

    No later frame of that incarnation reveals the gap: the positions worker
    fetches them when the next incarnation first speaks.
    """
    positions: PositionsWorker = workers["positions"]
    gateway: LossyGateway = workers["gateway"]
    market: Publisher = workers["market"]
    client: CommandClient = workers["client"]

    hear_quotes(positions, market)
    order(client, "0.1")  # its first fill lost, repaired from the next frame
    wait_for("the first order applied", lambda: _qty(positions) == Decimal("0.1"))
    gateway.lose_all = True
    order(client, "0.2")  # every signal of it lost: journaled, never delivered
    wait_for("the second order filled at the gateway", lambda: _filled(gateway) == Decimal("0.3"))
    first = gateway.io.sender
    again: GatewayWorker = workers["restart_gateway"]()
    assert again.io.sender != first
    wait_for("the new gateway hears quotes", lambda: (quote(market), True)[1])
    order(client, "0.4")
    assert wait_for("every fill applied", lambda: _qty(positions) == Decimal("0.7"), 15)
    assert positions.feeds["default"].applied[first] == gateway_last(again, first)


def _qty(positions: PositionsWorker) -> Decimal:
    return Decimal(positions.inspect({"actor": "position/default/BTC/USDT"})["qty"])


def gateway_last(gateway: GatewayWorker, sender: str) -> int:
    return gateway.journal.last_seq(f"published/{sender}")


def test_an_order_whose_submit_never_reached_the_gateway_is_rejected(
    workers: dict[str, Any],
) -> None:
    """No gateway worker: the broker refuses the submit, so the order cannot wait for an ack."""
    positions: PositionsWorker = workers["positions"]
    market: Publisher = workers["market"]
    client: CommandClient = workers["client"]

    hear_quotes(positions, market)
    workers["stop_gateway"]()

    def gateway_gone() -> bool:
        services = client.call("broker", "services", timeout=5)["services"]
        return not services.get("gateway.default")

    wait_for("the broker has no gateway worker", gateway_gone)
    quote(market)  # a fresh mark for the risk check
    order_id = order(client, "0.1")["order_id"]

    def rejected() -> dict[str, Any] | None:
        state = positions.inspect({"actor": "position/default/BTC/USDT"})
        found = state["orders"].get(order_id)
        return found if found is not None and found["status"] == "Rejected" else None

    given_up = wait_for("the order rejected", rejected, 15)
    assert given_up["reason"].startswith("not sent: gateway unreachable"), given_up["reason"]
    assert Decimal(positions.inspect({"actor": "position/default/BTC/USDT"})["qty"]) == 0


def test_a_restarted_shard_knows_what_it_applied_before_its_bus_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The applied marks are read before the first signal can arrive.

    A signal heard before them would come from an "unknown" sender: the shard
    would fetch, and journal again, everything every gateway incarnation
    ever published.
    """
    journal = MemoryJournal()
    marker = Command("positions.applied", {"seq": 42}, "applied-42")
    journal.append(f"{APPLIED_PREFIX}gw.1", encode(marker, seq=0, sender="p", ts_ns=0))
    known_at_bus_start: list[dict[str, int]] = []
    io_start = WorkerIO.start

    def start(io: WorkerIO, timeout_s: float = 10.0) -> None:
        known_at_bus_start.append(dict(positions.feeds["default"].applied))
        io_start(io, timeout_s)

    monkeypatch.setattr(WorkerIO, "start", start)
    with in_process_bus() as bus:
        positions = bus.positions(journal)
        bus.start(positions)
    assert known_at_bus_start == [{"gw.1": 42}]
