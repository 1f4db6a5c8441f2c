"""The wire codec: exact bytes, layout, and the refusal of every malformed frame with WireError."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import structs

from posbus.actors.model.errors import (
    ExchangeUnavailable,
    PosbusError,
    RiskViolation,
)
from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side
from posbus.bus.codec import DEFAULT_MAX_SIZE, Codec, WireError, decode, encode, kind_prefix
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

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"
TS = 1_700_000_000_000_000_000

EXAMPLE = MarketUpdate(
    symbol="BTC/USDT",
    bid=Decimal("50000.1"),
    ask=Decimal("50000.2"),
    last=Decimal("50000.15"),
    bid_size=Decimal("1.5"),
    ask_size=Decimal("2.25"),
    ts_ns=TS,
)

# One valid message of every class, every optional field set.
SAMPLES: list[Message] = [
    EXAMPLE,
    OrderIntent(
        account="acc-1",
        symbol="ETH/USDT",
        side=Side.BUY,
        qty=Decimal("2.5"),
        limit_price=Decimal("3000.25"),
        intent_id="int-7",
        reduce_only=False,
        reason="rebalance",
        ts_ns=TS,
    ),
    OrderSubmit(
        order_id="ord-1",
        client_order_id="cl-1",
        account="acc-1",
        symbol="ETH/USDT",
        side=Side.SELL,
        qty=Decimal("0.001"),
        limit_price=Decimal("3100"),
        ts_ns=TS + 1,
    ),
    OrderAck(order_id="ord-1", client_order_id="cl-1", exchange_order_id="ex-99", ts_ns=TS + 2),
    OrderFill(
        order_id="ord-1",
        client_order_id="cl-1",
        trade_id="t-1",
        account="acc-1",
        symbol="ETH/USDT",
        side=Side.SELL,
        qty=Decimal("0.0005"),
        price=Decimal("3100.5"),
        fee=Decimal("-0.0001"),
        fee_currency="USDT",
        liquidity=Liquidity.MAKER,
        ts_ns=TS + 3,
    ),
    CancelRequest(order_id="ord-1", ts_ns=TS + 4),
    OrderCancelled(order_id="ord-1", reason="user", ts_ns=TS + 5),
    OrderRejected(order_id="ord-2", reason="insufficient margin", ts_ns=TS + 6),
    OrderExpired(order_id="ord-3", ts_ns=TS + 7),
    RiskEvent(
        event="state_change",
        state="CoolDown",
        previous_state="Warning",
        reason="daily loss limit",
        account="acc-1",
        symbol="ETH/USDT",
        values={"daily_pnl": "-1250.50", "limit": "1000"},
        ts_ns=TS + 8,
    ),
    Command(
        name="halt",
        args={
            "account": "acc-1",
            "minutes": 30,
            "force": True,
            "note": None,
            "symbols": ["A", "B"],
        },
        request_id="req-1",
    ),
    Reply(
        request_id="req-1",
        ok=True,
        result={"halted": True, "actors": [{"name": "pos-1", "mailbox": 0}], "pnl": "-1.5"},
        error=None,
    ),
    Reply(
        request_id="req-2",
        ok=False,
        result={},
        error={"type": "RiskViolation", "message": "risk limit: halted", "transient": False},
    ),
]


def _id(message: Message) -> str:
    return getattr(message, "SIGNAL", message.KIND)


def _frame(message: Message, *, seq: int = 5) -> bytes:
    return encode(message, seq=seq, sender="worker-1", ts_ns=TS)


def _raw(message: Message) -> list[Any]:
    """The frame as plain msgpack values, to tamper with."""
    raw: list[Any] = msgpack.unpackb(_frame(message), raw=False)
    return raw


def _pack(raw: Any) -> bytes:
    packed: bytes = msgpack.packb(raw, use_bin_type=True)
    return packed


def _wire_error(data: bytes) -> WireError:
    with pytest.raises(WireError) as caught:
        decode(data)
    return caught.value


# -- the documented bytes ------------------------------------------------------


def _doc_example_hex() -> bytes:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- example: market_update -->.*?```hex\s*(.*?)```", text, re.S)
    assert block is not None, "docs/wire-format.md lost its market_update example"
    return bytes.fromhex(block.group(1))


def test_codec_produces_the_worked_example_bytes_of_the_docs() -> None:
    assert encode(EXAMPLE, seq=12345, sender="md-binance") == _doc_example_hex()


def test_worked_example_bytes_of_the_docs_decode_to_the_example() -> None:
    envelope = decode(_doc_example_hex())
    assert envelope == Envelope(
        kind="market_update",
        version=1,
        seq=12345,
        ts_ns=TS,
        sender="md-binance",
        message=EXAMPLE,
    )


def test_worked_example_is_92_bytes_as_documented() -> None:
    assert len(_doc_example_hex()) == 92


def test_int64_encoded_timestamp_decodes_like_the_uint64_one() -> None:
    # Another language may write a positive int as int64 (0xd3) where
    # msgpack-python writes uint64 (0xcf): readers must accept both.
    canonical = _doc_example_hex()
    as_int64 = canonical.replace(
        b"\xcf\x17\x97\x9c\xfe\x36\x2a\x00\x00", b"\xd3\x17\x97\x9c\xfe\x36\x2a\x00\x00"
    )
    assert as_int64 != canonical
    assert decode(as_int64) == decode(canonical)


def test_kind_prefix_is_array_of_six_then_the_kind_as_fixstr() -> None:
    # 0x96 = array of 6; 0xa7 = fixstr of 7 bytes, "command".
    assert kind_prefix("command") == bytes.fromhex("96a7") + b"command"
    # 0xb0 = fixstr of 16 bytes, "execution_signal".
    assert kind_prefix("execution_signal") == bytes.fromhex("96b0") + b"execution_signal"


@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_every_frame_starts_with_its_kind_prefix(message: Message) -> None:
    assert _frame(message).startswith(kind_prefix(message.KIND))


def test_kind_prefix_of_unknown_kind_is_refused() -> None:
    with pytest.raises(WireError):
        kind_prefix("market_updates")


# -- layout --------------------------------------------------------------------


def _wire_form(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Side | Liquidity):
        return value.value
    return value


@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_body_lists_fields_in_declaration_order(message: Message) -> None:
    kind, version, seq, ts_ns, sender, body = _raw(message)
    assert (kind, version, seq, ts_ns, sender) == (message.KIND, 1, 5, TS, "worker-1")
    signal = getattr(message, "SIGNAL", None)
    if signal is not None:
        assert body[0] == signal
        body = body[1:]
    # A field added in a later version is absent when unset, not nil.
    carried = [
        name
        for name in message.__struct_fields__
        if name not in message.ADDED or getattr(message, name) is not None
    ]
    assert body == [_wire_form(getattr(message, name)) for name in carried]


@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_each_sample_round_trips_with_its_envelope(message: Message) -> None:
    envelope = decode(encode(message, seq=42, sender="gw-1", ts_ns=TS + 100))
    assert envelope == Envelope(message.KIND, 1, 42, TS + 100, "gw-1", message)


def test_decimals_go_on_the_wire_in_plain_notation() -> None:
    # str(Decimal("1E-7")) is "1E-7" and str(Decimal("1E+3")) is "1E+3": the
    # wire only has plain notation, so they travel as "0.0000001" and "1000".
    update = MarketUpdate("X", Decimal("1E-7"), Decimal("1E+3"), None, None, None, 1)
    body = _raw(update)[5]
    assert body[1:3] == ["0.0000001", "1000"]
    assert decode(_frame(update)).message == update


def test_trailing_zeros_survive_a_round_trip() -> None:
    update = MarketUpdate("X", Decimal("1.50"), Decimal("2.000"), None, None, None, 1)
    decoded = decode(_frame(update)).message
    assert isinstance(decoded, MarketUpdate)
    assert str(decoded.bid) == "1.50"
    assert str(decoded.ask) == "2.000"


def test_missing_optionals_travel_as_nil() -> None:
    update = MarketUpdate("X", Decimal("1"), Decimal("2"), None, None, None, 1)
    assert _raw(update)[5] == ["X", "1", "2", None, None, None, 1]


# -- encode --------------------------------------------------------------------


def test_encode_takes_the_envelope_timestamp_from_the_message_by_default() -> None:
    frame = encode(SAMPLES[3], seq=0, sender="gw")  # OrderAck at TS + 2
    assert decode(frame).ts_ns == TS + 2


def test_command_needs_an_explicit_envelope_timestamp() -> None:
    with pytest.raises(WireError) as caught:
        encode(Command("halt", {}, "r1"), seq=0, sender="cli")
    assert caught.value.field == "envelope.ts_ns"


@pytest.mark.parametrize(
    ("seq", "sender", "field"),
    [
        (-1, "s", "envelope.seq"),
        (True, "s", "envelope.seq"),
        (2**63, "s", "envelope.seq"),
        (0, "", "envelope.sender"),
    ],
)
def test_encode_refuses_a_bad_envelope_field(seq: int, sender: str, field: str) -> None:
    with pytest.raises(WireError) as caught:
        encode(EXAMPLE, seq=seq, sender=sender)
    assert caught.value.field == field


def test_encode_refuses_what_is_not_a_message() -> None:
    fill = Fill("t", "a", "S", Side.BUY, Decimal(1), Decimal(1), Decimal(0), "USDT", 1, "o")
    with pytest.raises(WireError):
        encode(fill, seq=0, sender="s")  # type: ignore[arg-type]


def test_encode_refuses_a_decimal_longer_than_64_chars_in_plain_notation() -> None:
    # 1E+64 is "1" and 64 zeros: 65 chars.
    update = MarketUpdate("X", Decimal("1"), Decimal("1E+64"), None, None, None, 1)
    with pytest.raises(WireError) as caught:
        encode(update, seq=0, sender="s")
    assert caught.value.field == "market_update.ask"


def test_encode_refuses_a_frame_over_the_codec_max_size() -> None:
    codec = Codec(max_size=91)  # the example is 92 bytes
    with pytest.raises(WireError, match="exceeds max_size"):
        codec.encode(EXAMPLE, seq=12345, sender="md-binance")


def test_codec_encodes_again_after_a_refused_message() -> None:
    codec = Codec()
    bad = Command("halt", {"note": "x"}, "r1")
    bad.args["note"] = object()  # type: ignore[assignment]  # mutated after validation
    with pytest.raises(WireError):
        codec.encode(bad, seq=0, sender="s", ts_ns=1)
    assert codec.encode(EXAMPLE, seq=12345, sender="md-binance") == _doc_example_hex()


def test_lone_surrogate_in_an_id_cannot_be_encoded() -> None:
    with pytest.raises(WireError):
        encode(CancelRequest("\ud800", 1), seq=0, sender="s")


# -- messages refuse bad fields at construction --------------------------------


def test_crossed_quote_is_refused() -> None:
    with pytest.raises(WireError) as caught:
        MarketUpdate("X", Decimal("101"), Decimal("100"), None, None, None, 1)
    assert caught.value.field == "market_update.bid"


def test_crossed_quote_on_the_wire_is_refused() -> None:
    raw = _raw(EXAMPLE)
    raw[5][1], raw[5][2] = "50000.3", "50000.2"
    assert _wire_error(_pack(raw)).field == "market_update.bid"


def test_locked_quote_is_accepted() -> None:
    update = MarketUpdate("X", Decimal("100"), Decimal("100"), None, None, None, 1)
    assert decode(_frame(update)).message == update


@pytest.mark.parametrize("qty", [Decimal("0"), Decimal("-1"), Decimal("NaN"), Decimal("Infinity")])
def test_fill_with_non_positive_or_non_finite_qty_is_refused(qty: Decimal) -> None:
    with pytest.raises(WireError) as caught:
        structs.replace(SAMPLES[4], qty=qty)
    assert caught.value.field == "execution_signal.fill.qty"


def test_side_must_be_a_side_not_a_str() -> None:
    with pytest.raises(WireError) as caught:
        structs.replace(SAMPLES[2], side="sell")
    assert caught.value.field == "execution_signal.submit.side"


def test_float_price_is_refused() -> None:
    with pytest.raises(WireError) as caught:
        structs.replace(SAMPLES[1], limit_price=3000.25)
    assert caught.value.field == "execution_signal.intent.limit_price"


def test_reply_ok_with_an_error_is_refused() -> None:
    with pytest.raises(WireError) as caught:
        Reply("r", ok=True, result={}, error={"type": "X", "message": "", "transient": False})
    assert caught.value.field == "reply.error"


def test_failed_reply_without_error_is_refused() -> None:
    with pytest.raises(WireError):
        Reply("r", ok=False, result={}, error=None)


def test_envelope_kind_must_match_its_message() -> None:
    with pytest.raises(WireError) as caught:
        Envelope("risk_event", 1, 0, 0, "s", EXAMPLE)
    assert caught.value.field == "envelope.kind"


def test_wire_error_is_a_permanent_posbus_error_and_a_value_error() -> None:
    with pytest.raises(WireError) as caught:
        CancelRequest("", 1)
    error = caught.value
    assert isinstance(error, PosbusError)
    assert isinstance(error, ValueError)
    assert error.permanent
    assert error.context()["field"] == "execution_signal.cancel_request.order_id"


# -- fills and replies from domain objects -------------------------------------


def test_order_fill_converts_to_and_from_a_domain_fill() -> None:
    fill = Fill(
        trade_id="t-1",
        account="acc-1",
        symbol="ETH/USDT",
        side=Side.SELL,
        qty=Decimal("0.0005"),
        price=Decimal("3100.5"),
        fee=Decimal("-0.0001"),
        fee_currency="USDT",
        ts_ns=TS + 3,
        order_id="ord-1",
    )
    signal = OrderFill.from_fill(fill, client_order_id="cl-1", liquidity=Liquidity.MAKER)
    assert signal == SAMPLES[4]
    assert signal.to_fill() == fill


def test_fill_without_order_id_cannot_become_a_signal() -> None:
    fill = Fill("t", "a", "S", Side.BUY, Decimal(1), Decimal(1), Decimal(0), "USDT", 1)
    with pytest.raises(WireError) as caught:
        OrderFill.from_fill(fill, client_order_id="c", liquidity=Liquidity.TAKER)
    assert caught.value.field == "execution_signal.fill.order_id"


def test_failure_reply_describes_a_permanent_error() -> None:
    reply = Reply.failure("r1", RiskViolation("daily loss", symbol="BTC/USDT"))
    assert reply.error == {
        "type": "RiskViolation",
        "message": "risk limit: daily loss (symbol=BTC/USDT, reason=daily loss)",
        "transient": False,
    }
    assert not reply.ok


def test_failure_reply_marks_a_transient_error_transient() -> None:
    reply = Reply.failure("r1", ExchangeUnavailable("binance down"))
    assert reply.error is not None
    assert reply.error["transient"] is True


def test_success_reply_defaults_to_an_empty_result() -> None:
    assert Reply.success("r1") == Reply("r1", ok=True, result={}, error=None)


# -- malformed frames: truncation, size, msgpack -------------------------------


@pytest.mark.parametrize("message", SAMPLES, ids=_id)
def test_frame_cut_at_any_point_is_refused(message: Message) -> None:
    frame = _frame(message)
    for cut in range(len(frame)):
        with pytest.raises(WireError):
            decode(frame[:cut])


def test_trailing_bytes_after_the_envelope_are_refused() -> None:
    with pytest.raises(WireError, match="not a valid msgpack frame"):
        decode(_frame(EXAMPLE) + b"\x00")


def test_frame_over_max_size_is_refused_before_unpacking() -> None:
    frame = _frame(EXAMPLE)
    with pytest.raises(WireError, match="exceeds max_size"):
        decode(frame, max_size=len(frame) - 1)
    # Garbage that msgpack would choke on is refused for its size first.
    with pytest.raises(WireError, match="exceeds max_size"):
        decode(b"\xc1" * (DEFAULT_MAX_SIZE + 1))


def test_frame_of_exactly_max_size_is_accepted() -> None:
    frame = _frame(EXAMPLE)
    assert decode(frame, max_size=len(frame)).message == EXAMPLE


@pytest.mark.parametrize(
    "header",
    [
        b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
        b"\xdd\xff\xff\xff\xff",  # array32 of 4 G items
        b"\xdf\xff\xff\xff\xff",  # map32 of 4 G entries
        b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GiB
        b"\xc9\xff\xff\xff\xff\x01",  # ext32 of 4 GiB
        b"\xdc\xff\xff",  # array16 of 65535 items, none present
    ],
)
def test_huge_declared_lengths_are_refused(header: bytes) -> None:
    # Alone, and as the body of an otherwise valid envelope.
    _wire_error(header)
    prefix = _pack(["market_update", 1, 0, 0, "s"])[1:]  # the 5 items after the array header
    _wire_error(b"\x96" + prefix + header + b"\x00" * 16)


def test_array_over_the_item_cap_is_refused_even_when_present() -> None:
    # 65,537 nils: more items than an envelope, all really there.
    assert _wire_error(b"\xdd\x00\x01\x00\x01" + b"\xc0" * 65_537).field == "envelope"


def test_result_list_over_the_item_cap_is_refused() -> None:
    # Inside a reply's free-form result, arrays and maps hold at most 65,536 items.
    raw = _raw(SAMPLES[11])
    raw[5][2] = {"rows": [None] * 65_537}
    error = _wire_error(_pack(raw))
    assert error.field == "reply.result['rows']"
    assert "at most 65536 items" in error.message


def test_str_over_the_length_cap_is_refused() -> None:
    big = "x" * (4 * 65_536 + 1)
    _wire_error(_pack(["command", 1, 0, 0, "s", ["halt", {"note": big}, "r"]]))


def test_ext_types_are_refused_by_msgpack_before_any_field_is_read() -> None:
    raw = _raw(SAMPLES[11])
    raw[5][2] = {"blob": msgpack.ExtType(1, b"BTC")}  # inside a reply's free-form result
    error = _wire_error(_pack(raw))
    assert error.field is None
    assert "max_ext_len" in error.message


def test_msgpack_timestamp_ext_is_refused_by_msgpack() -> None:
    raw = _raw(EXAMPLE)
    raw[5][6] = msgpack.Timestamp(1, 0)
    assert _wire_error(_pack(raw)).field is None


def test_binary_in_place_of_a_str_is_refused() -> None:
    raw = _raw(EXAMPLE)
    raw[5][0] = b"BTC/USDT"
    _wire_error(_pack(raw))


def test_empty_binary_in_place_of_a_str_is_refused_by_field() -> None:
    raw = _raw(EXAMPLE)
    raw[5][0] = b""
    assert _wire_error(_pack(raw)).field == "market_update.symbol"


def test_invalid_utf8_is_refused() -> None:
    raw = _raw(EXAMPLE)
    frame = _pack(raw).replace(b"\xa8BTC/USDT", b"\xa8BTC/\xff\xfeDT")
    _wire_error(frame)


def test_deeply_nested_arrays_are_refused() -> None:
    _wire_error(b"\x91" * 100_000 + b"\xc0")


@pytest.mark.parametrize("data", [None, "text", 5, [1]])
def test_input_that_is_not_bytes_is_refused(data: Any) -> None:
    with pytest.raises(WireError):
        decode(data)


def test_bytearray_and_memoryview_frames_decode() -> None:
    frame = _frame(EXAMPLE)
    assert decode(bytearray(frame)).message == EXAMPLE
    assert decode(memoryview(frame)).message == EXAMPLE


def test_unexpected_failure_inside_decode_surfaces_as_wire_error() -> None:
    # A result nested far deeper than the interpreter's recursion limit makes
    # the decoder raise RecursionError: the caller still sees only WireError.
    nested = b"\x91" * 200_000 + b"\xc0"
    frame = _pack(["reply", 1, 0, 0, "s", ["r", True, {}, None]])
    frame = frame.replace(b"\x80", b"\x81\xa1k" + nested, 1)
    error = _wire_error(frame)
    assert isinstance(error.__cause__, RecursionError)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_random_bytes_raise_only_wire_error(data: bytes) -> None:
    try:
        envelope = decode(data)
    except WireError:
        return
    # Random bytes that happen to be a valid frame still decode to a valid envelope.
    assert isinstance(envelope, Envelope)


# -- malformed envelopes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (["market_update", 1, 0, 0, "s"], "envelope"),
        (["market_update", 1, 0, 0, "s", [], None], "envelope"),
        ({"kind": "market_update"}, "envelope"),
        ("market_update", "envelope"),
        (["market_updates", 1, 0, 0, "s", []], "envelope.kind"),
        (["", 1, 0, 0, "s", []], "envelope.kind"),
        ([1, 1, 0, 0, "s", []], "envelope.kind"),
        ([["market_update"], 1, 0, 0, "s", []], "envelope.kind"),
        (["market_update", [1], 0, 0, "s", []], "envelope.version"),
        (["execution_signal", 1, 0, 0, "s", [["fill"], "o", 1]], "execution_signal.signal"),
        (["market_update", 0, 0, 0, "s", []], "envelope.version"),
        (["market_update", 2, 0, 0, "s", []], "envelope.version"),
        (["market_update", True, 0, 0, "s", []], "envelope.version"),
        (["market_update", "1", 0, 0, "s", []], "envelope.version"),
        (["market_update", 1, 0, 0, "s", {}], "envelope.body"),
        (["market_update", 1, 0, 0, "s", "BTC"], "envelope.body"),
        (["execution_signal", 1, 0, 0, "s", []], "execution_signal.signal"),
        (["execution_signal", 1, 0, 0, "s", ["fills", "o", 1]], "execution_signal.signal"),
        (["execution_signal", 1, 0, 0, "s", [1, "o", 1]], "execution_signal.signal"),
        (["execution_signal", 1, 0, 0, "s", ["expired", "o"]], "execution_signal.expired"),
        (["execution_signal", 1, 0, 0, "s", ["expired", "o", 1, 2]], "execution_signal.expired"),
        (["market_update", 1, 0, 0, "s", ["X", "1", "2", None, None, None]], "market_update"),
    ],
)
def test_malformed_envelope_is_refused_naming_the_field(frame: Any, field: str) -> None:
    assert _wire_error(_pack(frame)).field == field


@pytest.mark.parametrize(
    ("position", "value", "field"),
    [
        (2, -1, "envelope.seq"),
        (2, True, "envelope.seq"),
        (2, 2**63, "envelope.seq"),
        (2, 1.0, "envelope.seq"),
        (3, -1, "envelope.ts_ns"),
        (3, False, "envelope.ts_ns"),
        (3, 2**64 - 1, "envelope.ts_ns"),
        (3, "0", "envelope.ts_ns"),
        (4, "", "envelope.sender"),
        (4, "s" * 257, "envelope.sender"),
        (4, None, "envelope.sender"),
    ],
)
def test_bad_envelope_field_is_refused(position: int, value: Any, field: str) -> None:
    raw = _raw(EXAMPLE)
    raw[position] = value
    assert _wire_error(_pack(raw)).field == field


# -- malformed body fields -------------------------------------------------------

# Wire values no field accepts, and the ones each field type refuses besides.
ALWAYS_BAD: list[Any] = [1.5, [], [["x"]]]
BAD_DECIMAL_TEXT = [
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "sNaN",
    "1e5",
    "1E5",
    "1E+5",
    "+1",
    "01",
    "-01.5",
    "1.",
    ".5",
    " 1",
    "1 ",
    "1_000",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: Decimal() reads it as 1
    "0x10",
    "",
    "-",
    "1" * 65,
    "0." + "1" * 63,  # 65 chars
    1,
    True,
]
BAD_BY_TYPE: dict[str, list[Any]] = {
    "id": ["", "x" * 257, 7, True],
    "text": ["x" * 4097, 7, False],
    "uint63": [True, False, -1, 2**63, "1", 1.0],
    "bool": [1, 0, "true", "True"],
    "Side": ["BUY", "Buy", "hold", "", 1, True],
    "Liquidity": ["Maker", "TAKER", "", 0],
    "Decimal>0": [*BAD_DECIMAL_TEXT, "0", "-1", "0.00", "-0", "-0.5"],
    "Decimal>=0": [*BAD_DECIMAL_TEXT, "-1", "-0.001"],
    "Decimal": BAD_DECIMAL_TEXT,
    "values": [{"x": 1}, {"x": "1e3"}, {"x": "NaN"}, {"": "1"}, {"x": None}, "1"],
    "args": [{"x": 1.5}, {"x": {"y": 1}}, {"x": [1]}, {"x": 2**63}, {"": 1}, {"x": "y" * 4097}],
    "result": [{"x": 1.5}, {"x": 2**63}, {"": 1}, {"x": [{"y": 1.5}]}, "{}"],
    "error": [
        {"type": "X"},
        {"type": "X", "message": "m", "transient": 0},
        {"type": "", "message": "m", "transient": True},
        {"type": "X", "message": "m", "transient": True, "extra": 1},
    ],
}
# The test's own reading of the declarations: annotation alias -> wire type.
WIRE_TYPES = {
    "Id": "id",
    "Text": "text",
    "Uint63": "uint63",
    "bool": "bool",
    "Side": "Side",
    "Liquidity": "Liquidity",
    "Positive": "Decimal>0",
    "NonNegative": "Decimal>=0",
    "Signed": "Decimal",
    "DecimalStrings": "values",
    "CommandArgs": "args",
    "Result": "result",
    "ReplyErrorInfo": "error",
}


def _field_type(cls: type, name: str) -> tuple[str, bool]:
    """The wire type of a field, from its annotation as written: (type, optional)."""
    annotation = cls.__annotations__[name]
    optional = annotation.endswith(" | None")
    return WIRE_TYPES[annotation.removesuffix(" | None")], optional


def _field_cases() -> list[Any]:
    cases = []
    for message in SAMPLES:
        signal = getattr(message, "SIGNAL", None)
        path = message.KIND if signal is None else f"{message.KIND}.{signal}"
        offset = 0 if signal is None else 1
        for index, name in enumerate(message.__struct_fields__):
            base, optional = _field_type(type(message), name)
            bad = [*ALWAYS_BAD, *BAD_BY_TYPE[base]]
            carrier = message
            if name in message.ADDED:
                # Absent when unset, so tampered with in a frame that carries it; never nil.
                carrier = structs.replace(message, **{name: Decimal("600")})
                bad.append(None)
            elif not optional:
                bad.append(None)
            for value in bad:
                cases.append(
                    pytest.param(
                        carrier,
                        offset + index,
                        value,
                        f"{path}.{name}",
                        id=f"{path}.{name}={value!r:.20}",
                    )
                )
    return cases


@pytest.mark.parametrize(("message", "position", "value", "field"), _field_cases())
def test_bad_body_field_is_refused_naming_the_field(
    message: Message, position: int, value: Any, field: str
) -> None:
    raw = _raw(message)
    raw[5][position] = value
    data = _pack(raw)
    error = _wire_error(data)
    assert error.field is not None
    assert error.field.startswith(field), error


def test_every_field_type_has_bad_cases() -> None:
    # Guards the table above: a new field type must come with its bad values.
    for message in SAMPLES:
        for name in message.__struct_fields__:
            assert _field_type(type(message), name)[0] in BAD_BY_TYPE, name


@pytest.mark.parametrize(
    "text", ["0.0000001", "1.50", "-0", "0.00", "123456789012345678901234567890.123"]
)
def test_valid_decimal_texts_outside_str_form_are_accepted(text: str) -> None:
    raw = _raw(SAMPLES[4])
    raw[5][9] = text  # fee: any sign
    message = decode(_pack(raw)).message
    assert isinstance(message, OrderFill)
    assert message.fee == Decimal(text)


def test_decimal_of_exactly_64_chars_is_accepted() -> None:
    text = "1." + "5" * 62
    raw = _raw(EXAMPLE)
    raw[5][4] = text  # bid_size
    message = decode(_pack(raw)).message
    assert isinstance(message, MarketUpdate)
    assert message.bid_size == Decimal(text)


def _nested(depth: int) -> dict[str, Any]:
    """A result map nested `depth` deep: {"k": {"k": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_reply_result_nested_8_deep_is_accepted() -> None:
    reply = Reply("r", ok=True, result=_nested(8), error=None)
    assert decode(encode(reply, seq=0, sender="s", ts_ns=0)).message == reply


def test_reply_result_with_lists_nested_9_deep_is_refused() -> None:
    # The result map is depth 1, then 8 lists: depths 2..9.
    raw = _raw(SAMPLES[11])
    raw[5][2] = {"k": [[[[[[[[]]]]]]]]}
    assert _wire_error(_pack(raw)).field.startswith("reply.result")  # type: ignore[union-attr]


def test_reply_result_with_lists_nested_8_deep_is_accepted() -> None:
    reply = Reply("r", ok=True, result={"k": [[[[[[[]]]]]]]}, error=None)
    assert decode(encode(reply, seq=0, sender="s", ts_ns=0)).message == reply


def test_reply_result_nested_9_deep_is_refused() -> None:
    raw = _raw(SAMPLES[11])
    raw[5][2] = _nested(9)
    assert _wire_error(_pack(raw)).field.startswith("reply.result")  # type: ignore[union-attr]


def test_command_with_too_many_args_is_refused() -> None:
    raw = _raw(SAMPLES[10])
    raw[5][1] = {f"a{i}": i for i in range(257)}
    assert _wire_error(_pack(raw)).field == "command.args"
