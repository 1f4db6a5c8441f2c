"""Exchange reports: the domain's port to every exchange, for orders and their outcomes.

What the gateway actor asks of an exchange (`NewOrder`) and what every
exchange client (the simulated venue, the ccxt gateway) says back: execution
reports, and `OrderView` / `ExchangeOrderStatus` for lookups and
reconciliation. One set of types for every venue, so the gateway actor, the
order state machine and the reconciliation never care which exchange they
talk to (backtest/live parity).

Every type here is an immutable value. Nothing in this module validates an
order against an exchange's rules: that is the adapter's job, and it answers
a bad order with an `OrderRejected`, never with an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Literal

from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side

Liquidity = Literal["maker", "taker"]
"""Whether a fill rested on the book (maker) or took liquidity from it (taker)."""

_LIQUIDITIES: frozenset[str] = frozenset(("maker", "taker"))


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A request to place one order on an exchange.

    `limit_price=None` makes a market order. `client_order_id` is ours and is
    the idempotency key: an exchange that already knows the id must not create
    a second order. `ts_ns` is the time the request leaves us (int ns).
    Fields are not checked here: the exchange validates and rejects with a
    reason.
    """

    schema_version: ClassVar[int] = 1

    client_order_id: str
    account: str
    symbol: str
    side: Side
    qty: Decimal
    limit_price: Decimal | None
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    """The exchange took the order and gave it its own id."""

    schema_version: ClassVar[int] = 1

    client_order_id: str
    exchange_order_id: str
    symbol: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The exchange refused a request (a new order or a cancel); `reason` says why."""

    schema_version: ClassVar[int] = 1

    client_order_id: str
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """One execution against the order; `fill` carries quantity, price and fee.

    An order may be filled by several of these (partial fills); their
    quantities add up to what was executed. Applying the same report twice is
    harmless to a consumer that keys fills by `fill.trade_id`.
    """

    schema_version: ClassVar[int] = 1

    client_order_id: str
    fill: Fill
    liquidity: Liquidity

    def __post_init__(self) -> None:
        # Literal types are not enforced at runtime, and a wrong value here
        # would silently charge the wrong fee downstream.
        if self.liquidity not in _LIQUIDITIES:
            raise ValueError(f"liquidity must be 'maker' or 'taker', not {self.liquidity!r}")


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """The order is off the book; whatever was not filled will never fill."""

    schema_version: ClassVar[int] = 1

    client_order_id: str
    ts_ns: int
    reason: str


@dataclass(frozen=True, slots=True)
class OrderExpired:
    """The exchange took the order off the book because its time in force ran out."""

    schema_version: ClassVar[int] = 1

    client_order_id: str
    ts_ns: int


ExecutionReport = OrderAccepted | OrderRejected | OrderFilled | OrderCancelled | OrderExpired
"""Anything an exchange adapter reports about an order."""


class ExchangeOrderStatus(StrEnum):
    """Where an order stands on the exchange, as the exchange sees it."""

    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        """True while the order can still fill or be cancelled."""
        return self in (ExchangeOrderStatus.OPEN, ExchangeOrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True, slots=True)
class OrderView:
    """The exchange's view of one order at one moment, for lookups and reconciliation.

    `limit_price=None` means a market order. `filled_qty` is the sum of every
    fill so far; `remaining_qty` is what was never filled (for a closed order,
    what will never fill).
    """

    schema_version: ClassVar[int] = 1

    client_order_id: str
    exchange_order_id: str
    account: str
    symbol: str
    side: Side
    qty: Decimal
    limit_price: Decimal | None
    status: ExchangeOrderStatus
    filled_qty: Decimal

    @property
    def remaining_qty(self) -> Decimal:
        """The quantity that has not been filled."""
        return self.qty - self.filled_qty
