"""The in-process demo: a node trading a seeded random-walk market, with crashes injected.

Wires the real engine (risk supervisor, gateway, position actors under their
supervisors, write-ahead journal) to a simulated exchange and a seeded market
and signal source, kills actors at a configured rate while it runs, and ends
with a summary that checks what the design promises: every fill the exchange
produced is in exactly one position exactly once, and equity adds up.

The journal is the configured one (`[storage]`, SQLite at RUN_DIR/journal.sqlite
by default). Each run trades on a new simulated exchange, so each run starts a
new journal: a previous demo's SQLite journal is kept as
journal.sqlite.previous; a journal written by anything but a demo is never
touched (the demo refuses to start).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pykka

from posbus.actors.journal import Journal, JournalStore
from posbus.actors.model.errors import PosbusError
from posbus.actors.node import Node
from posbus.adapters.clock import WallClock
from posbus.adapters.config import Config
from posbus.adapters.journal.backend import describe, open_backend
from posbus.adapters.simulation.demo_sources import demo_sources
from posbus.adapters.simulation.simulated_exchange import SimulatedExchange
from posbus.bus.codec import decode
from posbus.bus.messages import Message, RiskEvent

logger = logging.getLogger(__name__)
DEMO_SENDER = "demo"


@dataclass(slots=True)
class DemoProgress:
    """What the live view shows, refreshed a few times a second."""

    elapsed_s: float
    duration_s: float
    steps: int
    intents: int
    crashes: int
    risk_state: str
    risk_events: int
    positions: list[dict[str, Any]] = field(default_factory=list)
    actors: list[dict[str, Any]] = field(default_factory=list)


class Demo:
    """One demo run; `run()` blocks for the configured duration (or until `stop()`)."""

    def __init__(self, config: Config, *, journal: Journal | None = None) -> None:
        self.config = config
        self.clock = WallClock()
        # A journal given by the caller stays the caller's; one opened here is closed by run().
        self._owned: JournalStore | None = None
        self.journal: Journal
        if journal is None:
            self._owned = self.journal = fresh_journal(config)
        else:
            self.journal = journal
        self.exchange = SimulatedExchange(config.exchange, config.account)
        self.node = Node(
            config.node_config(),
            journal=self.journal,
            exchange=self.exchange,
            clock=self.clock,
            sender=DEMO_SENDER,
        )
        demo = config.demo
        self.market, self.signals = demo_sources(config)
        self._rng = random.Random(demo.seed + 2)  # noqa: S311 - fault injection, not crypto
        self._stop = threading.Event()
        self.crashes: Counter[str] = Counter()
        self.risk_events: list[RiskEvent] = []
        self.node.events.subscribe(self._on_event)
        self.steps = 0
        self.intents = 0

    def _on_event(self, message: Message) -> None:
        if isinstance(message, RiskEvent):
            self.risk_events.append(message)

    def stop(self) -> None:
        """Ask a running demo to end early (any thread)."""
        self._stop.set()

    def run(
        self,
        on_progress: Callable[[DemoProgress], None] | None = None,
        progress_every_s: float = 0.25,
    ) -> dict[str, Any]:
        """Run the demo and return its summary (see `summary`)."""
        demo = self.config.demo
        node = self.node
        node.start()
        started = time.monotonic()
        try:
            for symbol in self.market.symbols:
                node.position(self.config.account, symbol)
            period = 1.0 / demo.steps_per_s
            crash_p = min(1.0, demo.crash_rate * period)
            next_progress = started
            while not self._stop.is_set():
                elapsed = time.monotonic() - started
                if elapsed >= demo.duration_s:
                    break
                now = self.clock.now_ns()
                for update in self.market.step(now):
                    node.market(update)
                for intent in self.signals.step(now):
                    node.signal(intent)
                    self.intents += 1
                if self._rng.random() < crash_p:
                    self._inject_crash()
                node.tick()
                self.steps += 1
                if on_progress is not None and time.monotonic() >= next_progress:
                    on_progress(self.progress(elapsed))
                    next_progress = time.monotonic() + progress_every_s
                # Pace the simulated market in real time; not a synchronisation.
                self._stop.wait(max(0.0, started + self.steps * period - time.monotonic()))
            node.settle()
            return self.summary(time.monotonic() - started)
        finally:
            try:
                node.stop()
            finally:
                if self._owned is not None:
                    self._owned.close()

    def _inject_crash(self) -> None:
        names = ["risk", f"gateway.{self.config.account}", *self.node.running_position_names()]
        victim = self._rng.choice(names)
        try:
            self.node.crash(victim)
        except KeyError:
            return  # stopped between listing and crashing: nothing to crash
        self.crashes[victim.split("/")[0].split(".")[0]] += 1

    def progress(self, elapsed_s: float) -> DemoProgress:
        """A snapshot for the live view."""
        node = self.node
        positions = []
        for name in node.running_position_names():
            # An actor restarting right now is left out of this frame.
            with contextlib.suppress(PosbusError, pykka.Timeout):
                positions.append(node.inspect(name))
        try:
            risk_state = node.inspect("risk")["state"]
        except (PosbusError, pykka.Timeout):
            risk_state = "restarting"
        return DemoProgress(
            elapsed_s=elapsed_s,
            duration_s=self.config.demo.duration_s,
            steps=self.steps,
            intents=self.intents,
            crashes=sum(self.crashes.values()),
            risk_state=risk_state,
            risk_events=len(self.risk_events),
            positions=positions,
            actors=node.actors(),
        )

    def summary(self, elapsed_s: float) -> dict[str, Any]:
        """The run's figures and its end-of-run checks (fills lost / doubled, equity)."""
        node = self.node
        positions: dict[str, Any] = {}
        trade_owner: Counter[str] = Counter()
        orders: Counter[str] = Counter()
        realized = unrealized = Decimal(0)
        for name in node.position_names():
            state = node.inspect(name)
            trade_ids = {
                tid for order in state["orders"].values() for tid in order.get("trade_ids", [])
            }
            for tid in state["trade_ids"]:
                trade_owner[tid] += 1
            for order in state["orders"].values():
                orders[order["status"]] += 1
            realized += Decimal(state["realized_pnl"])
            unrealized += Decimal(state["unrealized_pnl"] or 0)
            positions[state["symbol"]] = {
                "status": state["status"],
                "qty": state["qty"],
                "avg_entry_price": state["avg_entry_price"],
                "realized_pnl": state["realized_pnl"],
                "unrealized_pnl": state["unrealized_pnl"],
                "fees": state["fees"],
                "orders": len(state["orders"]),
                "fills": len(trade_ids),
            }
        exchange_trades = {fill.trade_id for fill in self.exchange.fills()}
        risk = node.inspect("risk")
        restarts = {row["name"]: row["restarts"] for row in node.actors() if row["restarts"]}
        return {
            "duration_s": round(elapsed_s, 3),
            "steps": self.steps,
            "market_updates": self.steps * len(self.market.symbols),
            "intents": self.intents,
            "orders": dict(sorted(orders.items())),
            "fills": len(exchange_trades),
            "fills_lost": len(exchange_trades - set(trade_owner)),
            "fills_duplicated": sum(1 for n in trade_owner.values() if n > 1),
            "crashes_injected": dict(sorted(self.crashes.items())),
            "restarts": restarts,
            "risk": {
                "state": risk["state"],
                "events": len(self.risk_events),
                "decisions_since_start": risk["decisions_since_start"],
            },
            "positions": dict(sorted(positions.items())),
            "realized_pnl": str(realized),
            "unrealized_pnl": str(unrealized),
            "equity": str(self.config.starting_equity + realized + unrealized),
            "journal_records": sum(self.journal.last_seq(s) for s in self.journal.streams()),
        }


def fresh_journal(config: Config) -> JournalStore:
    """The configured journal, empty, for a new demo world.

    An SQLite journal a previous demo wrote is moved to `<file>.previous`
    (replacing an older one); any other non-empty journal is refused with
    PosbusError, so a demo never touches a stack's journal.
    """
    storage = config.storage
    if storage.backend == "sqlite":
        path = storage.sqlite_path(config.run_dir)
        if path.exists():
            old = open_backend(storage, config.run_dir)
            try:
                _check_demo_journal(old, describe(storage, config.run_dir))
            finally:
                old.close()
            kept = path.with_name(path.name + ".previous")
            for suffix in ("-wal", "-shm", ""):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    side.replace(kept.with_name(kept.name + suffix))
            logger.info("previous demo journal kept", extra={"path": str(kept)})
    journal = open_backend(storage, config.run_dir)
    try:
        _check_demo_journal(journal, describe(storage, config.run_dir), empty=True)
    except PosbusError:
        journal.close()
        raise
    return journal


def _check_demo_journal(journal: Journal, where: str, *, empty: bool = False) -> None:
    for stream in journal.streams():
        if empty:
            raise PosbusError(f"{where}: the demo needs an empty journal; it holds {stream!r}")
        first = next(iter(journal.read(stream)), None)
        if first is not None and decode(first.payload).sender != DEMO_SENDER:
            raise PosbusError(
                f"{where}: holds a journal not written by a demo (stream {stream!r}); "
                "set [storage] path or run_dir for the demo"
            )
