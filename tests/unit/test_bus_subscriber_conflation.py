"""Conflation before decoding: a quote's header is read from its bytes, only the kept one decoded.

inproc PUB->SUB pair, as in test_bus_subscriber.py (inproc sends land at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import msgpack
import pytest
import zmq

from posbus.bus.codec import decode, encode, market_header
from posbus.bus.messages import MarketUpdate, RiskEvent
from posbus.bus.sockets import make_socket
from posbus.bus.subscriber import Subscriber
from posbus.bus.topics import market_topic

Ctx = zmq.Context[zmq.Socket[bytes]]

ALERT = RiskEvent("limit_warning", "Warning", "Normal", "", None, None, {}, 1)


def quote(symbol: str, bid: int) -> MarketUpdate:
    return MarketUpdate(symbol, Decimal(bid), Decimal(bid + 1), None, None, None, 1)


def crossed_quote_frame(symbol: str, seq: int) -> bytes:
    """A frame whose envelope header is valid and whose body is not (bid 105 > ask 100)."""
    body = [symbol, "105", "100", None, None, None, 1]
    return market_topic(symbol) + msgpack.packb(["market_update", 1, seq, 1, "s", body])


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], Subscriber]]:
    ctx: Ctx = zmq.Context()
    pub = make_socket(ctx, zmq.PUB, bind="inproc://peek")
    sub = Subscriber(ctx, "inproc://peek", prefixes=[b""])
    seq = 0
    while not sub.poll(1):
        seq += 1
        pub.send(market_topic("PROBE") + encode(quote("PROBE", 1), seq=seq, sender="probe"))
    sub.drain()
    yield pub, sub
    ctx.destroy(linger=0)


def test_market_header_reads_seq_and_sender_of_every_uint_width() -> None:
    # seq as a fixint, uint8, uint16, uint32 and uint64: the widths msgpack picks by value.
    for seq in (5, 200, 60_000, 4_000_000_000, 2**63 - 1):
        frame = encode(quote("A", 7), seq=seq, sender="feed.1", ts_ns=1_764_160_000_000_000_000)
        assert market_header(frame) == (seq, "feed.1")
        assert decode(frame).seq == seq  # the same frame decodes to the same numbers


def test_market_header_leaves_anything_unusual_to_the_full_decoder() -> None:
    risk = encode(ALERT, seq=1, sender="s")
    negative_seq = msgpack.packb(["market_update", 1, -1, 1, "s", []])
    empty_sender = msgpack.packb(["market_update", 1, 1, 1, "", []])
    for frame in (risk, negative_seq, empty_sender, b"", b"\x96", b"garbage"):
        assert market_header(frame) is None
    truncated = encode(quote("A", 7), seq=1, sender="sender")[:19]
    assert market_header(truncated) is None


def test_an_invalid_newest_quote_falls_back_to_the_valid_one_it_superseded(
    pair: tuple[zmq.Socket[bytes], Subscriber],
) -> None:
    pub, sub = pair
    pub.send(market_topic("A") + encode(quote("A", 100), seq=1, sender="s"))
    pub.send(market_topic("A") + encode(quote("A", 101), seq=2, sender="s"))
    pub.send(crossed_quote_frame("A", 3))
    batch = sub.drain()
    # Three quotes of A: the newest is invalid (a decode error), so the one before it
    # (bid 101) is delivered; only the oldest (bid 100) was conflated away.
    assert [r.envelope.message for r in batch] == [quote("A", 101)]
    assert (sub.decode_errors, sub.conflated) == (1, 1)
    # The invalid frame was still received in sequence: no gap, nothing stale.
    assert (sub.gaps, sub.stale, sub.last_seq("s")) == (0, 0, 3)


def test_conflation_keeps_quotes_of_other_symbols_in_arrival_order(
    pair: tuple[zmq.Socket[bytes], Subscriber],
) -> None:
    pub, sub = pair
    for seq, (symbol, bid) in enumerate([("A", 1), ("B", 2), ("A", 3), ("C", 4), ("B", 5)], 1):
        pub.send(market_topic(symbol) + encode(quote(symbol, bid), seq=seq, sender="s"))
    batch = sub.drain()
    # Latest per topic at its own (last) position: A@3 (3rd), C@4 (4th), B@5 (5th).
    assert [r.envelope.message for r in batch] == [quote("A", 3), quote("C", 4), quote("B", 5)]
    assert sub.conflated == 2
