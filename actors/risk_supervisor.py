"""RiskSupervisor: the desk's pre-trade risk checks and risk state, as one pykka actor.

A thin shell around the pure `RiskEngine`: positions tell it their exposure
(`ExposureChanged`) and ask it for a decision before any order leaves
(`CheckOrder`). Where it is told market updates too (`MarketUpdate`, with
`[positions] risk_marks = "market"`: the risk worker's quotes, the in-process
node's and backtests' market data), it takes every symbol's mark from them
(`RiskEngine.update_mark`), and positions tell it only what their fills,
orders and starts change. Every state change (Warning, CoolDown, Halted, back to Normal)
is journaled on the `risk` stream before it is announced as a `risk_event`, and
every refusal is announced too, with the reason and the numbers.

Recovery: the engine's durable part (state, halt, cool-down timer, peak and
day-start equity, breach flags) is journaled as a `risk.durable` command record
just before the events of each state change (a risk event's values may only
hold decimal numbers, and the durable part has names and flags), when a new
trading day begins, and when the peak equity has risen by PEAK_STEP of the
drawdown limit since the last record; a restarted supervisor restores it from
the newest such record, so a cool-down is never lifted by a restart, and the
drawdown it measures after one is under-stated by at most that step.
Exposures are volatile: after a restart the positions re-send theirs
(`on_started` lets the node ask them, and returns what they said), and they
are loaded all at once: one by one, each would be judged on a partial book.

Scope: one supervisor judges one set of limits. A stack with one account
runs one, on the `risk` stream, for everything; a stack with several runs
one per account (`scope` = the account, stream `risk.ACCOUNT`) and, with
firm-wide limits, one more over every account (scope None, stream `risk`).
Its risk events carry the scope as their account (None: firm-wide).

This actor must never approve an order it could not check.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from posbus.actors.control import (
    CheckOrder,
    Crash,
    ExposureChanged,
    Halt,
    InjectedCrash,
    Inspect,
    Resume,
    Tick,
)
from posbus.actors.delivery import Delivered, Outbox, StreamCursor
from posbus.actors.events import EventSink
from posbus.actors.journal import JournalCorrupt, SnapshotStore
from posbus.actors.model.clock import Clock
from posbus.actors.model.currency_conversion import CurrencyConversion
from posbus.actors.model.risk import (
    PositionExposure,
    RiskDecision,
    RiskEngine,
    RiskLimits,
    RiskState,
)
from posbus.actors.model.risk_state import RiskTransition
from posbus.actors.recovery import RecoveryReport, TakeSnapshot, encode_snapshot, recover
from posbus.actors.supervision.link import SupervisorLink
from posbus.actors.supervision.supervised_actor import SupervisedActor
from posbus.bus.constraints import is_decimal_text
from posbus.bus.messages import Command, MarketUpdate, RiskEvent

logger = logging.getLogger(__name__)

RISK_STREAM = "risk"


def risk_stream(scope: str | None) -> str:
    """The journal stream of the risk supervisor of `scope` (an account; None: the stack)."""
    return RISK_STREAM if scope is None else f"{RISK_STREAM}.{scope}"


# Engine fields that must survive a restart; journaled with every state record.
_DURABLE = (
    "state",
    "halted",
    "halt_reason",
    "cooldown_until_ns",
    "peak_equity",
    "day_start_equity",
    "day_index",
    "daily_breached",
    "drawdown_breached",
)
_PREFIX = "durable."
DURABLE_RECORD = "risk.durable"
# The peak equity is journaled again once it rose by this fraction of the
# drawdown limit (of the peak): a restart forgets at most that much of a rise.
PEAK_STEP = Decimal("0.01")
# The newest decisions shown by `inspect`: enough for an operator (and the
# invariant tests, which read them after every step) without a 10k-entry reply.
_INSPECT_DECISIONS = 100


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One pre-trade decision, kept for inspection and the invariant tests."""

    order_id: str
    state: RiskState
    approved: bool
    risk_reducing: bool
    check: str


class RiskSupervisor(SupervisedActor):
    """The risk supervisor actor (its own pykka thread; every method runs there).

    Told: `MarketUpdate`, `ExposureChanged`, `Tick`, `Crash`. Asked: `CheckOrder` (returns a
    `RiskDecision`), `Halt` / `Resume` (journaled before the reply; return the
    new state), `Inspect`.
    """

    def __init__(
        self,
        link: SupervisorLink | None,
        *,
        limits: RiskLimits,
        starting_equity: Decimal,
        outbox: Outbox,
        events: EventSink,
        clock: Clock,
        on_started: Callable[[], Sequence[PositionExposure] | None] | None = None,
        decision_log: int = 10_000,
        snapshots: SnapshotStore | None = None,
        scope: str | None = None,
        reporting_currency: str | None = None,
        symbols: Sequence[str] = (),
    ) -> None:
        super().__init__(link)
        self.scope = scope
        # Symbols quoted in another currency than risk counts in: their inputs are
        # converted (`CurrencyConversion`); the native ones kept to re-convert at a new rate.
        self.conversion = (
            CurrencyConversion(reporting_currency, symbols)
            if reporting_currency is not None
            and CurrencyConversion.needed(reporting_currency, symbols)
            else None
        )
        self._native_quotes: dict[str, MarketUpdate] = {}
        self._native_exposures: dict[tuple[str, str], ExposureChanged] = {}
        self.stream = risk_stream(scope)
        self.limits = limits
        self.starting_equity = starting_equity
        self.outbox = outbox
        self.events = events
        self.clock = clock
        self.on_started = on_started
        self.engine = RiskEngine(limits, starting_equity, clock.now_ns())
        self.decisions: deque[DecisionRecord] = deque(maxlen=decision_log)
        self.counts: Counter[str] = Counter()
        self.restored_from: int = 0
        self.snapshots = snapshots
        self.recovery: RecoveryReport | None = None
        self._snapshot_seq = 0
        self._last_durable: Command | None = None
        self._durable_day = 0
        self._next_durable_peak = Decimal(0)
        # (account, symbol) -> ts_ns of the newest exposure applied.
        self._exposure_ts: dict[tuple[str, str], int] = {}

    def on_start(self) -> None:
        """Restore the risk state (latest snapshot + the durable records after it), then
        ask for exposures. A corrupt `risk` stream fails the start: while the risk
        supervisor is down every pre-trade check is refused."""
        journal = self.outbox.journal
        try:
            self.recovery = recover(
                journal,
                self.snapshots,
                StreamCursor(journal, self.stream, self._apply_record),
                kind="risk",
                restore=self.restore_state,
            )
        except JournalCorrupt as exc:
            logger.critical(
                "risk recovery failed: journal corrupt; every order is refused",
                extra={"stream": self.stream, "seq": exc.seq, "problem": exc.problem},
            )
            raise
        self._snapshot_seq = self.recovery.snapshot_seq
        if self._last_durable is None:
            self.restored_from = self.recovery.snapshot_seq
        else:
            self._restore(self._last_durable)
        self._durable_mark()
        logger.info(
            "risk supervisor started",
            extra={
                "stream": self.stream,
                "state": self.engine.state.value,
                "restored_from_seq": self.restored_from,
            },
        )
        if self.on_started is not None:
            exposures = self.on_started()
            if exposures:
                self._load_book(exposures)

    def _load_book(self, exposures: Sequence[PositionExposure]) -> None:
        """Load every position's exposure at once, keeping the restored durable state.

        Applied one by one, each update would be judged on a partial book: a
        loss limit "breached" by the positions heard so far, or a peak raised
        by them, though the whole book is fine. The book is built on a scratch
        engine (its judgements are dropped) and moved under the restored state;
        the next update or tick judges the full book.
        """
        now = self.clock.now_ns()
        scratch = RiskEngine(self.limits, self.starting_equity, now)
        conversion = self.conversion
        for native in exposures:
            exposure = native
            if conversion is not None and native.symbol in conversion.foreign:
                key = (native.account, native.symbol)
                self._native_exposures[key] = ExposureChanged(native, now)
                exposure = conversion.exposure(native)
            scratch.update_position(exposure, now)
        book = scratch.to_dict()
        snapshot = self.engine.to_dict()
        snapshot["positions"] = book["positions"]
        snapshot["symbols"] = book["symbols"]
        self.engine = RiskEngine.from_dict(snapshot, limits=self.limits)

    def _restore(self, record: Command) -> None:
        snapshot = self.engine.to_dict()
        for key in _DURABLE:
            raw = record.args.get(_PREFIX + key)
            if not isinstance(raw, str):
                continue
            if key in ("halted", "daily_breached", "drawdown_breached"):
                snapshot[key] = raw == "true"
            elif key in ("cooldown_until_ns", "day_index"):
                snapshot[key] = None if raw == "" else int(raw)
            else:
                snapshot[key] = raw
        self.engine = RiskEngine.from_dict(snapshot, limits=self.limits)

    def on_receive(self, message: Any) -> Any:
        """Dispatch one message (actor thread)."""
        if type(message) is MarketUpdate:  # the hot path: one per market update
            self._on_market(message)
            return None
        if isinstance(message, ExposureChanged):
            self._on_exposure(message)
            return None
        if isinstance(message, CheckOrder):
            if message.exposure is not None:
                self._on_exposure(message.exposure)
            return self._check(message)
        if isinstance(message, Tick):
            self._announce(self.engine.tick(message.ts_ns))
            self._keep_durable(message.ts_ns)
            return None
        if isinstance(message, Halt):
            self._announce(self.engine.halt(message.reason, message.ts_ns), manual="halt")
            return self.engine.state.value
        if isinstance(message, Resume):
            self._announce(self.engine.resume(message.ts_ns), manual="resume")
            return self.engine.state.value
        if isinstance(message, Inspect):
            return self.inspect()
        if isinstance(message, TakeSnapshot):
            return self.take_snapshot()
        if isinstance(message, Crash):
            raise InjectedCrash(message.reason)
        raise TypeError(f"risk supervisor: unexpected message {type(message).__name__}")

    def _on_exposure(self, change: ExposureChanged) -> None:
        """Apply a position's exposure unless a newer one of it was applied already."""
        exposure = change.exposure
        ts_ns = change.ts_ns
        key = (exposure.account, exposure.symbol)
        applied = self._exposure_ts
        if ts_ns < applied.get(key, ts_ns):
            self.counts["stale_exposures"] += 1
            return
        applied[key] = ts_ns
        conversion = self.conversion
        if conversion is not None and exposure.symbol in conversion.foreign:
            self._native_exposures[key] = change
            exposure = conversion.exposure(exposure)
        transitions = self.engine.update_position(exposure, ts_ns)
        if transitions:  # a mark change seldom moves the state: spare the call
            self._announce(transitions)
        self._keep_durable(ts_ns)

    def _on_market(self, update: MarketUpdate) -> None:
        """Take the symbol's mark; judge it only when it may change the state."""
        if self.conversion is not None:
            self._on_market_converted(update)
            return
        self._mark(update.symbol, update.mid(), update.ts_ns)

    def _mark(self, symbol: str, mark: Decimal, ts_ns: int) -> None:
        transitions = self.engine.update_mark(symbol, mark, ts_ns)
        if transitions is None:  # inside its band: nothing but the mark changed
            return
        if transitions:
            self._announce(transitions)
        self._keep_durable(ts_ns)

    def _on_market_converted(self, update: MarketUpdate) -> None:
        """A foreign symbol's mark at the rate held; a rate symbol re-prices its currency's."""
        conversion = self.conversion
        assert conversion is not None
        symbol = update.symbol
        if symbol in conversion.foreign:
            self._native_quotes[symbol] = update
            converted = conversion.mark(symbol, update.mid(), update.ts_ns)
            if converted is not None:
                self._mark(symbol, *converted)
            return
        self._mark(symbol, update.mid(), update.ts_ns)
        currency = conversion.set_rate(symbol, update.mid(), update.ts_ns)
        if currency is None:
            return
        for native in list(self._native_quotes.values()):
            if conversion.foreign[native.symbol] == currency:
                converted = conversion.mark(native.symbol, native.mid(), native.ts_ns)
                if converted is not None:
                    self._mark(native.symbol, *converted)
        for change in list(self._native_exposures.values()):
            if conversion.foreign[change.exposure.symbol] == currency:
                transitions = self.engine.update_position(
                    conversion.exposure(change.exposure), change.ts_ns
                )
                if transitions:
                    self._announce(transitions)

    def _check(self, message: CheckOrder) -> RiskDecision:
        request = message.request
        state = self.engine.state
        conversion = self.conversion
        if conversion is not None and request.symbol in conversion.foreign:
            decision = self.engine.check_order(conversion.request(request))
        else:
            decision = self.engine.check_order(request)
        self.decisions.append(
            DecisionRecord(
                request.order_id, state, decision.approved, decision.risk_reducing, decision.check
            )
        )
        self.counts["approved" if decision.approved else f"rejected.{decision.check}"] += 1
        if not decision.approved:
            logger.info(
                "order refused by risk",
                extra={
                    "order_id": request.order_id,
                    "symbol": request.symbol,
                    "check": decision.check,
                    "reason": decision.reason,
                    "state": state.value,
                },
            )
            self.events.publish(
                RiskEvent(
                    event="order_rejected",
                    state=state.value,
                    previous_state=None,
                    # The order id is no number: it travels in the reason.
                    reason=f"{decision.check}: {decision.reason} (order {request.order_id})",
                    account=request.account,
                    symbol=request.symbol,
                    values=_decimal_values(decision.values),
                    ts_ns=request.ts_ns,
                )
            )
        return decision

    def _journal_durable(self, ts_ns: int) -> None:
        """Journal the engine's durable part (see the module docstring)."""
        self.outbox.append(
            self.stream,
            Command(
                name=DURABLE_RECORD,
                args=dict(self._durable_values()),
                request_id=f"{DURABLE_RECORD}:{ts_ns}",
            ),
        )
        self._durable_mark()

    def _durable_mark(self) -> None:
        """Remember what the newest durable record holds: the next one is due from there."""
        peak = self.engine.peak_equity
        self._durable_day = self.engine.day_index
        self._next_durable_peak = peak + peak * self.limits.max_drawdown * PEAK_STEP

    def _keep_durable(self, ts_ns: int) -> None:
        """A durable record when a new day began or the peak rose a step (no event)."""
        engine = self.engine
        if engine.day_index != self._durable_day or engine.peak_equity >= self._next_durable_peak:
            self._journal_durable(ts_ns)

    def _announce(self, transitions: list[RiskTransition], manual: str = "") -> None:
        if not transitions:
            return
        # Write-ahead: the durable state, then the events, journaled before anyone hears of them.
        self._journal_durable(transitions[-1].ts_ns)
        for transition in transitions:
            event = RiskEvent(
                event="state_change",
                state=transition.state.value,
                previous_state=transition.previous.value,
                reason=transition.reason or manual,
                account=self.scope,
                symbol=None,
                values=_decimal_values(transition.values),
                ts_ns=transition.ts_ns,
            )
            self.outbox.append(self.stream, event)
            self.counts[f"state.{transition.state.value}"] += 1
            logger.warning(
                "risk state change",
                extra={
                    "account": self.scope,
                    "previous": transition.previous.value,
                    "state": transition.state.value,
                    "reason": transition.reason,
                },
            )
            self.events.publish(event)

    def _apply_record(self, delivered: Delivered) -> None:
        message = delivered.message
        if isinstance(message, Command) and message.name == DURABLE_RECORD:
            self._last_durable = message
            self.restored_from = delivered.seq

    # -- snapshots -------------------------------------------------------------------

    def snapshot_state(self) -> dict[str, Any]:
        """The whole engine (durable state, book, marks, rate window), JSON-ready and exact."""
        return {"engine": self.engine.to_dict()}

    def restore_state(self, state: Any) -> None:
        """Load `snapshot_state()` output under the configured limits; all or nothing."""
        self.engine = RiskEngine.from_dict(state["engine"], limits=self.limits)

    def take_snapshot(self) -> int | None:
        """Save the engine at the `risk` stream's position (actor thread; this actor is
        the stream's only writer). Returns the seq, or None when there is no store or
        nothing was journaled since the last one. Durable on return."""
        seq = self.outbox.journal.last_seq(self.stream)
        if self.snapshots is None or seq in (0, self._snapshot_seq):
            return None
        self.snapshots.save_snapshot(
            self.stream, seq, encode_snapshot("risk", self.snapshot_state())
        )
        self._snapshot_seq = seq
        return seq

    def _durable_values(self) -> dict[str, str]:
        snapshot = self.engine.to_dict()
        out: dict[str, str] = {}
        for key in _DURABLE:
            value = snapshot[key]
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif value is None:
                text = ""
            else:
                text = str(value)
            out[_PREFIX + key] = text
        return out

    def inspect(self) -> dict[str, Any]:
        """State, metrics, limits, decision counts and the newest decisions, JSON-ready."""
        return {
            "name": self.stream,
            "account": self.scope,
            "state": self.engine.state.value,
            "halt_reason": self.engine.halt_reason,
            "cooldown_until_ns": self.engine.cooldown_until_ns,
            "metrics": self.engine.metrics(),
            "limits": self.limits.to_dict(),
            "decisions_since_start": dict(self.counts),
            "recent_decisions": [
                {
                    "order_id": record.order_id,
                    "state": record.state.value,
                    "approved": record.approved,
                    "risk_reducing": record.risk_reducing,
                    "check": record.check,
                }
                for record in list(self.decisions)[-_INSPECT_DECISIONS:]
            ],
            "restored_from_seq": self.restored_from,
            "recovery": None if self.recovery is None else self.recovery.to_dict(),
        }


def _decimal_values(values: dict[str, str]) -> dict[str, str]:
    """The entries a risk event's values can carry: plain decimal numbers only.

    Names (a correlation group) and unbounded ratios ("Infinity" when equity is
    not positive) are left out: the wire refuses them, and a refused event would
    fail the risk supervisor in the middle of a decision.
    """
    return {key: value for key, value in values.items() if is_decimal_text(value)}
