"""Performance metrics of a run: returns, risk-adjusted ratios, drawdown, win rate.

Pure: no clocks, no I/O. Ratios are floats (they are not ledger values);
equity and P&L stay Decimal. Definitions (also in `posbus backtest --help`
and docs/backtest.md):

- Period returns: the first equity sample, the equity at each period close
  (the last sample at or before each multiple of the period since the Unix
  epoch, strictly inside the run), then the last sample;
  r_i = e_i / e_(i-1) - 1, so the first and last periods may be partial.
- Sharpe = mean(r) / stdev(r) x sqrt(periods per year), ddof 1, risk-free 0.
  Sortino = mean(r) / sqrt(sum(min(r, 0)^2) / (n - 1)) x sqrt(periods per
  year). Both are None with fewer than 2 returns; with a zero denominator
  they are 0.0 when the mean is 0 too (flat equity), None otherwise.
- Max drawdown: the most negative e / running peak - 1, a fraction <= 0.
  Total return: last / first - 1.
- Win rate: winning / closed round trips (a P&L of exactly 0 is not a win);
  None with no closed trade. Exposure time: the fraction of the run's
  duration during which any position was open.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from decimal import Decimal

from posbus.actors.model.round_trip import RoundTrip

EquitySample = tuple[int, Decimal]
"""(timestamp in ns since the epoch, equity)."""


def period_closes(samples: Sequence[EquitySample], period_ns: int) -> list[Decimal]:
    """The equity at the start, at every period close inside the run, and at the end.

    A period close is a multiple of `period_ns` since the epoch, strictly
    after the first sample and strictly before the last; its equity is the
    last sample at or before it. Raises ValueError on an empty series, a
    non-positive period or samples out of time order.
    """
    if not samples:
        raise ValueError("an equity series needs at least one sample")
    if period_ns <= 0:
        raise ValueError(f"period must be positive, not {period_ns} ns")
    first_ts, first = samples[0]
    last_ts, last = samples[-1]
    closes = [first]
    boundary = (first_ts // period_ns + 1) * period_ns
    previous_ts = first_ts
    current = first
    for ts, equity in samples:
        if ts < previous_ts:
            raise ValueError(f"equity samples out of order at {ts} ns")
        previous_ts = ts
        while boundary < last_ts and ts > boundary:
            closes.append(current)
            boundary += period_ns
        current = equity
    while boundary < last_ts:
        closes.append(current)
        boundary += period_ns
    if len(samples) > 1:
        closes.append(last)
    return closes


def returns(closes: Sequence[Decimal]) -> list[float]:
    """Simple returns between consecutive values: e_i / e_(i-1) - 1.

    Raises ValueError when a value before the last is not positive (a return
    on no capital is undefined).
    """
    out: list[float] = []
    for before, after in itertools.pairwise(closes):
        if before <= 0:
            raise ValueError(f"cannot take a return from a non-positive equity {before}")
        out.append(float(after / before - 1))
    return out


def sharpe(period_returns: Sequence[float], periods_per_year: float) -> float | None:
    """Annualised Sharpe ratio (risk-free 0, ddof 1); see the module docstring for edge cases."""
    if len(period_returns) < 2:
        return None
    mean = statistics.fmean(period_returns)
    stdev = statistics.stdev(period_returns)
    if stdev == 0:
        return 0.0 if mean == 0 else None
    return mean / stdev * math.sqrt(periods_per_year)


def sortino(period_returns: Sequence[float], periods_per_year: float) -> float | None:
    """Annualised Sortino ratio (target 0, ddof 1); see the module docstring for edge cases."""
    n = len(period_returns)
    if n < 2:
        return None
    mean = statistics.fmean(period_returns)
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in period_returns) / (n - 1))
    if downside == 0:
        return 0.0 if mean == 0 else None
    return mean / downside * math.sqrt(periods_per_year)


def max_drawdown(equity: Sequence[Decimal]) -> Decimal:
    """The most negative equity / running peak - 1, a fraction <= 0 (0 for an empty series)."""
    worst = Decimal(0)
    peak: Decimal | None = None
    for value in equity:
        if peak is None or value > peak:
            peak = value
            continue
        if peak > 0:
            worst = min(worst, value / peak - 1)
    return worst


def total_return(equity: Sequence[Decimal]) -> Decimal:
    """last / first - 1; 0 for fewer than two values. Raises ValueError if first is not positive."""
    if len(equity) < 2:
        return Decimal(0)
    first = equity[0]
    if first <= 0:
        raise ValueError(f"cannot take a return from a non-positive equity {first}")
    return equity[-1] / first - 1


def win_rate(trips: Sequence[RoundTrip]) -> float | None:
    """Winning trades / all closed trades (P&L exactly 0 is not a win); None without trades."""
    if not trips:
        return None
    return sum(1 for trip in trips if trip.is_win) / len(trips)


def exposure_time(open_intervals: Sequence[tuple[int, int]], start_ns: int, end_ns: int) -> float:
    """The fraction of [start_ns, end_ns] covered by `open_intervals` (a position open).

    Intervals must not overlap; they are clipped to the run. 0.0 for an empty run.
    """
    duration = end_ns - start_ns
    if duration <= 0:
        return 0.0
    covered = 0
    for begin, end in open_intervals:
        covered += max(0, min(end, end_ns) - max(begin, start_ns))
    return covered / duration


def fmt_ratio(value: float | None, digits: int = 6) -> float | None:
    """`value` rounded to `digits` decimal places for reports (None stays None)."""
    return None if value is None else round(value, digits)
