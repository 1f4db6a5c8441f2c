"""A fill: one execution reported by an exchange, the unit that changes a position."""

from dataclasses import dataclass
from decimal import Decimal

from posbus.actors.model.side import Side


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade against an order, immutable.

    `qty` and `price` are strictly positive. `fee` is the amount the venue
    charged, in `fee_currency` (empty: the quote currency), and may be
    negative (a maker rebate). `fee_mark` is the price of one unit of
    `fee_currency` in the symbol's quote currency at the fill's time: the
    conversion mark a fee in a third currency (BNB) is valued at; None when
    the fill's source had none (docs/accounting.md, "Fees in any currency").
    `trade_id` is unique per account+symbol and makes applying a fill
    idempotent.
    """

    trade_id: str
    account: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    ts_ns: int
    order_id: str = ""
    fee_mark: Decimal | None = None

    def __post_init__(self) -> None:
        if not self.qty.is_finite() or self.qty <= 0:
            raise ValueError(f"fill {self.trade_id}: qty must be a positive finite number")
        if not self.price.is_finite() or self.price <= 0:
            raise ValueError(f"fill {self.trade_id}: price must be a positive finite number")
        if not self.fee.is_finite():
            raise ValueError(f"fill {self.trade_id}: fee must be finite")
        if self.fee_mark is not None and (not self.fee_mark.is_finite() or self.fee_mark <= 0):
            raise ValueError(f"fill {self.trade_id}: fee_mark must be a positive finite number")

    @property
    def signed_qty(self) -> Decimal:
        """The quantity this fill adds to a position: positive for buys, negative for sells."""
        return self.qty if self.side is Side.BUY else -self.qty
