"""Workers: the actors of one role in one process, on the bus.

A worker hosts one role under its own root supervisor and reaches the other
roles through the bus (posbus.actors.remote): `RiskWorker` (the
RiskSupervisor, service "risk"), `GatewayWorker` (the GatewayActor of one
account, "gateway.ACCOUNT") and `PositionsWorker` (the PositionActors of
shard I/N, "positions.I"). Execution signals are journaled on both sides:
the gateway journals each one on its ``published/SENDER`` stream before it
publishes it (journal seq == bus seq), a positions worker journals each one
it keeps before the position hears of it, and repairs gaps from the
gateway's records (the ZeroMQ guide's Clone pattern).

Threads: the actors' own pykka threads, the I/O thread (WorkerIO: every bus
socket; event and tick hooks), the control thread (commands, signal
application, gap repair: anything that may wait for an actor, which the I/O
thread must never do), the admin thread (admin handlers) and the caller's
(start/stop). The root supervisor escalating sets `escalated`; the process
then exits non-zero. Topics and recovery: docs/architecture.md, "Workers".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from posbus.actors.control import Crash, ExposureChanged, Halt, Inspect, Resync, SubmitOrder, Tick
from posbus.actors.delivery import Outbox
from posbus.actors.events import EventLog
from posbus.actors.exchange_sync import MarketFeed, ReportingExchange
from posbus.actors.factory import ActorFactory, ExposureSettings
from posbus.actors.gateway_actor import ExchangeClient
from posbus.actors.journal import Journal, JournalCorrupt, SnapshotStore
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import OrderValidationError, PosbusError
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.actors.quote_slot import QuoteSlot
from posbus.actors.remote import (
    CANCEL,
    CHECK_ORDER,
    EXPOSURE,
    HALT,
    RESUME,
    SUBMIT,
    TICK,
    RemoteGateway,
    RemoteMessageError,
    RemoteRisk,
    decision_result,
    from_command,
)
from posbus.actors.sharding import Shard
from posbus.actors.snapshot_schedule import SnapshotSchedule
from posbus.actors.supervision.child_spec import ChildSpec
from posbus.actors.supervision.errors import RestartIntensityExceeded
from posbus.actors.supervision.handle import ChildHandle, HandleState
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.actors.supervision.requests import StartChild
from posbus.actors.supervision.restart_type import RestartType
from posbus.actors.supervision.supervisor import Supervisor
from posbus.actors.symbol_info import SymbolInfo
from posbus.actors.worker_io import IOConfig, WorkerIO
from posbus.bus.admin import AdminHandler
from posbus.bus.codec import decode, encode
from posbus.bus.constraints import parse_decimal, parse_optional_decimal
from posbus.bus.curve import CurveClient, CurveServer
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.errors import BrokerUnavailable, UnknownOutcome
from posbus.bus.heartbeat import HeartbeatConfig
from posbus.bus.messages import (
    CancelRequest,
    Command,
    CommandArg,
    MarketUpdate,
    Message,
    OrderIntent,
    OrderRejected,
    RiskEvent,
)
from posbus.bus.metrics import BusMetrics
from posbus.bus.service_worker import Request
from posbus.bus.sockets import SocketOptions
from posbus.bus.subscriber import Received
from posbus.bus.topics import (
    PREFIX_EXECUTION,
    PREFIX_EXPOSURE,
    PREFIX_MARKET,
    execution_topic,
    market_topic,
    risk_topic,
    topic_for,
)
from posbus.bus.wire_error import WireError

logger = logging.getLogger(__name__)

ASK_TIMEOUT_S = 5.0
RESYNC_EVENT = "resync"
RESYNC_COMMAND = "positions.resync"
REPLAY_PAGE = 500
# positions.orders answers the newest this many orders unless asked for more
# (at most the MAX: about 1 KiB each, a reply stays under the 1 MiB frame limit).
ORDERS_LIMIT = 200
ORDERS_LIMIT_MAX = 500
# positions.list answers at most this many positions a page (~300 bytes each).
POSITIONS_PAGE = 1000
# Per gateway incarnation, how far its published signals were applied here.
APPLIED_PREFIX = "applied/"
# Per gateway incarnation, what it published (journal seq == bus seq).
PUBLISHED_PREFIX = "published/"
# A gap repair or start-up snapshot waits this long for the gateway.
REPAIR_TIMEOUT_S = 5.0
# Default mark-only exposure conflation of flat positions in a positions worker:
# well below the risk supervisor's stale_after_s, and a flat position's own
# order always tells its newest mark first.
FLAT_EXPOSURE_INTERVAL_NS = 1_000_000_000


class WorkerError(PosbusError):
    """A worker request that cannot be served (unknown actor, shard mismatch, bad arguments)."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything a worker needs besides its journal and clock."""

    name: str
    role: str
    run_dir: Path
    endpoints: BusEndpoints
    admin_endpoint: str
    account: str
    policy: SupervisorPolicy
    symbols: Mapping[str, SymbolInfo] = field(default_factory=dict)
    shard: Shard | None = None
    position_shards: int = 1
    curve: CurveClient | None = None
    admin_curve: CurveServer | None = None
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    options: SocketOptions = field(default_factory=SocketOptions)
    tick_s: float = 1.0
    exposure_interval_ns: int = 0
    exposure_pnl_step: Decimal = Decimal(0)
    #: A flat position (qty 0) tells risk a mark-only change at most this often
    #: (market time): it changes nothing risk counts but the mark (docs/bus.md).
    flat_exposure_interval_ns: int = FLAT_EXPOSURE_INTERVAL_NS
    #: The risk worker subscribes to market data and reads marks itself; the
    #: positions tell it no mark-only change but their first (`[positions] risk_marks`).
    risk_reads_market: bool = False
    #: Periodic snapshots of the worker's actors (`[storage] snapshot_interval_s`);
    #: None: only on `posbus admin NAME snapshot` and on a clean stop.
    snapshot_interval_s: float | None = 30.0

    def exposure(self) -> ExposureSettings:
        """How the positions tell risk their exposure."""
        return ExposureSettings(
            interval_ns=self.exposure_interval_ns,
            pnl_step=self.exposure_pnl_step,
            flat_interval_ns=self.flat_exposure_interval_ns,
            risk_reads_market=self.risk_reads_market,
        )


class Worker:
    """What every role shares: root supervisor, I/O thread, admin handlers, lifecycle.

    Subclasses build their children (`_children`), choose their services and
    subscriptions, and handle events (I/O thread) and commands (control thread).
    """

    role = "worker"

    def __init__(self, settings: WorkerSettings, *, journal: Journal, clock: Clock) -> None:
        self.settings = settings
        self.journal = journal
        self.clock = clock
        self.events = EventLog(capacity=10_000)
        self.outbox = Outbox(journal, settings.name, clock)
        self.snapshots = journal if isinstance(journal, SnapshotStore) else None
        self.factory = ActorFactory(
            outbox=self.outbox,
            events=self.events,
            clock=clock,
            snapshots=self.snapshots,
            on_corrupt=self.on_corrupt,
            symbols=settings.symbols,
            exposure=settings.exposure(),
        )
        self.snapshot_schedule = SnapshotSchedule(
            self.snapshot_targets,
            clock.now_ns,
            settings.snapshot_interval_s if self.snapshots is not None else None,
        )
        self.escalated = threading.Event()
        self.escalation: RestartIntensityExceeded | None = None
        self.started_ns = time.time_ns()
        self._started_mono = time.monotonic()
        self.root: Any = None
        self.handles: dict[str, ChildHandle] = {}
        self._handles_lock = threading.Lock()
        self._last_told: dict[str, int] = {}
        self.io = WorkerIO(
            IOConfig(
                name=settings.name,
                endpoints=settings.endpoints,
                admin_endpoint=settings.admin_endpoint,
                services=self.services(),
                prefixes=self.prefixes(),
                curve=settings.curve,
                admin_curve=settings.admin_curve,
                heartbeat=settings.heartbeat,
                options=settings.options,
                tick_s=settings.tick_s,
            ),
            on_events=self.on_events,
            on_request=self._on_request,
            admin_handlers=self.admin_handlers(),
            on_tick=self._tick,
            on_gap=self.on_gap,
        )
        self.io.metrics.count("restarts", 0)

    # -- what a role declares --------------------------------------------------------------

    def services(self) -> list[str]:
        """The command services this worker answers."""
        return []

    def prefixes(self) -> list[bytes]:
        """The event topic prefixes it subscribes to."""
        return []

    def _children(self) -> list[ChildSpec]:
        return []

    def snapshot_targets(self) -> list[ChildHandle]:
        """The running actors that keep snapshots (any thread)."""
        return []

    def on_corrupt(self, stream: str, error: JournalCorrupt) -> None:
        """An actor found its journal stream corrupt (that actor's thread, failing its start)."""

    # -- lifecycle (caller's thread) ---------------------------------------------------------

    def start(self) -> None:
        """Start the supervision tree, then the I/O thread; returns once both run."""
        self.root = Supervisor.start(
            None,
            self._children(),
            policy=self.settings.policy,
            on_escalate=self._escalate,
            name="root",
        )
        proxy = self.root.proxy()
        for spec in self._children():
            handle: ChildHandle = proxy.handle(spec.name).get(timeout=ASK_TIMEOUT_S)
            with self._handles_lock:
                self.handles[spec.name] = handle
        self.io.start()
        self.after_start()
        logger.info(
            "worker started",
            extra={"worker": self.settings.name, "role": self.role, "sender": self.io.sender},
        )

    def after_start(self) -> None:
        """Role-specific work once the bus is up (caller's thread)."""

    def stop(self) -> None:
        """Snapshot, flush, stop the I/O thread and every actor (children before parents)."""
        self.snapshot({})
        self.io.stop()
        if self.root is not None and self.root.is_alive():
            self.root.stop(timeout=30)
        close = getattr(self.journal, "close", None)
        if callable(close):
            close()
        logger.info("worker stopped", extra={"worker": self.settings.name})

    def _escalate(self, error: RestartIntensityExceeded) -> None:
        logger.critical(
            "root supervisor gave up; the worker exits",
            extra={"worker": self.settings.name, "error": str(error)},
        )
        self.escalation = error
        self.escalated.set()

    # -- hooks (I/O thread) ---------------------------------------------------------------------

    def on_events(self, batch: list[Received]) -> None:
        """A drained batch of events, in arrival order."""

    def _tick(self) -> None:
        self.snapshot_schedule.tick()
        self.on_tick()

    def on_tick(self) -> None:
        """Timers (every `tick_s`)."""

    def on_gap(self, sender: str, expected: int, got: int) -> None:
        """Frames `expected .. got-1` of `sender` were lost."""

    def _on_request(self, request: Request) -> dict[str, Any]:
        self.io.metrics.count_in("command")
        return self.on_command(request.command)

    def on_command(self, command: Command) -> dict[str, Any]:
        """Answer one command of this worker's services (raise a PosbusError to refuse)."""
        raise WorkerError(f"{self.settings.name}: unknown command {command.name!r}")

    def tell(self, name: str, handle: ChildHandle, message: object) -> None:
        """Tell `handle` and remember when (for the admin's "age of last message")."""
        self._last_told[name] = time.time_ns()
        handle.tell(message)

    # -- admin (admin thread) ----------------------------------------------------------------------

    def admin_handlers(self) -> dict[str, AdminHandler]:
        """The admin socket's commands."""
        return {
            "status": self.status,
            "actors": self.actors,
            "inspect": self.inspect,
            "metrics": self.metrics,
            "restart": self.restart,
            "snapshot": self.snapshot,
            "log-level": self.log_level,
        }

    def status(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Who this worker is and whether it is healthy."""
        service = self.io.service
        return {
            "name": self.settings.name,
            "role": self.role,
            "shard": None if self.settings.shard is None else str(self.settings.shard),
            "pid": os.getpid(),
            "started_ns": self.started_ns,
            "uptime_s": f"{time.monotonic() - self._started_mono:.3f}",
            "sender": self.io.sender,
            "services": self.services(),
            "broker_connected": True if service is None else bool(service.connected_to_broker),
            "escalated": self.escalated.is_set(),
            "actors": len(self._all_handles()),
            "journal_streams": len(self.journal.streams()),
        }

    def _all_handles(self) -> dict[str, ChildHandle]:
        with self._handles_lock:
            return dict(self.handles)

    def actors(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Each actor: name, state, mailbox depth, restarts, age of its last message."""
        now = time.time_ns()
        out = []
        for name, handle in sorted(self._all_handles().items()):
            ref = handle.ref
            mailbox = 0
            if ref is not None:
                inbox = getattr(ref, "actor_inbox", None)
                mailbox = inbox.qsize() if inbox is not None else 0
            last = self._last_told.get(name)
            out.append(
                {
                    "name": name,
                    "state": handle.state.value,
                    "alive": handle.alive,
                    "mailbox": mailbox + handle.buffered,
                    "restarts": handle.restarts,
                    "last_message_age_s": None if last is None else f"{(now - last) / 1e9:.3f}",
                }
            )
        return {"actors": out}

    def _handle(self, args: dict[str, CommandArg]) -> tuple[str, ChildHandle]:
        name = args.get("actor")
        if not isinstance(name, str):
            raise WorkerError("argument 'actor' (an actor name) is required")
        handle = self._all_handles().get(name)
        if handle is None:
            raise WorkerError(f"no actor named {name!r} in {self.settings.name}")
        return name, handle

    def inspect(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """The full state of one actor, as JSON-ready values."""
        _, handle = self._handle(args)
        state: dict[str, Any] = _json_ready(handle.ask(Inspect(), timeout=ASK_TIMEOUT_S))
        return state

    def metrics(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Message counts and rates, latency percentiles, restarts, rejects."""
        snapshot = self.io.metrics.snapshot()
        snapshot["restarts"] = sum(h.restarts for h in self._all_handles().values())
        return snapshot

    def restart(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Make an actor fail so its supervisor restarts it (it recovers from its journal)."""
        name, handle = self._handle(args)
        before = handle.restarts
        handle.tell(Crash(f"restart requested by an operator for {name}"))
        return {"actor": name, "restarts_before": before}

    def snapshot(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Snapshot every actor that keeps snapshots (each durable on return); report them.

        `saved` maps each actor that saved a snapshot to its seq (one with
        nothing new since its last snapshot saves none); `durable` is true
        when the store keeps snapshots that survive the process.
        """
        saved = self.snapshot_schedule.take(ASK_TIMEOUT_S) if self.snapshots is not None else {}
        streams = self.journal.streams()
        return {
            "saved": saved,
            "streams": len(streams),
            "records": sum(self.journal.last_seq(s) for s in streams),
            # The stores acknowledge a snapshot once it is stored: `durable` says
            # whether stored means it survives the process (not the memory store).
            "durable": self.snapshots is not None and getattr(self.journal, "durable", False),
        }

    def log_level(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Change the process's log level."""
        level = args.get("level")
        if not isinstance(level, str) or level.upper() not in (
            "DEBUG",
            "INFO",
            "WARNING",
            "ERROR",
            "CRITICAL",
        ):
            raise WorkerError("argument 'level': one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        logging.getLogger().setLevel(level.upper())
        return {"level": level.upper()}


# -- risk ---------------------------------------------------------------------------------------


class RiskWorker(Worker):
    """The risk supervisor on the bus (see the module docstring)."""

    role = "risk"

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        journal: Journal,
        clock: Clock,
        limits: Any,
        starting_equity: Decimal,
    ) -> None:
        self.limits = limits
        self.starting_equity = starting_equity
        super().__init__(settings, journal=journal, clock=clock)
        self.events.subscribe(self._announce)
        # From the market update's timestamp (the quote's own, or the exposure's
        # mark time) to the risk supervisor being told it: the end-to-end hot path.
        self.market_to_risk = BusMetrics(latency_sample=100_000)
        # Senders heard publishing quotes only: a gap of theirs loses no exposure.
        self._quote_senders: set[str] = set()
        self._exposure_senders: set[str] = set()

    def services(self) -> list[str]:
        return ["risk"]

    def prefixes(self) -> list[bytes]:
        if self.settings.risk_reads_market:
            return [PREFIX_EXPOSURE, PREFIX_MARKET]
        return [PREFIX_EXPOSURE]

    def _children(self) -> list[ChildSpec]:
        risk = self.factory.risk(
            limits=self.limits, starting_equity=self.starting_equity, on_started=self.request_resync
        )
        return [ChildSpec("risk", risk.start, restart=RestartType.PERMANENT)]

    def snapshot_targets(self) -> list[ChildHandle]:
        handle = self._all_handles().get("risk")
        return [] if handle is None or handle.state is not HandleState.RUNNING else [handle]

    @property
    def risk(self) -> ChildHandle:
        """The risk supervisor's handle."""
        return self._all_handles()["risk"]

    def request_resync(self) -> None:
        """Ask every positions worker to re-send its exposures (any thread)."""
        command = Command(RESYNC_COMMAND, {}, self.io.new_request_id())
        self.io.publish(risk_topic(RESYNC_EVENT), command)

    def _announce(self, message: Message) -> None:
        # Actor thread: risk events leave through the I/O thread.
        if isinstance(message, RiskEvent):
            self.io.publish(topic_for(message), message)

    def on_events(self, batch: list[Received]) -> None:
        """Exposures and quotes: absolute values, so only the newest per position (per
        symbol) in a batch counts. Exposures are told first (fills change the book),
        then the quotes (the newest marks)."""
        latest: dict[tuple[str, str], ExposureChanged] = {}
        quotes: dict[str, MarketUpdate] = {}
        for received in batch:
            message = received.envelope.message
            if isinstance(message, MarketUpdate):
                quotes[message.symbol] = message
                self._quote_senders.add(received.envelope.sender)
                continue
            if isinstance(message, Command) and message.name == EXPOSURE:
                self._exposure_senders.add(received.envelope.sender)
                try:
                    change = from_command(message)
                except RemoteMessageError as exc:
                    self.io.metrics.count("rejects")
                    logger.warning("bad exposure update dropped", extra={"error": str(exc)})
                    continue
                if not isinstance(change, ExposureChanged):
                    self.io.metrics.count("rejects")
                    continue
                exposure = change.exposure
                latest[(exposure.account, exposure.symbol)] = change
                self.io.metrics.observe_latency_ns(time.time_ns() - received.envelope.ts_ns)
        risk = self.risk
        for change in latest.values():
            self.tell("risk", risk, change)
            mark_ts = change.exposure.mark_ts_ns
            if mark_ts is not None:
                self.market_to_risk.observe_latency_ns(time.time_ns() - mark_ts)
        for update in quotes.values():
            self.tell("risk", risk, update)
            self.market_to_risk.observe_latency_ns(time.time_ns() - update.ts_ns)

    def metrics(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """The worker's metrics plus the market-to-risk latency (market update ts to told)."""
        out = super().metrics(args)
        out["market_to_risk_us"] = self.market_to_risk.snapshot()["latency_us"]
        return out

    def on_gap(self, sender: str, expected: int, got: int) -> None:
        # Lost exposure frames: the positions re-send theirs (they are absolute values).
        # Lost quotes need nothing: the next quote of the symbol is a whole mark.
        if sender in self._quote_senders and sender not in self._exposure_senders:
            self.io.metrics.count("quote_gaps")
            return
        self.request_resync()

    def on_tick(self) -> None:
        self.tell("risk", self.risk, Tick(self.clock.now_ns()))

    def on_command(self, command: Command) -> dict[str, Any]:
        if command.name == "risk.inspect":
            return self.inspect({"actor": "risk"})
        if command.name in (CHECK_ORDER, HALT, RESUME, TICK):
            message = from_command(command)
            if command.name == TICK:
                self.tell("risk", self.risk, message)
                return {}
            answer = self.risk.ask(message, timeout=ASK_TIMEOUT_S)
            if command.name == CHECK_ORDER:
                return decision_result(answer)
            return {"state": str(answer)}
        return super().on_command(command)


# -- gateway ------------------------------------------------------------------------------------


class GatewayWorker(Worker):
    """The gateway of one account on the bus (see the module docstring)."""

    role = "gateway"

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        journal: Journal,
        clock: Clock,
        exchange: ExchangeClient | ReportingExchange,
        symbols: Sequence[str] = (),
    ) -> None:
        self.exchange = exchange
        self.symbols = tuple(symbols)
        super().__init__(settings, journal=journal, clock=clock)
        self.published_stream = f"{PUBLISHED_PREFIX}{self.io.sender}"

    def start(self) -> None:
        """Start as every worker does; a network exchange then feeds the bus its quotes."""
        super().start()
        if isinstance(self.exchange, MarketFeed) and self.symbols:
            # A real exchange is the market: its quotes go to every worker, as the
            # demo feed's do (the simulated exchange is fed by the feed instead).
            self.exchange.subscribe_market(self.symbols, self._publish_market)

    def stop(self) -> None:
        """Stop as every worker does, then close a network exchange's I/O thread."""
        super().stop()
        close = getattr(self.exchange, "close", None)
        if callable(close):
            close()

    def _publish_market(self, update: MarketUpdate) -> None:
        # Not through the execution publisher: its seq must stay the journal's.
        self.io.publish_market(market_topic(update.symbol), update)

    def _halt(self, reason: str) -> None:
        """Reconciliation found what it cannot resolve: halt trading (gateway actor thread)."""
        try:
            RemoteRisk(self.io).ask(Halt(reason, self.clock.now_ns()), timeout=ASK_TIMEOUT_S)
        except PosbusError as exc:
            logger.critical(
                "could not halt the risk worker",
                extra={"worker": self.settings.name, "reason": reason, "error": str(exc)},
            )

    @property
    def service_name(self) -> str:
        return f"gateway.{self.settings.account}"

    def services(self) -> list[str]:
        return [self.service_name]

    def prefixes(self) -> list[bytes]:
        return [PREFIX_MARKET]

    def _children(self) -> list[ChildSpec]:
        gateway = self.factory.gateway(
            account=self.settings.account,
            exchange=self.exchange,
            lookup=self._doorbell,
            halt=self._halt,
        )
        return [ChildSpec(self.service_name, gateway.start, restart=RestartType.PERMANENT)]

    @property
    def gateway(self) -> ChildHandle:
        """The gateway actor's handle."""
        return self._all_handles()[self.service_name]

    def _doorbell(self, stream: str) -> _SignalPublisher:
        return _SignalPublisher(self, stream)

    def publish_signal(self, stream: str, message: Message) -> None:
        """Journal `message` on the published stream, then publish it (I/O thread).

        The journal's sequence number and the publisher's are the same
        number: both count every execution signal of this incarnation.
        """
        _, account, symbol = stream.split("/", 2)
        # The record's envelope names the position stream as its sender, so a
        # replay can route signals that carry no account or symbol (acks, rejects).
        payload = encode(message, seq=0, sender=stream, ts_ns=self.clock.now_ns())
        record = self.journal.append(self.published_stream, payload)
        publisher = self.io.publisher
        assert publisher is not None
        seq = publisher.publish(
            message, topic=execution_topic(account, symbol), ts_ns=time.time_ns()
        )
        if seq != record.seq:  # pragma: no cover - both count the same frames
            logger.error(
                "published seq differs from journal seq",
                extra={"journal_seq": record.seq, "bus_seq": seq},
            )

    def on_events(self, batch: list[Received]) -> None:
        updates = [
            r.envelope.message for r in batch if isinstance(r.envelope.message, MarketUpdate)
        ]
        if updates:
            self.tell(self.service_name, self.gateway, updates)

    def on_command(self, command: Command) -> dict[str, Any]:
        if command.name in (SUBMIT, CANCEL):
            self.tell(self.service_name, self.gateway, from_command(command))
            return {}
        if command.name == "gateway.replay":
            return self.replay(command.args)
        if command.name == "gateway.incarnations":
            return {"incarnations": self.incarnations()}
        if command.name == "gateway.inspect":
            return self.inspect({"actor": self.service_name})
        return super().on_command(command)

    def status(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        out = super().status(args)
        out["published_seq"] = self.journal.last_seq(self.published_stream)
        return out

    def replay(self, args: Mapping[str, CommandArg]) -> dict[str, Any]:
        """Published records after `after` (at most `limit`), hex-encoded envelopes, in order.

        `sender` names the incarnation whose records to read (default: this
        one); the journal keeps every incarnation's ``published/SENDER`` stream.
        """
        after = args.get("after", 0)
        limit = args.get("limit", REPLAY_PAGE)
        if not isinstance(after, int) or after < 0 or not isinstance(limit, int) or limit < 1:
            raise WorkerError("gateway.replay: 'after' >= 0 and 'limit' >= 1 are integers")
        sender = args.get("sender", self.io.sender)
        stream = f"{PUBLISHED_PREFIX}{sender}"
        if not isinstance(sender, str) or (
            stream != self.published_stream and self.journal.last_seq(stream) == 0
        ):
            raise WorkerError(f"gateway.replay: no records of sender {sender!r}")
        records: list[str] = []
        for record in self.journal.read(stream, after):
            if len(records) >= min(limit, REPLAY_PAGE):
                break
            records.append(record.payload.hex())
        return {
            "sender": sender,
            "current": self.io.sender,
            "after": after,
            "last_seq": self.journal.last_seq(stream),
            "records": records,
        }

    def incarnations(self) -> list[dict[str, Any]]:
        """Every incarnation that published, oldest first: its sender and last seq.

        A positions worker applies an earlier incarnation's records it missed
        (published just before that gateway died) before the current one's.
        Order: the journal timestamp of each stream's first record.
        """
        found = []
        for stream in self.journal.streams():
            if not stream.startswith(PUBLISHED_PREFIX):
                continue
            first = next(iter(self.journal.read(stream, 0)), None)
            started = decode(first.payload).ts_ns if first is not None else time.time_ns()
            found.append((started, stream[len(PUBLISHED_PREFIX) :], self.journal.last_seq(stream)))
        if not any(sender == self.io.sender for _, sender, _ in found):
            found.append((time.time_ns(), self.io.sender, 0))
        return [{"sender": sender, "last_seq": last} for _, sender, last in sorted(found)]


class _SignalPublisher:
    """The doorbell the gateway rings for a position in another process (actor thread)."""

    def __init__(self, worker: GatewayWorker, stream: str) -> None:
        self.worker = worker
        self.stream = stream

    def tell(self, message: object) -> None:
        delivered_message = getattr(message, "message", None)
        if delivered_message is None:
            raise TypeError(f"expected a Delivered record, got {type(message).__name__}")
        self.worker.io.call_soon(lambda: self.worker.publish_signal(self.stream, delivered_message))


# -- positions ----------------------------------------------------------------------------------


class PositionsWorker(Worker):
    """The position actors of one shard on the bus (see the module docstring)."""

    role = "positions"

    def __init__(self, settings: WorkerSettings, *, journal: Journal, clock: Clock) -> None:
        if settings.shard is None:
            raise WorkerError("a positions worker needs a shard (I/N)")
        self.shard: Shard = settings.shard
        super().__init__(settings, journal=journal, clock=clock)
        self.remote_risk = RemoteRisk(self.io)
        self.remote_gateway = RemoteGateway(self.io, settings.account, self._not_sent)
        self._spawn_lock = threading.Lock()
        # symbol -> {stream: handle}: market data fans out without a scan of every actor.
        self._by_symbol: dict[str, dict[str, ChildHandle]] = {}
        # stream -> the current incarnation's conflated market mailbox entry.
        self._quote_slots: dict[str, QuoteSlot] = {}
        self._last_market: dict[str, MarketUpdate] = {}
        # Per gateway sender: the last execution-signal seq applied (control thread).
        self.applied: dict[str, int] = {}
        self.recovered: dict[str, Any] = {"state": "pending"}
        self.gaps_repaired = 0
        self.gaps_unrepaired = 0
        # Corrupt streams whose halt the risk worker has not confirmed yet.
        self._halts_pending: dict[str, JournalCorrupt] = {}
        self._halts_lock = threading.Lock()

    def services(self) -> list[str]:
        return [self.shard.service]

    def prefixes(self) -> list[bytes]:
        account = self.settings.account
        return [
            PREFIX_MARKET,
            PREFIX_EXECUTION + account.encode() + b"|",
            risk_topic(RESYNC_EVENT),
        ]

    def _children(self) -> list[ChildSpec]:
        return [Supervisor.spec("positions", [], policy=self.settings.policy)]

    def start(self) -> None:
        # How far each gateway incarnation was applied here is known before the
        # bus starts: a signal that arrives first must not be taken for news
        # from an unknown sender, which would fetch (and journal again)
        # everything every incarnation ever published.
        owned = []
        for stream in self.journal.streams():
            if stream.startswith("position/"):
                _, account, symbol = stream.split("/", 2)
                if self.shard.owns(account, symbol):
                    owned.append((account, symbol))
            elif stream.startswith(APPLIED_PREFIX):
                records = list(self.journal.read(stream, max(0, self.journal.last_seq(stream) - 1)))
                if records:
                    message = decode(records[-1].payload).message
                    seq = message.args.get("seq") if isinstance(message, Command) else None
                    if isinstance(seq, int):
                        self.applied[stream[len(APPLIED_PREFIX) :]] = seq
        super().start()
        # Journaled positions recover (replay) now; what the gateway published
        # since then comes with the Clone fetch in `recover`.
        self.positions(owned)

    def after_start(self) -> None:
        # Clone pattern: subscribed already; now fetch the gateway's records.
        self.io.control(self.recover)

    # -- positions ----------------------------------------------------------------------------

    def position(self, account: str, symbol: str) -> ChildHandle:
        """The handle of the position actor of account+symbol (started if needed; any thread)."""
        if not self.shard.owns(account, symbol):
            raise WorkerError(
                f"{account}/{symbol} belongs to another positions shard than {self.shard}"
            )
        stream = position_stream(account, symbol)
        with self._handles_lock:  # a lookup, not a copy: O(1) with 10,000 actors
            handle = self.handles.get(stream)
        if handle is not None and handle.state is not HandleState.TERMINATED:
            return handle
        with self._spawn_lock:
            with self._handles_lock:
                handle = self.handles.get(stream)
            if handle is not None and handle.state is not HandleState.TERMINATED:
                return handle
            spec = self._position_spec(account, symbol)
            supervisor = self._positions_supervisor()
            started: ChildHandle = supervisor.ask(StartChild(spec), timeout=ASK_TIMEOUT_S)
            self._register(symbol, stream, started)
            return started

    def positions(self, pairs: Iterable[tuple[str, str]]) -> list[ChildHandle]:
        """The handles of many position actors, the missing ones started together (any thread).

        As `position` for each (account, symbol), in order, but pipelined:
        every start request reaches the positions supervisor before the first
        answer is awaited, so the caller's round trip to the supervisor is
        paid once rather than once per actor (a worker restarting with
        10,000 journaled positions). Each start is still synchronous in the
        supervisor (OTP): every returned handle's actor has run its
        `on_start`, or failed it and is being restarted.
        """
        pairs = list(pairs)
        for account, symbol in pairs:
            if not self.shard.owns(account, symbol):
                raise WorkerError(
                    f"{account}/{symbol} belongs to another positions shard than {self.shard}"
                )
        with self._spawn_lock:
            supervisor = self._positions_supervisor().ref
            if supervisor is None:
                raise WorkerError(f"{self.settings.name}: the positions supervisor is restarting")
            pending = []
            for account, symbol in pairs:
                stream = position_stream(account, symbol)
                with self._handles_lock:
                    handle = self.handles.get(stream)
                if handle is None or handle.state is HandleState.TERMINATED:
                    spec = self._position_spec(account, symbol)
                    pending.append((symbol, stream, supervisor.ask(StartChild(spec), block=False)))
            for symbol, stream, future in pending:
                # Each answer comes at most one start after the one before it.
                self._register(symbol, stream, future.get(timeout=ASK_TIMEOUT_S))
        return [self.position(account, symbol) for account, symbol in pairs]

    def _positions_supervisor(self) -> ChildHandle:
        # Known before the bus starts: a signal may start a position at once.
        with self._handles_lock:
            return self.handles["positions"]

    def _register(self, symbol: str, stream: str, handle: ChildHandle) -> None:
        with self._handles_lock:
            self.handles[stream] = handle
            self._by_symbol.setdefault(symbol, {})[stream] = handle

    def _position_spec(self, account: str, symbol: str) -> ChildSpec:
        """The child spec of a position actor (caller holds the spawn lock)."""
        stream = position_stream(account, symbol)

        def start(link: Any) -> Any:
            # A fresh slot per incarnation: one told to a mailbox that died
            # with its actor would otherwise stay full, and never be told again.
            self._quote_slots[stream] = QuoteSlot()
            recipe = self.factory.position(
                account,
                symbol,
                risk=self.remote_risk,
                gateway=self.remote_gateway,
                last_market=self._last_market.get(symbol),
            )
            return recipe.start(link)

        return ChildSpec(stream, start, restart=RestartType.TRANSIENT)

    def position_handles(self) -> dict[str, ChildHandle]:
        """Every position actor's handle, by stream."""
        return {k: v for k, v in self._all_handles().items() if k.startswith("position/")}

    def snapshot_targets(self) -> list[ChildHandle]:
        return [h for h in self.position_handles().values() if h.state is HandleState.RUNNING]

    # -- corrupt streams ------------------------------------------------------------------------

    def on_corrupt(self, stream: str, error: JournalCorrupt) -> None:
        """A position's stream is corrupt (its thread): halt the account through the risk worker.

        The position stays down (the factory starts it no more); the halt is
        journaled by the risk worker and survives restarts. Asked from the
        control thread, and asked again every tick until the risk worker answers.
        """
        logger.critical(
            "journal corrupt: halting the account",
            extra={"worker": self.settings.name, "stream": stream, "seq": error.seq},
        )
        self.io.metrics.count("corrupt_streams")
        with self._halts_lock:
            self._halts_pending[stream] = error
        self.io.control(self._send_halts)

    def on_tick(self) -> None:
        with self._halts_lock:
            pending = bool(self._halts_pending)
        if pending:
            self.io.control(self._send_halts)

    def _send_halts(self) -> None:
        """Ask the risk worker to halt for each unconfirmed corrupt stream (control thread)."""
        with self._halts_lock:
            pending = dict(self._halts_pending)
        for stream, error in pending.items():
            try:
                self.remote_risk.ask(
                    Halt(f"journal corrupt: {error}", self.clock.now_ns()), timeout=ASK_TIMEOUT_S
                )
            except PosbusError as exc:
                logger.error(
                    "halt for a corrupt journal not confirmed yet; asked again next tick",
                    extra={"stream": stream, "error": str(exc)},
                )
                return
            with self._halts_lock:
                self._halts_pending.pop(stream, None)

    def _refuse_corrupt(self, stream: str) -> None:
        error = self.factory.corrupt_streams().get(stream)
        if error is not None:
            raise WorkerError(
                f"{stream} is down: {error}; the account is halted until the journal is repaired"
            )

    def _not_sent(self, submit: SubmitOrder, reason: str) -> None:
        """No submit of an order reached the gateway: the order is rejected (any thread)."""
        self.io.control(partial(self._reject_unsent, submit, reason))

    def _reject_unsent(self, submit: SubmitOrder, reason: str) -> None:
        # Journaled on the position's stream like any exchange answer: the order
        # ends Rejected rather than waiting for an ack that cannot come.
        _, account, symbol = submit.stream.split("/", 2)
        self.io.metrics.count("orders_not_sent")
        logger.warning(
            "order never reached the gateway; rejected",
            extra={"order_id": submit.order_id, "stream": submit.stream, "reason": reason},
        )
        rejected = OrderRejected(
            order_id=submit.order_id,
            reason=f"not sent: gateway unreachable ({reason})",
            ts_ns=self.clock.now_ns(),
        )
        self.outbox.deliver(submit.stream, rejected, self.position(account, symbol))

    # -- events (I/O thread) ---------------------------------------------------------------------

    def on_events(self, batch: list[Received]) -> None:
        slots = self._quote_slots
        superseded = 0
        for received in batch:
            message = received.envelope.message
            topic = received.topic
            if isinstance(message, MarketUpdate):
                self._last_market[message.symbol] = message
                for stream, handle in self._running_of(message.symbol):
                    slot = slots.get(stream)
                    if slot is None:
                        self.tell(stream, handle, message)
                    elif slot.put(message):
                        # At most one market message in an actor's mailbox: a
                        # busy actor takes the newest quote when it gets there.
                        self.tell(stream, handle, slot)
                    else:
                        superseded += 1
            elif topic.startswith(PREFIX_EXECUTION):
                # May start a position actor, which may ask the risk supervisor
                # through this very I/O thread: the control thread applies it.
                self.io.control(partial(self._on_signal, received))
            elif isinstance(message, Command) and message.name == RESYNC_COMMAND:
                for stream, handle in self.position_handles().items():
                    if handle.state is HandleState.RUNNING:
                        self.tell(stream, handle, Resync())
        if superseded:
            self.io.metrics.count("conflated_in_mailbox", superseded)

    def _running_of(self, symbol: str) -> list[tuple[str, ChildHandle]]:
        with self._handles_lock:
            handles = list(self._by_symbol.get(symbol, {}).items())
        return [(s, h) for s, h in handles if h.state is HandleState.RUNNING]

    def _on_signal(self, received: Received) -> None:
        envelope = received.envelope
        sender, seq = envelope.sender, envelope.seq
        last = self.applied.get(sender)
        if last is None:
            # A sender we have not heard from: only the gateway's current
            # incarnation (asked on the command path) may move positions.
            if not self._is_gateway(sender):
                self._refuse_signal(sender, seq, "not the gateway's publisher")
                return
            # A new gateway incarnation: what its predecessors published last
            # may never have arrived (the gateway died, the broker with it).
            try:
                self._catch_up(sender)
            except PosbusError as exc:
                self.gaps_unrepaired += 1
                self._refuse_signal(sender, seq, f"earlier incarnations not fetched: {exc}")
                return
            # Everything it published before this frame may matter (fills of our positions).
            last = 0
        if seq <= last:
            self.io.metrics.count("stale_signals")
            return
        if seq > last + 1:
            # The gateway's journal is the authority: repair up to and including
            # this seq from it; a frame the journal does not hold is not applied.
            if not self._repair(sender, last, seq):
                self.gaps_unrepaired += 1
                if self.applied.get(sender, 0) < seq:
                    self._refuse_signal(sender, seq, "seq not in the gateway's journal")
            return
        self._apply_signal(received.topic, envelope.message)
        self._mark_applied(sender, seq)

    def _is_gateway(self, sender: str) -> bool:
        """True when `sender` is the publisher name of the account's gateway (control thread)."""
        try:
            current = self._gateway_call("gateway.replay", {"after": 0, "limit": 1})["current"]
        except (PosbusError, KeyError):
            return False
        return bool(current == sender)

    def _catch_up(self, current: str | None) -> str:
        """Apply what every earlier gateway incarnation published and was not applied here.

        Returns the current incarnation's sender (control thread). `current`
        (when known) is left to the caller: its records are live.
        """
        incarnations = self._gateway_call("gateway.incarnations", {})["incarnations"]
        if not isinstance(incarnations, list) or not incarnations:
            raise WorkerError("gateway.incarnations gave no incarnation")
        latest = str(incarnations[-1]["sender"])
        for incarnation in incarnations:
            sender, last_seq = str(incarnation["sender"]), int(incarnation["last_seq"])
            if sender in (current, latest):
                continue
            after = self.applied.get(sender, 0)
            if after < last_seq:
                self._mark_applied(sender, self._fetch(sender, after, last_seq))
        return latest

    def _refuse_signal(self, sender: str, seq: int, why: str) -> None:
        """Drop an unverified execution signal: counted, logged, and the subscriber rewound."""
        self.io.metrics.count("forged_signals")
        logger.warning(
            "execution signal refused", extra={"sender": sender, "seq": seq, "reason": why}
        )
        subscriber = self.io.subscriber
        if subscriber is not None:
            applied = self.applied.get(sender, 0)
            self.io.call_soon(lambda: subscriber.rewind(sender, applied))

    def _mark_applied(self, sender: str, seq: int) -> None:
        if seq <= self.applied.get(sender, 0):
            return
        self.applied[sender] = seq
        # Journaled after the signal: a crash in between re-applies one signal,
        # which the position ignores (known trade id, acked order).
        marker = Command("positions.applied", {"seq": seq}, f"applied-{seq}")
        self.journal.append(
            APPLIED_PREFIX + sender, encode(marker, seq=0, sender=self.settings.name, ts_ns=0)
        )

    def _apply_signal(self, topic: bytes, message: Message) -> None:
        parts = topic.split(b"|")
        if len(parts) < 3:
            self.io.metrics.count("rejects")
            return
        account, symbol = parts[1].decode(), parts[2].decode()
        if not self.shard.owns(account, symbol):
            return
        stream = position_stream(account, symbol)
        if stream in self.factory.corrupt_streams():
            # Kept for the operator's repair: journaled, told to no one.
            self.outbox.deliver(stream, message, None)
            self.io.metrics.count("signals_held_for_corrupt_streams")
            return
        handle = self.position(account, symbol)
        self._last_told[stream] = time.time_ns()
        # Write-ahead on the receiving side: journaled here before the position hears of it.
        self.outbox.deliver(stream, message, handle)
        self.io.metrics.count_in("execution_signal.applied")

    def _repair(self, sender: str, after: int, upto: int) -> bool:
        """Fetch and apply the gateway's records after..upto (control thread); False if not."""
        logger.warning(
            "execution signal gap; repairing from the gateway",
            extra={"sender": sender, "after": after, "upto": upto},
        )
        try:
            applied = self._fetch(sender, after, upto)
        except PosbusError as exc:
            logger.error(
                "gap not repaired: the gateway did not answer",
                extra={"sender": sender, "after": after, "upto": upto, "error": str(exc)},
            )
            self.io.metrics.count("gaps_unrepaired")
            return False
        self.gaps_repaired += 1
        self.io.metrics.count("gaps_repaired")
        self._mark_applied(sender, applied)
        return applied >= upto

    def _fetch(self, sender: str, after: int, upto: int | None) -> int:
        """Apply `sender`'s published records after `after` (to `upto`); returns the last seq."""
        position = after
        while upto is None or position < upto:
            page: dict[str, CommandArg] = {
                "sender": sender,
                "after": position,
                "limit": REPLAY_PAGE,
            }
            records = self._gateway_call("gateway.replay", page).get("records", [])
            if not isinstance(records, list) or not records:
                break
            for raw in records:
                if upto is not None and position >= upto:
                    # Later records are the live path's: counting them applied
                    # here would make their live copies stale, and drop them.
                    break
                position += 1
                try:
                    envelope = decode(bytes.fromhex(str(raw)))
                    _, account, symbol = envelope.sender.split("/", 2)
                except (WireError, ValueError):
                    self.io.metrics.count("decode_errors")
                    continue
                self._apply_signal(execution_topic(account, symbol), envelope.message)
        return position

    def _gateway_call(self, name: str, args: dict[str, CommandArg]) -> dict[str, Any]:
        """One read-only command to the account's gateway (control thread).

        A read changes nothing, so it is retried (for REPAIR_TIMEOUT_S) when
        the bus is not connected yet, the gateway is restarting or no answer came.
        """
        service = f"gateway.{self.settings.account}"
        deadline = time.monotonic() + REPAIR_TIMEOUT_S
        while True:
            command = Command(name, dict(args), self.io.new_request_id())
            try:
                reply = self.io.request(service, command, REPAIR_TIMEOUT_S)
            except (BrokerUnavailable, UnknownOutcome):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
                continue
            if reply.ok:
                return reply.result
            assert reply.error is not None
            # Right after a broker restart the gateway has not registered with
            # the new broker yet: its "unknown service" passes like a transient error.
            retry = reply.error["transient"] or reply.error["type"] == "UnknownService"
            if not retry or time.monotonic() >= deadline:
                raise WorkerError(f"{name} failed: {reply.error['message']}")
            time.sleep(0.05)

    def recover(self) -> None:
        """Clone start-up: apply everything the gateway published (control thread)."""
        try:
            sender = self._catch_up(None)
            last = self._fetch(sender, self.applied.get(sender, 0), None)
        except PosbusError as exc:
            self.recovered = {"state": "failed", "error": str(exc)}
            logger.error(
                "positions not recovered from the gateway; gap reported",
                extra={"worker": self.settings.name, "error": str(exc)},
            )
            self.io.metrics.count("recovery_failed")
            return
        self._mark_applied(sender, last)
        subscriber = self.io.subscriber
        if subscriber is not None:
            # .get: a gateway that has published nothing yet leaves no applied mark.
            floor = self.applied.get(sender, 0)
            self.io.call_soon(lambda: subscriber.set_floor(sender, floor))
        self.recovered = {
            "state": "done",
            "sender": sender,
            "seq": self.applied.get(sender, 0),
            "positions": len(self.position_handles()),
        }
        logger.info("positions recovered from the gateway", extra=self.recovered)

    # -- commands (control thread) -----------------------------------------------------------------

    def on_command(self, command: Command) -> dict[str, Any]:
        args = command.args
        if command.name == "positions.order":
            return self.order(args)
        if command.name == "positions.cancel":
            return self.cancel(args)
        if command.name == "positions.list":
            return self.list_positions(args)
        if command.name == "positions.orders":
            return self.orders(args)
        if command.name == "positions.inspect":
            return self.inspect(args)
        return super().on_command(command)

    def order(self, args: Mapping[str, CommandArg]) -> dict[str, Any]:
        """Journal an OrderIntent on its position's stream and hand it over; reply its order id."""
        account = _arg_text(args, "account", self.settings.account)
        symbol = _arg_text(args, "symbol")
        side_text = _arg_text(args, "side")
        side = Side.BUY if side_text == "buy" else Side.SELL if side_text == "sell" else None
        if side is None:
            raise OrderValidationError(f"side must be buy or sell, got {side_text!r}")
        reduce_only = args.get("reduce_only") is True
        try:
            # The wire's decimal grammar: no spaces, exponents, signs or NaN.
            qty = parse_decimal(_arg_text(args, "qty"), "qty")
            limit = parse_optional_decimal(args.get("limit_price"), "limit_price")
            intent = OrderIntent(
                account=account,
                symbol=symbol,
                side=side,
                qty=qty,
                limit_price=limit,
                intent_id=_arg_text(args, "intent_id", f"cli-{time.time_ns()}"),
                reduce_only=reduce_only,
                reason=_arg_text(args, "reason", "command"),
                ts_ns=self.clock.now_ns(),
            )
        except (ArithmeticError, ValueError) as exc:
            raise OrderValidationError(f"invalid order: {exc}", symbol=symbol) from exc
        stream = position_stream(account, symbol)
        self._refuse_corrupt(stream)
        handle = self.position(account, symbol)
        self._last_told[stream] = time.time_ns()
        delivered = self.outbox.deliver(stream, intent, handle)
        return {
            "order_id": f"{account}:{symbol}:{delivered.seq}",
            "stream": stream,
            "seq": delivered.seq,
        }

    def cancel(self, args: Mapping[str, CommandArg]) -> dict[str, Any]:
        """Journal a cancel of order ACCOUNT:SYMBOL:SEQ and hand it to its position."""
        order_id = _arg_text(args, "order_id")
        parts = order_id.rsplit(":", 1)[0].split(":", 1)
        if len(parts) != 2:
            raise OrderValidationError(f"order id {order_id!r} is not ACCOUNT:SYMBOL:SEQ")
        account, symbol = parts
        stream = position_stream(account, symbol)
        if stream not in self.position_handles():
            raise OrderValidationError(f"unknown order {order_id!r}", order_id=order_id)
        self._refuse_corrupt(stream)
        request = CancelRequest(order_id=order_id, ts_ns=self.clock.now_ns())
        delivered = self.outbox.deliver(stream, request, self.position(account, symbol))
        return {"order_id": order_id, "stream": stream, "seq": delivered.seq}

    def list_positions(self, args: Mapping[str, CommandArg]) -> dict[str, Any]:
        """One page of the shard's positions, by stream: those after `after`, at most `limit`.

        `next` is the stream to pass as `after` for the next page (None after
        the last): a shard of 10,000 positions does not fit one reply.
        """
        after = args.get("after")
        if after is not None and not isinstance(after, str):
            raise WorkerError("argument 'after' must be a position stream")
        limit = args.get("limit", POSITIONS_PAGE)
        if not isinstance(limit, int) or not 1 <= limit <= POSITIONS_PAGE:
            raise WorkerError(f"argument 'limit' must be an integer in 1..{POSITIONS_PAGE}")
        streams = [s for s in sorted(self.position_handles()) if after is None or s > after]
        page = streams[:limit]
        return {
            "positions": [self._summary(s) for s in self._states(page)],
            "next": page[-1] if len(streams) > limit else None,
        }

    def _states(self, streams: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The inspect state of the positions of `streams` (default: all), in stream order."""
        handles = self.position_handles()
        wanted = sorted(handles) if streams is None else streams
        corrupt = self.factory.corrupt_streams()
        states = []
        for stream in wanted:
            handle = handles[stream]
            _, account, symbol = stream.split("/", 2)
            if stream in corrupt:
                states.append(
                    {
                        "account": account,
                        "symbol": symbol,
                        "status": "Corrupt",
                        "error": str(corrupt[stream]),
                    }
                )
            elif handle.state is HandleState.RUNNING:
                states.append(handle.ask(Inspect(), timeout=ASK_TIMEOUT_S))
            else:
                states.append(
                    PositionActor.recovered_state(self.outbox, account, symbol, self.snapshots)
                )
        return states

    @staticmethod
    def _summary(state: dict[str, Any]) -> dict[str, Any]:
        return {
            key: state.get(key)
            for key in (
                "account",
                "symbol",
                "status",
                "qty",
                "avg_entry_price",
                "realized_pnl",
                "unrealized_pnl",
                "fees",
                "mark",
            )
        } | {
            "orders": len(state.get("orders", {})),
            "fills": len(state.get("trade_ids", [])),
            # Only a position whose journal stream is corrupt has one.
            **({"error": state["error"]} if "error" in state else {}),
        }

    def orders(self, args: Mapping[str, CommandArg]) -> dict[str, Any]:
        """The shard's orders, filtered, the newest `limit` of them (oldest first).

        Arguments (all optional): `status` (a list of order states to keep),
        `symbol`, `limit` (default ORDERS_LIMIT, at most ORDERS_LIMIT_MAX: a
        reply must stay within the message size limit however long the stack
        has run). Result: `orders`, `total` (orders that matched) and
        `truncated` (True when older matches were left out).
        """
        statuses = args.get("status")
        if statuses is not None and not isinstance(statuses, list):
            raise WorkerError("argument 'status' must be a list of order states")
        symbol = args.get("symbol")
        if symbol is not None and not isinstance(symbol, str):
            raise WorkerError("argument 'symbol' must be a string")
        limit = args.get("limit", ORDERS_LIMIT)
        if not isinstance(limit, int) or not 1 <= limit <= ORDERS_LIMIT_MAX:
            raise WorkerError(f"argument 'limit' must be an integer in 1..{ORDERS_LIMIT_MAX}")
        found = [
            order
            for state in self._states()
            if symbol is None or state.get("symbol") == symbol
            for order in state.get("orders", {}).values()
            if statuses is None or order.get("status") in statuses
        ]
        found.sort(key=lambda o: (int(o.get("created_ts_ns") or 0), str(o.get("order_id"))))
        kept = found[-limit:]
        return {
            "orders": [_json_ready(dict(o)) for o in kept],
            "total": len(found),
            "truncated": len(kept) < len(found),
        }

    def status(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        out = super().status(args)
        out["recovered"] = _json_ready(dict(self.recovered))
        out["gaps_repaired"] = self.gaps_repaired
        out["gaps_unrepaired"] = self.gaps_unrepaired
        # With the gateway's published_seq, the journal lag a metrics scrape shows.
        out["applied_seq"] = dict(self.applied)
        out["positions"] = len(self.position_handles())
        return out


def _arg_text(args: Mapping[str, CommandArg], key: str, default: str | None = None) -> str:
    value = args.get(key, default)
    if not isinstance(value, str) or not value:
        raise WorkerError(f"argument {key!r} (a non-empty string) is required")
    return value


def _json_ready(value: Any) -> Any:
    """`value` with floats turned into decimal strings and tuples into lists (Reply results)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_ready(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


Factory = Callable[[], Worker]
