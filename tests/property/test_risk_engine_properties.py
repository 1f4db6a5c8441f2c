"""Properties of the risk engine's mark fast path over random exposure sequences.

`RiskEngine.update_position` takes a shortcut for a mark change (the stored
exposure's realized P&L object, group and openness) and keeps the heap of mark
times lazily. A reference engine with `_fast_marks = False` takes the general
path for every update and pushes every mark. Both get the same random
sequences (mark changes, quantity and realized P&L changes, group moves,
flat positions, unmarked ones, marks moving back in time, days rolling over,
cooldowns, halts, orders) over several accounts, symbols and groups, with
limits tight enough that Warning and CoolDown are common; after every step
they must agree exactly: transitions, decisions, metrics, snapshot, and every
aggregate down to its exponent and the sign of its zeros.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model.risk_engine import RiskEngine
from posbus.actors.model.risk_exposure import PositionExposure
from posbus.actors.model.risk_limits import RiskLimits
from posbus.actors.model.risk_request import OrderRequest
from posbus.actors.model.side import Side

D = Decimal
SETTINGS = settings(max_examples=300, deadline=None)
T0 = 1_704_067_200_000_000_000
S = 1_000_000_000
ACCOUNTS = ("a", "b")
SYMBOLS = ("BTC", "ETH", "SOL")
GROUPS = ("crypto", "alt")
CORRELATIONS = (D(1), D("0.5"), D("-0.8"), D(0))

LIMITS = RiskLimits(
    daily_loss_limit=D("150"),
    max_drawdown=D("0.02"),
    max_leverage=D(3),
    warning_fraction=D("0.5"),
    warning_leverage_factor=D("0.5"),
    max_group_exposure=D(20_000),
    max_total_exposure=D(25_000),
    max_order_notional=D(10_000),
    max_orders_per_second=3,
    cooldown_s=30,
    stale_after_s=5,
)


def _scaled(units: int, places: int) -> Decimal:
    return D(units).scaleb(-places)


_mark = st.builds(_scaled, st.integers(1, 2_000_000), st.integers(0, 4))
_qty = st.one_of(st.just(D(0)), st.builds(_scaled, st.integers(-300, 300), st.integers(0, 2)))
_pnl = st.builds(_scaled, st.integers(-50_000, 50_000), st.integers(0, 3))
_key = st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS))
# Mark time moves: mostly forward, sometimes not at all, sometimes back (a late mark).
_mark_step = st.one_of(st.integers(0, 3 * S), st.just(0), st.integers(-4 * S, 0))
# Clock moves: small, a day rollover, or back (an exposure that arrives late).
_clock_step = st.one_of(st.integers(0, 4 * S), st.just(86_400 * S), st.integers(-2 * S, 0))
_mark_change = st.tuples(st.just("mark"), _key, _mark, _mark_step, _pnl, _clock_step)
_fill = st.tuples(
    st.just("fill"),
    _key,
    _qty,
    _pnl,
    st.sampled_from(["new", "equal", "same"]),
    _mark,
    _clock_step,
)
_order = st.tuples(
    st.just("order"),
    _key,
    st.sampled_from([Side.BUY, Side.SELL]),
    st.builds(_scaled, st.integers(1, 300), st.integers(0, 2)),
    st.one_of(st.none(), _mark),
)
# Weighted as a backtest is: mostly mark changes, then orders and fills.
_KINDS = {
    "mark": _mark_change,
    "order": _order,
    "fill": _fill,
    "move": st.tuples(
        st.just("move"), _key, st.sampled_from(GROUPS), st.sampled_from(CORRELATIONS)
    ),
    "unmark": st.tuples(st.just("unmark"), _key, st.one_of(st.just(D(0)), _qty)),
    "tick": st.tuples(st.just("tick"), _clock_step),
    "halt": st.tuples(st.just("halt"), st.booleans()),
}
_WEIGHTS = ["mark"] * 12 + ["order"] * 3 + ["fill"] * 3 + ["move", "unmark", "tick", "halt"]
_step = st.sampled_from(_WEIGHTS).flatmap(_KINDS.__getitem__)
_steps = st.lists(_step, min_size=10, max_size=80)


class _Book:
    """The positions the sequence drives: each field's object is reused until it changes,
    as a position actor reuses its quantity and realized P&L between fills."""

    def __init__(self) -> None:
        self.now = T0
        self.orders = 0
        self.held: dict[tuple[str, str], dict[str, Any]] = {}

    def position(self, key: tuple[str, str]) -> dict[str, Any]:
        return self.held.setdefault(
            key,
            {
                "qty": D(0),
                "realized": D(0),
                "mark": None,
                "mark_ts": None,
                "unrealized": D(0),
                "group": GROUPS[SYMBOLS.index(key[1]) % 2],
                "correlation": CORRELATIONS[SYMBOLS.index(key[1])],
            },
        )

    def exposure(self, key: tuple[str, str]) -> PositionExposure:
        held = self.held[key]
        return PositionExposure(
            key[0],
            key[1],
            held["qty"],
            held["mark"],
            held["mark_ts"],
            held["realized"],
            held["unrealized"],
            held["group"],
            held["correlation"],
        )


def _internals(engine: RiskEngine) -> dict[str, Any]:
    """Every aggregate as its exact string (exponent and sign of zero included)."""
    return {
        "snapshot": json.dumps(engine.to_dict(), sort_keys=True),
        "metrics": engine.metrics(),
        "state": engine.state,
        "values": [
            str(v)
            for v in (
                engine._realized,
                engine._booked_equity,
                engine._unrealized,
                engine._gross,
                engine._total_net,
                engine._peak,
                engine._day_start,
            )
        ],
        "groups": {g: str(v) for g, v in engine._group_net.items()},
        "members": dict(engine._group_members),
        "contributions": {k: (str(g), str(n)) for k, (g, n) in engine._contributions.items()},
        "open": engine._open_count,
        "breached": (engine._daily_breached, engine._drawdown_breached),
        "oldest": engine._oldest_open(),
    }


def _run(engine: RiskEngine, book: _Book, step: tuple[Any, ...]) -> Any:
    """Apply one step (the book already moved) and return what the engine answered."""
    kind = step[0]
    if kind in ("mark", "fill", "move", "unmark"):
        return engine.update_position(book.exposure(step[1]), book.now)
    if kind == "tick":
        return engine.tick(book.now)
    if kind == "halt":
        if step[1] and engine.halt_reason:
            return engine.resume(book.now)
        return engine.halt("test", book.now)
    if kind == "order":
        _, (account, symbol), side, qty, price = step
        request = OrderRequest(account, symbol, side, qty, price, f"o{book.orders}", book.now)
        return engine.check_order(request)
    raise AssertionError(kind)


def _move_book(book: _Book, step: tuple[Any, ...]) -> None:
    """Change the book as the step says: new objects only for the fields that change."""
    kind = step[0]
    if kind == "mark":
        _, key, mark, mark_step, unrealized, clock_step = step
        held = book.position(key)
        held["mark"] = mark
        held["mark_ts"] = (held["mark_ts"] or book.now) + mark_step
        held["unrealized"] = unrealized if held["qty"] else D(0)
        book.now += clock_step
    elif kind == "fill":
        _, key, qty, realized, how, mark, clock_step = step
        held = book.position(key)
        # A new quantity object even when equal (a fill that changed nothing of it).
        held["qty"] = qty + 0
        if how == "new":
            held["realized"] = realized
        elif how == "equal":  # an equal but new object (another exponent): the general path
            held["realized"] = held["realized"].quantize(D("0.0001"))
        held["mark"] = mark
        held["mark_ts"] = book.now
        held["unrealized"] = D(0)
        book.now += clock_step
    elif kind == "move":
        _, key, group, correlation = step
        held = book.position(key)
        held["group"] = group
        held["correlation"] = correlation
    elif kind == "unmark":
        held = book.position(step[1])
        held["qty"] = step[2]
        held["mark"] = None
        held["mark_ts"] = None
        held["unrealized"] = D(0)
    elif kind == "tick":
        book.now += step[1]
    elif kind == "order":
        book.orders += 1


@SETTINGS
@given(_steps)
def test_mark_fast_path_gives_the_general_paths_results_exactly(
    steps: list[tuple[Any, ...]],
) -> None:
    """Fast and reference engines agree after every step, down to every exponent."""
    fast = RiskEngine(LIMITS, D(10_000), T0)
    reference = RiskEngine(LIMITS, D(10_000), T0)
    reference._fast_marks = False
    book = _Book()
    for step in steps:
        _move_book(book, step)
        assert _run(fast, book, step) == _run(reference, book, step), step
        assert _internals(fast) == _internals(reference), step


@SETTINGS
@given(_steps)
def test_a_restored_fast_engine_keeps_agreeing_with_the_reference(
    steps: list[tuple[Any, ...]],
) -> None:
    """Halfway through, both engines are rebuilt from their snapshots; they still agree."""
    fast = RiskEngine(LIMITS, D(10_000), T0)
    reference = RiskEngine(LIMITS, D(10_000), T0)
    reference._fast_marks = False
    book = _Book()
    for i, step in enumerate(steps):
        if i == len(steps) // 2:
            fast = RiskEngine.from_dict(fast.to_dict())
            reference = RiskEngine.from_dict(reference.to_dict())
            reference._fast_marks = False
        _move_book(book, step)
        assert _run(fast, book, step) == _run(reference, book, step), step
        assert _internals(fast) == _internals(reference), step
