"""Orders through ccxt: placement with proof before any resend, lookups, cancels (deferred too).

An order whose send may have reached the exchange (a timeout, a dropped
connection, a 5xx, a duplicate client order id) is in doubt: it is looked up
by client order id, and sent again only when a lookup made after its signed
request can no longer execute (its recvWindow has passed) finds nothing. An
in-doubt order that cannot be settled stays unresolved until the venue
answers again (`resume`); a cancel of an order whose outcome is not known
yet waits for it.

Everything here runs on the gateway's I/O loop; results go to the actor as
execution reports. It must never send an order that a lookup has not proven
absent when its first send may have reached the exchange, and never reject
such an order.

An answer posbus cannot read (docs/venues.md) is never guessed: an order
whose state is unreadable but whose ids are known is kept working, so the
next poll looks it up; a placement answer without them leaves the order in
doubt, looked up like any other. Both are logged and counted (`unreadable.*`),
as are the trades that needed a synthetic id (`synthetic_trade_ids`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from decimal import Decimal
from typing import Any

import ccxt

from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import ExchangeRejected, ExchangeUnavailable, PosbusError
from posbus.actors.model.exchange_events import TradeView
from posbus.actors.model.exchange_reports import (
    ExecutionReport,
    Liquidity,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderView,
)
from posbus.adapters.exchange.ccxt_actor_inbox import ActorInbox
from posbus.adapters.exchange.ccxt_call_guard import BreakerOpen, CallGuard, log_fields
from posbus.adapters.exchange.ccxt_config import GatewayConfig
from posbus.adapters.exchange.ccxt_convert import (
    UnreadableField,
    is_synthetic_trade_id,
    ns_of_ms,
    order_view,
    text_of,
    trade_view,
    trades_in_order,
)
from posbus.adapters.exchange.ccxt_errors import (
    is_duplicate_order,
    is_order_not_found,
    may_have_executed,
    to_posbus_error,
)
from posbus.adapters.exchange.ccxt_fee_marks import FeeMarks
from posbus.adapters.exchange.ccxt_loop import GatewayLoop
from posbus.adapters.exchange.ccxt_order_book import OrderBook, Placement

logger = logging.getLogger(__name__)

# Added to the recvWindow: a request's timestamp is taken a little before it leaves.
_PROOF_MARGIN_S = 0.2


class CcxtOrders:
    """Placement, lookup and cancel of one gateway's orders (I/O loop only).

    Args:
        config: the retry policy and the recvWindow (the proof window).
        clock: stamps the reports.
        guard: the breaker and retries around the ccxt client.
        book: the gateway's orders.
        inbox: where the execution reports go.
        loop: the I/O loop (its time, and tasks for deferred cancels).
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
        inbox: ActorInbox,
        loop: GatewayLoop,
        counts: Counter[str],
        fee_marks: FeeMarks,
    ) -> None:
        self._config = config
        self._clock = clock
        self._guard = guard
        self._book = book
        self._inbox = inbox
        self._loop = loop
        self._counts = counts
        self._fee_marks = fee_marks

    # -- placement -------------------------------------------------------------------

    async def submit(self, order: NewOrder, in_doubt: bool) -> None:
        """Place `order` unless its client order id is known; `in_doubt`: look it up first."""
        if self._book.knows(order.client_order_id):
            self._counts["duplicate_submits_ignored"] += 1
            return
        pending = Placement(order, in_doubt)
        if in_doubt:
            # Sent by an earlier incarnation at an unknown time: count the window from now.
            pending.proof_after = self._loop.time() + self._proof_window_s()
        await self._place(pending)

    def resume(self) -> None:
        """Retry what waited for the exchange: unresolved orders, then deferred cancels."""
        book = self._book
        for cid, pending in list(book.unresolved.items()):
            if cid not in book.inflight:
                del book.unresolved[cid]
                self._loop.spawn_local(self._place(pending))
        for cid, (symbol, ts_ns) in list(book.deferred_cancels.items()):
            if not book.outcome_unknown(cid):
                del book.deferred_cancels[cid]
                self._loop.spawn_local(self.cancel(cid, symbol, ts_ns))

    async def _place(self, pending: Placement) -> None:
        book = self._book
        cid = pending.order.client_order_id
        book.inflight.add(cid)
        try:
            placed = await self._guard.retry(lambda: self._place_once(pending), "create_order")
        except PosbusError as error:
            book.unresolved.pop(cid, None)
            if pending.in_doubt:
                # It may be at the exchange: never reject it, resolve it later.
                book.unresolved[cid] = pending
                self._counts["orders_unresolved"] += 1
                logger.warning(
                    "order outcome unknown; will look it up again",
                    extra={"client_order_id": cid, **log_fields(error)},
                )
                return
            self._counts["orders_rejected"] += 1
            book.deferred_cancels.pop(cid, None)  # nothing left to cancel
            book.forget(cid)
            # The exchange's own words (ExchangeRejected keeps them apart from its prefix).
            reason = f"{type(error).__name__}: {getattr(error, 'reason', error.message)}"
            self._inbox.report([OrderRejected(cid, reason, self._clock.now_ns())])
            return
        finally:
            book.inflight.discard(cid)
        book.unresolved.pop(cid, None)
        try:
            await self.apply_order(placed, liquidity="taker", ack=True, cid=cid)
        except UnreadableField as error:
            # Nothing to follow in the answer (no order id, an unreadable fill):
            # look the order up by client order id, as one whose outcome is unknown.
            pending.in_doubt = True
            pending.proof_after = self._loop.time() + self._proof_window_s()
            book.unresolved[cid] = pending
            self._counts["orders_unresolved"] += 1
            logger.warning(
                "order answer unreadable; will look the order up",
                extra={"client_order_id": cid, **log_fields(error)},
            )
            return
        deferred = book.deferred_cancels.pop(cid, None)
        if deferred is not None:
            self._loop.spawn_local(self.cancel(cid, *deferred))

    async def _place_once(self, pending: Placement) -> Any:
        """One attempt: look up first when in doubt, else (or when proven absent) send."""
        order = pending.order
        cid = order.client_order_id
        if pending.in_doubt:
            found = await self.lookup(cid, order.symbol)
            if found is None and self._loop.time() < pending.proof_after:
                # Not yet proof: the request may still be executing. Wait out its window.
                await asyncio.sleep(pending.proof_after - self._loop.time())
                found = await self.lookup(cid, order.symbol)
            if found is not None:
                self._counts["orders_found_by_lookup"] += 1
                return found
            # Proven absent: the earlier send never executed and never will.
            pending.in_doubt = False
            self._counts["orders_proven_absent"] += 1
        await self._load_markets()
        amount, price = self._checked_amounts(order)
        kind = "market" if price is None else "limit"
        sent_at = self._loop.time()
        ex = self._guard.exchange
        try:
            return await self._guard.call(
                "create_order",
                lambda: ex.create_order(
                    order.symbol,
                    kind,
                    order.side.value.lower(),
                    amount,
                    price,
                    {"clientOrderId": cid},
                ),
                order_id=cid,
                symbol=order.symbol,
            )
        except PosbusError as error:
            cause = error.__cause__
            if isinstance(cause, ccxt.BaseError) and is_duplicate_order(cause):
                # An open order has this id: it is ours, sent before. Look it up.
                pending.in_doubt = True
                pending.proof_after = sent_at + self._proof_window_s()
                raise ExchangeUnavailable(
                    "duplicate client order id: looking the order up", order_id=cid
                ) from cause
            if isinstance(error, BreakerOpen):
                raise  # refused before anything left
            if not isinstance(cause, ccxt.BaseError) or may_have_executed(cause):
                pending.in_doubt = True
                pending.proof_after = sent_at + self._proof_window_s()
            raise

    def _proof_window_s(self) -> float:
        return self._config.recv_window_ms / 1000 + _PROOF_MARGIN_S

    def _checked_amounts(self, order: NewOrder) -> tuple[str, str | None]:
        """Amount and price as the exchange takes them; a value it would round is refused."""
        ex = self._guard.exchange
        try:
            amount = ex.amount_to_precision(order.symbol, str(order.qty))
            price = (
                None
                if order.limit_price is None
                else ex.price_to_precision(order.symbol, str(order.limit_price))
            )
        except ccxt.BaseError as exc:
            raise to_posbus_error(exc, order_id=order.client_order_id, symbol=order.symbol) from exc
        if Decimal(amount) != order.qty:
            raise _rejected(f"qty {order.qty} is not a multiple of the lot size", order)
        if price is not None and Decimal(price) != order.limit_price:
            raise _rejected(f"limit price {order.limit_price} is not a multiple of the tick", order)
        return amount, price

    async def _load_markets(self) -> None:
        ex = self._guard.exchange
        if not ex.markets:
            await self._guard.call("load_markets", ex.load_markets)

    # -- what the exchange says of one order -----------------------------------------

    async def lookup(self, cid: str, symbol: str) -> Any | None:
        """The exchange's order with this client order id, or None when it says there is none."""
        ex = self._guard.exchange
        try:
            return await self._guard.call(
                "fetch_order",
                lambda: ex.fetch_order(None, symbol, {"clientOrderId": cid}),
                order_id=cid,
                symbol=symbol,
            )
        except PosbusError as error:
            if isinstance(error.__cause__, ccxt.BaseError) and is_order_not_found(error.__cause__):
                return None
            raise

    async def order_trades(self, view: OrderView) -> list[TradeView]:
        """The trades of one order (the symbol's history filtered when the venue has no call).

        A fee in a third currency comes with its conversion mark when one is had.
        """
        ex = self._guard.exchange
        symbol = view.symbol
        if ex.has.get("fetchOrderTrades"):
            listed = await self._guard.retrying(
                "fetch_order_trades",
                lambda: ex.fetch_order_trades(view.exchange_order_id, symbol),
                order_id=view.client_order_id,
                symbol=symbol,
            )
        else:
            listed = [
                t
                for t in await self._guard.retrying(
                    "fetch_my_trades", lambda: ex.fetch_my_trades(symbol), symbol=symbol
                )
                if str(t.get("order")) == view.exchange_order_id
            ]
        trades = [trade_view(t, view.client_order_id, None, self._clock.now_ns()) for t in listed]
        return await self._fee_marks.stamp(self.counted(trades))

    def counted(self, trades: list[TradeView]) -> list[TradeView]:
        """`trades`, with those that needed a synthetic id logged and counted."""
        synthetic = [t.trade_id for t in trades if is_synthetic_trade_id(t.trade_id)]
        if synthetic:
            self._counts["synthetic_trade_ids"] += len(synthetic)
            logger.info("trades without an id named synthetically", extra={"trade_ids": synthetic})
        return trades

    async def apply_order(
        self, placed: Any, *, liquidity: Liquidity, ack: bool, cid: str | None = None
    ) -> int:
        """Report what an order dict says (ack, new fills, end) and track it while open.

        `cid`: posbus's id of the order when the caller knows it. An order whose
        state cannot be read is kept working (acknowledged first when `ack`);
        without an order id and symbol to follow, UnreadableField propagates.
        Returns how many fills were reported.
        """
        try:
            view = order_view(placed, self._book.account, cid)
        except UnreadableField as error:
            self._keep_unknown(placed, error, ack=ack, cid=cid)
            return 0
        cid = view.client_order_id
        ts = ns_of_ms(placed.get("timestamp"), self._clock.now_ns())
        reports: list[ExecutionReport] = []
        if ack:
            reports.append(OrderAccepted(cid, view.exchange_order_id, view.symbol, ts))
        working = self._book.working_of(view)
        if view.filled_qty > working.reported_filled:
            trades = self.counted(trades_in_order(placed, view, liquidity, self._clock.now_ns()))
            if sum((t.qty for t in trades), Decimal(0)) != view.filled_qty:
                trades = await self.order_trades(view)
            else:
                trades = await self._fee_marks.stamp(trades)
            reports.extend(self._book.fills(trades, working))
        reports.extend(self._book.settle(view, working, ts))
        self._inbox.report(reports)
        return sum(isinstance(r, OrderFilled) for r in reports)

    def _keep_unknown(
        self, placed: Any, error: UnreadableField, *, ack: bool, cid: str | None
    ) -> None:
        """Keep an order whose state is unreadable working: never settle it on a guess."""
        self._counts[f"unreadable.{error.structure}"] += 1
        try:
            cid = cid or text_of(placed, "clientOrderId", "order")
            order_id = text_of(placed, "id", "order", order_id=cid)
            symbol = text_of(placed, "symbol", "order", order_id=cid)
        except UnreadableField:
            raise error from None
        logger.warning(
            "order state unreadable; kept working and looked up at the next poll",
            extra={"client_order_id": cid, **log_fields(error)},
        )
        if ack:
            ts = ns_of_ms(placed.get("timestamp"), self._clock.now_ns())
            self._inbox.report([OrderAccepted(cid, order_id, symbol, ts)])
        self._book.track(cid, symbol, order_id)

    # -- cancels -----------------------------------------------------------------------

    async def cancel(self, cid: str, symbol: str, ts_ns: int) -> None:
        """Cancel by client order id; deferred while its outcome is unknown or the venue is down."""
        book = self._book
        if book.outcome_unknown(cid):
            # Its outcome is not known yet: cancel once it is.
            book.deferred_cancels[cid] = (symbol, ts_ns)
            return
        book.deferred_cancels.pop(cid, None)
        ex = self._guard.exchange
        try:
            answer = await self._guard.retrying(
                "cancel_order",
                lambda: ex.cancel_order(None, symbol, {"clientOrderId": cid}),
                order_id=cid,
                symbol=symbol,
            )
        except PosbusError as error:
            cause = error.__cause__
            if isinstance(cause, ccxt.BaseError) and is_order_not_found(cause):
                await self._cancel_of_closed(cid, symbol)
            elif error.transient:
                book.deferred_cancels[cid] = (symbol, ts_ns)
                self._counts["cancels_deferred"] += 1
            else:
                # A refused cancel is not an order event: the order stays CancelRequested.
                self._counts["cancels_refused"] += 1
                logger.warning("cancel refused", extra=log_fields(error))
            return
        self._counts["cancels"] += 1
        try:
            view = order_view(answer, book.account, cid)
        except UnreadableField as error:
            # The cancel was taken; what the order did before it left is unreadable.
            self._counts[f"unreadable.{error.structure}"] += 1
            logger.info(
                "cancel answer unreadable; looking the order up",
                extra={"client_order_id": cid, **log_fields(error)},
            )
            await self._cancelled_as_looked_up(cid, symbol)
            return
        working = book.working.pop(cid, None)
        if working is None and book.is_done(cid):
            # A poll or the user-data stream saw it end first and said how: not twice.
            self._counts["cancels_already_reported"] += 1
            return
        reports: list[ExecutionReport] = []
        if working is not None and view.filled_qty > working.reported_filled:
            reports.extend(book.fills(await self.order_trades(view), working))
        reports.append(OrderCancelled(cid, self._clock.now_ns(), "cancelled by client"))
        book.forget(cid)
        self._inbox.report(reports)

    async def _cancel_of_closed(self, cid: str, symbol: str) -> None:
        """Cancel of an order the exchange no longer has open: say how it ended (idempotent)."""
        found = await self.lookup(cid, symbol)
        if found is None:
            self._inbox.report([OrderRejected(cid, "unknown order", self._clock.now_ns())])
            return
        await self.apply_order(found, liquidity="maker", ack=False, cid=cid)

    async def _cancelled_as_looked_up(self, cid: str, symbol: str) -> None:
        """After a cancel the venue took: how the order ended, as a lookup says."""
        found = await self.lookup(cid, symbol)
        if found is not None:
            await self.apply_order(found, liquidity="maker", ack=False, cid=cid)
            return
        # The venue took the cancel and no longer knows the order: it is off the book.
        self._book.working.pop(cid, None)
        self._book.forget(cid)
        self._inbox.report([OrderCancelled(cid, self._clock.now_ns(), "cancelled by client")])


def _rejected(reason: str, order: NewOrder) -> PosbusError:
    return ExchangeRejected(reason, order_id=order.client_order_id, symbol=order.symbol)
