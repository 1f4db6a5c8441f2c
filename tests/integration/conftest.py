"""Fixtures of the integration tests: nodes and ccxt rigs that are always stopped.

Every test that builds a `Node` gets it from `start_node`, which stops every
node it started when the test ends, pass or fail, so a failing test cannot
leave actor threads behind and hang the suite. The ccxt tests get a Binance
emulator (`emulator`; a module may define its own) and the rigs that trade
with it (`rigs`), both closed at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from ccxt_rig import RigFactory

from posbus.actors.events import EventLog
from posbus.actors.gateway_actor import ExchangeClient
from posbus.actors.journal import Journal
from posbus.actors.model.clock import Clock
from posbus.actors.node import Node, NodeConfig
from posbus.actors.supervision.errors import RestartIntensityExceeded
from posbus.adapters.simulation.binance_emulator import BinanceEmulator

StartNode = Callable[..., Node]


@pytest.fixture
def start_node() -> Iterator[StartNode]:
    """A function that builds and starts a Node; every node it made is stopped at teardown.

    Call it as `start_node(config, journal=..., exchange=..., clock=...)`, with
    optional `events` and `on_escalate`; it returns once the node's static
    children are up.
    """
    started: list[Node] = []

    def start(
        config: NodeConfig,
        *,
        journal: Journal,
        exchange: ExchangeClient,
        clock: Clock,
        events: EventLog | None = None,
        on_escalate: Callable[[RestartIntensityExceeded], None] | None = None,
    ) -> Node:
        node = Node(
            config,
            journal=journal,
            exchange=exchange,
            clock=clock,
            events=events,
            on_escalate=on_escalate,
        )
        # Registered before start: a start that fails half-way is still stopped.
        started.append(node)
        node.start()
        return node

    try:
        yield start
    finally:
        for node in reversed(started):
            node.stop()


@pytest.fixture
def emulator() -> Iterator[BinanceEmulator]:
    """A Binance emulator on 127.0.0.1 with its default symbols and balances."""
    with BinanceEmulator() as emu:
        yield emu


@pytest.fixture
def rigs() -> Iterator[RigFactory]:
    """Makes ccxt rigs (`rigs(emulator, journal, **overrides)`); every one is closed at teardown."""
    factory = RigFactory()
    try:
        yield factory
    finally:
        factory.close()
