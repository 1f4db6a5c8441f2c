"""Typed, layered errors of posbus.

Every error carries context (order id, symbol, timestamp, state) and knows
whether it is transient (retry with backoff) or permanent (fail fast). Layers
follow the design: the execution layer (exchange), the order layer (state and
validation) and balance and risk.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PosbusError(Exception):
    """Root of every error posbus raises on purpose."""

    transient: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        order_id: str | None = None,
        symbol: str | None = None,
        ts_ns: int | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.order_id = order_id
        self.symbol = symbol
        self.ts_ns = ts_ns
        self.state = state

    @property
    def permanent(self) -> bool:
        """True when retrying cannot help: fail fast."""
        return not self.transient

    def context(self) -> dict[str, Any]:
        """The error as a plain dict, for logs, replies and risk events."""
        ctx: dict[str, Any] = {
            "error": type(self).__name__,
            "message": self.message,
            "transient": self.transient,
        }
        for key in ("order_id", "symbol", "ts_ns", "state"):
            value = getattr(self, key)
            if value is not None:
                ctx[key] = value
        return ctx

    def __str__(self) -> str:
        extra = ", ".join(
            f"{k}={v}"
            for k, v in self.context().items()
            if k not in ("error", "message", "transient")
        )
        return f"{self.message} ({extra})" if extra else self.message


class OrderError(PosbusError):
    """An order could not be placed, changed or applied."""


# -- order layer --------------------------------------------------------------


class InvalidState(OrderError):
    """A transition that the state machine does not allow; the state did not change."""

    def __init__(self, current: str, requested: str, **context: Any) -> None:
        context.setdefault("state", current)
        super().__init__(f"invalid transition: {requested} from state {current}", **context)
        self.current = current
        self.requested = requested

    def context(self) -> dict[str, Any]:
        return {**super().context(), "current": self.current, "requested": self.requested}


class OrderValidationError(OrderError):
    """An order or fill that is malformed (non-positive quantity, unknown symbol...)."""


# -- balance and risk ----------------------------------------------------------


class InsufficientBalance(OrderError):
    """Not enough balance for the order: blocked."""


class RiskViolation(OrderError):
    """A pre-trade risk check refused the order."""

    def __init__(self, reason: str, **context: Any) -> None:
        super().__init__(f"risk limit: {reason}", **context)
        self.reason = reason

    def context(self) -> dict[str, Any]:
        return {**super().context(), "reason": self.reason}


# -- execution layer ----------------------------------------------------------


class ExecutionTimeout(OrderError):
    """The exchange did not answer in time; the outcome of a sent order is unknown."""

    transient = True


class ExchangeUnavailable(OrderError):
    """Network error, exchange down or in maintenance: retry with backoff."""

    transient = True


class RateLimited(OrderError):
    """The exchange throttled us; `retry_after_s` says how long to wait when it told us."""

    transient = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after_s = retry_after_s


class ExchangeRejected(OrderError):
    """The exchange refused the request for good (invalid order, bad symbol, auth)."""

    def __init__(self, reason: str, **context: Any) -> None:
        super().__init__(f"exchange rejected: {reason}", **context)
        self.reason = reason

    def context(self) -> dict[str, Any]:
        return {**super().context(), "reason": self.reason}
