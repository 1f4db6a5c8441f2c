"""The risk engine's arithmetic: exact sums of money, and how figures are shown.

Every aggregate, level and check is computed in `EXACT`, a 100-digit context
that traps `Inexact`: a figure is either exact or the call raises
`decimal.Inexact` (the engine then leaves its state unchanged). Ratios
(leverage, drawdown) are only ever shown, never compared: limits are checked
by cross-multiplication in `EXACT`, so rounding a ratio cannot move a decision.

Pure: no clock, no thread, no I/O.
"""

from __future__ import annotations

from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

ZERO = Decimal(0)
NS_PER_S = 1_000_000_000

EXACT = Context(
    prec=100,
    rounding=ROUND_HALF_EVEN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)
add = EXACT.add
sub = EXACT.subtract
mul = EXACT.multiply

_SHOW = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Overflow])
_RATIO_QUANTUM = Decimal("1e-12")


def fmt(value: Decimal) -> str:
    """A decimal string without exponent or trailing zeros ("24000", not "2.4E+4")."""
    if not value:
        return "0"  # never "-0" or "0.00"
    return f"{value.normalize(EXACT):f}"


def ratio(numerator: Decimal, denominator: Decimal) -> str:
    """numerator / denominator to 12 places, shown; "Infinity" when the denominator is <= 0."""
    if denominator <= 0:
        return "Infinity"
    with localcontext(_SHOW):
        return fmt((numerator / denominator).quantize(_RATIO_QUANTUM).normalize())
