"""The pure risk engine: pre-trade checks and the Normal/Warning/CoolDown/Halted machine.

This module must never read a clock, start a thread or do I/O: timestamps are
passed in (int ns since the epoch, UTC), so live trading, recovery replay and
backtests run the same arithmetic. Money is `Decimal` throughout, computed in a
100-digit context that traps `Inexact`: an aggregate is either exact or the
call raises `decimal.Inexact` and leaves the engine unchanged.

Every aggregate the checks need is kept by deltas, so a pre-trade check costs
O(1) in the number of open positions and a position update O(log n). Marks
come with the positions' exposures (`update_position`) or from market data
(`update_mark`, one per quote); both give the same decisions. The aggregates
and the two mark paths: docs/architecture.md, "Risk engine".
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
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
from typing import Any

from posbus.actors.model.errors import InvalidState
from posbus.actors.model.risk_band import ANY_BAND, NO_BAND, mark_band
from posbus.actors.model.risk_exposure import PositionExposure
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_request import OrderRequest, RiskDecision
from posbus.actors.model.risk_state import RiskState, RiskTransition

_NS_PER_S = 1_000_000_000
_DAY_NS = 86_400 * _NS_PER_S
# Sorts before every real timestamp: an open position without a mark is the stalest of all.
_NO_MARK_TS = -(2**63)
_SNAPSHOT_VERSION = 1
_ZERO = Decimal(0)
_RATIO_QUANTUM = Decimal("1e-12")

_EXACT = Context(
    prec=100,
    rounding=ROUND_HALF_EVEN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)
_add = _EXACT.add
_sub = _EXACT.subtract
_mul = _EXACT.multiply
# Ratios (leverage, drawdown) are only ever shown, never compared: limits are
# checked by cross-multiplication in _EXACT, so rounding here cannot move a decision.
_SHOW = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, Overflow])

# Enum members are looked up on every mark change: a class attribute costs 80 ns.
_HALTED = RiskState.HALTED
_COOLDOWN = RiskState.COOLDOWN
_WARNING = RiskState.WARNING
_NORMAL = RiskState.NORMAL

_HeapEntry = tuple[int, int, str, str]  # (mark_ts_ns or _NO_MARK_TS, seq, account, symbol)


@dataclass(slots=True)
class _SymbolInfo:
    """The latest mark of a symbol (any account) and its correlation group.

    Updated in place by `_apply` (it is never handed out).
    """

    mark: Decimal | None
    mark_ts_ns: int | None
    group: str
    correlation: Decimal


def _fmt(value: Decimal) -> str:
    """A decimal string without exponent or trailing zeros ("24000", not "2.4E+4")."""
    if value == 0:
        return "0"  # never "-0" or "0.00"
    return f"{value.normalize(_EXACT):f}"


def _ratio(numerator: Decimal, denominator: Decimal) -> str:
    if denominator <= 0:
        return "Infinity"
    with localcontext(_SHOW):
        return _fmt((numerator / denominator).quantize(_RATIO_QUANTUM).normalize())


class RiskEngine:
    """Pre-trade risk checks and the risk state machine of one desk, pure and incremental.

    Not thread-safe: one owner (the risk actor's thread) calls every method.
    State changes only in `update_position`, `update_mark`, `tick`, `halt` and `resume`, each
    returning the `RiskTransition`s it caused (the actor emits them as
    risk_events); `check_order` never changes the state, it only records
    approved orders for the rate limit. So a cooldown whose time has come keeps
    refusing orders until the next `tick` (or update): the actor ticks on a timer.

    States:

    - Warning while daily loss, drawdown or leverage is at or beyond
      `warning_fraction` of its limit (>=); the leverage cap for new risk is then
      `max_leverage * warning_leverage_factor`. Left as soon as all are below.
    - CoolDown is forced when the daily loss reaches `daily_loss_limit`
      (day_start_equity - equity >= limit) or the drawdown reaches
      `max_drawdown` (peak - equity >= max_drawdown * peak): reaching the limit
      is enough. It lasts `cooldown_s` from the breach, survives a restart
      (`to_dict`) and a new trading day, and is lifted only by `tick` (or any
      other call) at or after `cooldown_until_ns`, to Normal or Warning as the
      numbers say. A breach starts a cooldown once, when it is crossed; a breach
      still present after the cooldown keeps refusing new risk through the
      "daily_loss" / "drawdown" checks until the day rolls over or equity
      recovers. Leverage beyond the cap does not force CoolDown (marks move it);
      it refuses new risk through the "leverage" check.
    - Halted is the manual kill switch (`halt`): like CoolDown, only
      risk-reducing orders pass. A breach while halted still starts its
      cooldown timer, and `resume` returns to CoolDown while that timer runs.

    Pre-trade checks (`check_order`), in this order, first refusal wins:

    1. Halted / CoolDown: refuse unless the order is risk-reducing.
    2. A risk-reducing order (it lowers |qty| of its account+symbol position
       without flipping past zero) skips the data, loss and exposure checks in
       every state, so a position can always be closed out; only the rate limit
       applies to it. Note that closing one leg of a hedge can raise a group's
       net exposure; closeout is allowed anyway.
    3. missing_data: no exposure was ever registered for the symbol (its group
       and correlation are unknown), or a market order has no mark to price
       it, or an open position has no mark. Register symbols by sending a flat
       (qty 0) `PositionExposure` with a mark before the first order.
    4. stale_mark: a market order priced from a mark older than
       `stale_after_s`, or any open position whose mark is older than
       `stale_after_s` relative to the order's `ts_ns` (its value is unknown, so
       it is counted at its worst case: no new risk). Exactly `stale_after_s`
       old is still fresh.
    5. leverage: equity <= 0 refuses all new risk.
    6. daily_loss / drawdown: the breach is still present.
    7. order_notional: qty * price <= `max_order_notional`.
    8. leverage: gross + order notional <= cap * equity (the whole notional is
       added, even for an order that flips a position: conservative).
    9. group_exposure / total_exposure: |net + qty * price * correlation| <=
       the cap, or not larger than the current |net| (an order that lowers an
       over-limit exposure, a hedge, passes this check).
    10. order_rate: at most `max_orders_per_second` approved orders with
        ts in (ts_ns - 1 s, ts_ns]; refused orders do not count.

    Caps are inclusive: a value AT the cap passes, beyond it is refused.
    """

    # False: every update takes the general path and pushes every mark (the
    # reference the property tests compare the mark fast path against).
    _fast_marks = True

    def __init__(self, limits: RiskLimits, starting_equity: Decimal, ts_ns: int) -> None:
        """Start flat, in Normal, with `starting_equity` as peak and day-start equity.

        Raises `ValueError` when `starting_equity` is not a positive finite Decimal.
        """
        if not isinstance(starting_equity, Decimal) or not starting_equity.is_finite():
            raise ValueError("starting_equity must be a finite Decimal")
        if starting_equity <= 0:
            raise ValueError("starting_equity must be positive")
        self._limits = limits
        self._stale_ns = limits.stale_after_s * _NS_PER_S
        # The warning levels are fraction * limit: constant, so computed once.
        fraction = limits.warning_fraction
        self._warn_loss = _mul(fraction, limits.daily_loss_limit)
        self._warn_drawdown = _mul(fraction, limits.max_drawdown)
        self._warn_leverage = _mul(fraction, limits.max_leverage)
        self._starting_equity = starting_equity
        self._positions: dict[tuple[str, str], PositionExposure] = {}
        # (gross, net) each stored exposure adds to the sums: replacing it subtracts these.
        self._contributions: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        self._position_seq: dict[tuple[str, str], int] = {}
        self._seq = 0
        self._mark_heap: list[_HeapEntry] = []
        # Marks taken from market data (`update_mark`): symbols whose latest mark
        # the positions are not priced at yet (an ordered set: catch-up order is
        # deterministic), each symbol's positions, the open ones per symbol, and
        # the mark band of each symbol since the book or the state last changed.
        self._market_marks = False
        self._dirty: dict[str, None] = {}
        self._by_symbol: dict[str, list[tuple[str, str]]] = {}
        self._open_symbols: dict[str, int] = {}
        self._bands: dict[str, tuple[Decimal, Decimal]] = {}
        # The heap entry that stands for each open position: its key (mark time,
        # seq) is at most the position's own, as a mark only moving forward
        # pushes nothing; `_oldest_open` corrects an entry when it reaches the top.
        self._live_marks: dict[tuple[str, str], _HeapEntry] = {}
        self._day_offset_ns = limits.trading_day_offset_s * _NS_PER_S
        self._symbols: dict[str, _SymbolInfo] = {}
        self._realized = _ZERO
        # starting equity + realized P&L: equity is this plus the unrealized P&L.
        self._booked_equity = starting_equity
        self._unrealized = _ZERO
        self._gross = _ZERO
        self._group_net: dict[str, Decimal] = {}
        self._group_members: dict[str, int] = {}
        self._total_net = _ZERO
        self._open_count = 0
        self._set_peak(starting_equity)
        self._set_day_start(starting_equity)
        self._set_day(self._day_of(ts_ns))
        self._last_ts_ns = ts_ns
        self._halted = False
        self._halt_reason = ""
        self._cooldown_until: int | None = None
        self._daily_breached = False
        self._drawdown_breached = False
        self._state = RiskState.NORMAL
        self._approved_ts: deque[int] = deque()

    # -- inspection -------------------------------------------------------------

    @property
    def state(self) -> RiskState:
        """The current risk state."""
        return self._state

    @property
    def limits(self) -> RiskLimits:
        """The limits this engine enforces."""
        return self._limits

    @property
    def cooldown_until_ns(self) -> int | None:
        """When the running cooldown ends (ns), or None when none runs."""
        return self._cooldown_until

    @property
    def halt_reason(self) -> str:
        """Why the engine was halted; "" when it is not halted."""
        return self._halt_reason

    @property
    def peak_equity(self) -> Decimal:
        """The highest equity seen (the drawdown's reference)."""
        return self._peak

    @property
    def day_index(self) -> int:
        """The trading day the daily loss is counted in (days since the epoch, offset)."""
        return self._day_index

    def position(self, account: str, symbol: str) -> PositionExposure | None:
        """The stored exposure of account+symbol, or None."""
        self._catch_up()
        return self._positions.get((account, symbol))

    def positions(self) -> list[PositionExposure]:
        """Every stored exposure, flat ones included (O(n): for inspection and audits)."""
        self._catch_up()
        return list(self._positions.values())

    def metrics(self) -> dict[str, str]:
        """The aggregates as decimal strings, for admin views and audits.

        Keys: equity, peak_equity, day_start_equity, daily_pnl, drawdown
        (fraction of peak), gross, leverage (gross / equity), total_exposure
        (signed net; its limit applies to the absolute value), open_positions,
        and one `group_exposure:<group>` (signed net) per group seen.
        """
        self._catch_up()
        out = self._core_values()
        for group, net in sorted(self._group_net.items()):
            out[f"group_exposure:{group}"] = _fmt(net)
        return out

    # -- state changes ----------------------------------------------------------

    def update_position(self, exp: PositionExposure, ts_ns: int) -> list[RiskTransition]:
        """Replace the exposure of exp's account+symbol and re-evaluate the state.

        Rolls the trading day and expires the cooldown first when `ts_ns` says so,
        then updates every aggregate by the difference between the old and the
        new exposure (O(log n)). Returns the transitions this caused (0 or 1).
        Raises `decimal.Inexact` (engine unchanged) only if the numbers need more
        than 100 significant digits.
        """
        if self._dirty:
            self._catch_up()
        if self._bands:
            self._bands.clear()
        key = (exp.account, exp.symbol)
        old = self._positions.get(key)
        if (
            old is not None
            and exp.realized_pnl is old.realized_pnl
            and exp.group == old.group
            and (exp.qty is old.qty or bool(exp.qty) is bool(old.qty))
            and self._fast_marks
        ):
            transitions = self._update_mark(exp, old, key, ts_ns)
        else:
            transitions = self._update(exp, ts_ns)
        if self._market_marks:
            info = self._symbols[exp.symbol]
            if exp.mark_ts_ns != info.mark_ts_ns or exp.mark != info.mark:
                # The market's mark is newer (or the position's is, and its
                # neighbours lag): every position of the symbol is priced at
                # the one newest mark by the next catch-up.
                self._dirty[exp.symbol] = None
        return transitions

    def update_mark(self, symbol: str, mark: Decimal, ts_ns: int) -> list[RiskTransition] | None:
        """Take a symbol's mark from market data, observed at `ts_ns`.

        Once called, the engine takes its marks from the market: a position's
        own exposure then tells it size and P&L, and its mark only when newer.
        The hot path: a mark inside the symbol's band (`risk_band`) is only
        recorded, and returns None (nothing else changed); the positions are
        priced at it before anything reads them (`_catch_up`). A mark outside
        it, a new trading day or an expired cooldown is judged at once, as a
        position update would be: returns the transitions (0 or 1). A mark
        older than the symbol's latest, or of a symbol no exposure registered,
        is ignored (None). `mark` must be positive and finite (market updates
        are validated when built).
        """
        self._market_marks = True
        info = self._symbols.get(symbol)
        if info is None or (info.mark_ts_ns is not None and ts_ns < info.mark_ts_ns):
            return None
        now = ts_ns if ts_ns > self._last_ts_ns else self._last_ts_ns
        band = self._bands.get(symbol)
        if band is None:
            band = self._bands[symbol] = self._band(symbol)
        if (
            band[0] <= mark <= band[1]
            and now < self._day_end_ns
            and (self._cooldown_until is None or now < self._cooldown_until)
        ):
            info.mark = mark
            info.mark_ts_ns = ts_ns
            self._last_ts_ns = now
            dirty = self._dirty
            if symbol in dirty:  # kept in the order of each symbol's latest mark
                del dirty[symbol]
            dirty[symbol] = None
            return None
        # Priced at the marks before this one first: a new day starts from them.
        self._catch_up()
        events: list[str] = []
        now = self._advance(ts_ns, events)
        info.mark = mark
        info.mark_ts_ns = ts_ns
        self._dirty[symbol] = None
        self._catch_up()
        equity = self._equity()
        if equity > self._peak:
            self._set_peak(equity)
        notable = self._evaluate(now, events, equity)
        return self._settle(now, events, notable, equity)

    def _catch_up(self) -> None:
        """Price every position of each symbol with a newer market mark at it.

        Each gets the exposure its position would report at that mark (the
        same quantity and realized P&L; unrealized moved by qty * the mark's
        move), applied like any other. Nothing is judged: the marks skipped
        were inside their bands, where no judgement changes anything. The
        symbols come in the order of their latest marks and each position
        takes the next update seq even when its mark did not change, as if
        told each mark: the stale-mark check names the same position among
        equally old ones.
        """
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = {}
        self._bands.clear()
        positions = self._positions
        for symbol in dirty:
            info = self._symbols[symbol]
            mark = info.mark
            mark_ts = info.mark_ts_ns
            if mark is None or mark_ts is None:
                continue
            for key in self._by_symbol[symbol]:
                exp = positions[key]
                if exp.mark_ts_ns == mark_ts and exp.mark == mark:
                    self._seq += 1
                    self._position_seq[key] = self._seq
                    continue
                if exp.mark is None:
                    if exp.qty:
                        continue  # its P&L is unknown: the position's own word will tell
                    unrealized = _ZERO
                elif exp.qty:
                    unrealized = _add(exp.unrealized_pnl, _mul(exp.qty, _sub(mark, exp.mark)))
                else:
                    unrealized = exp.unrealized_pnl
                self._apply(
                    PositionExposure(
                        exp.account,
                        symbol,
                        exp.qty,
                        mark,
                        mark_ts,
                        exp.realized_pnl,
                        unrealized,
                        exp.group,
                        exp.correlation,
                    )
                )

    def _band(self, symbol: str) -> tuple[Decimal, Decimal]:
        """The marks of `symbol` that cannot change the state (see `risk_band`)."""
        qty = _ZERO
        abs_qty = _ZERO
        mark: Decimal | None = None
        for key in self._by_symbol.get(symbol, ()):
            exp = self._positions[key]
            if not exp.qty:
                continue
            if exp.mark is None or (mark is not None and exp.mark != mark):
                return NO_BAND  # priced at different marks: judge at once
            mark = exp.mark
            qty = _add(qty, exp.qty)
            abs_qty = _add(abs_qty, exp.qty.copy_abs())
        if mark is None:
            return ANY_BAND
        equity = self._equity()
        floors = (
            self._daily_floor,
            self._drawdown_floor,
            self._warn_loss_floor,
            self._warn_drawdown_floor,
        )
        margin = _sub(self._gross, _mul(self._warn_leverage, equity))
        if (
            equity > self._peak
            or (equity <= self._daily_floor) is not self._daily_breached
            or (equity <= self._drawdown_floor) is not self._drawdown_breached
            or self._target(equity) is not self._state
        ):
            return NO_BAND  # the state is not what these numbers imply yet: judge at once
        rises = _sub(self._peak, equity)
        falls: Decimal | None = None
        for floor in floors:
            if equity <= floor:
                rises = min(rises, _sub(floor, equity))
            elif falls is None or _sub(equity, floor) < falls:
                falls = _sub(equity, floor)
        return mark_band(
            mark,
            qty,
            _sub(abs_qty, _mul(self._warn_leverage, qty)),
            rises=rises,
            falls=falls,
            margin=margin,
            symbols=len(self._open_symbols),
        )

    def _update(self, exp: PositionExposure, ts_ns: int) -> list[RiskTransition]:
        """`update_position`, the general way."""
        events: list[str] = []
        now = self._advance(ts_ns, events)
        self._apply(exp)
        equity = self._equity()
        if equity > self._peak:
            self._set_peak(equity)
        notable = self._evaluate(now, events, equity)
        return self._settle(now, events, notable, equity)

    def _update_mark(
        self,
        exp: PositionExposure,
        old: PositionExposure,
        key: tuple[str, str],
        ts_ns: int,
    ) -> list[RiskTransition]:
        """`update_position` for the hot case, a mark change: `_advance`, `_apply`,
        `_evaluate` and `_settle` inlined for an exposure whose realized P&L (the
        same object), group and openness are the stored one's, and whose mark is
        known. Every aggregate gets the very operations `_apply` does (so the same
        values, exponents and signs of zero); whatever is rare (a day rollover, a
        cooldown expiry, a breach crossed, a state change) goes through the
        general methods.
        """
        now = ts_ns if ts_ns > self._last_ts_ns else self._last_ts_ns
        mark = exp.mark
        mark_ts = exp.mark_ts_ns
        if (
            mark is None
            or mark_ts is None
            or (now - self._day_offset_ns) // _DAY_NS > self._day_index
            or (self._cooldown_until is not None and now >= self._cooldown_until)
            or (info := self._symbols.get(exp.symbol)) is None
        ):
            return self._update(exp, ts_ns)
        self._last_ts_ns = now

        # _apply, for an exposure known to be stored already, in the same group.
        group = exp.group
        notional = _mul(exp.qty, mark)
        new_gross = notional.copy_abs()
        new_net = _mul(notional, exp.correlation)
        unrealized = _sub(_add(self._unrealized, exp.unrealized_pnl), old.unrealized_pnl)
        old_gross, old_net = self._contributions[key]
        gross = _add(self._gross, _sub(new_gross, old_gross))
        net_change = _sub(new_net, old_net)
        total = _add(self._total_net, net_change)
        net_after = _add(self._group_net[group], net_change)

        self._positions[key] = exp
        self._contributions[key] = (new_gross, new_net)
        self._unrealized = unrealized
        self._gross = gross
        self._total_net = total
        self._group_net[group] = net_after
        # _update_symbol: the mark is known, so only its time decides.
        if info.mark_ts_ns is None or mark_ts >= info.mark_ts_ns:
            info.mark = mark
            info.mark_ts_ns = mark_ts
        info.group = group
        info.correlation = exp.correlation
        self._seq += 1
        self._position_seq[key] = self._seq
        # _push_mark, which has nothing to push while the mark only moves forward.
        if exp.qty and ((live := self._live_marks.get(key)) is None or live[0] > mark_ts):
            self._push_mark(exp)

        equity = _add(self._booked_equity, unrealized)
        if equity > self._peak:
            self._set_peak(equity)
        # _evaluate when no breach is newly crossed, _settle when the state stays.
        daily = equity <= self._daily_floor
        drawdown = equity <= self._drawdown_floor
        if (daily and not self._daily_breached) or (drawdown and not self._drawdown_breached):
            events: list[str] = []
            notable = self._evaluate(now, events, equity)
            return self._settle(now, events, notable, equity)
        self._daily_breached = daily
        self._drawdown_breached = drawdown
        if self._halted:
            target = _HALTED
        elif self._cooldown_until is not None:
            target = _COOLDOWN
        elif (
            equity <= self._warn_loss_floor
            or equity <= self._warn_drawdown_floor
            or self._gross >= _mul(self._warn_leverage, equity)
        ):
            target = _WARNING
        else:
            target = _NORMAL
        if target is self._state:
            return []
        return self._settle(now, [], False, equity)

    def tick(self, ts_ns: int) -> list[RiskTransition]:
        """Advance time: roll the trading day over and expire the cooldown when due.

        At a trading-day boundary the day-start equity resets to the current
        equity; a running cooldown is not lifted by it, only by its timer.
        Returns the transitions this caused (0 or 1).
        """
        self._catch_up()
        self._bands.clear()
        events: list[str] = []
        now = self._advance(ts_ns, events)
        equity = self._equity()
        notable = self._evaluate(now, events, equity)
        return self._settle(now, events, notable, equity)

    def halt(self, reason: str, ts_ns: int) -> list[RiskTransition]:
        """Engage the kill switch: only risk-reducing orders pass until `resume`.

        Halting an already halted engine changes nothing and returns [] (a
        safety action must never fail).
        """
        self._catch_up()
        self._bands.clear()
        events: list[str] = []
        now = self._advance(ts_ns, events)
        equity = self._equity()
        notable = self._evaluate(now, events, equity)
        if not self._halted:
            self._halted = True
            self._halt_reason = reason
        return self._settle(now, events, notable, equity)

    def resume(self, ts_ns: int) -> list[RiskTransition]:
        """Release the kill switch, to the state the numbers imply.

        An unexpired cooldown is never lifted: the engine resumes into CoolDown.
        Raises `InvalidState` when the engine is not halted.
        """
        if not self._halted:
            raise InvalidState(self._state.value, "resume", ts_ns=ts_ns)
        self._catch_up()
        self._bands.clear()
        events: list[str] = []
        now = self._advance(ts_ns, events)
        equity = self._equity()
        notable = self._evaluate(now, events, equity)
        self._halted = False
        events.append(f"resumed after halt ({self._halt_reason})")
        self._halt_reason = ""
        return self._settle(now, events, notable, equity)

    # -- pre-trade check --------------------------------------------------------

    def check_order(self, req: OrderRequest) -> RiskDecision:
        """Approve or refuse an order before it reaches a gateway; O(1) in positions.

        See the class docstring for the checks, their order and boundaries.
        An approved order is recorded for the rate limit.
        """
        self._catch_up()
        with localcontext(_EXACT):
            return self._check(req)

    def _check(self, req: OrderRequest) -> RiskDecision:
        limits = self._limits
        held = self._positions.get((req.account, req.symbol))
        qty = held.qty if held is not None else _ZERO
        signed = req.signed_qty
        reducing = qty != 0 and (qty > 0) != (signed > 0) and req.qty <= abs(qty)

        if not reducing:
            if self._state is RiskState.HALTED:
                return _refuse(
                    "halted",
                    f"trading halted ({self._halt_reason}): risk-reducing orders only",
                    {"position_qty": _fmt(qty), "order_qty": _fmt(signed)},
                )
            if self._state is RiskState.COOLDOWN:
                until = self._cooldown_until
                return _refuse(
                    "cooldown",
                    f"cooldown until {until} ns: risk-reducing orders only",
                    {
                        "position_qty": _fmt(qty),
                        "order_qty": _fmt(signed),
                        "cooldown_until_ns": str(until),
                    },
                )
        if reducing:
            return self._admit(
                req, {"position_qty": _fmt(qty), "order_qty": _fmt(signed)}, reducing=True
            )

        info = self._symbols.get(req.symbol)
        if info is None:
            return _refuse(
                "missing_data",
                f"no exposure registered for {req.symbol}: group and correlation unknown",
                {},
            )
        if req.price is not None:
            price = req.price
        else:
            if info.mark is None or info.mark_ts_ns is None:
                return _refuse("missing_data", f"market order on {req.symbol} without a mark", {})
            price = info.mark
            age = req.ts_ns - info.mark_ts_ns
            if age > self._stale_ns:
                return _refuse(
                    "stale_mark",
                    f"mark of {req.symbol} is {age} ns old, beyond {self._stale_ns} ns",
                    {"mark_ts_ns": str(info.mark_ts_ns), "age_ns": str(age)},
                )
        oldest = self._oldest_open()
        if oldest is not None:
            mark_ts, _, account, symbol = oldest
            if mark_ts == _NO_MARK_TS:
                return _refuse("missing_data", f"open position {account}/{symbol} has no mark", {})
            age = req.ts_ns - mark_ts
            if age > self._stale_ns:
                return _refuse(
                    "stale_mark",
                    f"open position {account}/{symbol} has a mark {age} ns old, "
                    f"beyond {self._stale_ns} ns",
                    {"mark_ts_ns": str(mark_ts), "age_ns": str(age)},
                )

        equity = self._equity()
        if equity <= 0:
            return _refuse(
                "leverage", "equity is not positive: no new risk", {"equity": _fmt(equity)}
            )
        if self._daily_breached:
            loss = self._day_start - equity
            return _refuse(
                "daily_loss",
                f"daily loss {_fmt(loss)} at or beyond limit {_fmt(limits.daily_loss_limit)}",
                {"daily_loss": _fmt(loss), "limit": _fmt(limits.daily_loss_limit)},
            )
        if self._drawdown_breached:
            ratio = _ratio(self._peak - equity, self._peak)
            return _refuse(
                "drawdown",
                f"drawdown {ratio} at or beyond limit {_fmt(limits.max_drawdown)}",
                {
                    "drawdown": ratio,
                    "peak_equity": _fmt(self._peak),
                    "equity": _fmt(equity),
                    "limit": _fmt(limits.max_drawdown),
                },
            )

        notional = req.qty * price
        if notional > limits.max_order_notional:
            return _refuse(
                "order_notional",
                f"order notional {_fmt(notional)} beyond {_fmt(limits.max_order_notional)}",
                {"notional": _fmt(notional), "limit": _fmt(limits.max_order_notional)},
            )

        cap = limits.max_leverage
        if self._state is RiskState.WARNING:
            cap = cap * limits.warning_leverage_factor
        gross_after = self._gross + notional
        if gross_after > cap * equity:
            return _refuse(
                "leverage",
                f"projected leverage {_ratio(gross_after, equity)} beyond cap {_fmt(cap)}",
                {
                    "projected_gross": _fmt(gross_after),
                    "equity": _fmt(equity),
                    "projected_leverage": _ratio(gross_after, equity),
                    "cap": _fmt(cap),
                },
            )

        delta = signed * price * info.correlation
        group_now = self._group_net.get(info.group, _ZERO)
        group_after = group_now + delta
        if abs(group_after) > limits.max_group_exposure and abs(group_after) > abs(group_now):
            return _refuse(
                "group_exposure",
                f"group {info.group} exposure {_fmt(group_after)} beyond "
                f"{_fmt(limits.max_group_exposure)}",
                {
                    "group": info.group,
                    "exposure": _fmt(group_now),
                    "projected_exposure": _fmt(group_after),
                    "limit": _fmt(limits.max_group_exposure),
                },
            )
        total_after = self._total_net + delta
        if abs(total_after) > limits.max_total_exposure and abs(total_after) > abs(self._total_net):
            return _refuse(
                "total_exposure",
                f"total exposure {_fmt(total_after)} beyond {_fmt(limits.max_total_exposure)}",
                {
                    "exposure": _fmt(self._total_net),
                    "projected_exposure": _fmt(total_after),
                    "limit": _fmt(limits.max_total_exposure),
                },
            )

        return self._admit(
            req,
            {
                "notional": _fmt(notional),
                "projected_gross": _fmt(gross_after),
                "projected_group_exposure": _fmt(group_after),
                "projected_total_exposure": _fmt(total_after),
            },
            reducing=False,
        )

    def _admit(self, req: OrderRequest, values: dict[str, str], *, reducing: bool) -> RiskDecision:
        """The rate limit, last so that only orders every other check approved count."""
        window = self._approved_ts
        # Half-open window (ts - 1 s, ts]: an approval exactly 1 s old has left it.
        cutoff = req.ts_ns - _NS_PER_S
        while window and window[0] <= cutoff:
            window.popleft()
        limit = self._limits.max_orders_per_second
        if len(window) >= limit:
            return RiskDecision(
                approved=False,
                reason=f"{len(window)} orders approved in the last second, limit {limit}",
                check="order_rate",
                values={"approved_in_window": str(len(window)), "limit": str(limit)},
                risk_reducing=reducing,
            )
        window.append(req.ts_ns)
        return RiskDecision(
            approved=True, reason="", check="", values=values, risk_reducing=reducing
        )

    # -- snapshot ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole engine as plain values (decimals as exact strings), for snapshots.

        Includes the state, the halt and the running cooldown, so CoolDown
        survives a restart; `from_dict(to_dict())` is an exact round trip.
        """
        self._catch_up()
        return {
            "version": _SNAPSHOT_VERSION,
            "limits": self._limits.to_dict(),
            "starting_equity": str(self._starting_equity),
            "positions": [exp.to_dict() for exp in self._positions.values()],
            "symbols": {
                symbol: {
                    "mark": None if info.mark is None else str(info.mark),
                    "mark_ts_ns": info.mark_ts_ns,
                    "group": info.group,
                    "correlation": str(info.correlation),
                }
                for symbol, info in self._symbols.items()
            },
            "peak_equity": str(self._peak),
            "day_start_equity": str(self._day_start),
            "day_index": self._day_index,
            "last_ts_ns": self._last_ts_ns,
            "state": self._state.value,
            "halted": self._halted,
            "halt_reason": self._halt_reason,
            "cooldown_until_ns": self._cooldown_until,
            "daily_breached": self._daily_breached,
            "drawdown_breached": self._drawdown_breached,
            "approved_ts_ns": list(self._approved_ts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, limits: RiskLimits | None = None) -> RiskEngine:
        """Rebuild an engine from `to_dict` output; aggregates are recomputed exactly.

        `limits` replaces the snapshot's limits (a changed config on restart);
        the restored state stays as it was until the next state change.
        Raises `ValueError` for an unknown snapshot version, `KeyError` for a
        missing field.
        """
        if data.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unsupported risk snapshot version {data.get('version')!r}")
        engine = cls(
            limits if limits is not None else RiskLimits.from_dict(data["limits"]),
            Decimal(data["starting_equity"]),
            int(data["last_ts_ns"]),
        )
        for raw in data["positions"]:
            engine._apply(PositionExposure.from_dict(raw))
        engine._symbols = {
            str(symbol): _SymbolInfo(
                mark=None if raw["mark"] is None else Decimal(raw["mark"]),
                mark_ts_ns=None if raw["mark_ts_ns"] is None else int(raw["mark_ts_ns"]),
                group=str(raw["group"]),
                correlation=Decimal(raw["correlation"]),
            )
            for symbol, raw in data["symbols"].items()
        }
        engine._set_peak(Decimal(data["peak_equity"]))
        engine._set_day_start(Decimal(data["day_start_equity"]))
        engine._set_day(int(data["day_index"]))
        engine._state = RiskState(data["state"])
        engine._halted = bool(data["halted"])
        engine._halt_reason = str(data["halt_reason"])
        until = data["cooldown_until_ns"]
        engine._cooldown_until = None if until is None else int(until)
        engine._daily_breached = bool(data["daily_breached"])
        engine._drawdown_breached = bool(data["drawdown_breached"])
        engine._approved_ts = deque(int(ts) for ts in data["approved_ts_ns"])
        return engine

    # -- internals --------------------------------------------------------------

    def _day_of(self, ts_ns: int) -> int:
        return (ts_ns - self._day_offset_ns) // _DAY_NS

    def _equity(self) -> Decimal:
        return _add(self._booked_equity, self._unrealized)

    def _set_day(self, day: int) -> None:
        """Enter trading day `day`; it ends (the next one begins) at `_day_end_ns`."""
        self._day_index = day
        self._day_end_ns = (day + 1) * _DAY_NS + self._day_offset_ns

    def _set_peak(self, peak: Decimal) -> None:
        """Set the peak equity, and the equity at or below which each drawdown level is
        reached (peak - equity >= f * peak  <=>  equity <= peak - f * peak, exactly)."""
        self._peak = peak
        self._drawdown_floor = _sub(peak, _mul(self._limits.max_drawdown, peak))
        self._warn_drawdown_floor = _sub(peak, _mul(self._warn_drawdown, peak))

    def _set_day_start(self, equity: Decimal) -> None:
        """Set the day-start equity, and the equity at or below which each daily loss
        level is reached (start - equity >= loss  <=>  equity <= start - loss, exactly)."""
        self._day_start = equity
        self._daily_floor = _sub(equity, self._limits.daily_loss_limit)
        self._warn_loss_floor = _sub(equity, self._warn_loss)

    def _advance(self, ts_ns: int, events: list[str]) -> int:
        """Move the engine's time forward (never back); roll the day, expire the cooldown."""
        now = ts_ns if ts_ns > self._last_ts_ns else self._last_ts_ns
        self._last_ts_ns = now
        day = self._day_of(now)
        if day > self._day_index:
            self._set_day(day)
            self._set_day_start(self._equity())
            events.append("trading day rollover")
        if self._cooldown_until is not None and now >= self._cooldown_until:
            self._cooldown_until = None
            events.append("cooldown expired")
        return now

    def _apply(self, exp: PositionExposure) -> None:
        """Replace one exposure and update every aggregate by its delta.

        Everything is computed into locals before anything is assigned, so a
        trapped decimal signal leaves the engine unchanged.
        """
        key = (exp.account, exp.symbol)
        old = self._positions.get(key)
        contribution = _contribution(exp)
        new_gross, new_net = contribution
        group = exp.group
        group_net = self._group_net
        unrealized = _add(self._unrealized, exp.unrealized_pnl)
        open_count = self._open_count + (exp.qty != 0)
        left: tuple[str, Decimal] | None = None  # the group old leaves, and its net after
        if old is None:
            realized = _add(self._realized, exp.realized_pnl)
            gross = _add(self._gross, new_gross)
            total = _add(self._total_net, new_net)
            net_after = _add(group_net.get(group, _ZERO), new_net)
        else:
            if exp.realized_pnl is old.realized_pnl:
                # A mark change: r + p - p is r, with r's exponent (p's is already in it).
                realized = self._realized
            else:
                realized = _sub(_add(self._realized, exp.realized_pnl), old.realized_pnl)
            unrealized = _sub(unrealized, old.unrealized_pnl)
            open_count -= old.qty != 0
            old_gross, old_net = self._contributions[key]
            # x + (new - old) is (x + new) - old exactly, exponent and sign of zero alike.
            gross = _add(self._gross, _sub(new_gross, old_gross))
            net_change = _sub(new_net, old_net)
            total = _add(self._total_net, net_change)
            if old.group == group:
                net_after = _add(group_net[group], net_change)
            else:
                net_after = _add(group_net.get(group, _ZERO), new_net)
                left = (old.group, _sub(group_net[old.group], old_net))
        booked = (
            self._booked_equity
            if realized is self._realized
            else _add(self._starting_equity, realized)
        )

        self._positions[key] = exp
        self._contributions[key] = contribution
        self._realized = realized
        self._booked_equity = booked
        self._unrealized = unrealized
        self._gross = gross
        self._total_net = total
        group_net[group] = net_after
        if old is None or left is not None:
            self._group_members[group] = self._group_members.get(group, 0) + 1
        if left is not None:
            self._leave_group(*left)
        self._open_count = open_count
        self._index(key, exp, old)
        self._update_symbol(exp)
        self._seq += 1
        self._position_seq[key] = self._seq
        self._push_mark(exp)

    def _index(
        self, key: tuple[str, str], exp: PositionExposure, old: PositionExposure | None
    ) -> None:
        """Keep the positions of each symbol, and how many of them are open."""
        if old is None:
            self._by_symbol.setdefault(exp.symbol, []).append(key)
        opened = (exp.qty != 0) - (old is not None and old.qty != 0)
        if opened:
            holders = self._open_symbols.get(exp.symbol, 0) + opened
            if holders:
                self._open_symbols[exp.symbol] = holders
            else:
                del self._open_symbols[exp.symbol]

    def _push_mark(self, exp: PositionExposure) -> None:
        """Enter the open position exp's mark time in the heap, under the latest seq
        (a flat one leaves it).

        Nothing to do when its entry's mark time is not later than exp's: that
        entry still sorts no later than the position does (see `_oldest_open`).
        """
        key = (exp.account, exp.symbol)
        if exp.qty == 0:
            self._live_marks.pop(key, None)
            return
        mark_ts = exp.mark_ts_ns if exp.mark_ts_ns is not None else _NO_MARK_TS
        live = self._live_marks.get(key)
        if live is not None and live[0] <= mark_ts and self._fast_marks:
            return
        entry = (mark_ts, self._seq, exp.account, exp.symbol)
        heapq.heappush(self._mark_heap, entry)
        self._live_marks[key] = entry
        # Superseded entries are dropped lazily at the top; rebuilding when
        # they outnumber live ones keeps the heap O(open positions), amortised O(1).
        if len(self._mark_heap) > 2 * self._open_count + 32:
            self._rebuild_heap()

    def _leave_group(self, group: str, net: Decimal) -> None:
        """A position moved out of `group`, whose net is now `net`."""
        members = self._group_members[group] - 1
        if members:
            self._group_members[group] = members
            self._group_net[group] = net
        else:
            # The last member left: its net is exactly zero, and a group that
            # no position names must not linger in metrics and snapshots.
            del self._group_members[group]
            del self._group_net[group]

    def _update_symbol(self, exp: PositionExposure) -> None:
        """Record exp's mark as its symbol's latest if it is (by mark time, from any
        account), and the group and correlation exp reports."""
        info = self._symbols.get(exp.symbol)
        if info is None:
            self._symbols[exp.symbol] = _SymbolInfo(
                exp.mark, exp.mark_ts_ns, exp.group, exp.correlation
            )
            return
        mark_ts = exp.mark_ts_ns
        if mark_ts is not None and (info.mark_ts_ns is None or mark_ts >= info.mark_ts_ns):
            info.mark = exp.mark
            info.mark_ts_ns = mark_ts
        info.group = exp.group
        info.correlation = exp.correlation

    def _rebuild_heap(self) -> None:
        self._live_marks = {
            key: (
                exp.mark_ts_ns if exp.mark_ts_ns is not None else _NO_MARK_TS,
                self._position_seq[key],
                exp.account,
                exp.symbol,
            )
            for key, exp in self._positions.items()
            if exp.qty != 0
        }
        self._mark_heap = list(self._live_marks.values())
        heapq.heapify(self._mark_heap)

    def _oldest_open(self) -> _HeapEntry | None:
        """The open position with the stalest (or no) mark: the least (mark time, seq).

        Drops superseded entries, and re-enters an open position's entry that
        lags it (a mark moved forward since) under its current key: the entry
        sorted no later than the position, so once the top is current it is the least.
        """
        heap = self._mark_heap
        live = self._live_marks
        while heap:
            top = heap[0]
            key = (top[2], top[3])
            if live.get(key) is not top:
                heapq.heappop(heap)
                continue
            seq = self._position_seq[key]
            if top[1] == seq:
                return top
            mark_ts = self._positions[key].mark_ts_ns
            entry = (mark_ts if mark_ts is not None else _NO_MARK_TS, seq, top[2], top[3])
            heapq.heapreplace(heap, entry)
            live[key] = entry
        return None

    def _evaluate(self, now: int, events: list[str], equity: Decimal) -> bool:
        """Refresh the loss-limit breaches; start a cooldown when one is newly crossed.

        Returns True when a breach was crossed (worth a transition even if the
        state does not change, e.g. while already halted).
        """
        limits = self._limits
        daily = equity <= self._daily_floor
        drawdown = equity <= self._drawdown_floor
        crossed = False
        if daily and not self._daily_breached:
            loss = _sub(self._day_start, equity)
            events.append(
                f"daily loss limit reached: loss {_fmt(loss)} >= {_fmt(limits.daily_loss_limit)}"
            )
            crossed = True
        if drawdown and not self._drawdown_breached:
            events.append(
                f"drawdown limit reached: {_ratio(self._peak - equity, self._peak)} of peak "
                f">= {_fmt(limits.max_drawdown)}"
            )
            crossed = True
        self._daily_breached = daily
        self._drawdown_breached = drawdown
        if crossed and self._cooldown_until is None:
            self._cooldown_until = now + limits.cooldown_s * _NS_PER_S
        return crossed

    def _target(self, equity: Decimal) -> RiskState:
        """The state the flags and numbers imply."""
        if self._halted:
            return _HALTED
        if self._cooldown_until is not None:
            return _COOLDOWN
        if self._warning_reached(equity):
            return _WARNING
        return _NORMAL

    def _warning_reached(self, equity: Decimal) -> bool:
        """True when `_warnings` would name at least one metric; without writing it."""
        return (
            equity <= self._warn_loss_floor
            or equity <= self._warn_drawdown_floor
            # With equity <= 0 the right side is <= 0: leverage is unbounded, so Warning.
            or self._gross >= _mul(self._warn_leverage, equity)
        )

    def _warnings(self, equity: Decimal) -> list[str]:
        """Why the engine is in Warning: each metric at or beyond its warning level."""
        limits = self._limits
        fraction = limits.warning_fraction
        peak = self._peak
        out: list[str] = []
        if equity <= self._warn_loss_floor:
            out.append(
                f"daily loss {_fmt(_sub(self._day_start, equity))} reached {_fmt(fraction)} of "
                f"{_fmt(limits.daily_loss_limit)}"
            )
        if equity <= self._warn_drawdown_floor:
            out.append(
                f"drawdown {_ratio(_sub(peak, equity), peak)} reached "
                f"{_fmt(fraction)} of {_fmt(limits.max_drawdown)}"
            )
        if self._gross >= _mul(self._warn_leverage, equity):
            out.append(
                f"leverage {_ratio(self._gross, equity)} reached {_fmt(fraction)} of "
                f"{_fmt(limits.max_leverage)}"
            )
        return out

    def _settle(
        self, now: int, events: list[str], notable: bool, equity: Decimal
    ) -> list[RiskTransition]:
        """Move to the state the flags and numbers imply; report it if anything happened.

        The reasons are written only when there is a transition to report.
        """
        target = self._target(equity)
        if target is self._state and not notable:
            return []
        if target is RiskState.HALTED:
            why = f"halted: {self._halt_reason}"
        elif target is RiskState.COOLDOWN:
            why = f"closeout only until {self._cooldown_until} ns"
        elif target is RiskState.WARNING:
            why = "; ".join(self._warnings(equity))
        else:
            why = "all metrics below their warning levels"
        transition = RiskTransition(
            previous=self._state,
            state=target,
            reason="; ".join([*events, why]),
            ts_ns=now,
            values=self._core_values(),
        )
        self._state = target
        return [transition]

    def _core_values(self) -> dict[str, str]:
        equity = self._equity()
        values = {
            "equity": _fmt(equity),
            "peak_equity": _fmt(self._peak),
            "day_start_equity": _fmt(self._day_start),
            "daily_pnl": _fmt(_sub(equity, self._day_start)),
            "drawdown": _ratio(_sub(self._peak, equity), self._peak),
            "gross": _fmt(self._gross),
            "leverage": _ratio(self._gross, equity),
            "total_exposure": _fmt(self._total_net),
            "open_positions": str(self._open_count),
        }
        if self._cooldown_until is not None:
            values["cooldown_until_ns"] = str(self._cooldown_until)
        return values


def _contribution(exp: PositionExposure) -> tuple[Decimal, Decimal]:
    """(|qty * mark|, qty * mark * correlation); a position without a mark adds nothing.

    Unmarked open positions are kept out of the sums and block new risk instead
    (see `missing_data`), so no guessed price ever enters an aggregate.
    """
    if exp.mark is None:
        return _ZERO, _ZERO
    notional = _mul(exp.qty, exp.mark)
    return notional.copy_abs(), _mul(notional, exp.correlation)


def _refuse(check: str, reason: str, values: dict[str, str]) -> RiskDecision:
    return RiskDecision(
        approved=False, reason=reason, check=check, values=values, risk_reducing=False
    )
