"""Fixtures of the actor-layer integration tests: nodes that are always stopped.

Every test that builds a `Node` gets it from `start_node`, which stops every
node it started when the test ends, pass or fail, so a failing test cannot
leave actor threads behind and hang the suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from posbus.actors.events import EventLog
from posbus.actors.gateway_actor import ExchangeClient
from posbus.actors.journal import Journal
from posbus.actors.model.clock import Clock
from posbus.actors.node import Node, NodeConfig
from posbus.actors.supervision.errors import RestartIntensityExceeded

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
