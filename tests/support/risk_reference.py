"""A reference model of the risk engine, written from its documented rules, naively.

`RiskReference` is the oracle of the risk property tests
(tests/property/test_risk_engine_properties.py, test_risk_market_marks.py).
It shares no code with `posbus.actors.model.risk_engine`: it keeps the raw
positions (quantity, average entry, realized P&L, fees, mark, correlation
group) and recomputes every figure from them on every read, O(n), in plain
exact Decimal arithmetic, no deltas, no caches, no bands:

- unrealized P&L of an open, marked position = qty * (mark - avg entry);
- equity = starting equity + sum(realized - fees) + sum(unrealized);
- gross = sum |qty * mark|, net per group and total = sum qty * mark * corr
  (an unmarked position adds nothing: it blocks new risk instead);
- working orders, each kept as its owner reports it (side, remaining qty,
  price: its limit, or the mark a market order was valued at): if all fill,
  a position's notional ends between qty * mark - its sells and qty * mark +
  its buys; the worst-case gross is the sum of each position's larger |end|,
  and the worst-case net of a group (or in total) lies between the sum of
  each position's higher and the sum of its lower correlation-weighted end;
- daily loss = day-start equity - equity, drawdown = (peak - equity) / peak,
  leverage = gross / equity.

The state machine and the pre-trade decision follow the rules written in
`RiskEngine`'s and `RiskLimits`' docstrings: Warning at `warning_fraction` of
a limit (>=), CoolDown when a loss limit is reached (newly), for
`cooldown_s`, lifted by the first event at or after its end; Halted by the
kill switch; the ten checks in their order, first refusal wins, with
risk-reducing orders passing everything but the rate limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, localcontext

from posbus.actors.model.risk_engine import RiskEngine
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_request import RiskDecision
from posbus.actors.model.risk_state import RiskTransition

NS = 1_000_000_000
DAY_NS = 86_400 * NS
ZERO = Decimal(0)
# Wide enough for every figure the tests produce; any rounding raises.
EXACT = Context(prec=300, traps=[Inexact])
# Ratios are only shown (and compared to 1e-12): 40 digits, rounded.
SHOW = Context(prec=40)


@dataclass
class RefPosition:
    """One account+symbol position as its owner knows it."""

    qty: Decimal
    avg_entry: Decimal
    realized: Decimal
    fees: Decimal
    mark: Decimal | None
    mark_ts: int | None
    group: str
    correlation: Decimal
    # (side sign +1 / -1, remaining qty, price) of each working order.
    working: tuple[tuple[int, Decimal, Decimal], ...] = ()

    def unrealized(self) -> Decimal:
        if self.qty == 0 or self.mark is None:
            return ZERO
        return self.qty * (self.mark - self.avg_entry)

    def notional(self) -> Decimal:
        """qty * mark, signed; 0 without a mark."""
        return ZERO if self.mark is None else self.qty * self.mark

    def ends(self) -> tuple[Decimal, Decimal]:
        """(lowest, highest) notional the position may end at if its working orders fill."""
        with localcontext(EXACT):
            buys = sum((q * p for sign, q, p in self.working if sign > 0), ZERO)
            sells = sum((q * p for sign, q, p in self.working if sign < 0), ZERO)
            return self.notional() - sells, self.notional() + buys

    def weighted_ends(self) -> tuple[Decimal, Decimal]:
        """(lowest, highest) of the two ends weighted by the correlation."""
        with localcontext(EXACT):
            a, b = (end * self.correlation for end in self.ends())
            return min(a, b), max(a, b)


@dataclass(frozen=True)
class RefTransition:
    previous: str
    state: str
    daily_crossed: bool
    drawdown_crossed: bool


@dataclass(frozen=True)
class RefDecision:
    approved: bool
    check: str
    risk_reducing: bool


class RiskReference:
    """The risk engine's documented behaviour, recomputed from scratch at every step."""

    def __init__(self, limits: RiskLimits, starting_equity: Decimal, ts_ns: int) -> None:
        self.limits = limits
        self.starting_equity = starting_equity
        self.positions: dict[tuple[str, str], RefPosition] = {}
        # Per symbol: the latest (group, correlation) reported, the newest mark and its time.
        self.symbol_group: dict[str, tuple[str, Decimal]] = {}
        self.symbol_mark: dict[str, tuple[Decimal, int]] = {}
        self.market_marks = False
        self.peak = starting_equity
        self.day_start = starting_equity
        self.day = self._day_of(ts_ns)
        self.now = ts_ns
        self.halted = False
        self.cooldown_until: int | None = None
        self.daily_breached = False
        self.drawdown_breached = False
        self.state = "Normal"
        self.approvals: list[int] = []

    # -- figures -----------------------------------------------------------------

    def _day_of(self, ts_ns: int) -> int:
        return (ts_ns - self.limits.trading_day_offset_s * NS) // DAY_NS

    def equity(self) -> Decimal:
        with localcontext(EXACT):
            total = self.starting_equity
            for p in self.positions.values():
                total += p.realized - p.fees + p.unrealized()
            return total

    def gross(self) -> Decimal:
        with localcontext(EXACT):
            return sum((abs(p.notional()) for p in self.positions.values()), ZERO)

    def group_net(self, group: str) -> Decimal:
        with localcontext(EXACT):
            return sum(
                (p.notional() * p.correlation for p in self.positions.values() if p.group == group),
                ZERO,
            )

    def total_net(self) -> Decimal:
        with localcontext(EXACT):
            return sum((p.notional() * p.correlation for p in self.positions.values()), ZERO)

    def worst_gross(self) -> Decimal:
        with localcontext(EXACT):
            return sum((max(abs(end) for end in p.ends()) for p in self.positions.values()), ZERO)

    def net_range(self, group: str | None = None) -> tuple[Decimal, Decimal]:
        """(lowest, highest) net of `group` (None: every group) the working orders may bring."""
        members = [p for p in self.positions.values() if group is None or p.group == group]
        with localcontext(EXACT):
            low = sum((p.weighted_ends()[0] for p in members), ZERO)
            high = sum((p.weighted_ends()[1] for p in members), ZERO)
            return low, high

    def daily_loss(self) -> Decimal:
        with localcontext(EXACT):
            return self.day_start - self.equity()

    def drawdown(self) -> Decimal:
        """(peak - equity) / peak, to 40 digits (only ever shown)."""
        equity = self.equity()
        with localcontext(SHOW):
            return (self.peak - equity) / self.peak

    def leverage(self) -> Decimal | None:
        """gross / equity, to 40 digits; None (unbounded) when equity <= 0."""
        equity = self.equity()
        if equity <= 0:
            return None
        gross = self.gross()
        with localcontext(SHOW):
            return gross / equity

    def metrics(self) -> dict[str, Decimal | None]:
        """The figures `RiskEngine.metrics` exposes, as numbers (None: "Infinity")."""
        with localcontext(EXACT):
            out: dict[str, Decimal | None] = {
                "equity": self.equity(),
                "peak_equity": self.peak,
                "day_start_equity": self.day_start,
                "daily_pnl": self.equity() - self.day_start,
                "drawdown": self.drawdown(),
                "gross": self.gross(),
                "leverage": self.leverage(),
                "total_exposure": self.total_net(),
                "open_positions": Decimal(sum(1 for p in self.positions.values() if p.qty != 0)),
                "worst_case_gross": self.worst_gross(),
                "worst_case_total_exposure": _farther(*self.net_range()),
            }
            for group in {p.group for p in self.positions.values()}:
                out[f"group_exposure:{group}"] = self.group_net(group)
            return out

    def _daily_reached(self, fraction: Decimal) -> bool:
        with localcontext(EXACT):
            return self.daily_loss() >= fraction * self.limits.daily_loss_limit

    def _drawdown_reached(self, fraction: Decimal) -> bool:
        # peak - equity >= fraction * max_drawdown * peak (no division: exact).
        with localcontext(EXACT):
            return self.peak - self.equity() >= fraction * self.limits.max_drawdown * self.peak

    def _warning(self) -> bool:
        f = self.limits.warning_fraction
        with localcontext(EXACT):
            leverage_warning = self.gross() >= f * self.limits.max_leverage * self.equity()
        return self._daily_reached(f) or self._drawdown_reached(f) or leverage_warning

    # -- events ------------------------------------------------------------------

    def _event(self, ts_ns: int, change: object = None) -> list[RefTransition]:
        """Time moves to ts (never back): a new day starts from the equity before the
        change, an expired cooldown ends; then the change; then the state is judged."""
        self.now = max(self.now, ts_ns)
        day = self._day_of(self.now)
        if day > self.day:
            self.day = day
            self.day_start = self.equity()
        if self.cooldown_until is not None and self.now >= self.cooldown_until:
            self.cooldown_until = None
        if callable(change):
            change()
        self.peak = max(self.peak, self.equity())
        daily = self._daily_reached(Decimal(1))
        drawdown = self._drawdown_reached(Decimal(1))
        daily_crossed = daily and not self.daily_breached
        drawdown_crossed = drawdown and not self.drawdown_breached
        self.daily_breached, self.drawdown_breached = daily, drawdown
        if (daily_crossed or drawdown_crossed) and self.cooldown_until is None:
            self.cooldown_until = self.now + self.limits.cooldown_s * NS
        return self._judge(daily_crossed, drawdown_crossed)

    def _judge(self, daily_crossed: bool, drawdown_crossed: bool) -> list[RefTransition]:
        if self.halted:
            target = "Halted"
        elif self.cooldown_until is not None:
            target = "CoolDown"
        elif self._warning():
            target = "Warning"
        else:
            target = "Normal"
        previous, self.state = self.state, target
        if target == previous and not (daily_crossed or drawdown_crossed):
            return []
        return [RefTransition(previous, target, daily_crossed, drawdown_crossed)]

    def update_position(
        self, account: str, symbol: str, position: RefPosition, ts_ns: int
    ) -> list[RefTransition]:
        """The owner of account+symbol reports its position (a fill, a mark, a move)."""

        def change() -> None:
            self.positions[(account, symbol)] = position
            self.symbol_group[symbol] = (position.group, position.correlation)
            if position.mark is not None and position.mark_ts is not None:
                newest = self.symbol_mark.get(symbol)
                if newest is None or position.mark_ts >= newest[1]:
                    self.symbol_mark[symbol] = (position.mark, position.mark_ts)
            if self.market_marks:
                self._price(symbol)

        return self._event(ts_ns, change)

    def update_mark(self, symbol: str, mark: Decimal, ts_ns: int) -> list[RefTransition]:
        """A market mark: every position of the symbol is worth it from now on.

        A mark older than the symbol's newest, or of a symbol no position
        reported, is ignored.
        """
        self.market_marks = True
        newest = self.symbol_mark.get(symbol)
        if symbol not in self.symbol_group or (newest is not None and ts_ns < newest[1]):
            return []

        def change() -> None:
            self.symbol_mark[symbol] = (mark, ts_ns)
            self._price(symbol)

        return self._event(ts_ns, change)

    def _price(self, symbol: str) -> None:
        """Market marks: the symbol's positions at its newest mark (an open position
        without a mark of its own stays unmarked: its P&L is unknown)."""
        newest = self.symbol_mark.get(symbol)
        if newest is None:
            return
        for (_, sym), p in self.positions.items():
            if sym == symbol and (p.mark is not None or p.qty == 0):
                p.mark, p.mark_ts = newest

    def tick(self, ts_ns: int) -> list[RefTransition]:
        return self._event(ts_ns)

    def halt(self, ts_ns: int) -> list[RefTransition]:
        def change() -> None:
            self.halted = True

        return self._event(ts_ns, change)

    def resume(self, ts_ns: int) -> list[RefTransition]:
        assert self.halted

        def change() -> None:
            self.halted = False

        return self._event(ts_ns, change)

    # -- the pre-trade check -----------------------------------------------------

    def risk_reducing(self, account: str, symbol: str, signed_qty: Decimal) -> bool:
        """The order shrinks |qty| of its position and does not carry it past zero."""
        held = self.positions.get((account, symbol))
        qty = ZERO if held is None else held.qty
        after = qty + signed_qty
        return qty != 0 and abs(after) < abs(qty) and (after == 0 or (after > 0) == (qty > 0))

    def check(
        self, account: str, symbol: str, signed_qty: Decimal, price: Decimal | None, ts_ns: int
    ) -> RefDecision:
        """The decision on an order (price None: a market order); records an approval."""
        reducing = self.risk_reducing(account, symbol, signed_qty)
        check = self._first_refusal(symbol, signed_qty, price, ts_ns, reducing)
        if check == "" and self._rate_reached(ts_ns):
            check = "order_rate"
        if check == "":
            self.approvals.append(ts_ns)
        return RefDecision(check == "", check, reducing)

    def _rate_reached(self, ts_ns: int) -> bool:
        # Every one-second window (end - 1 s, end] that would hold this order.
        ends = [ts_ns] + [t for t in self.approvals if ts_ns <= t < ts_ns + NS]
        busiest = max(sum(1 for t in self.approvals if end - NS < t <= end) for end in ends)
        return busiest >= self.limits.max_orders_per_second

    def _first_refusal(
        self,
        symbol: str,
        signed_qty: Decimal,
        price: Decimal | None,
        ts_ns: int,
        reducing: bool,
    ) -> str:
        limits = self.limits
        stale_ns = limits.stale_after_s * NS
        if reducing:
            return ""
        if self.state == "Halted":
            return "halted"
        if self.state == "CoolDown":
            return "cooldown"
        if symbol not in self.symbol_group:
            return "missing_data"
        group, correlation = self.symbol_group[symbol]
        if price is None:
            newest = self.symbol_mark.get(symbol)
            if newest is None:
                return "missing_data"
            price, mark_ts = newest
            if ts_ns - mark_ts > stale_ns:
                return "stale_mark"
        open_positions = [p for p in self.positions.values() if p.qty != 0]
        if any(p.mark_ts is None for p in open_positions):
            return "missing_data"
        if any(ts_ns - p.mark_ts > stale_ns for p in open_positions if p.mark_ts is not None):
            return "stale_mark"
        equity = self.equity()
        if equity <= 0:
            return "leverage"
        if self._daily_reached(Decimal(1)):
            return "daily_loss"
        if self._drawdown_reached(Decimal(1)):
            return "drawdown"
        with localcontext(EXACT):
            notional = abs(signed_qty) * price
            if notional > limits.max_order_notional:
                return "order_notional"
            cap = limits.max_leverage
            if self.state == "Warning":
                cap *= limits.warning_leverage_factor
            if self.worst_gross() + notional > cap * equity:
                return "leverage"
            delta = signed_qty * price * correlation
            # The worst |net| if every working order fills, without and with this one.
            for scope, cap_of_scope, check in (
                (group, limits.max_group_exposure, "group_exposure"),
                (None, limits.max_total_exposure, "total_exposure"),
            ):
                low, high = self.net_range(scope)
                now = max(abs(low), abs(high))
                after = max(abs(low + min(delta, ZERO)), abs(high + max(delta, ZERO)))
                if after > cap_of_scope and after > now:
                    return check
        return ""


def _farther(low: Decimal, high: Decimal) -> Decimal:
    """The end of a net range farther from zero (the highest on a tie)."""
    return low if abs(low) > abs(high) else high


# -- comparing an engine with the model (through the engine's public surface) ------

# The engine shows its ratios (drawdown, leverage) rounded to 12 places.
RATIO_TOLERANCE = Decimal("1e-12")
RATIOS = ("drawdown", "leverage")


def engine_metrics(engine: RiskEngine) -> dict[str, Decimal | None]:
    """`engine.metrics()` as numbers ("Infinity": None)."""
    return {k: None if v == "Infinity" else Decimal(v) for k, v in engine.metrics().items()}


def assert_same_figures(engine: RiskEngine, model: RiskReference, context: object) -> None:
    """The engine's state, cooldown and metrics are the model's."""
    assert engine.state.value == model.state, context
    assert engine.cooldown_until_ns == model.cooldown_until, context
    got, want = engine_metrics(engine), model.metrics()
    # Shown while a cooldown runs; compared above, through the public property.
    until = got.pop("cooldown_until_ns", None)
    assert until == (None if model.cooldown_until is None else model.cooldown_until), context
    assert sorted(got) == sorted(want), (context, got, want)
    for name, value in want.items():
        if name in RATIOS and value is not None and got[name] is not None:
            assert abs(got[name] - value) <= RATIO_TOLERANCE, (context, name, got[name], value)
        else:
            assert got[name] == value, (context, name, got[name], value)


def assert_same_transitions(
    got: list[RiskTransition] | None, want: list[RefTransition], context: object
) -> None:
    """Same (previous, state) pairs, and a breach named exactly when one was crossed."""
    got = got or []
    assert [(t.previous.value, t.state.value) for t in got] == [
        (t.previous, t.state) for t in want
    ], context
    for transition, expected in zip(got, want, strict=True):
        assert ("daily loss limit reached" in transition.reason) is expected.daily_crossed, (
            context,
            transition.reason,
        )
        assert ("drawdown limit reached" in transition.reason) is expected.drawdown_crossed, (
            context,
            transition.reason,
        )


def assert_same_decision(got: RiskDecision, want: RefDecision, context: object) -> None:
    assert (got.approved, got.check, got.risk_reducing) == (
        want.approved,
        want.check,
        want.risk_reducing,
    ), (context, got.reason)
