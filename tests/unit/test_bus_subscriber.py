"""Subscriber batching on an inproc PUB->SUB pair (deterministic: inproc sends land at once)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import zmq

from posbus.bus.codec import encode
from posbus.bus.messages import MarketUpdate, RiskEvent
from posbus.bus.metrics import BusMetrics
from posbus.bus.sockets import make_socket
from posbus.bus.subscriber import Subscriber
from posbus.bus.topics import market_topic, risk_topic

Ctx = zmq.Context[zmq.Socket[bytes]]


def quote(symbol: str, bid: int) -> MarketUpdate:
    return MarketUpdate(
        symbol=symbol,
        bid=Decimal(bid),
        ask=Decimal(bid + 1),
        last=None,
        bid_size=None,
        ask_size=None,
        ts_ns=1,
    )


ALERT = RiskEvent(
    event="limit_warning",
    state="Warning",
    previous_state="Normal",
    reason="",
    account=None,
    symbol=None,
    values={},
    ts_ns=1,
)


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], Subscriber, BusMetrics]]:
    ctx: Ctx = zmq.Context()
    pub = make_socket(ctx, zmq.PUB, bind="inproc://events")
    metrics = BusMetrics()
    sub = Subscriber(ctx, "inproc://events", prefixes=[b""], metrics=metrics)
    # Wait for the subscription to reach the PUB: probe until one arrives.
    seq = 0
    while not sub.poll(1):
        seq += 1
        pub.send(market_topic("PROBE") + encode(quote("PROBE", 1), seq=seq, sender="probe"))
    sub.drain()
    yield pub, sub, metrics
    ctx.destroy(linger=0)


def test_behind_consumer_gets_latest_quote_per_symbol_and_every_risk_event(
    pair: tuple[zmq.Socket[bytes], Subscriber, BusMetrics],
) -> None:
    pub, sub, metrics = pair
    seq = 0
    for i in range(50):
        for symbol in ("A", "B"):
            seq += 1
            pub.send(market_topic(symbol) + encode(quote(symbol, 100 + i), seq=seq, sender="s"))
        if i % 10 == 0:
            seq += 1
            pub.send(risk_topic("limit_warning") + encode(ALERT, seq=seq, sender="s"))
    batch = sub.drain(max_batch=1000)
    # 100 quotes + 5 alerts sent; one drain: 2 quotes (the latest per symbol) + 5 alerts.
    kinds = [r.envelope.kind for r in batch]
    assert kinds.count("risk_event") == 5
    quotes = [r.envelope.message for r in batch if isinstance(r.envelope.message, MarketUpdate)]
    latest = {q.symbol: q.bid for q in quotes}
    assert latest == {"A": Decimal(149), "B": Decimal(149)}
    assert len(batch) == 7
    assert sub.conflated == 98  # 100 quotes - 2 kept
    assert metrics.counter("conflated") == 98
    # The kept quotes stay at their own (last) positions: after the last alert (sent at i=40).
    assert kinds[-2:] == ["market_update", "market_update"]


def test_drain_is_bounded_by_max_batch(
    pair: tuple[zmq.Socket[bytes], Subscriber, BusMetrics],
) -> None:
    pub, sub, _ = pair
    for seq in range(1, 11):
        pub.send(risk_topic("limit_warning") + encode(ALERT, seq=seq, sender="s"))
    assert len(sub.drain(max_batch=4)) == 4
    assert len(sub.drain(max_batch=4)) == 4
    assert len(sub.drain(max_batch=4)) == 2
    assert sub.drain() == []


def test_bad_frames_are_counted_never_raised(
    pair: tuple[zmq.Socket[bytes], Subscriber, BusMetrics],
) -> None:
    pub, sub, metrics = pair
    pub.send(b"garbage")
    pub.send(b"md|X|\x96")  # truncated envelope
    pub.send(risk_topic("limit_warning") + encode(ALERT, seq=1, sender="s"))
    batch = sub.drain()
    assert [r.envelope.sender for r in batch] == ["s"]
    assert sub.decode_errors == 2
    assert metrics.counter("decode_errors") == 2


def test_publisher_restart_without_resuming_its_sequence_is_seen_as_stale(
    pair: tuple[zmq.Socket[bytes], Subscriber, BusMetrics],
) -> None:
    """Why Publisher takes first_seq: a restart from seq 1 would be dropped as already seen."""
    pub, sub, _ = pair
    for seq in (1, 2, 3, 1, 2):
        pub.send(risk_topic("limit_warning") + encode(ALERT, seq=seq, sender="s"))
    assert [r.envelope.seq for r in sub.drain()] == [1, 2, 3]
    assert sub.stale == 2
