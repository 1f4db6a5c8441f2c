"""The risk role on the bus: the RiskSupervisor as service "risk".

Hears exposures on ``xp|`` (and quotes on ``md|`` when it reads marks
itself), publishes risk events on ``rk|EVENT|`` and asks the positions to
re-send their exposures (``rk|resync|``) when it starts or misses exposure
frames. It must never wait for an actor on the I/O thread.

Threads: the I/O thread (`on_events`, `on_gap`, `on_tick`: tells only), the
control thread (`on_command`: asks), the risk actor's thread (`_announce`),
the admin thread (`metrics`).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from posbus.actors import risk_schema
from posbus.actors.control import ExposureChanged, Tick
from posbus.actors.journal import Journal
from posbus.actors.model.clock import Clock
from posbus.actors.remote import (
    RemoteMessageError,
    check_order,
    decision_result,
    from_command,
    halt,
    resume,
    tick,
)
from posbus.actors.supervision.child_spec import ChildSpec
from posbus.actors.supervision.handle import ChildHandle, HandleState
from posbus.actors.supervision.restart_type import RestartType
from posbus.actors.worker import ASK_TIMEOUT_S, RESYNC_COMMAND, RESYNC_EVENT, Worker, WorkerSettings
from posbus.bus.command_schema import Route
from posbus.bus.messages import Command, CommandArg, MarketUpdate, Message, RiskEvent
from posbus.bus.metrics import BusMetrics
from posbus.bus.subscriber import Received
from posbus.bus.topics import PREFIX_EXPOSURE, PREFIX_MARKET, risk_topic, topic_for

logger = logging.getLogger(__name__)


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
            if isinstance(message, Command) and message.name == risk_schema.EXPOSURE:
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

    schema = risk_schema.RISK

    def routes(self) -> list[Route]:
        return [
            risk_schema.CHECK.route(lambda args: decision_result(self._ask(check_order(args)))),
            risk_schema.HALT_SPEC.route(lambda args: {"state": str(self._ask(halt(args)))}),
            risk_schema.RESUME_SPEC.route(lambda args: {"state": str(self._ask(resume(args)))}),
            risk_schema.TICK_SPEC.route(self._tick_command),
            risk_schema.INSPECT_SPEC.route(lambda args: self.inspect({"actor": "risk"})),
        ]

    def _ask(self, message: object) -> Any:
        return self.risk.ask(message, timeout=ASK_TIMEOUT_S)

    def _tick_command(self, args: risk_schema.TimeArgs) -> dict[str, Any]:
        self.tell("risk", self.risk, tick(args))
        return {}
