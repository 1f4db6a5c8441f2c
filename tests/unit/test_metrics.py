"""Backtest metrics and round-trip trades against values worked out by hand."""

from __future__ import annotations

import functools
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model import metrics
from posbus.actors.model.fill import Fill
from posbus.actors.model.position import LEDGER, Position
from posbus.actors.model.round_trip import RoundTrip, RoundTripLedger
from posbus.actors.model.side import Side

D = Decimal
NS = 1_000_000_000


def trip(pnl: str) -> RoundTrip:
    return RoundTrip("A", "BTC/USDT", Side.BUY, 0, 1, D(1), D(1), D(1), D(pnl), D(0))


def fill(n: int, side: Side, qty: str, price: str, fee: str = "0", ts: int = 0) -> Fill:
    return Fill(
        trade_id=f"t{n}",
        account="A",
        symbol="BTC/USDT",
        side=side,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency="USDT",
        ts_ns=ts or n,
        order_id=f"o{n}",
    )


# -- period returns --------------------------------------------------------------------


def test_period_closes_take_the_last_sample_at_or_before_each_boundary() -> None:
    samples = [(5, D(100)), (9, D(101)), (12, D(102)), (20, D(150)), (25, D(103)), (31, D(104))]
    # period 10: closes at 10 (last <= 10: 101), 20 (sample at 20 counts: 150),
    # 30 (last <= 30: 103); then start 100 first and end 104 last.
    assert metrics.period_closes(samples, 10) == [D(100), D(101), D(150), D(103), D(104)]


def test_period_closes_repeat_the_equity_over_a_gap_in_the_data() -> None:
    samples = [(1, D(100)), (2, D(110)), (35, D(120))]
    # closes at 10, 20, 30 all see 110 (nothing happened in between).
    assert metrics.period_closes(samples, 10) == [D(100), D(110), D(110), D(110), D(120)]


def test_a_run_shorter_than_a_period_has_one_return_from_start_to_end() -> None:
    closes = metrics.period_closes([(1, D(100)), (5, D(102))], 86_400 * NS)
    assert closes == [D(100), D(102)]
    assert metrics.returns(closes) == [0.02]


def test_returns_are_simple_returns_between_consecutive_closes() -> None:
    # 100 -> 125 (+25 %) -> 125 (0) -> 187.5 (+50 %)
    assert metrics.returns([D(100), D(125), D(125), D("187.5")]) == [0.25, 0.0, 0.5]


# -- Sharpe and Sortino --------------------------------------------------------------------


def test_sharpe_is_mean_over_sample_stdev_times_sqrt_periods() -> None:
    # returns 0.25, 0, 0.5: mean 0.25; deviations 0, -0.25, 0.25;
    # variance (0 + 0.0625 + 0.0625) / (3 - 1) = 0.0625, stdev 0.25;
    # 0.25 / 0.25 * sqrt(4) = 2
    assert metrics.sharpe([0.25, 0.0, 0.5], 4) == 2.0
    # the default annualisation: x sqrt(252)
    assert metrics.sharpe([0.25, 0.0, 0.5], 252) == pytest.approx(math.sqrt(252))


def test_sortino_divides_by_the_downside_deviation() -> None:
    # returns 0.5, -0.5, 0.5, 0.5: mean 0.25;
    # downside deviation sqrt((0 + 0.25 + 0 + 0) / (4 - 1)) = sqrt(1/12);
    # 0.25 / sqrt(1/12) = sqrt(0.75); x sqrt(4) = sqrt(3)
    assert metrics.sortino([0.5, -0.5, 0.5, 0.5], 4) == pytest.approx(math.sqrt(3), rel=1e-12)
    # Sharpe of the same: stdev ddof 1 = sqrt((3 * 0.0625 + 0.5625) / 3) = 0.5;
    # 0.25 / 0.5 * 2 = 1
    assert metrics.sharpe([0.5, -0.5, 0.5, 0.5], 4) == pytest.approx(1.0, rel=1e-12)


def test_flat_equity_has_a_sharpe_and_sortino_of_zero() -> None:
    flat = metrics.returns(metrics.period_closes([(0, D(100)), (15, D(100)), (25, D(100))], 10))
    assert flat == [0.0, 0.0, 0.0]
    assert metrics.sharpe(flat, 252) == 0.0
    assert metrics.sortino(flat, 252) == 0.0


def test_a_constant_nonzero_return_has_no_sharpe_and_no_sortino() -> None:
    # 100 -> 200 -> 400: returns 1, 1; stdev 0 with mean 1: undefined, not infinite.
    doubling = metrics.returns([D(100), D(200), D(400)])
    assert metrics.sharpe(doubling, 252) is None
    assert metrics.sortino(doubling, 252) is None


def test_ratios_need_at_least_two_returns() -> None:
    assert metrics.sharpe([0.1], 252) is None
    assert metrics.sortino([0.1], 252) is None
    assert metrics.sharpe([], 252) is None


# -- drawdown, total return, win rate, exposure ------------------------------------------


def test_max_drawdown_is_the_worst_fall_from_the_running_peak() -> None:
    # peaks 100, 120, 130: falls 90/120 - 1 = -0.25 and 104/130 - 1 = -0.2
    assert metrics.max_drawdown([D(100), D(120), D(90), D(130), D(104)]) == D("-0.25")


def test_max_drawdown_is_zero_when_equity_never_falls() -> None:
    assert metrics.max_drawdown([D(100), D(100), D(101)]) == 0
    assert metrics.max_drawdown([]) == 0


def test_total_return_is_last_over_first_minus_one() -> None:
    assert metrics.total_return([D(100), D(80), D(104)]) == D("0.04")
    assert metrics.total_return([D(100)]) == 0


def test_a_zero_pnl_trade_is_not_a_win_but_counts_in_the_denominator() -> None:
    # wins: 10 and 3; the 0 and the -5 are not: 2 / 4
    assert metrics.win_rate([trip("10"), trip("-5"), trip("0"), trip("3")]) == 0.5
    assert metrics.win_rate([trip("0")]) == 0.0
    assert metrics.win_rate([]) is None


def test_exposure_time_is_the_open_fraction_of_the_run() -> None:
    # open 10..20 and 30..50 of 0..100: 30 / 100
    assert metrics.exposure_time([(10, 20), (30, 50)], 0, 100) == 0.3
    # clipped to the run: 80..100 of 50..100 -> 20 / 50
    assert metrics.exposure_time([(80, 200)], 50, 100) == 0.4
    assert metrics.exposure_time([(0, 10)], 5, 5) == 0.0


# -- round trips ------------------------------------------------------------------------


def test_a_long_round_trip_books_price_pnl_minus_both_fees() -> None:
    ledger = RoundTripLedger()
    assert ledger.apply(fill(1, Side.BUY, "2", "100", "0.2", ts=10)) == []
    (done,) = ledger.apply(fill(2, Side.SELL, "2", "110", "0.22", ts=20))
    # 2 x (110 - 100) = 20; fees 0.2 + 0.22 = 0.42; P&L 19.58
    assert done.side is Side.BUY
    assert (done.entry_ts_ns, done.exit_ts_ns) == (10, 20)
    assert (done.entry_price, done.exit_price, done.qty) == (D(100), D(110), D(2))
    assert (done.pnl, done.fees) == (D("19.58"), D("0.42"))
    assert ledger.open_trips() == []


def test_a_flip_closes_one_trip_and_opens_the_next_with_the_fee_split_pro_rata() -> None:
    ledger = RoundTripLedger()
    ledger.apply(fill(1, Side.BUY, "1", "100", "1", ts=10))
    # sell 3 at 90: closes 1 (1 x (90 - 100) = -10), opens a short of 2;
    # fee 3 split 1/3 closing = 1, 2/3 opening = 2
    (closed,) = ledger.apply(fill(2, Side.SELL, "3", "90", "3", ts=20))
    assert (closed.pnl, closed.fees) == (D(-10) - D(1) - D(1), D(2))
    (short,) = ledger.open_trips()
    assert short.side is Side.SELL
    assert (short.entry_ts_ns, short.entry_price, short.qty) == (20, D(90), D(2))
    assert (short.pnl, short.fees) == (D(-2), D(2))
    (second,) = ledger.apply(fill(3, Side.BUY, "2", "80", "0", ts=30))
    # short 2 from 90 covered at 80: +20, opening fee 2: 18
    assert second.pnl == D(18)


def test_a_trip_scaled_in_and_out_reports_average_prices_and_total_qty() -> None:
    ledger = RoundTripLedger()
    ledger.apply(fill(1, Side.BUY, "1", "100"))
    ledger.apply(fill(2, Side.SELL, "0.5", "110"))
    ledger.apply(fill(3, Side.BUY, "0.5", "120"))
    (done,) = ledger.apply(fill(4, Side.SELL, "1", "130"))
    # entry: (1 x 100 + 0.5 x 120) / 1.5; exit: (0.5 x 110 + 1 x 130) / 1.5
    assert done.qty == D("1.5")
    assert done.entry_price == D(160) / D("1.5")
    assert done.exit_price == D(185) / D("1.5")
    # P&L as the position books it: 0.5 x (110 - 100) = 5; after adding 0.5 at 120
    # the average entry is 110; 1 x (130 - 110) = 20; total 25
    assert done.pnl == D(25)


def test_a_duplicate_fill_is_ignored() -> None:
    ledger = RoundTripLedger()
    ledger.apply(fill(1, Side.BUY, "1", "100"))
    assert ledger.apply(fill(1, Side.BUY, "1", "100")) == []
    assert ledger.qty("A", "BTC/USDT") == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(min_value=1, max_value=500),
            st.integers(min_value=9_000, max_value=11_000),
            st.integers(min_value=0, max_value=300),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_round_trip_pnls_always_add_up_to_the_positions_realized_pnl(
    steps: list[tuple[Side, int, int, int]],
) -> None:
    """Invariant: sum of closed and open trip P&L == realized P&L of the same fills, exactly."""
    ledger = RoundTripLedger()
    position = Position("A", "BTC/USDT")
    for n, (side, qty, price, fee) in enumerate(steps, start=1):
        f = fill(n, side, f"{qty}e-2", f"{price}e-2", f"{fee}e-4")
        ledger.apply(f)
        position.apply_fill(f)
    trips = ledger.closed + ledger.open_trips()
    # Summed in the ledger's exact context: the default 28 digits would round.
    assert functools.reduce(LEDGER.add, (t.pnl for t in trips), D(0)) == position.realized_pnl
    fees = functools.reduce(LEDGER.add, (t.fees for t in trips), D(0))
    assert fees == position.fees == ledger.fees()
