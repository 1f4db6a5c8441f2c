"""The demo feed of `posbus up --demo`: a seeded market and signal source on the bus.

Runs as the `feed` worker: every step it publishes a market_update per symbol
(``md|SYMBOL|``, from adapters/simulation/random_walk.py) and sends the
intents of one random signal source per account (actors/signal_source.py) as
`positions.order` commands to the positions shard that owns each
account+symbol, exactly like a strategy would. Everything runs on the I/O
thread's timer; there are no actors.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from posbus.actors.sharding import Shard, shard_of
from posbus.actors.worker_io import IOConfig, WorkerIO
from posbus.adapters.clock import WallClock
from posbus.adapters.config import Config
from posbus.adapters.simulation.demo_sources import demo_market, demo_signals
from posbus.bus.curve import CurveClient
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.messages import Command, CommandArg
from posbus.bus.topics import market_topic

logger = logging.getLogger(__name__)


class Feed:
    """The demo's market and signal source as a worker without actors."""

    role = "feed"

    def __init__(
        self,
        config: Config,
        *,
        endpoints: BusEndpoints,
        admin_endpoint: str,
        curve: CurveClient | None,
        name: str = "feed",
    ) -> None:
        demo = config.demo
        self.config = config
        self.clock = WallClock()
        self.started_ns = time.time_ns()
        self.market = demo_market(config)
        self.signals = demo_signals(config, self.market)
        self.steps = 0
        self.intents = 0
        self.escalated = None
        self.io = WorkerIO(
            IOConfig(
                name=name,
                endpoints=endpoints,
                admin_endpoint=admin_endpoint,
                curve=curve,
                tick_s=1.0 / demo.steps_per_s,
            ),
            on_tick=self.step,
            admin_handlers={"status": self.status, "metrics": self.metrics},
        )

    def start(self) -> None:
        """Start publishing (the I/O thread's timer drives every step)."""
        self.io.start()

    def stop(self) -> None:
        """Stop the I/O thread (its publisher flushes the last frames)."""
        self.io.stop()

    def step(self) -> None:
        """One market step and its intents (I/O thread)."""
        now = self.clock.now_ns()
        publisher = self.io.publisher
        assert publisher is not None
        for update in self.market.step(now):
            publisher.publish(update, topic=market_topic(update.symbol), ts_ns=now)
        shards = self.config.workers.position_shards
        intents = [intent for signals in self.signals for intent in signals.step(now)]
        for intent in intents:
            self.intents += 1
            args: dict[str, CommandArg] = {
                "account": intent.account,
                "symbol": intent.symbol,
                "side": intent.side.value,
                "qty": str(intent.qty),
                "reduce_only": intent.reduce_only,
                "reason": intent.reason,
                "intent_id": intent.intent_id,
            }
            index = shard_of(intent.account, intent.symbol, shards)
            service = Shard(index, shards).service
            self.io.send(service, Command("positions.order", args, self.io.new_request_id()))
        self.steps += 1

    def status(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Admin: who, since when, how many steps and intents."""
        return {
            "name": "feed",
            "role": self.role,
            "pid": os.getpid(),
            "started_ns": self.started_ns,
            "steps": self.steps,
            "intents": self.intents,
        }

    def metrics(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Admin: the bus counters."""
        return self.io.metrics.snapshot()
