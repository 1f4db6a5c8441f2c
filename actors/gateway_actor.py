"""GatewayActor: one exchange account, as a pykka actor.

It turns `SubmitOrder` / `CancelOrder` requests from positions into exchange
calls and the exchange's execution reports into `execution_signal` records,
each journaled on the position's stream before the position is told
(posbus.actors.delivery). The exchange client is anything with the simulated
exchange's interface (submit, cancel, on_market, fills, fetch_order).

Fills are never lost across a gateway crash: the gateway journals how far it
has delivered the exchange's fill ledger (`gateway/ACCOUNT` stream) and, when
it starts, delivers every fill after that watermark again. A fill delivered
twice is harmless: positions ignore a trade id they have applied.

This actor must never submit an order twice: the exchange deduplicates by
client order id, and a re-sent submit only replays the order's reports.

A network exchange (a `ReportingExchange`, the ccxt gateway) answers later,
as messages told to this actor, so its mailbox never waits on the network;
the ledger, the start-up hold and reconciliation of such an exchange live in
posbus.actors.exchange_sync (`ExchangeSync`), which this actor drives from its
own thread.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from posbus.actors.control import CancelOrder, Crash, InjectedCrash, Inspect, SubmitOrder
from posbus.actors.delivery import Doorbell, Outbox, decode_record
from posbus.actors.events import EventSink
from posbus.actors.exchange_sync import ExchangeSync, ReportingExchange
from posbus.actors.model.exchange_events import (
    BreakerChanged,
    ReconcileDue,
    ReconcileSnapshot,
)
from posbus.actors.model.exchange_reports import (
    ExecutionReport,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from posbus.actors.model.exchange_reports import OrderView as ExchangeOrderView
from posbus.actors.model.fill import Fill
from posbus.actors.position_actor import position_stream
from posbus.actors.supervision.link import SupervisorLink
from posbus.actors.supervision.supervised_actor import SupervisedActor
from posbus.bus.messages import (
    Command,
    Liquidity,
    MarketUpdate,
    Message,
    OrderAck,
    OrderFill,
)
from posbus.bus.messages import OrderCancelled as CancelledSignal
from posbus.bus.messages import OrderExpired as ExpiredSignal
from posbus.bus.messages import OrderRejected as RejectedSignal

logger = logging.getLogger(__name__)


class ExchangeClient(Protocol):
    """What a gateway needs from an exchange adapter (called from the gateway's thread)."""

    def submit(self, order: NewOrder) -> list[ExecutionReport]: ...

    def cancel(self, client_order_id: str, ts_ns: int) -> list[ExecutionReport]: ...

    def on_market(self, symbol: Any, bid: Any, ask: Any, ts_ns: int) -> list[ExecutionReport]: ...

    def fills(self, since_index: int = 0) -> list[Fill]: ...

    def fetch_order(self, client_order_id: str) -> ExchangeOrderView | None: ...


@dataclass(frozen=True, slots=True)
class ExchangeReports:
    """Reports the exchange sent on its own, not as the answer to a call.

    A user-data stream pushes these in live trading; in a backtest they are
    the answers that reach us once the simulated latency has passed.
    Handled like the answer to a submit: fills and acks go to their positions.
    """

    reports: tuple[ExecutionReport, ...]


def gateway_stream(account: str) -> str:
    """The journal stream of the gateway of `account`."""
    return f"gateway/{account}"


class GatewayActor(SupervisedActor):
    """The gateway of one account (own pykka thread; every method runs there).

    Told: `SubmitOrder`, `CancelOrder`, `MarketUpdate`, `ExchangeReports`, `Crash`;
    from a network exchange also `BreakerChanged`, `ReconcileDue` (tell one
    to reconcile now) and `ReconcileSnapshot`. Asked: `Inspect`.

    Args:
        link: its supervisor's link.
        account: the exchange account.
        exchange: the exchange client.
        outbox: journal + delivery.
        lookup: maps a position stream to the doorbell of its actor (None when
            it is not running: the record waits in the journal).
        events: where it announces what it did.
        halt: asks the risk supervisor to halt the account (a reconciliation
            found what it cannot resolve); None only reports.
    """

    def __init__(
        self,
        link: SupervisorLink | None,
        *,
        account: str,
        exchange: ExchangeClient | ReportingExchange,
        outbox: Outbox,
        lookup: Callable[[str], Doorbell | None],
        events: EventSink,
        halt: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(link)
        self.account = account
        self.exchange = exchange
        self.outbox = outbox
        self.lookup = lookup
        self.events = events
        self.stream = gateway_stream(account)
        self.routes: dict[str, tuple[str, str]] = {}  # client order id -> (order id, stream)
        # Client order ids the (synchronous) exchange rejected on submit. It keeps
        # no trace of them and would take a re-sent submit as a new order: the
        # order, already rejected here (and journaled so), would then trade.
        self.rejected: set[str] = set()
        self.delivered_fills = 0
        self.counts: Counter[str] = Counter()
        self.sync: ExchangeSync | None = None
        # The synchronous client (the simulated exchange), None for a network one.
        self.client: ExchangeClient | None = None
        if not isinstance(exchange, ReportingExchange):
            self.client = exchange
        else:
            self.sync = ExchangeSync(
                account=account,
                stream=self.stream,
                exchange=exchange,
                outbox=outbox,
                deliver=self._deliver,
                events=events,
                halt=halt,
                routes=self.routes,
                counts=self.counts,
            )

    def on_start(self) -> None:
        """Deliver the fills the previous incarnation may not have delivered.

        With a network exchange: rebuild the ledger from the journal and
        reconcile (see ExchangeSync); fills come back through reconciliation.
        """
        if self.sync is not None:
            self.sync.start(self.actor_ref.tell)
            return
        for record in self.outbox.journal.read(self.stream):
            message = decode_record(record).message
            if isinstance(message, Command) and message.name == "gateway.fills_delivered":
                index = message.args.get("index")
                if isinstance(index, int):
                    self.delivered_fills = index
        assert self.client is not None
        missed = self.client.fills(self.delivered_fills)
        for fill in missed:
            self._deliver_fill(fill, "taker")
        self._advance_watermark()
        logger.info(
            "gateway started",
            extra={"account": self.account, "redelivered_fills": len(missed)},
        )

    def on_stop(self) -> None:
        """Report the exit; a network client keeps its answers for the next incarnation."""
        super().on_stop()
        if self.sync is not None:
            self.sync.stop()

    def on_receive(self, message: Any) -> Any:
        """Dispatch one message (actor thread)."""
        if self.sync is not None and self._on_network(self.sync, message):
            return None
        if isinstance(message, MarketUpdate):  # by far the most frequent: asked first
            assert self.client is not None
            reports = self.client.on_market(message.symbol, message.bid, message.ask, message.ts_ns)
            if reports:  # mostly none: no order rests on the symbol or none was touched
                self._handle(reports)
            return None
        if isinstance(message, SubmitOrder):
            cid = message.order.client_order_id
            self.routes[cid] = (message.order_id, message.stream)
            if cid in self.rejected:
                # Its rejection is journaled and published: a lost copy is repaired.
                self.counts["resends_of_rejected_ignored"] += 1
                return None
            self.counts["submits"] += 1
            assert self.client is not None
            reports = self.client.submit(message.order)
            if reports and isinstance(reports[0], OrderRejected):
                self.rejected.add(cid)
            self._handle(reports)
            return None
        if isinstance(message, CancelOrder):
            self.routes[message.client_order_id] = (message.order_id, message.stream)
            self.counts["cancels"] += 1
            assert self.client is not None
            self._handle(self.client.cancel(message.client_order_id, message.ts_ns))
            return None
        if isinstance(message, ExchangeReports):
            self._handle(list(message.reports))
            return None
        if isinstance(message, list):
            for item in message:
                self.on_receive(item)
            return None
        if isinstance(message, Inspect):
            return self.inspect()
        if isinstance(message, Crash):
            raise InjectedCrash(message.reason)
        raise TypeError(f"gateway {self.account}: unexpected message {type(message).__name__}")

    def _on_network(self, sync: ExchangeSync, message: Any) -> bool:
        """Messages handled differently with a network exchange; False for the others."""
        if isinstance(message, SubmitOrder):
            self.counts["submits"] += 1
            sync.submit(message)
        elif isinstance(message, CancelOrder):
            self.counts["cancels"] += 1
            sync.cancel(message)
        elif isinstance(message, MarketUpdate):
            pass  # the exchange itself is the market: nothing to match here
        elif isinstance(message, BreakerChanged):
            sync.on_breaker(message)
        elif isinstance(message, ReconcileDue):
            sync.on_due(message)
        elif isinstance(message, ReconcileSnapshot):
            sync.on_snapshot(message)
        else:
            return False
        return True

    def _deliver(self, stream: str, signal: Message) -> None:
        """Journal `signal` on a position stream, then tell the position."""
        self.outbox.deliver(stream, signal, self.lookup(stream))
        if self.sync is not None:
            self.sync.observe(stream, signal)

    def _handle(self, reports: list[ExecutionReport]) -> None:
        fills = 0
        for report in reports:
            if isinstance(report, OrderFilled):
                self._deliver_fill(report.fill, report.liquidity)
                fills += 1
                continue
            route = self._route(report.client_order_id)
            if route is None:
                logger.warning(
                    "report for an order no position claims",
                    extra={"account": self.account, "client_order_id": report.client_order_id},
                )
                self.counts["unrouted"] += 1
                continue
            order_id, stream = route
            signal: Message
            if isinstance(report, OrderAccepted):
                if self.sync is not None and not self.sync.is_new_ack(report.client_order_id):
                    continue  # already journaled (a lookup found it again)
                signal = OrderAck(
                    order_id, report.client_order_id, report.exchange_order_id, report.ts_ns
                )
            elif isinstance(report, OrderRejected):
                signal = RejectedSignal(order_id, report.reason, report.ts_ns)
            elif isinstance(report, OrderCancelled):
                signal = CancelledSignal(order_id, report.reason, report.ts_ns)
            elif isinstance(report, OrderExpired):
                signal = ExpiredSignal(order_id, report.ts_ns)
            else:  # pragma: no cover - the union is exhaustive
                raise TypeError(f"unknown report {report!r}")
            self.counts[type(report).__name__] += 1
            self._deliver(stream, signal)
        if fills and self.client is not None:
            self._advance_watermark()

    def _deliver_fill(self, fill: Fill, liquidity: str) -> None:
        if self.sync is not None and not self.sync.is_new_trade(fill.symbol, fill.trade_id):
            self.counts["duplicate_fills"] += 1
            return
        route = self._route(fill.order_id)
        order_id, stream = (
            route if route else (fill.order_id, position_stream(fill.account, fill.symbol))
        )
        signal = OrderFill(
            order_id=order_id,
            client_order_id=fill.order_id,
            trade_id=fill.trade_id,
            account=fill.account,
            symbol=fill.symbol,
            side=fill.side,
            qty=fill.qty,
            price=fill.price,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            liquidity=Liquidity(liquidity),
            ts_ns=fill.ts_ns,
            fee_mark=fill.fee_mark,
        )
        self.counts["fills"] += 1
        self._deliver(stream, signal)

    def _route(self, client_order_id: str) -> tuple[str, str] | None:
        route = self.routes.get(client_order_id)
        if route is not None:
            return route
        if self.sync is not None:
            return self.sync.route(client_order_id)  # never a network call from here
        assert self.client is not None
        view = self.client.fetch_order(client_order_id)
        if view is None:
            return None
        # The simulated exchange's fills carry the client order id as order id;
        # the position maps it back to its own order by client order id.
        return client_order_id, position_stream(view.account, view.symbol)

    def _advance_watermark(self) -> None:
        assert self.client is not None
        total = self.delivered_fills + len(self.client.fills(self.delivered_fills))
        if total == self.delivered_fills:
            return
        self.delivered_fills = total
        self.outbox.append(
            self.stream,
            Command(
                name="gateway.fills_delivered",
                args={"index": total},
                request_id=f"{self.stream}:{total}",
            ),
        )

    def inspect(self) -> dict[str, Any]:
        """Routes, delivered fills and counters, JSON-ready.

        With a network exchange also its breaker, ledger and last
        reconciliation (`network`); credentials appear redacted.
        """
        view: dict[str, Any] = {
            "name": self.stream,
            "account": self.account,
            "delivered_fills": self.delivered_fills,
            "known_orders": len(self.routes),
            "counts": dict(self.counts),
        }
        if self.sync is not None:
            view["network"] = self.sync.inspect()
        return view
