"""The risk state machine: Normal/Warning/CoolDown/Halted, and the levels it compares.

It keeps the engine's time (never moving back), the trading day, the peak
and day-start equity with the equity at or below which each loss level is
reached (its floor: comparing equity with a floor is exact, no division),
the breach flags, the cooldown timer and the kill switch. It judges the
exposure book (`risk_book`) after every change and reports each change of
state as a `RiskTransition`; the rules are in `RiskEngine`'s docstring.

Pure: no clock, no thread, no I/O; timestamps are passed in. Run by the risk
engine's owner only.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from posbus.actors.model.risk_arithmetic import NS_PER_S, fmt, mul, ratio, sub
from posbus.actors.model.risk_book import ExposureBook
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_state import RiskState, RiskTransition
from posbus.actors.model.timestamp_text import iso_utc_or_dash

_DAY_NS = 86_400 * NS_PER_S

# Enum members are looked up on every mark change: a class attribute costs 80 ns.
_HALTED = RiskState.HALTED
_COOLDOWN = RiskState.COOLDOWN
_WARNING = RiskState.WARNING
_NORMAL = RiskState.NORMAL


class RiskMachine:
    """The risk state of one desk over its exposure book.

    The attributes are read by the engine, its checks and its mark bands,
    and written only here.
    """

    def __init__(
        self, limits: RiskLimits, book: ExposureBook, starting_equity: Decimal, ts_ns: int
    ) -> None:
        self.limits = limits
        self._book = book
        # The warning levels are fraction * limit: constant, so computed once.
        fraction = limits.warning_fraction
        self._warn_loss = mul(fraction, limits.daily_loss_limit)
        self._warn_drawdown = mul(fraction, limits.max_drawdown)
        self.warn_leverage = mul(fraction, limits.max_leverage)
        self._day_offset_ns = limits.trading_day_offset_s * NS_PER_S
        self.set_peak(starting_equity)
        self.set_day_start(starting_equity)
        self.set_day(self.day_of(ts_ns))
        self.last_ts_ns = ts_ns
        self.halted = False
        self.halt_reason = ""
        self.cooldown_until: int | None = None
        self.daily_breached = False
        self.drawdown_breached = False
        self.state = _NORMAL

    # -- levels -----------------------------------------------------------------

    def day_of(self, ts_ns: int) -> int:
        """The trading day of `ts_ns` (days since the epoch, shifted by the day offset)."""
        return (ts_ns - self._day_offset_ns) // _DAY_NS

    def set_day(self, day: int) -> None:
        """Enter trading day `day`; it ends (the next one begins) at `day_end_ns`."""
        self.day_index = day
        self.day_end_ns = (day + 1) * _DAY_NS + self._day_offset_ns

    def set_peak(self, peak: Decimal) -> None:
        """Set the peak equity, and the equity at or below which each drawdown level is
        reached (peak - equity >= f * peak  <=>  equity <= peak - f * peak, exactly)."""
        self.peak = peak
        self.drawdown_floor = sub(peak, mul(self.limits.max_drawdown, peak))
        self.warn_drawdown_floor = sub(peak, mul(self._warn_drawdown, peak))

    def set_day_start(self, equity: Decimal) -> None:
        """Set the day-start equity, and the equity at or below which each daily loss
        level is reached (start - equity >= loss  <=>  equity <= start - loss, exactly)."""
        self.day_start = equity
        self.daily_floor = sub(equity, self.limits.daily_loss_limit)
        self.warn_loss_floor = sub(equity, self._warn_loss)

    # -- time -------------------------------------------------------------------

    def advance(self, ts_ns: int, events: list[str]) -> int:
        """Move time forward to `ts_ns` (never back); roll the day, expire the cooldown.

        Returns the engine's time after the move. A new day starts from the
        book's equity as it is now, before the change that brought the time.
        """
        now = ts_ns if ts_ns > self.last_ts_ns else self.last_ts_ns
        self.last_ts_ns = now
        if now >= self.day_end_ns:
            self.set_day(self.day_of(now))
            self.set_day_start(self._book.equity)
            events.append("trading day rollover")
        if self.cooldown_until is not None and now >= self.cooldown_until:
            self.cooldown_until = None
            events.append("cooldown expired")
        return now

    # -- judging ----------------------------------------------------------------

    def judge(
        self, now: int, events: list[str], *, new_peak: bool = True, resuming: bool = False
    ) -> list[RiskTransition]:
        """Judge the book at `now`; returns the transition this caused (0 or 1).

        Raises the peak (unless `new_peak` is False: the equity did not change),
        refreshes the loss-limit breaches (one newly crossed is named in
        `events` and starts the cooldown unless one runs), then moves to the
        state the flags and numbers imply. A transition is reported for a new
        state, or for a breach crossed, which is news even while restricted.
        `resuming`: the kill switch is released after the breaches are named.
        """
        equity = self._book.equity
        if new_peak and equity > self.peak:
            self.set_peak(equity)
        daily = equity <= self.daily_floor
        drawdown = equity <= self.drawdown_floor
        crossed = (daily and not self.daily_breached) or (drawdown and not self.drawdown_breached)
        if crossed:
            self._cross(now, events, equity, daily=daily, drawdown=drawdown)
        self.daily_breached = daily
        self.drawdown_breached = drawdown
        if resuming:
            self.halted = False
            events.append(f"resumed after halt ({self.halt_reason})")
            self.halt_reason = ""
        target = self.target(equity)
        if target is self.state and not crossed:
            return []
        return [self._transition(target, now, events, equity)]

    def target(self, equity: Decimal) -> RiskState:
        """The state the flags and numbers imply."""
        if self.halted:
            return _HALTED
        if self.cooldown_until is not None:
            return _COOLDOWN
        if (
            equity <= self.warn_loss_floor
            or equity <= self.warn_drawdown_floor
            # With equity <= 0 the right side is <= 0: leverage is unbounded, so Warning.
            or self._book.gross >= mul(self.warn_leverage, equity)
        ):
            return _WARNING
        return _NORMAL

    def halt(self, reason: str) -> None:
        """Engage the kill switch (a second halt keeps the first reason)."""
        if not self.halted:
            self.halted = True
            self.halt_reason = reason

    def values(self) -> dict[str, str]:
        """The figures behind the state, as decimal strings (transitions and metrics)."""
        book = self._book
        equity = book.equity
        values = {
            "equity": fmt(equity),
            "peak_equity": fmt(self.peak),
            "day_start_equity": fmt(self.day_start),
            "daily_pnl": fmt(sub(equity, self.day_start)),
            "drawdown": ratio(sub(self.peak, equity), self.peak),
            "gross": fmt(book.gross),
            "leverage": ratio(book.gross, equity),
            "total_exposure": fmt(book.total_net),
            "open_positions": str(book.open_count),
        }
        if self.cooldown_until is not None:
            values["cooldown_until_ns"] = str(self.cooldown_until)
        return values

    # -- snapshot ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The machine's fields of the engine's snapshot, in their order there."""
        return {
            "peak_equity": str(self.peak),
            "day_start_equity": str(self.day_start),
            "day_index": self.day_index,
            "last_ts_ns": self.last_ts_ns,
            "state": self.state.value,
            "halted": self.halted,
            "halt_reason": self.halt_reason,
            "cooldown_until_ns": self.cooldown_until,
            "daily_breached": self.daily_breached,
            "drawdown_breached": self.drawdown_breached,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take back the fields `to_dict` wrote (`last_ts_ns` is the constructor's)."""
        self.set_peak(Decimal(data["peak_equity"]))
        self.set_day_start(Decimal(data["day_start_equity"]))
        self.set_day(int(data["day_index"]))
        self.state = RiskState(data["state"])
        self.halted = bool(data["halted"])
        self.halt_reason = str(data["halt_reason"])
        until = data["cooldown_until_ns"]
        self.cooldown_until = None if until is None else int(until)
        self.daily_breached = bool(data["daily_breached"])
        self.drawdown_breached = bool(data["drawdown_breached"])

    # -- internals --------------------------------------------------------------

    def _cross(
        self, now: int, events: list[str], equity: Decimal, *, daily: bool, drawdown: bool
    ) -> None:
        """A loss limit was newly reached: name it, and start the cooldown unless one runs."""
        limits = self.limits
        if daily and not self.daily_breached:
            loss = sub(self.day_start, equity)
            events.append(
                f"daily loss limit reached: loss {fmt(loss)} >= {fmt(limits.daily_loss_limit)}"
            )
        if drawdown and not self.drawdown_breached:
            events.append(
                f"drawdown limit reached: {ratio(self.peak - equity, self.peak)} of peak "
                f">= {fmt(limits.max_drawdown)}"
            )
        if self.cooldown_until is None:
            self.cooldown_until = now + limits.cooldown_s * NS_PER_S

    def _transition(
        self, target: RiskState, now: int, events: list[str], equity: Decimal
    ) -> RiskTransition:
        """Enter `target` and tell why; the reasons are written only for a transition."""
        if target is _HALTED:
            why = f"halted: {self.halt_reason}"
        elif target is _COOLDOWN:
            why = f"closeout only until {iso_utc_or_dash(self.cooldown_until)}"
        elif target is _WARNING:
            why = "; ".join(self._warnings(equity))
        else:
            why = "all metrics below their warning levels"
        transition = RiskTransition(
            previous=self.state,
            state=target,
            reason="; ".join([*events, why]),
            ts_ns=now,
            values=self.values(),
        )
        self.state = target
        return transition

    def _warnings(self, equity: Decimal) -> list[str]:
        """Why the machine is in Warning: each metric at or beyond its warning level."""
        limits = self.limits
        fraction = limits.warning_fraction
        peak = self.peak
        gross = self._book.gross
        out: list[str] = []
        if equity <= self.warn_loss_floor:
            out.append(
                f"daily loss {fmt(sub(self.day_start, equity))} reached {fmt(fraction)} of "
                f"{fmt(limits.daily_loss_limit)}"
            )
        if equity <= self.warn_drawdown_floor:
            out.append(
                f"drawdown {ratio(sub(peak, equity), peak)} reached "
                f"{fmt(fraction)} of {fmt(limits.max_drawdown)}"
            )
        if gross >= mul(self.warn_leverage, equity):
            out.append(
                f"leverage {ratio(gross, equity)} reached {fmt(fraction)} of "
                f"{fmt(limits.max_leverage)}"
            )
        return out
