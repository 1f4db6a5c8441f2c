"""Real workers on a real broker in one process (threads): the rig of the delivery tests.

`in_process_bus()` runs a broker on ipc endpoints in a temporary directory
and yields an `InProcessBus` that builds workers for it (default config,
fast heartbeats). The caller starts the workers it wants, in order, with
`start`; they are stopped in reverse order, then the broker, when the
context ends. Tests can then lose or hold exactly one frame, which separate
processes would not let them do. `quote` publishes a BTC/USDT quote as a
market feed would, `order` places a BTC/USDT order through the broker.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from stack_harness import wait_for

from posbus.actors.gateway_worker import GatewayWorker
from posbus.actors.journal import Journal
from posbus.actors.positions_worker import PositionsWorker
from posbus.actors.risk_worker import RiskWorker
from posbus.actors.sharding import Shard
from posbus.actors.worker import Worker, WorkerSettings
from posbus.adapters.clock import WallClock
from posbus.adapters.config import Config
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimulatedExchange
from posbus.bus.admin import admin_endpoint
from posbus.bus.broker import Broker
from posbus.bus.client import CommandClient
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.heartbeat import HeartbeatConfig
from posbus.bus.messages import MarketUpdate
from posbus.bus.publisher import Publisher
from posbus.bus.topics import market_topic

SYMBOL = "BTC/USDT"


class InProcessBus:
    """A broker's endpoints and what it takes to build workers for them."""

    def __init__(self, root: Path, endpoints: BusEndpoints, heartbeat: HeartbeatConfig) -> None:
        self.root = root
        self.endpoints = endpoints
        self.heartbeat = heartbeat
        self.config = Config()
        self.node = self.config.node_config()
        self.clock = WallClock()
        self.started: list[Worker] = []

    def settings(self, name: str, role: str, shard: Shard | None = None) -> WorkerSettings:
        """The settings of worker `name` on this bus."""
        return WorkerSettings(
            name=name,
            role=role,
            run_dir=self.root,
            endpoints=self.endpoints,
            admin_endpoint=admin_endpoint(self.root, name),
            account=self.config.account,
            policy=self.node.policy,
            symbols=self.node.symbols,
            shard=shard,
            heartbeat=self.heartbeat,
        )

    def exchange(self) -> SimulatedExchange:
        """A simulated exchange with the default config."""
        return SimulatedExchange(self.config.exchange, self.config.account)

    def risk(self) -> RiskWorker:
        """The risk worker (in-memory journal)."""
        return RiskWorker(
            self.settings("risk", "risk"),
            journal=MemoryJournal(),
            clock=self.clock,
            limits=self.node.limits,
            starting_equity=self.node.starting_equity,
        )

    def gateway(self) -> GatewayWorker:
        """The account's gateway on a simulated exchange (in-memory journal)."""
        return GatewayWorker(
            self.settings("gateway.default", "gateway"),
            journal=MemoryJournal(),
            clock=self.clock,
            exchange=self.exchange(),
        )

    def positions(self, journal: Journal | None = None) -> PositionsWorker:
        """The one positions shard of the account (0/1)."""
        return PositionsWorker(
            self.settings("positions.0", "positions", Shard(0, 1)),
            journal=journal or MemoryJournal(),
            clock=self.clock,
        )

    def start(self, *workers: Any) -> None:
        """Start `workers` in order (each is stopped when the bus ends, newest first)."""
        for worker in workers:
            worker.start()
            self.started.append(worker)

    def stop(self, worker: Worker) -> None:
        """Stop one started worker now."""
        self.started.remove(worker)
        worker.stop()


@contextmanager
def in_process_bus() -> Iterator[InProcessBus]:
    """A broker in a thread on ipc endpoints of a temporary directory (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        root = Path(name)
        endpoints = BusEndpoints.local(root)
        heartbeat = HeartbeatConfig(interval_s=0.2, liveness=3)
        stop = threading.Event()
        broker = Broker(endpoints, heartbeat=heartbeat)
        thread = threading.Thread(target=broker.run, args=(stop,), daemon=True)
        thread.start()
        assert broker.ready.wait(10)
        bus = InProcessBus(root, endpoints, heartbeat)
        try:
            yield bus
        finally:
            for worker in reversed(bus.started):
                worker.stop()
            stop.set()
            thread.join(10)


def quote(market: Publisher, bid: str = "60000", ask: str = "60001") -> None:
    """One BTC/USDT quote, stamped now."""
    update = MarketUpdate(SYMBOL, Decimal(bid), Decimal(ask), None, None, None, time.time_ns())
    market.publish(update, topic=market_topic(SYMBOL), ts_ns=time.time_ns())


def hear_quotes(positions: PositionsWorker, market: Publisher) -> None:
    """Quote until the positions worker has a mark, then once more for the gateway."""

    def quoted() -> bool:
        quote(market)
        return positions._last_market.get(SYMBOL) is not None

    wait_for("the positions worker hears quotes", quoted)
    wait_for("the gateway hears quotes", lambda: (quote(market), True)[1])


def order(client: CommandClient, qty: str, **extra: str) -> dict[str, Any]:
    """Place a BTC/USDT buy through the broker (retried while positions.0 registers)."""
    args = {"account": "default", "symbol": SYMBOL, "side": "buy", "qty": qty, **extra}

    def attempt() -> dict[str, Any] | None:
        try:
            return client.call("positions.0", "positions.order", dict(args), timeout=5)
        except Exception:  # noqa: BLE001 - the service may still be registering
            return None

    placed: dict[str, Any] = wait_for("the order accepted", attempt, 15)
    return placed
