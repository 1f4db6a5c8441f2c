"""The pre-trade checks, one small function each, named by what they refuse.

`PreTradeChecks.run` (for `RiskEngine.check_order`) runs them in the order
the engine's docstring gives; each returns the refusal (a `RiskDecision`) or
None to let the order on. They read the figures they are given and change
nothing. Their arithmetic is explicit in the engine's exact context
(`risk_arithmetic.EXACT`), whatever the caller's context, and caps are
inclusive: a value AT its cap passes. The order-rate check, which keeps the
approvals, is `risk_order_rate`.

Pure: no clock, no thread, no I/O; run by the risk engine's owner only.
"""

from __future__ import annotations

from decimal import Decimal

from posbus.actors.model.risk_arithmetic import NS_PER_S, ZERO, add, fmt, mul, ratio, sub
from posbus.actors.model.risk_book import ExposureBook, SymbolInfo
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_machine import RiskMachine
from posbus.actors.model.risk_mark_ages import NO_MARK_TS, MarkAge
from posbus.actors.model.risk_order_rate import OrderRateWindow
from posbus.actors.model.risk_request import OrderRequest, RiskDecision
from posbus.actors.model.risk_state import RiskState
from posbus.actors.model.timestamp_text import iso_utc_or_dash


def refuse(check: str, reason: str, values: dict[str, str]) -> RiskDecision:
    """The refusal of a check that adds risk (a risk-reducing order never gets here)."""
    return RiskDecision(
        approved=False, reason=reason, check=check, values=values, risk_reducing=False
    )


def risk_reducing(position_qty: Decimal, signed_qty: Decimal) -> bool:
    """An order of `signed_qty` lowers |qty| of its position without flipping it past zero."""
    return (
        position_qty != 0
        and (position_qty > 0) != (signed_qty > 0)
        and signed_qty.copy_abs() <= position_qty.copy_abs()
    )


def trading_restricted(
    state: RiskState,
    halt_reason: str,
    cooldown_until: int | None,
    position_qty: Decimal,
    signed_qty: Decimal,
) -> RiskDecision | None:
    """halted / cooldown: only risk-reducing orders pass while either lasts."""
    if state is RiskState.HALTED:
        return refuse(
            "halted",
            f"trading halted ({halt_reason}): risk-reducing orders only",
            {"position_qty": fmt(position_qty), "order_qty": fmt(signed_qty)},
        )
    if state is RiskState.COOLDOWN:
        return refuse(
            "cooldown",
            f"cooldown until {iso_utc_or_dash(cooldown_until)}: risk-reducing orders only",
            {
                "position_qty": fmt(position_qty),
                "order_qty": fmt(signed_qty),
                "cooldown_until_ns": str(cooldown_until),
            },
        )
    return None


def unregistered(symbol: str) -> RiskDecision:
    """missing_data: no exposure registered `symbol`: its group and correlation are unknown."""
    return refuse(
        "missing_data",
        f"no exposure registered for {symbol}: group and correlation unknown",
        {},
    )


def order_price(req: OrderRequest, info: SymbolInfo, stale_ns: int) -> Decimal | RiskDecision:
    """The price the order is judged at: its limit, or its symbol's fresh mark.

    missing_data: a market order has no mark to price it. stale_mark: the
    market order's mark is older than `stale_ns`.
    """
    if req.price is not None:
        return req.price
    if info.mark is None or info.mark_ts_ns is None:
        return refuse("missing_data", f"market order on {req.symbol} without a mark", {})
    age = req.ts_ns - info.mark_ts_ns
    if age > stale_ns:
        return refuse(
            "stale_mark",
            f"mark of {req.symbol} is {age} ns old, beyond {stale_ns} ns",
            {"mark_ts_ns": str(info.mark_ts_ns), "age_ns": str(age)},
        )
    return info.mark


def open_marks_fresh(oldest: MarkAge | None, ts_ns: int, stale_ns: int) -> RiskDecision | None:
    """missing_data / stale_mark: every open position is marked, none older than `stale_ns`.

    `oldest` is the open position with the stalest mark: its value is
    unknown, so it counts at its worst case and no new risk passes.
    """
    if oldest is None:
        return None
    mark_ts, _, account, symbol = oldest
    if mark_ts == NO_MARK_TS:
        return refuse("missing_data", f"open position {account}/{symbol} has no mark", {})
    age = ts_ns - mark_ts
    if age > stale_ns:
        return refuse(
            "stale_mark",
            f"open position {account}/{symbol} has a mark {age} ns old, beyond {stale_ns} ns",
            {"mark_ts_ns": str(mark_ts), "age_ns": str(age)},
        )
    return None


def equity_positive(equity: Decimal) -> RiskDecision | None:
    """leverage: with equity <= 0 leverage is unbounded, so no new risk."""
    if equity <= 0:
        return refuse("leverage", "equity is not positive: no new risk", {"equity": fmt(equity)})
    return None


def daily_loss(
    breached: bool, day_start: Decimal, equity: Decimal, limits: RiskLimits
) -> RiskDecision | None:
    """daily_loss: the daily loss limit is still reached (until a new day or a recovery)."""
    if not breached:
        return None
    loss = sub(day_start, equity)
    limit = limits.daily_loss_limit
    return refuse(
        "daily_loss",
        f"daily loss {fmt(loss)} at or beyond limit {fmt(limit)}",
        {"daily_loss": fmt(loss), "limit": fmt(limit)},
    )


def drawdown(
    breached: bool, peak: Decimal, equity: Decimal, limits: RiskLimits
) -> RiskDecision | None:
    """drawdown: the drawdown limit is still reached (until equity recovers)."""
    if not breached:
        return None
    shown = ratio(sub(peak, equity), peak)
    return refuse(
        "drawdown",
        f"drawdown {shown} at or beyond limit {fmt(limits.max_drawdown)}",
        {
            "drawdown": shown,
            "peak_equity": fmt(peak),
            "equity": fmt(equity),
            "limit": fmt(limits.max_drawdown),
        },
    )


def order_notional(notional: Decimal, limits: RiskLimits) -> RiskDecision | None:
    """order_notional: qty * price of one order is at most `max_order_notional`."""
    limit = limits.max_order_notional
    if notional > limit:
        return refuse(
            "order_notional",
            f"order notional {fmt(notional)} beyond {fmt(limit)}",
            {"notional": fmt(notional), "limit": fmt(limit)},
        )
    return None


def leverage_cap(limits: RiskLimits, state: RiskState) -> Decimal:
    """The leverage cap for new risk: lowered by `warning_leverage_factor` in Warning."""
    if state is RiskState.WARNING:
        return mul(limits.max_leverage, limits.warning_leverage_factor)
    return limits.max_leverage


def leverage(gross_after: Decimal, equity: Decimal, cap: Decimal) -> RiskDecision | None:
    """leverage: worst-case gross + the order's whole notional is at most cap * equity.

    The worst-case gross counts every working order filled (`ExposureBook.worst_gross`).
    The whole notional is added, even for an order that flips a position:
    conservative.
    """
    if gross_after > mul(cap, equity):
        shown = ratio(gross_after, equity)
        return refuse(
            "leverage",
            f"projected leverage {shown} beyond cap {fmt(cap)}",
            {
                "projected_gross": fmt(gross_after),
                "equity": fmt(equity),
                "projected_leverage": shown,
                "cap": fmt(cap),
            },
        )
    return None


def group_exposure(
    group: str, now: Decimal, after: Decimal, limits: RiskLimits
) -> RiskDecision | None:
    """group_exposure: |net| of the order's group is within its cap, or not growing.

    `now` is the group's worst-case net (working orders filled), `after` the
    end the order moves. An order that lowers an over-limit exposure (a
    hedge) passes.
    """
    limit = limits.max_group_exposure
    if after.copy_abs() > limit and after.copy_abs() > now.copy_abs():
        return refuse(
            "group_exposure",
            f"group {group} exposure {fmt(after)} beyond {fmt(limit)}",
            {
                "group": group,
                "exposure": fmt(now),
                "projected_exposure": fmt(after),
                "limit": fmt(limit),
            },
        )
    return None


def total_exposure(now: Decimal, after: Decimal, limits: RiskLimits) -> RiskDecision | None:
    """total_exposure: |net| over every group is within its cap, or not growing.

    `now` and `after` are worst cases, as for `group_exposure`.
    """
    limit = limits.max_total_exposure
    if after.copy_abs() > limit and after.copy_abs() > now.copy_abs():
        return refuse(
            "total_exposure",
            f"total exposure {fmt(after)} beyond {fmt(limit)}",
            {"exposure": fmt(now), "projected_exposure": fmt(after), "limit": fmt(limit)},
        )
    return None


class PreTradeChecks:
    """The pre-trade checks of one engine, run in order over its book and state.

    Reads the book and the machine, changes neither; only the rate window
    records the orders it approves.
    """

    def __init__(
        self, limits: RiskLimits, book: ExposureBook, machine: RiskMachine, rate: OrderRateWindow
    ) -> None:
        self._limits = limits
        self._stale_ns = limits.stale_after_s * NS_PER_S
        self._book = book
        self._machine = machine
        self._rate = rate

    def run(self, req: OrderRequest) -> RiskDecision:
        """The checks in `RiskEngine`'s order; the first refusal wins, an approval is recorded."""
        book, machine, limits = self._book, self._machine, self._limits
        held = book.position((req.account, req.symbol))
        qty = held.qty if held is not None else ZERO
        signed = req.signed_qty
        if risk_reducing(qty, signed):
            values = {"position_qty": fmt(qty), "order_qty": fmt(signed)}
            return self._rate.admit(req, values, reducing=True)
        refusal = trading_restricted(
            machine.state, machine.halt_reason, machine.cooldown_until, qty, signed
        )
        if refusal is not None:
            return refusal
        info = book.symbols.get(req.symbol)
        if info is None:
            return unregistered(req.symbol)
        price = order_price(req, info, self._stale_ns)
        if isinstance(price, RiskDecision):
            return price
        refusal = open_marks_fresh(book.oldest_open(), req.ts_ns, self._stale_ns)
        if refusal is not None:
            return refusal
        equity = book.equity
        refusal = (
            equity_positive(equity)
            or daily_loss(machine.daily_breached, machine.day_start, equity, limits)
            or drawdown(machine.drawdown_breached, machine.peak, equity, limits)
        )
        if refusal is not None:
            return refusal
        return self._new_risk(req, info, price, equity)

    def _new_risk(
        self, req: OrderRequest, info: SymbolInfo, price: Decimal, equity: Decimal
    ) -> RiskDecision:
        """The checks on what the order adds at `price`, then the rate limit.

        Leverage and the exposure caps count the book's working orders at
        their worst case (`ExposureBook`: every one of them fills), and the
        order on top of them: orders approved one by one cannot together
        breach a cap when they all fill. A buy (weighted: its delta >= 0) can
        only raise the highest net the book may reach, a sell only lower the
        lowest; the order is refused when that end goes beyond the cap and
        beyond the worst of both ends now.
        """
        book, limits = self._book, self._limits
        notional = mul(req.qty, price)
        refusal = order_notional(notional, limits)
        if refusal is not None:
            return refusal
        gross_after = add(book.worst_gross, notional)
        refusal = leverage(gross_after, equity, leverage_cap(limits, self._machine.state))
        if refusal is not None:
            return refusal
        delta = mul(mul(req.signed_qty, price), info.correlation)
        up, down = book.group_range(info.group)
        group_now = _worst_end(up, down)
        group_after = add(up if delta >= 0 else down, delta)
        total_now = _worst_end(book.total_up, book.total_down)
        total_after = add(book.total_up if delta >= 0 else book.total_down, delta)
        refusal = group_exposure(info.group, group_now, group_after, limits) or total_exposure(
            total_now, total_after, limits
        )
        if refusal is not None:
            return refusal
        values = {
            "notional": fmt(notional),
            "projected_gross": fmt(gross_after),
            "projected_group_exposure": fmt(group_after),
            "projected_total_exposure": fmt(total_after),
        }
        return self._rate.admit(req, values, reducing=False)


def _worst_end(up: Decimal, down: Decimal) -> Decimal:
    """The end of a (highest, lowest) net range farther from zero (the highest on a tie)."""
    return down if down.copy_abs() > up.copy_abs() else up
