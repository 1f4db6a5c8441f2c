"""The pure risk engine: pre-trade checks and the Normal/Warning/CoolDown/Halted machine.

This module must never read a clock, start a thread or do I/O: timestamps are
passed in (int ns since the epoch, UTC), so live trading, recovery replay and
backtests run the same arithmetic. Money is `Decimal`, exact (`risk_arithmetic`):
a figure is either exact or the call raises `decimal.Inexact`.

The engine ties together the exposure book (`risk_book`: every aggregate kept
by deltas, so a pre-trade check costs O(1) in the number of open positions and
a position update O(log n)), the state machine (`risk_machine`), the named
pre-trade checks (`risk_checks`, run in order by `PreTradeChecks`; the rate
window is `risk_order_rate`) and the marks taken from market data
(`risk_market_marks`). Marks come with the positions' exposures
(`update_position`) or from market data (`update_mark`); both give the same
decisions (docs/architecture.md, "Risk engine").
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from posbus.actors.model.errors import InvalidState
from posbus.actors.model.risk_arithmetic import fmt
from posbus.actors.model.risk_book import ExposureBook
from posbus.actors.model.risk_checks import PreTradeChecks
from posbus.actors.model.risk_exposure import PositionExposure
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_machine import RiskMachine
from posbus.actors.model.risk_market_marks import MarketMarks
from posbus.actors.model.risk_order_rate import OrderRateWindow
from posbus.actors.model.risk_request import OrderRequest, RiskDecision
from posbus.actors.model.risk_state import RiskState, RiskTransition

_SNAPSHOT_VERSION = 1


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
    8. leverage: worst-case gross + order notional <= cap * equity (the whole
       notional is added, even for an order that flips a position:
       conservative).
    9. group_exposure / total_exposure: |net + qty * price * correlation| <=
       the cap, or not larger than the current worst-case |net| (an order
       that lowers an over-limit exposure, a hedge, passes this check).

    Worst case (8, 9): every working order the positions report fills, at
    its limit price (a market order at its position's mark), and the order
    checked fills on top of them (`ExposureBook`, `PreTradeChecks._new_risk`).
    The state machine (Warning's leverage, the loss limits) judges what is
    held, not what may fill.
    10. order_rate: no one-second window (e - 1 s, e] holds more than
        `max_orders_per_second` approved orders, whatever order they arrive
        in; refused orders do not count.

    Caps are inclusive: a value AT the cap passes, beyond it is refused.
    """

    def __init__(self, limits: RiskLimits, starting_equity: Decimal, ts_ns: int) -> None:
        """Start flat, in Normal, with `starting_equity` as peak and day-start equity.

        Raises `ValueError` when `starting_equity` is not a positive finite Decimal.
        """
        if not isinstance(starting_equity, Decimal) or not starting_equity.is_finite():
            raise ValueError("starting_equity must be a finite Decimal")
        if starting_equity <= 0:
            raise ValueError("starting_equity must be positive")
        self._limits = limits
        self._starting_equity = starting_equity
        self._book = ExposureBook(starting_equity)
        self._machine = RiskMachine(limits, self._book, starting_equity, ts_ns)
        self._marks = MarketMarks(self._book, self._machine)
        self._rate = OrderRateWindow(limits.max_orders_per_second)
        self._checks = PreTradeChecks(limits, self._book, self._machine, self._rate)

    # -- inspection -------------------------------------------------------------

    @property
    def state(self) -> RiskState:
        """The current risk state."""
        return self._machine.state

    @property
    def limits(self) -> RiskLimits:
        """The limits this engine enforces."""
        return self._limits

    @property
    def cooldown_until_ns(self) -> int | None:
        """When the running cooldown ends (ns), or None when none runs."""
        return self._machine.cooldown_until

    @property
    def halt_reason(self) -> str:
        """Why the engine was halted; "" when it is not halted."""
        return self._machine.halt_reason

    @property
    def peak_equity(self) -> Decimal:
        """The highest equity seen (the drawdown's reference)."""
        return self._machine.peak

    @property
    def day_index(self) -> int:
        """The trading day the daily loss is counted in (days since the epoch, offset)."""
        return self._machine.day_index

    def position(self, account: str, symbol: str) -> PositionExposure | None:
        """The stored exposure of account+symbol, or None."""
        self._marks.catch_up()
        return self._book.position((account, symbol))

    def positions(self) -> list[PositionExposure]:
        """Every stored exposure, flat ones included (O(n): for inspection and audits)."""
        self._marks.catch_up()
        return self._book.positions()

    def metrics(self) -> dict[str, str]:
        """The aggregates as decimal strings, for admin views and audits.

        Keys: equity, peak_equity, day_start_equity, daily_pnl, drawdown
        (fraction of peak), gross, leverage (gross / equity), total_exposure
        (signed net; its limit applies to the absolute value), open_positions,
        worst_case_gross and worst_case_total_exposure (the same with every
        working order filled: what the pre-trade checks count), and one
        `group_exposure:<group>` (signed net) per group seen.
        """
        self._marks.catch_up()
        out = self._machine.values()
        book = self._book
        out["worst_case_gross"] = fmt(book.worst_gross)
        up, down = book.total_up, book.total_down
        out["worst_case_total_exposure"] = fmt(down if down.copy_abs() > up.copy_abs() else up)
        for group, net in self._book.group_nets():
            out[f"group_exposure:{group}"] = fmt(net)
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
        marks = self._marks
        if marks.dirty:
            marks.catch_up()
        if marks.bands:
            marks.bands.clear()
        events: list[str] = []
        now = self._machine.advance(ts_ns, events)
        self._book.apply(exp)
        transitions = self._machine.judge(now, events)
        if marks.active:
            info = self._book.symbols[exp.symbol]  # registered by the update
            if exp.mark_ts_ns != info.mark_ts_ns or exp.mark != info.mark:
                # The market's mark is newer (or the position's is, and its
                # neighbours lag): every position of the symbol is priced at
                # the one newest mark by the next catch-up.
                marks.dirty[exp.symbol] = None
        return transitions

    def update_mark(self, symbol: str, mark: Decimal, ts_ns: int) -> list[RiskTransition] | None:
        """Take a symbol's mark from market data, observed at `ts_ns`.

        Once called, the engine takes its marks from the market: a position's
        own exposure then tells it size and P&L, and its mark only when newer.
        The hot path: a mark inside the symbol's band (`risk_band`) is only
        recorded, and returns None (nothing else changed); the positions are
        priced at it before anything reads them. A mark outside it, a new
        trading day or an expired cooldown is judged at once, as a position
        update would be: returns the transitions (0 or 1). A mark older than
        the symbol's latest, or of a symbol no exposure registered, is ignored
        (None). `mark` must be positive and finite (market updates are
        validated when built).
        """
        marks = self._marks
        marks.active = True
        info = self._book.symbols.get(symbol)
        if info is None or (info.mark_ts_ns is not None and ts_ns < info.mark_ts_ns):
            return None
        machine = self._machine
        now = ts_ns if ts_ns > machine.last_ts_ns else machine.last_ts_ns
        if marks.record(symbol, info, mark, ts_ns, now):
            return None
        # Priced at the marks before this one first: a new day starts from them.
        marks.catch_up()
        events: list[str] = []
        now = machine.advance(ts_ns, events)
        info.mark = mark
        info.mark_ts_ns = ts_ns
        marks.dirty[symbol] = None
        marks.catch_up()
        return machine.judge(now, events)

    def tick(self, ts_ns: int) -> list[RiskTransition]:
        """Advance time: roll the trading day over and expire the cooldown when due.

        At a trading-day boundary the day-start equity resets to the current
        equity; a running cooldown is not lifted by it, only by its timer.
        Returns the transitions this caused (0 or 1).
        """
        events = self._time_passes(ts_ns)
        return self._machine.judge(self._machine.last_ts_ns, events, new_peak=False)

    def halt(self, reason: str, ts_ns: int) -> list[RiskTransition]:
        """Engage the kill switch: only risk-reducing orders pass until `resume`.

        Halting an already halted engine changes nothing and returns [] (a
        safety action must never fail).
        """
        events = self._time_passes(ts_ns)
        self._machine.halt(reason)
        return self._machine.judge(self._machine.last_ts_ns, events, new_peak=False)

    def resume(self, ts_ns: int) -> list[RiskTransition]:
        """Release the kill switch, to the state the numbers imply.

        An unexpired cooldown is never lifted: the engine resumes into CoolDown.
        Raises `InvalidState` when the engine is not halted.
        """
        machine = self._machine
        if not machine.halted:
            raise InvalidState(machine.state.value, "resume", ts_ns=ts_ns)
        events = self._time_passes(ts_ns)
        return machine.judge(machine.last_ts_ns, events, new_peak=False, resuming=True)

    def _time_passes(self, ts_ns: int) -> list[str]:
        """Price the lazy marks and move time to `ts_ns`; the events that brought."""
        self._marks.catch_up()
        self._marks.forget_bands()
        events: list[str] = []
        self._machine.advance(ts_ns, events)
        return events

    # -- pre-trade check --------------------------------------------------------

    def check_order(self, req: OrderRequest) -> RiskDecision:
        """Approve or refuse an order before it reaches a gateway; O(1) in positions.

        See the class docstring for the checks, their order and boundaries.
        An approved order is recorded for the rate limit.
        """
        if self._marks.dirty:
            self._marks.catch_up()
        return self._checks.run(req)

    # -- snapshot ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole engine as plain values (decimals as exact strings), for snapshots.

        Includes the state, the halt and the running cooldown, so CoolDown
        survives a restart; `from_dict(to_dict())` is an exact round trip.
        """
        self._marks.catch_up()
        return {
            "version": _SNAPSHOT_VERSION,
            "limits": self._limits.to_dict(),
            "starting_equity": str(self._starting_equity),
            "positions": [exp.to_dict() for exp in self._book.positions()],
            "symbols": self._book.symbols_to_dict(),
            **self._machine.to_dict(),
            "approved_ts_ns": self._rate.to_list(),
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
            engine._book.apply(PositionExposure.from_dict(raw))
        engine._book.restore_symbols(data["symbols"])
        engine._machine.restore(data)
        engine._rate.restore(int(ts) for ts in data["approved_ts_ns"])
        return engine
