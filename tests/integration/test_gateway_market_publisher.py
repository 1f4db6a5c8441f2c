"""A gateway relaying its venue's quotes keeps its execution signals' bus seq == journal seq.

A ccxt gateway is the market too: it publishes the venue's quotes on the bus.
Were they published by the same publisher as the execution signals, the
signals' sequence numbers would jump by the quotes in between, a positions
shard would take every jump for a lost signal, and its gap repair (which
maps bus seq to the gateway's journal seq) would fetch the wrong records.
Real workers, a real broker and real sockets, in one process (threads); the
quotes go through the gateway worker's own relay (`_publish_market`, what
its ccxt market feed calls) while orders fill.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import zmq
from inprocess_workers import in_process_bus
from stack_harness import wait_for

from posbus.actors.gateway_worker import GatewayWorker
from posbus.actors.positions_worker import PositionsWorker
from posbus.bus.client import CommandClient
from posbus.bus.messages import MarketUpdate
from posbus.bus.subscriber import Received, Subscriber
from posbus.bus.topics import PREFIX_EXECUTION, PREFIX_MARKET

SYMBOL = "BTC/USDT"
ORDERS = 6
QUOTES_PER_ORDER = 25


@pytest.fixture
def stack() -> Iterator[dict[str, Any]]:
    with in_process_bus() as bus:
        gateway = bus.gateway()
        positions = bus.positions()
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        # Conflation off: every frame is kept, so every seq can be checked.
        watcher = Subscriber(
            context,
            bus.endpoints.events_out,
            prefixes=[PREFIX_MARKET, PREFIX_EXECUTION],
            conflate=False,
            max_batch=100_000,
        )
        client = CommandClient(context, bus.endpoints.commands, sender="test")
        try:
            bus.start(bus.risk(), gateway, positions)
            yield {"gateway": gateway, "positions": positions, "watcher": watcher, "client": client}
        finally:
            client.close()
            watcher.close()


def _relay_quote(gateway: GatewayWorker, price: Decimal) -> None:
    """One venue quote, relayed exactly as the ccxt market feed hands it to the worker."""
    update = MarketUpdate(SYMBOL, price, price + Decimal(1), None, None, None, time.time_ns())
    gateway._publish_market(update)


def test_execution_seqs_stay_contiguous_and_journaled_while_the_gateway_relays_quotes(
    stack: dict[str, Any],
) -> None:
    gateway: GatewayWorker = stack["gateway"]
    positions: PositionsWorker = stack["positions"]
    watcher: Subscriber = stack["watcher"]
    client: CommandClient = stack["client"]
    seen: list[Received] = []

    def drain() -> None:
        seen.extend(watcher.drain())

    def quoted() -> bool:
        _relay_quote(gateway, Decimal(60000))
        drain()
        return positions._last_market.get(SYMBOL) is not None and any(
            r.topic.startswith(PREFIX_MARKET) for r in seen
        )

    wait_for("the positions worker and the watcher hear the gateway's quotes", quoted)
    args = {"account": "default", "symbol": SYMBOL, "side": "buy", "qty": "0.1"}
    for n in range(ORDERS):
        for i in range(QUOTES_PER_ORDER):
            _relay_quote(gateway, Decimal(60000 + n * 10 + i % 3))

        def placed(n: int = n) -> dict[str, Any] | None:
            try:
                return client.call(
                    "positions.0",
                    "positions.order",
                    {**args, "intent_id": f"seq-{n}"},
                    timeout=5,
                )
            except Exception:  # noqa: BLE001 - the service may still be registering
                return None

        wait_for("the order accepted", placed, 15)

    want = Decimal("0.1") * ORDERS

    def filled() -> bool:
        _relay_quote(gateway, Decimal(60000))
        drain()
        state = positions.inspect({"actor": f"position/default/{SYMBOL}"})
        return Decimal(state["qty"]) == want

    wait_for("every order filled", filled, 30)
    stream = gateway.published_stream
    journaled = gateway.journal.last_seq(stream)

    def everything_heard() -> bool:
        drain()
        signals = [r for r in seen if r.topic.startswith(PREFIX_EXECUTION)]
        return len(signals) >= journaled

    wait_for("the watcher heard every execution signal", everything_heard)
    signals = [r.envelope for r in seen if r.topic.startswith(PREFIX_EXECUTION)]
    quotes = [r.envelope for r in seen if r.topic.startswith(PREFIX_MARKET)]
    # Execution signals: one sender, seqs 1..n with no hole, n the journal's last seq.
    assert {e.sender for e in signals} == {gateway.io.sender}
    assert [e.seq for e in signals] == list(range(1, journaled + 1))
    assert journaled >= 2 * ORDERS  # an ack and at least one fill per order
    # The quotes came from the gateway's market publisher, numbered on their own.
    assert {e.sender for e in quotes} == {gateway.io.market_sender}
    assert len(quotes) >= ORDERS * QUOTES_PER_ORDER
    # Downstream: no signal taken for lost, nothing repaired or refused.
    assert positions.feeds["default"].gaps_repaired == 0
    assert positions.feeds["default"].gaps_unrepaired == 0
    assert positions.feeds["default"].applied.get(gateway.io.sender) == journaled
    assert watcher.gaps == 0
