"""The risk engine against a reference model, over random exposure sequences.

The engine keeps its aggregates by deltas in its exposure book (a realized
P&L told again as the same object leaves the realized sum as it was) and
finds the stalest mark with a lazy heap of mark times.
`risk_reference.RiskReference` recomputes everything naively from the raw
positions (qty, average entry, realized P&L, fees, mark, group, correlation)
by the documented rules. Both get the same random
sequences (mark changes, quantity and realized P&L changes, group moves, flat
positions, unmarked ones, marks moving back in time, days rolling over,
cooldowns, halts, orders, the working orders a position reports) over several
accounts, symbols and groups, with
limits tight enough that Warning and CoolDown are common; the engine is driven
through its public methods only, and after every step its transitions,
decisions, state, cooldown and metrics must be the model's.

Two rules need a desk near a cap, which random sequences rarely build, so
each has a small property of its own that starts from such a desk (same
engine, model, book and comparison): an order that hedges a group already
beyond `max_group_exposure` (it lowers |net|, so it passes the group check),
and an order in Warning whose leverage lies between the Warning cap
(`max_leverage * warning_leverage_factor`) and the full one. A third starts
from resting orders that together come near the total and group caps: the
check counts them all filled, the new order on top.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
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
# Sometimes exactly the daily loss limit (a boundary: reaching it is a breach).
_pnl = st.one_of(
    st.builds(_scaled, st.integers(-50_000, 50_000), st.integers(0, 3)), st.just(D(-150))
)
_key = st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(SYMBOLS))
# Mark time moves: mostly forward, sometimes not at all, sometimes back (a late mark).
_mark_step = st.one_of(
    st.integers(0, 3 * S), st.just(0), st.integers(-4 * S, 0), st.sampled_from([S, 5 * S])
)
# Clock moves: small, a day rollover, or back (an exposure that arrives late).
# Whole seconds hit the boundaries: a mark exactly stale_after_s old, a cooldown's end.
_clock_step = st.one_of(
    st.integers(0, 4 * S),
    st.just(86_400 * S),
    st.integers(-2 * S, 0),
    st.sampled_from([S, 5 * S, 6 * S, 30 * S]),
)
# A mark moves from the last one by up to 1.00 (None: jumps to the drawn mark).
_move = st.one_of(st.none(), st.builds(_scaled, st.integers(-100, 100), st.just(2)))
_fee = st.builds(_scaled, st.integers(0, 500), st.just(2))
_mark_change = st.tuples(st.just("mark"), _key, _mark, _move, _mark_step, _clock_step)
_fill = st.tuples(
    st.just("fill"),
    _key,
    _qty,
    _pnl,
    _fee,
    st.sampled_from(["new", "equal", "same"]),
    _mark,
    _clock_step,
)
_order = st.tuples(
    st.just("order"),
    _key,
    st.sampled_from([Side.BUY, Side.SELL]),
    # None: the whole position's size (closing it exactly is risk-reducing).
    st.one_of(st.none(), st.builds(_scaled, st.integers(1, 300), st.integers(0, 2))),
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
# The working orders a position reports (they replace the ones it reported
# before): side sign, remaining qty, limit price (None: a market order, valued
# at the position's mark when it reports).
_working_order = st.tuples(
    st.sampled_from([1, -1]),
    st.builds(_scaled, st.integers(1, 300), st.integers(0, 2)),
    st.one_of(st.none(), _mark),
)
_KINDS["work"] = st.tuples(st.just("work"), _key, st.lists(_working_order, max_size=3))
_WEIGHTS = ["mark"] * 12 + ["order"] * 3 + ["fill"] * 3 + ["work"] * 2
_WEIGHTS += ["move", "unmark", "tick", "halt"]
_step = st.sampled_from(_WEIGHTS).flatmap(_KINDS.__getitem__)
_steps = st.lists(_step, min_size=10, max_size=80)


class _Book:
    """The positions the sequence drives, as their owners hold them: each field's object
    is reused until it changes, as a position actor reuses its quantity and realized
    P&L between fills (the exposure book keeps its realized sum as it is then)."""

    def __init__(self) -> None:
        self.now = T0
        self.orders = 0
        # Orders reach the check in time order (the clock of everything else may go
        # back): out-of-order order stamps are pinned in test_risk_rate_window.py.
        self.order_ts = T0
        self.held: dict[tuple[str, str], dict[str, Any]] = {}

    def position(self, key: tuple[str, str]) -> dict[str, Any]:
        return self.held.setdefault(
            key,
            {
                "qty": D(0),
                "avg": D(0),
                "realized": D(0),
                "fees": D(0),
                # realized - fees: the engine's realized P&L, one object until it changes.
                "net": D(0),
                "mark": None,
                "mark_ts": None,
                "group": GROUPS[SYMBOLS.index(key[1]) % 2],
                "correlation": CORRELATIONS[SYMBOLS.index(key[1])],
                "working": [],
            },
        )

    def working(self, key: tuple[str, str]) -> tuple[tuple[int, Decimal, Decimal], ...]:
        """The working orders as the position values them now: a market order at its mark
        (none without a mark: a position without a mark reports no market order)."""
        held = self.held[key]
        mark = held["mark"]
        return tuple(
            (sign, qty, price if price is not None else mark)
            for sign, qty, price in held["working"]
            if price is not None or mark is not None
        )

    def exposure(self, key: tuple[str, str]) -> PositionExposure:
        """What the position reports: unrealized P&L is qty * (mark - avg entry)."""
        held = self.held[key]
        qty, mark = held["qty"], held["mark"]
        unrealized = qty * (mark - held["avg"]) if qty and mark is not None else D(0)
        working = self.working(key)
        buys = [(q, p) for sign, q, p in working if sign > 0]
        sells = [(q, p) for sign, q, p in working if sign < 0]
        return PositionExposure(
            key[0],
            key[1],
            qty,
            mark,
            held["mark_ts"],
            held["net"],
            unrealized,
            held["group"],
            held["correlation"],
            sum((q for q, _ in buys), D(0)),
            sum((q * p for q, p in buys), D(0)),
            sum((q for q, _ in sells), D(0)),
            sum((q * p for q, p in sells), D(0)),
        )

    def raw(self, key: tuple[str, str]) -> RefPosition:
        """The same position as the reference model takes it: raw, no P&L figures."""
        held = self.held[key]
        return RefPosition(
            held["qty"],
            held["avg"],
            held["realized"],
            held["fees"],
            held["mark"],
            held["mark_ts"],
            held["group"],
            held["correlation"],
            self.working(key),
        )


def _run(engine: RiskEngine, model: RiskReference, book: _Book, step: tuple[Any, ...]) -> None:
    """Tell the engine and the model one step (the book already moved); compare answers."""
    kind = step[0]
    if kind in ("mark", "fill", "move", "unmark", "work"):
        key = step[1]
        got = engine.update_position(book.exposure(key), book.now)
        want = model.update_position(*key, book.raw(key), book.now)
        assert_same_transitions(got, want, step)
    elif kind == "tick":
        assert_same_transitions(engine.tick(book.now), model.tick(book.now), step)
    elif kind == "halt":
        if step[1] and engine.halt_reason:
            got, want = engine.resume(book.now), model.resume(book.now)
        else:
            got, want = engine.halt("test", book.now), model.halt(book.now)
        assert_same_transitions(got, want, step)
    elif kind == "order":
        _, (account, symbol), side, qty, price = step
        if qty is None:
            held = book.held.get((account, symbol))
            qty = abs(held["qty"]) if held is not None and held["qty"] else D(1)
        book.order_ts = max(book.order_ts, book.now)
        request = OrderRequest(account, symbol, side, qty, price, f"o{book.orders}", book.order_ts)
        want_decision = model.check(account, symbol, request.signed_qty, price, book.order_ts)
        assert_same_decision(engine.check_order(request), want_decision, step)
    else:
        raise AssertionError(kind)
    assert_same_figures(engine, model, step)


def _move_book(book: _Book, step: tuple[Any, ...]) -> None:
    """Change the book as the step says: new objects only for the fields that change."""
    kind = step[0]
    if kind == "mark":
        _, key, mark, move, mark_step, clock_step = step
        held = book.position(key)
        if move is not None and held["mark"] is not None and held["mark"] + move > 0:
            mark = held["mark"] + move
        held["mark"] = mark
        held["mark_ts"] = (held["mark_ts"] or book.now) + mark_step
        book.now += clock_step
    elif kind == "fill":
        _, key, qty, realized, fee, how, mark, clock_step = step
        held = book.position(key)
        # A new quantity object even when equal (a fill that changed nothing of it).
        held["qty"] = qty + 0
        if how == "new":
            held["realized"] = realized
            held["fees"] += fee
            held["net"] = held["realized"] - held["fees"]
        elif how == "equal":  # an equal but new object (another exponent): summed again
            held["net"] = held["net"].quantize(D("0.0001"))
        held["avg"] = mark  # filled at the mark: no unrealized P&L yet
        held["mark"] = mark
        held["mark_ts"] = book.now
        book.now += clock_step
    elif kind == "move":
        _, key, group, correlation = step
        held = book.position(key)
        held["group"] = group
        held["correlation"] = correlation
    elif kind == "unmark":
        held = book.position(step[1])
        held["qty"] = step[2]
        held["avg"] = D(0)
        held["mark"] = None
        held["mark_ts"] = None
    elif kind == "work":
        book.position(step[1])["working"] = list(step[2])
    elif kind == "tick":
        book.now += step[1]
    elif kind == "order":
        book.orders += 1


@SETTINGS
@given(_steps)
def test_the_engine_answers_as_the_reference_model_after_every_step(
    steps: list[tuple[Any, ...]],
) -> None:
    engine = RiskEngine(LIMITS, D(10_000), T0)
    model = RiskReference(LIMITS, D(10_000), T0)
    book = _Book()
    for step in steps:
        _move_book(book, step)
        _run(engine, model, book, step)


@SETTINGS
@given(_steps)
def test_an_engine_restored_from_its_snapshot_goes_on_answering_as_the_model(
    steps: list[tuple[Any, ...]],
) -> None:
    """Halfway through the engine is rebuilt from `to_dict`; the model just goes on."""
    engine = RiskEngine(LIMITS, D(10_000), T0)
    model = RiskReference(LIMITS, D(10_000), T0)
    book = _Book()
    for i, step in enumerate(steps):
        if i == len(steps) // 2:
            engine = RiskEngine.from_dict(engine.to_dict())
        _move_book(book, step)
        _run(engine, model, book, step)


# -- desks near a cap ------------------------------------------------------------
# Orders from account "b" at fresh marks, at most 10000 of notional: never
# risk-reducing, never beyond max_order_notional; a small tick between them
# keeps the rate limit mostly out of the way (marks stay fresh for a few).
_near_order = st.tuples(
    st.just("order"),
    st.tuples(st.just("b"), st.sampled_from(SYMBOLS)),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.builds(D, st.integers(1, 60)),
    st.one_of(st.none(), st.builds(D, st.integers(100, 150))),
)
_near_steps = st.lists(
    st.one_of(_near_order, st.tuples(st.just("tick"), st.integers(0, S // 2))),
    min_size=1,
    max_size=8,
)
# Flat positions of "b" register ETH and SOL (SOL: group crypto, correlation -0.8).
_REGISTER = [("fill", ("b", symbol), D(0), D(0), D(0), "same", D(100), 0) for symbol in SYMBOLS[1:]]


def _fill_a_btc(qty: Decimal, mark: int, realized: int) -> tuple[Any, ...]:
    """Account a holds qty BTC (group crypto, correlation 1) filled at mark."""
    return ("fill", ("a", "BTC"), qty, D(realized), D(0), "new", D(mark), 0)


def _replay(steps: list[tuple[Any, ...]]) -> None:
    engine = RiskEngine(LIMITS, D(10_000), T0)
    model = RiskReference(LIMITS, D(10_000), T0)
    book = _Book()
    for step in steps:
        _move_book(book, step)
        _run(engine, model, book, step)


# BTC notional 20100..45000 (beyond max_group_exposure), long or short, and a
# realized gain that keeps equity high: no Warning, leverage far below its cap.
_over_limit_group = st.builds(
    _fill_a_btc,
    st.builds(lambda q, sign: D(q * sign), st.integers(201, 300), st.sampled_from([1, -1])),
    st.integers(100, 150),
    st.integers(40_000, 50_000),
)


@settings(max_examples=60, deadline=None)
@given(_over_limit_group, _near_steps)
@example(  # a sale of 10 BTC: crypto 30000 -> 29000, still beyond 20000 but lower
    _fill_a_btc(D(300), 100, 50_000), [("order", ("b", "BTC"), Side.SELL, D(10), None)]
)
def test_an_order_that_lowers_a_group_exposure_beyond_its_cap_is_judged_as_the_model_judges_it(
    over: tuple[Any, ...], steps: list[tuple[Any, ...]]
) -> None:
    _replay([over, *_REGISTER, *steps])


# BTC notional 5000..22500 and a realized loss of up to 140: Warning (by daily
# loss, drawdown or leverage, never CoolDown) with equity near 10000, so an
# order's projected leverage often falls between the Warning cap (1.5) and 3.
_warning_desk = st.builds(
    _fill_a_btc,
    st.builds(lambda q, sign: D(q * sign), st.integers(50, 150), st.sampled_from([1, -1])),
    st.integers(100, 150),
    st.integers(-140, 0),
)


@settings(max_examples=60, deadline=None)
@given(_warning_desk, _near_steps)
@example(  # Warning by loss (100): gross 10000 + 6000 = 16000 > 1.5 * 9900, < 3 * 9900
    _fill_a_btc(D(100), 100, -100), [("order", ("b", "ETH"), Side.BUY, D(60), None)]
)
def test_in_warning_new_risk_is_capped_at_the_lowered_leverage_as_in_the_model(
    desk: tuple[Any, ...], steps: list[tuple[Any, ...]]
) -> None:
    _replay([desk, *_REGISTER, *steps])


# Resting orders of account "a" near the caps: limit buys and sells of BTC
# (crypto, correlation 1) and SOL (crypto, -0.8) worth up to 30000 together,
# with realized gains that keep equity (and so leverage) out of the way.
_resting = st.lists(
    st.tuples(st.sampled_from([1, -1]), st.builds(D, st.integers(1, 60)), st.just(D(100))),
    min_size=1,
    max_size=5,
)


def _working_desk(btc: list[tuple[int, Decimal, Decimal]], sol: list[Any]) -> list[Any]:
    return [
        ("fill", ("a", "BTC"), D(0), D(50_000), D(0), "new", D(100), 0),
        ("fill", ("a", "SOL"), D(0), D(0), D(0), "same", D(100), 0),
        ("work", ("a", "BTC"), btc),
        ("work", ("a", "SOL"), sol),
    ]


@settings(max_examples=60, deadline=None)
@given(_resting, _resting, _near_steps)
@example(  # 200 BTC resting (20000 crypto): 10 more would make 21000 > 20000
    [(1, D(60), D(100)), (1, D(60), D(100)), (1, D(60), D(100)), (1, D(20), D(100))],
    [],
    [("order", ("b", "BTC"), Side.BUY, D(10), None)],
)
def test_resting_orders_count_filled_in_the_exposure_caps_as_in_the_model(
    btc: list[Any], sol: list[Any], steps: list[tuple[Any, ...]]
) -> None:
    _replay([*_working_desk(btc, sol), *_REGISTER, *steps])
