"""ActorFactory: the one place that builds position actors, risk supervisors and gateways.

Every host (the threaded `Node`, the backtests' `InlineNode`, the worker
processes of `posbus up`) builds its actors here, so the same collaborators
(journal outbox, snapshot store, corruption handler, clock, event sink,
exposure settings) reach the same actors whatever hosts them. What differs
between hosts is a named argument of the factory or of one of its methods,
documented there; nothing else constructs these actor classes.

A build returns an `ActorRecipe`: `start(link)` for a pykka thread under a
supervisor, `build()` for the inline runtime. A position whose journal stream
was found corrupt is never started again by this factory: its recipe declines
(`ChildIgnored` under a supervisor, `JournalCorrupt` inline), so no host runs
a position on partial state, and its supervisor does not crash-loop on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pykka import ActorRef

from posbus.actors.delivery import Doorbell, Outbox
from posbus.actors.events import EventSink
from posbus.actors.exchange_sync import ReportingExchange
from posbus.actors.gateway_actor import ExchangeClient, GatewayActor
from posbus.actors.journal import JournalCorrupt, SnapshotStore
from posbus.actors.model.clock import Clock
from posbus.actors.model.risk import PositionExposure, RiskLimits
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.actors.risk_supervisor import RiskSupervisor, risk_stream
from posbus.actors.supervision.errors import ChildIgnored
from posbus.actors.supervision.link import SupervisorLink
from posbus.actors.symbol_info import SymbolInfo
from posbus.bus.messages import MarketUpdate

A = TypeVar("A", PositionActor, RiskSupervisor, GatewayActor)


@dataclass(frozen=True, slots=True)
class ActorRecipe(Generic[A]):
    """One actor, fully wired, not yet started: `start` it supervised or `build` it inline."""

    cls: type[A]
    name: str
    kwargs: Mapping[str, Any]
    declined: JournalCorrupt | None = None

    def start(self, link: SupervisorLink | None) -> ActorRef[Any]:
        """Start it in its own pykka thread (a supervisor's start callable)."""
        if self.declined is not None:
            raise ChildIgnored(
                f"{self.name} stays down: {self.declined}", child=self.name, stream=self.name
            )
        return self.cls.start(link, **self.kwargs)

    def build(self) -> A:
        """The actor itself, unsupervised (the inline runtime runs it on its thread)."""
        if self.declined is not None:
            raise self.declined
        return self.cls(None, **self.kwargs)


@dataclass(frozen=True, slots=True)
class ExposureSettings:
    """How positions tell risk their exposure (see `PositionActor`'s arguments)."""

    interval_ns: int = 0
    pnl_step: Decimal = Decimal(0)
    #: The worker processes conflate mark-only changes of flat positions further.
    flat_interval_ns: int = 0
    #: The risk supervisor reads marks from market data itself.
    risk_reads_market: bool = False


@dataclass(slots=True)
class ActorFactory:
    """Builds every actor of one host. Thread-safe.

    Args:
        outbox: the host's journal + delivery (every actor writes through it).
        events: where actors announce what they did.
        clock: the time source of every record.
        snapshots: where actors save snapshots and recovery looks first;
            None replays whole streams (the backtests' in-memory runs).
        on_corrupt: the host's reaction to a corrupt position stream, called
            (in the failing actor's thread) after the stream is recorded as
            corrupt: the Node and the workers halt the account there.
        symbols: each symbol's correlation group and correlation.
        exposure: exposure conflation of the positions.
        cancel_risk_adding_orders: a position told `TradingRestricted`
            cancels its working orders that add risk (`[risk]
            cancel_risk_adding_orders`).
    """

    outbox: Outbox
    events: EventSink
    clock: Clock
    snapshots: SnapshotStore | None
    on_corrupt: Callable[[str, JournalCorrupt], None] | None = None
    symbols: Mapping[str, SymbolInfo] = field(default_factory=dict)
    exposure: ExposureSettings = field(default_factory=ExposureSettings)
    cancel_risk_adding_orders: bool = True
    _corrupt: dict[str, JournalCorrupt] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def position(
        self,
        account: str,
        symbol: str,
        *,
        risk: Any,
        gateway: Any,
        last_market: MarketUpdate | None = None,
        on_closed: Callable[[str, int], None] | None = None,
    ) -> ActorRecipe[PositionActor]:
        """The position actor of account+symbol.

        Args:
            risk, gateway: the host's handles of its peers (in-process
                handles, inline refs, or the bus proxies of a worker).
            last_market: the symbol's newest quote, so it starts priced.
            on_closed: the Node stops a closed position (and starts it again on
                its next intent); None keeps it running (workers, backtests).
        """
        stream = position_stream(account, symbol)
        info = self.symbols.get(symbol, SymbolInfo())
        kwargs = {
            "account": account,
            "symbol": symbol,
            "outbox": self.outbox,
            "risk": risk,
            "gateway": gateway,
            "events": self.events,
            "clock": self.clock,
            "group": info.group,
            "correlation": info.correlation,
            "on_closed": on_closed,
            "last_market": last_market,
            "exposure_interval_ns": self.exposure.interval_ns,
            "exposure_pnl_step": self.exposure.pnl_step,
            "flat_exposure_interval_ns": self.exposure.flat_interval_ns,
            "risk_reads_market": self.exposure.risk_reads_market,
            "snapshots": self.snapshots,
            "on_corrupt": self._position_corrupt,
            "cancel_risk_adding_orders": self.cancel_risk_adding_orders,
        }
        return ActorRecipe(PositionActor, stream, kwargs, self.corruption(stream))

    def risk(
        self,
        *,
        limits: RiskLimits,
        starting_equity: Decimal,
        on_started: Callable[[], Sequence[PositionExposure] | None] | None = None,
        scope: str | None = None,
        reporting_currency: str | None = None,
        symbols: Sequence[str] = (),
    ) -> ActorRecipe[RiskSupervisor]:
        """A risk supervisor, named as its journal stream (`risk`, `risk.ACCOUNT`).

        Args:
            limits, starting_equity: the limits it judges and the equity they start from.
            on_started: called once it has recovered, to collect the positions'
                exposures: the Node asks its positions; a risk worker asks the
                positions workers over the bus (and returns None).
            scope: the one account it judges in a stack of several; None: all
                of the stack's positions (its one account, or firm-wide).
            reporting_currency, symbols: the currency risk counts in, and the
                traded symbols: those quoted in another are converted
                (`CurrencyConversion`). None: every symbol is counted as quoted.
        """
        kwargs = {
            "limits": limits,
            "starting_equity": starting_equity,
            "outbox": self.outbox,
            "events": self.events,
            "clock": self.clock,
            "on_started": on_started,
            "snapshots": self.snapshots,
            "scope": scope,
            "reporting_currency": reporting_currency,
            "symbols": tuple(symbols),
        }
        return ActorRecipe(RiskSupervisor, risk_stream(scope), kwargs)

    def gateway(
        self,
        *,
        account: str,
        exchange: ExchangeClient | ReportingExchange,
        lookup: Callable[[str], Doorbell | None],
        halt: Callable[[str], None] | None = None,
    ) -> ActorRecipe[GatewayActor]:
        """The gateway of one account.

        Args:
            exchange: the venue client.
            lookup: a position stream to the doorbell of its actor (in-process)
                or to the bus publisher of its execution signals (a worker).
            halt: how a reconciliation it cannot resolve halts the account;
                None only reports (backtests).
        """
        kwargs = {
            "account": account,
            "exchange": exchange,
            "outbox": self.outbox,
            "lookup": lookup,
            "events": self.events,
            "halt": halt,
        }
        return ActorRecipe(GatewayActor, f"gateway.{account}", kwargs)

    def corrupt_streams(self) -> dict[str, JournalCorrupt]:
        """The position streams found corrupt so far, with what was found."""
        with self._lock:
            return dict(self._corrupt)

    def corruption(self, stream: str) -> JournalCorrupt | None:
        """What was found wrong with `stream`, or None while it is sound."""
        with self._lock:
            return self._corrupt.get(stream)

    def _position_corrupt(self, stream: str, error: JournalCorrupt) -> None:
        with self._lock:
            self._corrupt[stream] = error
        if self.on_corrupt is not None:
            self.on_corrupt(stream, error)
