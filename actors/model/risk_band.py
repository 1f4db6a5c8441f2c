"""Mark bands: how far a symbol's mark may move before the risk state could change.

The risk engine takes a symbol's marks from market data and re-prices its
positions lazily (`RiskEngine.update_mark`): a mark inside the symbol's band
is only recorded; one outside it brings every position up to date and is
judged exactly as a position update would be. The band is what makes that
exact: while every symbol's mark is inside its band, no quantity the state
machine compares can cross its threshold, so judging each mark at once would
have changed nothing (no transition, no new peak, no breach flag flipped).

With the book fixed (quantities, realized P&L, correlation), equity and the
leverage warning's margin are linear in each symbol's mark m:

    equity' = equity + q * (m - m0)               q = sum of signed qty
    margin' = margin + (a - w * q) * (m - m0)     a = sum of |qty|, w = warning leverage
                                                  margin = gross - w * equity

(gross is a * m because marks are positive). Each threshold leaves a slack
(the distance from the current value to it, in the direction that would
change something); the slack is split evenly between the `k` symbols that
hold open positions, so however many of them move at once, the sum of their
moves stays inside it. Every division and addition rounds toward the inside
of the band and both ends are then moved one unit inward, so a band is
never wider than exact arithmetic allows: a band too narrow costs only an
exact evaluation that changes nothing.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

INFINITY = Decimal("Infinity")
# A band no mark is inside: every mark is judged at once.
NO_BAND = (INFINITY, -INFINITY)
# A symbol without an open position: its marks move nothing the state machine compares.
ANY_BAND = (-INFINITY, INFINITY)

_DOWN = Context(prec=34, rounding=ROUND_FLOOR)
_UP = Context(prec=34, rounding=ROUND_CEILING)


def mark_band(
    mark: Decimal,
    qty: Decimal,
    margin_coef: Decimal,
    *,
    rises: Decimal,
    falls: Decimal | None,
    margin: Decimal,
    symbols: int,
) -> tuple[Decimal, Decimal]:
    """The closed interval of marks around `mark` that changes nothing (see the module).

    `qty` and `margin_coef` (a - w * q) are the symbol's coefficients, exact.
    `rises`: how much equity may rise (>= 0: to the peak, or back above a
    floor it is at or below); `falls`: how much it may fall, strictly less
    (> 0, the distance to the nearest floor above which it is; None: no such
    floor). `margin` = gross - warning leverage * equity (>= 0 is Warning).
    `symbols`: how many symbols share the slack (>= 1).
    """
    k = Decimal(symbols)
    low = -INFINITY  # bounds on the move m - m0
    high = INFINITY
    # equity: q * move <= rises / k, and q * move > -falls / k.
    floor_fall = -INFINITY if falls is None else _UP.divide(falls.copy_negate(), k)
    low, high = _bound(qty, floor_fall, _DOWN.divide(rises, k), low, high)
    # the leverage warning: stays on while margin' >= 0, stays off while margin' < 0.
    if margin >= 0:
        low, high = _bound(margin_coef, _UP.divide(margin.copy_negate(), k), INFINITY, low, high)
    else:
        low, high = _bound(margin_coef, -INFINITY, _DOWN.divide(margin.copy_negate(), k), low, high)
    lowest = _UP.add(mark, low)
    highest = _DOWN.add(mark, high)
    if lowest.is_finite():
        lowest = _UP.next_plus(lowest)
    if highest.is_finite():
        highest = _DOWN.next_minus(highest)
    return lowest, highest


def _bound(
    coef: Decimal, t_low: Decimal, t_high: Decimal, low: Decimal, high: Decimal
) -> tuple[Decimal, Decimal]:
    """Narrow [low, high] to the moves d with t_low <= coef * d <= t_high."""
    if not coef:  # t_low <= 0 <= t_high always: standing still crosses nothing
        return low, high
    if coef > 0:
        d_low = _UP.divide(t_low, coef) if t_low.is_finite() else -INFINITY
        d_high = _DOWN.divide(t_high, coef) if t_high.is_finite() else INFINITY
    else:
        d_low = _UP.divide(t_high, coef) if t_high.is_finite() else -INFINITY
        d_high = _DOWN.divide(t_low, coef) if t_low.is_finite() else INFINITY
    return max(low, d_low), min(high, d_high)
