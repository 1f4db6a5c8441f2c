"""A fill's conversion mark on the wire: execution_signal version 2 only when a fill carries one.

A fill without `fee_mark` is the version 1 frame it always was, byte for
byte, so readers and journals from before the field see nothing new; a fill
with one is a version 2 frame whose body has the mark as a 14th item, in
decimal text. Every message has exactly one frame: a reader refuses the
mark in a version 1 frame, a version 2 frame that carries none, and nil.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgpack
import pytest
from msgspec import structs

from posbus.actors.delivery import Delivered, StreamCursor, decode_record
from posbus.actors.model.fill import Fill
from posbus.actors.model.position import Position
from posbus.actors.model.side import Side
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.codec import WireError, decode, encode
from posbus.bus.envelope import Envelope
from posbus.bus.messages import Liquidity, OrderAck, OrderFill

TS = 1_700_000_000_000_000_000

# The fill of docs/wire-format.md's execution_signal example, as the codec
# wrote it before fills could carry a mark.
OLD_FILL_FRAME = bytes.fromhex(
    "96b0657865637574696f6e5f7369676e616c012acf17979cfe362a0000a867772d61"
    "63632d319da466696c6cb06163632d313a4254432f555344543a37a3632d37a4742d"
    "3939a56163632d31a84254432f55534454a3627579a3302e35a735303030302e31a5"
    "2d302e3031a455534454a56d616b6572cf17979cfe362a0000"
)
# A BNB fee without a mark, as the gateway published such fills until now.
OLD_BNB_FRAME: bytes = msgpack.packb(
    [
        "execution_signal",
        1,
        43,
        TS,
        "gw-acc-1",
        [
            "fill",
            "acc-1:BTC/USDT:8",
            "c-8",
            "t-100",
            "acc-1",
            "BTC/USDT",
            "sell",
            "0.5",
            "50010.1",
            "0.0002",
            "BNB",
            "taker",
            TS,
        ],
    ]
)


def bnb_fill(fee_mark: Decimal | None) -> OrderFill:
    return OrderFill(
        order_id="acc-1:BTC/USDT:8",
        client_order_id="c-8",
        trade_id="t-100",
        account="acc-1",
        symbol="BTC/USDT",
        side=Side.SELL,
        qty=Decimal("0.5"),
        price=Decimal("50010.1"),
        fee=Decimal("0.0002"),
        fee_currency="BNB",
        liquidity=Liquidity.TAKER,
        ts_ns=TS,
        fee_mark=fee_mark,
    )


def raw(frame: bytes) -> list[Any]:
    unpacked: list[Any] = msgpack.unpackb(frame)
    return unpacked


def refusal(literal: list[Any]) -> WireError:
    with pytest.raises(WireError) as caught:
        decode(msgpack.packb(literal))
    return caught.value


# -- writing ----------------------------------------------------------------------


def test_a_fill_without_a_mark_is_the_version_1_frame_it_always_was() -> None:
    frame = encode(bnb_fill(None), seq=43, sender="gw-acc-1", ts_ns=TS)
    assert frame == OLD_BNB_FRAME
    assert frame[18] == 1  # the version byte, right after the 16-char kind


def test_a_fill_with_a_mark_is_a_version_2_frame_ending_with_the_mark_as_decimal_text() -> None:
    frame = encode(bnb_fill(Decimal("600.50")), seq=43, sender="gw-acc-1", ts_ns=TS)
    expected = raw(OLD_BNB_FRAME)
    expected[1] = 2
    expected[5].append("600.50")
    assert raw(frame) == expected


def test_a_mark_is_written_in_plain_notation() -> None:
    frame = encode(bnb_fill(Decimal("6E+2")), seq=1, sender="gw", ts_ns=TS)
    assert raw(frame)[5][-1] == "600"


def test_a_mark_of_zero_or_below_is_refused_on_construction() -> None:
    for bad in (Decimal(0), Decimal(-1), Decimal("NaN")):
        with pytest.raises(WireError) as caught:
            bnb_fill(bad)
        assert caught.value.field == "execution_signal.fill.fee_mark"


# -- reading ----------------------------------------------------------------------


@pytest.mark.parametrize("mark", [None, Decimal("600"), Decimal("0.00001234")])
def test_a_fill_round_trips_with_and_without_its_mark(mark: Decimal | None) -> None:
    message = bnb_fill(mark)
    envelope = decode(encode(message, seq=7, sender="gw", ts_ns=TS))
    assert envelope == Envelope("execution_signal", 1 if mark is None else 2, 7, TS, "gw", message)
    assert envelope.message.fee_mark == mark  # type: ignore[union-attr]


def test_frames_written_before_the_field_decode_to_fills_without_a_mark() -> None:
    envelope = decode(OLD_FILL_FRAME)
    assert envelope.version == 1
    assert isinstance(envelope.message, OrderFill)
    assert envelope.message.fee_mark is None
    assert envelope.message.fee == Decimal("-0.01")
    assert decode(OLD_BNB_FRAME).message == bnb_fill(None)


def test_a_mark_in_a_version_1_frame_is_refused() -> None:
    literal = raw(OLD_BNB_FRAME)
    literal[5].append("600")
    error = refusal(literal)
    assert error.field == "execution_signal.fill.fee_mark"
    assert "added in execution_signal version 2" in str(error)


def test_a_version_2_frame_without_a_mark_is_refused() -> None:
    literal = raw(OLD_BNB_FRAME)
    literal[1] = 2
    assert refusal(literal).field == "envelope.version"


def test_a_version_2_frame_of_another_signal_is_refused() -> None:
    frame = raw(encode(OrderAck("o-1", "c-1", "x-1", TS), seq=1, sender="gw"))
    frame[1] = 2
    assert refusal(frame).field == "envelope.version"


def test_a_nil_mark_is_refused_absent_is_the_only_way_to_say_none() -> None:
    literal = raw(encode(bnb_fill(Decimal("600")), seq=1, sender="gw"))
    literal[5][-1] = None
    assert refusal(literal).field == "execution_signal.fill.fee_mark"


@pytest.mark.parametrize("text", ["0", "-600", "6e2", "600.", ""])
def test_a_mark_outside_the_positive_decimal_grammar_is_refused(text: str) -> None:
    literal = raw(encode(bnb_fill(Decimal("600")), seq=1, sender="gw"))
    literal[5][-1] = text
    assert refusal(literal).field == "execution_signal.fill.fee_mark"


def test_version_3_is_refused_naming_the_versions_this_build_speaks() -> None:
    literal = raw(OLD_BNB_FRAME)
    literal[1] = 3
    error = refusal(literal)
    assert error.field == "envelope.version"
    assert "versions 1 and 2" in str(error)


# -- the domain fill ----------------------------------------------------------------


def test_to_fill_and_from_fill_carry_the_mark() -> None:
    message = bnb_fill(Decimal("600"))
    fill = message.to_fill()
    assert fill.fee_mark == Decimal("600")
    again = OrderFill.from_fill(fill, client_order_id="c-8", liquidity=Liquidity.TAKER)
    assert again == message
    assert bnb_fill(None).to_fill().fee_mark is None


# -- journals -------------------------------------------------------------------------


def test_journal_records_written_before_the_field_replay_unchanged() -> None:
    """Old records decode to the fills they were, keep their bytes, and value a BNB fee as before.

    buy 0.5 @ 50000.1, fee -0.01 USDT      realized +0.01
    sell 0.5 @ 50010.1, fee 0.0002 BNB     realized 0.01 + 0.5 * 10 = 5.01, the BNB fee
                                           unconverted (no mark)
    then a new record, the same sale with a mark of 600 (another trade id),
    on a fresh buy: its fee is valued 0.0002 * 600 = 0.12.
    """
    journal = MemoryJournal()
    stream = "position.acc-1.BTC/USDT"
    journal.append(stream, OLD_FILL_FRAME)
    journal.append(stream, OLD_BNB_FRAME)
    position = Position("acc-1", "BTC/USDT")
    replayed: list[Delivered] = []

    def apply(delivered: Delivered) -> None:
        replayed.append(delivered)
        assert isinstance(delivered.message, OrderFill)
        position.apply_fill(delivered.message.to_fill())

    assert StreamCursor(journal, stream, apply).replay() == 2
    assert [d.message for d in replayed][1] == bnb_fill(None)
    assert position.realized_pnl == Decimal("5.01")
    assert position.unconverted_fees == 1
    assert dict(position.unconverted_fees_by_currency) == {"BNB": Decimal("0.0002")}
    for record, old in zip(journal.read(stream), (OLD_FILL_FRAME, OLD_BNB_FRAME), strict=True):
        assert record.payload == old
        message = decode_record(record).message
        assert encode(message, seq=raw(old)[2], sender="gw-acc-1", ts_ns=TS) == old

    rebuy = Fill(
        trade_id="t-101",
        account="acc-1",
        symbol="BTC/USDT",
        side=Side.BUY,
        qty=Decimal("0.5"),
        price=Decimal("50010.1"),
        fee=Decimal(0),
        fee_currency="USDT",
        ts_ns=TS,
    )
    position.apply_fill(rebuy)
    marked = structs.replace(bnb_fill(Decimal("600")), trade_id="t-102")
    journal.append(stream, encode(marked, seq=44, sender="gw-acc-1", ts_ns=TS))
    (record,) = journal.read(stream, after_seq=2)
    position.apply_fill(decode_record(record).message.to_fill())  # type: ignore[union-attr]
    assert position.realized_pnl == Decimal("5.01") - Decimal("0.12")
    assert position.unconverted_fees == 1
