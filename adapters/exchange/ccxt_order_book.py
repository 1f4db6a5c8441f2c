"""What the ccxt gateway knows of its orders: in flight, unresolved, working, to cancel, done.

`OrderBook` is plain state with the bookkeeping that turns the exchange's
trades and order states into execution reports exactly once: a trade already
reported is never reported again, an order that ended is remembered (a
bounded memory) so a repeated submit is ignored. It does no I/O; the
gateway's placement, polling and reconciliation reads share it, all on the
gateway's I/O loop only.

This module must never report a fill twice.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from posbus.actors.model.exchange_events import TradeView
from posbus.actors.model.exchange_reports import (
    ExchangeOrderStatus,
    ExecutionReport,
    NewOrder,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderView,
)
from posbus.actors.model.fill import Fill

_DONE_MEMORY = 10_000


@dataclass(slots=True)
class Placement:
    """An order being placed; `in_doubt` once it may have reached the exchange."""

    order: NewOrder
    in_doubt: bool
    proof_after: float = 0.0  # loop time after which a lookup's "absent" is proof


@dataclass(slots=True)
class WorkingOrder:
    """An order open at the exchange, polled for fills."""

    symbol: str
    exchange_order_id: str
    reported_filled: Decimal = Decimal(0)
    trade_ids: set[str] = field(default_factory=set)


class OrderBook:
    """The orders of one gateway by client order id (I/O loop only)."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.working: dict[str, WorkingOrder] = {}
        self.unresolved: dict[str, Placement] = {}
        self.inflight: set[str] = set()
        self.deferred_cancels: dict[str, tuple[str, int]] = {}  # cid -> (symbol, ts_ns)
        # Orders the user-data stream saw fill or end while their placement was
        # still unanswered: polled once they work (the answer may predate it).
        self.stream_rechecks: set[str] = set()
        self._done: OrderedDict[str, None] = OrderedDict()

    def knows(self, cid: str) -> bool:
        """Whether the order is being placed, unresolved, working or done."""
        return (
            cid in self.inflight
            or cid in self.working
            or cid in self.unresolved
            or cid in self._done
        )

    def is_done(self, cid: str) -> bool:
        """Whether the order ended and its end was reported (within the bounded memory)."""
        return cid in self._done

    def working_cid(self, exchange_order_id: str) -> str | None:
        """The client order id of the working order with this exchange id, if one works."""
        for cid, working in self.working.items():
            if working.exchange_order_id == exchange_order_id:
                return cid
        return None

    def outcome_unknown(self, cid: str) -> bool:
        """Whether the order is being placed or its placement is unresolved."""
        return cid in self.inflight or cid in self.unresolved

    def track(self, cid: str, symbol: str, exchange_order_id: str) -> None:
        """Treat an order as working (known open after a restart, or adopted)."""
        if cid not in self.working:
            self.working[cid] = WorkingOrder(symbol, exchange_order_id)
            self._done.pop(cid, None)

    def working_of(self, view: OrderView) -> WorkingOrder:
        """The order's working record, or a fresh one (not yet tracked) when it has none."""
        return self.working.get(view.client_order_id) or WorkingOrder(
            view.symbol, view.exchange_order_id
        )

    def settle(self, view: OrderView, working: WorkingOrder, ts_ns: int) -> list[ExecutionReport]:
        """Keep an open order working; end a closed one and return how it ended."""
        cid = view.client_order_id
        if view.status.is_open:
            self.working[cid] = working
            return []
        self.working.pop(cid, None)
        ended = _end_reports(view, ts_ns)
        self.forget(cid)
        return ended

    def fills(self, trades: Sequence[TradeView], working: WorkingOrder) -> list[ExecutionReport]:
        """Reports of the trades not reported before (recorded in `working`)."""
        out: list[ExecutionReport] = []
        for trade in trades:
            if trade.trade_id in working.trade_ids:
                continue
            working.trade_ids.add(trade.trade_id)
            working.reported_filled += trade.qty
            out.append(OrderFilled(trade.client_order_id or "", self._fill(trade), trade.liquidity))
        return out

    def forget(self, cid: str) -> None:
        """Remember the order as done (ignore its resubmission), within a bounded memory."""
        self._done[cid] = None
        while len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)

    def status(self) -> dict[str, Any]:
        """The tracked orders, JSON-ready (for `inspect`)."""
        return {
            "working_orders": sorted(self.working),
            "unresolved_orders": sorted(self.unresolved),
            "deferred_cancels": sorted(self.deferred_cancels),
            "in_flight": len(self.inflight),
        }

    def _fill(self, trade: TradeView) -> Fill:
        return Fill(
            trade_id=trade.trade_id,
            account=self.account,
            symbol=trade.symbol,
            side=trade.side,
            qty=trade.qty,
            price=trade.price,
            fee=trade.fee,
            fee_currency=trade.fee_currency,
            ts_ns=trade.ts_ns,
            order_id=trade.client_order_id or "",
            fee_mark=trade.fee_mark,
        )


def _end_reports(view: OrderView, ts_ns: int) -> list[ExecutionReport]:
    if view.status is ExchangeOrderStatus.CANCELLED:
        return [OrderCancelled(view.client_order_id, ts_ns, "cancelled at the exchange")]
    if view.status is ExchangeOrderStatus.EXPIRED:
        return [OrderExpired(view.client_order_id, ts_ns)]
    return []
