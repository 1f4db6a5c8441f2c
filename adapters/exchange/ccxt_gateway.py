"""CcxtGateway: the exchange client of a GatewayActor, backed by ccxt (any exchange id).

Threads: the client owns one asyncio event loop, run by its own daemon thread
("the I/O loop"), with one `ccxt.async_support` exchange instance. The gateway
actor calls `submit`, `cancel`, `track` and `reconcile` from its own thread;
each call only schedules a coroutine on the loop (`call_soon_threadsafe`) and
returns at once. Answers come back as messages told to the actor's inbox
(`attach`): `ExchangeReports`, `BreakerChanged`, `ReconcileDue` and
`ReconcileSnapshot`. The actor journals them, so every state change still
happens in its thread, in order, write-ahead.

Transient failures are retried with backoff and count towards the circuit
breaker; permanent ones fail on the first try. Money is exact (ccxt hands
numbers over as strings: `exchange.number = str`). Credentials are never
logged. Errors, order safety, fills and market data: docs/architecture.md,
"ccxt gateway".

This module must never block an actor's thread on the network, and never
send an order that a lookup has not proven absent when its first send may
have reached the exchange.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pykka

from posbus.actors.gateway_actor import ExchangeReports
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import ExchangeRejected, ExchangeUnavailable, PosbusError
from posbus.actors.model.exchange_events import (
    BreakerChanged,
    ReconcileDue,
    ReconcilePolicy,
    ReconcileRequest,
    ReconcileSnapshot,
    TradeCursor,
    TradeView,
)
from posbus.actors.model.exchange_reports import (
    ExchangeOrderStatus,
    ExecutionReport,
    Liquidity,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderView,
)
from posbus.actors.model.fill import Fill
from posbus.adapters.clock import WallClock
from posbus.adapters.exchange.ccxt_config import Credentials, GatewayConfig
from posbus.adapters.exchange.ccxt_convert import (
    decimal_of,
    ns_of_ms,
    order_view,
    trade_view,
    trades_in_order,
    with_client_order_id,
)
from posbus.adapters.exchange.ccxt_errors import (
    is_duplicate_order,
    is_order_not_found,
    may_have_executed,
    to_posbus_error,
)
from posbus.adapters.exchange.ccxt_market import CcxtMarketFeed, MarketSink
from posbus.adapters.exchange.circuit_breaker import BreakerState, BreakerTransition, CircuitBreaker
from posbus.adapters.exchange.retry import retrying

logger = logging.getLogger(__name__)

# ccxt logs every request with its headers (the API key among them) at DEBUG:
# its logger is pinned at INFO so those records are never even created.
_WIRE_LOGGER = logging.getLogger("posbus.adapters.exchange.ccxt_wire")
_WIRE_LOGGER.setLevel(logging.INFO)

# ccxt options that make binance-family exchanges load markets with a single
# public request (exchangeInfo) and read open orders of every symbol at once.
_BINANCE_OPTIONS: dict[str, Any] = {
    "fetchCurrencies": False,
    "adjustForTimeDifference": False,
    "fetchMargins": False,
    "fetchMarkets": {"types": ["spot"]},
    "fetchOpenOrders": {"warnWithoutSymbol": False},
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}
# Exchanges whose trade history pages by trade id (ccxt param name).
_TRADE_ID_CURSOR = {"binance": "fromId", "binanceus": "fromId"}
_PAGE = 500
_DONE_MEMORY = 10_000
_UNKNOWN_ORDER_LOOKUPS = 50
# Added to the recvWindow: a request's timestamp is taken a little before it leaves.
_PROOF_MARGIN_S = 0.2

Inbox = Callable[[object], None]


class BreakerOpen(ExchangeUnavailable):
    """The circuit breaker refused the call: nothing was sent."""


@dataclass(slots=True)
class _Pending:
    """An order being placed; `in_doubt` once it may have reached the exchange."""

    order: NewOrder
    in_doubt: bool
    proof_after: float = 0.0  # loop time after which a lookup's "absent" is proof


@dataclass(slots=True)
class _Working:
    """An order open at the exchange, polled for fills."""

    symbol: str
    exchange_order_id: str
    reported_filled: Decimal = Decimal(0)
    trade_ids: set[str] = field(default_factory=set)


class CcxtGateway:
    """A network exchange client for one account (see the module docstring).

    Thread-safety: `attach`, `detach`, `submit`, `cancel`, `track`,
    `reconcile`, `subscribe_market`, `inspect`, `wait_idle` and `close` may be
    called from any thread; everything else runs on the I/O loop.

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
        self.config = config
        self.account = account
        self._credentials = credentials
        self._clock = clock if clock is not None else WallClock()
        self._symbols = tuple(symbols)
        self._rng = random.Random(seed)  # noqa: S311 - retry jitter, not cryptography
        self._breaker = CircuitBreaker(
            config.breaker_threshold, int(config.breaker_cooloff_s * 1e9)
        )
        self._policy = ReconcilePolicy(
            adopt_unknown=config.unknown_orders == "adopt",
            halt_on_balance_mismatch=config.balance_mismatch == "halt",
            balance_tolerance=config.balance_tolerance,
        )
        # Inbox of the gateway actor; the lock guards it and the undelivered queue.
        self._lock = threading.Lock()
        self._inbox: Inbox | None = None
        self._undelivered: deque[object] = deque()
        self._told = 0
        # The I/O loop and its thread.
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing: asyncio.Event | None = None
        self._ex: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        # Order state, touched only on the loop.
        self._working: dict[str, _Working] = {}
        self._unresolved: dict[str, _Pending] = {}
        self._inflight: set[str] = set()
        self._pending_cancels: dict[str, tuple[str, int]] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._poll_lock: asyncio.Lock | None = None
        self._probing = False
        self._connected = True
        self._last_reconcile_due_ns = self._clock.now_ns()
        self._market: CcxtMarketFeed | None = None
        self.counts: Counter[str] = Counter()
        self._status: dict[str, Any] = {}
        self._last_error = ""
        self._closed = False
        if getattr(ccxt_async, config.exchange_id, None) is None:
            raise ValueError(f"ccxt has no exchange {config.exchange_id!r}")

    # -- the actor's side (any thread) -----------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols reconciled even without orders (the configured ones)."""
        return self._symbols

    @property
    def reconcile_policy(self) -> ReconcilePolicy:
        """How the gateway reacts to unknown orders and balance differences."""
        return self._policy

    def attach(self, inbox: Inbox) -> None:
        """Send results to `inbox` from now on (starting the I/O loop on first use).

        Results produced while no inbox was attached (or the attached one was
        dead) are handed over first, in order.
        """
        self._start_loop()
        with self._lock:
            self._inbox = inbox
            pending = list(self._undelivered)
            self._undelivered.clear()
        for message in pending:
            self._tell(message)

    def detach(self) -> None:
        """Stop telling the actor; results are kept until the next `attach`."""
        with self._lock:
            self._inbox = None

    def submit(self, order: NewOrder, *, in_doubt: bool = False) -> None:
        """Place `order` (idempotent by client order id); returns at once.

        `in_doubt`: it may already be at the exchange (sent by an earlier
        incarnation): it is looked up first and sent only if proven absent.
        """
        self._spawn(self._submit(order, in_doubt))

    def cancel(self, client_order_id: str, symbol: str, ts_ns: int) -> None:
        """Cancel an order by client order id (idempotent); returns at once."""
        self._spawn(self._cancel(client_order_id, symbol, ts_ns))

    def track(self, client_order_id: str, symbol: str, exchange_order_id: str) -> None:
        """Poll an order known to be open (after a restart, or adopted) for its fills."""
        self._spawn(self._track(client_order_id, symbol, exchange_order_id))

    def reconcile(self, request: ReconcileRequest) -> None:
        """Fetch the exchange's side of the books; a ReconcileSnapshot is told when done."""
        self._spawn(self._reconcile(request))

    def poll_now(self) -> None:
        """Poll the working orders for fills now instead of at the next tick; returns at once."""
        self._spawn(self._poll_working())

    def subscribe_market(self, symbols: Sequence[str], sink: MarketSink) -> None:
        """Feed top-of-book updates of `symbols` to `sink` (called on the I/O thread)."""
        self._start_loop()
        self._loop.call_soon_threadsafe(self._start_market, tuple(symbols), sink)

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
        if self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._idle(), self._loop)
        future.result(timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the I/O loop and close the exchange's connections."""
        self._closed = True
        if self._thread is None:
            return
        closing = self._closing
        if closing is not None:
            self._loop.call_soon_threadsafe(closing.set)
        self._thread.join(timeout=timeout_s)
        self._thread = None

    # -- loop plumbing -------------------------------------------------------------

    def _start_loop(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the ccxt gateway is closed")
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"ccxt-{self.config.exchange_id}-{self.account}", daemon=True
            )
            self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the ccxt I/O loop did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._closing = asyncio.Event()
        self._poll_lock = asyncio.Lock()
        self._ex = self._new_exchange(ccxt_async)
        housekeeping = asyncio.get_running_loop().create_task(self._housekeeping())
        self._background.add(housekeeping)
        self._ready.set()
        try:
            await self._closing.wait()
        finally:
            for task in [*self._tasks, *self._background]:
                task.cancel()
            await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
            await self._ex.close()
            if self._market is not None:
                await self._market.close()

    def _new_exchange(self, module: Any) -> Any:
        cfg = self.config
        cls = getattr(module, cfg.exchange_id, None)
        if cls is None:
            raise ValueError(f"ccxt has no exchange {cfg.exchange_id!r}")
        options: dict[str, Any] = {}
        if cfg.exchange_id.startswith("binance"):
            options.update(_BINANCE_OPTIONS, recvWindow=cfg.recv_window_ms)
        options.update(cfg.options)
        exchange = cls(
            {
                "apiKey": self._credentials.api_key,
                "secret": self._credentials.secret,
                "enableRateLimit": cfg.enable_rate_limit,
                "timeout": cfg.timeout_ms,
                "logger": _WIRE_LOGGER,
                "options": options,
            }
        )
        exchange.number = str  # numbers as exchange-sent strings: exact Decimals here
        if cfg.urls:
            api = exchange.urls.get("api")
            if isinstance(api, dict):
                exchange.urls["api"] = {**api, **cfg.urls}
            elif "api" in cfg.urls:
                exchange.urls["api"] = cfg.urls["api"]
        return exchange

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._closed:
            coro.close()
            logger.warning("ccxt gateway closed; request dropped", extra={"account": self.account})
            return
        self._start_loop()

        def create() -> None:
            task = self._loop.create_task(self._guard_task(coro))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._loop.call_soon_threadsafe(create)

    async def _guard_task(self, coro: Awaitable[None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the I/O loop's boundary: log, count, keep serving
            self.counts["task_errors"] += 1
            self._last_error = repr(exc)
            logger.exception("ccxt gateway task failed", extra={"account": self.account})
        finally:
            self._publish_status()

    async def _idle(self) -> None:
        current = asyncio.current_task()
        while True:
            others = [t for t in self._tasks if t is not current and not t.done()]
            if not others:
                return
            await asyncio.wait(others)

    @property
    def told(self) -> int:
        """How many messages were handed to the actor so far (a progress mark for barriers)."""
        with self._lock:
            return self._told

    def _tell(self, message: object) -> None:
        """Hand a result to the actor, or keep it until one is attached."""
        with self._lock:
            self._told += 1
            inbox = self._inbox
            if inbox is None:
                self._undelivered.append(message)
                return
        try:
            inbox(message)
        except pykka.ActorDeadError:
            with self._lock:
                if self._inbox is inbox:
                    self._inbox = None
                self._undelivered.append(message)

    def _report(self, reports: Sequence[ExecutionReport]) -> None:
        if reports:
            self._tell(ExchangeReports(tuple(reports)))

    # -- one guarded request -------------------------------------------------------

    async def _call(
        self,
        what: str,
        request: Callable[[], Awaitable[Any]],
        *,
        order_id: str | None = None,
        symbol: str | None = None,
    ) -> Any:
        """One request through the breaker; ccxt's exceptions come out as PosbusError.

        The ccxt exception is the PosbusError's `__cause__`.
        """
        allowed, moved = self._breaker.acquire(self._clock.now_ns())
        self._announce(moved)
        if not allowed:
            self.counts["breaker_refused"] += 1
            raise BreakerOpen(
                f"circuit breaker {self._breaker.state.value}: {what} not sent",
                order_id=order_id,
                symbol=symbol,
            )
        self.counts[f"requests.{what}"] += 1
        try:
            result = await request()
        except ccxt.BaseError as exc:
            headers = getattr(self._ex, "last_response_headers", None)
            error = to_posbus_error(exc, order_id=order_id, symbol=symbol, headers=headers)
            self._last_error = f"{what}: {type(error).__name__}: {error.message}"
            now = self._clock.now_ns()
            if error.transient:
                self.counts["transient_errors"] += 1
                self._announce(self._breaker.record_failure(now, error.message))
                if isinstance(exc, ccxt.NetworkError):
                    self._connected = False
            else:
                # The exchange answered (it refused): it is reachable and sane.
                self._announce(self._breaker.record_success(now))
                self._reconnected()
            raise error from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the boundary to ccxt: an unexpected failure is logged, and
            # treated like a network error (the outcome of a send stays unknown).
            logger.exception("exchange call failed unexpectedly", extra={"call": what})
            self._announce(self._breaker.record_failure(self._clock.now_ns(), f"{what}: {exc!r}"))
            raise ExchangeUnavailable(
                f"{what} failed unexpectedly: {exc!r}", order_id=order_id, symbol=symbol
            ) from exc
        self._announce(self._breaker.record_success(self._clock.now_ns()))
        self._reconnected()
        return result

    async def _retrying(
        self, what: str, request: Callable[[], Awaitable[Any]], **context: Any
    ) -> Any:
        def retry_told(error: PosbusError, tries: int, wait_s: float) -> None:
            self.counts["retries"] += 1
            logger.info(
                "exchange call failed; retrying",
                extra={"call": what, "tries": tries, "wait_s": round(wait_s, 3), **_fields(error)},
            )

        return await retrying(
            lambda: self._call(what, request, **context),
            self.config.retry,
            rng=self._rng,
            give_up=lambda error: isinstance(error, BreakerOpen),
            on_retry=retry_told,
        )

    def _announce(self, transition: BreakerTransition | None) -> None:
        if transition is None:
            return
        logger.warning(
            "circuit breaker %s -> %s",
            transition.previous.value,
            transition.state.value,
            extra={
                "account": self.account,
                "previous": transition.previous.value,
                "state": transition.state.value,
                "reason": transition.reason,
                "failures": transition.failures,
            },
        )
        self._tell(
            BreakerChanged(
                transition.previous.value,
                transition.state.value,
                transition.reason,
                transition.failures,
                transition.ts_ns,
            )
        )
        if transition.state is BreakerState.CLOSED:
            self._spawn_local(self._resume())
        self._publish_status()

    def _reconnected(self) -> None:
        if not self._connected:
            self._connected = True
            self._tell(ReconcileDue("reconnect"))

    def _spawn_local(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guard_task(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- orders ----------------------------------------------------------------------

    async def _submit(self, order: NewOrder, in_doubt: bool) -> None:
        cid = order.client_order_id
        if (
            cid in self._inflight
            or cid in self._working
            or cid in self._unresolved
            or cid in self._done
        ):
            self.counts["duplicate_submits_ignored"] += 1
            return
        pending = _Pending(order, in_doubt)
        if in_doubt:
            # Sent by an earlier incarnation at an unknown time: count the window from now.
            pending.proof_after = self._loop.time() + self._proof_window_s()
        await self._place(pending)

    async def _place(self, pending: _Pending) -> None:
        order = pending.order
        cid = order.client_order_id
        self._inflight.add(cid)
        try:
            placed = await retrying(
                lambda: self._place_once(pending),
                self.config.retry,
                rng=self._rng,
                give_up=lambda error: isinstance(error, BreakerOpen),
                on_retry=lambda error, tries, wait: self._log_retry(
                    "create_order", error, tries, wait
                ),
            )
        except PosbusError as error:
            self._unresolved.pop(cid, None)
            if pending.in_doubt:
                # It may be at the exchange: never reject it, resolve it later.
                self._unresolved[cid] = pending
                self.counts["orders_unresolved"] += 1
                logger.warning(
                    "order outcome unknown; will look it up again",
                    extra={"client_order_id": cid, **_fields(error)},
                )
                return
            self.counts["orders_rejected"] += 1
            self._pending_cancels.pop(cid, None)  # nothing left to cancel
            self._forget(cid)
            # The exchange's own words (ExchangeRejected keeps them apart from its prefix).
            reason = f"{type(error).__name__}: {getattr(error, 'reason', error.message)}"
            self._report([OrderRejected(cid, reason, self._clock.now_ns())])
            return
        finally:
            self._inflight.discard(cid)
        self._unresolved.pop(cid, None)
        await self._apply_order(placed, liquidity="taker", ack=True)
        self._run_deferred_cancel(cid)

    async def _place_once(self, pending: _Pending) -> Any:
        """One attempt: look up first when in doubt, else (or when proven absent) send."""
        order = pending.order
        cid = order.client_order_id
        if pending.in_doubt:
            found = await self._lookup(cid, order.symbol)
            if found is None and self._loop.time() < pending.proof_after:
                # Not yet proof: the request may still be executing. Wait out its window.
                await asyncio.sleep(pending.proof_after - self._loop.time())
                found = await self._lookup(cid, order.symbol)
            if found is not None:
                self.counts["orders_found_by_lookup"] += 1
                return found
            # Proven absent: the earlier send never executed and never will.
            pending.in_doubt = False
            self.counts["orders_proven_absent"] += 1
        await self._load_markets()
        amount, price = self._checked_amounts(order)
        kind = "market" if price is None else "limit"
        sent_at = self._loop.time()
        try:
            return await self._call(
                "create_order",
                lambda: self._ex.create_order(
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
        return self.config.recv_window_ms / 1000 + _PROOF_MARGIN_S

    def _checked_amounts(self, order: NewOrder) -> tuple[str, str | None]:
        """Amount and price as the exchange takes them; a value it would round is refused."""
        try:
            amount = self._ex.amount_to_precision(order.symbol, str(order.qty))
            price = (
                None
                if order.limit_price is None
                else self._ex.price_to_precision(order.symbol, str(order.limit_price))
            )
        except ccxt.BaseError as exc:
            raise to_posbus_error(exc, order_id=order.client_order_id, symbol=order.symbol) from exc
        if Decimal(amount) != order.qty:
            raise _rejected(f"qty {order.qty} is not a multiple of the lot size", order)
        if price is not None and Decimal(price) != order.limit_price:
            raise _rejected(f"limit price {order.limit_price} is not a multiple of the tick", order)
        return amount, price

    async def _load_markets(self) -> None:
        if not self._ex.markets:
            await self._call("load_markets", self._ex.load_markets)

    async def _lookup(self, cid: str, symbol: str) -> Any | None:
        """The exchange's order with this client order id, or None when it says there is none."""
        try:
            return await self._call(
                "fetch_order",
                lambda: self._ex.fetch_order(None, symbol, {"clientOrderId": cid}),
                order_id=cid,
                symbol=symbol,
            )
        except PosbusError as error:
            if isinstance(error.__cause__, ccxt.BaseError) and is_order_not_found(error.__cause__):
                return None
            raise

    async def _apply_order(self, placed: Any, *, liquidity: Liquidity, ack: bool) -> None:
        """Report what an order dict says (ack, new fills, end) and track it while open."""
        view = order_view(placed, self.account)
        cid = view.client_order_id
        ts = ns_of_ms(placed.get("timestamp"), self._clock.now_ns())
        reports: list[ExecutionReport] = []
        if ack:
            reports.append(OrderAccepted(cid, view.exchange_order_id, view.symbol, ts))
        known = self._working.get(cid)
        working = known or _Working(view.symbol, view.exchange_order_id)
        if view.filled_qty > working.reported_filled:
            trades = trades_in_order(placed, view, liquidity, self._clock.now_ns())
            if sum((t.qty for t in trades), Decimal(0)) != view.filled_qty:
                trades = await self._order_trades(view)
            reports.extend(self._fills(trades, working))
        if view.status.is_open:
            self._working[cid] = working
        else:
            self._working.pop(cid, None)
            reports.extend(self._end_reports(view, ts))
            self._forget(cid)
        self._report(reports)

    def _fills(self, trades: Sequence[TradeView], working: _Working) -> list[ExecutionReport]:
        out: list[ExecutionReport] = []
        for trade in trades:
            if trade.trade_id in working.trade_ids:
                continue
            working.trade_ids.add(trade.trade_id)
            working.reported_filled += trade.qty
            out.append(OrderFilled(trade.client_order_id or "", self._fill(trade), trade.liquidity))
        return out

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
        )

    def _end_reports(self, view: OrderView, ts_ns: int) -> list[ExecutionReport]:
        if view.status is ExchangeOrderStatus.CANCELLED:
            return [OrderCancelled(view.client_order_id, ts_ns, "cancelled at the exchange")]
        if view.status is ExchangeOrderStatus.EXPIRED:
            return [OrderExpired(view.client_order_id, ts_ns)]
        return []

    def _forget(self, cid: str) -> None:
        self._done[cid] = None
        while len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)

    # -- cancels ---------------------------------------------------------------------

    async def _cancel(self, cid: str, symbol: str, ts_ns: int) -> None:
        if cid in self._inflight or cid in self._unresolved:
            # Its outcome is not known yet: cancel once it is.
            self._pending_cancels[cid] = (symbol, ts_ns)
            return
        self._pending_cancels.pop(cid, None)
        try:
            answer = await self._retrying(
                "cancel_order",
                lambda: self._ex.cancel_order(None, symbol, {"clientOrderId": cid}),
                order_id=cid,
                symbol=symbol,
            )
        except PosbusError as error:
            cause = error.__cause__
            if isinstance(cause, ccxt.BaseError) and is_order_not_found(cause):
                await self._cancel_of_closed(cid, symbol)
            elif error.transient:
                self._pending_cancels[cid] = (symbol, ts_ns)
                self.counts["cancels_deferred"] += 1
            else:
                # A refused cancel is not an order event: the order stays CancelRequested.
                self.counts["cancels_refused"] += 1
                logger.warning("cancel refused", extra=_fields(error))
            return
        self.counts["cancels"] += 1
        view = order_view(answer, self.account)
        working = self._working.pop(cid, None)
        reports: list[ExecutionReport] = []
        if working is not None and view.filled_qty > working.reported_filled:
            reports.extend(self._fills(await self._order_trades(view), working))
        reports.append(OrderCancelled(cid, self._clock.now_ns(), "cancelled by client"))
        self._forget(cid)
        self._report(reports)

    async def _cancel_of_closed(self, cid: str, symbol: str) -> None:
        """Cancel of an order the exchange no longer has open: say how it ended (idempotent)."""
        found = await self._lookup(cid, symbol)
        if found is None:
            self._report([OrderRejected(cid, "unknown order", self._clock.now_ns())])
            return
        await self._apply_order(found, liquidity="maker", ack=False)

    def _run_deferred_cancel(self, cid: str) -> None:
        deferred = self._pending_cancels.pop(cid, None)
        if deferred is not None:
            self._spawn_local(self._cancel(cid, *deferred))

    # -- tracking resting orders -------------------------------------------------------

    async def _track(self, cid: str, symbol: str, exchange_order_id: str) -> None:
        if cid not in self._working:
            self._working[cid] = _Working(symbol, exchange_order_id)
            self._done.pop(cid, None)

    async def _poll_working(self) -> None:
        """Find fills and ends of working orders: their symbols' open orders, then lookups."""
        assert self._poll_lock is not None
        async with self._poll_lock:
            await self._poll_working_once()

    async def _poll_working_once(self) -> None:
        try:
            for symbol in sorted({w.symbol for w in self._working.values()}):
                listed = await self._call(
                    "fetch_open_orders", partial(self._ex.fetch_open_orders, symbol)
                )
                open_now = {o.get("clientOrderId"): o for o in listed}
                for cid, working in list(self._working.items()):
                    if working.symbol != symbol:
                        continue
                    order = open_now.get(cid)
                    if order is None:
                        order = await self._lookup(cid, symbol)
                        if order is None:
                            logger.error(
                                "a working order vanished at the exchange; reconciliation decides",
                                extra={"client_order_id": cid, "symbol": symbol},
                            )
                            self._working.pop(cid, None)
                            continue
                    filled = decimal_of(order.get("filled")) or Decimal(0)
                    if filled > working.reported_filled or order.get("status") != "open":
                        await self._apply_order(order, liquidity="maker", ack=False)
        except PosbusError as error:
            self.counts["poll_failures"] += 1
            logger.info("polling working orders failed", extra=_fields(error))

    # -- reconciliation ----------------------------------------------------------------

    async def _reconcile(self, request: ReconcileRequest) -> None:
        errors: list[str] = []
        # Balances first: every trade they reflect is then in the history read after them.
        balances, window = await self._read_balances(request, errors)
        open_orders: tuple[OrderView, ...] | None = None
        try:
            open_orders = await self._open_orders(request.symbols)
        except PosbusError as error:
            errors.append(f"open orders: {error}")
        known_ids = {v.exchange_order_id: v.client_order_id for v in open_orders or ()}
        lookups, extra_trades = await self._read_lookups(request, open_orders, known_ids, errors)
        trades: dict[str, tuple[TradeView, ...]] = {}
        trades_read_ms = time.time_ns() // 1_000_000
        for symbol in request.symbols:
            try:
                listed = await self._trades_after(symbol, request.cursors.get(symbol))
            except PosbusError as error:
                errors.append(f"trades of {symbol}: {error}")
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
        self.counts["reconciliations"] += 1
        self._tell(snapshot)
        if errors:
            # Until it completes the gateway holds new orders: ask again soon.
            self.counts["reconciliations_incomplete"] += 1
            delay = max(self.config.poll_interval_s, self.config.retry.max_s)
            self._loop.call_later(delay, self._tell, ReconcileDue("retry"))

    async def _read_balances(
        self, request: ReconcileRequest, errors: list[str]
    ) -> tuple[dict[str, Decimal] | None, tuple[int, int] | None]:
        if not request.balances:
            return None, None
        sent = time.time_ns()
        try:
            raw = await self._retrying("fetch_balance", self._ex.fetch_balance)
        except PosbusError as error:
            errors.append(f"balances: {error}")
            return None, None
        totals = raw.get("total") or {}
        amounts = {currency: decimal_of(total) for currency, total in totals.items()}
        balances = {currency: v for currency, v in amounts.items() if v is not None}
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
            if cid in open_cids or cid in self._inflight or cid in self._unresolved:
                continue
            try:
                found = await self._lookup(cid, symbol)
            except PosbusError as error:
                errors.append(f"lookup of {cid}: {error}")
                continue
            view = None if found is None else order_view(found, self.account)
            lookups[cid] = view
            if view is None:
                continue
            known_ids[view.exchange_order_id] = cid
            if view.filled_qty > 0:
                try:
                    extra_trades.setdefault(symbol, []).extend(await self._order_trades(view))
                except PosbusError as error:
                    errors.append(f"trades of {symbol}: order {cid}: {error}")
        return lookups, extra_trades

    async def _open_orders(self, symbols: Sequence[str]) -> tuple[OrderView, ...]:
        try:
            listed = await self._retrying("fetch_open_orders", self._ex.fetch_open_orders)
        except PosbusError as error:
            if not isinstance(error.__cause__, ccxt.ArgumentsRequired | ccxt.NotSupported):
                raise
            listed = []
            for symbol in symbols:
                listed.extend(
                    await self._retrying(
                        "fetch_open_orders", partial(self._ex.fetch_open_orders, symbol)
                    )
                )
        return tuple(order_view(o, self.account) for o in listed)

    async def _trades_after(self, symbol: str, cursor: TradeCursor | None) -> list[TradeView]:
        """The symbol's trades after `cursor` (all pages), or the latest page without one."""
        by_id = _TRADE_ID_CURSOR.get(self.config.exchange_id)
        out: list[TradeView] = []
        params: dict[str, Any] = {}
        since: int | None = None
        if cursor is not None:
            if by_id and cursor.trade_id.isdigit():
                params[by_id] = int(cursor.trade_id) + 1
            else:
                since = cursor.ts_ms + (1 if cursor.trade_id else 0)
        while True:
            page = await self._retrying(
                "fetch_my_trades",
                partial(self._ex.fetch_my_trades, symbol, since, _PAGE, dict(params)),
                symbol=symbol,
            )
            out.extend(trade_view(t, None, None, self._clock.now_ns()) for t in page)
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
        names = {w.exchange_order_id: cid for cid, w in self._working.items()} | dict(known)
        lookups = 0
        for symbol, listed in trades.items():
            named: list[TradeView] = []
            for trade in listed:
                cid = trade.client_order_id or names.get(trade.exchange_order_id)
                eid = trade.exchange_order_id
                if cid is None and eid not in known_elsewhere and lookups < _UNKNOWN_ORDER_LOOKUPS:
                    lookups += 1
                    try:
                        found = await self._call(
                            "fetch_order",
                            partial(self._ex.fetch_order, eid, symbol),
                            symbol=symbol,
                        )
                        cid = found.get("clientOrderId")
                        if isinstance(cid, str):
                            names[eid] = cid
                    except PosbusError as error:
                        errors.append(f"order of trade {trade.trade_id}: {error}")
                named.append(with_client_order_id(trade, cid if isinstance(cid, str) else None))
            trades[symbol] = tuple(named)

    async def _order_trades(self, view: OrderView) -> list[TradeView]:
        symbol = view.symbol
        if self._ex.has.get("fetchOrderTrades"):
            listed = await self._retrying(
                "fetch_order_trades",
                lambda: self._ex.fetch_order_trades(view.exchange_order_id, symbol),
                order_id=view.client_order_id,
                symbol=symbol,
            )
        else:
            listed = [
                t
                for t in await self._retrying(
                    "fetch_my_trades", lambda: self._ex.fetch_my_trades(symbol), symbol=symbol
                )
                if str(t.get("order")) == view.exchange_order_id
            ]
        return [trade_view(t, view.client_order_id, None, self._clock.now_ns()) for t in listed]

    # -- housekeeping (the loop's timer) -------------------------------------------------

    async def _housekeeping(self) -> None:
        interval = self.config.poll_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                self._tick()
            except Exception:  # the I/O loop's boundary: log and keep ticking
                logger.exception("ccxt gateway housekeeping failed")
            self._publish_status()

    def _tick(self) -> None:
        now = self._clock.now_ns()
        self._announce(self._breaker.poll(now))
        state = self._breaker.state
        if state is BreakerState.HALF_OPEN:
            if not self._probing:
                self._probing = True
                self._spawn_local(self._probe())
            return
        if state is BreakerState.OPEN:
            return
        self._resume_now()
        if self._working and self._poll_lock is not None and not self._poll_lock.locked():
            self._spawn_local(self._poll_working())
        feed = self._market
        if feed is not None and not feed.streaming and not feed.polling:
            feed.polling = True  # set now: the next tick must not start a second round
            self._spawn_local(feed.poll_once())
        interval = int(self.config.reconcile_interval_s * 1e9)
        if interval and now - self._last_reconcile_due_ns >= interval:
            self._last_reconcile_due_ns = now
            self._tell(ReconcileDue("periodic"))

    async def _probe(self) -> None:
        """One request to see whether a half-open breaker may close."""
        try:
            if self._ex.has.get("fetchTime"):
                await self._call("probe", self._ex.fetch_time)
            else:
                await self._call("probe", lambda: self._ex.load_markets(True))
        except PosbusError as error:
            logger.info("breaker probe failed", extra=_fields(error))
        finally:
            self._probing = False

    async def _resume(self) -> None:
        self._resume_now()

    def _resume_now(self) -> None:
        """Retry what waited for the exchange: unresolved orders, then deferred cancels."""
        for cid, pending in list(self._unresolved.items()):
            if cid not in self._inflight:
                del self._unresolved[cid]
                self._spawn_local(self._place(pending))
        for cid, (symbol, ts_ns) in list(self._pending_cancels.items()):
            if cid not in self._inflight and cid not in self._unresolved:
                del self._pending_cancels[cid]
                self._spawn_local(self._cancel(cid, symbol, ts_ns))

    # -- market data ---------------------------------------------------------------------

    def _start_market(self, symbols: tuple[str, ...], sink: MarketSink) -> None:
        mode = self.config.market_data
        if mode == "auto" and self.config.urls:
            # REST URLs point elsewhere (a testnet, an emulator) but ccxt's
            # websocket URLs would still name the production venue: poll instead.
            mode = "rest"
        feed = CcxtMarketFeed(
            symbols=symbols,
            sink=sink,
            mode=mode,
            fetch_ticker=self._fetch_ticker,
            new_websocket_exchange=self._new_websocket_exchange,
            clock=self._clock,
            retry=self.config.retry,
            rng=self._rng,
            counts=self.counts,
        )
        self._market = feed
        self._background.update(feed.start())

    async def _fetch_ticker(self, symbol: str) -> Any:
        return await self._call(
            "fetch_ticker", partial(self._ex.fetch_ticker, symbol), symbol=symbol
        )

    def _new_websocket_exchange(self) -> Any | None:
        import ccxt.pro as ccxt_pro  # noqa: PLC0415 - websockets only when used

        if getattr(ccxt_pro, self.config.exchange_id, None) is None:
            return None
        return self._new_exchange(ccxt_pro)

    # -- status ---------------------------------------------------------------------------

    def _log_retry(self, what: str, error: PosbusError, tries: int, wait_s: float) -> None:
        self.counts["retries"] += 1
        logger.info(
            "exchange call failed; retrying",
            extra={"call": what, "tries": tries, "wait_s": round(wait_s, 3), **_fields(error)},
        )

    def _publish_status(self) -> None:
        # Replaced as a whole: `inspect` on another thread reads one consistent dict.
        self._status = {
            "breaker": self._breaker.to_dict(),
            "connected": self._connected,
            "working_orders": sorted(self._working),
            "unresolved_orders": sorted(self._unresolved),
            "deferred_cancels": sorted(self._pending_cancels),
            "in_flight": len(self._inflight),
            "last_error": self._last_error,
            "counts": dict(self.counts),
        }


def _fields(error: PosbusError) -> dict[str, Any]:
    """An error's context as log fields (a LogRecord has its own `message`)."""
    fields = error.context()
    fields["error_message"] = fields.pop("message", "")
    return fields


def _rejected(reason: str, order: NewOrder) -> PosbusError:
    return ExchangeRejected(reason, order_id=order.client_order_id, symbol=order.symbol)
