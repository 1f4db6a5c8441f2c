"""Polling of the ccxt gateway's working orders for fills and ends (REST).

Each round reads the open orders of every symbol with a working order; an
order that left the list is looked up by client order id, and whatever
filled or ended since the last report is reported (`fills_from_poll`). One
round runs at a time (the gateway's timer skips a tick while one runs;
`poll_now` and the user-data stream's reconciliation wait their turn). While
the user-data stream is up and reconciled the timer starts no rounds
(ccxt_user_stream.py).

Everything here runs on the gateway's I/O loop. A failed round is counted
and logged and waits for the next one: it must never end a working order on
a failed read, and never report a fill twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from decimal import Decimal
from functools import partial

from posbus.actors.model.errors import PosbusError
from posbus.adapters.exchange.ccxt_call_guard import CallGuard, log_fields
from posbus.adapters.exchange.ccxt_convert import decimal_of
from posbus.adapters.exchange.ccxt_order_book import OrderBook
from posbus.adapters.exchange.ccxt_orders import CcxtOrders

logger = logging.getLogger(__name__)


class WorkingOrderPoller:
    """Rounds of polling the working orders of one gateway (I/O loop only)."""

    def __init__(
        self, *, guard: CallGuard, book: OrderBook, orders: CcxtOrders, counts: Counter[str]
    ) -> None:
        self._guard = guard
        self._book = book
        self._orders = orders
        self._counts = counts
        self._lock = asyncio.Lock()  # binds to the I/O loop on first use

    @property
    def polling(self) -> bool:
        """Whether a round is running now."""
        return self._lock.locked()

    async def track(self, cid: str, symbol: str, exchange_order_id: str) -> None:
        """Poll an order known to be open (after a restart, or adopted) from the next round."""
        self._book.track(cid, symbol, exchange_order_id)

    async def poll(self) -> bool:
        """Find fills and ends of working orders: their symbols' open orders, then lookups.

        Returns whether the round read every symbol (False: it failed, counted
        and logged, and waits for the next one).
        """
        async with self._lock:
            return await self._poll_once()

    async def _poll_once(self) -> bool:
        book = self._book
        working_orders = book.working
        polled = set(working_orders)
        ex = self._guard.exchange
        try:
            for symbol in sorted({w.symbol for w in working_orders.values()}):
                listed = await self._guard.call(
                    "fetch_open_orders", partial(ex.fetch_open_orders, symbol)
                )
                open_now = {o.get("clientOrderId"): o for o in listed}
                for cid, working in list(working_orders.items()):
                    if working.symbol != symbol:
                        continue
                    order = open_now.get(cid)
                    if order is None:
                        order = await self._orders.lookup(cid, symbol)
                        if order is None:
                            logger.error(
                                "a working order vanished at the exchange; reconciliation decides",
                                extra={"client_order_id": cid, "symbol": symbol},
                            )
                            working_orders.pop(cid, None)
                            continue
                    filled = decimal_of(order.get("filled")) or Decimal(0)
                    if filled > working.reported_filled or order.get("status") != "open":
                        found = await self._orders.apply_order(
                            order, liquidity="maker", ack=False, cid=cid
                        )
                        self._counts["fills_from_poll"] += found
        except PosbusError as error:
            self._counts["poll_failures"] += 1
            logger.info("polling working orders failed", extra=log_fields(error))
            return False
        # What the stream saw of these before their placement was answered is now read.
        book.stream_rechecks = {
            cid
            for cid in book.stream_rechecks - polled
            if cid in book.working or book.outcome_unknown(cid)
        }
        return True
