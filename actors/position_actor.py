"""PositionActor: one account+symbol position and its orders, as a pykka actor.

The actor is a thin shell around pure state (`Position`, `Order`). Everything
that changes that state arrives as a journaled record on the actor's stream
(`position/ACCOUNT/SYMBOL`, see posbus.actors.delivery) and is applied in
sequence order exactly once, so start-up, restart and crash recovery are one
code path: replay the stream, then carry on live. Market updates are not
journaled: they only move the mark.

Order flow: an `OrderIntent` record creates a PendingOrder; the actor asks the
risk supervisor for a pre-trade decision (a message, never a shared object),
journals `OrderSubmit` or `OrderRejected` on its own stream, and only then
tells the gateway. Acks, fills, cancels and rejects come back journaled by the
gateway. The exchange's fills are facts: a fill that the order state machine
refuses still moves the position, and the order goes to Error for
reconciliation.

This actor must never send an order that was not journaled first, and never
apply a record twice.
"""

from __future__ import annotations

import logging
import math
import statistics
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import pykka

from posbus.actors.control import (
    CancelOrder,
    CheckOrder,
    Crash,
    ExposureChanged,
    InjectedCrash,
    Inspect,
    Resync,
    SubmitOrder,
    TradingRestricted,
)
from posbus.actors.delivery import Delivered, Outbox, StreamCursor
from posbus.actors.events import EventSink
from posbus.actors.journal import JournalCorrupt, SnapshotStore
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import InvalidState, OrderValidationError, PosbusError
from posbus.actors.model.exchange_reports import NewOrder
from posbus.actors.model.order import TERMINAL_STATES, Order, OrderStatus
from posbus.actors.model.position import Position, PositionStatus
from posbus.actors.model.risk import OrderRequest, PositionExposure, RiskDecision
from posbus.actors.model.risk_arithmetic import add, mul
from posbus.actors.model.side import Side
from posbus.actors.quote_slot import QuoteSlot
from posbus.actors.recovery import RecoveryReport, TakeSnapshot, encode_snapshot, recover
from posbus.actors.supervision.link import SupervisorLink
from posbus.actors.supervision.supervised_actor import SupervisedActor
from posbus.bus.messages import (
    CancelRequest,
    MarketUpdate,
    OrderAck,
    OrderCancelled,
    OrderExpired,
    OrderFill,
    OrderIntent,
    OrderRejected,
    OrderSubmit,
)

logger = logging.getLogger(__name__)

RISK_ASK_TIMEOUT_S = 5.0
VOLATILITY_WINDOW = 100
_ZERO = Decimal(0)

_WORKING = frozenset(
    {
        OrderStatus.AWAITING_FILL,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.CANCEL_REQUESTED,
    }
)


def _is_live(order: Order) -> bool:
    """Pending or working: the order may still trade."""
    return order.status in _WORKING or order.status is OrderStatus.PENDING


def position_stream(account: str, symbol: str) -> str:
    """The journal stream of the position of `account` in `symbol`."""
    return f"position/{account}/{symbol}"


def client_order_id(stream: str, seq: int) -> str:
    """A unique, exchange-safe client order id (<= 36 chars of [0-9a-z]) for record `seq`."""
    return f"pb{zlib.crc32(stream.encode()):08x}{seq:x}"


@dataclass(slots=True)
class ExecutionStats:
    """Latency and slippage of one order, for the position's execution report."""

    intent_ts_ns: int
    arrival_price: Decimal | None
    side: Side
    ack_ts_ns: int | None = None
    fill_ts_ns: list[int] = field(default_factory=list)
    fill_qty: Decimal = Decimal(0)
    fill_notional: Decimal = Decimal(0)

    def ack_latency_ms(self) -> float | None:
        """Intent to ack, in milliseconds."""
        if self.ack_ts_ns is None:
            return None
        return (self.ack_ts_ns - self.intent_ts_ns) / 1e6

    def fill_latency_ms(self) -> float | None:
        """Intent to last fill, in milliseconds."""
        if not self.fill_ts_ns:
            return None
        return (self.fill_ts_ns[-1] - self.intent_ts_ns) / 1e6

    def slippage_bps(self) -> Decimal | None:
        """Average fill price against the arrival price, in bps; positive = paid more."""
        if self.arrival_price is None or self.fill_qty == 0:
            return None
        avg = self.fill_notional / self.fill_qty
        return (avg - self.arrival_price) * self.side.sign / self.arrival_price * 10_000

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        slip = self.slippage_bps()
        return {
            "intent_ts_ns": self.intent_ts_ns,
            "arrival_price": None if self.arrival_price is None else str(self.arrival_price),
            "ack_latency_ms": self.ack_latency_ms(),
            "fill_latency_ms": self.fill_latency_ms(),
            "fills": len(self.fill_ts_ns),
            "slippage_bps": None if slip is None else f"{slip:.4f}",
        }

    def to_state(self) -> dict[str, Any]:
        """The raw fields, exact (decimals as strings), for snapshots."""
        return {
            "intent_ts_ns": self.intent_ts_ns,
            "arrival_price": None if self.arrival_price is None else str(self.arrival_price),
            "side": self.side.value,
            "ack_ts_ns": self.ack_ts_ns,
            "fill_ts_ns": list(self.fill_ts_ns),
            "fill_qty": str(self.fill_qty),
            "fill_notional": str(self.fill_notional),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> ExecutionStats:
        """Rebuild from `to_state()` output (KeyError, ValueError, TypeError if malformed)."""
        arrival = data["arrival_price"]
        ack = data["ack_ts_ns"]
        return cls(
            intent_ts_ns=int(data["intent_ts_ns"]),
            arrival_price=None if arrival is None else Decimal(arrival),
            side=Side(data["side"]),
            ack_ts_ns=None if ack is None else int(ack),
            fill_ts_ns=[int(ts) for ts in data["fill_ts_ns"]],
            fill_qty=Decimal(data["fill_qty"]),
            fill_notional=Decimal(data["fill_notional"]),
        )


class PositionActor(SupervisedActor):
    """One position (account + symbol) and its orders.

    Runs in its own pykka thread; every method below runs there. Told:
    `Delivered` records (intents, submits, acks, fills, cancels, rejects),
    `MarketUpdate` (or a `QuoteSlot` holding the newest one), `Resync`,
    `TradingRestricted`, `Crash`. Asked: `Inspect` (returns its state), `Resync` (re-sends
    unacknowledged orders and its exposure; returns the `PositionExposure`).

    Args:
        link: its supervisor's link (None when unsupervised).
        account, symbol: which position.
        outbox: journal + delivery (its own stream, and reports from the gateway).
        risk: the risk supervisor (a ChildHandle or ActorRef; asked CheckOrder,
            told ExposureChanged).
        gateway: the account's gateway (told SubmitOrder / CancelOrder).
        events: where position events are published.
        clock: the time source for the records it writes.
        group, correlation: its correlation group and correlation to the
            reference asset, for the risk supervisor.
        on_closed: called (in this thread) when the position is flat with no
            working order, just before the actor stops itself: a closed
            position stays down (restart type transient).
        exposure_interval_ns, exposure_pnl_step: conflation of mark-only
            exposure updates to the risk supervisor (see `_exposure_due`);
            0 (the default) tells it every change.
        flat_exposure_interval_ns: the same conflation while the position is
            flat (qty 0), where a new mark changes nothing risk counts but
            the mark itself; the longer of the two intervals applies.
            0 (the default): no extra conflation when flat.
        risk_reads_market: the risk supervisor takes marks from market data
            itself (`RiskEngine.update_mark`): a mark-only change is then
            told only when no mark was told yet (risk learns the position's
            P&L at a mark from it); fills, starts, resyncs and orders as ever.
        snapshots: where `TakeSnapshot` saves its state and recovery looks
            first (None: no snapshots, recovery replays the whole stream).
        on_corrupt: called (in this thread) when recovery finds the stream
            corrupt, before the start fails (the node halts trading there).
        cancel_risk_adding_orders: when told `TradingRestricted` (risk
            entered CoolDown or Halted), journal a cancel of every working
            order that adds risk (`_cancel_risk_adding`).

    Its exposure carries its working orders (`_working_figures`): risk
    counts them at their worst case, so it is told again whenever they
    change (a submit, a fill, a cancel, a reject, an expiry).
    """

    # A daemon thread: CPython keeps a shutdown lock per live non-daemon thread
    # and scans that list at every Thread.start, so starting 10,000 positions
    # as non-daemon threads costs O(n^2). Nothing relies on interpreter exit
    # waiting for a position: workers and nodes stop their actors explicitly.
    use_daemon_thread = True

    def __init__(
        self,
        link: SupervisorLink | None,
        *,
        account: str,
        symbol: str,
        outbox: Outbox,
        risk: Any,
        gateway: Any,
        events: EventSink,
        clock: Clock,
        group: str = "default",
        correlation: Decimal = Decimal(1),
        on_closed: Callable[[str, int], None] | None = None,
        last_market: MarketUpdate | None = None,
        exposure_interval_ns: int = 0,
        exposure_pnl_step: Decimal = Decimal(0),
        flat_exposure_interval_ns: int = 0,
        risk_reads_market: bool = False,
        snapshots: SnapshotStore | None = None,
        on_corrupt: Callable[[str, JournalCorrupt], None] | None = None,
        cancel_risk_adding_orders: bool = True,
    ) -> None:
        super().__init__(link)
        self.cancel_risk_adding_orders = cancel_risk_adding_orders
        self.account = account
        self.symbol = symbol
        self.stream = position_stream(account, symbol)
        self.outbox = outbox
        self.risk = risk
        self.gateway = gateway
        self.events = events
        self.clock = clock
        self.group = group
        self.correlation = correlation
        self.on_closed = on_closed
        # Exposure conflation (see `_exposure_due`); 0 tells risk every change.
        self.exposure_interval_ns = exposure_interval_ns
        self.exposure_pnl_step = exposure_pnl_step
        self.flat_exposure_interval_ns = flat_exposure_interval_ns
        self.risk_reads_market = risk_reads_market
        self._published_mark_ts: int | None = None
        self._published_unrealized = Decimal(0)
        self._unpublished = False
        self.position = Position(account, symbol)
        self.orders: dict[str, Order] = {}
        # The orders not yet terminal, and what the working ones add up to
        # (None: to be summed again), so an exposure costs O(live orders).
        self._live: dict[str, Order] = {}
        self._working: _WorkingFigures | None = None
        # Orders made from reduce-only intents: never cancelled for risk.
        self.reduce_only: set[str] = set()
        self.by_client_id: dict[str, str] = {}
        self.stats: dict[str, ExecutionStats] = {}
        self.mark: Decimal | None = None
        self.mark_ts_ns: int | None = None
        self.returns: deque[float] = deque(maxlen=VOLATILITY_WINDOW)
        self.cursor = StreamCursor(outbox.journal, self.stream, self._apply)
        self.live = False
        self.replayed = 0
        self.snapshots = snapshots
        self.on_corrupt = on_corrupt
        self.recovery: RecoveryReport | None = None
        self._snapshot_seq = 0
        self._followups: deque[Callable[[], None]] = deque()
        self._last_message_ns: int | None = None
        if last_market is not None:
            self._on_market_state(last_market)

    # -- lifecycle ---------------------------------------------------------------

    def on_start(self) -> None:
        """Rebuild (latest snapshot + journal replay), then resume what the crash interrupted.

        A corrupt stream fails the start: `on_corrupt` is told first, and the
        actor never runs on a partial state.
        """
        try:
            self._recover()
        except JournalCorrupt as exc:
            logger.critical(
                "position recovery failed: journal corrupt; the position stays down",
                extra={"stream": self.stream, "seq": exc.seq, "problem": exc.problem},
            )
            if self.on_corrupt is not None:
                self.on_corrupt(self.stream, exc)
            raise
        self.live = True
        logger.info(
            "position recovered",
            extra={"stream": self.stream, "records": self.replayed, "qty": str(self.position.qty)},
        )
        for order in list(self.orders.values()):
            if order.status is OrderStatus.PENDING:
                self._followups.append(partial(self._decide, order.order_id))
            elif order.status is OrderStatus.AWAITING_FILL:
                # Sent, outcome unknown: the gateway submits idempotently by client order id.
                self._send(order, resend=True)
            elif order.status is OrderStatus.CANCEL_REQUESTED:
                self._send_cancel(order, self.clock.now_ns())
        self._publish_exposure()
        self._drain()

    def on_receive(self, message: Any) -> Any:
        """Dispatch one message (actor thread)."""
        self._last_message_ns = self.clock.now_ns()
        if isinstance(message, MarketUpdate):  # by far the most frequent: asked first
            self._on_market(message)
            return None
        if isinstance(message, Delivered):
            self.cursor.offer(message)
            self._drain()
            self._stop_if_closed()
            return None
        if isinstance(message, QuoteSlot):
            # The worker's conflated mailbox entry: only the newest quote counts.
            quote = message.take()
            if quote is not None:
                self._on_market(quote)
            return None
        if isinstance(message, list):
            # A batch drained from a socket: the latest market update wins.
            for item in message:
                self.on_receive(item)
            return None
        if isinstance(message, Inspect):
            return self.inspect()
        if isinstance(message, TakeSnapshot):
            return self.take_snapshot()
        if isinstance(message, TradingRestricted):
            if self.cancel_risk_adding_orders and message.concerns(self.account):
                self._cancel_risk_adding(message)
            return None
        if isinstance(message, Resync):
            for order in self.orders.values():
                if order.status is OrderStatus.AWAITING_FILL:
                    self._send(order, resend=True)
            # The reply lets a restarting risk supervisor load every exposure at once.
            return self._publish_exposure()
        if isinstance(message, Crash):
            raise InjectedCrash(message.reason)
        raise TypeError(f"{self.stream}: unexpected message {type(message).__name__}")

    # -- journaled records -----------------------------------------------------------

    def _apply(self, d: Delivered) -> None:
        m = d.message
        if isinstance(m, OrderIntent | OrderFill):
            self._working = None
            self._apply_record(d)  # a fill tells risk itself; an intent is not working
            return
        before = self._working_figures()
        self._working = None
        self._apply_record(d)
        if self.live and self._working_figures() != before:
            # An order started or stopped working: risk counts it, filled, at its worst.
            self._publish_exposure()

    def _apply_record(self, d: Delivered) -> None:
        m = d.message
        if isinstance(m, OrderIntent):
            self._on_intent(d.seq, m)
        elif isinstance(m, OrderSubmit):
            self._on_submit(m)
        elif isinstance(m, OrderAck):
            self._on_ack(m)
        elif isinstance(m, OrderFill):
            self._on_fill(m)
        elif isinstance(m, CancelRequest):
            self._on_cancel_request(m)
        elif isinstance(m, OrderCancelled | OrderRejected | OrderExpired):
            self._on_order_end(m)
        else:
            raise TypeError(f"{self.stream}: unexpected record {type(m).__name__}")

    def _on_intent(self, seq: int, intent: OrderIntent) -> None:
        side, qty = intent.side, intent.qty
        if intent.reduce_only:
            open_qty = abs(self.position.qty) - self._working_reduce_qty()
            side = Side.SELL if self.position.qty > 0 else Side.BUY
            qty = min(qty, open_qty)
            if qty <= 0:
                logger.info(
                    "reduce-only intent with nothing to reduce",
                    extra={"stream": self.stream, "intent_id": intent.intent_id},
                )
                return
        order_id = f"{self.account}:{self.symbol}:{seq}"
        order = Order(
            order_id=order_id,
            client_order_id=client_order_id(self.stream, seq),
            account=self.account,
            symbol=self.symbol,
            side=side,
            qty=qty,
            limit_price=intent.limit_price,
            created_ts_ns=intent.ts_ns,
        )
        self.orders[order_id] = order
        self._live[order_id] = order
        if intent.reduce_only:
            self.reduce_only.add(order_id)
        self.by_client_id[order.client_order_id] = order_id
        self.stats[order_id] = ExecutionStats(intent.ts_ns, self.mark, side)
        status = self.position.status
        if status is PositionStatus.CLOSED:
            self.position.on_intent(intent.ts_ns)
        elif intent.reduce_only and status is PositionStatus.OPEN and qty == abs(self.position.qty):
            self.position.request_close(intent.ts_ns)
        self._log_order(order, "created", reason=intent.reason)
        if self.live:
            self._followups.append(partial(self._decide, order_id))

    def _on_submit(self, m: OrderSubmit) -> None:
        order = self.orders[m.order_id]
        order.submit(m.ts_ns)
        if self.position.status is PositionStatus.PENDING:
            self.position.on_submitted(m.ts_ns)
        self._log_order(order, "submitted")
        if self.live:
            self._send(order)

    def _on_ack(self, m: OrderAck) -> None:
        order = self._find(m.client_order_id, m.order_id)
        if order is None:
            return
        if order.acked:
            return  # a re-sent submit was acknowledged again: not news
        self._transition(order, lambda: order.ack(m.ts_ns, m.exchange_order_id))
        self.stats[order.order_id].ack_ts_ns = m.ts_ns

    def _on_fill(self, m: OrderFill) -> None:
        fill = m.to_fill()
        order = self._find(m.client_order_id, m.order_id)
        if order is not None:
            self._transition(order, lambda: order.apply_fill(fill))
        else:
            logger.warning(
                "fill for an order this position does not know; applied to the position",
                extra={"stream": self.stream, "trade_id": fill.trade_id},
            )
        effect = self.position.apply_fill_effect(fill)
        if effect is None:
            return  # a trade id already applied
        if not effect.fee_converted:
            # Realized P&L leaves this fee out until someone values it: say so once, per fill.
            logger.warning(
                "fee in a third currency without a conversion mark; realized P&L excludes it",
                extra={
                    "stream": self.stream,
                    "trade_id": fill.trade_id,
                    "fee": str(fill.fee),
                    "fee_currency": fill.fee_currency,
                    "unconverted_fees": self.position.unconverted_fees,
                    "replay": not self.live,
                },
            )
        # After the position said the fill is new: asking `trade_ids` first would
        # copy the whole set on every fill (quadratic replay).
        stats = self.stats.get(order.order_id) if order is not None else None
        if stats is not None:
            stats.fill_ts_ns.append(fill.ts_ns)
            stats.fill_qty += fill.qty
            stats.fill_notional += fill.qty * fill.price
        self._lifecycle_after_order(order)
        if self.live:
            self._publish_exposure()

    def _on_cancel_request(self, m: CancelRequest) -> None:
        order = self.orders.get(m.order_id)
        if order is None:
            # Journaled before the positions shard checked cancels: it changes
            # nothing, and raising would fail this position on every replay.
            logger.warning(
                "cancel of an unknown order ignored",
                extra={"stream": self.stream, "order_id": m.order_id},
            )
            return
        self._transition(order, lambda: order.request_cancel(m.ts_ns))
        if self.live and order.status is OrderStatus.CANCEL_REQUESTED:
            self._send_cancel(order, m.ts_ns)
        self._lifecycle_after_order(order)

    def _on_order_end(self, m: OrderCancelled | OrderRejected | OrderExpired) -> None:
        order = self.orders.get(m.order_id)
        if order is None:
            return
        if isinstance(m, OrderCancelled):
            self._transition(order, lambda: order.cancelled(m.ts_ns))
        elif isinstance(m, OrderRejected):
            self._transition(order, lambda: order.reject(m.reason, m.ts_ns))
        else:
            self._transition(order, lambda: order.expire(m.ts_ns))
        self._lifecycle_after_order(order)

    # -- decisions (live only) -----------------------------------------------------------

    def _decide(self, order_id: str) -> None:
        order = self.orders[order_id]
        if order.status is not OrderStatus.PENDING:
            return
        now = self.clock.now_ns()
        request = OrderRequest(
            account=self.account,
            symbol=self.symbol,
            side=order.side,
            qty=self._risk_qty(order),
            price=order.limit_price,
            order_id=order.order_id,
            ts_ns=now,
        )
        if self._unpublished:
            # A conflated mark must not leave risk judging this order on an older one.
            self._publish_exposure()
        # The check carries this position's state as it is now: over the bus the
        # exposure just told may still be on its way when the check arrives.
        decision = self._ask_risk(CheckOrder(request, ExposureChanged(self.exposure(), now)))
        if decision.approved:
            record: OrderSubmit | OrderRejected = OrderSubmit(
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                account=self.account,
                symbol=self.symbol,
                side=order.side,
                qty=order.qty,
                limit_price=order.limit_price,
                ts_ns=now,
            )
        else:
            record = OrderRejected(
                order_id=order.order_id, reason=f"risk: {decision.reason}", ts_ns=now
            )
        self.cursor.offer(self.outbox.append(self.stream, record))

    def _risk_qty(self, order: Order) -> Decimal:
        """The qty the risk check judges `order` by: its own, or with its side's working orders.

        The risk engine calls an order risk-reducing (and lets it through
        CoolDown and Halted) when it alone does not take the filled position
        past flat. Two such orders can, together: +1 with a resting sell 1 and
        a new sell 1 ends -1. When the order and the live orders on its side
        would together pass flat, it is judged with them, at their combined
        qty: the new risk they may add if all fill.
        """
        held = self.position.qty
        if held == 0 or (held > 0) == (order.side is Side.BUY):
            return order.qty
        working = sum(
            (
                o.remaining_qty
                for o in self.orders.values()
                if o is not order and o.side is order.side and _is_live(o)
            ),
            Decimal(0),
        )
        combined = order.qty + working
        return order.qty if combined <= abs(held) else combined

    def _ask_risk(self, check: CheckOrder) -> RiskDecision:
        try:
            decision = self.risk.ask(check, timeout=RISK_ASK_TIMEOUT_S)
        except (PosbusError, pykka.ActorDeadError, pykka.Timeout) as exc:
            # Fail safe: no answer is a refusal, never an approval.
            return RiskDecision(False, f"risk supervisor unavailable ({exc})", "missing_data")
        if not isinstance(decision, RiskDecision):
            return RiskDecision(False, "risk supervisor gave no decision", "missing_data")
        return decision

    def _send(self, order: Order, *, resend: bool = False) -> None:
        new = NewOrder(
            client_order_id=order.client_order_id,
            account=self.account,
            symbol=self.symbol,
            side=order.side,
            qty=order.qty,
            limit_price=order.limit_price,
            ts_ns=order.last_ts_ns,
        )
        self.gateway.tell(SubmitOrder(new, order.order_id, self.stream, resend))

    def _cancel_risk_adding(self, notice: TradingRestricted) -> None:
        """Risk entered CoolDown or Halted: cancel every working order that adds risk.

        Each cancel is journaled on this position's stream before the gateway
        hears of it (`CancelRequest`, as `posbus cancel` journals one). An
        order adds risk when it moves the position away from flat: every
        order of a flat position, every order on the side of the position's
        sign, and on the other side an order that, with the ones before it,
        would carry the position past flat. Orders made from reduce-only
        intents are never cancelled, nor are orders already being cancelled.
        """
        now = self.clock.now_ns()
        for order_id in self._risk_adding_order_ids():
            logger.info(
                "risk-adding order cancelled: trading restricted",
                extra={
                    "stream": self.stream,
                    "order_id": order_id,
                    "state": notice.state,
                    "reason": notice.reason,
                },
            )
            request = CancelRequest(order_id=order_id, ts_ns=now)
            self.cursor.offer(self.outbox.append(self.stream, request))
        self._drain()

    def _risk_adding_order_ids(self) -> list[str]:
        """The working orders `_cancel_risk_adding` cancels, oldest first."""
        held = self.position.qty
        room = abs(held)
        found = []
        for order in list(self._live.values()):
            if order.status not in _WORKING or order.status is OrderStatus.CANCEL_REQUESTED:
                continue
            reducing = held != 0 and (held > 0) != (order.side is Side.BUY)
            if reducing:
                room -= order.remaining_qty
            if order.order_id in self.reduce_only or (reducing and room >= 0):
                continue
            found.append(order.order_id)
        return found

    def _send_cancel(self, order: Order, ts_ns: int) -> None:
        self.gateway.tell(CancelOrder(order.client_order_id, order.order_id, self.stream, ts_ns))

    # -- market data -------------------------------------------------------------------

    def _on_market(self, m: MarketUpdate) -> None:
        self._on_market_state(m)
        if self.risk_reads_market:
            if self._published_mark_ts is None:
                self._publish_exposure()
            return
        interval = self.exposure_interval_ns
        if self.flat_exposure_interval_ns > interval and not self.position.qty:
            interval = self.flat_exposure_interval_ns
        if interval and not self._exposure_due(interval):
            self._unpublished = True
            return
        self._publish_exposure()

    def _exposure_due(self, interval_ns: int) -> bool:
        """Conflation of mark-only changes (interval_ns > 0).

        A new mark is told to the risk supervisor when `interval_ns`
        (`exposure_interval_ns`, or `flat_exposure_interval_ns` while flat)
        of market time has passed since the last exposure told, or when the
        unrealized P&L moved by `exposure_pnl_step` or more (0: no such
        trigger). Fills, starts, resyncs and this position's own orders always
        tell at once, so risk never judges an order on a conflated mark of its
        own symbol; between those, its view of equity may lag by at most one
        interval (or one P&L step).
        """
        last = self._published_mark_ts
        mark_ts = self.mark_ts_ns
        if last is None or mark_ts is None or mark_ts - last >= interval_ns:
            return True
        step = self.exposure_pnl_step
        if step and self.position.qty and self.mark is not None:
            moved = self.position.unrealized_pnl(self.mark) - self._published_unrealized
            return abs(moved) >= step
        return False

    def _on_market_state(self, m: MarketUpdate) -> None:
        mid = m.mid()
        if self.mark is not None:
            self.returns.append(math.log(float(mid / self.mark)))
        self.mark = mid
        self.mark_ts_ns = m.ts_ns

    # -- helpers ---------------------------------------------------------------------------

    def _find(self, client_id: str, order_id: str) -> Order | None:
        oid = self.by_client_id.get(client_id, order_id)
        return self.orders.get(oid)

    def _working_reduce_qty(self) -> Decimal:
        reducing = Side.SELL if self.position.qty > 0 else Side.BUY
        return sum(
            (o.remaining_qty for o in self.orders.values() if o.side is reducing and _is_live(o)),
            Decimal(0),
        )

    def _transition(self, order: Order, change: Callable[[], object]) -> None:
        before = order.status
        try:
            change()
        except (InvalidState, OrderValidationError) as exc:
            # The exchange's word is a fact the order machine did not expect:
            # keep the money moving, park the order in Error for reconciliation.
            # "message" is a LogRecord attribute: passed as an extra key it would
            # make logging raise and the fact would crash the actor on every replay.
            context = {k: v for k, v in exc.context().items() if k != "message"}
            logger.error(
                "order event refused; order set to Error",
                extra={
                    "stream": self.stream,
                    "order_id": order.order_id,
                    **context,
                    "reason": exc.message,
                },
            )
            if not order.is_terminal:
                order.error(str(exc), order.last_ts_ns)
        if order.status is not before:
            self._log_order(order, f"{before.value}->{order.status.value}")

    def _lifecycle_after_order(self, order: Order | None) -> None:
        if order is None or order.status not in TERMINAL_STATES:
            return
        if any(
            o.status in _WORKING or o.status is OrderStatus.PENDING for o in self.orders.values()
        ):
            return
        status = self.position.status
        if status in (PositionStatus.PENDING, PositionStatus.AWAITING_FILL):
            if self.position.qty == 0:
                self.position.cancel_intent(order.last_ts_ns)
        elif status is PositionStatus.CLOSING and self.position.qty != 0:
            self.position.cancel_close(order.last_ts_ns)

    def _stop_if_closed(self) -> None:
        if not self.live:
            return
        if self.position.status is not PositionStatus.CLOSED or self.position.qty != 0:
            return
        if any(not o.is_terminal for o in self.orders.values()):
            return
        # A closed trade is snapshotted: the next start (and the risk
        # supervisor's resync) need not replay its history. Nothing new since
        # the last snapshot saves none.
        self.take_snapshot()
        if self.on_closed is not None:
            # The host keeps closed positions down until their next intent.
            self.on_closed(self.stream, self.cursor.position)
            self.actor_ref.stop(block=False)

    def _drain(self) -> None:
        while self._followups:
            self._followups.popleft()()

    def _working_figures(self) -> _WorkingFigures:
        """What the working orders add up to, per side (summed once per record)."""
        figures = self._working
        if figures is not None:
            return figures
        live = self._live
        for order_id in [oid for oid, order in live.items() if order.is_terminal]:
            del live[order_id]
        sums = [_ZERO] * 6  # buy qty, limit notional, market qty; sell the same
        working = False
        for order in live.values():
            if order.status not in _WORKING:
                continue
            working = True
            base = 0 if order.side is Side.BUY else 3
            remaining = order.remaining_qty
            sums[base] = add(sums[base], remaining)
            if order.limit_price is None:
                sums[base + 2] = add(sums[base + 2], remaining)
            else:
                sums[base + 1] = add(sums[base + 1], mul(remaining, order.limit_price))
        figures = _WorkingFigures(*sums) if working else _NO_WORKING
        self._working = figures
        return figures

    def _publish_exposure(self) -> PositionExposure:
        exposure = self.exposure()
        self._published_mark_ts = exposure.mark_ts_ns
        self._published_unrealized = exposure.unrealized_pnl
        self._unpublished = False
        self.risk.tell(ExposureChanged(exposure, self.clock.now_ns()))
        return exposure

    def exposure(self) -> PositionExposure:
        """The risk supervisor's view of this position: qty, mark, P&L, correlation group."""
        mark = self.mark
        position = self.position
        working = self._working_figures()
        # Positional arguments, in field order: this runs on every mark change, and
        # keywords would cost a third more. Without working orders their fields keep
        # their defaults.
        return PositionExposure(
            self.account,
            self.symbol,
            position.qty,
            mark,
            self.mark_ts_ns if mark is not None else None,
            position.realized_pnl,
            position.unrealized_pnl(mark) if mark is not None else _ZERO,
            self.group,
            self.correlation,
            *(() if working is _NO_WORKING else working.valued(mark)),
        )

    def _log_order(self, order: Order, what: str, reason: str = "") -> None:
        logger.info(
            "order %s",
            what,
            extra={
                "stream": self.stream,
                "order_id": order.order_id,
                "client_order_id": order.client_order_id,
                "symbol": self.symbol,
                "state": order.status.value,
                "reason": reason or order.reason,
                "ts_ns": order.last_ts_ns,
                "replay": not self.live,
            },
        )

    # -- inspection ------------------------------------------------------------------------

    def volatility(self) -> float | None:
        """Standard deviation of the last log returns of the mid price (per update)."""
        if len(self.returns) < 2:
            return None
        return statistics.stdev(self.returns)

    def execution_summary(self) -> dict[str, Any]:
        """Per-symbol execution quality: mean latencies, mean slippage and their correlation."""
        lat = []
        slip = []
        for stats in self.stats.values():
            latency = stats.fill_latency_ms()
            slippage = stats.slippage_bps()
            if latency is not None and slippage is not None:
                lat.append(latency)
                slip.append(float(slippage))
        summary: dict[str, Any] = {
            "orders": len(self.stats),
            "filled_orders": len(lat),
            "mean_fill_latency_ms": statistics.fmean(lat) if lat else None,
            "mean_slippage_bps": statistics.fmean(slip) if slip else None,
            "latency_slippage_correlation": None,
        }
        if len(lat) >= 2 and len(set(lat)) > 1 and len(set(slip)) > 1:
            summary["latency_slippage_correlation"] = statistics.correlation(lat, slip)
        return summary

    # -- snapshots and recovery -------------------------------------------------------------

    def snapshot_state(self) -> dict[str, Any]:
        """Everything the journal put into this actor, JSON-ready and exact.

        Marks, returns and timing fields come from market data, not the
        journal: they are not part of it.
        """
        return {
            "stream": self.stream,
            "seq": self.cursor.position,
            "position": self.position.to_dict(),
            "orders": [order.to_dict() for order in self.orders.values()],
            "stats": {oid: stats.to_state() for oid, stats in self.stats.items()},
            "reduce_only": sorted(self.reduce_only),
        }

    def restore_state(self, state: Any) -> None:
        """Load `snapshot_state()` output; all or nothing (raises before changing anything)."""
        if state["stream"] != self.stream:
            raise ValueError(f"snapshot of {state['stream']!r}, not {self.stream!r}")
        position = Position.from_dict(state["position"])
        orders = [Order.from_dict(raw) for raw in state["orders"]]
        stats = {str(oid): ExecutionStats.from_state(raw) for oid, raw in state["stats"].items()}
        if (position.account, position.symbol) != (self.account, self.symbol):
            raise ValueError("snapshot position belongs to another account or symbol")
        if set(stats) != {order.order_id for order in orders}:
            raise ValueError("snapshot orders and execution stats do not match")
        self.position = position
        self.orders = {order.order_id: order for order in orders}
        self.by_client_id = {order.client_order_id: order.order_id for order in orders}
        self.stats = stats
        # Written since orders record it; older snapshots: none known.
        self.reduce_only = {str(oid) for oid in state.get("reduce_only", ())}
        self._live = {order.order_id: order for order in orders if not order.is_terminal}
        self._working = None

    def take_snapshot(self) -> int | None:
        """Save the state at the current stream position (actor thread).

        Returns the snapshot's seq, or None when there is no store or
        nothing new since the last one. Durable on return.
        """
        seq = self.cursor.position
        if self.snapshots is None or seq in (0, self._snapshot_seq):
            return None
        self.snapshots.save_snapshot(
            self.stream, seq, encode_snapshot("position", self.snapshot_state())
        )
        self._snapshot_seq = seq
        return seq

    def _recover(self) -> None:
        self.recovery = recover(
            self.outbox.journal,
            self.snapshots,
            self.cursor,
            kind="position",
            restore=self.restore_state,
        )
        self.replayed = self.recovery.replayed
        self._snapshot_seq = self.recovery.snapshot_seq

    @classmethod
    def recovered_state(
        cls,
        outbox: Outbox,
        account: str,
        symbol: str,
        snapshots: SnapshotStore | None = None,
    ) -> dict[str, Any]:
        """The state of a position whose actor is not running, rebuilt from its journal.

        Runs in the caller's thread on a private, never-started instance: a
        read-only replay (nothing is sent, nothing is journaled).
        """
        shell = cls.shell(outbox, account, symbol, snapshots)
        shell._recover()
        return shell.inspect()

    @classmethod
    def recovered_exposure(
        cls,
        outbox: Outbox,
        account: str,
        symbol: str,
        group: str,
        correlation: Decimal,
        *,
        snapshots: SnapshotStore | None = None,
    ) -> PositionExposure:
        """The exposure of a position whose actor is not running, rebuilt from its journal.

        Runs in the caller's thread, a read-only replay like `recovered_state`.
        Such a position is closed (flat), so it carries no mark: only its
        realized P&L, which still counts in equity.
        """
        shell = cls.shell(outbox, account, symbol, snapshots)
        shell.group, shell.correlation = group, correlation
        shell._recover()
        return shell.exposure()

    @classmethod
    def shell(
        cls,
        outbox: Outbox,
        account: str,
        symbol: str,
        snapshots: SnapshotStore | None = None,
    ) -> PositionActor:
        """A never-started instance for read-only replays: no peers, no events, never run.

        Offer it journal records (`shell.cursor.offer`) or `_recover` it, then
        read it; live actors are built by `posbus.actors.factory` only.
        """
        return cls(
            None,
            account=account,
            symbol=symbol,
            outbox=outbox,
            risk=None,
            gateway=None,
            events=_NoEvents(),
            clock=outbox.clock,
            snapshots=snapshots,
        )

    def inspect(self) -> dict[str, Any]:
        """The actor's full state, JSON-ready (decimals as strings)."""
        mark = self.mark
        unrealized = self.position.unrealized_pnl(mark) if mark is not None else None
        return {
            "name": self.stream,
            "account": self.account,
            "symbol": self.symbol,
            "status": self.position.status.value,
            "qty": str(self.position.qty),
            "avg_entry_price": str(self.position.avg_entry_price),
            "entry_ts_ns": self.position.entry_ts_ns,
            "realized_pnl": str(self.position.realized_pnl),
            "unrealized_pnl": None if unrealized is None else str(unrealized),
            "fees": str(self.position.fees),
            "fees_by_currency": _texts(self.position.fees_by_currency),
            "unconverted_fees": self.position.unconverted_fees,
            "unconverted_fees_by_currency": _texts(self.position.unconverted_fees_by_currency),
            "trade_ids": sorted(self.position.trade_ids),
            "mark": None if mark is None else str(mark),
            "mark_ts_ns": self.mark_ts_ns,
            "value": None if mark is None else str(self.position.value(mark)),
            "volatility": self.volatility(),
            "group": self.group,
            "correlation": str(self.correlation),
            "journal_seq": self.cursor.position,
            "replayed": self.replayed,
            "recovery": None if self.recovery is None else self.recovery.to_dict(),
            "last_message_ns": self._last_message_ns,
            "orders": {
                oid: {**order.to_dict(), "execution": self.stats[oid].to_dict()}
                for oid, order in self.orders.items()
            },
            "execution": self.execution_summary(),
        }


@dataclass(frozen=True, slots=True)
class _WorkingFigures:
    """The remaining quantities of a position's working orders, per side, and the
    notional of its limit orders (market orders are valued at the mark when told)."""

    buy_qty: Decimal
    buy_limit_notional: Decimal
    buy_market_qty: Decimal
    sell_qty: Decimal
    sell_limit_notional: Decimal
    sell_market_qty: Decimal

    def valued(self, mark: Decimal | None) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(buy qty, buy notional, sell qty, sell notional), market orders at `mark`
        (without a mark a market order counts at its quantity only)."""
        buys, sells = self.buy_limit_notional, self.sell_limit_notional
        if mark is not None:
            buys = add(buys, mul(self.buy_market_qty, mark))
            sells = add(sells, mul(self.sell_market_qty, mark))
        return self.buy_qty, buys, self.sell_qty, sells


_NO_WORKING = _WorkingFigures(_ZERO, _ZERO, _ZERO, _ZERO, _ZERO, _ZERO)


def _texts(amounts: Mapping[str, Decimal]) -> dict[str, str]:
    return {currency: str(amount) for currency, amount in sorted(amounts.items())}


class _NoEvents:
    def publish(self, message: object) -> None:
        raise AssertionError("a read-only replay must not publish")
