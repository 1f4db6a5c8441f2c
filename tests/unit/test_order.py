"""The order state machine: every (state, event) pair, the races, exact fill arithmetic."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model.errors import InvalidState, OrderValidationError
from posbus.actors.model.fill import Fill
from posbus.actors.model.order import (
    TERMINAL_STATES,
    TRANSITIONS,
    Order,
    OrderEvent,
    OrderStatus,
    Transition,
)
from posbus.actors.model.side import Side

S = OrderStatus
E = OrderEvent

T0 = 1_700_000_000_000_000_000
TS = T0 + 999

# The specification, written independently of the module's TRANSITIONS: the
# state after each event, NO where the event is an invalid transition.
# Guards (first ack only, reject only while nothing is filled, completing fill
# ends in Filled) are pinned by the named tests below.
COLUMNS = (E.SUBMIT, E.ACK, E.FILL, E.CANCEL_REQUEST, E.CANCEL_ACK, E.REJECT, E.EXPIRE, E.ERROR)
P, AF, AC, PF, F = S.PENDING, S.AWAITING_FILL, S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED
CR, C, R, X, ER = S.CANCEL_REQUESTED, S.CANCELLED, S.REJECTED, S.EXPIRED, S.ERROR
NO = None
SPEC: dict[OrderStatus, tuple[OrderStatus | None, ...]] = {
    #     submit  ack  fill  cancel_request  cancel_ack  reject  expire  error
    P:   (AF,     NO,  NO,   C,              NO,         R,      NO,     ER),
    AF:  (NO,     AC,  PF,   CR,             C,          R,      X,      ER),
    AC:  (NO,     NO,  PF,   CR,             C,          R,      X,      ER),
    PF:  (NO,     PF,  PF,   CR,             C,          NO,     X,      ER),
    CR:  (NO,     CR,  CR,   NO,             C,          R,      X,      ER),
    F:   (NO,     F,   NO,   NO,             NO,         NO,     NO,     NO),
    C:   (NO,     C,   NO,   NO,             NO,         NO,     NO,     NO),
    R:   (NO,     NO,  NO,   NO,             NO,         NO,     NO,     NO),
    X:   (NO,     X,   NO,   NO,             NO,         NO,     NO,     NO),
    ER:  (NO,     NO,  ER,   NO,             NO,         NO,     NO,     NO),
}  # fmt: skip


def make_order(qty: str = "1.0", side: Side = Side.BUY) -> Order:
    return Order(
        order_id="o-1",
        client_order_id="c-1",
        account="acc",
        symbol="BTC/USDT",
        side=side,
        qty=Decimal(qty),
        limit_price=Decimal("100"),
        created_ts_ns=T0,
    )


def make_fill(
    trade_id: str,
    qty: str,
    price: str = "100",
    *,
    fee: str = "0.01",
    fee_currency: str = "USDT",
    symbol: str = "BTC/USDT",
    account: str = "acc",
    side: Side = Side.BUY,
    ts_ns: int = TS,
) -> Fill:
    return Fill(
        trade_id=trade_id,
        account=account,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        price=Decimal(price),
        fee=Decimal(fee),
        fee_currency=fee_currency,
        ts_ns=ts_ns,
        order_id="o-1",
    )


# How to reach each state on a 1.0 order without an ack where the state still
# takes one, and without fills where a reject is still possible, so that every
# pair of the SPEC is reachable.
PATHS: dict[OrderStatus, Callable[[Order], object]] = {
    S.PENDING: lambda o: None,
    S.AWAITING_FILL: lambda o: o.submit(T0 + 1),
    S.ACCEPTED: lambda o: (o.submit(T0 + 1), o.ack(T0 + 2, "x-1")),
    S.PARTIALLY_FILLED: lambda o: (o.submit(T0 + 1), o.apply_fill(make_fill("t-a", "0.4"))),
    S.FILLED: lambda o: (o.submit(T0 + 1), o.apply_fill(make_fill("t-a", "1.0"))),
    S.CANCEL_REQUESTED: lambda o: (o.submit(T0 + 1), o.request_cancel(T0 + 2)),
    S.CANCELLED: lambda o: (o.submit(T0 + 1), o.request_cancel(T0 + 2), o.cancelled(T0 + 3)),
    S.REJECTED: lambda o: (o.submit(T0 + 1), o.reject("post-only would take", T0 + 2)),
    S.EXPIRED: lambda o: (o.submit(T0 + 1), o.expire(T0 + 2)),
    S.ERROR: lambda o: (o.submit(T0 + 1), o.error("timeout, outcome unknown", T0 + 2)),
}

# One call per event; the fill is a fresh partial one (0.25 of 1.0).
EVENTS: dict[OrderEvent, Callable[[Order], Transition | None]] = {
    E.SUBMIT: lambda o: o.submit(TS),
    E.ACK: lambda o: o.ack(TS, "x-1"),
    E.FILL: lambda o: o.apply_fill(make_fill("t-probe", "0.25")),
    E.CANCEL_REQUEST: lambda o: o.request_cancel(TS),
    E.CANCEL_ACK: lambda o: o.cancelled(TS),
    E.REJECT: lambda o: o.reject("refused", TS),
    E.EXPIRE: lambda o: o.expire(TS),
    E.ERROR: lambda o: o.error("lost", TS),
}


def order_in(state: OrderStatus) -> Order:
    order = make_order()
    PATHS[state](order)
    assert order.status is state
    return order


def assert_rejected_unchanged(
    order: Order, call: Callable[[Order], object], error: type[Exception] = InvalidState
) -> pytest.ExceptionInfo[Exception]:
    before = order.to_dict()
    with pytest.raises(error) as info:
        call(order)
    assert order.to_dict() == before
    return info


# -- the table ------------------------------------------------------------------


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)))
def test_every_state_and_event_follows_the_specification(
    state: OrderStatus, event: OrderEvent
) -> None:
    order = order_in(state)
    expected = SPEC[state][COLUMNS.index(event)]
    if expected is None:
        info = assert_rejected_unchanged(order, EVENTS[event])
        assert isinstance(info.value, InvalidState)
        assert (info.value.current, info.value.requested) == (state.value, event.value)
        assert (info.value.order_id, info.value.symbol, info.value.ts_ns) == ("o-1", "BTC/USDT", TS)
    else:
        transition = EVENTS[event](order)
        assert transition == Transition("o-1", event, state, expected, TS)
        assert order.status is expected
        assert order.last_ts_ns == TS


def test_module_table_matches_the_specification() -> None:
    spec = {
        (state, event): target
        for state, row in SPEC.items()
        for event, target in zip(COLUMNS, row, strict=True)
        if target is not None
    }
    assert dict(TRANSITIONS) == spec


def test_no_transition_leaves_a_terminal_state() -> None:
    assert {F, C, R, X, ER} == TERMINAL_STATES
    for (state, _event), target in TRANSITIONS.items():
        if state in TERMINAL_STATES:
            assert target is state


# -- named edge cases ----------------------------------------------------------


def test_fill_after_cancel_is_rejected() -> None:
    order = order_in(S.CANCELLED)
    info = assert_rejected_unchanged(order, lambda o: o.apply_fill(make_fill("t-late", "0.1")))
    assert isinstance(info.value, InvalidState)
    assert info.value.current == "Cancelled"
    assert info.value.requested == "fill"


@pytest.mark.parametrize("state", [S.REJECTED, S.EXPIRED, S.FILLED])
def test_fill_after_other_terminal_states_is_rejected(state: OrderStatus) -> None:
    assert_rejected_unchanged(order_in(state), lambda o: o.apply_fill(make_fill("t-new", "0.1")))


def test_same_trade_id_applied_twice_counts_once() -> None:
    order = order_in(S.ACCEPTED)
    first = order.apply_fill(make_fill("t-1", "0.3"))
    before = order.to_dict()
    again = order.apply_fill(make_fill("t-1", "0.3"))
    assert first is not None
    assert again is None
    assert order.to_dict() == before
    assert order.filled_qty == Decimal("0.3")


def test_replayed_fill_of_a_filled_order_is_a_no_op() -> None:
    order = order_in(S.FILLED)
    before = order.to_dict()
    assert order.apply_fill(make_fill("t-a", "1.0")) is None
    assert order.to_dict() == before


def test_fill_larger_than_the_order_is_rejected() -> None:
    order = order_in(S.ACCEPTED)
    info = assert_rejected_unchanged(
        order, lambda o: o.apply_fill(make_fill("t-big", "1.5")), OrderValidationError
    )
    assert isinstance(info.value, OrderValidationError)
    assert (info.value.order_id, info.value.symbol, info.value.ts_ns) == ("o-1", "BTC/USDT", TS)


def test_fill_larger_than_the_remaining_quantity_is_rejected() -> None:
    order = order_in(S.ACCEPTED)
    order.apply_fill(make_fill("t-1", "0.7"))
    # 0.7 + 0.31 = 1.01 > 1.0
    assert_rejected_unchanged(
        order, lambda o: o.apply_fill(make_fill("t-2", "0.31")), OrderValidationError
    )
    assert order.status is S.PARTIALLY_FILLED


def test_cancel_request_after_full_fill_is_rejected() -> None:
    order = order_in(S.ACCEPTED)
    order.apply_fill(make_fill("t-1", "1.0"))
    info = assert_rejected_unchanged(order, lambda o: o.request_cancel(TS))
    assert isinstance(info.value, InvalidState)
    assert info.value.current == "Filled"


def test_fill_while_cancel_requested_completes_the_order() -> None:
    order = order_in(S.ACCEPTED)
    order.apply_fill(make_fill("t-1", "0.4"))
    order.request_cancel(T0 + 5)
    transition = order.apply_fill(make_fill("t-2", "0.6"))
    assert transition == Transition("o-1", E.FILL, S.CANCEL_REQUESTED, S.FILLED, TS)
    assert order.filled_qty == Decimal("1.0")
    # the cancel ack that trails the fill cannot reopen the order
    assert_rejected_unchanged(order, lambda o: o.cancelled(TS + 1))


def test_partial_fill_while_cancel_requested_keeps_waiting_for_the_cancel() -> None:
    order = order_in(S.CANCEL_REQUESTED)
    assert order.apply_fill(make_fill("t-1", "0.4")) == Transition(
        "o-1", E.FILL, S.CANCEL_REQUESTED, S.CANCEL_REQUESTED, TS
    )
    order.cancelled(TS + 1)
    assert order.status is S.CANCELLED
    assert order.filled_qty == Decimal("0.4")


def test_reject_after_ack_is_allowed_while_nothing_is_filled() -> None:
    order = order_in(S.ACCEPTED)
    transition = order.reject("post-only order would take liquidity", TS)
    assert transition == Transition("o-1", E.REJECT, S.ACCEPTED, S.REJECTED, TS)
    assert order.reason == "post-only order would take liquidity"


def test_reject_after_partial_fill_is_rejected() -> None:
    order = order_in(S.PARTIALLY_FILLED)
    assert_rejected_unchanged(order, lambda o: o.reject("late reject", TS))


def test_reject_of_a_partially_filled_order_with_cancel_pending_is_rejected() -> None:
    # the table allows reject from CancelRequested; the guard refuses it once traded
    order = order_in(S.PARTIALLY_FILLED)
    order.request_cancel(T0 + 5)
    info = assert_rejected_unchanged(order, lambda o: o.reject("late reject", TS))
    assert isinstance(info.value, InvalidState)
    assert (info.value.current, info.value.requested) == ("CancelRequested", "reject")


def test_fill_before_ack_then_late_ack_keeps_the_fill_state() -> None:
    order = order_in(S.AWAITING_FILL)
    order.apply_fill(make_fill("t-1", "0.4"))
    assert order.status is S.PARTIALLY_FILLED
    transition = order.ack(TS + 1, exchange_order_id="x-77")
    assert transition == Transition("o-1", E.ACK, S.PARTIALLY_FILLED, S.PARTIALLY_FILLED, TS + 1)
    assert order.acked
    assert order.exchange_order_id == "x-77"
    assert order.filled_qty == Decimal("0.4")


def test_late_ack_of_an_order_filled_before_its_ack_keeps_it_filled() -> None:
    order = order_in(S.FILLED)
    assert order.ack(TS, "x-9") == Transition("o-1", E.ACK, S.FILLED, S.FILLED, TS)
    assert order.exchange_order_id == "x-9"


def test_late_ack_of_an_order_cancelled_before_its_ack_keeps_it_cancelled() -> None:
    order = order_in(S.CANCELLED)
    assert order.ack(TS, "x-9").after is S.CANCELLED


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(lambda o: None, id="Accepted"),
        pytest.param(lambda o: o.apply_fill(make_fill("t-1", "0.4")), id="PartiallyFilled"),
        pytest.param(lambda o: o.request_cancel(T0 + 5), id="CancelRequested"),
        pytest.param(lambda o: o.apply_fill(make_fill("t-1", "1.0")), id="Filled"),
        pytest.param(lambda o: (o.request_cancel(T0 + 5), o.cancelled(T0 + 6)), id="Cancelled"),
        pytest.param(lambda o: o.expire(T0 + 5), id="Expired"),
    ],
)
def test_second_ack_is_rejected(path: Callable[[Order], object]) -> None:
    order = order_in(S.ACCEPTED)
    path(order)
    info = assert_rejected_unchanged(order, lambda o: o.ack(TS, "x-2"))
    assert isinstance(info.value, InvalidState)
    assert info.value.requested == "ack"
    assert order.exchange_order_id == "x-1"


def test_expire_of_a_partially_filled_order_keeps_its_fills() -> None:
    order = order_in(S.ACCEPTED)
    order.apply_fill(make_fill("t-1", "0.4", "100"))
    assert order.expire(TS) == Transition("o-1", E.EXPIRE, S.PARTIALLY_FILLED, S.EXPIRED, TS)
    assert order.filled_qty == Decimal("0.4")
    assert order.remaining_qty == Decimal("0.6")
    assert order.avg_fill_price == Decimal("100")


def test_submit_twice_is_rejected() -> None:
    order = order_in(S.AWAITING_FILL)
    info = assert_rejected_unchanged(order, lambda o: o.submit(TS))
    assert isinstance(info.value, InvalidState)
    assert (info.value.current, info.value.requested) == ("AwaitingFill", "submit")


@pytest.mark.parametrize("state", [s for s in S if s not in TERMINAL_STATES])
def test_error_from_any_non_terminal_state(state: OrderStatus) -> None:
    order = order_in(state)
    assert order.error("exchange says unknown order", TS) == Transition(
        "o-1", E.ERROR, state, S.ERROR, TS
    )
    assert order.reason == "exchange says unknown order"
    assert order.is_terminal


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
@pytest.mark.parametrize("event", [e for e in E if e not in (E.ACK, E.FILL)])
def test_events_from_terminal_states_raise(state: OrderStatus, event: OrderEvent) -> None:
    info = assert_rejected_unchanged(order_in(state), EVENTS[event])
    assert isinstance(info.value, InvalidState)
    assert info.value.current == state.value


def test_error_keeps_its_first_reason() -> None:
    order = order_in(S.ERROR)
    assert_rejected_unchanged(order, lambda o: o.error("second", TS))
    assert order.reason == "timeout, outcome unknown"


def test_error_state_still_records_fills_without_leaving_error() -> None:
    order = order_in(S.ERROR)
    order.apply_fill(make_fill("t-1", "0.4", "100"))
    transition = order.apply_fill(make_fill("t-2", "0.6", "110"))
    # completing the quantity would mean Filled anywhere else
    assert transition == Transition("o-1", E.FILL, S.ERROR, S.ERROR, TS)
    assert order.filled_qty == Decimal("1.0")
    # 0.4 * 100 + 0.6 * 110 = 40 + 66 = 106
    assert order.notional == Decimal("106")


def test_cancel_of_an_unsent_order_is_immediate() -> None:
    order = order_in(S.PENDING)
    assert order.request_cancel(TS) == Transition(
        "o-1", E.CANCEL_REQUEST, S.PENDING, S.CANCELLED, TS
    )


def test_unsolicited_cancel_of_a_partially_filled_order_ends_it() -> None:
    # an IOC remainder is cancelled by the exchange without a request
    order = order_in(S.ACCEPTED)
    order.apply_fill(make_fill("t-1", "0.4"))
    assert order.cancelled(TS).after is S.CANCELLED
    assert order.filled_qty == Decimal("0.4")


@pytest.mark.parametrize(
    ("field", "fill"),
    [
        ("symbol", make_fill("t-1", "0.1", symbol="ETH/USDT")),
        ("account", make_fill("t-1", "0.1", account="other")),
        ("side", make_fill("t-1", "0.1", side=Side.SELL)),
    ],
)
def test_fill_for_another_symbol_account_or_side_is_rejected(field: str, fill: Fill) -> None:
    order = order_in(S.ACCEPTED)
    info = assert_rejected_unchanged(order, lambda o: o.apply_fill(fill), OrderValidationError)
    assert field in str(info.value)
    assert isinstance(info.value, OrderValidationError)
    assert info.value.order_id == "o-1"
    assert info.value.state == "Accepted"


# -- fill arithmetic -----------------------------------------------------------


def test_average_fill_price_over_partial_fills_is_exact() -> None:
    order = order_in(S.ACCEPTED)
    order.apply_fill(make_fill("t-1", "0.5", "100.10"))
    order.apply_fill(make_fill("t-2", "0.3", "100.20"))
    order.apply_fill(make_fill("t-3", "0.2", "100.45"))
    # 0.5 * 100.10 + 0.3 * 100.20 + 0.2 * 100.45 = 50.050 + 30.060 + 20.090 = 100.200
    assert order.notional == Decimal("100.200")
    # 100.200 / 1.0 = 100.2
    assert order.avg_fill_price == Decimal("100.2")
    assert order.status is S.FILLED


def test_average_fill_price_that_does_not_terminate_is_rounded_to_28_digits() -> None:
    order = make_order(qty="3")
    order.submit(T0 + 1)
    order.apply_fill(make_fill("t-1", "1", "10"))
    order.apply_fill(make_fill("t-2", "2", "11"))
    # notional 1 * 10 + 2 * 11 = 32 stays exact; 32 / 3 = 10.666... to 28 digits
    assert order.notional == Decimal("32")
    assert order.avg_fill_price == Decimal("10.66666666666666666666666667")


def test_average_fill_price_is_none_before_any_fill() -> None:
    assert order_in(S.ACCEPTED).avg_fill_price is None


def test_quantities_beyond_28_digits_add_exactly() -> None:
    # the default decimal context would round 1 + 1E-30 to 1 and leave the order open
    order = make_order(qty="1.000000000000000000000000000001")
    order.submit(T0 + 1)
    order.apply_fill(make_fill("t-1", "1"))
    order.apply_fill(make_fill("t-2", "0.000000000000000000000000000001"))
    assert order.filled_qty == Decimal("1.000000000000000000000000000001")
    assert order.status is S.FILLED


def test_fees_are_summed_per_currency() -> None:
    order = order_in(S.ACCEPTED)
    order.apply_fill(make_fill("t-1", "0.2", fee="0.05", fee_currency="USDT"))
    order.apply_fill(make_fill("t-2", "0.2", fee="0.001", fee_currency="BNB"))
    order.apply_fill(make_fill("t-3", "0.2", fee="-0.02", fee_currency="USDT"))
    # USDT: 0.05 + (-0.02) = 0.03 (a maker rebate); BNB: 0.001
    assert dict(order.fees) == {"USDT": Decimal("0.03"), "BNB": Decimal("0.001")}
    assert order.trade_ids == {"t-1", "t-2", "t-3"}


# -- construction ----------------------------------------------------------------


@pytest.mark.parametrize("qty", [Decimal(0), Decimal("-1"), Decimal("NaN"), Decimal("Infinity")])
def test_non_positive_or_non_finite_quantity_is_rejected(qty: Decimal) -> None:
    with pytest.raises(OrderValidationError) as info:
        Order(
            order_id="o-1",
            client_order_id="c-1",
            account="acc",
            symbol="BTC/USDT",
            side=Side.BUY,
            qty=qty,
            limit_price=None,
            created_ts_ns=T0,
        )
    assert info.value.order_id == "o-1"


@pytest.mark.parametrize("limit_price", [Decimal(0), Decimal("-5"), 100.0])
def test_non_positive_or_float_limit_price_is_rejected(limit_price: Decimal) -> None:
    with pytest.raises(OrderValidationError):
        Order(
            order_id="o-1",
            client_order_id="c-1",
            account="acc",
            symbol="BTC/USDT",
            side=Side.SELL,
            qty=Decimal(1),
            limit_price=limit_price,
            created_ts_ns=T0,
        )


def test_float_quantity_is_rejected() -> None:
    with pytest.raises(OrderValidationError):
        Order(
            order_id="o-1",
            client_order_id="c-1",
            account="acc",
            symbol="BTC/USDT",
            side=Side.BUY,
            qty=0.1,  # type: ignore[arg-type]
            limit_price=None,
            created_ts_ns=T0,
        )


# -- snapshots -------------------------------------------------------------------


@pytest.mark.parametrize("state", list(S))
def test_snapshot_round_trip_is_exact_in_every_state(state: OrderStatus) -> None:
    order = order_in(state)
    restored = Order.from_dict(order.to_dict())
    assert restored.to_dict() == order.to_dict()
    assert restored.status is state


def test_snapshot_round_trip_keeps_fills_fees_and_behaviour() -> None:
    order = order_in(S.AWAITING_FILL)
    order.apply_fill(make_fill("t-1", "0.10", "100.10", fee="0.0100", fee_currency="USDT"))
    order.apply_fill(make_fill("t-2", "0.20", "100.25", fee="0.0002", fee_currency="BNB"))
    snapshot = order.to_dict()
    assert snapshot["filled_qty"] == "0.30"
    # 0.10 * 100.10 + 0.20 * 100.25 = 10.0100 + 20.0500 = 30.0600
    assert snapshot["notional"] == "30.0600"
    assert snapshot["fees"] == {"BNB": "0.0002", "USDT": "0.0100"}
    restored = Order.from_dict(snapshot)
    assert restored.filled_qty == Decimal("0.30")
    assert restored.filled_qty.as_tuple() == Decimal("0.30").as_tuple()
    assert restored.trade_ids == {"t-1", "t-2"}
    # the restored order still knows it was never acked, and which trades it has
    assert restored.ack(TS, "x-5").after is S.PARTIALLY_FILLED
    assert restored.apply_fill(make_fill("t-1", "0.10")) is None


def test_market_order_snapshot_keeps_no_limit_price() -> None:
    order = Order(
        order_id="o-2",
        client_order_id="c-2",
        account="acc",
        symbol="ETH/USDT",
        side=Side.SELL,
        qty=Decimal("2"),
        limit_price=None,
        created_ts_ns=T0,
    )
    assert Order.from_dict(order.to_dict()).limit_price is None


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda d: d.update(schema=2), id="unknown-schema"),
        pytest.param(lambda d: d.update(status="Open"), id="unknown-status"),
        pytest.param(lambda d: d.update(qty="abc"), id="bad-decimal"),
        pytest.param(lambda d: d.update(filled_qty=0.4), id="float-instead-of-string"),
        pytest.param(lambda d: d.update(filled_qty="2.0"), id="filled-more-than-qty"),
        pytest.param(lambda d: d.update(last_ts_ns="1"), id="string-timestamp"),
        pytest.param(lambda d: d.pop("trade_ids"), id="missing-field"),
        pytest.param(lambda d: d.update(qty="0"), id="zero-quantity"),
    ],
)
def test_malformed_snapshot_is_rejected(corrupt: Callable[[dict[str, object]], object]) -> None:
    snapshot = order_in(S.PARTIALLY_FILLED).to_dict()
    corrupt(snapshot)
    with pytest.raises(OrderValidationError):
        Order.from_dict(snapshot)


# -- property --------------------------------------------------------------------

_fill_ops = st.tuples(
    st.just("fill"),
    st.sampled_from(["t-0", "t-1", "t-2", "t-3", "t-4"]),
    st.sampled_from(["0.1", "0.25", "0.5", "1.0", "1.5"]),
    st.sampled_from(["BTC/USDT", "BTC/USDT", "BTC/USDT", "ETH/USDT"]),
)
_other_ops = st.tuples(st.sampled_from([e for e in E if e is not E.FILL]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_fill_ops, _other_ops), max_size=25))
def test_filled_qty_is_bounded_and_terminal_states_are_never_left(
    ops: list[tuple[object, ...]],
) -> None:
    """For any event sequence: filled qty <= qty and equals the sum of the distinct
    fills applied, rejected events change nothing, and a terminal state is never left."""
    order = make_order(qty="1.0")
    applied: dict[str, Decimal] = {}
    for step, op in enumerate(ops):
        before = order.to_dict()
        was_terminal = order.is_terminal
        try:
            if op[0] == "fill":
                _, trade_id, qty, symbol = op
                assert isinstance(trade_id, str)
                fill = make_fill(trade_id, str(qty), symbol=str(symbol), ts_ns=T0 + step)
                result = order.apply_fill(fill)
                if result is None:
                    assert trade_id in applied
                else:
                    applied[trade_id] = fill.qty
            else:
                event = op[0]
                assert isinstance(event, OrderEvent)
                EVENTS[event](order)
        except (InvalidState, OrderValidationError):
            assert order.to_dict() == before
        assert order.filled_qty <= order.qty
        assert order.filled_qty == sum(applied.values(), Decimal(0))
        if was_terminal:
            assert order.status.value == before["status"]
        if order.status is S.FILLED:
            assert order.filled_qty == order.qty
