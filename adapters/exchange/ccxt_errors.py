"""ccxt's exception hierarchy mapped onto posbus's typed errors (the execution layer).

    transient (retry with backoff, count towards the circuit breaker):
      RateLimitExceeded, DDoSProtection         -> RateLimited (Retry-After when known)
      RequestTimeout                            -> ExecutionTimeout
      OnMaintenance, ExchangeNotAvailable,
      NetworkError, other OperationFailed       -> ExchangeUnavailable
    permanent (fail fast with the exchange's message):
      InsufficientFunds                         -> InsufficientBalance
      InvalidOrder, BadSymbol, BadRequest,
      AuthenticationError, PermissionDenied,
      any other ExchangeError                   -> ExchangeRejected

Each posbus error carries the exchange's own words (Binance's "msg", not
ccxt's prefix) so a rejected order says why. Whether a failed *send* may
still have executed is a separate question (`may_have_executed`): a timeout
or a dropped connection leaves the outcome unknown; a throttled request or
an exchange in maintenance was refused before it reached the book.

Only ccxt's own exceptions are mapped: anything else is a bug and propagates.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import ccxt

from posbus.actors.model.errors import (
    ExchangeRejected,
    ExchangeUnavailable,
    ExecutionTimeout,
    InsufficientBalance,
    PosbusError,
    RateLimited,
)

_BANNED_UNTIL = re.compile(r"banned until (\d{13})")


def exchange_message(exc: BaseException) -> str:
    """The exchange's own message inside a ccxt exception (JSON "msg" when there is one)."""
    text = str(exc)
    brace = text.find("{")
    if brace >= 0:
        try:
            body = json.loads(text[brace:])
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("msg"), str):
            return str(body["msg"])
    # ccxt prefixes its messages with the exchange id ("binance Account has ...").
    head, _, rest = text.partition(" ")
    return rest if rest and head.isalnum() and head.islower() else text


def retry_after_s(exc: BaseException, headers: Mapping[str, Any] | None) -> float | None:
    """Seconds the exchange asked us to wait: its Retry-After header or an IP-ban deadline."""
    if headers:
        for key, value in headers.items():
            if key.lower() == "retry-after":
                try:
                    return max(0.0, float(value))
                except (TypeError, ValueError):
                    break
    match = _BANNED_UNTIL.search(str(exc))
    if match:
        return max(0.0, int(match.group(1)) / 1000 - time.time())
    return None


def to_posbus_error(
    exc: ccxt.BaseError,
    *,
    order_id: str | None = None,
    symbol: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> PosbusError:
    """The posbus error for a ccxt exception (see the module docstring for the table)."""
    message = exchange_message(exc)
    context: dict[str, Any] = {"order_id": order_id, "symbol": symbol}
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return RateLimited(message, retry_after_s=retry_after_s(exc, headers), **context)
    if isinstance(exc, ccxt.RequestTimeout):
        return ExecutionTimeout(message, **context)
    if isinstance(exc, ccxt.OperationFailed):
        # NetworkError, ExchangeNotAvailable, OnMaintenance, BadResponse: the
        # exchange is unwell or unreachable; asking again may help.
        return ExchangeUnavailable(message, **context)
    if isinstance(exc, ccxt.InsufficientFunds):
        return InsufficientBalance(message, **context)
    return ExchangeRejected(message, **context)


def may_have_executed(exc: ccxt.BaseError) -> bool:
    """After a failed order send: could the exchange have executed it anyway?

    False only when the exchange said it refused the request before it
    reached the book: throttling (429/418), maintenance, or a permanent
    rejection. A timeout, a dropped connection or a 5xx leave it unknown.
    """
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection | ccxt.OnMaintenance):
        return False
    return isinstance(exc, ccxt.OperationFailed)


def is_duplicate_order(exc: ccxt.BaseError) -> bool:
    """The exchange refused a new order because one with its client order id is open."""
    return isinstance(exc, ccxt.DuplicateOrderId) or "duplicate order" in str(exc).lower()


def is_order_not_found(exc: ccxt.BaseError) -> bool:
    """The exchange says it has no such order (a lookup's proof of absence)."""
    return isinstance(exc, ccxt.OrderNotFound)
