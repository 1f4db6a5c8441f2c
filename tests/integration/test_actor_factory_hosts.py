"""Every host gets its actors from the one ActorFactory, with the host's collaborators.

The Node, the inline node of the backtests and the worker processes each
start a risk supervisor, a gateway and a position; the recipes they start are
recorded and must carry the host's journal (through its outbox), clock,
snapshot store and corruption handler. Then each host snapshots, which is
what a worker without the store could not do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import zmq
from inprocess_workers import SYMBOL, hear_quotes, in_process_bus, order
from node_inputs import ACCOUNT, BTC, CONFIG_NO_SNAPSHOTS, intent, quote
from stack_harness import wait_for

from posbus.actors.control import Halt, Inspect
from posbus.actors.factory import ActorRecipe
from posbus.actors.gateway_actor import GatewayActor
from posbus.actors.model.side import Side
from posbus.actors.node import Node
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.actors.risk_supervisor import RISK_STREAM, RiskSupervisor
from posbus.actors.risk_worker import RiskWorker
from posbus.actors.runtime.inline_node import InlineNode
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimConfig, SimulatedExchange
from posbus.bus.client import CommandClient

T0 = 1_700_000_000_000_000_000


@pytest.fixture
def recipes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ActorRecipe[Any]]]:
    """Every recipe started or built while the test runs, in order."""
    seen: list[ActorRecipe[Any]] = []
    start, build = ActorRecipe.start, ActorRecipe.build

    def recorded_start(self: ActorRecipe[Any], link: Any) -> Any:
        seen.append(self)
        return start(self, link)

    def recorded_build(self: ActorRecipe[Any]) -> Any:
        seen.append(self)
        return build(self)

    monkeypatch.setattr(ActorRecipe, "start", recorded_start)
    monkeypatch.setattr(ActorRecipe, "build", recorded_build)
    yield seen


def by_kind(seen: list[ActorRecipe[Any]]) -> dict[type, ActorRecipe[Any]]:
    kinds: dict[type, ActorRecipe[Any]] = {}
    for recipe in seen:
        kinds.setdefault(recipe.cls, recipe)
    return kinds


def assert_wired(
    seen: list[ActorRecipe[Any]], journal: Any, clock: Any, snapshots: Any, kinds: set[type]
) -> None:
    found = by_kind(seen)
    assert set(found) == kinds
    for recipe in found.values():
        assert recipe.kwargs["outbox"].journal is journal
        assert recipe.kwargs["events"] is not None
    for cls in kinds & {PositionActor, RiskSupervisor}:
        assert found[cls].kwargs["snapshots"] is snapshots
        assert found[cls].kwargs["clock"] is clock
    if PositionActor in kinds:
        assert found[PositionActor].kwargs["on_corrupt"] is not None


def venue() -> SimulatedExchange:
    return SimulatedExchange(SimConfig(reject_rate=0.0, partial_fill_rate=0.0), ACCOUNT)


def test_the_node_builds_its_actors_with_its_journal_snapshots_and_corruption_halt(
    recipes: list[ActorRecipe[Any]], start_node: Any
) -> None:
    clock, journal = ManualClock(T0), MemoryJournal()
    node: Node = start_node(CONFIG_NO_SNAPSHOTS, journal=journal, exchange=venue(), clock=clock)
    node.market(quote(clock, BTC, "49990", "50010"))
    node.signal(intent(clock, BTC, Side.BUY, "0.1"))
    node.settle()
    assert_wired(recipes, journal, clock, journal, {PositionActor, RiskSupervisor, GatewayActor})
    node.halt("a record on the risk stream")
    saved = node.snapshot()
    assert set(saved) == {"risk", position_stream(ACCOUNT, BTC)}
    assert set(journal.snapshot_streams()) == {RISK_STREAM, position_stream(ACCOUNT, BTC)}


def test_the_inline_node_builds_its_actors_with_the_store_it_is_given(
    recipes: list[ActorRecipe[Any]],
) -> None:
    clock, journal = ManualClock(T0), MemoryJournal()
    node = InlineNode(
        CONFIG_NO_SNAPSHOTS, journal=journal, exchange=venue(), clock=clock, snapshots=journal
    )
    node.start()
    node.market(quote(clock, BTC, "49990", "50010"))
    node.signal(intent(clock, BTC, Side.BUY, "0.1"))
    node.settle()
    assert_wired(recipes, journal, clock, journal, {PositionActor, RiskSupervisor, GatewayActor})


def test_the_inline_node_keeps_no_snapshots_unless_given_a_store(
    recipes: list[ActorRecipe[Any]],
) -> None:
    clock, journal = ManualClock(T0), MemoryJournal()
    node = InlineNode(CONFIG_NO_SNAPSHOTS, journal=journal, exchange=venue(), clock=clock)
    node.start()
    node.market(quote(clock, BTC, "49990", "50010"))
    node.signal(intent(clock, BTC, Side.BUY, "0.1"))
    node.settle()
    assert_wired(recipes, journal, clock, None, {PositionActor, RiskSupervisor, GatewayActor})


def test_the_workers_build_their_actors_with_their_journals_and_snapshot_them(
    recipes: list[ActorRecipe[Any]],
) -> None:
    with in_process_bus() as bus:
        risk_journal, positions_journal = MemoryJournal(), MemoryJournal()
        risk = RiskWorker(
            bus.settings("risk", "risk"),
            journal=risk_journal,
            clock=bus.clock,
            limits=bus.node.limits,
            starting_equity=bus.node.starting_equity,
        )
        gateway = bus.gateway()
        positions = bus.positions(positions_journal)
        bus.start(risk, gateway, positions)
        market = positions.io.publisher
        assert market is not None
        hear_quotes(positions, market)
        context = zmq.Context()
        client = CommandClient(context, bus.endpoints.commands, sender="test")
        try:
            order(client, "0.01")
        finally:
            client.close()
            context.term()
        stream = position_stream("default", SYMBOL)

        def filled() -> dict[str, Any] | None:
            handle = positions.position_handles().get(stream)
            state = None if handle is None else handle.ask(Inspect(), timeout=5)
            return state if state is not None and Decimal(state["qty"]) == Decimal("0.01") else None

        applied = wait_for("the order filled", filled)["journal_seq"]
        risk_recipes = [r for r in recipes if r.cls is RiskSupervisor]
        position_recipes = [r for r in recipes if r.cls is PositionActor]
        assert_wired(risk_recipes, risk_journal, bus.clock, risk_journal, {RiskSupervisor})
        assert_wired(
            position_recipes, positions_journal, bus.clock, positions_journal, {PositionActor}
        )
        risk.risk.ask(Halt("a record on the risk stream", time.time_ns()), timeout=5)
        assert positions.snapshot({})["saved"] == {stream: applied}
        assert risk.snapshot({})["saved"] == {"risk": risk_journal.last_seq(RISK_STREAM)}
        assert positions_journal.snapshot_streams() == [stream]
        assert risk_journal.snapshot_streams() == [RISK_STREAM]
