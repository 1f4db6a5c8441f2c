"""Topic frames: the topic scheme of each kind and splitting a frame back into topic + envelope."""

from __future__ import annotations

from decimal import Decimal

import pytest

from posbus.actors.model.side import Side
from posbus.bus.codec import decode, encode
from posbus.bus.messages import (
    CancelRequest,
    Command,
    Liquidity,
    MarketUpdate,
    OrderFill,
    RiskEvent,
)
from posbus.bus.topics import (
    TopicError,
    execution_topic,
    market_topic,
    split_frame,
    topic_for,
)
from posbus.bus.wire_error import WireError

QUOTE = MarketUpdate(
    symbol="BTC/USDT",
    bid=Decimal("1"),
    ask=Decimal("2"),
    last=None,
    bid_size=None,
    ask_size=None,
    ts_ns=5,
)
FILL = OrderFill(
    order_id="o1",
    client_order_id="c1",
    trade_id="t1",
    account="acc1",
    symbol="ETH/USDT",
    side=Side.SELL,
    qty=Decimal("1"),
    price=Decimal("3"),
    fee=Decimal("0"),
    fee_currency="USDT",
    liquidity=Liquidity.MAKER,
    ts_ns=5,
)


def risk(event: str, account: str | None = None, symbol: str | None = None) -> RiskEvent:
    return RiskEvent(
        event=event,
        state="Normal",
        previous_state=None,
        reason="",
        account=account,
        symbol=symbol,
        values={"exposure": "12.5"},
        ts_ns=5,
    )


def test_each_kind_has_its_topic() -> None:
    assert topic_for(QUOTE) == b"md|BTC/USDT|"
    assert topic_for(FILL) == b"ex|acc1|ETH/USDT|"
    assert topic_for(risk("worker_down")) == b"rk|worker_down|"
    assert topic_for(risk("exposure", "acc1", "BTC/USDT")) == b"xp|acc1|BTC/USDT|"


def test_signal_without_account_needs_them_passed() -> None:
    cancel = CancelRequest(order_id="o1", ts_ns=5)
    with pytest.raises(TopicError):
        topic_for(cancel)
    assert topic_for(cancel, account="a", symbol="S") == b"ex|a|S|"


def test_commands_have_no_event_topic() -> None:
    with pytest.raises(TopicError):
        topic_for(Command("halt", {}, "r1"))


def test_separator_inside_a_part_is_refused() -> None:
    with pytest.raises(TopicError):
        market_topic("BTC|USDT")
    with pytest.raises(TopicError):
        execution_topic("", "BTC/USDT")


def test_split_frame_returns_topic_and_a_decodable_envelope() -> None:
    frame = topic_for(FILL) + encode(FILL, seq=7, sender="gw")
    topic, payload = split_frame(frame)
    assert topic == b"ex|acc1|ETH/USDT|"
    envelope = decode(payload)
    assert (envelope.seq, envelope.message) == (7, FILL)


@pytest.mark.parametrize("frame", [b"", b"zz|x|", b"md", b"mdX", b"md|no-end", b"ex|acc1|"])
def test_malformed_topics_raise_topic_error_which_is_a_wire_error(frame: bytes) -> None:
    with pytest.raises(WireError):
        split_frame(frame)
    assert issubclass(TopicError, WireError)
