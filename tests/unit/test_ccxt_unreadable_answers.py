"""The ccxt gateway never guesses an answer it cannot read: it looks the order up instead.

The gateway's orders, polling and reconciliation reads run here on a scripted
ccxt client (answers as ccxt parses them, e.g. OKX's createOrder, which says
nothing of the order's state) and the real call guard, order book and inbox.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any

import ccxt

from posbus.actors.gateway_actor import ExchangeReports
from posbus.actors.model.exchange_events import ReconcileRequest, ReconcileSnapshot
from posbus.actors.model.exchange_reports import (
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
)
from posbus.actors.model.side import Side
from posbus.adapters.clock import ManualClock
from posbus.adapters.exchange.ccxt_actor_inbox import ActorInbox
from posbus.adapters.exchange.ccxt_call_guard import CallGuard
from posbus.adapters.exchange.ccxt_config import GatewayConfig
from posbus.adapters.exchange.ccxt_convert import is_synthetic_trade_id
from posbus.adapters.exchange.ccxt_fee_marks import FeeMarks
from posbus.adapters.exchange.ccxt_order_book import OrderBook
from posbus.adapters.exchange.ccxt_orders import CcxtOrders
from posbus.adapters.exchange.ccxt_polling import WorkingOrderPoller
from posbus.adapters.exchange.ccxt_reconcile_reads import ReconcileReads

SYMBOL = "BTC/USDT:USDT"
ORDER = NewOrder("c1", "A", SYMBOL, Side.BUY, Decimal("0.01"), None, 0)


def ccxt_order(status: str | None, filled: str | None = "0", **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "id": "2896576259728695296",
        "clientOrderId": "c1",
        "symbol": SYMBOL,
        "type": "market",
        "side": "buy",
        "amount": "0.01",
        "filled": filled,
        "status": status,
        "price": None,
        "trades": [],
    }
    answer.update(fields)
    return answer


class ScriptedVenue:
    """The ccxt client's calls the gateway makes, answered from lists (first in, first out)."""

    def __init__(self) -> None:
        self.has = {"fetchOrderTrades": True}
        self.markets = {SYMBOL: {}}
        self.created: list[dict[str, Any]] = []
        self.looked_up: list[dict[str, Any] | None] = []
        self.open_orders: list[dict[str, Any]] = []
        self.order_trades: list[dict[str, Any]] = []
        self.cancelled: list[dict[str, Any]] = []
        self.balance: dict[str, Any] = {}
        self.sent = 0

    def amount_to_precision(self, symbol: str, amount: str) -> str:
        return amount

    async def create_order(self, *args: Any) -> dict[str, Any]:
        self.sent += 1
        return self.created.pop(0)

    async def fetch_order(self, *args: Any) -> dict[str, Any]:
        found = self.looked_up.pop(0)
        if found is None:
            raise ccxt.OrderNotFound("binance Order does not exist.")
        return found

    async def fetch_open_orders(self, *args: Any) -> list[dict[str, Any]]:
        return self.open_orders

    async def fetch_order_trades(self, *args: Any) -> list[dict[str, Any]]:
        return self.order_trades

    async def cancel_order(self, *args: Any) -> dict[str, Any]:
        return self.cancelled.pop(0)

    async def fetch_my_trades(self, *args: Any) -> list[dict[str, Any]]:
        return []

    async def fetch_balance(self) -> dict[str, Any]:
        return self.balance


class Loop:
    """The gateway loop's time and local tasks, run to the end by `drain`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.tasks: list[Coroutine[Any, Any, Any]] = []

    def time(self) -> float:
        return self.now

    def spawn_local(self, task: Coroutine[Any, Any, Any]) -> None:
        self.tasks.append(task)

    def call_later(self, delay: float, callback: Any, *args: Any) -> None:
        pass  # the retry of an incomplete reconciliation: not followed here


class Gateway:
    """CcxtOrders, the poller and the reconciliation reads over one ScriptedVenue."""

    def __init__(self) -> None:
        config = GatewayConfig(kind="ccxt", recv_window_ms=1)
        clock = ManualClock(1_700_000_000_000_000_000)
        self.counts: Counter[str] = Counter()
        self.told: list[object] = []
        self.venue = ScriptedVenue()
        self.loop = Loop()
        self.guard = CallGuard(
            config,
            account="A",
            clock=clock,
            rng=random.Random(1),
            counts=self.counts,
            tell=self.told.append,
            on_closed=lambda: None,
            on_change=lambda: None,
        )
        self.guard.exchange = self.venue
        self.book = OrderBook("A")
        inbox = ActorInbox()
        inbox.attach(self.told.append)
        fee_marks = FeeMarks(guard=self.guard, clock=clock, counts=self.counts)
        self.orders = CcxtOrders(
            config,
            clock=clock,
            guard=self.guard,
            book=self.book,
            inbox=inbox,
            loop=self.loop,  # type: ignore[arg-type]
            counts=self.counts,
            fee_marks=fee_marks,
        )
        self.poller = WorkingOrderPoller(
            guard=self.guard, book=self.book, orders=self.orders, counts=self.counts
        )
        self.reads = ReconcileReads(
            config,
            clock=clock,
            guard=self.guard,
            book=self.book,
            orders=self.orders,
            loop=self.loop,  # type: ignore[arg-type]
            tell=self.told.append,
            counts=self.counts,
            fee_marks=fee_marks,
        )

    def run(self, task: Coroutine[Any, Any, Any]) -> None:
        asyncio.run(task)

    def reports(self) -> list[object]:
        out: list[object] = []
        for message in self.told:
            if isinstance(message, ExchangeReports):
                out.extend(message.reports)
        self.told.clear()
        return out


def test_a_placement_answer_without_a_state_is_accepted_kept_working_never_cancelled() -> None:
    gateway = Gateway()
    gateway.venue.created.append(ccxt_order(None, filled=None, amount=None))  # OKX's answer
    gateway.run(gateway.orders.submit(ORDER, in_doubt=False))

    [accepted] = gateway.reports()
    assert accepted == OrderAccepted("c1", "2896576259728695296", SYMBOL, accepted.ts_ns)
    assert "c1" in gateway.book.working
    assert gateway.counts["unreadable.order"] == 1


def test_the_next_poll_looks_the_order_of_unknown_state_up_and_applies_its_fills() -> None:
    gateway = Gateway()
    gateway.venue.created.append(ccxt_order(None, filled=None))
    gateway.run(gateway.orders.submit(ORDER, in_doubt=False))
    gateway.reports()

    # Not among the open orders: looked up by client order id; it filled.
    gateway.venue.looked_up.append(ccxt_order("closed", filled="0.01"))
    gateway.venue.order_trades = [
        {"id": None, "order": "2896576259728695296", "symbol": SYMBOL, "side": "buy",
         "price": "60000", "amount": "0.01", "timestamp": 1_700_000_000_000},
    ]  # fmt: skip
    gateway.run(gateway.poller.poll())

    [filled] = gateway.reports()
    assert isinstance(filled, OrderFilled)
    assert filled.fill.qty == Decimal("0.01")
    assert is_synthetic_trade_id(filled.fill.trade_id)
    assert gateway.counts["synthetic_trade_ids"] == 1
    assert "c1" not in gateway.book.working


def test_an_order_still_unreadable_at_the_poll_stays_working_and_is_counted_again() -> None:
    gateway = Gateway()
    gateway.venue.created.append(ccxt_order(None))
    gateway.run(gateway.orders.submit(ORDER, in_doubt=False))
    gateway.reports()
    gateway.venue.open_orders = [ccxt_order("PENDING_NEW")]

    gateway.run(gateway.poller.poll())

    assert gateway.reports() == []
    assert "c1" in gateway.book.working
    assert gateway.counts["unreadable.order"] == 2


def test_a_placement_answer_naming_no_order_leaves_it_in_doubt_looked_up_not_resent() -> None:
    gateway = Gateway()
    gateway.venue.created.append(ccxt_order(None, id=None))
    gateway.run(gateway.orders.submit(ORDER, in_doubt=False))

    assert gateway.reports() == []
    assert gateway.book.outcome_unknown("c1")
    assert gateway.counts["orders_unresolved"] == 1

    # The next tick retries it as an order in doubt: a lookup, not a second send.
    gateway.venue.looked_up.append(ccxt_order("open"))
    gateway.orders.resume()
    for task in gateway.loop.tasks:
        gateway.run(task)

    [accepted] = gateway.reports()
    assert isinstance(accepted, OrderAccepted)
    assert gateway.venue.sent == 1
    assert "c1" in gateway.book.working


def test_an_unreadable_cancel_answer_is_settled_by_a_lookup() -> None:
    gateway = Gateway()
    gateway.venue.created.append(ccxt_order("open"))
    gateway.run(gateway.orders.submit(ORDER, in_doubt=False))
    gateway.reports()

    gateway.venue.cancelled.append({"id": "2896576259728695296", "status": None})
    gateway.venue.looked_up.append(ccxt_order("canceled"))
    gateway.run(gateway.orders.cancel("c1", SYMBOL, 0))

    [cancelled] = gateway.reports()
    assert isinstance(cancelled, OrderCancelled)
    assert "c1" not in gateway.book.working
    assert gateway.counts["unreadable.order"] == 1


def test_a_balance_posbus_cannot_read_leaves_the_reconciliation_incomplete() -> None:
    gateway = Gateway()
    gateway.venue.balance = {"total": {"USDT": "100", "BTC": None}}

    gateway.run(gateway.reads.reconcile(ReconcileRequest("periodic", (SYMBOL,))))

    [snapshot] = [m for m in gateway.told if isinstance(m, ReconcileSnapshot)]
    assert snapshot.balances is None
    assert any(error.startswith("balances:") for error in snapshot.errors)
    assert gateway.counts["unreadable.balance"] == 1
