"""Pre-trade check and mark update latency against the number of open positions.

Sets up a RiskEngine with 10, 1,000 and 10,000 open positions, times
`check_order` (20,000 calls, median of 5 repeats, ns per call) and prints the
ratio 10,000 / 10 (target < 1.2: the check is O(1) in positions). A fourth
engine holds 1,000 positions with 10 working orders each (10,000 orders,
limit buys and sells reported in each position's exposure, as a position
actor sums them): its ratio to 10 positions without working orders says the
check is O(1) in working orders too (same target). As a
baseline in the same run it times a naive check that loops over every
position to recompute gross, group and total exposure and the stalest mark
before deciding; it gets fewer calls at large sizes so the run stays short.

A stack of several accounts checks each order twice: its account's engine,
then the firm's over every account. Desks of 1 account x 10 positions and
of 10 accounts x 1,000 positions with 10,000 working orders (one per
position) are timed checking that pair; the ratio says the desk's check is
O(1) in accounts, positions and working orders (target < 1.2), and the
pair's cost against one lone engine is printed too (about 2: two checks).

Then it times the two ways marks reach the engine, ns per mark: a position's
exposure at a new mark (`update_position`, the same quantity and realized P&L
objects, as a position actor sends them) and a market mark inside its band
(`update_mark`, with one read every 100 marks pricing the positions).

Orders and marks go to the same 10 symbols at every size, so the comparison
measures the algorithm, not cache misses on a bigger dict. All orders pass
every check (the limits are wide), so the whole path runs.

Run: .venv/bin/python bench/bench_risk.py (`--quick`: fewer calls and
repeats, 10 and 1,000 positions; a smoke run, not a measurement)
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from posbus.actors.model.risk import (
    OrderRequest,
    PositionExposure,
    RiskEngine,
    RiskLimits,
)
from posbus.actors.model.side import Side

NS = 1_000_000_000
T0 = 20_000 * 86_400 * NS + 12 * 3_600 * NS
SIZES = (10, 1_000, 10_000)
CALLS = 20_000
REPEATS = 5
GROUPS = 10
ORDER_SYMBOLS = 10

LIMITS = RiskLimits(
    daily_loss_limit=Decimal("1000000"),
    max_drawdown=Decimal("0.5"),
    max_leverage=Decimal("1000"),
    warning_fraction=Decimal("0.8"),
    warning_leverage_factor=Decimal("0.5"),
    max_group_exposure=Decimal("1000000000000"),
    max_total_exposure=Decimal("1000000000000"),
    max_order_notional=Decimal("1000000000"),
    max_orders_per_second=1_000_000_000,
    cooldown_s=300,
    stale_after_s=3_600,
)
STARTING_EQUITY = Decimal("1000000000")


def build_engine(n: int) -> RiskEngine:
    engine = RiskEngine(LIMITS, STARTING_EQUITY, T0)
    for i in range(n):
        engine.update_position(
            PositionExposure(
                account="acct",
                symbol=f"S{i}",
                qty=Decimal("1.5") if i % 2 else Decimal("-0.75"),
                mark=Decimal("100.25"),
                mark_ts_ns=T0,
                realized_pnl=Decimal("0"),
                unrealized_pnl=Decimal("0.5"),
                group=f"g{i % GROUPS}",
                correlation=Decimal("0.85"),
            ),
            T0,
        )
    return engine


WORKING_POSITIONS = 1_000
WORKING_PER_POSITION = 10
WORKING = f"{WORKING_POSITIONS:,} + {WORKING_POSITIONS * WORKING_PER_POSITION:,} orders"


def build_working_engine(n: int = WORKING_POSITIONS) -> RiskEngine:
    """n positions, each with WORKING_PER_POSITION resting limit orders (half buys
    below the mark, half sells above it), summed per side as the position reports them."""
    engine = RiskEngine(LIMITS, STARTING_EQUITY, T0)
    for i in range(n):
        orders = [
            (Side.BUY if k % 2 else Side.SELL, Decimal("0.01") * (k + 1), Decimal(99 + 2 * (k % 2)))
            for k in range(WORKING_PER_POSITION)
        ]
        buys = [(q, p) for side, q, p in orders if side is Side.BUY]
        sells = [(q, p) for side, q, p in orders if side is Side.SELL]
        engine.update_position(
            PositionExposure(
                "acct",
                f"S{i}",
                Decimal("1.5") if i % 2 else Decimal("-0.75"),
                Decimal("100.25"),
                T0,
                Decimal("0"),
                Decimal("0.5"),
                f"g{i % GROUPS}",
                Decimal("0.85"),
                working_buy_qty=sum((q for q, _ in buys), Decimal(0)),
                working_buy_notional=sum((q * p for q, p in buys), Decimal(0)),
                working_sell_qty=sum((q for q, _ in sells), Decimal(0)),
                working_sell_notional=sum((q * p for q, p in sells), Decimal(0)),
            ),
            T0,
        )
    return engine


def make_orders(count: int, base_ts: int) -> list[OrderRequest]:
    return [
        OrderRequest(
            account="other",  # no position there: every order adds risk and runs every check
            symbol=f"S{i % ORDER_SYMBOLS}",
            side=Side.BUY,
            qty=Decimal("0.001"),
            price=Decimal("100"),
            order_id=f"o{i}",
            ts_ns=base_ts + i * 1_000,
        )
        for i in range(count)
    ]


def naive_check(engine: RiskEngine, req: OrderRequest) -> bool:
    """The baseline: recompute every aggregate from all positions on each check."""
    limits = engine.limits
    gross = Decimal(0)
    groups: dict[str, Decimal] = {}
    oldest: int | None = None
    equity = STARTING_EQUITY
    info = None
    for exp in engine.positions():
        equity += exp.realized_pnl + exp.unrealized_pnl
        if exp.symbol == req.symbol:
            info = exp
        if exp.mark is None:
            continue
        notional = exp.qty * exp.mark
        gross += abs(notional)
        groups[exp.group] = groups.get(exp.group, Decimal(0)) + notional * exp.correlation
        if exp.qty != 0 and exp.mark_ts_ns is not None:
            oldest = exp.mark_ts_ns if oldest is None else min(oldest, exp.mark_ts_ns)
    if info is None or req.price is None:
        return False
    if oldest is not None and req.ts_ns - oldest > limits.stale_after_s * NS:
        return False
    notional = req.qty * req.price
    if notional > limits.max_order_notional or gross + notional > limits.max_leverage * equity:
        return False
    delta = req.signed_qty * req.price * info.correlation
    group_after = groups.get(info.group, Decimal(0)) + delta
    total_after = sum(groups.values(), Decimal(0)) + delta
    return (
        abs(group_after) <= limits.max_group_exposure
        and abs(total_after) <= limits.max_total_exposure
    )


def _timed(fn: Callable[[OrderRequest], object], orders: list[OrderRequest]) -> float:
    """ns per call of fn over orders, with the garbage collector out of the way."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for req in orders:
            fn(req)
        return (time.perf_counter_ns() - start) / len(orders)
    finally:
        gc.enable()


def time_engines(engines: dict[int | str, RiskEngine]) -> dict[int | str, float]:
    """Median ns per check for each size; sizes take turns within each repeat so that
    load from other processes on the machine falls on all of them alike."""
    samples: dict[int | str, list[float]] = {n: [] for n in engines}
    for r in range(REPEATS):
        # Each repeat starts 10 s later so the rate window has emptied.
        orders = make_orders(CALLS, T0 + (r + 1) * 10 * NS)
        for n, engine in engines.items():
            samples[n].append(_timed(engine.check_order, orders))
    for engine in engines.values():
        assert engine.check_order(make_orders(1, T0 + 100 * NS)[0]).approved
    return {n: statistics.median(s) for n, s in samples.items()}


def time_naive(engine: RiskEngine, n: int) -> float:
    calls = max(50, min(CALLS, 2_000_000 // n))
    orders = make_orders(calls, T0 + NS)
    assert naive_check(engine, orders[0])
    samples = [_timed(lambda req: naive_check(engine, req), orders) for _ in range(REPEATS)]
    return statistics.median(samples)


DESK_ACCOUNTS = 10
DESK = f"{DESK_ACCOUNTS} x {WORKING_POSITIONS:,} + {DESK_ACCOUNTS * WORKING_POSITIONS:,} orders"


def build_desk(accounts: int, per_account: int) -> tuple[RiskEngine, RiskEngine]:
    """(the checked account's engine, the firm's), as a risk worker of `accounts` holds them.

    Every account holds `per_account` positions, each with a resting buy and
    sell; the firm's engine holds all of them. The checked account is the last.
    """
    firm = RiskEngine(LIMITS, STARTING_EQUITY * accounts, T0)
    own = firm
    for a in range(accounts):
        own = RiskEngine(LIMITS, STARTING_EQUITY, T0)
        for i in range(per_account):
            exposure = PositionExposure(
                f"a{a}",
                f"S{i}",
                Decimal("1.5") if i % 2 else Decimal("-0.75"),
                Decimal("100.25"),
                T0,
                Decimal("0"),
                Decimal("0.5"),
                f"g{i % GROUPS}",
                Decimal("0.85"),
                working_buy_qty=Decimal("0.02"),
                working_buy_notional=Decimal("2.02"),
                working_sell_qty=Decimal("0.01"),
                working_sell_notional=Decimal("0.99"),
            )
            own.update_position(exposure, T0)
            firm.update_position(exposure, T0)
    return own, firm


def time_desks(desks: dict[str, tuple[RiskEngine, RiskEngine]]) -> dict[str, float]:
    """Median ns per order through the account's check and then the firm's."""
    samples: dict[str, list[float]] = {name: [] for name in desks}
    for r in range(REPEATS):
        orders = make_orders(CALLS, T0 + (r + 1) * 10 * NS)
        for name, (own, firm) in desks.items():
            own_check, firm_check = own.check_order, firm.check_order

            def both(req: OrderRequest, a: Any = own_check, f: Any = firm_check) -> bool:
                return bool(a(req).approved and f(req).approved)

            samples[name].append(_timed(both, orders))
    for own, firm in desks.values():
        order = make_orders(1, T0 + 100 * NS)[0]
        assert own.check_order(order).approved and firm.check_order(order).approved
    return {name: statistics.median(s) for name, s in samples.items()}


def _mark(i: int) -> Decimal:
    """The i-th mark of a walk a few cents around the positions' own."""
    return Decimal("100.25") + Decimal(i % 7).scaleb(-2)


def mark_exposures(engine: RiskEngine, count: int, base_ts: int) -> list[PositionExposure]:
    """Exposures of the first symbols' positions at marks one cent apart, each reusing
    its stored quantity and realized P&L objects."""
    out = []
    for i in range(count):
        held = engine.position("acct", f"S{i % ORDER_SYMBOLS}")
        assert held is not None
        mark = _mark(i)
        out.append(
            PositionExposure(
                account="acct",
                symbol=held.symbol,
                qty=held.qty,
                mark=mark,
                mark_ts_ns=base_ts + i * 1_000,
                realized_pnl=held.realized_pnl,
                unrealized_pnl=held.qty * (mark - Decimal("100")),
                group=held.group,
                correlation=held.correlation,
            )
        )
    return out


def time_position_marks(n: int) -> float:
    """Median ns per `update_position` carrying a new mark."""
    engine = build_engine(n)
    samples = []
    for r in range(REPEATS):
        exposures = mark_exposures(engine, CALLS, T0 + (r + 1) * NS)
        update = engine.update_position
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for exp in exposures:
                update(exp, exp.mark_ts_ns)  # type: ignore[arg-type]
            samples.append((time.perf_counter_ns() - start) / len(exposures))
        finally:
            gc.enable()
    return statistics.median(samples)


def time_market_marks(n: int) -> float:
    """Median ns per `update_mark` inside the band, with a read every 100 marks."""
    engine = build_engine(n)
    samples = []
    for r in range(REPEATS):
        base = T0 + (r + 1) * NS
        marks = [(f"S{i % ORDER_SYMBOLS}", _mark(i), base + i * 1_000) for i in range(CALLS)]
        update = engine.update_mark
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for i, (symbol, mark, ts) in enumerate(marks):
                update(symbol, mark, ts)
                if i % 100 == 99:
                    engine.metrics()
            samples.append((time.perf_counter_ns() - start) / len(marks))
        finally:
            gc.enable()
    return statistics.median(samples)


def main() -> None:
    global CALLS, REPEATS, SIZES  # `--quick` shrinks the run, once, here
    if "--quick" in sys.argv[1:]:
        CALLS, REPEATS, SIZES = 2_000, 3, (10, 1_000)
    print(f"risk pre-trade check, ns per call (median of {REPEATS} repeats)")
    engines: dict[int | str, RiskEngine] = {n: build_engine(n) for n in SIZES}
    engines[WORKING] = build_working_engine()
    engine_ns = time_engines(engines)
    print(f"{'positions':>10} {'engine':>12} {'naive loop':>14} {'naive/engine':>13}")
    for n in SIZES:
        naive = time_naive(engines[n], n)  # type: ignore[arg-type]
        print(f"{n:>10,} {engine_ns[n]:>12,.0f} {naive:>14,.0f} {naive / engine_ns[n]:>12.1f}x")
    ratio = engine_ns[SIZES[-1]] / engine_ns[SIZES[0]]
    verdict = "ok" if ratio < 1.2 else "ABOVE TARGET"
    print(
        f"engine ratio {SIZES[-1]:,} / {SIZES[0]:,} positions: {ratio:.3f}"
        f" (target < 1.2: {verdict})"
    )
    working = engine_ns[WORKING] / engine_ns[SIZES[0]]
    verdict = "ok" if working < 1.2 else "ABOVE TARGET"
    print(
        f"engine with working orders: {engine_ns[WORKING]:,.0f} ns; ratio {WORKING} working"
        f" / {SIZES[0]:,} positions without: {working:.3f} (target < 1.2: {verdict})"
    )
    small = f"1 x {SIZES[0]}"
    desk_ns = time_desks(
        {small: build_desk(1, SIZES[0]), DESK: build_desk(DESK_ACCOUNTS, WORKING_POSITIONS)}
    )
    ratio = desk_ns[DESK] / desk_ns[small]
    pair = desk_ns[small] / engine_ns[SIZES[0]]
    verdict = "ok" if ratio < 1.2 else "ABOVE TARGET"
    print(
        f"desk (account + firm check): {small} positions {desk_ns[small]:,.0f} ns, {DESK}"
        f" working {desk_ns[DESK]:,.0f} ns; ratio {ratio:.3f} (target < 1.2: {verdict});"
        f" the pair / one engine of {SIZES[0]} positions: {pair:.2f}"
    )
    print(f"marks, ns per mark (median of {REPEATS} repeats)")
    print(f"{'positions':>10} {'update_position':>16} {'update_mark':>12}")
    for n in SIZES:
        print(f"{n:>10,} {time_position_marks(n):>16,.0f} {time_market_marks(n):>12,.0f}")


if __name__ == "__main__":
    main()
