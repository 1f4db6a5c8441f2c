"""InlineNode: the actors of a Node, wired the same way, on the inline runtime.

`InlineNode` hosts the actors `posbus.actors.node.Node` runs (risk supervisor,
one gateway, a position per account+symbol started on demand, write-ahead
delivery through one Outbox), built by the same `ActorFactory`, on an
`InlineScheduler` on the caller's thread, and offers the same inputs
(`signal`, `cancel`, `market`, `tick`) and the same barrier (`settle`).
Backtests run on it; the parity tests drive a Node and an InlineNode with the
same inputs and compare. It must never restart a failed actor: a failure
stops the run (`ActorFailed`). What else differs from Node, on purpose:
docs/architecture.md, "Inline runtime and InlineNode".

Single-threaded: every method must be called from the thread that built it.
"""

from __future__ import annotations

from typing import Any

from posbus.actors.control import Halt, Inspect, Resume, Tick, trading_restricted
from posbus.actors.delivery import Delivered, Doorbell, Outbox
from posbus.actors.events import EventLog
from posbus.actors.factory import ActorFactory
from posbus.actors.gateway_actor import ExchangeClient, gateway_stream
from posbus.actors.journal import Journal, SnapshotStore
from posbus.actors.model.clock import Clock
from posbus.actors.node import NodeConfig
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.actors.runtime.inline import InlineRef, InlineScheduler
from posbus.bus.messages import CancelRequest, MarketUpdate, Message, OrderIntent

RISK = "risk"


class InlineNode:
    """One process's actors on the inline runtime. Construct, `start()`, drive, `settle()`.

    Inputs only queue messages; `settle()` delivers them (and everything they
    cause) and returns when nothing is left to do.
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        journal: Journal,
        exchange: ExchangeClient,
        clock: Clock,
        events: EventLog | None = None,
        sender: str = "node",
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.exchange = exchange
        self.clock = clock
        self.events = events if events is not None else EventLog()
        self.outbox = Outbox(journal, sender, clock)
        self.factory = ActorFactory(
            outbox=self.outbox,
            events=self.events,
            clock=clock,
            snapshots=snapshots,
            symbols=config.symbols,
            exposure=config.exposure(),
            cancel_risk_adding_orders=config.cancel_risk_adding_orders,
        )
        self.events.subscribe(self._on_event)
        self.scheduler = InlineScheduler()
        self.risk: InlineRef | None = None
        self.gateway: InlineRef | None = None
        self._positions: dict[str, InlineRef] = {}
        # Who gets a symbol's market updates: the gateway, then its positions,
        # then the risk supervisor when it reads marks from the market.
        # Replaced, never changed in place: a position started while an update is
        # being handed out does not get that update twice (it starts with it).
        self._market_refs: dict[str, tuple[InlineRef, ...]] = {}
        self._last_market: dict[str, MarketUpdate] = {}

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the risk supervisor, the gateway and every journaled position."""
        cfg = self.config
        risk = self.factory.risk(
            limits=cfg.limits,
            starting_equity=cfg.starting_equity,
            reporting_currency=cfg.reporting_currency,
            symbols=tuple(cfg.symbols),
        )
        self.risk = self.scheduler.spawn(risk.build(), RISK)
        gateway = self.factory.gateway(
            account=cfg.account, exchange=self.exchange, lookup=self._doorbell
        ).build()
        self.gateway = self.scheduler.spawn(gateway, gateway_stream(cfg.account))
        for stream in self.journal.streams():
            if stream.startswith("position/"):
                _, account, symbol = stream.split("/", 2)
                self.position(account, symbol)
        self.settle()

    def settle(self) -> int:
        """Deliver every queued message and whatever it causes; return how many.

        The counterpart of `Node.settle`, without waiting: when it returns,
        every actor is idle. Raises `ActorFailed` if an actor failed.
        """
        return self.scheduler.run()

    # -- positions -----------------------------------------------------------------

    def position(self, account: str, symbol: str) -> InlineRef:
        """The ref of the position actor of account+symbol, started (and recovered) if needed."""
        stream = position_stream(account, symbol)
        ref = self._positions.get(stream)
        if ref is not None:
            return ref
        actor = self.factory.position(
            account,
            symbol,
            risk=self.risk,
            gateway=self.gateway,
            last_market=self._last_market.get(symbol),
        ).build()
        ref = self.scheduler.spawn(actor, stream)
        self._positions[stream] = ref
        assert self.gateway is not None and self.risk is not None, "start() first"
        refs = self._market_refs.get(symbol, (self.gateway,))
        if self.config.risk_reads_market:
            refs = (*refs[:-1], ref, self.risk) if len(refs) > 1 else (*refs, ref, self.risk)
        else:
            refs = (*refs, ref)
        self._market_refs[symbol] = refs
        return ref

    def position_actor(self, account: str, symbol: str) -> PositionActor | None:
        """The position actor itself, for reading its state on this thread; None if not started.

        Safe only between `settle()` calls and only for reading: the actor is
        idle then, and nothing else runs.
        """
        ref = self._positions.get(position_stream(account, symbol))
        if ref is None:
            return None
        actor = ref.actor
        assert isinstance(actor, PositionActor)
        return actor

    def position_names(self) -> list[str]:
        """Streams of every position actor this node has started, sorted."""
        return sorted(self._positions)

    def _on_event(self, message: Message) -> None:
        """Risk entered CoolDown or Halted: queue the notice for every position."""
        notice = trading_restricted(message)
        if notice is not None:
            for ref in list(self._positions.values()):
                ref.tell(notice)

    def _doorbell(self, stream: str) -> Doorbell | None:
        _, account, symbol = stream.split("/", 2)
        return self.position(account, symbol)

    # -- inputs ----------------------------------------------------------------------

    def signal(self, intent: OrderIntent) -> Delivered:
        """Journal an intent on its position's stream, then queue it for the position."""
        ref = self.position(intent.account, intent.symbol)
        return self.outbox.deliver(position_stream(intent.account, intent.symbol), intent, ref)

    def cancel(self, account: str, symbol: str, order_id: str) -> Delivered:
        """Journal a cancel request for `order_id`, then queue it for its position."""
        ref = self.position(account, symbol)
        request = CancelRequest(order_id=order_id, ts_ns=self.clock.now_ns())
        return self.outbox.deliver(position_stream(account, symbol), request, ref)

    def market(self, update: MarketUpdate) -> None:
        """Hand a market update to the gateway, then to every position of its symbol.

        When nothing is queued they get it at once (as the queue would deliver
        it next anyway); otherwise it is queued. `settle` delivers the rest.
        What the gateway sends meanwhile (fills) is queued and delivered after
        the positions' updates, exactly as if all had been queued.
        """
        gateway = self.gateway
        assert gateway is not None, "start() first"
        symbol = update.symbol
        self._last_market[symbol] = update
        self.scheduler.deliver_input(update, self._market_refs.get(symbol) or (gateway,))

    def tell_gateway(self, message: object) -> None:
        """Queue any message for the gateway (e.g. `ExchangeReports` pushed by the exchange)."""
        assert self.gateway is not None, "start() first"
        self.gateway.tell(message)

    def tick(self) -> None:
        """Queue a timer tick for the risk supervisor (cool-down expiry, trading-day rollover)."""
        assert self.risk is not None, "start() first"
        self.risk.tell(Tick(self.clock.now_ns()))

    def halt(self, reason: str) -> str:
        """The manual kill switch; returns the new risk state."""
        return self._ask_risk(Halt(reason, self.clock.now_ns()))

    def resume(self) -> str:
        """Lift a manual halt; returns the new risk state."""
        return self._ask_risk(Resume(self.clock.now_ns()))

    def _ask_risk(self, message: object) -> str:
        assert self.risk is not None, "start() first"
        self.settle()
        state: str = self.risk.ask(message)
        self.settle()
        return state

    # -- inspection -------------------------------------------------------------------

    def inspect(self, name: str) -> dict[str, Any]:
        """The full state of one actor ("risk", "gateway/ACCOUNT" or a position stream)."""
        ref = self.scheduler.ref(name)
        if ref is None:
            raise KeyError(f"no actor named {name!r}")
        self.settle()
        state: dict[str, Any] = ref.ask(Inspect())
        return state
