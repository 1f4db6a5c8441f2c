"""The risk role on the bus: the risk supervisors (`risk_scope`) as service "risk".

Hears exposures on ``xp|`` (and quotes on ``md|`` when it reads marks
itself), publishes risk events on ``rk|EVENT|`` and asks the positions to
re-send their exposures (``rk|resync|``) when it starts or misses exposure
frames. It must never wait for an actor on the I/O thread.

With several accounts it runs a supervisor per account and, with firm-wide
limits, the firm's: each exposure and mark reaches the account's and the
firm's, and an order is approved only when both approve it (the account's
first; a refusal there spares the firm's check). An account's halt stops
that account; a halt without an account stops the firm, so every account.

Threads: the I/O thread (`on_events`, `on_gap`, `on_tick`: tells only), the
control thread (`on_command`: asks), the risk actor's thread (`_announce`),
the admin thread (`metrics`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from posbus.actors import risk_schema
from posbus.actors.control import ExposureChanged, Tick
from posbus.actors.journal import Journal
from posbus.actors.model.clock import Clock
from posbus.actors.model.risk import RiskDecision, RiskState
from posbus.actors.remote import (
    RemoteMessageError,
    check_order,
    decision_result,
    from_command,
    halt,
    resume,
    tick,
)
from posbus.actors.risk_scope import RiskScope
from posbus.actors.risk_supervisor import RISK_STREAM
from posbus.actors.supervision.child_spec import ChildSpec
from posbus.actors.supervision.handle import ChildHandle, HandleState
from posbus.actors.supervision.restart_type import RestartType
from posbus.actors.worker import ASK_TIMEOUT_S, RESYNC_COMMAND, RESYNC_EVENT, Worker, WorkerSettings
from posbus.bus.command_schema import Route
from posbus.bus.errors import InvalidArgument
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
        limits: Any = None,
        starting_equity: Decimal | None = None,
        scopes: Sequence[RiskScope] | None = None,
        reporting_currency: str | None = None,
    ) -> None:
        """`scopes` (see risk_scope), or the one scope of `limits` and `starting_equity`.

        `reporting_currency`: the currency risk counts in (the settings' symbols
        quoted in another are converted); None: every symbol as quoted.
        """
        self.reporting_currency = reporting_currency
        if scopes is None:
            if limits is None or starting_equity is None:
                raise ValueError("a risk worker needs scopes, or limits and starting_equity")
            scopes = [RiskScope(None, limits, starting_equity)]
        self.scopes = {scope.name: scope for scope in scopes}
        self.accounts = {s.account: s.name for s in scopes if s.account is not None}
        self.firm = RISK_STREAM if RISK_STREAM in self.scopes else None
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
        specs = []
        for scope in self.scopes.values():
            recipe = self.factory.risk(
                limits=scope.limits,
                starting_equity=scope.starting_equity,
                on_started=self.request_resync,
                scope=scope.account,
                reporting_currency=self.reporting_currency,
                symbols=tuple(self.settings.symbols),
            )
            specs.append(ChildSpec(scope.name, recipe.start, restart=RestartType.PERMANENT))
        return specs

    def snapshot_targets(self) -> list[ChildHandle]:
        handles = self._all_handles()
        return [
            handle
            for name in self.scopes
            if (handle := handles.get(name)) is not None and handle.state is HandleState.RUNNING
        ]

    @property
    def risk(self) -> ChildHandle:
        """The stack's risk supervisor (firm-wide; with one account, that account's)."""
        return self._all_handles()[self.firm or next(iter(self.scopes))]

    def judges(self, account: str) -> list[str]:
        """The supervisors that judge `account`'s orders, in order; [] for an unknown account."""
        if not self.accounts:
            return [RISK_STREAM]
        own = self.accounts.get(account)
        if own is None:
            return []
        return [own] if self.firm is None else [own, self.firm]

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
        handles = self._all_handles()
        for change in latest.values():
            judges = self.judges(change.exposure.account)
            if not judges:
                self.io.metrics.count("unknown_accounts")
                continue
            for name in judges:
                self.tell(name, handles[name], change)
            mark_ts = change.exposure.mark_ts_ns
            if mark_ts is not None:
                self.market_to_risk.observe_latency_ns(time.time_ns() - mark_ts)
        for update in quotes.values():
            for name in self.scopes:
                self.tell(name, handles[name], update)
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
        self._tell_all(Tick(self.clock.now_ns()))

    def _tell_all(self, message: object) -> None:
        handles = self._all_handles()
        for name in self.scopes:
            self.tell(name, handles[name], message)

    schema = risk_schema.RISK

    def routes(self) -> list[Route]:
        return [
            risk_schema.CHECK.route(self._check),
            risk_schema.HALT_SPEC.route(
                lambda args: self._switch(risk_schema.HALT, halt(args), args.account)
            ),
            risk_schema.RESUME_SPEC.route(
                lambda args: self._switch(risk_schema.RESUME, resume(args), args.account)
            ),
            risk_schema.TICK_SPEC.route(self._tick_command),
            risk_schema.INSPECT_SPEC.route(self._inspect),
        ]

    def _ask(self, name: str, message: object) -> Any:
        return self._all_handles()[name].ask(message, timeout=ASK_TIMEOUT_S)

    def _check(self, args: risk_schema.CheckArgs) -> dict[str, Any]:
        """Approved only when every judge of the account approves (control thread)."""
        message = check_order(args)
        judges = self.judges(args.account)
        if not judges:
            known = ", ".join(self.accounts)
            refusal = RiskDecision(
                False, f"unknown account {args.account!r}; known: {known}", "unknown_account"
            )
            return decision_result(refusal)
        for name in judges:
            decision: RiskDecision = self._ask(name, message)
            if not decision.approved:
                if name == self.firm and self.accounts:
                    decision = _firm_wide(decision)
                break
        return decision_result(decision)

    def _switch(self, command: str, message: object, account: str | None) -> dict[str, Any]:
        """Halt or resume one account's supervisor, or (no account) the stack's."""
        if account is not None and self.accounts:
            name = self.accounts.get(account)
            if name is None:
                known = ", ".join(self.accounts)
                raise InvalidArgument(command, "account", f"one of {known}, not {account!r}")
            return {"state": str(self._ask(name, message))}
        if account is not None or self.firm is not None:
            # One account: its supervisor is the stack's, whatever account is named.
            return {"state": str(self._ask(self.firm or RISK_STREAM, message))}
        states = [str(self._ask(name, message)) for name in self.scopes]
        return {"state": worst_state(states)}

    def _inspect(self, args: object) -> dict[str, Any]:
        """The stack's supervisor's state, and each account's when there are several."""
        if not self.accounts:
            return self.inspect({"actor": RISK_STREAM})
        accounts = {
            account: self.inspect({"actor": name}) for account, name in self.accounts.items()
        }
        if self.firm is not None:
            stack = self.inspect({"actor": self.firm})
        else:
            states = [str(view.get("state")) for view in accounts.values()]
            stack = {"name": RISK_STREAM, "account": None, "state": worst_state(states)}
            stack["limits"] = None
        stack["accounts"] = accounts
        return stack

    def _tick_command(self, args: risk_schema.TimeArgs) -> dict[str, Any]:
        self._tell_all(tick(args))
        return {}


def _firm_wide(decision: RiskDecision) -> RiskDecision:
    """A firm refusal, saying so: the account's own limits had passed the order."""
    return RiskDecision(
        False, f"firm-wide: {decision.reason}", decision.check, dict(decision.values)
    )


_SEVERITY = {state.value: rank for rank, state in enumerate(RiskState)}


def worst_state(states: Sequence[str]) -> str:
    """The most restrictive of risk states (Normal < Warning < CoolDown < Halted)."""
    return max(states, key=lambda state: _SEVERITY.get(state, len(_SEVERITY)))
