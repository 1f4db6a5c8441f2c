"""In-process control messages between actors (not wire messages).

Wire messages (market_update, execution_signal, risk_event) live in
posbus.bus.messages; these are the requests actors send one another inside a
worker: risk checks, exposure updates, inspection, crash injection. They are
frozen values; none carries a shared mutable object.
"""

from __future__ import annotations

from dataclasses import dataclass

from posbus.actors.model.exchange_reports import NewOrder
from posbus.actors.model.risk import OrderRequest, PositionExposure, RiskState
from posbus.bus.messages import Message, RiskEvent


@dataclass(frozen=True, slots=True, init=False)
class ExposureChanged:
    """A position's risk view changed (quantity, mark or P&L); told to the risk supervisor.

    `ts_ns` orders one position's exposures: the supervisor ignores one older
    than the newest it applied for that position (two paths may reorder them).
    """

    exposure: PositionExposure
    ts_ns: int

    def __init__(self, exposure: PositionExposure, ts_ns: int) -> None:
        # Written out because a position builds one per mark change: the slots'
        # own setters cost less than the frozen dataclass's object.__setattr__.
        _set_exposure(self, exposure)
        _set_ts_ns(self, ts_ns)


_set_exposure = vars(ExposureChanged)["exposure"].__set__
_set_ts_ns = vars(ExposureChanged)["ts_ns"].__set__


@dataclass(frozen=True, slots=True)
class CheckOrder:
    """Ask the risk supervisor for a pre-trade decision (answered with a RiskDecision).

    `exposure`: the ordering position's state when it asked, applied before
    the check. Over the bus, exposures travel as events and checks as
    requests, on different sockets: without it a check could be judged on
    the position's state before its latest fill or mark.
    """

    request: OrderRequest
    exposure: ExposureChanged | None = None


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """Send an order to the exchange; `stream` is the position stream its reports go to.

    `resend`: an earlier submit of this order may have reached the gateway
    (sent again after a restart or on a resync). Local to the process, not
    sent on the bus: it only tells the sender that a failed send of this
    one does not prove the order never reached the exchange.
    """

    order: NewOrder
    order_id: str
    stream: str
    resend: bool = False


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """Cancel an order at the exchange by its client order id."""

    client_order_id: str
    order_id: str
    stream: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Tick:
    """Time moved on: timers (cool-down expiry, trading-day rollover) may fire."""

    ts_ns: int


@dataclass(frozen=True, slots=True)
class Halt:
    """The manual kill switch: stop new risk until `Resume`.

    `account`: halt that account only (a stack with several); None: the
    whole stack (its firm-wide risk, or its one account's).
    """

    reason: str
    ts_ns: int
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    """Lift a manual halt (never an unexpired cool-down); `account` as for `Halt`."""

    ts_ns: int
    account: str | None = None


@dataclass(frozen=True, slots=True)
class TradingRestricted:
    """Risk entered CoolDown or Halted (told to every position by its host).

    A position then cancels its working orders that add risk, through the
    journaled cancel path (`PositionActor`); risk-reducing ones stay.
    `account`: the account whose risk changed; None: firm-wide (every account).
    """

    state: str
    reason: str
    ts_ns: int
    account: str | None = None

    def concerns(self, account: str) -> bool:
        """True when this restriction applies to a position of `account`."""
        return self.account is None or self.account == account


_RESTRICTED = frozenset({RiskState.COOLDOWN.value, RiskState.HALTED.value})


def trading_restricted(message: Message) -> TradingRestricted | None:
    """The notice a risk event gives the positions: a state change into CoolDown or Halted."""
    if (
        isinstance(message, RiskEvent)
        and message.event == "state_change"
        and message.state in _RESTRICTED
    ):
        return TradingRestricted(message.state, message.reason, message.ts_ns, message.account)
    return None


@dataclass(frozen=True, slots=True)
class Inspect:
    """Ask an actor for its full state as JSON-ready values."""


@dataclass(frozen=True, slots=True)
class Resync:
    """After a peer restarted: re-send what it may have lost (exposures, unacknowledged orders)."""


@dataclass(frozen=True, slots=True)
class Crash:
    """Make the receiving actor fail (fault injection in the demo and tests)."""

    reason: str = "injected crash"


class InjectedCrash(RuntimeError):
    """Raised by an actor that was told `Crash`: a deliberate, expected failure."""
