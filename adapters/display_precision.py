"""Instrument precision: how many decimal places a price, a quantity or an amount is shown with.

The CLI's tables, `posbus top` and the dashboard show values so; JSON keeps
every digit (adapters/cli/decimal_text.py).

The simulated venue declares one price tick and one quantity step for every
symbol (`[exchange] price_tick`, `qty_step`); P&L and fees, amounts in the quote
currency, are shown at the price tick's places. A venue whose steps posbus does
not know here (ccxt: they live in the gateway) shows every digit instead. Shown
values are rounded half-even from the exact Decimal; the exact text is kept
beside them. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING

from posbus.adapters.cli.decimal_text import format_decimal

if TYPE_CHECKING:
    from posbus.adapters.config import Config


def places_of(step: Decimal) -> int:
    """Decimal places of a tick or step: 0.01 -> 2, 0.0001 -> 4, 5 -> 0, 0.50 -> 1."""
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # a finite step, checked by the configuration
    return max(0, -exponent)


def _shown(text: str, places: int | None) -> str:
    """`text` (a decimal string) at `places` places, rounded half-even; every digit when None.

    A text that is not a decimal (a missing value, an error) is returned as it is.
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    if not value.is_finite():
        return text
    if places is None:
        return format_decimal(value)
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    # -0.004 at 2 places is "-0.00": no sign on a zero.
    return format(abs(rounded) if rounded.is_zero() else rounded, "f")


@dataclass(frozen=True, slots=True)
class Precision:
    """Places for prices and quantities of a venue's instruments (None: every digit)."""

    price_places: int | None = None
    qty_places: int | None = None

    @classmethod
    def of_steps(cls, price_tick: Decimal, qty_step: Decimal) -> Precision:
        """The precision of a venue with this price tick and quantity step."""
        return cls(places_of(price_tick), places_of(qty_step))

    @classmethod
    def of_config(cls, config: Config) -> Precision:
        """The stack's venue: the simulated venue's tick and step; every digit on ccxt."""
        if config.gateway.kind == "simulated":
            return cls.of_steps(config.exchange.price_tick, config.exchange.qty_step)
        return cls()

    def price(self, text: str) -> str:
        """A price as shown."""
        return _shown(text, self.price_places)

    def qty(self, text: str) -> str:
        """A quantity as shown."""
        return _shown(text, self.qty_places)

    def money(self, text: str) -> str:
        """An amount in the quote currency (P&L, fees, notional) as shown: at price places."""
        return _shown(text, self.price_places)
