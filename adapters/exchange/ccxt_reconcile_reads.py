"""The exchange's side of the books for a reconciliation: one `ReconcileSnapshot` per request.

A reconciliation reads balances first (every trade they reflect is then in
the history read after them), then the open orders, the lookups of orders
posbus thinks live, and each symbol's trades after its cursor, naming the
trades' orders where it can. A read that fails is noted in the snapshot's
`errors` and a new reconciliation is asked for soon (`ReconcileDue("retry")`);
the gateway actor decides what the snapshot means.

A structure posbus cannot read (an order of unreadable state, a balance
without totals, a trade without side) is never guessed: it fails its read like
an unanswered request, so the reconciliation is incomplete and asked for again,
and it is counted (`unreadable.*`).

Everything here runs on the gateway's I/O loop. It only reads: it must never
place, cancel or change an order, nor look up an order being placed now.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

import ccxt

from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.exchange_events import (
    ReconcileDue,
    ReconcileRequest,
    ReconcileSnapshot,
    TradeCursor,
    TradeView,
)
from posbus.actors.model.exchange_reports import OrderView
from posbus.adapters.exchange.ccxt_call_guard import CallGuard
from posbus.adapters.exchange.ccxt_config import GatewayConfig
from posbus.adapters.exchange.ccxt_convert import (
    UnreadableField,
    balances_of,
    order_view,
    trade_view,
    with_client_order_id,
)
from posbus.adapters.exchange.ccxt_fee_marks import FeeMarks
from posbus.adapters.exchange.ccxt_loop import GatewayLoop
from posbus.adapters.exchange.ccxt_order_book import OrderBook
from posbus.adapters.exchange.ccxt_orders import CcxtOrders

# Exchanges whose trade history pages by trade id (ccxt param name).
_TRADE_ID_CURSOR = {"binance": "fromId", "binanceus": "fromId"}
_PAGE = 500
_UNKNOWN_ORDER_LOOKUPS = 50

Balances = dict[str, Decimal]
ReadWindow = tuple[int, int]  # wall-clock ns when a read was sent and answered


class ReconcileReads:
    """The reads of one gateway's reconciliations (I/O loop only).

    Args:
        config: the exchange id (trade paging) and the retry delay of an incomplete one.
        clock: stamps the snapshot and its trades.
        guard, book, orders: the ccxt client's guard, the gateway's orders, and their lookups.
        loop: schedules the retry of an incomplete reconciliation.
        tell: hands the snapshot to the gateway actor.
        counts: the gateway's counters.
        fee_marks: stamps the conversion mark of a fee in a third currency on trades.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Clock,
        guard: CallGuard,
        book: OrderBook,
        orders: CcxtOrders,
        loop: GatewayLoop,
        tell: Callable[[object], None],
        counts: Counter[str],
        fee_marks: FeeMarks,
    ) -> None:
        self._config = config
        self._clock = clock
        self._guard = guard
        self._book = book
        self._orders = orders
        self._loop = loop
        self._tell = tell
        self._counts = counts
        self._fee_marks = fee_marks

    async def reconcile(self, request: ReconcileRequest) -> None:
        """Read what `request` asks for and tell the snapshot (with the reads that failed)."""
        errors: list[str] = []
        balances, window = await self._read_balances(request, errors)
        open_orders: tuple[OrderView, ...] | None = None
        try:
            open_orders = await self._open_orders(request.symbols)
        except PosbusError as error:
            self._failed(errors, "open orders", error)
        known_ids = {v.exchange_order_id: v.client_order_id for v in open_orders or ()}
        lookups, extra_trades = await self._read_lookups(request, open_orders, known_ids, errors)
        trades: dict[str, tuple[TradeView, ...]] = {}
        trades_read_ms = time.time_ns() // 1_000_000
        for symbol in request.symbols:
            try:
                listed = await self._trades_after(symbol, request.cursors.get(symbol))
            except PosbusError as error:
                self._failed(errors, f"trades of {symbol}", error)
                continue
            trades[symbol] = tuple(listed) + tuple(extra_trades.get(symbol, ()))
        await self._name_trades(trades, known_ids, request.known_exchange_ids, errors)
        snapshot = ReconcileSnapshot(
            reason=request.reason,
            ts_ns=self._clock.now_ns(),
            open_orders=open_orders,
            trades=trades,
            lookups=lookups,
            balances=balances,
            errors=tuple(errors),
            balances_read_ns=window,
            trades_read_ms=trades_read_ms,
        )
        self._counts["reconciliations"] += 1
        self._tell(snapshot)
        if errors:
            # Until it completes the gateway holds new orders: ask again soon.
            self._counts["reconciliations_incomplete"] += 1
            delay = max(self._config.poll_interval_s, self._config.retry.max_s)
            self._loop.call_later(delay, self._tell, ReconcileDue("retry"))

    def _failed(self, errors: list[str], what: str, error: PosbusError) -> None:
        """Note a read that failed; an unreadable answer is counted besides."""
        errors.append(f"{what}: {error}")
        if isinstance(error, UnreadableField):
            self._counts[f"unreadable.{error.structure}"] += 1

    async def _read_balances(
        self, request: ReconcileRequest, errors: list[str]
    ) -> tuple[Balances | None, ReadWindow | None]:
        if not request.balances:
            return None, None
        sent = time.time_ns()
        try:
            raw = await self._guard.retrying("fetch_balance", self._guard.exchange.fetch_balance)
            balances = balances_of(raw)
        except PosbusError as error:
            self._failed(errors, "balances", error)
            return None, None
        return balances, (sent, time.time_ns())

    async def _read_lookups(
        self,
        request: ReconcileRequest,
        open_orders: tuple[OrderView, ...] | None,
        known_ids: dict[str, str],
        errors: list[str],
    ) -> tuple[dict[str, OrderView | None], dict[str, list[TradeView]]]:
        """Look up orders posbus thinks live (not in the open list, not being placed now)."""
        lookups: dict[str, OrderView | None] = {}
        extra_trades: dict[str, list[TradeView]] = {}
        open_cids = {v.client_order_id for v in open_orders or ()}
        for cid, symbol in request.lookups:
            if cid in open_cids or self._book.outcome_unknown(cid):
                continue
            try:
                found = await self._orders.lookup(cid, symbol)
                view = None if found is None else order_view(found, self._book.account, cid)
            except PosbusError as error:
                self._failed(errors, f"lookup of {cid}", error)
                continue
            lookups[cid] = view
            if view is None:
                continue
            known_ids[view.exchange_order_id] = cid
            if view.filled_qty > 0:
                try:
                    extra_trades.setdefault(symbol, []).extend(
                        await self._orders.order_trades(view)
                    )
                except PosbusError as error:
                    self._failed(errors, f"trades of {symbol}: order {cid}", error)
        return lookups, extra_trades

    async def _open_orders(self, symbols: Sequence[str]) -> tuple[OrderView, ...]:
        ex = self._guard.exchange
        try:
            listed = await self._guard.retrying("fetch_open_orders", ex.fetch_open_orders)
        except PosbusError as error:
            if not isinstance(error.__cause__, ccxt.ArgumentsRequired | ccxt.NotSupported):
                raise
            listed = []
            for symbol in symbols:
                listed.extend(
                    await self._guard.retrying(
                        "fetch_open_orders", partial(ex.fetch_open_orders, symbol)
                    )
                )
        return tuple(order_view(o, self._book.account) for o in listed)

    async def _trades_after(self, symbol: str, cursor: TradeCursor | None) -> list[TradeView]:
        """The symbol's trades after `cursor` (all pages), or the latest page without one."""
        by_id = _TRADE_ID_CURSOR.get(self._config.exchange_id)
        out: list[TradeView] = []
        params: dict[str, Any] = {}
        since: int | None = None
        if cursor is not None:
            if by_id and cursor.trade_id.isdigit():
                params[by_id] = int(cursor.trade_id) + 1
            else:
                since = cursor.ts_ms + (1 if cursor.trade_id else 0)
        while True:
            page = await self._guard.retrying(
                "fetch_my_trades",
                partial(self._guard.exchange.fetch_my_trades, symbol, since, _PAGE, dict(params)),
                symbol=symbol,
            )
            now_ns = self._clock.now_ns()
            listed = self._orders.counted([trade_view(t, None, None, now_ns) for t in page])
            out.extend(await self._fee_marks.stamp(listed))
            if cursor is None or len(page) < _PAGE:
                return out
            newest = out[-1]
            if by_id and newest.trade_id.isdigit():
                params[by_id] = int(newest.trade_id) + 1
            else:
                since = newest.ts_ns // 1_000_000 + 1

    async def _name_trades(
        self,
        trades: dict[str, tuple[TradeView, ...]],
        known: Mapping[str, str],
        known_elsewhere: frozenset[str],
        errors: list[str],
    ) -> None:
        """Fill in the client order id of trades whose order posbus does not know by id."""
        names = {w.exchange_order_id: cid for cid, w in self._book.working.items()} | dict(known)
        ex = self._guard.exchange
        lookups = 0
        for symbol, listed in trades.items():
            named: list[TradeView] = []
            for trade in listed:
                cid = trade.client_order_id or names.get(trade.exchange_order_id)
                eid = trade.exchange_order_id
                if cid is None and eid not in known_elsewhere and lookups < _UNKNOWN_ORDER_LOOKUPS:
                    lookups += 1
                    try:
                        found = await self._guard.call(
                            "fetch_order", partial(ex.fetch_order, eid, symbol), symbol=symbol
                        )
                        cid = found.get("clientOrderId")
                        if isinstance(cid, str):
                            names[eid] = cid
                    except PosbusError as error:
                        errors.append(f"order of trade {trade.trade_id}: {error}")
                named.append(with_client_order_id(trade, cid if isinstance(cid, str) else None))
            trades[symbol] = tuple(named)
