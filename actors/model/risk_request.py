"""An order as the pre-trade risk check sees it, and the check's answer."""

from __future__ import annotations

from dataclasses import dataclass
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
        """The quantity this order adds to the position: positive buys, negative sells.

        Exact whatever the decimal context (a sign flip, never rounded).
        """
        return self.qty if self.side is Side.BUY else self.qty.copy_negate()


@dataclass(frozen=True, slots=True, init=False)
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
    values: dict[str, str]
    risk_reducing: bool

    def __init__(
        self,
        approved: bool,
        reason: str,
        check: str,
        values: dict[str, str] | None = None,
        risk_reducing: bool = False,
    ) -> None:
        # Written out (not generated): every order gets one, and the slots' own
        # setters cost half of the frozen dataclass's object.__setattr__.
        _set_approved(self, approved)
        _set_reason(self, reason)
        _set_check(self, check)
        _set_values(self, {} if values is None else values)
        _set_risk_reducing(self, risk_reducing)


# The slots' setters, which `RiskDecision.__init__` writes the fields with (they
# bypass the frozen __setattr__, as object.__setattr__ does).
_slots = vars(RiskDecision)
_set_approved = _slots["approved"].__set__
_set_reason = _slots["reason"].__set__
_set_check = _slots["check"].__set__
_set_values = _slots["values"].__set__
_set_risk_reducing = _slots["risk_reducing"].__set__
del _slots
