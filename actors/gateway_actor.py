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
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from posbus.actors.control import CancelOrder, Crash, InjectedCrash, Inspect, SubmitOrder
from posbus.actors.delivery import Doorbell, Outbox, decode_record
from posbus.actors.events import EventSink
from posbus.actors.model.fill import Fill
from posbus.actors.position_actor import position_stream
from posbus.actors.supervision.link import SupervisorLink
from posbus.actors.supervision.supervised_actor import SupervisedActor
from posbus.adapters.exchange.reports import (
    ExecutionReport,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
)
from posbus.adapters.exchange.reports import OrderView as ExchangeOrderView
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


def gateway_stream(account: str) -> str:
    """The journal stream of the gateway of `account`."""
    return f"gateway/{account}"


class GatewayActor(SupervisedActor):
    """The gateway of one account (own pykka thread; every method runs there).

    Told: `SubmitOrder`, `CancelOrder`, `MarketUpdate`, `Crash`. Asked: `Inspect`.

    Args:
        link: its supervisor's link.
        account: the exchange account.
        exchange: the exchange client.
        outbox: journal + delivery.
        lookup: maps a position stream to the doorbell of its actor (None when
            it is not running: the record waits in the journal).
        events: where it announces what it did.
    """

    def __init__(
        self,
        link: SupervisorLink | None,
        *,
        account: str,
        exchange: ExchangeClient,
        outbox: Outbox,
        lookup: Callable[[str], Doorbell | None],
        events: EventSink,
    ) -> None:
        super().__init__(link)
        self.account = account
        self.exchange = exchange
        self.outbox = outbox
        self.lookup = lookup
        self.events = events
        self.stream = gateway_stream(account)
        self.routes: dict[str, tuple[str, str]] = {}  # client order id -> (order id, stream)
        self.delivered_fills = 0
        self.counts: Counter[str] = Counter()

    def on_start(self) -> None:
        """Deliver the fills the previous incarnation may not have delivered."""
        for record in self.outbox.journal.read(self.stream):
            message = decode_record(record).message
            if isinstance(message, Command) and message.name == "gateway.fills_delivered":
                index = message.args.get("index")
                if isinstance(index, int):
                    self.delivered_fills = index
        missed = self.exchange.fills(self.delivered_fills)
        for fill in missed:
            self._deliver_fill(fill, "taker")
        self._advance_watermark()
        logger.info(
            "gateway started",
            extra={"account": self.account, "redelivered_fills": len(missed)},
        )

    def on_receive(self, message: Any) -> Any:
        """Dispatch one message (actor thread)."""
        if isinstance(message, SubmitOrder):
            self.routes[message.order.client_order_id] = (message.order_id, message.stream)
            self.counts["submits"] += 1
            self._handle(self.exchange.submit(message.order))
            return None
        if isinstance(message, CancelOrder):
            self.routes[message.client_order_id] = (message.order_id, message.stream)
            self.counts["cancels"] += 1
            self._handle(self.exchange.cancel(message.client_order_id, message.ts_ns))
            return None
        if isinstance(message, MarketUpdate):
            self._handle(
                self.exchange.on_market(message.symbol, message.bid, message.ask, message.ts_ns)
            )
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
            self.outbox.deliver(stream, signal, self.lookup(stream))
        if fills:
            self._advance_watermark()

    def _deliver_fill(self, fill: Fill, liquidity: str) -> None:
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
        )
        self.counts["fills"] += 1
        self.outbox.deliver(stream, signal, self.lookup(stream))

    def _route(self, client_order_id: str) -> tuple[str, str] | None:
        route = self.routes.get(client_order_id)
        if route is not None:
            return route
        view = self.exchange.fetch_order(client_order_id)
        if view is None:
            return None
        # The simulated exchange's fills carry the client order id as order id;
        # the position maps it back to its own order by client order id.
        return client_order_id, position_stream(view.account, view.symbol)

    def _advance_watermark(self) -> None:
        total = self.delivered_fills + len(self.exchange.fills(self.delivered_fills))
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
        """Routes, delivered fills and counters, JSON-ready."""
        return {
            "name": self.stream,
            "account": self.account,
            "delivered_fills": self.delivered_fills,
            "known_orders": len(self.routes),
            "counts": dict(self.counts),
        }
