"""Properties of position accounting over random fill sequences.

Fills have a few decimal places, random sides, random fees (zero, positive and
rebates); some steps close the position exactly so flat and re-open paths are
common, and small quantities make flips common. Reference values are computed
here, independently, in a context that traps any rounding, and compared with
== (no tolerance).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, Inexact, localcontext
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model.fill import Fill
from posbus.actors.model.position import AVG_PRICE_DIGITS, FillEffect, Position, PositionStatus
from posbus.actors.model.side import Side

D = Decimal
SETTINGS = settings(max_examples=200, deadline=None)


@contextmanager
def exact() -> Iterator[None]:
    """Reference arithmetic: wide enough for these inputs, and any rounding raises."""
    with localcontext() as ctx:
        ctx.prec = 500
        ctx.traps[Inexact] = True
        yield


def _scaled(units: int, places: int) -> Decimal:
    return D(units).scaleb(-places)


_qty = st.builds(_scaled, st.integers(1, 5_000), st.integers(0, 3))
_price = st.builds(_scaled, st.integers(1, 10_000_000), st.integers(0, 4))
_fee = st.one_of(st.just(D(0)), st.builds(_scaled, st.integers(-500, 5_000), st.integers(0, 8)))
# A step is a random fill, or ("flat", price, fee): close whatever is open exactly.
_step = st.one_of(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), _qty, _price, _fee),
    st.tuples(st.just("flat"), _price, _fee),
)
_steps = st.lists(_step, min_size=1, max_size=30)
_mark = st.builds(_scaled, st.integers(1, 10_000_000), st.integers(0, 4))


def build_fills(steps: Sequence[tuple[Any, ...]]) -> list[Fill]:
    """Turn steps into fills with unique trade ids, tracking the open quantity independently."""
    fills: list[Fill] = []
    open_qty = D(0)
    for i, step in enumerate(steps):
        if step[0] == "flat":
            if open_qty == 0:
                continue
            _, price, fee = step
            side, qty = (Side.SELL, open_qty) if open_qty > 0 else (Side.BUY, -open_qty)
        else:
            side, qty, price, fee = step
        fills.append(Fill(f"t{i}", "acc", "SYM", side, qty, price, fee, "USDT", 1_000 + i))
        with exact():
            open_qty += qty if side is Side.BUY else -qty
    return fills


def replay(fills: Sequence[Fill]) -> tuple[Position, list[FillEffect]]:
    position = Position("acc", "SYM")
    effects = []
    for f in fills:
        effect = position.apply_fill_effect(f)
        assert effect is not None
        effects.append(effect)
    return position, effects


@SETTINGS
@given(_steps)
def test_quantity_equals_the_signed_sum_of_fills(steps: list[tuple[Any, ...]]) -> None:
    """qty == sum(+qty for buys, -qty for sells)."""
    fills = build_fills(steps)
    position, _ = replay(fills)

    with exact():
        expected = sum((f.qty if f.side is Side.BUY else -f.qty for f in fills), D(0))
    assert position.qty == expected


@SETTINGS
@given(_steps, _mark)
def test_realized_plus_unrealized_equals_cash_flows_plus_market_value_minus_fees(
    steps: list[tuple[Any, ...]], mark: Decimal
) -> None:
    """realized + unrealized(mark) == sum(-signed_qty * price) + qty * mark - sum(fees), exactly."""
    fills = build_fills(steps)
    position, _ = replay(fills)

    with exact():
        cash_flows = sum(
            (-(f.qty if f.side is Side.BUY else -f.qty) * f.price for f in fills), D(0)
        )
        fees = sum((f.fee for f in fills), D(0))
        expected = cash_flows + position.qty * mark - fees
        actual = position.realized_pnl + position.unrealized_pnl(mark)
    assert actual == expected


@SETTINGS
@given(_steps)
def test_replaying_the_same_fills_gives_the_same_snapshot(steps: list[tuple[Any, ...]]) -> None:
    """Two positions fed the same fills in the same order have equal to_dict()."""
    fills = build_fills(steps)

    assert replay(fills)[0].to_dict() == replay(fills)[0].to_dict()


@SETTINGS
@given(_steps, st.lists(st.integers(0, 10_000), max_size=10))
def test_duplicate_trade_ids_change_nothing(
    steps: list[tuple[Any, ...]], repeats: list[int]
) -> None:
    """Re-applying applied fills anywhere in the stream returns False and changes nothing."""
    fills = build_fills(steps)
    clean, _ = replay(fills)

    position = Position("acc", "SYM")
    for i, f in enumerate(fills):
        assert position.apply_fill(f)
        for r in repeats:
            # a redelivery of some fill already applied (index r mod applied count)
            assert not position.apply_fill(fills[r % (i + 1)])

    assert position.to_dict() == clean.to_dict()


@SETTINGS
@given(_steps, st.integers(0, 30))
def test_snapshot_round_trip_is_exact_and_resumes_identically(
    steps: list[tuple[Any, ...]], cut: int
) -> None:
    """from_dict(to_dict()) (through JSON) equals the original, and replaying on from it matches."""
    fills = build_fills(steps)
    cut = min(cut, len(fills))
    head, _ = replay(fills[:cut])

    restored = Position.from_dict(json.loads(json.dumps(head.to_dict())))
    assert restored.to_dict() == head.to_dict()

    for f in fills:  # the head's fills are duplicates to the restored position
        restored.apply_fill(f)
    assert restored.to_dict() == replay(fills)[0].to_dict()


@SETTINGS
@given(_steps)
def test_every_fee_is_split_exactly_and_subtracted_from_realized(
    steps: list[tuple[Any, ...]],
) -> None:
    """Per fill closing + opening share == fee; realized == sum(gross + rounding) - sum(fees)."""
    fills = build_fills(steps)
    position, effects = replay(fills)

    with exact():
        for f, e in zip(fills, effects, strict=True):
            assert e.fee_closing + e.fee_opening == f.fee
            if e.flipped:
                # the closing share has at most 8 decimal places
                assert e.fee_closing == e.fee_closing.quantize(D("1E-8"))
        fees = sum((f.fee for f in fills), D(0))
        gross = sum((e.realized_gross + e.avg_rounding for e in effects), D(0))
        assert position.fees == fees
        assert position.fees_closing + position.fees_opening == fees
        assert position.realized_pnl == gross - fees


@SETTINGS
@given(_steps)
def test_reducing_fills_keep_the_average_and_realize_against_it(
    steps: list[tuple[Any, ...]],
) -> None:
    """A fill that only reduces leaves avg unchanged; every close realizes closed*(px-avg)*sign."""
    fills = build_fills(steps)
    _, effects = replay(fills)

    with exact():
        for e in effects:
            if e.closed_qty:
                sign = 1 if e.qty_before > 0 else -1
                assert e.realized_gross == sign * e.closed_qty * (e.price - e.avg_entry_before)
            if e.opened_qty == 0 and e.qty_after != 0:
                assert e.avg_entry_after == e.avg_entry_before


@SETTINGS
@given(_steps)
def test_average_rounding_is_below_half_a_unit_in_the_38th_digit_times_qty(
    steps: list[tuple[Any, ...]],
) -> None:
    """|avg_rounding| <= |qty_after| * 0.5 * 10**(adjusted(avg) - 37), and 0 unless growing."""
    fills = build_fills(steps)
    _, effects = replay(fills)

    with exact():
        for e in effects:
            if e.avg_rounding:
                assert e.closed_qty == 0
                half_ulp = D(5).scaleb(e.avg_entry_after.adjusted() - AVG_PRICE_DIGITS)
                assert abs(e.avg_rounding) <= abs(e.qty_after) * half_ulp


@SETTINGS
@given(_steps)
def test_flat_exactly_when_no_average_no_entry_time_and_closed(
    steps: list[tuple[Any, ...]],
) -> None:
    """Without lifecycle calls: qty == 0 <=> avg == 0 <=> entry_ts is None <=> status Closed."""
    fills = build_fills(steps)
    position = Position("acc", "SYM")
    for f in fills:
        position.apply_fill(f)
        flat = position.qty == 0
        assert (position.avg_entry_price == 0) is flat
        assert (position.entry_ts_ns is None) is flat
        assert position.status is (PositionStatus.CLOSED if flat else PositionStatus.OPEN)
        assert (position.cost_basis == 0) is flat
