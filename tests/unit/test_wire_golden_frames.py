"""Golden frames: the codec writes, byte for byte, what plain msgpack makes of the documented array.

Each expected frame is a literal list packed by msgpack-python, an
independent model of docs/wire-format.md: positional body, signal type
first, decimals as plain text, smallest int encodings, str8 for strings of
32 to 255 bytes. Journals store these frames, so these bytes must not move
without a new schema version. Decoding each frame gives back the message.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgpack
import pytest

from posbus.actors.model.side import Side
from posbus.bus.codec import decode, encode
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

TS = 1_700_000_000_000_000_000
LONG_REASON = "insufficient margin for the order at the requested price"  # str8: > 31 bytes

# (message, seq, sender, envelope ts_ns, the frame as a literal list)
GOLDEN: list[tuple[Message, int, str, int, list[Any]]] = [
    (
        MarketUpdate("BTC/USDT", Decimal("1E-7"), Decimal("1E+3"), None, Decimal("0"), None, 5),
        0,
        "md",
        5,
        ["market_update", 1, 0, 5, "md", ["BTC/USDT", "0.0000001", "1000", None, "0", None, 5]],
    ),
    (
        OrderIntent("acc-1", "ETH/USDT", Side.BUY, Decimal("2.50"), None, "i-1", True, "", TS),
        127,
        "strategy",
        TS,
        [
            "execution_signal",
            1,
            127,
            TS,
            "strategy",
            ["intent", "acc-1", "ETH/USDT", "buy", "2.50", None, "i-1", True, "", TS],
        ],
    ),
    (
        OrderSubmit(
            "o-1", "c-1", "acc-1", "ETH/USDT", Side.SELL, Decimal("0.001"), Decimal("3100"), 1
        ),
        128,
        "pos",
        2**32,
        [
            "execution_signal",
            1,
            128,
            2**32,
            "pos",
            ["submit", "o-1", "c-1", "acc-1", "ETH/USDT", "sell", "0.001", "3100", 1],
        ],
    ),
    (
        OrderAck("o-1", "c-1", "ex-99", TS),
        65_536,
        "gw",
        TS,
        ["execution_signal", 1, 65_536, TS, "gw", ["ack", "o-1", "c-1", "ex-99", TS]],
    ),
    (
        OrderFill(
            "o-1",
            "c-1",
            "t-1",
            "acc-1",
            "ETH/USDT",
            Side.SELL,
            Decimal("0.0005"),
            Decimal("3100.5"),
            Decimal("-0.0001"),
            "USDT",
            Liquidity.TAKER,
            TS,
        ),
        1,
        "gw",
        TS,
        [
            "execution_signal",
            1,
            1,
            TS,
            "gw",
            [
                "fill",
                "o-1",
                "c-1",
                "t-1",
                "acc-1",
                "ETH/USDT",
                "sell",
                "0.0005",
                "3100.5",
                "-0.0001",
                "USDT",
                "taker",
                TS,
            ],
        ],
    ),
    (
        # A conversion mark makes the fill a version 2 frame with one more item.
        OrderFill(
            "o-2",
            "c-2",
            "t-2",
            "acc-1",
            "BTC/USDT",
            Side.BUY,
            Decimal("0.5"),
            Decimal("50000.1"),
            Decimal("0.0002"),
            "BNB",
            Liquidity.TAKER,
            TS,
            fee_mark=Decimal("6E+2"),
        ),
        2,
        "gw",
        TS,
        [
            "execution_signal",
            2,
            2,
            TS,
            "gw",
            [
                "fill",
                "o-2",
                "c-2",
                "t-2",
                "acc-1",
                "BTC/USDT",
                "buy",
                "0.5",
                "50000.1",
                "0.0002",
                "BNB",
                "taker",
                TS,
                "600",
            ],
        ],
    ),
    (
        CancelRequest("o-1", 0),
        2,
        "cli",
        TS,
        ["execution_signal", 1, 2, TS, "cli", ["cancel_request", "o-1", 0]],
    ),
    (
        OrderCancelled("o-1", "user", TS),
        3,
        "gw",
        TS,
        ["execution_signal", 1, 3, TS, "gw", ["cancelled", "o-1", "user", TS]],
    ),
    (
        OrderRejected("o-2", LONG_REASON, TS),
        4,
        "gw",
        TS,
        ["execution_signal", 1, 4, TS, "gw", ["reject", "o-2", LONG_REASON, TS]],
    ),
    (
        OrderExpired("o-3", TS),
        5,
        "gw",
        TS,
        ["execution_signal", 1, 5, TS, "gw", ["expired", "o-3", TS]],
    ),
    (
        RiskEvent("limit_warning", "Warning", None, "drawdown", None, "BTC/USDT", {}, TS),
        6,
        "risk",
        TS,
        [
            "risk_event",
            1,
            6,
            TS,
            "risk",
            ["limit_warning", "Warning", None, "drawdown", None, "BTC/USDT", {}, TS],
        ],
    ),
    (
        Command("halt", {"minutes": -30, "force": True, "note": None, "symbols": ["A"]}, "r-1"),
        7,
        "cli",
        TS,
        [
            "command",
            1,
            7,
            TS,
            "cli",
            ["halt", {"minutes": -30, "force": True, "note": None, "symbols": ["A"]}, "r-1"],
        ],
    ),
    (
        Reply("r-1", True, {"rows": [{"n": 2**40, "pnl": "-1.5"}], "more": False}, None),
        8,
        "positions.0",
        TS,
        [
            "reply",
            1,
            8,
            TS,
            "positions.0",
            ["r-1", True, {"rows": [{"n": 2**40, "pnl": "-1.5"}], "more": False}, None],
        ],
    ),
    (
        Reply("r-2", False, {}, {"type": "WireError", "message": "bad", "transient": False}),
        9,
        "broker",
        TS,
        [
            "reply",
            1,
            9,
            TS,
            "broker",
            ["r-2", False, {}, {"type": "WireError", "message": "bad", "transient": False}],
        ],
    ),
]


def _id(case: tuple[Message, int, str, int, list[Any]]) -> str:
    name = str(case[4][5][0]) if case[4][0] == "execution_signal" else str(case[4][0])
    return name if case[4][1] == 1 else f"{name}-v{case[4][1]}"


@pytest.mark.parametrize("case", GOLDEN, ids=_id)
def test_codec_writes_exactly_the_msgpack_of_the_documented_array(
    case: tuple[Message, int, str, int, list[Any]],
) -> None:
    message, seq, sender, ts_ns, literal = case
    assert encode(message, seq=seq, sender=sender, ts_ns=ts_ns) == msgpack.packb(literal)


@pytest.mark.parametrize("case", GOLDEN, ids=_id)
def test_golden_frame_decodes_to_the_message_and_envelope(
    case: tuple[Message, int, str, int, list[Any]],
) -> None:
    message, seq, sender, ts_ns, literal = case
    envelope = decode(msgpack.packb(literal))
    assert type(envelope.message) is type(message)
    assert envelope.message == message
    assert (envelope.kind, envelope.version, envelope.seq, envelope.ts_ns, envelope.sender) == (
        literal[0],
        literal[1],
        seq,
        ts_ns,
        sender,
    )


def test_exponent_decimals_decode_to_their_plain_text_value() -> None:
    # 1E+3 travels as "1000" and comes back as Decimal("1000"): equal, not the same digits.
    update = decode(msgpack.packb(GOLDEN[0][4])).message
    assert isinstance(update, MarketUpdate)
    assert str(update.bid) == "1E-7"
    assert str(update.ask) == "1000"
