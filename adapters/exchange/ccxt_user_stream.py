"""The ccxt gateway's user-data stream: fills and order updates of resting orders, pushed.

With `user_stream = "auto"` and an exchange whose ccxt.pro class has
`watchMyTrades` and `watchOrders` and confirms the subscription
(`CONFIRMED_SUBSCRIPTIONS`), a session builds a ccxt.pro client (its
ping-pong keepalive set from `user_stream_liveness_s`), shares the REST
client's markets, subscribes (`authenticate`, which binance answers once the
venue acknowledged the subscription), starts both watches and then
reconciles: a polling round of the working orders (REST) and, after a
reconnect, a reconciliation of the account (`ReconcileDue("reconnect")`:
the trades after each symbol's cursor). Only then is the stream trusted, and
the gateway's timer stops polling resting orders.

Events are applied one at a time, in the order they arrive: trades of
working orders become fills (strictly converted, fee marks stamped, each
trade id reported once: `fills_from_stream`); order updates end orders, and a
fill an update shows but no trade brought is read by REST. An update about
an order whose placement is not answered yet is not applied (the answer is
the order's first word): the order is polled once it works
(`OrderBook.stream_rechecks`).

An error, a disconnect or silence past the liveness bound (no event, no pong)
ends the session: the stream is no longer trusted, so polling resumes at the
next tick, and a new session starts after a backoff with full jitter, from
`retry_min_s` doubling up to `user_stream_liveness_s` while sessions fail
(a venue refusing streams is not asked every second).

Everything here runs on the gateway's I/O loop. It must never report a fill
twice, and never trust the stream before the reconciliation after a connect.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.exchange_events import ReconcileDue
from posbus.actors.model.exchange_reports import ExecutionReport
from posbus.actors.supervision.backoff import Backoff
from posbus.adapters.exchange.ccxt_actor_inbox import ActorInbox
from posbus.adapters.exchange.ccxt_call_guard import CallGuard, log_fields
from posbus.adapters.exchange.ccxt_client import new_ccxt_client
from posbus.adapters.exchange.ccxt_config import Credentials, GatewayConfig
from posbus.adapters.exchange.ccxt_convert import UnreadableField, ns_of_ms, order_view, trade_view
from posbus.adapters.exchange.ccxt_fee_marks import FeeMarks
from posbus.adapters.exchange.ccxt_order_book import OrderBook
from posbus.adapters.exchange.ccxt_orders import CcxtOrders
from posbus.adapters.exchange.ccxt_polling import WorkingOrderPoller

logger = logging.getLogger(__name__)

#: Exchanges whose ccxt.pro `authenticate` returns once the venue acknowledged the
#: user-data subscription (binance: the WebSocket API's userDataStream.subscribe).
CONFIRMED_SUBSCRIPTIONS = frozenset({"binance"})

_Batch = tuple[str, Any]  # ("trades" | "orders", list of ccxt structures) or ("error", exception)


class UserStream:
    """The user-data stream of one gateway (I/O loop only).

    `trusted` is true while a session is up and reconciled: the gateway's
    timer then polls no resting orders.
    """

    def __init__(
        self,
        config: GatewayConfig,
        credentials: Credentials,
        *,
        clock: Clock,
        guard: CallGuard,
        book: OrderBook,
        orders: CcxtOrders,
        poller: WorkingOrderPoller,
        inbox: ActorInbox,
        fee_marks: FeeMarks,
        rng: random.Random,
        counts: Counter[str],
        on_change: Callable[[], None],
    ) -> None:
        self._config = config
        self._credentials = credentials
        self._clock = clock
        self._guard = guard
        self._book = book
        self._orders = orders
        self._poller = poller
        self._inbox = inbox
        self._fee_marks = fee_marks
        self._rng = rng
        self._counts = counts
        self._on_change = on_change
        retry = config.retry
        self._reconnect = Backoff(retry.min_s, max(retry.max_s, config.user_stream_liveness_s))
        self._ws: Any = None
        self._trusted_sessions = 0
        self.mode = "off"
        self.connected = False
        self.trusted = False
        self.last_error = ""

    def start(self) -> list[asyncio.Task[None]]:
        """Start the stream's task when the settings and the exchange allow one (else none)."""
        self.mode = self._mode()
        logger.info("user-data stream mode", extra={"mode": self.mode})
        if self.mode != "stream":
            return []
        return [asyncio.get_running_loop().create_task(self._run())]

    def status(self) -> dict[str, Any]:
        """The stream's state, JSON-ready (for `inspect`)."""
        return {
            "mode": self.mode,
            "connected": self.connected,
            "trusted": self.trusted,
            "last_error": self.last_error,
        }

    async def close(self) -> None:
        """Close the stream's connections."""
        await self._close_ws()

    def _mode(self) -> str:
        if self._config.user_stream == "off":
            return "off"
        urls = self._config.urls
        if any("." not in name for name in urls) and not any(n.startswith("ws.") for n in urls):
            # ccxt's websocket URLs would still name the production venue.
            return "polling: urls override the REST endpoints, not the websocket ones"
        import ccxt.pro as ccxt_pro  # noqa: PLC0415 - websockets only when used

        cls = getattr(ccxt_pro, self._config.exchange_id, None)
        has = {} if cls is None else cls().has
        if not (has.get("watchMyTrades") and has.get("watchOrders")):
            return "polling: ccxt.pro has no watch_my_trades and watch_orders for this exchange"
        if self._config.exchange_id not in CONFIRMED_SUBSCRIPTIONS:
            # The subscription cannot be known to stand before the reconciliation
            # reads: an event in between could be lost.
            return "polling: ccxt.pro's authenticate does not confirm the subscription here"
        return "stream"

    # -- sessions --------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            trusted_before = self._trusted_sessions
            try:
                await self._session()
            except Exception as exc:  # noqa: BLE001 - the stream's boundary: ccxt's errors and
                # its own bookkeeping's (a refused subscription is a KeyError in ccxt 4.5): down.
                self._counts["user_stream.failures"] += 1
                self.last_error = repr(exc)
                logger.warning(
                    "user-data stream down; polling of resting orders resumes",
                    extra={"error": repr(exc), "was_trusted": self.trusted},
                )
            finally:
                self.connected = self.trusted = False
                await self._close_ws()
                self._on_change()
            if self._trusted_sessions != trusted_before:
                attempt = 0  # the last session was trusted: back off from the start
            await asyncio.sleep(self._reconnect.delay(attempt, self._rng))
            attempt += 1

    async def _session(self) -> None:
        """Connect, subscribe, watch, reconcile, then apply events until the stream fails."""
        ws = self._ws = self._new_ws()
        ex = self._guard.exchange
        if not ex.markets:
            await self._guard.call("load_markets", ex.load_markets)
        ws.set_markets_from_exchange(ex)
        await ws.authenticate()
        reconnect = self._counts["user_stream.connects"] > 0
        self._counts["user_stream.connects"] += 1
        if reconnect:
            self._counts["user_stream.reconnects"] += 1
        self.connected = True
        self._on_change()
        queue: asyncio.Queue[_Batch] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        watches = [
            loop.create_task(self._watch(ws.watch_my_trades, "trades", queue)),
            loop.create_task(self._watch(ws.watch_orders, "orders", queue)),
        ]
        try:
            if reconnect:
                self._inbox.tell(ReconcileDue("reconnect"))
            await self._reconcile()
            self.trusted = True
            self._trusted_sessions += 1
            self._on_change()
            logger.info("user-data stream up; polling of resting orders pauses")
            while True:
                kind, payload = await queue.get()
                if kind == "error":
                    raise payload
                if kind == "trades":
                    await self._apply_trades(payload)
                else:
                    await self._apply_orders(payload)
                self._on_change()
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)

    async def _reconcile(self) -> None:
        """A polling round of the working orders; repeated (with backoff) until one succeeds."""
        attempt = 0
        while not await self._poller.poll():
            await asyncio.sleep(self._config.retry.delay(attempt, self._rng))
            attempt += 1

    async def _watch(
        self, watch: Callable[[], Awaitable[Any]], kind: str, queue: asyncio.Queue[_Batch]
    ) -> None:
        """Hand every answer of one ccxt.pro watch to the session, and its failure."""
        while True:
            try:
                items = await watch()
            except Exception as exc:  # noqa: BLE001 - handed to the session, which ends
                queue.put_nowait(("error", exc))
                return
            # ccxt updates the structures it returned in place: keep them as they are now.
            queue.put_nowait((kind, [dict(item) for item in items]))

    def _new_ws(self) -> Any:
        import ccxt.pro as ccxt_pro  # noqa: PLC0415 - websockets only when used

        # A ping every third of the bound, two missed pongs allowed: silence for
        # about the bound fails the watches.
        keep_alive_ms = max(1, int(self._config.user_stream_liveness_s * 1000 / 3))
        streaming = {"keepAlive": keep_alive_ms, "maxPingPongMisses": 2}
        return new_ccxt_client(ccxt_pro, self._config, self._credentials, streaming=streaming)

    async def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    # -- events ----------------------------------------------------------------------

    async def _apply_trades(self, raws: list[dict[str, Any]]) -> None:
        book = self._book
        for raw in raws:
            order_id = str(raw.get("order") or "")
            cid = book.working_cid(order_id)
            if cid is None:
                continue  # not working here: its placement's answer, a poll or a reconciliation
            try:
                trade = trade_view(raw, cid, None, self._clock.now_ns())
            except UnreadableField as error:
                self._unreadable(error, cid)
                continue
            stamped = await self._fee_marks.stamp(self._orders.counted([trade]))
            working = book.working.get(cid)
            if working is None or working.exchange_order_id != order_id:
                continue  # settled meanwhile (a cancel's answer), its trades read then
            fills = book.fills(stamped, working)
            self._counts["fills_from_stream"] += len(fills)
            self._inbox.report(fills)

    async def _apply_orders(self, raws: list[dict[str, Any]]) -> None:
        book = self._book
        for raw in raws:
            try:
                view = order_view(raw, book.account)
            except UnreadableField as error:
                cid = raw.get("clientOrderId")
                self._unreadable(error, cid if isinstance(cid, str) and cid else None)
                continue
            cid = view.client_order_id
            working = book.working.get(cid)
            if working is None:
                if book.outcome_unknown(cid) and (view.filled_qty > 0 or not view.status.is_open):
                    book.stream_rechecks.add(cid)
                continue
            fills: list[ExecutionReport] = []
            if view.filled_qty > working.reported_filled:
                # The update shows a fill no trade brought (yet): read the order's trades.
                try:
                    trades = await self._orders.order_trades(view)
                except PosbusError as error:
                    logger.info("order trades read failed; polled", extra=log_fields(error))
                    book.stream_rechecks.add(cid)
                    continue
                if book.working.get(cid) is not working:
                    continue  # settled meanwhile
                fills = book.fills(trades, working)
                self._counts["fills_from_poll"] += len(fills)
            ts = ns_of_ms(raw.get("timestamp"), self._clock.now_ns())
            self._inbox.report([*fills, *book.settle(view, working, ts)])

    def _unreadable(self, error: UnreadableField, cid: str | None) -> None:
        """Count and log a structure the stream sent that posbus cannot read; poll its order."""
        self._counts[f"unreadable.{error.structure}"] += 1
        logger.warning("user-data stream event unreadable", extra=log_fields(error))
        if cid is not None:
            self._book.stream_rechecks.add(cid)
