"""An order as the pre-trade risk check sees it, and the check's answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from posbus.actors.model.errors import OrderValidationError
from posbus.actors.model.side import Side


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order asking the risk engine for approval, immutable.

    `price` is the limit price; None means a market order, which the engine
    prices at the latest mark of the symbol. Raises `OrderValidationError`
    (with order id, symbol and timestamp) when `qty` is not a positive finite
    number or `price` is not positive.
    """

    account: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal | None
    order_id: str
    ts_ns: int

    def __post_init__(self) -> None:
        if not isinstance(self.qty, Decimal) or not self.qty.is_finite() or self.qty <= 0:
            raise self._invalid("qty must be a positive finite Decimal")
        if self.price is not None and (
            not isinstance(self.price, Decimal) or not self.price.is_finite() or self.price <= 0
        ):
            raise self._invalid("price must be a positive finite Decimal")

    def _invalid(self, message: str) -> OrderValidationError:
        return OrderValidationError(
            message, order_id=self.order_id, symbol=self.symbol, ts_ns=self.ts_ns
        )

    @property
    def signed_qty(self) -> Decimal:
        """The quantity this order adds to the position: positive buys, negative sells."""
        return self.qty if self.side is Side.BUY else -self.qty


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The answer of a pre-trade check, immutable.

    `check` names the check that refused the order ("halted", "cooldown",
    "daily_loss", "drawdown", "leverage", "group_exposure", "total_exposure",
    "order_notional", "order_rate", "stale_mark", "missing_data"); it and
    `reason` are "" when approved. `values` holds the numbers behind the
    decision as decimal strings. `risk_reducing` is True when the order lowers
    |position qty| of its symbol without flipping past zero.
    """

    approved: bool
    reason: str
    check: str
    values: dict[str, str] = field(default_factory=dict)
    risk_reducing: bool = False
