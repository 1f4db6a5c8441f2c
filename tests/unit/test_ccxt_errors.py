"""ccxt's exceptions mapped onto posbus's errors, and the bounded retry around them.

The retry tests run real `asyncio` waits of a few milliseconds (the policy's
bounds), never more than the 0.05 s Retry-After one of them asks for.
"""

from __future__ import annotations

import asyncio
import random
import time

import ccxt
import pytest

from posbus.actors.model.errors import (
    ExchangeRejected,
    ExchangeUnavailable,
    ExecutionTimeout,
    InsufficientBalance,
    PosbusError,
    RateLimited,
)
from posbus.adapters.exchange.ccxt_errors import (
    exchange_message,
    is_duplicate_order,
    may_have_executed,
    to_posbus_error,
)
from posbus.adapters.exchange.retry import RetryPolicy, retrying

BINANCE_BODY = (
    'binance {"code": -2010, "msg": "Account has insufficient balance for requested action."}'
)


@pytest.mark.parametrize(
    ("exc", "kind", "transient"),
    [
        (ccxt.NetworkError("binance GET x"), ExchangeUnavailable, True),
        (ccxt.RequestTimeout("binance GET x"), ExecutionTimeout, True),
        (ccxt.RateLimitExceeded("binance 429"), RateLimited, True),
        (ccxt.DDoSProtection("binance 418"), RateLimited, True),
        (ccxt.ExchangeNotAvailable("binance 503"), ExchangeUnavailable, True),
        (ccxt.OnMaintenance("binance System is under maintenance."), ExchangeUnavailable, True),
        (ccxt.OperationFailed("binance -1001"), ExchangeUnavailable, True),
        (ccxt.InvalidOrder("binance Filter failure: LOT_SIZE"), ExchangeRejected, False),
        (ccxt.InsufficientFunds(BINANCE_BODY), InsufficientBalance, False),
        (ccxt.BadSymbol("binance Invalid symbol."), ExchangeRejected, False),
        (
            ccxt.AuthenticationError("binance Signature for this request is not valid."),
            ExchangeRejected,
            False,
        ),
        (ccxt.PermissionDenied("binance not allowed"), ExchangeRejected, False),
        (ccxt.BadRequest("binance bad"), ExchangeRejected, False),
    ],
)
def test_ccxt_exceptions_map_to_transient_or_permanent_posbus_errors(
    exc: ccxt.BaseError, kind: type[PosbusError], transient: bool
) -> None:
    error = to_posbus_error(exc, order_id="c1", symbol="BTC/USDT")
    assert type(error) is kind
    assert error.transient is transient
    assert (error.order_id, error.symbol) == ("c1", "BTC/USDT")


def test_the_exchanges_own_message_is_kept() -> None:
    assert exchange_message(ccxt.InsufficientFunds(BINANCE_BODY)) == (
        "Account has insufficient balance for requested action."
    )
    assert exchange_message(ccxt.InvalidOrder("binance Filter failure: LOT_SIZE")) == (
        "Filter failure: LOT_SIZE"
    )
    rejected = to_posbus_error(ccxt.InvalidOrder("binance Filter failure: LOT_SIZE"))
    assert isinstance(rejected, ExchangeRejected)
    assert rejected.reason == "Filter failure: LOT_SIZE"


def test_retry_after_comes_from_the_header_or_the_ban_deadline() -> None:
    limited = to_posbus_error(ccxt.RateLimitExceeded("binance 429"), headers={"Retry-After": "2"})
    assert isinstance(limited, RateLimited)
    assert limited.retry_after_s == 2.0
    until_ms = int(time.time() * 1000) + 3000
    banned = to_posbus_error(ccxt.DDoSProtection(f"binance 418 IP banned until {until_ms}."))
    assert isinstance(banned, RateLimited)
    assert banned.retry_after_s is not None
    assert 2.0 < banned.retry_after_s <= 3.0


@pytest.mark.parametrize(
    ("exc", "executed"),
    [
        (ccxt.RequestTimeout("timeout"), True),
        (ccxt.ExchangeNotAvailable("connection reset"), True),
        (ccxt.OperationFailed("-1001 internal error"), True),
        (ccxt.RateLimitExceeded("429"), False),
        (ccxt.OnMaintenance("maintenance"), False),
        (ccxt.InvalidOrder("rejected"), False),
    ],
)
def test_only_an_ambiguous_failure_may_have_executed_the_order(
    exc: ccxt.BaseError, executed: bool
) -> None:
    assert may_have_executed(exc) is executed


def test_duplicate_client_order_id_is_recognised() -> None:
    assert is_duplicate_order(
        ccxt.InvalidOrder('binance {"code": -2010, "msg": "Duplicate order sent."}')
    )
    assert is_duplicate_order(ccxt.DuplicateOrderId("x"))
    assert not is_duplicate_order(ccxt.InvalidOrder("binance Filter failure: LOT_SIZE"))


class Script:
    """A call that fails with the given errors, in order, then returns "ok"."""

    def __init__(self, *errors: PosbusError) -> None:
        self.errors = list(errors)
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


POLICY = RetryPolicy(tries=3, min_s=0.001, max_s=0.005, max_retry_after_s=1.0)


def run(call: Script, policy: RetryPolicy = POLICY) -> str:
    return asyncio.run(retrying(call, policy, rng=random.Random(1)))


def test_transient_failures_are_retried_until_success() -> None:
    call = Script(ExchangeUnavailable("503"), ExecutionTimeout("timeout"))
    assert run(call) == "ok"
    assert len(call.calls) == 3


def test_retries_stop_at_the_bound_and_raise_the_last_error() -> None:
    call = Script(*(ExchangeUnavailable(f"503 #{n}") for n in range(5)))
    with pytest.raises(ExchangeUnavailable, match="503 #2"):
        run(call)
    assert len(call.calls) == 3


def test_a_permanent_failure_is_not_retried() -> None:
    call = Script(ExchangeRejected("Filter failure: LOT_SIZE"))
    with pytest.raises(ExchangeRejected):
        run(call)
    assert len(call.calls) == 1


def test_retry_after_is_waited_for_exactly_not_the_jittered_delay() -> None:
    call = Script(RateLimited("429", retry_after_s=0.05), ExchangeUnavailable("503"))
    waits: list[float] = []
    told = lambda _error, _tries, wait: waits.append(wait)  # noqa: E731
    assert asyncio.run(retrying(call, POLICY, rng=random.Random(1), on_retry=told)) == "ok"
    # The venue's 0.05 s, then a plain transient failure's jittered wait within the policy's bounds.
    assert waits[0] == 0.05
    assert POLICY.min_s <= waits[1] <= POLICY.max_s
    assert len(call.calls) == 3


def test_a_retry_after_beyond_the_cap_fails_at_once() -> None:
    call = Script(RateLimited("418", retry_after_s=120))
    with pytest.raises(RateLimited):
        run(call)
    assert len(call.calls) == 1


def test_waits_grow_exponentially_within_the_bounds() -> None:
    policy = RetryPolicy(tries=5, min_s=0.1, max_s=1.0)
    rng = random.Random(3)
    for attempt, ceiling in enumerate([0.2, 0.4, 0.8, 1.0, 1.0]):
        # full jitter: uniform in [min_s, min(max_s, min_s * 2 ** (attempt + 1))]
        for _ in range(50):
            assert 0.1 <= policy.delay(attempt, rng) <= ceiling


@pytest.mark.parametrize(
    "kwargs", [{"tries": 0}, {"tries": 11}, {"min_s": 2.0, "max_s": 1.0}, {"max_retry_after_s": -1}]
)
def test_bad_retry_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
