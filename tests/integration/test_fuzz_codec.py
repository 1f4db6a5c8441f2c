"""Structure-aware fuzzing of the codec: valid frames with one part replaced by something hostile.

tests/unit/test_codec.py pins each refusal by name; here hypothesis takes a
valid frame of every kind, unpacks it, replaces one envelope or body field
(or the whole body, or the kind and version) with a hostile value -- NaN,
infinities, negative and zero quantities and prices, huge ints, huge
strings and maps, floats, binary, nesting -- packs it again, cuts it or
flips bytes, and decodes. The invariant, for every input: `decode` raises
WireError, or it returns an envelope whose message re-encodes to a frame
that decodes to the same envelope, with every decimal finite and every
quantity and price positive. Nothing else may come out (no other exception,
no half-valid message).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posbus.actors.model.side import Side
from posbus.bus.codec import DEFAULT_MAX_SIZE, decode, encode
from posbus.bus.envelope import Envelope
from posbus.bus.messages import (
    Command,
    Liquidity,
    MarketUpdate,
    Message,
    OrderFill,
    OrderIntent,
    Reply,
    RiskEvent,
)
from posbus.bus.wire_error import WireError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TS = 1_764_000_000_000_000_000

SAMPLES: list[Message] = [
    MarketUpdate("BTC/USDT", Decimal("100.5"), Decimal("100.6"), Decimal("100.55"), None, None, TS),
    OrderIntent("acc", "BTC/USDT", Side.BUY, Decimal("0.1"), None, "i-1", False, "test", TS),
    OrderFill(
        order_id="acc:BTC/USDT:1",
        client_order_id="c-1",
        trade_id="t-1",
        account="acc",
        symbol="BTC/USDT",
        side=Side.SELL,
        qty=Decimal("0.25"),
        price=Decimal("64000.5"),
        fee=Decimal("-0.01"),
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
        ts_ns=TS,
    ),
    RiskEvent("limits", "Warning", "Normal", "drawdown", "acc", None, {"drawdown": "0.04"}, TS),
    Command("positions.order", {"symbol": "BTC/USDT", "qty": "1", "reduce_only": False}, "r-1"),
    Reply.success("r-1", {"order_id": "acc:BTC/USDT:1", "n": 3, "nested": {"a": ["x"]}}),
]
FRAMES = [encode(m, seq=7, sender="fuzz", ts_ns=TS) for m in SAMPLES]

HOSTILE_NUMBER_TEXTS = [
    "NaN",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "-1",
    "-0.0001",
    "0",
    "-0",
    "0E+3",
    "1e999999",
    "1E-999999",
    "0x1p3",
    "1_000",
    " 1",
    "\u0661",  # an Arabic-Indic digit: Decimal() accepts it, the wire must not
    "9" * 80,
]
hostile = st.one_of(
    st.sampled_from(HOSTILE_NUMBER_TEXTS),
    st.sampled_from([2**63 - 1, 2**64 - 1, -(2**63), -1, 0, 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([None, True, False, b"", b"\x00" * 16, "", "x" * 70_000]),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.lists(st.integers(-5, 5), max_size=4),
    st.just({f"k{i}": "v" for i in range(70_000)}),  # over the map cap
    st.just(list(range(70_000))),  # over the array cap
    st.recursive(
        st.integers(-(2**63), 2**64 - 1),
        lambda inner: st.lists(inner, min_size=1, max_size=2),
        max_leaves=40,
    ),
    st.dictionaries(st.text(max_size=5), st.integers(-5, 5), max_size=4),
)


def unpacked(frame: bytes) -> list[Any]:
    value = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    assert isinstance(value, list)
    return value


def packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def check_invariant(data: bytes) -> Envelope | None:
    """Decode `data`: WireError (None) or an envelope that is valid through and through."""
    try:
        envelope = decode(data)
    except WireError:
        return None
    message = envelope.message
    for name in message.__struct_fields__:
        value = getattr(message, name)
        if isinstance(value, Decimal):
            assert value.is_finite(), name
            if name in ("qty", "price", "bid", "ask", "last"):
                assert value > 0, name
    again = encode(message, seq=envelope.seq, sender=envelope.sender, ts_ns=envelope.ts_ns)
    assert decode(again) == envelope
    return envelope


@FUZZ
@given(index=st.integers(0, len(FRAMES) - 1), position=st.integers(0, 5), value=hostile)
def test_hostile_envelope_field_is_refused_or_decodes_to_a_valid_message(
    index: int, position: int, value: Any
) -> None:
    frame = unpacked(FRAMES[index])
    frame[position] = value
    check_invariant(packed(frame))


@FUZZ
@given(index=st.integers(0, len(FRAMES) - 1), data=st.data(), value=hostile)
def test_hostile_body_field_is_refused_or_decodes_to_a_valid_message(
    index: int, data: st.DataObject, value: Any
) -> None:
    frame = unpacked(FRAMES[index])
    body = frame[5]
    at = data.draw(st.integers(0, len(body) - 1))
    body[at] = value
    check_invariant(packed(frame))


@FUZZ
@given(index=st.integers(0, len(FRAMES) - 1), data=st.data())
def test_truncated_or_byte_flipped_frame_is_refused_or_valid(
    index: int, data: st.DataObject
) -> None:
    frame = bytearray(FRAMES[index])
    cut = data.draw(st.integers(0, len(frame)))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(frame) - 1), st.integers(0, 255)), max_size=4)
    )
    for at, byte in flips:
        frame[at] = byte
    check_invariant(bytes(frame[:cut]) if data.draw(st.booleans()) else bytes(frame))


@FUZZ
@given(data=st.binary(max_size=256))
def test_random_bytes_are_refused_with_wire_error_only(data: bytes) -> None:
    check_invariant(data)


@pytest.mark.parametrize("index", range(len(FRAMES)))
@pytest.mark.parametrize("version", [0, 2, 99, -1, 2**63])
def test_unknown_schema_version_is_refused(index: int, version: int) -> None:
    frame = unpacked(FRAMES[index])
    frame[1] = version
    with pytest.raises(WireError):
        decode(packed(frame))


@pytest.mark.parametrize("kind", ["", "market", "MARKET_UPDATE", "order_fill", "pickle", "x" * 64])
def test_unknown_kind_is_refused(kind: str) -> None:
    frame = unpacked(FRAMES[0])
    frame[0] = kind
    with pytest.raises(WireError):
        decode(packed(frame))


@pytest.mark.parametrize("text", HOSTILE_NUMBER_TEXTS)
@pytest.mark.parametrize("field", ["qty", "price"])
def test_fill_with_a_hostile_quantity_or_price_is_refused(text: str, field: str) -> None:
    frame = unpacked(FRAMES[2])
    names = list(OrderFill.__struct_fields__)
    # The body of an execution_signal starts with its signal type.
    frame[5][1 + names.index(field)] = text
    with pytest.raises(WireError):
        decode(packed(frame))


def test_frame_one_byte_over_the_limit_is_refused_before_unpacking() -> None:
    big = Reply.success("r", {"blob": "x" * 1000})
    frame = encode(big, seq=1, sender="s", ts_ns=TS)
    padded = frame[:-1] + b""  # any frame: decode must refuse it on size first
    with pytest.raises(WireError, match="max_size"):
        decode(padded + b"\x00" * (DEFAULT_MAX_SIZE + 1 - len(padded)))
