"""The gateway actor's side of a network exchange: ledger, start-up hold, reconciliation.

A GatewayActor whose exchange client is a `ReportingExchange` (calls return at
once, answers come back as messages; the ccxt gateway) delegates to one
`ExchangeSync`, which runs in the actor's thread. It keeps the `Ledger`
(posbus.actors.reconciliation), rebuilt from the journal when the actor
starts; holds the orders that arrive before the start-up reconciliation has
completed, so nothing is sent while the account's state is unknown; and
carries out every reconciliation plan through the normal path (journal,
then tell). An order journaled before this actor started and not ended is
sent "in doubt": looked up first, sent only if proven absent.

This module must never send an order that was not journaled first, and never
treat a missing report as "nothing there". When reconciliation runs and what
it does: docs/architecture.md, "Exchange sync and reconciliation".
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from posbus.actors.control import CancelOrder, SubmitOrder
from posbus.actors.delivery import Outbox, decode_record
from posbus.actors.events import EventSink
from posbus.actors.model.exchange_events import (
    BreakerChanged,
    ReconcileDue,
    ReconcilePolicy,
    ReconcileRequest,
    ReconcileSnapshot,
    TradeView,
)
from posbus.actors.model.exchange_reports import ExchangeOrderStatus, NewOrder, OrderView
from posbus.actors.position_actor import position_stream
from posbus.actors.reconciliation import (
    ADOPTED_RECORD,
    BASELINE_RECORD,
    CURSOR_RECORD,
    Ledger,
    ReconcilePlan,
    adopted_order_id,
    plan,
)
from posbus.bus.constraints import MAX_TEXT_LEN
from posbus.bus.messages import (
    Command,
    Liquidity,
    MarketUpdate,
    Message,
    OrderAck,
    OrderCancelled,
    OrderExpired,
    OrderFill,
    OrderSubmit,
    RiskEvent,
)

logger = logging.getLogger(__name__)

Inbox = Callable[[object], None]


@runtime_checkable
class ReportingExchange(Protocol):
    """An exchange client whose calls return at once and answer later, as messages.

    It tells the inbox given to `attach` (from its own thread):
    `ExchangeReports`, `BreakerChanged`, `ReconcileDue`, `ReconcileSnapshot`.
    Every method here is called from the gateway actor's thread and must not
    wait on the network.
    """

    @property
    def symbols(self) -> tuple[str, ...]: ...

    @property
    def reconcile_policy(self) -> ReconcilePolicy: ...

    def attach(self, inbox: Inbox) -> None: ...

    def detach(self) -> None: ...

    def submit(self, order: NewOrder, *, in_doubt: bool = False) -> None: ...

    def cancel(self, client_order_id: str, symbol: str, ts_ns: int) -> None: ...

    def track(self, client_order_id: str, symbol: str, exchange_order_id: str) -> None: ...

    def reconcile(self, request: ReconcileRequest) -> None: ...

    def inspect(self) -> dict[str, Any]: ...


@runtime_checkable
class MarketFeed(Protocol):
    """An exchange client that can feed market updates (the ccxt gateway)."""

    def subscribe_market(
        self, symbols: Sequence[str], sink: Callable[[MarketUpdate], None]
    ) -> None: ...


class ExchangeSync:
    """What a gateway actor keeps for a network exchange (its thread only; see module doc).

    Args:
        account: the account.
        stream: the gateway's own journal stream.
        exchange: the network client.
        outbox: journal + delivery.
        deliver: journals a message on a position stream and tells the
            position (the actor's delivery, which also feeds `observe`).
        events: where risk events go.
        halt: asks the risk supervisor to halt the account (None: only report).
        routes: the actor's client order id -> (order id, stream) map.
        counts: the actor's counters.
    """

    def __init__(
        self,
        *,
        account: str,
        stream: str,
        exchange: ReportingExchange,
        outbox: Outbox,
        deliver: Callable[[str, Message], None],
        events: EventSink,
        halt: Callable[[str], None] | None,
        routes: dict[str, tuple[str, str]],
        counts: Counter[str],
    ) -> None:
        self.account = account
        self.stream = stream
        self.exchange = exchange
        self.outbox = outbox
        self._deliver = deliver
        self.events = events
        self.halt = halt
        self.routes = routes
        self.counts = counts
        self.ledger = Ledger(lambda symbol: position_stream(account, symbol))
        self.ready = False
        self.held: deque[SubmitOrder | CancelOrder] = deque()
        self._scanned: dict[str, int] = {}
        self._reconciling = False
        self._again: str | None = None
        self.last: dict[str, Any] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self, inbox: Inbox) -> None:
        """Rebuild the ledger from the journal, attach to the client, reconcile."""
        # The gateway's own records first: the orders it journaled itself must
        # be known before the acks and fills on the position streams are read.
        for record in self.outbox.journal.read(self.stream):
            message = decode_record(record).message
            if isinstance(message, Command):
                self.ledger.observe_gateway(message)
            elif isinstance(message, OrderSubmit):
                stream = position_stream(message.account, message.symbol)
                self.ledger.observe(stream, message, possibly_sent=True)
        self._scan(startup=True)
        self.exchange.attach(inbox)
        logger.info(
            "network gateway started; reconciling before trading",
            extra={"account": self.account, **self.ledger.to_dict()},
        )
        self.request_reconcile("start-up")

    def stop(self) -> None:
        """Stop receiving from the client (it keeps results for the next incarnation)."""
        self.exchange.detach()

    def _scan(self, *, startup: bool) -> None:
        """Feed the ledger the position records journaled since the last scan."""
        prefix = f"position/{self.account}/"
        journal = self.outbox.journal
        for stream in journal.streams():
            if not stream.startswith(prefix):
                continue
            for record in journal.read(stream, self._scanned.get(stream, 0)):
                self.ledger.observe(stream, decode_record(record).message, possibly_sent=startup)
                self._scanned[stream] = record.seq

    # -- orders ----------------------------------------------------------------------

    def submit(self, m: SubmitOrder) -> None:
        """Send a journaled order: in doubt if it may have been sent before, never twice."""
        new = m.order
        cid = new.client_order_id
        self.routes[cid] = (m.order_id, m.stream)
        order = self.ledger.orders.get(cid)
        if order is None:
            record = OrderSubmit(
                order_id=m.order_id,
                client_order_id=cid,
                account=new.account,
                symbol=new.symbol,
                side=new.side,
                qty=new.qty,
                limit_price=new.limit_price,
                ts_ns=new.ts_ns,
            )
            # Write-ahead on the gateway's own journal too: when it is not the
            # positions' journal (a gateway worker), a restarted gateway would
            # otherwise find this order at the exchange and not know it as ours.
            self.outbox.append(self.stream, record)
            self.ledger.observe(m.stream, record)
            order = self.ledger.orders[cid]
        if order.terminal or order.acked:
            # The exchange has it (or had it): a re-sent submit is not news.
            self.counts["resends_ignored"] += 1
            return
        if not self.ready:
            self.held.append(m)
            return
        in_doubt = order.possibly_sent
        order.possibly_sent = True
        self.counts["submits_in_doubt" if in_doubt else "submits_sent"] += 1
        self.exchange.submit(new, in_doubt=in_doubt)

    def cancel(self, m: CancelOrder) -> None:
        """Cancel by client order id (held until the start-up reconciliation is done)."""
        self.routes[m.client_order_id] = (m.order_id, m.stream)
        if not self.ready:
            self.held.append(m)
            return
        order = self.ledger.orders.get(m.client_order_id)
        symbol = order.symbol if order is not None else m.stream.split("/", 2)[2]
        self.exchange.cancel(m.client_order_id, symbol, m.ts_ns)

    def route(self, cid: str) -> tuple[str, str] | None:
        """(order id, position stream) of a client order id posbus knows."""
        route = self.routes.get(cid)
        if route is not None:
            return route
        order = self.ledger.orders.get(cid)
        return None if order is None else (order.order_id, order.stream)

    def is_new_trade(self, symbol: str, trade_id: str) -> bool:
        """False for a trade already journaled (the exchange repeats itself)."""
        return (symbol, trade_id) not in self.ledger.trades

    def is_new_ack(self, cid: str) -> bool:
        """False when the order's ack is already journaled."""
        order = self.ledger.orders.get(cid)
        return order is None or not order.acked

    def observe(self, stream: str, message: Message) -> None:
        """Keep the ledger current with a record the actor just journaled."""
        self.ledger.observe(stream, message)

    # -- messages from the client ------------------------------------------------------

    def on_breaker(self, m: BreakerChanged) -> None:
        """Announce the breaker's state; reconcile when it closes."""
        self.events.publish(
            RiskEvent(
                event="breaker_state",
                state=m.state,
                previous_state=m.previous,
                reason=m.reason[:MAX_TEXT_LEN],
                account=self.account,
                symbol=None,
                values={"failures": str(m.failures)},
                ts_ns=m.ts_ns,
            )
        )
        self.counts[f"breaker.{m.state}"] += 1
        if m.state == "closed":
            self.request_reconcile("breaker closed")

    def on_due(self, m: ReconcileDue) -> None:
        """The client's timer (or a reconnect) says it is time."""
        self.request_reconcile(m.reason)

    def request_reconcile(self, reason: str) -> None:
        """Ask the client for a snapshot (one at a time; a request meanwhile runs after)."""
        if self._reconciling:
            self._again = reason
            return
        self._scan(startup=False)
        symbols = {o.symbol for o in self.ledger.orders.values()}
        symbols.update(stream.split("/", 2)[2] for stream in self._scanned)
        symbols.update(self.exchange.symbols)
        request = ReconcileRequest(
            reason=reason,
            symbols=tuple(sorted(symbols)),
            cursors=dict(self.ledger.cursors),
            lookups=tuple((o.client_order_id, o.symbol) for o in self.ledger.live_orders()),
            balances=True,
            known_exchange_ids=frozenset(self.ledger.by_exchange_id),
        )
        self._reconciling = True
        self.counts["reconcile_requests"] += 1
        self.exchange.reconcile(request)

    def on_snapshot(self, snapshot: ReconcileSnapshot) -> None:
        """Carry out the reconciliation plan, announce it, halt on what cannot be resolved."""
        self._reconciling = False
        self._scan(startup=False)
        policy = self.exchange.reconcile_policy
        found = plan(
            self.ledger,
            snapshot,
            adopt_unknown=policy.adopt_unknown,
            balance_tolerance=policy.balance_tolerance,
        )
        self._carry_out(found, snapshot.ts_ns)
        self._announce(found, snapshot, policy)
        if not snapshot.errors and not self.ready:
            self.ready = True
            self._release_held()
        if self._again is not None:
            reason, self._again = self._again, None
            self.request_reconcile(reason)

    # -- carrying out a plan -------------------------------------------------------------

    def _carry_out(self, found: ReconcilePlan, ts_ns: int) -> None:
        for item in found.adopt:
            self._adopt(item)
        for cid, exchange_order_id in found.acks:
            order = self.ledger.orders[cid]
            self._deliver(order.stream, OrderAck(order.order_id, cid, exchange_order_id, ts_ns))
        for trade in found.fills:
            self.deliver_trade(trade)
        for cid, status in found.ends:
            order = self.ledger.orders[cid]
            end: Message
            if status is ExchangeOrderStatus.EXPIRED:
                end = OrderExpired(order.order_id, ts_ns)
            else:
                end = OrderCancelled(order.order_id, "cancelled at the exchange", ts_ns)
            self._deliver(order.stream, end)
        for cid, symbol, exchange_order_id in found.track:
            self.exchange.track(cid, symbol, exchange_order_id)
        for cid in found.resend:
            order = self.ledger.orders[cid]
            self.counts["resent_after_lookup"] += 1
            self.exchange.submit(
                NewOrder(
                    client_order_id=cid,
                    account=self.account,
                    symbol=order.symbol,
                    side=order.side,
                    qty=order.qty,
                    limit_price=order.limit_price,
                    ts_ns=order.submitted_ts_ns,
                ),
                in_doubt=True,
            )
        for symbol, cursor in found.cursors.items():
            self.outbox.append(
                self.stream,
                Command(
                    name=CURSOR_RECORD,
                    args={"symbol": symbol, "trade_id": cursor.trade_id, "ts_ms": cursor.ts_ms},
                    request_id=f"{CURSOR_RECORD}:{symbol}:{cursor.trade_id}:{cursor.ts_ms}",
                ),
            )
            self.ledger.cursors[symbol] = cursor
        if found.baseline is not None:
            args: dict[str, Any] = {c: _plain(v) for c, v in found.baseline.items()}
            self.outbox.append(
                self.stream,
                Command(name=BASELINE_RECORD, args=args, request_id=f"{BASELINE_RECORD}:{ts_ns}"),
            )
            self.ledger.baseline = dict(found.baseline)

    def _adopt(self, item: OrderView | TradeView) -> None:
        eid = item.exchange_order_id
        cid = item.client_order_id or adopted_order_id(eid)
        qty = item.qty
        self.ledger.adopt(cid, eid, item.symbol, item.side, qty)
        self.outbox.append(
            self.stream,
            Command(
                name=ADOPTED_RECORD,
                args={
                    "client_order_id": cid,
                    "exchange_order_id": eid,
                    "symbol": item.symbol,
                    "side": item.side.value,
                    "qty": _plain(qty),
                },
                request_id=f"{ADOPTED_RECORD}:{eid}",
            ),
        )
        self.counts["orders_adopted"] += 1
        logger.warning(
            "exchange order posbus did not place: adopted",
            extra={"client_order_id": cid, "exchange_order_id": eid, "symbol": item.symbol},
        )

    def deliver_trade(self, trade: TradeView) -> None:
        """Journal one exchange trade as a fill on its position's stream (once per trade id)."""
        if not self.is_new_trade(trade.symbol, trade.trade_id):
            return
        cid = trade.client_order_id or self.ledger.cid_of(trade.exchange_order_id)
        order = None if cid is None else self.ledger.orders.get(cid)
        if order is not None:
            order_id, stream, client_id = order.order_id, order.stream, order.client_order_id
        else:
            order_id = adopted_order_id(trade.exchange_order_id)
            stream, client_id = position_stream(self.account, trade.symbol), cid or order_id
        self.counts["fills_reconciled"] += 1
        self._deliver(
            stream,
            OrderFill(
                order_id=order_id,
                client_order_id=client_id,
                trade_id=trade.trade_id,
                account=self.account,
                symbol=trade.symbol,
                side=trade.side,
                qty=trade.qty,
                price=trade.price,
                fee=trade.fee,
                fee_currency=trade.fee_currency,
                liquidity=Liquidity(trade.liquidity),
                ts_ns=trade.ts_ns,
                fee_mark=trade.fee_mark,
            ),
        )

    def _release_held(self) -> None:
        held, self.held = self.held, deque()
        for m in held:
            if isinstance(m, SubmitOrder):
                self.submit(m)
            else:
                self.cancel(m)

    # -- announcing ----------------------------------------------------------------------

    def _announce(
        self, found: ReconcilePlan, snapshot: ReconcileSnapshot, policy: ReconcilePolicy
    ) -> None:
        halts: list[str] = []
        warnings: list[str] = []
        if found.lost:
            halts.append(
                f"orders the exchange acknowledged but no longer knows: {list(found.lost)}"
            )
        if found.unknown_orders:
            described = [
                f"{v.client_order_id} ({v.symbol} {v.side.value} {v.qty} "
                f"@ {v.limit_price if v.limit_price is not None else 'market'})"
                for v in found.unknown_orders
            ]
            halts.append(f"unknown exchange orders: {', '.join(described)}")
        if found.foreign_trades:
            ids = [f"{t.symbol}#{t.trade_id}" for t in found.foreign_trades]
            halts.append(f"trades of orders posbus does not know: {', '.join(ids)}")
        if found.mismatches:
            text = "; ".join(
                f"{m.currency}: expected {m.expected}, exchange has {m.actual}"
                for m in found.mismatches
            )
            (halts if policy.halt_on_balance_mismatch else warnings).append(
                f"balance mismatch: {text}"
            )
        if halts:
            state = "halted"
        elif warnings:
            state = "mismatch"
        elif found.adopt:
            state = "adopted"
        elif snapshot.errors:
            state = "incomplete"
        elif found.repaired:
            state = "repaired"
        else:
            state = "clean"
        notes = [*halts, *warnings]
        if found.adopt:
            notes.append(f"adopted {len(found.adopt)} unknown exchange order(s)/trade(s)")
        if found.unknown:
            notes.append(f"unknown: {'; '.join(found.unknown)}")
        reason = f"{snapshot.reason}: " + ("; ".join(notes) if notes else "books agree")
        values = {
            "fills_applied": str(len(found.fills)),
            "acks": str(len(found.acks)),
            "ends": str(len(found.ends)),
            "resent": str(len(found.resend)),
            "lost": str(len(found.lost)),
            "adopted": str(len(found.adopt)),
            "unknown_orders": str(len(found.unknown_orders)),
            "foreign_trades": str(len(found.foreign_trades)),
            "history_trades": str(found.history),
        }
        for m in found.mismatches:
            values[f"expected.{m.currency}"] = _plain(m.expected)
            values[f"actual.{m.currency}"] = _plain(m.actual)
        self.last = {"state": state, "reason": reason, "ts_ns": snapshot.ts_ns, **values}
        self.counts[f"reconciliation.{state}"] += 1
        log = (
            logger.error if halts else logger.warning if warnings or found.unknown else logger.info
        )
        log("reconciliation %s", state, extra={"account": self.account, "reason": reason, **values})
        self.events.publish(
            RiskEvent(
                event="reconciliation",
                state=state,
                previous_state=None,
                reason=reason[:MAX_TEXT_LEN],
                account=self.account,
                symbol=None,
                values=values,
                ts_ns=snapshot.ts_ns,
            )
        )
        if halts and self.halt is not None:
            self.halt(f"reconciliation: {'; '.join(halts)}"[:MAX_TEXT_LEN])

    def inspect(self) -> dict[str, Any]:
        """Ledger, hold, last reconciliation and the client's own view (credentials redacted)."""
        return {
            "ready": self.ready,
            "held": len(self.held),
            "reconciling": self._reconciling,
            "last_reconciliation": self.last,
            "ledger": self.ledger.to_dict(),
            "exchange": self.exchange.inspect(),
        }


def _plain(value: Decimal) -> str:
    """A decimal as plain text (no exponent), as the wire's decimal strings require."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
