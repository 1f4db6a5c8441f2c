"""A posbus node trading through the real ccxt gateway against the Binance emulator (test support).

`CcxtRig` wires: a `BinanceEmulator` (real HTTP on 127.0.0.1), a
`CcxtGateway` built from a `GatewayConfig` pointing ccxt's `urls` at it, and
a `Node` on a journal, with a ManualClock that starts at the wall-clock time
(so the exchange's trade times and the node's clock agree) and only moves
when a test moves it. `settle()` is the barrier the tests use instead of
sleeps: it waits (bounded) until the gateway's I/O loop has nothing in
flight and the node has handled everything, repeatedly, until both are
quiet.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from posbus.actors.events import EventLog
from posbus.actors.journal import Journal
from posbus.actors.model.exchange_events import ReconcileDue
from posbus.actors.model.risk import RiskLimits
from posbus.actors.model.side import Side
from posbus.actors.node import Node, NodeConfig
from posbus.actors.position_actor import position_stream
from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.adapters.clock import ManualClock
from posbus.adapters.exchange.ccxt_config import Credentials, GatewayConfig
from posbus.adapters.exchange.ccxt_gateway import CcxtGateway
from posbus.adapters.exchange.retry import RetryPolicy
from posbus.adapters.simulation.binance_emulator import BinanceEmulator
from posbus.bus.messages import MarketUpdate, Message, OrderIntent, RiskEvent

ACCOUNT = "A"
BTC = "BTC/USDT"
STREAM = position_stream(ACCOUNT, BTC)

LIMITS = RiskLimits(
    daily_loss_limit=Decimal(100_000),
    max_drawdown=Decimal("0.9"),
    max_leverage=Decimal(50),
    warning_fraction=Decimal("0.99"),
    warning_leverage_factor=Decimal(1),
    max_group_exposure=Decimal(10_000_000),
    max_total_exposure=Decimal(10_000_000),
    max_order_notional=Decimal(1_000_000),
    max_orders_per_second=1000,
    cooldown_s=60,
    stale_after_s=3600,
)
NODE_CONFIG = NodeConfig(
    ACCOUNT,
    LIMITS,
    Decimal(1_000_000),
    policy=SupervisorPolicy(max_restarts=10, period_s=60.0, backoff=Backoff(0.001, 0.01)),
)

_intents = itertools.count(1)


def gateway_config(emulator: BinanceEmulator, **overrides: Any) -> GatewayConfig:
    """A ccxt gateway config aimed at the emulator, tuned for fast tests (override any key)."""
    base = GatewayConfig(
        kind="ccxt",
        exchange_id="binance",
        urls=emulator.ccxt_urls(),
        timeout_ms=400,
        recv_window_ms=600,
        enable_rate_limit=False,
        retry=RetryPolicy(tries=3, min_s=0.01, max_s=0.05, max_retry_after_s=5),
        breaker_threshold=20,
        breaker_cooloff_s=30,
        reconcile_interval_s=0,
        poll_interval_s=0.05,
        market_data="rest",
    )
    return replace(base, **overrides)


class CcxtRig:
    """A node + ccxt gateway + emulator; `start()`, drive, `settle()`, `stop()`."""

    def __init__(
        self,
        emulator: BinanceEmulator,
        journal: Journal,
        config: GatewayConfig,
        *,
        clock: ManualClock | None = None,
        node_config: NodeConfig = NODE_CONFIG,
    ) -> None:
        self.emulator = emulator
        self.journal = journal
        self.clock = clock if clock is not None else ManualClock(time.time_ns())
        self.events = EventLog()
        self._published = threading.Condition()
        self.events.subscribe(self._on_event)
        self.client = CcxtGateway(
            config,
            account=ACCOUNT,
            credentials=Credentials(emulator.api_key, emulator.secret),
            clock=self.clock,
            symbols=(BTC,),
            seed=7,
        )
        self.node = Node(
            node_config,
            journal=journal,
            exchange=self.client,
            clock=self.clock,
            events=self.events,
        )

    def start(self, *, settle: bool = True) -> CcxtRig:
        """Start the node; with `settle`, return once the start-up reconciliation is done."""
        self.node.start()
        if settle:
            self.settle()
        return self

    def stop(self) -> None:
        """Stop the node, then the gateway's I/O loop."""
        try:
            self.node.stop()
        finally:
            self.client.close()

    def settle(self, timeout_s: float = 15.0) -> None:
        """Wait until the gateway has nothing in flight and the node is quiet (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            # Quiet: a whole round in which the gateway told the node nothing new
            # and the node journaled nothing new.
            before, told = self._marks(), self.client.told
            self.client.wait_idle(timeout_s=max(0.1, deadline - time.monotonic()))
            self.node.settle(timeout_s=max(0.1, deadline - time.monotonic()))
            self.client.wait_idle(timeout_s=max(0.1, deadline - time.monotonic()))
            if self._marks() == before and self.client.told == told:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the ccxt rig did not settle")

    def _marks(self) -> dict[str, int]:
        return {s: self.journal.last_seq(s) for s in self.journal.streams()}

    # -- driving -------------------------------------------------------------------

    def quote(self, bid: str = "60000.00", ask: str = "60000.10") -> None:
        """A BTC quote for the positions (risk needs a fresh mark to approve orders)."""
        self.node.market(
            MarketUpdate(BTC, Decimal(bid), Decimal(ask), None, None, None, self.clock.now_ns())
        )

    def order(self, side: Side, qty: str, limit: str | None = None) -> None:
        """A BTC intent (market order unless `limit`), journaled and handed to its position."""
        self.node.signal(
            OrderIntent(
                account=ACCOUNT,
                symbol=BTC,
                side=side,
                qty=Decimal(qty),
                limit_price=None if limit is None else Decimal(limit),
                intent_id=f"intent-{next(_intents)}",
                reduce_only=False,
                reason="test",
                ts_ns=self.clock.now_ns(),
            )
        )

    def reconcile(self) -> None:
        """Ask the gateway to reconcile now and wait until it has carried out the plan."""
        assert self.node.gateway is not None
        self.node.gateway.tell(ReconcileDue("manual"))
        self.settle()

    # -- reading ---------------------------------------------------------------------

    def position(self) -> dict[str, Any]:
        """The BTC position's state (rebuilt from the journal when its actor is down)."""
        return self.node.inspect(STREAM)

    def gateway(self) -> dict[str, Any]:
        """The gateway actor's inspect view."""
        return self.node.inspect(f"gateway.{ACCOUNT}")

    def _on_event(self, message: Message) -> None:
        with self._published:
            self._published.notify_all()

    def wait_for_event(
        self, predicate: Callable[[RiskEvent], bool], timeout_s: float = 10.0
    ) -> RiskEvent:
        """Block until a risk event matching `predicate` has been published (bounded)."""
        deadline = time.monotonic() + timeout_s
        with self._published:
            while True:
                for message in self.events.events():
                    if isinstance(message, RiskEvent) and predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching risk event was published")
                self._published.wait(left)

    def risk_events(self, event: str) -> list[RiskEvent]:
        """Risk events of one kind, oldest first."""
        return [m for m in self.events.events() if isinstance(m, RiskEvent) and m.event == event]


class RigFactory:
    """Builds started rigs and stops every one of them at `close()` (a fixture's teardown)."""

    def __init__(self) -> None:
        self.made: list[CcxtRig] = []

    def __call__(
        self,
        emulator: BinanceEmulator,
        journal: Journal,
        *,
        clock: ManualClock | None = None,
        settle: bool = True,
        **overrides: Any,
    ) -> CcxtRig:
        """A started rig on `journal`; its config is `gateway_config(emulator, **overrides)`."""
        rig = CcxtRig(emulator, journal, gateway_config(emulator, **overrides), clock=clock)
        # Registered before start: a start that fails half-way is still stopped.
        self.made.append(rig)
        return rig.start(settle=settle)

    def close(self) -> None:
        """Stop every rig made, newest first."""
        for rig in reversed(self.made):
            rig.stop()
