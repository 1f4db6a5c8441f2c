"""Properties of the wire codec.

Every valid message survives the wire exactly; hostile bytes only ever raise WireError.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from posbus.actors.model.side import Side
from posbus.bus.codec import WireError, decode, encode
from posbus.bus.constraints import MAX_DECIMAL_LEN, parse_decimal
from posbus.bus.envelope import Envelope
from posbus.bus.messages import (
    CancelRequest,
    Command,
    Liquidity,
    MarketUpdate,
    Message,
    OrderAck,
    OrderCancelled,
    OrderExpired,
    OrderFill,
    OrderIntent,
    OrderRejected,
    OrderSubmit,
    Reply,
    RiskEvent,
)
from posbus.bus.schema import wire_version

SETTINGS = settings(max_examples=200, deadline=None)

# -- strategies ----------------------------------------------------------------

uint63 = st.integers(min_value=0, max_value=2**63 - 1)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# Any Unicode but lone surrogates, which UTF-8 (and so msgpack) cannot carry.
ids = st.one_of(
    st.text(min_size=1, max_size=24),
    st.text(alphabet="ab", min_size=256, max_size=256),
)
texts = st.one_of(
    st.text(max_size=40), st.just(""), st.text(alphabet="x", min_size=4096, max_size=4096)
)
sides = st.sampled_from(Side)
liquidities = st.sampled_from(Liquidity)

# Decimals with every kind of exponent: 1.5, 1.50, 1E-7, 1E+3, 0E-8, whose
# plain form fits the wire's 64 characters.
_scaled = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(exponent),
    st.integers(min_value=0, max_value=10**25),
    st.integers(min_value=-30, max_value=20),
)
_fixed = st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=0, max_value=10**12)


def _fits(value: Decimal) -> bool:
    return len(format(value, "f")) <= MAX_DECIMAL_LEN


non_negative = st.one_of(_scaled, _fixed).filter(_fits)
positive = non_negative.filter(lambda value: value > 0)
any_sign = st.one_of(non_negative, non_negative.map(lambda value: -value), st.just(Decimal("-0")))
decimal_texts = any_sign.map(lambda value: format(value, "f"))


def market_updates() -> st.SearchStrategy[MarketUpdate]:
    @st.composite
    def build(draw: st.DrawFn) -> MarketUpdate:
        bid, ask = sorted([draw(positive), draw(positive)])
        return MarketUpdate(
            symbol=draw(ids),
            bid=bid,
            ask=ask,
            last=draw(st.none() | positive),
            bid_size=draw(st.none() | non_negative),
            ask_size=draw(st.none() | non_negative),
            ts_ns=draw(uint63),
        )

    return build()


intents = st.builds(
    OrderIntent,
    account=ids,
    symbol=ids,
    side=sides,
    qty=positive,
    limit_price=st.none() | positive,
    intent_id=ids,
    reduce_only=st.booleans(),
    reason=texts,
    ts_ns=uint63,
)
submits = st.builds(
    OrderSubmit,
    order_id=ids,
    client_order_id=ids,
    account=ids,
    symbol=ids,
    side=sides,
    qty=positive,
    limit_price=st.none() | positive,
    ts_ns=uint63,
)
acks = st.builds(OrderAck, order_id=ids, client_order_id=ids, exchange_order_id=ids, ts_ns=uint63)
fills = st.builds(
    OrderFill,
    order_id=ids,
    client_order_id=ids,
    trade_id=ids,
    account=ids,
    symbol=ids,
    side=sides,
    qty=positive,
    price=positive,
    fee=any_sign,
    fee_currency=ids,
    liquidity=liquidities,
    ts_ns=uint63,
    fee_mark=st.none() | positive,
)
cancel_requests = st.builds(CancelRequest, order_id=ids, ts_ns=uint63)
cancels = st.builds(OrderCancelled, order_id=ids, reason=texts, ts_ns=uint63)
rejects = st.builds(OrderRejected, order_id=ids, reason=texts, ts_ns=uint63)
expiries = st.builds(OrderExpired, order_id=ids, ts_ns=uint63)
risk_events = st.builds(
    RiskEvent,
    event=st.sampled_from(["state_change", "order_rejected", "limit_warning", "worker_down"]) | ids,
    state=st.sampled_from(["Normal", "Warning", "CoolDown", "Halted"]),
    previous_state=st.none() | st.sampled_from(["Normal", "Warning", "CoolDown", "Halted"]),
    reason=texts,
    account=st.none() | ids,
    symbol=st.none() | ids,
    values=st.dictionaries(ids, decimal_texts, max_size=6),
    ts_ns=uint63,
)
command_args = st.dictionaries(
    ids,
    st.one_of(st.none(), st.booleans(), int64, texts, st.lists(st.text(max_size=20), max_size=5)),
    max_size=6,
)
commands = st.builds(Command, name=ids, args=command_args, request_id=ids)


def _json(depth: int) -> st.SearchStrategy[Any]:
    """JSON-like values whose containers sit at `depth` (the result map is depth 1; max 8)."""
    scalars = st.one_of(st.none(), st.booleans(), int64, st.text(max_size=20))
    if depth > 8:
        return scalars
    inner = st.deferred(lambda: _json(depth + 1))
    return st.one_of(
        scalars,
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3),
    )


results = st.dictionaries(st.text(min_size=1, max_size=8), _json(2), max_size=4)
error_infos = st.fixed_dictionaries(
    {"type": ids, "message": st.text(max_size=60), "transient": st.booleans()}
)
replies = st.one_of(
    st.builds(Reply, request_id=ids, ok=st.just(True), result=results, error=st.none()),
    st.builds(Reply, request_id=ids, ok=st.just(False), result=results, error=error_infos),
)

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "market_update": market_updates(),
    "intent": intents,
    "submit": submits,
    "ack": acks,
    "fill": fills,
    "cancel_request": cancel_requests,
    "cancelled": cancels,
    "reject": rejects,
    "expired": expiries,
    "risk_event": risk_events,
    "command": commands,
    "reply": replies,
}
messages = st.one_of(*STRATEGIES.values())


def _assert_round_trip(message: Message, seq: int, sender: str, ts_ns: int) -> None:
    envelope = decode(encode(message, seq=seq, sender=sender, ts_ns=ts_ns))
    assert envelope == Envelope(message.KIND, wire_version(message), seq, ts_ns, sender, message)
    assert type(envelope.message) is type(message)


# -- round trips, one per kind and signal type ----------------------------------


@SETTINGS
@given(market_updates(), uint63, ids, uint63)
def test_market_update_round_trips_exactly(
    message: MarketUpdate, seq: int, sender: str, ts: int
) -> None:
    """decode(encode(m)) == m for every valid quote, with the envelope's seq, sender and ts_ns."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(intents, uint63, ids, uint63)
def test_intent_round_trips_exactly(message: OrderIntent, seq: int, sender: str, ts: int) -> None:
    """decode(encode(m)) == m for every valid intent signal."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(submits, uint63, ids, uint63)
def test_submit_round_trips_exactly(message: OrderSubmit, seq: int, sender: str, ts: int) -> None:
    """decode(encode(m)) == m for every valid submit signal."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(acks, uint63, ids, uint63)
def test_ack_round_trips_exactly(message: OrderAck, seq: int, sender: str, ts: int) -> None:
    """decode(encode(m)) == m for every valid ack signal."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(fills, uint63, ids, uint63)
def test_fill_round_trips_exactly(message: OrderFill, seq: int, sender: str, ts: int) -> None:
    """decode(encode(m)) == m for every valid fill signal, and its domain Fill is unchanged."""
    _assert_round_trip(message, seq, sender, ts)
    decoded = decode(encode(message, seq=seq, sender=sender, ts_ns=ts)).message
    assert isinstance(decoded, OrderFill)
    assert decoded.to_fill() == message.to_fill()


@SETTINGS
@given(cancel_requests, uint63, ids, uint63)
def test_cancel_request_round_trips_exactly(
    message: CancelRequest, seq: int, sender: str, ts: int
) -> None:
    """decode(encode(m)) == m for every valid cancel request."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(cancels, uint63, ids, uint63)
def test_cancelled_round_trips_exactly(
    message: OrderCancelled, seq: int, sender: str, ts: int
) -> None:
    """decode(encode(m)) == m for every valid cancelled signal."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(rejects, uint63, ids, uint63)
def test_reject_round_trips_exactly(message: OrderRejected, seq: int, sender: str, ts: int) -> None:
    """decode(encode(m)) == m for every valid reject signal."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(expiries, uint63, ids, uint63)
def test_expired_round_trips_exactly(message: OrderExpired, seq: int, sender: str, ts: int) -> None:
    """decode(encode(m)) == m for every valid expired signal."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(risk_events, uint63, ids, uint63)
def test_risk_event_round_trips_exactly(message: RiskEvent, seq: int, sender: str, ts: int) -> None:
    """decode(encode(m)) == m for every valid risk event."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(commands, uint63, ids, uint63)
def test_command_round_trips_exactly(message: Command, seq: int, sender: str, ts: int) -> None:
    """decode(encode(m)) == m for every valid command."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(replies, uint63, ids, uint63)
def test_reply_round_trips_exactly(message: Reply, seq: int, sender: str, ts: int) -> None:
    """decode(encode(m)) == m for every valid reply, success or failure."""
    _assert_round_trip(message, seq, sender, ts)


@SETTINGS
@given(messages, uint63)
def test_reencoding_a_decoded_frame_gives_the_same_bytes(message: Message, seq: int) -> None:
    """The wire form is canonical: decode then encode reproduces the frame byte for byte."""
    frame = encode(message, seq=seq, sender="s", ts_ns=1)
    assert encode(decode(frame).message, seq=seq, sender="s", ts_ns=1) == frame


@SETTINGS
@given(any_sign)
def test_decimal_value_and_exponent_survive_the_wire(value: Decimal) -> None:
    """A fee keeps its exact value and, unless its exponent is positive, its exact digits."""
    fill = OrderFill(
        "o", "c", "t", "a", "S", Side.BUY, Decimal(1), Decimal(1), value, "USDT", Liquidity.TAKER, 0
    )
    decoded = decode(encode(fill, seq=0, sender="s")).message
    assert isinstance(decoded, OrderFill)
    assert decoded.fee == value
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent <= 0:
        # Plain notation keeps every digit after the point: 1.50 stays 1.50.
        assert decoded.fee.as_tuple() == value.as_tuple()


# -- the decimal grammar ---------------------------------------------------------

_GRAMMAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=12),
        st.text(alphabet="0123456789.-+eE_ ", max_size=12),
        st.from_regex(_GRAMMAR, fullmatch=True),
        st.sampled_from(
            ["NaN", "-NaN", "sNaN", "Infinity", "-Inf", "1E-7", "0.0000001", "-0", "1_0"]
        ),
    )
)
def test_decimal_parser_accepts_exactly_the_documented_grammar(text: str) -> None:
    """parse_decimal (fast path included) accepts a text iff the documented pattern matches it."""
    expected = len(text) <= MAX_DECIMAL_LEN and _GRAMMAR.fullmatch(text) is not None
    try:
        value = parse_decimal(text, "x")
    except WireError:
        assert not expected
    else:
        assert expected
        assert value == Decimal(text)


# -- hostile bytes ---------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(messages, st.data())
def test_corrupted_frame_decodes_or_raises_wire_error(
    message: Message, data: st.DataObject
) -> None:
    """Flipping, dropping or inserting bytes in a valid frame raises nothing but WireError."""
    frame = bytearray(encode(message, seq=1, sender="s", ts_ns=1))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        position = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
        action = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip":
            frame[position] = data.draw(st.integers(min_value=0, max_value=255))
        elif action == "drop" and len(frame) > 1:
            del frame[position]
        else:
            frame.insert(position, data.draw(st.integers(min_value=0, max_value=255)))
    try:
        envelope = decode(bytes(frame))
    except WireError:
        return
    assert isinstance(envelope, Envelope)
