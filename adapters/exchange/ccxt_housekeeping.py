"""The ccxt gateway's timer: every `poll_interval_s` one tick moves the gateway's periodic work on.

A tick lets the breaker's cool-off run out; while it is half-open one probe
request decides whether it closes, and while it is open nothing else is
done. Otherwise it retries what waited for the venue, starts a round of
polling the working orders (unless one runs, or the user-data stream is
trusted and owes no order a poll) and of REST tickers (unless one runs),
and asks for the periodic reconciliation when it is due.

Everything here runs on the gateway's I/O loop. A tick that fails is logged
and the timer keeps ticking: it must never stop, and never start a second
round of anything that is still running.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from posbus.actors.model.clock import Clock
from posbus.actors.model.exchange_events import ReconcileDue
from posbus.adapters.exchange.ccxt_call_guard import CallGuard
from posbus.adapters.exchange.ccxt_config import GatewayConfig
from posbus.adapters.exchange.ccxt_loop import GatewayLoop
from posbus.adapters.exchange.ccxt_market_subscription import MarketSubscription
from posbus.adapters.exchange.ccxt_order_book import OrderBook
from posbus.adapters.exchange.ccxt_orders import CcxtOrders
from posbus.adapters.exchange.ccxt_polling import WorkingOrderPoller
from posbus.adapters.exchange.ccxt_user_stream import UserStream
from posbus.adapters.exchange.circuit_breaker import BreakerState

logger = logging.getLogger(__name__)


class Housekeeping:
    """The periodic work of one gateway (I/O loop only); `run` is its timer task."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Clock,
        loop: GatewayLoop,
        guard: CallGuard,
        book: OrderBook,
        orders: CcxtOrders,
        poller: WorkingOrderPoller,
        stream: UserStream,
        market: MarketSubscription,
        tell: Callable[[object], None],
        after_tick: Callable[[], None],
        counts: Counter[str],
    ) -> None:
        self._config = config
        self._clock = clock
        self._loop = loop
        self._guard = guard
        self._book = book
        self._orders = orders
        self._poller = poller
        self._stream = stream
        self._market = market
        self._tell = tell
        self._after_tick = after_tick
        self._counts = counts
        self._last_reconcile_due_ns = clock.now_ns()

    async def run(self) -> None:
        """Tick every `poll_interval_s` until cancelled, `after_tick` after each."""
        interval = self._config.poll_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick()
            except Exception:  # the I/O loop's boundary: log and keep ticking
                logger.exception("ccxt gateway housekeeping failed")
            self._after_tick()

    def tick(self) -> None:
        """One round of the periodic work (see the module docstring)."""
        guard = self._guard
        now = self._clock.now_ns()
        guard.announce(guard.breaker.poll(now))
        state = guard.breaker.state
        if state is BreakerState.HALF_OPEN:
            if not guard.probing:
                guard.probing = True
                self._loop.spawn_local(guard.probe())
            return
        if state is BreakerState.OPEN:
            return
        self._orders.resume()
        book = self._book
        book.stream_rechecks = {
            cid for cid in book.stream_rechecks if cid in book.working or book.outcome_unknown(cid)
        }
        owed = any(cid in book.working for cid in book.stream_rechecks)
        paused = self._stream.trusted and not owed
        if book.working and paused:
            self._counts["polls_paused"] += 1  # a round the user-data stream made needless
        elif book.working and not self._poller.polling:
            self._loop.spawn_local(self._poller.poll())
        self._market.tick()
        interval = int(self._config.reconcile_interval_s * 1e9)
        if interval and now - self._last_reconcile_due_ns >= interval:
            self._last_reconcile_due_ns = now
            self._tell(ReconcileDue("periodic"))
