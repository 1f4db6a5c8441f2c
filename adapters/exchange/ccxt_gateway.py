"""CcxtGateway: the exchange client of a GatewayActor, backed by ccxt (any exchange id).

Threads: the client owns one asyncio event loop, run by its own daemon thread
("the I/O loop", ccxt_loop.py), with one `ccxt.async_support` exchange
instance. The gateway actor calls `submit`, `cancel`, `track` and `reconcile`
from its own thread; each call only schedules a coroutine on the loop and
returns at once. Answers come back as messages told to the actor's inbox
(`attach`): `ExchangeReports`, `BreakerChanged`, `ReconcileDue` and
`ReconcileSnapshot`. The actor journals them, so every state change still
happens in its thread, in order, write-ahead.

This class is a facade: it wires the loop, the call guard (breaker and
retries), the orders, the polling, the user-data stream, the reconciliation
reads, the market data and the timer, each in its own module. Errors, order safety, fills and market
data: docs/architecture.md, "ccxt gateway".

This module must never block an actor's thread on the network.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import ccxt.async_support as ccxt_async

from posbus.actors.model.clock import Clock
from posbus.actors.model.exchange_events import ReconcilePolicy, ReconcileRequest
from posbus.actors.model.exchange_reports import NewOrder
from posbus.adapters.clock import WallClock
from posbus.adapters.exchange.ccxt_actor_inbox import ActorInbox, Inbox
from posbus.adapters.exchange.ccxt_call_guard import BreakerOpen, CallGuard
from posbus.adapters.exchange.ccxt_client import new_ccxt_client, require_exchange
from posbus.adapters.exchange.ccxt_config import Credentials, GatewayConfig
from posbus.adapters.exchange.ccxt_fee_marks import FeeMarks
from posbus.adapters.exchange.ccxt_housekeeping import Housekeeping
from posbus.adapters.exchange.ccxt_loop import GatewayLoop
from posbus.adapters.exchange.ccxt_market import MarketSink
from posbus.adapters.exchange.ccxt_market_subscription import MarketSubscription
from posbus.adapters.exchange.ccxt_order_book import OrderBook
from posbus.adapters.exchange.ccxt_orders import CcxtOrders
from posbus.adapters.exchange.ccxt_polling import WorkingOrderPoller
from posbus.adapters.exchange.ccxt_reconcile_reads import ReconcileReads
from posbus.adapters.exchange.ccxt_user_stream import UserStream
from posbus.bus.messages import MarketUpdate

__all__ = ["BreakerOpen", "CcxtGateway", "Inbox"]


class CcxtGateway:
    """A network exchange client for one account (see the module docstring).

    Thread-safety: `attach`, `detach`, `submit`, `cancel`, `track`,
    `reconcile`, `poll_now`, `subscribe_market`, `inspect`, `wait_idle` and
    `close` may be called from any thread; everything else runs on the I/O loop.

    Args:
        config: the `[exchange]` settings (`kind = "ccxt"`).
        account: the posbus account the exchange account trades as.
        credentials: API key and secret (see `load_credentials`).
        clock: time of the breaker, of the periodic reconciliation and of
            the reports' timestamps (a ManualClock in tests).
        symbols: symbols always reconciled (besides those with orders).
        seed: seeds the retry jitter.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        account: str,
        credentials: Credentials,
        clock: Clock | None = None,
        symbols: Sequence[str] = (),
        seed: int | None = None,
    ) -> None:
        require_exchange(ccxt_async, config.exchange_id)
        self.config = config
        self.account = account
        self._credentials = credentials
        clock = clock if clock is not None else WallClock()
        self._symbols = tuple(symbols)
        rng = random.Random(seed)  # noqa: S311 - retry jitter, not cryptography
        self._policy = ReconcilePolicy(
            adopt_unknown=config.unknown_orders == "adopt",
            halt_on_balance_mismatch=config.balance_mismatch == "halt",
            balance_tolerance=config.balance_tolerance,
        )
        self.counts: Counter[str] = Counter()
        self._status: dict[str, Any] = {}
        self._inbox = ActorInbox()
        self._loop = GatewayLoop(
            f"ccxt-{config.exchange_id}-{account}",
            account=account,
            counts=self.counts,
            on_start=self._on_loop_start,
            on_stop=self._on_loop_stop,
            on_task_failed=self._on_task_failed,
            after_task=self._publish_status,
        )
        self._guard = CallGuard(
            config,
            account=account,
            clock=clock,
            rng=rng,
            counts=self.counts,
            tell=self._inbox.tell,
            on_closed=lambda: self._loop.spawn_local(self._resume()),
            on_change=self._publish_status,
        )
        self._wire_work(clock, rng)

    def _wire_work(self, clock: Clock, rng: random.Random) -> None:
        """Build what runs on the loop above the guard: orders, polling, stream, reads, timer."""
        config = self.config
        self._book = OrderBook(self.account)
        self._fee_marks = FeeMarks(guard=self._guard, clock=clock, counts=self.counts)
        self._orders = CcxtOrders(
            config,
            clock=clock,
            guard=self._guard,
            book=self._book,
            inbox=self._inbox,
            loop=self._loop,
            counts=self.counts,
            fee_marks=self._fee_marks,
        )
        self._poller = WorkingOrderPoller(
            guard=self._guard, book=self._book, orders=self._orders, counts=self.counts
        )
        self._stream = UserStream(
            config,
            self._credentials,
            clock=clock,
            guard=self._guard,
            book=self._book,
            orders=self._orders,
            poller=self._poller,
            inbox=self._inbox,
            fee_marks=self._fee_marks,
            rng=rng,
            counts=self.counts,
            on_change=self._publish_status,
        )
        self._reads = ReconcileReads(
            config,
            clock=clock,
            guard=self._guard,
            book=self._book,
            orders=self._orders,
            loop=self._loop,
            tell=self._inbox.tell,
            counts=self.counts,
            fee_marks=self._fee_marks,
        )
        self._market = MarketSubscription(
            config,
            self._credentials,
            clock=clock,
            guard=self._guard,
            loop=self._loop,
            rng=rng,
            counts=self.counts,
        )
        self._housekeeping = Housekeeping(
            config,
            clock=clock,
            loop=self._loop,
            guard=self._guard,
            book=self._book,
            orders=self._orders,
            poller=self._poller,
            stream=self._stream,
            market=self._market,
            tell=self._inbox.tell,
            after_tick=self._publish_status,
            counts=self.counts,
        )

    # -- the actor's side (any thread) -----------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols reconciled even without orders (the configured ones)."""
        return self._symbols

    @property
    def reconcile_policy(self) -> ReconcilePolicy:
        """How the gateway reacts to unknown orders and balance differences."""
        return self._policy

    @property
    def told(self) -> int:
        """How many messages were handed to the actor so far (a progress mark for barriers)."""
        return self._inbox.told

    def attach(self, inbox: Inbox) -> None:
        """Send results to `inbox` from now on (starting the I/O loop on first use).

        Results produced while no inbox was attached (or the attached one was
        dead) are handed over first, in order.
        """
        self._loop.start()
        self._inbox.attach(inbox)

    def detach(self) -> None:
        """Stop telling the actor; results are kept until the next `attach`."""
        self._inbox.detach()

    def submit(self, order: NewOrder, *, in_doubt: bool = False) -> None:
        """Place `order` (idempotent by client order id); returns at once.

        `in_doubt`: it may already be at the exchange (sent by an earlier
        incarnation): it is looked up first and sent only if proven absent.
        """
        self._loop.spawn(self._orders.submit(order, in_doubt))

    def cancel(self, client_order_id: str, symbol: str, ts_ns: int) -> None:
        """Cancel an order by client order id (idempotent); returns at once."""
        self._loop.spawn(self._orders.cancel(client_order_id, symbol, ts_ns))

    def track(self, client_order_id: str, symbol: str, exchange_order_id: str) -> None:
        """Poll an order known to be open (after a restart, or adopted) for its fills."""
        self._loop.spawn(self._poller.track(client_order_id, symbol, exchange_order_id))

    def reconcile(self, request: ReconcileRequest) -> None:
        """Fetch the exchange's side of the books; a ReconcileSnapshot is told when done."""
        self._loop.spawn(self._reads.reconcile(request))

    def poll_now(self) -> None:
        """Poll the working orders for fills now instead of at the next tick; returns at once."""
        self._loop.spawn(self._poller.poll())

    def subscribe_market(self, symbols: Sequence[str], sink: MarketSink) -> None:
        """Feed top-of-book updates of `symbols` to `sink` (called on the I/O thread).

        The gateway keeps the latest of each too: a conversion mark of fees.
        """

        def remembered(update: MarketUpdate) -> None:
            self._fee_marks.observe(update)
            sink(update)

        self._loop.call_soon(self._market.start, tuple(symbols), remembered)

    def inspect(self) -> dict[str, Any]:
        """Settings (credentials redacted), breaker, order tracking and counters, JSON-ready."""
        cfg = self.config
        return {
            "exchange_id": cfg.exchange_id,
            "account": self.account,
            "credentials": self._credentials.redacted(),
            "urls": dict(cfg.urls),
            "timeout_ms": cfg.timeout_ms,
            "recv_window_ms": cfg.recv_window_ms,
            "retry": {
                "tries": cfg.retry.tries,
                "min_s": cfg.retry.min_s,
                "max_s": cfg.retry.max_s,
            },
            **self._status,
        }

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Block until no request is in flight (tests, benchmarks, shutdown).

        Never call it from an actor: it waits on the network.
        """
        self._loop.wait_idle(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the I/O loop and close the exchange's connections."""
        self._loop.close(timeout_s)

    # -- the I/O loop's side ---------------------------------------------------------

    def _on_loop_start(self) -> None:
        self._guard.exchange = new_ccxt_client(ccxt_async, self.config, self._credentials)
        timer = asyncio.get_running_loop().create_task(self._housekeeping.run())
        self._loop.keep_in_background(timer, *self._stream.start())

    async def _on_loop_stop(self) -> None:
        await self._guard.exchange.close()
        await self._market.close()
        await self._stream.close()

    def _on_task_failed(self, error: Exception) -> None:
        self._guard.last_error = repr(error)

    async def _resume(self) -> None:
        # Its own task: the breaker closes inside a request, whose caller finishes first.
        self._orders.resume()

    def _publish_status(self) -> None:
        # Replaced as a whole: `inspect` on another thread reads one consistent dict.
        self._status = {
            "breaker": self._guard.breaker.to_dict(),
            "connected": self._guard.connected,
            "user_stream": self._stream.status(),
            **self._book.status(),
            "last_error": self._guard.last_error,
            "counts": dict(self.counts),
        }
