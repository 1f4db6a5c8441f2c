"""The venue's price tick and quantity step, and whether an order's numbers are on them.

An order whose quantity or limit price is off the venue's grid is refused
by the venue after it was journaled and sent; checked at the command
boundary instead, it is refused with the nearest valid values before
anything is journaled. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation, localcontext


def _on_grid(value: Decimal, step: Decimal) -> bool:
    with localcontext() as ctx:
        ctx.prec = 200
        try:
            return value % step == 0
        except InvalidOperation:  # a quotient beyond 200 digits: on no useful grid
            return False


def _neighbours(value: Decimal, step: Decimal) -> str:
    with localcontext() as ctx:
        ctx.prec = 200
        below = (value / step).to_integral_value(ROUND_DOWN) * step
        above = (value / step).to_integral_value(ROUND_UP) * step
    shown = [format(v, "f") for v in (below, above) if v > 0]
    return " or ".join(shown)


@dataclass(frozen=True, slots=True)
class InstrumentSteps:
    """A venue's price tick and quantity step (the same for every symbol it lists here)."""

    price_tick: Decimal
    qty_step: Decimal

    def off_grid(self, qty: Decimal, limit_price: Decimal | None) -> str | None:
        """Why `qty` or `limit_price` is off the grid, naming the nearest valid values; or None."""
        if not _on_grid(qty, self.qty_step):
            return (
                f"qty {format(qty, 'f')} is not a multiple of the venue's quantity step "
                f"{format(self.qty_step, 'f')} (nearest: {_neighbours(qty, self.qty_step)})"
            )
        if limit_price is not None and not _on_grid(limit_price, self.price_tick):
            return (
                f"limit price {format(limit_price, 'f')} is not a multiple of the venue's "
                f"price tick {format(self.price_tick, 'f')} "
                f"(nearest: {_neighbours(limit_price, self.price_tick)})"
            )
        return None
