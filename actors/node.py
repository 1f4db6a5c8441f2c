"""Node: the actors of one process under one root supervisor.

A node hosts the risk supervisor, one gateway per account and a position
actor per account+symbol (started on demand), wired through a journal, and is
the in-process engine the demo and the tests drive. The worker processes of
`posbus up` (posbus.actors.worker and its role modules) host the same actors,
one role each, built by the same `ActorFactory`.

Supervision tree (Erlang/OTP semantics, posbus.actors.supervision):

    root (one_for_one)
    +-- risk                    permanent
    +-- gateway.ACCOUNT         permanent
    +-- positions (one_for_one) permanent supervisor
        +-- position/ACCOUNT/SYMBOL   transient: a closed position stays down

Inputs: `signal` (an OrderIntent, journaled on the position's stream before
the position hears of it), `market` (market updates to the gateway and the
symbol's positions), `tick` (timers). All methods are thread-safe.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pykka

from posbus.actors.control import (
    Crash,
    Halt,
    Inspect,
    Resume,
    Resync,
    Tick,
    trading_restricted,
)
from posbus.actors.delivery import Delivered, Doorbell, Outbox
from posbus.actors.events import EventLog
from posbus.actors.exchange_sync import MarketFeed, ReportingExchange
from posbus.actors.factory import ActorFactory, ExposureSettings
from posbus.actors.gateway_actor import ExchangeClient
from posbus.actors.journal import Journal, JournalCorrupt, SnapshotStore
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.risk import PositionExposure, RiskLimits
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.actors.snapshot_schedule import SnapshotSchedule
from posbus.actors.supervision.child_spec import ChildSpec
from posbus.actors.supervision.errors import (
    ChildTerminated,
    ChildUnavailable,
    RestartIntensityExceeded,
)
from posbus.actors.supervision.handle import ChildHandle, HandleState
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.actors.supervision.requests import Children, StartChild
from posbus.actors.supervision.restart_type import RestartType
from posbus.actors.supervision.supervisor import Supervisor
from posbus.actors.symbol_info import SymbolInfo
from posbus.bus.messages import CancelRequest, MarketUpdate, Message, OrderIntent

logger = logging.getLogger(__name__)

ASK_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """What a node needs besides its journal, clock and exchange."""

    account: str
    limits: RiskLimits
    starting_equity: Decimal
    policy: SupervisorPolicy = field(default_factory=SupervisorPolicy)
    symbols: Mapping[str, SymbolInfo] = field(default_factory=dict)
    # Exposure conflation of the positions (PositionActor); 0 = tell risk every change.
    exposure_interval_ns: int = 0
    exposure_pnl_step: Decimal = Decimal(0)
    # The risk supervisor takes marks from market data itself (exact, and no
    # exposure per mark change); False: positions tell it every mark change.
    risk_reads_market: bool = False
    # Periodic snapshots of every actor (clock time between two); None = only on
    # demand (`snapshot()`) and on a clean `stop()`.
    snapshot_interval_s: float | None = 30.0
    # Entering CoolDown or Halted cancels the positions' risk-adding working orders.
    cancel_risk_adding_orders: bool = True
    # The currency risk counts in: symbols quoted in another are converted at
    # QUOTE/REPORTING's mid (`CurrencyConversion`). None: every symbol as quoted.
    reporting_currency: str | None = None

    def exposure(self) -> ExposureSettings:
        """How the positions tell risk their exposure."""
        return ExposureSettings(
            interval_ns=self.exposure_interval_ns,
            pnl_step=self.exposure_pnl_step,
            risk_reads_market=self.risk_reads_market,
        )


class Node:
    """One process's actors. Construct, `start()`, drive, `stop()`.

    `on_escalate` is called (from the root supervisor's thread) when the root
    supervisor gives up: the worker process exits non-zero there.
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        journal: Journal,
        exchange: ExchangeClient | ReportingExchange,
        clock: Clock,
        events: EventLog | None = None,
        sender: str = "node",
        on_escalate: Callable[[RestartIntensityExceeded], None] | None = None,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.exchange = exchange
        self.clock = clock
        self.events = events if events is not None else EventLog()
        self.outbox = Outbox(journal, sender, clock)
        self.escalated = threading.Event()
        self._on_escalate = on_escalate
        self._lock = threading.Lock()  # guards _positions, held only briefly
        self._spawn_lock = threading.Lock()  # serialises starting position actors
        self._positions: dict[str, ChildHandle] = {}
        self._last_market: dict[str, MarketUpdate] = {}
        self._closed_at: dict[str, int] = {}  # stream -> last applied seq when it stopped
        self._root: Any = None
        self._positions_sup: Any = None
        self.risk: ChildHandle | None = None
        self.gateway: ChildHandle | None = None
        # Snapshots go to `snapshots`, else to the journal when it keeps them too.
        self.snapshots: SnapshotStore | None = snapshots
        if snapshots is None and isinstance(journal, SnapshotStore):
            self.snapshots = journal
        self.factory = ActorFactory(
            outbox=self.outbox,
            events=self.events,
            clock=clock,
            snapshots=self.snapshots,
            on_corrupt=self._on_journal_corrupt,
            symbols=config.symbols,
            exposure=config.exposure(),
            cancel_risk_adding_orders=config.cancel_risk_adding_orders,
        )
        self.events.subscribe(self._on_event)
        self._snapshot_schedule = SnapshotSchedule(
            self._snapshot_targets,
            clock.now_ns,
            config.snapshot_interval_s if self.snapshots is not None else None,
        )

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the supervision tree; returns once every static child is up."""
        cfg = self.config
        risk = self.factory.risk(
            limits=cfg.limits,
            starting_equity=cfg.starting_equity,
            on_started=self._resync_positions,
            reporting_currency=cfg.reporting_currency,
            symbols=tuple(cfg.symbols),
        )
        gateway = self.factory.gateway(
            account=cfg.account,
            exchange=self.exchange,
            lookup=self._doorbell,
            halt=self._halt_from_gateway,
        )
        risk_spec = ChildSpec("risk", risk.start, restart=RestartType.PERMANENT)
        gateway_spec = ChildSpec(
            f"gateway.{cfg.account}", gateway.start, restart=RestartType.PERMANENT
        )
        positions_spec = Supervisor.spec("positions", [], policy=cfg.policy)
        self._root = Supervisor.start(
            None,
            [risk_spec, gateway_spec, positions_spec],
            policy=cfg.policy,
            on_escalate=self._escalate,
            name="root",
        )
        root = self._root.proxy()
        self.risk = root.handle("risk").get(timeout=ASK_TIMEOUT_S)
        self.gateway = root.handle(f"gateway.{cfg.account}").get(timeout=ASK_TIMEOUT_S)
        self._positions_sup = root.handle("positions").get(timeout=ASK_TIMEOUT_S)
        # Positions with journaled history but possibly open: start them so
        # they recover (replay) and report their exposure.
        for stream in self.journal.streams():
            if stream.startswith("position/"):
                _, account, symbol = stream.split("/", 2)
                self.position(account, symbol)
        self._resync_gateway()
        if isinstance(self.exchange, MarketFeed) and cfg.symbols:
            # A network exchange is the market: its quotes feed the positions.
            self.exchange.subscribe_market(sorted(cfg.symbols), self.market)

    def stop(self) -> None:
        """Snapshot every running actor (a clean shutdown), then stop them, children first.

        A snapshot that cannot be taken is logged; the next start replays the
        journal further instead. After an escalation nothing is snapshotted.
        """
        if self._root is not None and self._root.is_alive():
            if not self.escalated.is_set():
                try:
                    self.snapshot()
                except (PosbusError, pykka.Timeout) as exc:
                    logger.error(
                        "snapshot on shutdown failed; the next start replays more",
                        extra={"error": repr(exc)},
                    )
            self._root.stop(timeout=30)

    def _escalate(self, error: RestartIntensityExceeded) -> None:
        logger.critical("root supervisor gave up", extra={"error": str(error)})
        self.escalated.set()
        if self._on_escalate is not None:
            self._on_escalate(error)

    # -- positions -----------------------------------------------------------------

    def position(self, account: str, symbol: str) -> ChildHandle:
        """The handle of the position actor of account+symbol, started if needed."""
        stream = position_stream(account, symbol)
        with self._lock:
            handle = self._positions.get(stream)
        if handle is not None and handle.state is not HandleState.TERMINATED:
            return handle
        with self._spawn_lock:
            with self._lock:
                handle = self._positions.get(stream)
            if handle is not None and handle.state is not HandleState.TERMINATED:
                return handle

            def start(link: Any) -> Any:
                # Built at each (re)start: the newest quote, and a stream found
                # corrupt meanwhile is not started again.
                return self.factory.position(
                    account,
                    symbol,
                    risk=self.risk,
                    gateway=self.gateway,
                    last_market=self._last_market.get(symbol),
                    on_closed=self._on_position_closed,
                ).start(link)

            spec = ChildSpec(stream, start, restart=RestartType.TRANSIENT)
            started: ChildHandle = self._positions_sup.ask(StartChild(spec), timeout=ASK_TIMEOUT_S)
            with self._lock:
                self._positions[stream] = started
            return started

    # -- snapshots -------------------------------------------------------------------

    def snapshot(self, timeout_s: float = ASK_TIMEOUT_S) -> dict[str, int]:
        """Snapshot the risk supervisor and every running position now; returns
        {actor name: snapshot seq} of those that saved one (an actor with nothing
        new since its last snapshot saves none). Asked all at once, so the store
        group-commits them; blocks until each is durable. Any thread.
        """
        if self.snapshots is None:
            return {}
        return self._snapshot_schedule.take(timeout_s)

    def _snapshot_targets(self) -> list[ChildHandle]:
        with self._lock:
            positions = [h for h in self._positions.values() if h.state is HandleState.RUNNING]
        return [h for h in (self.risk, *positions) if h is not None]

    def _on_journal_corrupt(self, stream: str, error: JournalCorrupt) -> None:
        """A position found its stream corrupt (its thread, failing its start): halt trading.

        The halt is journaled by the risk supervisor and survives restarts: the
        account stays Halted until an operator has repaired the journal and
        resumes. Told, never asked: the position's supervisor waits for it.
        """
        logger.critical(
            "journal corrupt: halting the account",
            extra={"stream": stream, "seq": error.seq, "problem": error.problem},
        )
        if self.risk is not None:
            self.risk.tell(Halt(f"journal corrupt: {error}", self.clock.now_ns()))

    def _on_position_closed(self, stream: str, applied_seq: int) -> None:
        logger.info("position closed; its actor stops", extra={"stream": stream})
        with self._lock:
            self._closed_at[stream] = applied_seq

    def _on_event(self, message: Message) -> None:
        """Risk entered CoolDown or Halted (the risk actor's thread): tell every running
        position, which cancels its risk-adding working orders. Told, never asked."""
        notice = trading_restricted(message)
        if notice is None:
            return
        with self._lock:
            handles = [h for h in self._positions.values() if h.state is HandleState.RUNNING]
        for handle in handles:
            handle.tell(notice)

    def _revive_missed(self) -> None:
        """Restart closed positions whose stream got records after they stopped.

        A record told to a position in the instant it stops is dropped from its
        inbox by pykka; it is journaled, so starting the position replays it.
        """
        with self._lock:
            closed = [
                (stream, seq)
                for stream, seq in self._closed_at.items()
                if self._positions[stream].state is HandleState.TERMINATED
            ]
        for stream, seq in closed:
            if self.journal.last_seq(stream) > seq:
                _, account, symbol = stream.split("/", 2)
                with self._lock:
                    del self._closed_at[stream]
                self.position(account, symbol)

    def _doorbell(self, stream: str) -> Doorbell | None:
        if self._positions_sup is None:
            # Still in start(): the gateway redelivers missed fills from its
            # on_start before the positions supervisor exists. The record waits
            # in the journal; start() then starts every journaled position.
            return None
        with self._lock:
            handle = self._positions.get(stream)
        if self.factory.corruption(stream) is not None:
            return None  # the record waits in the journal for an operator's repair
        if handle is None or handle.state is HandleState.TERMINATED:
            account, symbol = stream.split("/", 2)[1:]
            return _LazyPosition(self, account, symbol)
        return handle

    def _resync_positions(self) -> list[PositionExposure]:
        """Have every position re-send what a restarted peer lost; return their exposures.

        Called from the restarted peer's `on_start` (its thread). A running
        position is asked (it re-sends unacknowledged orders and its
        exposure); a closed one, down for good, is replayed from its journal,
        since its realized P&L still counts in equity. A position restarting
        right now reports its exposure itself once it is up.
        """
        with self._lock:
            handles = dict(self._positions)
        exposures: list[PositionExposure] = []
        corrupt = self.factory.corrupt_streams()
        for stream, handle in handles.items():
            if stream in corrupt:
                continue  # down for good, and the account is halted
            _, account, symbol = stream.split("/", 2)
            exposure: Any = None
            if handle.state is not HandleState.TERMINATED:
                with contextlib.suppress(ChildUnavailable, ChildTerminated):
                    exposure = handle.ask(Resync(), timeout=ASK_TIMEOUT_S)
            if handle.state is HandleState.TERMINATED:
                info = self.config.symbols.get(symbol, SymbolInfo())
                exposure = PositionActor.recovered_exposure(
                    self.outbox,
                    account,
                    symbol,
                    info.group,
                    info.correlation,
                    snapshots=self.snapshots,
                )
            if isinstance(exposure, PositionExposure):
                exposures.append(exposure)
        return exposures

    def _resync_gateway(self) -> None:
        self._resync_positions()

    # -- inputs ----------------------------------------------------------------------

    def signal(self, intent: OrderIntent) -> Delivered:
        """Journal an intent on its position's stream, then hand it to the position.

        Raises JournalCorrupt (journaling nothing) when that stream is corrupt.
        """
        self._refuse_corrupt(intent.account, intent.symbol)
        handle = self.position(intent.account, intent.symbol)
        return self.outbox.deliver(position_stream(intent.account, intent.symbol), intent, handle)

    def cancel(self, account: str, symbol: str, order_id: str) -> Delivered:
        """Journal a cancel request for `order_id`, then hand it to its position."""
        self._refuse_corrupt(account, symbol)
        handle = self.position(account, symbol)
        request = CancelRequest(order_id=order_id, ts_ns=self.clock.now_ns())
        return self.outbox.deliver(position_stream(account, symbol), request, handle)

    def _refuse_corrupt(self, account: str, symbol: str) -> None:
        error = self.factory.corruption(position_stream(account, symbol))
        if error is not None:
            raise error

    def market(self, update: MarketUpdate) -> None:
        """Hand a market update to the gateway and every running position of its symbol."""
        assert self.gateway is not None
        self.gateway.tell(update)
        with self._lock:
            self._last_market[update.symbol] = update
            handles = [
                h
                for stream, h in self._positions.items()
                if stream.endswith("/" + update.symbol) and h.state is HandleState.RUNNING
            ]
        for handle in handles:
            handle.tell(update)
        if self.config.risk_reads_market:
            assert self.risk is not None
            self.risk.tell(update)

    def tick(self) -> None:
        """Let timers fire (cool-down expiry, trading-day rollover, periodic snapshots)."""
        assert self.risk is not None
        now = self.clock.now_ns()
        self.risk.tell(Tick(now))
        self._snapshot_schedule.tick()
        self._revive_missed()

    def halt(self, reason: str) -> str:
        """The manual kill switch; returns the new risk state (journaled before it returns)."""
        assert self.risk is not None
        state: str = self.risk.ask(Halt(reason, self.clock.now_ns()), timeout=ASK_TIMEOUT_S)
        return state

    def _halt_from_gateway(self, reason: str) -> None:
        """A reconciliation found what it cannot resolve (gateway thread): halt, told not asked."""
        logger.critical("gateway asks to halt the account", extra={"reason": reason})
        if self.risk is not None:
            self.risk.tell(Halt(reason, self.clock.now_ns()))

    def resume(self) -> str:
        """Lift a manual halt; returns the new risk state."""
        assert self.risk is not None
        state: str = self.risk.ask(Resume(self.clock.now_ns()), timeout=ASK_TIMEOUT_S)
        return state

    def crash(self, name: str) -> None:
        """Inject a failure into the actor called `name` ("risk", "gateway.A", a stream)."""
        handle = self._handle(name)
        handle.tell(Crash(f"injected into {name}"))

    def _handle(self, name: str) -> ChildHandle:
        if name == "risk" and self.risk is not None:
            return self.risk
        if self.gateway is not None and name == self.gateway.name:
            return self.gateway
        with self._lock:
            handle = self._positions.get(name)
        if handle is None:
            raise KeyError(f"no actor named {name!r}")
        return handle

    # -- synchronisation ---------------------------------------------------------------

    def settle(self, timeout_s: float = 30.0) -> None:
        """Block until every message sent so far has been handled and nothing new was journaled.

        A barrier for tests, the demo's summary and backtests: it asks each
        actor in flow order (gateway, positions, risk) and repeats until two
        full rounds in a row leave the journal unchanged. Two, because a
        message sent against the flow (a position's cancel or re-sent order to
        the gateway, asked earlier in the round) journals nothing until the
        next round reaches it. Raises TimeoutError.
        """
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while True:
            self._revive_missed()
            before = self._journal_marks()
            handles = [self.gateway, *self._live_positions(), self.risk]
            for handle in handles:
                if handle is not None and handle.state is HandleState.RUNNING:
                    # A child restarting right now is seen again in the next round;
                    # a position that closed and stopped meanwhile has nothing left to do.
                    with contextlib.suppress(ChildUnavailable, ChildTerminated):
                        handle.ask(Inspect(), timeout=max(0.1, deadline - time.monotonic()))
            busy = any(h is not None and _restarting(h) for h in handles)
            quiet = 0 if busy or self._journal_marks() != before else quiet + 1
            if quiet == 2:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"node did not settle within {timeout_s} s")

    def _journal_marks(self) -> dict[str, int]:
        return {stream: self.journal.last_seq(stream) for stream in self.journal.streams()}

    def _live_positions(self) -> list[ChildHandle]:
        # Running or restarting: a position that is down for good is settled.
        with self._lock:
            return [h for h in self._positions.values() if h.state is not HandleState.TERMINATED]

    # -- inspection -------------------------------------------------------------------

    def inspect(self, name: str) -> dict[str, Any]:
        """The full state of one actor; a position that is down is rebuilt from its journal."""
        handle = self._handle(name)
        if name.startswith("position/") and handle.state is HandleState.TERMINATED:
            _, account, symbol = name.split("/", 2)
            return PositionActor.recovered_state(self.outbox, account, symbol, self.snapshots)
        state: dict[str, Any] = handle.ask(Inspect(), timeout=ASK_TIMEOUT_S)
        return state

    def running_position_names(self) -> list[str]:
        """Streams of the position actors running right now."""
        with self._lock:
            return sorted(n for n, h in self._positions.items() if h.state is HandleState.RUNNING)

    def position_names(self) -> list[str]:
        """Streams of every position actor this node has started."""
        with self._lock:
            return sorted(self._positions)

    def actors(self) -> list[dict[str, Any]]:
        """Every supervised actor: name, restart type, alive, restarts, last error."""
        root = self._root.proxy()
        out: list[dict[str, Any]] = list(root.children().get(timeout=ASK_TIMEOUT_S))
        out += self._positions_sup.ask(Children(), timeout=ASK_TIMEOUT_S)
        return out


def _restarting(handle: ChildHandle) -> bool:
    """True while `handle`'s child is down or has died and its supervisor has not yet seen it.

    A dead child still reads RUNNING until its supervisor handles the exit: its
    restart (replay, resync) is work in flight that `settle` must wait for.
    """
    state = handle.state
    return state is HandleState.DOWN or (state is HandleState.RUNNING and not handle.alive)


class _LazyPosition:
    """A doorbell for a position whose actor is down for good: starts it on the first ring."""

    def __init__(self, node: Node, account: str, symbol: str) -> None:
        self.node, self.account, self.symbol = node, account, symbol

    def tell(self, message: object) -> None:
        self.node.position(self.account, self.symbol).tell(message)
