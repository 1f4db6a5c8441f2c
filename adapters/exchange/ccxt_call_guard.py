"""The ccxt gateway's call guard: every request to the venue passes its circuit breaker, some retry.

`CallGuard` holds the gateway's ccxt client and its circuit breaker. `call`
sends one request if the breaker lets it and turns ccxt's exceptions into
posbus errors (transient ones count towards the breaker); `retrying` repeats
a call with backoff and jitter while its failure is transient. Breaker moves
are logged and told to the actor as `BreakerChanged`; a lost connection that
answers again asks for a reconciliation (`ReconcileDue("reconnect")`).

Everything here runs on the gateway's I/O loop. It must never send a request
while the breaker refuses one, and never log credentials.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import ccxt

from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import ExchangeUnavailable, PosbusError
from posbus.actors.model.exchange_events import BreakerChanged, ReconcileDue
from posbus.adapters.exchange.ccxt_config import GatewayConfig
from posbus.adapters.exchange.ccxt_errors import to_posbus_error
from posbus.adapters.exchange.circuit_breaker import BreakerState, BreakerTransition, CircuitBreaker
from posbus.adapters.exchange.retry import retrying

logger = logging.getLogger(__name__)


class BreakerOpen(ExchangeUnavailable):
    """The circuit breaker refused the call: nothing was sent."""


def log_fields(error: PosbusError) -> dict[str, Any]:
    """An error's context as log fields (a LogRecord has its own `message`)."""
    fields = error.context()
    fields["error_message"] = fields.pop("message", "")
    return fields


class CallGuard:
    """The breaker and retries around one gateway's ccxt client (I/O loop only).

    Args:
        config: the breaker threshold and cool-off, and the retry policy.
        account: named in the breaker's log records.
        clock: time of the breaker.
        rng: the retry jitter.
        counts: the gateway's counters.
        tell: hands a message to the gateway actor.
        on_closed: runs when the breaker closes (retries what waited for the venue).
        on_change: runs after every breaker move (publishes the gateway's status).
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        account: str,
        clock: Clock,
        rng: random.Random,
        counts: Counter[str],
        tell: Callable[[object], None],
        on_closed: Callable[[], None],
        on_change: Callable[[], None],
    ) -> None:
        self._config = config
        self._account = account
        self._clock = clock
        self._rng = rng
        self._counts = counts
        self._tell = tell
        self._on_closed = on_closed
        self._on_change = on_change
        self.breaker = CircuitBreaker(config.breaker_threshold, int(config.breaker_cooloff_s * 1e9))
        self.exchange: Any = None  # the ccxt client, built on the loop when it starts
        self.connected = True
        self.last_error = ""
        self.probing = False

    async def call(
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
        allowed, moved = self.breaker.acquire(self._clock.now_ns())
        self.announce(moved)
        if not allowed:
            self._counts["breaker_refused"] += 1
            raise BreakerOpen(
                f"circuit breaker {self.breaker.state.value}: {what} not sent",
                order_id=order_id,
                symbol=symbol,
            )
        self._counts[f"requests.{what}"] += 1
        try:
            result = await request()
        except ccxt.BaseError as exc:
            raise self._failed(what, exc, order_id, symbol) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the boundary to ccxt: an unexpected failure is logged, and
            # treated like a network error (the outcome of a send stays unknown).
            logger.exception("exchange call failed unexpectedly", extra={"call": what})
            self.announce(self.breaker.record_failure(self._clock.now_ns(), f"{what}: {exc!r}"))
            raise ExchangeUnavailable(
                f"{what} failed unexpectedly: {exc!r}", order_id=order_id, symbol=symbol
            ) from exc
        self.announce(self.breaker.record_success(self._clock.now_ns()))
        self._reconnected()
        return result

    async def retrying(
        self, what: str, request: Callable[[], Awaitable[Any]], **context: Any
    ) -> Any:
        """`call` repeated with backoff while it fails transiently (never past an open breaker)."""
        return await self.retry(lambda: self.call(what, request, **context), what)

    async def retry(self, attempt: Callable[[], Awaitable[Any]], what: str) -> Any:
        """Any guarded `attempt` repeated under the retry policy; retries are logged as `what`."""

        def retry_told(error: PosbusError, tries: int, wait_s: float) -> None:
            self._counts["retries"] += 1
            logger.info(
                "exchange call failed; retrying",
                extra={
                    "call": what,
                    "tries": tries,
                    "wait_s": round(wait_s, 3),
                    **log_fields(error),
                },
            )

        return await retrying(
            attempt,
            self._config.retry,
            rng=self._rng,
            give_up=lambda error: isinstance(error, BreakerOpen),
            on_retry=retry_told,
        )

    async def probe(self) -> None:
        """One request to see whether a half-open breaker may close (clears `probing`)."""
        ex = self.exchange
        try:
            if ex.has.get("fetchTime"):
                await self.call("probe", ex.fetch_time)
            else:
                await self.call("probe", lambda: ex.load_markets(True))
        except PosbusError as error:
            logger.info("breaker probe failed", extra=log_fields(error))
        finally:
            self.probing = False

    def announce(self, transition: BreakerTransition | None) -> None:
        """Log a breaker move and tell it to the actor (nothing when it did not move)."""
        if transition is None:
            return
        logger.warning(
            "circuit breaker %s -> %s",
            transition.previous.value,
            transition.state.value,
            extra={
                "account": self._account,
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
            self._on_closed()
        self._on_change()

    def _failed(
        self, what: str, exc: ccxt.BaseError, order_id: str | None, symbol: str | None
    ) -> PosbusError:
        """The posbus error of a ccxt failure, counted towards the breaker when transient."""
        headers = getattr(self.exchange, "last_response_headers", None)
        error = to_posbus_error(exc, order_id=order_id, symbol=symbol, headers=headers)
        self.last_error = f"{what}: {type(error).__name__}: {error.message}"
        now = self._clock.now_ns()
        if error.transient:
            self._counts["transient_errors"] += 1
            self.announce(self.breaker.record_failure(now, error.message))
            if isinstance(exc, ccxt.NetworkError):
                self.connected = False
        else:
            # The exchange answered (it refused): it is reachable and sane.
            self.announce(self.breaker.record_success(now))
            self._reconnected()
        return error

    def _reconnected(self) -> None:
        if not self.connected:
            self.connected = True
            self._tell(ReconcileDue("reconnect"))
