"""The base of every worker: the actors of one role in one process, on the bus.

`Worker` hosts one role under its own root supervisor (risk_worker,
gateway_worker, positions_worker) and reaches the other roles through the
bus; it owns the I/O thread (WorkerIO), the admin handlers, snapshots and the
lifecycle. The I/O thread must never wait for an actor: what may wait runs on
the control thread.

Threads: the actors' own pykka threads, the I/O thread (every bus socket;
event and tick hooks), the control thread (commands), the admin thread (admin
handlers) and the caller's (start/stop). The root supervisor escalating sets
`escalated`; the process then exits non-zero. Design: docs/architecture.md,
"Workers".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from posbus.actors.control import Crash, Inspect
from posbus.actors.delivery import Outbox
from posbus.actors.events import EventLog
from posbus.actors.factory import ActorFactory, ExposureSettings
from posbus.actors.journal import Journal, JournalCorrupt, SnapshotStore
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.instrument_steps import InstrumentSteps
from posbus.actors.risk_schema import RESYNC
from posbus.actors.sharding import Shard
from posbus.actors.snapshot_schedule import SnapshotSchedule
from posbus.actors.supervision.child_spec import ChildSpec
from posbus.actors.supervision.errors import RestartIntensityExceeded
from posbus.actors.supervision.handle import ChildHandle
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.actors.supervision.supervisor import Supervisor
from posbus.actors.symbol_info import SymbolInfo
from posbus.actors.worker_io import IOConfig, WorkerIO
from posbus.bus.admin import AdminHandler
from posbus.bus.admin_schema import INSPECT, LOG_LEVEL
from posbus.bus.command_schema import Dispatcher, Route, ServiceSchema
from posbus.bus.curve import CurveClient, CurveServer
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.heartbeat import HeartbeatConfig
from posbus.bus.messages import Command, CommandArg
from posbus.bus.service_worker import Request
from posbus.bus.sockets import SocketOptions
from posbus.bus.subscriber import Received

logger = logging.getLogger(__name__)

ASK_TIMEOUT_S = 5.0
RESYNC_EVENT = "resync"
RESYNC_COMMAND = RESYNC
# Default mark-only exposure conflation of flat positions in a positions worker:
# well below the risk supervisor's stale_after_s, and a flat position's own
# order always tells its newest mark first.
FLAT_EXPOSURE_INTERVAL_NS = 1_000_000_000


class WorkerError(PosbusError):
    """A worker request that cannot be served (unknown actor, shard mismatch, a corrupt stream)."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything a worker needs besides its journal and clock."""

    name: str
    role: str
    run_dir: Path
    endpoints: BusEndpoints
    admin_endpoint: str
    #: A gateway's account; elsewhere the stack's first account.
    account: str
    policy: SupervisorPolicy
    symbols: Mapping[str, SymbolInfo] = field(default_factory=dict)
    #: Per account, its venue's price tick and quantity step when known here (a
    #: simulated venue's); an account on ccxt, whose markets its gateway holds, has none.
    steps: Mapping[str, InstrumentSteps] = field(default_factory=dict)
    #: Every account of the stack, in the configuration's order; empty: `account` alone.
    accounts: tuple[str, ...] = ()
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
    #: Entering CoolDown or Halted cancels the positions' risk-adding working
    #: orders (`[risk] cancel_risk_adding_orders`).
    cancel_risk_adding_orders: bool = True

    def stack_accounts(self) -> tuple[str, ...]:
        """Every account of the stack, the first one first."""
        return self.accounts or (self.account,)

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
    subscriptions, and handle events (I/O thread) and commands (control thread):
    `schema` declares the commands, `routes` binds each to its handler.
    """

    role = "worker"
    #: The commands this role's services answer (None: it answers none).
    schema: ServiceSchema | None = None

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
            cancel_risk_adding_orders=settings.cancel_risk_adding_orders,
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
        self._dispatcher: Dispatcher | None = None
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

    def routes(self) -> list[Route]:
        """Each command of `schema` bound to its handler (asked once, on the first command)."""
        return []

    def on_command(self, command: Command) -> dict[str, Any]:
        """Answer one command of this worker's services (control thread).

        An undeclared command (UnknownCommand) or arguments its declaration
        refuses (InvalidArgument) are refused before any handler runs.
        """
        if self._dispatcher is None:
            if self.schema is None:
                raise WorkerError(f"{self.settings.name} answers no commands")
            self._dispatcher = Dispatcher(self.schema, self.routes())
        return self._dispatcher(command)

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
        name = INSPECT.parse(args).actor
        handle = self._all_handles().get(name)
        if handle is None:
            raise WorkerError(f"no actor named {name!r} in {self.settings.name}")
        return name, handle

    def inspect(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """The full state of one actor, as JSON-ready values."""
        _, handle = self._handle(args)
        state: dict[str, Any] = json_ready(handle.ask(Inspect(), timeout=ASK_TIMEOUT_S))
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
        level = LOG_LEVEL.parse(args).level.upper()
        logging.getLogger().setLevel(level)
        return {"level": level}


def json_ready(value: Any) -> Any:
    """`value` with floats turned into decimal strings and tuples into lists (Reply results)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


Factory = Callable[[], Worker]
