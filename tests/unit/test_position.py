"""Position accounting against hand-computed baselines, and the position lifecycle table."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal

import pytest

from posbus.actors.model.errors import InvalidState, OrderValidationError
from posbus.actors.model.fill import Fill
from posbus.actors.model.position import (
    Position,
    PositionEvent,
    PositionStatus,
    PositionTransition,
    split_fee,
)
from posbus.actors.model.side import Side

D = Decimal
_ids = itertools.count(1)


def fill(
    side: str,
    qty: str,
    price: str,
    fee: str = "0",
    *,
    ts_ns: int | None = None,
    trade_id: str | None = None,
    account: str = "acc",
    symbol: str = "BTC-USDT",
) -> Fill:
    n = next(_ids)
    return Fill(
        trade_id=trade_id if trade_id is not None else f"t{n}",
        account=account,
        symbol=symbol,
        side=Side(side),
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency="USDT",
        ts_ns=ts_ns if ts_ns is not None else n,
        order_id=f"o{n}",
    )


def position_with(*fills: Fill) -> Position:
    position = Position("acc", "BTC-USDT")
    for f in fills:
        assert position.apply_fill(f)
    return position


# -- opening and adding ------------------------------------------------------------


def test_first_buy_opens_a_long_at_the_fill_price_and_books_its_fee() -> None:
    position = position_with(fill("buy", "2", "100", "0.2", ts_ns=1_000))

    assert position.qty == D("2")
    assert position.avg_entry_price == D("100")
    # the opening fee is realized at once: 0 - 0.2
    assert position.realized_pnl == D("-0.2")
    assert position.fees == D("0.2")
    assert position.fees_opening == D("0.2")
    assert position.fees_closing == D("0")
    assert position.entry_ts_ns == 1_000
    assert position.status is PositionStatus.OPEN


def test_adding_to_a_long_weights_the_average_entry_by_quantity() -> None:
    position = position_with(
        fill("buy", "1", "100", ts_ns=1),
        fill("buy", "3", "104", ts_ns=2),
    )

    # (1 * 100 + 3 * 104) / 4 = 412 / 4 = 103
    assert position.avg_entry_price == D("103")
    assert position.qty == D("4")
    assert position.cost_basis == D("412")
    # adding does not move the entry time of the open position
    assert position.entry_ts_ns == 1
    assert position.realized_pnl == D("0")


def test_adding_to_a_short_weights_the_average_entry_by_quantity() -> None:
    position = position_with(fill("sell", "2", "50"), fill("sell", "2", "54"))

    # (2 * 50 + 2 * 54) / 4 = 208 / 4 = 52; cost basis is signed: -4 * 52 = -208
    assert position.qty == D("-4")
    assert position.avg_entry_price == D("52")
    assert position.cost_basis == D("-208")


def test_non_terminating_average_is_rounded_to_38_digits_and_the_difference_realized() -> None:
    position = position_with(fill("buy", "1", "100"), fill("buy", "2", "101"))

    # exact average (100 + 202) / 3 = 100.666..., rounded half-even to 38 significant digits
    rounded = D("100.66666666666666666666666666666666667")
    assert position.avg_entry_price == rounded
    # the cost basis is exactly qty * avg = 302.00000000000000000000000000000000001, 1E-35 above
    # the true cost 302, so unrealized is 1E-35 too low and realized books +1E-35 to match
    assert position.cost_basis == D("302.00000000000000000000000000000000001")
    assert position.realized_pnl == D("1E-35")


def test_cash_flow_identity_holds_exactly_through_a_rounded_average_and_a_flip() -> None:
    position = position_with(
        fill("buy", "1", "100"),
        fill("buy", "2", "101"),
        fill("sell", "1", "110", "0.1"),
        fill("sell", "5", "90", "0.3"),
    )

    # avg 100.66666666666666666666666666666666667, booked rounding +1E-35
    # sell 1: 1 * (110 - avg) = 9.33333333333333333333333333333333333
    # flip: 2 * (90 - avg) = -21.33333333333333333333333333333333334; fee 0.12 + 0.18
    # realized = 1E-35 + 9.33...333 - 21.33...334 - 0.1 - 0.3 = -12.4
    assert position.realized_pnl == D("-12.4")
    assert (position.qty, position.avg_entry_price) == (D("-3"), D("90"))
    assert position.fees_closing == D("0.22")
    # cash flows -100 - 202 + 110 + 450 = 258; 258 + (-3 * 90) - 0.4 = -12.4, unrealized 0
    assert position.realized_pnl + position.unrealized_pnl(D("90")) == D("-12.4")
    # at mark 80: 258 - 240 - 0.4 = 17.6
    assert position.realized_pnl + position.unrealized_pnl(D("80")) == D("17.6")


# -- reducing and closing ------------------------------------------------------------


def test_partial_close_of_a_long_realizes_against_the_average_and_keeps_it() -> None:
    position = position_with(
        fill("buy", "1", "100", "0.1"),
        fill("buy", "3", "104", "0.3"),
        fill("sell", "1", "110", "0.11"),
    )

    # avg 103 (see above); closed 1 * (110 - 103) = 7; fees 0.1 + 0.3 + 0.11 = 0.51
    # realized = 7 - 0.51 = 6.49
    assert position.realized_pnl == D("6.49")
    assert position.avg_entry_price == D("103")
    assert position.qty == D("3")
    assert position.fees == D("0.51")
    assert position.fees_closing == D("0.11")
    assert position.fees_opening == D("0.4")


def test_partial_cover_of_a_short_realizes_avg_minus_price() -> None:
    position = position_with(
        fill("sell", "2", "50"),
        fill("sell", "2", "54"),
        fill("buy", "1", "49", "0.05"),
    )

    # avg 52; closed 1 * (52 - 49) = 3; realized = 3 - 0.05 = 2.95
    assert position.realized_pnl == D("2.95")
    assert position.qty == D("-3")
    assert position.avg_entry_price == D("52")


def test_full_close_flattens_and_clears_average_and_entry_time() -> None:
    position = position_with(
        fill("buy", "0.5", "60000", "1.5", ts_ns=10),
        fill("sell", "0.5", "61000", "1.525", ts_ns=20),
    )

    # 0.5 * (61000 - 60000) = 500; fees 1.5 + 1.525 = 3.025; realized = 496.975
    assert position.realized_pnl == D("496.975")
    assert position.qty == D("0")
    assert position.avg_entry_price == D("0")
    assert position.cost_basis == D("0")
    assert position.entry_ts_ns is None
    assert position.status is PositionStatus.CLOSED


def test_long_closed_below_entry_realizes_a_loss() -> None:
    position = position_with(fill("buy", "1", "200", "0.2"), fill("sell", "1", "150", "0.15"))

    # 1 * (150 - 200) = -50; fees 0.35; realized = -50.35
    assert position.realized_pnl == D("-50.35")


def test_short_covered_above_entry_realizes_a_loss() -> None:
    position = position_with(fill("sell", "3", "10"), fill("buy", "3", "12", "0.036"))

    # 3 * (10 - 12) = -6; fee 0.036; realized = -6.036
    assert position.realized_pnl == D("-6.036")
    assert position.qty == D("0")


def test_maker_rebate_is_a_negative_fee_that_raises_realized() -> None:
    position = position_with(fill("buy", "1", "100", "-0.01"), fill("sell", "1", "101", "-0.0101"))

    # 1 * (101 - 100) = 1; fees -0.01 + -0.0101 = -0.0201; realized = 1 + 0.0201 = 1.0201
    assert position.realized_pnl == D("1.0201")
    assert position.fees == D("-0.0201")


def test_realized_pnl_accumulates_through_flat_and_reopen() -> None:
    position = position_with(
        fill("buy", "1", "100"),
        fill("sell", "1", "110"),  # +10, flat
        fill("sell", "2", "120", ts_ns=99),  # re-open short at 120
        fill("buy", "2", "115"),  # 2 * (120 - 115) = +10, flat
        fill("buy", "1", "90", "0.09", ts_ns=500),  # re-open long
    )

    # 10 + 10 - 0.09 = 19.91
    assert position.realized_pnl == D("19.91")
    assert position.qty == D("1")
    assert position.avg_entry_price == D("90")
    assert position.entry_ts_ns == 500


# -- flips ---------------------------------------------------------------------------


def test_flip_long_to_short_closes_the_long_and_opens_the_rest_at_the_fill_price() -> None:
    position = position_with(fill("buy", "1", "100", ts_ns=1))
    effect = position.apply_fill_effect(fill("sell", "3", "110", "0.1", ts_ns=2))

    assert effect is not None
    assert effect.flipped
    assert (effect.closed_qty, effect.opened_qty) == (D("1"), D("2"))
    # closing share 0.1 * 1 / 3 = 0.0333... -> 0.03333333; opening 0.1 - 0.03333333 = 0.06666667
    assert effect.fee_closing == D("0.03333333")
    assert effect.fee_opening == D("0.06666667")
    # closed 1 * (110 - 100) = 10; both shares subtracted: 10 - 0.1 = 9.9
    assert effect.realized_gross == D("10")
    assert position.realized_pnl == D("9.9")
    assert position.qty == D("-2")
    assert position.avg_entry_price == D("110")
    assert position.entry_ts_ns == 2
    assert position.fees_closing == D("0.03333333")
    assert position.fees_opening == D("0.06666667")
    assert position.fees_closing + position.fees_opening == position.fees == D("0.1")


def test_flip_short_to_long_splits_the_fee_by_quantity() -> None:
    position = position_with(fill("sell", "2", "50", "0.1"))
    effect = position.apply_fill_effect(fill("buy", "5", "45", "0.7"))

    assert effect is not None
    # closing share 0.7 * 2 / 5 = 0.28 (exact); opening 0.7 - 0.28 = 0.42
    assert (effect.fee_closing, effect.fee_opening) == (D("0.28"), D("0.42"))
    # closed 2 * (50 - 45) = 10; realized = 10 - 0.1 - 0.7 = 9.2
    assert position.realized_pnl == D("9.2")
    assert position.qty == D("3")
    assert position.avg_entry_price == D("45")


@pytest.mark.parametrize(
    ("fee", "closing", "opening"),
    [
        # 0.00000003 * 1 / 2 = 0.000000015: a tie, half-even goes to ...02 (HALF_UP would too)
        ("0.00000003", "0.00000002", "0.00000001"),
        # 0.00000001 * 1 / 2 = 0.000000005: a tie, half-even goes to ...00 (HALF_UP: ...01)
        ("0.00000001", "0.00000000", "0.00000001"),
        # -0.00000001 * 1 / 2 = -0.000000005: a tie, half-even goes to -0 (HALF_UP: -...01)
        ("-0.00000001", "0", "-0.00000001"),
    ],
)
def test_flip_fee_split_rounds_the_closing_share_half_even_to_8_places(
    fee: str, closing: str, opening: str
) -> None:
    assert split_fee(D(fee), D("1"), D("2")) == (D(closing), D(opening))

    position = position_with(fill("buy", "1", "100"))
    effect = position.apply_fill_effect(fill("sell", "2", "100", fee))

    assert effect is not None
    assert (effect.fee_closing, effect.fee_opening) == (D(closing), D(opening))


def test_fee_split_rounds_the_exact_quotient_once() -> None:
    # 1 * 1 / 3 = 0.333333333... -> 0.33333333; the remainder 0.66666667 keeps the sum exact
    assert split_fee(D("1"), D("1"), D("3")) == (D("0.33333333"), D("0.66666667"))


# -- marks ---------------------------------------------------------------------------


def test_unrealized_pnl_of_a_long_is_qty_times_mark_minus_average_fees_excluded() -> None:
    position = position_with(fill("buy", "1", "100", "0.5"), fill("buy", "3", "104", "1"))

    # 4 * (101 - 103) = -8; fees are not in unrealized
    assert position.unrealized_pnl(D("101")) == D("-8")
    # 4 * 101 = 404
    assert position.value(D("101")) == D("404")


def test_unrealized_pnl_of_a_short_gains_when_the_mark_falls() -> None:
    position = position_with(fill("sell", "2", "50"), fill("sell", "2", "54"))

    # -4 * (55 - 52) = -12; -4 * (48 - 52) = 16
    assert position.unrealized_pnl(D("55")) == D("-12")
    assert position.unrealized_pnl(D("48")) == D("16")
    # signed market value -4 * 48 = -192
    assert position.value(D("48")) == D("-192")


def test_flat_position_has_zero_unrealized_and_value() -> None:
    position = position_with(fill("buy", "1", "100"), fill("sell", "1", "120"))

    assert position.unrealized_pnl(D("500")) == D("0")
    assert position.value(D("500")) == D("0")


@pytest.mark.parametrize("mark", [D("0"), D("-1"), D("NaN"), D("Infinity")])
def test_a_mark_that_is_not_a_positive_finite_price_is_rejected(mark: Decimal) -> None:
    position = position_with(fill("buy", "1", "100"))

    with pytest.raises(ValueError, match="mark"):
        position.unrealized_pnl(mark)
    with pytest.raises(ValueError, match="mark"):
        position.value(mark)


# -- idempotency and validation ----------------------------------------------------------


def test_a_fill_with_an_applied_trade_id_is_ignored() -> None:
    position = position_with(fill("buy", "1", "100", "0.1", trade_id="x1"))
    before = position.to_dict()

    again = fill("buy", "5", "90", "9", trade_id="x1")

    assert position.apply_fill(again) is False
    assert position.apply_fill_effect(again) is None
    assert position.to_dict() == before


@pytest.mark.parametrize(
    ("account", "symbol"), [("other", "BTC-USDT"), ("acc", "ETH-USDT")], ids=["account", "symbol"]
)
def test_a_fill_for_another_account_or_symbol_is_rejected_without_change(
    account: str, symbol: str
) -> None:
    position = position_with(fill("buy", "1", "100"))
    before = position.to_dict()

    with pytest.raises(OrderValidationError) as excinfo:
        position.apply_fill(fill("buy", "1", "100", account=account, symbol=symbol, ts_ns=77))

    assert excinfo.value.symbol == "BTC-USDT"
    assert excinfo.value.ts_ns == 77
    assert position.to_dict() == before


# -- snapshots -------------------------------------------------------------------------


def test_snapshot_holds_decimals_as_strings_and_sorted_trade_ids() -> None:
    position = position_with(
        fill("buy", "1", "100", "0.1", trade_id="b", ts_ns=5),
        fill("buy", "1", "102", trade_id="a", ts_ns=6),
    )

    assert position.to_dict() == {
        "schema": 1,
        "account": "acc",
        "symbol": "BTC-USDT",
        "qty": "2",
        # (100 + 102) / 2
        "avg_entry_price": "101",
        "realized_pnl": "-0.1",
        "fees": "0.1",
        "fees_closing": "0",
        "fees_opening": "0.1",
        "entry_ts_ns": 5,
        "status": "Open",
        "error_reason": None,
        "close_requested_ts_ns": None,
        "trade_ids": ["a", "b"],
    }


def test_snapshot_round_trip_restores_books_lifecycle_and_dedup() -> None:
    position = position_with(fill("sell", "3", "10.5", "0.01", trade_id="s1"))
    position.request_close(ts_ns=42)

    restored = Position.from_dict(position.to_dict())

    assert restored.to_dict() == position.to_dict()
    assert restored.status is PositionStatus.CLOSING
    assert restored.close_requested_ts_ns == 42
    assert restored.apply_fill(fill("sell", "3", "10.5", "0.01", trade_id="s1")) is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema", 2),
        ("qty", 3),
        ("qty", "NaN"),
        ("fees_closing", "1"),  # closing + opening would no longer equal fees
        ("entry_ts_ns", None),  # an open position without an entry time
        ("status", "Closed"),  # a closed position holding quantity
        ("status", "Sideways"),
    ],
)
def test_a_malformed_snapshot_is_rejected(field: str, value: object) -> None:
    data = position_with(fill("buy", "1", "100")).to_dict()
    data[field] = value

    with pytest.raises(OrderValidationError, match="malformed position snapshot"):
        Position.from_dict(data)


# -- lifecycle -----------------------------------------------------------------------------

S = PositionStatus
E = PositionEvent

# Written out from the specification, independently of position.TRANSITIONS.
EXPECTED: dict[tuple[PositionStatus, PositionEvent], PositionStatus] = {
    (S.CLOSED, E.INTENT): S.PENDING,
    (S.PENDING, E.SUBMITTED): S.AWAITING_FILL,
    (S.PENDING, E.INTENT_CANCELLED): S.CLOSED,
    (S.AWAITING_FILL, E.INTENT_CANCELLED): S.CLOSED,
    (S.OPEN, E.CLOSE_REQUESTED): S.CLOSING,
    (S.CLOSING, E.CLOSE_CANCELLED): S.OPEN,
    (S.PENDING, E.ERROR): S.ERROR,
    (S.AWAITING_FILL, E.ERROR): S.ERROR,
    (S.OPEN, E.ERROR): S.ERROR,
    (S.CLOSING, E.ERROR): S.ERROR,
    (S.CLOSED, E.ERROR): S.ERROR,
}


def position_in(status: PositionStatus) -> Position:
    """A position driven into `status` through the public methods only."""
    position = Position("acc", "BTC-USDT")
    if status is S.PENDING:
        position.on_intent()
    elif status is S.AWAITING_FILL:
        position.on_intent()
        position.on_submitted()
    elif status is S.OPEN:
        position.apply_fill(fill("buy", "1", "100"))
    elif status is S.CLOSING:
        position.apply_fill(fill("buy", "1", "100"))
        position.request_close(ts_ns=1)
    elif status is S.ERROR:
        position.error("reconciliation mismatch")
    assert position.status is status
    return position


CALLS: dict[PositionEvent, Callable[[Position], object]] = {
    E.INTENT: lambda p: p.on_intent(ts_ns=9),
    E.SUBMITTED: lambda p: p.on_submitted(ts_ns=9),
    E.INTENT_CANCELLED: lambda p: p.cancel_intent(ts_ns=9),
    E.CLOSE_REQUESTED: lambda p: p.request_close(ts_ns=9),
    E.CLOSE_CANCELLED: lambda p: p.cancel_close(ts_ns=9),
    E.ERROR: lambda p: p.error("boom", ts_ns=9),
}


def test_a_fresh_position_is_closed_and_flat() -> None:
    position = Position("acc", "BTC-USDT")

    assert position.status is S.CLOSED
    assert position.qty == D("0")
    assert position.entry_ts_ns is None


@pytest.mark.parametrize(("status", "event"), list(itertools.product(S, E)))
def test_lifecycle_event_follows_the_transition_table(
    status: PositionStatus, event: PositionEvent
) -> None:
    position = position_in(status)
    before = position.to_dict()

    if (status, event) in EXPECTED:
        transition = CALLS[event](position)
        assert position.status is EXPECTED[(status, event)]
        assert transition == PositionTransition(
            "acc", "BTC-USDT", event, status, EXPECTED[(status, event)], 9
        )
    else:
        with pytest.raises(InvalidState) as excinfo:
            CALLS[event](position)
        assert (excinfo.value.current, excinfo.value.requested) == (status.value, event.value)
        assert excinfo.value.symbol == "BTC-USDT"
        assert position.to_dict() == before


@pytest.mark.parametrize("status", [S.CLOSED, S.PENDING, S.AWAITING_FILL])
def test_closing_a_flat_position_raises_invalid_state(status: PositionStatus) -> None:
    position = position_in(status)

    with pytest.raises(InvalidState):
        position.request_close(ts_ns=5)

    assert position.status is status
    assert position.close_requested_ts_ns is None


@pytest.mark.parametrize("status", [S.CLOSED, S.PENDING, S.AWAITING_FILL])
def test_a_fill_on_a_flat_position_opens_it(status: PositionStatus) -> None:
    position = position_in(status)

    position.apply_fill(fill("sell", "1", "100", ts_ns=33))

    assert position.status is S.OPEN
    assert position.entry_ts_ns == 33


def test_a_reducing_fill_that_flattens_an_open_position_closes_it_without_a_request() -> None:
    position = position_in(S.OPEN)

    position.apply_fill(fill("sell", "1", "101"))

    assert position.status is S.CLOSED


def test_a_partial_fill_keeps_closing_and_the_final_one_closes() -> None:
    position = position_with(fill("buy", "2", "100"))
    position.request_close(ts_ns=7)

    position.apply_fill(fill("sell", "1", "101"))
    assert position.status is S.CLOSING
    assert position.close_requested_ts_ns == 7

    position.apply_fill(fill("sell", "1", "101"))
    assert position.status is S.CLOSED
    assert position.close_requested_ts_ns is None


def test_a_close_that_overshoots_into_a_flip_leaves_an_open_position() -> None:
    position = position_in(S.CLOSING)

    position.apply_fill(fill("sell", "3", "100", ts_ns=50))

    # nobody asked to close the new short of 2
    assert position.status is S.OPEN
    assert position.qty == D("-2")
    assert position.close_requested_ts_ns is None


def test_an_adding_fill_while_closing_keeps_closing() -> None:
    position = position_in(S.CLOSING)

    position.apply_fill(fill("buy", "1", "100"))

    assert position.status is S.CLOSING
    assert position.qty == D("2")


def test_a_closed_position_reopens_through_a_new_intent() -> None:
    position = position_with(fill("buy", "1", "100"), fill("sell", "1", "100"))

    position.on_intent()
    position.on_submitted()
    position.apply_fill(fill("buy", "1", "100"))

    assert position.status is S.OPEN


def test_fills_in_error_update_the_books_but_keep_the_error() -> None:
    position = position_in(S.OPEN)
    position.error("exchange reports a different quantity", ts_ns=3)

    position.apply_fill(fill("sell", "1", "120"))

    # 1 * (120 - 100) = 20
    assert position.realized_pnl == D("20")
    assert position.qty == D("0")
    assert position.status is S.ERROR
    assert position.error_reason == "exchange reports a different quantity"


def test_a_second_error_is_refused_and_keeps_the_first_reason() -> None:
    position = position_in(S.ERROR)

    with pytest.raises(InvalidState):
        position.error("second")

    assert position.error_reason == "reconciliation mismatch"
