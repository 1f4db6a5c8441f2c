"""Marks from market data (`RiskEngine.update_mark`) judged as the reference model judges them.

The engine is told market marks through `update_mark`, which only records a
mark inside its band and prices the positions lazily. The reference model
(`risk_reference.RiskReference`) prices every position at every mark and
judges at once, from the raw positions (qty, average entry, realized P&L,
fees). Both get the same random sequences over three symbols (one position
each, as in a backtest): random-walk marks with jumps (inside and outside the
bands), fills that open, add, reduce and flip, orders, timer ticks, day
rollovers, cooldowns expiring, halts and a snapshot restored halfway (the
engine only), with limits tight enough that Warning, CoolDown and refusals
are common. After every mark the engine's transitions and state must be the
model's; after every other step its transitions or decision; and its metrics
wherever the engine is read (reading it prices the lazy marks, so it is done
only at "read" steps and at the end, to keep the lazy path's reach).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from risk_reference import (
    RefPosition,
    RiskReference,
    assert_same_decision,
    assert_same_figures,
    assert_same_transitions,
)

from posbus.actors.model.risk_engine import RiskEngine
from posbus.actors.model.risk_exposure import PositionExposure
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_request import OrderRequest
from posbus.actors.model.side import Side

D = Decimal
SETTINGS = settings(max_examples=300, deadline=None)
T0 = 1_704_067_200_000_000_000
S = 1_000_000_000
ACCOUNT = "a"
SYMBOLS = ("BTC", "ETH", "SOL")
GROUPS = {"BTC": "crypto", "ETH": "crypto", "SOL": "alt"}
CORRELATIONS = {"BTC": D(1), "ETH": D("0.8"), "SOL": D("-0.5")}
START_MARK = D(100)

LIMITS = RiskLimits(
    daily_loss_limit=D("60"),
    max_drawdown=D("0.0008"),
    max_leverage=D("0.4"),
    warning_fraction=D("0.5"),
    warning_leverage_factor=D("0.5"),
    max_group_exposure=D(20_000),
    max_total_exposure=D(25_000),
    max_order_notional=D(10_000),
    max_orders_per_second=3,
    cooldown_s=30,
    stale_after_s=5,
)

_symbol = st.sampled_from(SYMBOLS)
# Market time: mostly small steps, sometimes none, sometimes a new trading day.
_clock = st.one_of(st.integers(0, 2 * S), st.just(0), st.just(86_400 * S))
# Mark moves in cents: mostly small, sometimes a jump; a run of them shares a
# drift, so that several symbols move together (their bands share the slack).
_move = st.one_of(st.integers(-40, 40), st.integers(-2_000, 2_000))
_tick_clock = st.one_of(st.integers(0, S // 2), st.just(0))
_marks = st.tuples(
    st.just("marks"),
    st.integers(-60, 60),
    st.lists(st.tuples(_symbol, _move, _tick_clock), min_size=1, max_size=40),
)
_fill = st.tuples(
    st.just("fill"),
    _symbol,
    st.integers(-30, 30),  # the new quantity in tenths
    st.integers(-500, 500),  # realized P&L added, in cents
    st.integers(0, 50),  # the fill's fee, in cents
    _clock,
)
_order = st.tuples(
    st.just("order"),
    _symbol,
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(1, 40),  # tenths
    st.booleans(),  # a limit order at the mark (else a market order)
)
_KINDS = {
    "marks": _marks,
    "fill": _fill,
    "order": _order,
    "tick": st.tuples(st.just("tick"), _clock),
    "halt": st.tuples(st.just("halt"), st.booleans()),
    "read": st.tuples(st.just("read")),
}
_WEIGHTS = ["marks"] * 4 + ["fill"] * 3 + ["order"] * 2 + ["tick", "halt", "read"]
_steps = st.lists(st.sampled_from(_WEIGHTS).flatmap(_KINDS.__getitem__), min_size=10, max_size=60)


class _Desk:
    """One position per symbol, as a position actor holds it, and the market."""

    def __init__(self) -> None:
        self.now = T0
        self.orders = 0
        self.mark = dict.fromkeys(SYMBOLS, START_MARK)
        self.mark_ts = dict.fromkeys(SYMBOLS, T0)
        self.qty = dict.fromkeys(SYMBOLS, D(0))
        self.avg = dict.fromkeys(SYMBOLS, START_MARK)
        self.realized = {symbol: D(0) for symbol in SYMBOLS}
        self.fees = {symbol: D(0) for symbol in SYMBOLS}

    def exposure(self, symbol: str) -> PositionExposure:
        """What the position would tell: its P&L at the latest mark, qty * (mark - avg)."""
        qty = self.qty[symbol]
        mark = self.mark[symbol]
        unrealized = qty * (mark - self.avg[symbol]) if qty else D(0)
        return PositionExposure(
            ACCOUNT,
            symbol,
            qty,
            mark,
            self.mark_ts[symbol],
            self.realized[symbol] - self.fees[symbol],
            unrealized,
            GROUPS[symbol],
            CORRELATIONS[symbol],
        )

    def raw(self, symbol: str) -> RefPosition:
        """The position as the reference model takes it."""
        return RefPosition(
            self.qty[symbol],
            self.avg[symbol],
            self.realized[symbol],
            self.fees[symbol],
            self.mark[symbol],
            self.mark_ts[symbol],
            GROUPS[symbol],
            CORRELATIONS[symbol],
        )


def _step(desk: _Desk, step: tuple[Any, ...], engine: RiskEngine, model: RiskReference) -> None:
    """Move the desk, tell the engine and the model, and require the same answers."""
    kind = step[0]
    if kind == "marks":
        _, drift, moves = step
        for symbol, cents, clock in moves:
            desk.now += clock
            desk.mark[symbol] = max(D("0.01"), desk.mark[symbol] + D(cents + drift).scaleb(-2))
            desk.mark_ts[symbol] = desk.now
            got = engine.update_mark(symbol, desk.mark[symbol], desk.now)
            want = model.update_mark(symbol, desk.mark[symbol], desk.now)
            assert_same_transitions(got, want, (step, symbol, cents))
            # `state` is read without pricing the lazy marks.
            assert engine.state.value == model.state, (step, symbol, cents)
    elif kind == "fill":
        _, symbol, tenths, cents, fee_cents, clock = step
        desk.now += clock
        qty = D(tenths).scaleb(-1)
        if qty and (not desk.qty[symbol] or (qty > 0) != (desk.qty[symbol] > 0)):
            desk.avg[symbol] = desk.mark[symbol]  # opened or flipped at the mark
        desk.qty[symbol] = qty
        desk.realized[symbol] += D(cents).scaleb(-2)
        desk.fees[symbol] += D(fee_cents).scaleb(-2)
        got = engine.update_position(desk.exposure(symbol), desk.now)
        want = model.update_position(ACCOUNT, symbol, desk.raw(symbol), desk.now)
        assert_same_transitions(got, want, step)
    elif kind == "order":
        _, symbol, side, tenths, limit = step
        desk.orders += 1
        price = desk.mark[symbol] if limit else None
        request = OrderRequest(
            ACCOUNT, symbol, side, D(tenths).scaleb(-1), price, f"o{desk.orders}", desk.now
        )
        want_decision = model.check(ACCOUNT, symbol, request.signed_qty, price, desk.now)
        assert_same_decision(engine.check_order(request), want_decision, step)
    elif kind == "tick":
        desk.now += step[1]
        assert_same_transitions(engine.tick(desk.now), model.tick(desk.now), step)
    elif kind == "halt":
        if step[1] and engine.halt_reason:
            assert_same_transitions(engine.resume(desk.now), model.resume(desk.now), step)
        else:
            assert_same_transitions(engine.halt("test", desk.now), model.halt(desk.now), step)
    else:
        assert_same_figures(engine, model, step)
    assert engine.state.value == model.state, step


@SETTINGS
@given(_steps)
def test_marks_from_the_market_are_judged_as_the_reference_model_judges_them(
    steps: list[tuple[Any, ...]],
) -> None:
    desk = _Desk()
    engine = RiskEngine(LIMITS, D(10_000), T0)
    model = RiskReference(LIMITS, D(10_000), T0)
    for symbol in SYMBOLS:  # each position registers its symbol with its first mark
        engine.update_position(desk.exposure(symbol), T0)
        model.update_position(ACCOUNT, symbol, desk.raw(symbol), T0)
    for index, step in enumerate(steps):
        _step(desk, step, engine, model)
        if index == len(steps) // 2:  # a restart: the engine restored from its snapshot
            engine = RiskEngine.from_dict(engine.to_dict())
    assert_same_figures(engine, model, "end")
