"""Events through a real broker (XSUB/XPUB proxy over ipc): topics, gaps, conflation, bad frames.

Every wait is a poll with a deadline; nothing sleeps.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import zmq

from posbus.actors.model.side import Side
from posbus.bus.broker import Broker
from posbus.bus.codec import encode
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.heartbeat import HeartbeatConfig
from posbus.bus.messages import Liquidity, MarketUpdate, OrderAck, OrderFill, RiskEvent
from posbus.bus.publisher import Publisher
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.subscriber import Received, Subscriber
from posbus.bus.topics import (
    PREFIX_RISK,
    execution_topic,
    market_topic,
    risk_topic,
)

TS = 1_700_000_000_000_000_000


def quote(symbol: str, bid: str, ts: int = TS) -> MarketUpdate:
    return MarketUpdate(
        symbol=symbol,
        bid=Decimal(bid),
        ask=Decimal(bid) + 1,
        last=None,
        bid_size=None,
        ask_size=None,
        ts_ns=ts,
    )


def fill(trade_id: str, symbol: str = "BTC/USDT", account: str = "acc1") -> OrderFill:
    return OrderFill(
        order_id="o1",
        client_order_id="c1",
        trade_id=trade_id,
        account=account,
        symbol=symbol,
        side=Side.BUY,
        qty=Decimal("1"),
        price=Decimal("100"),
        fee=Decimal("0.1"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
        ts_ns=TS,
    )


def risk(event: str = "limit_warning") -> RiskEvent:
    return RiskEvent(
        event=event,
        state="Warning",
        previous_state="Normal",
        reason="test",
        account=None,
        symbol=None,
        values={},
        ts_ns=TS,
    )


@pytest.fixture
def ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Short path: a unix socket path must stay under ~100 bytes.
    path = Path(tempfile.mkdtemp(prefix="pb", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def broker(ctx: zmq.Context[zmq.Socket[bytes]], run_dir: Path) -> Iterator[Broker]:
    b = Broker(
        BusEndpoints.local(run_dir),
        context=ctx,
        heartbeat=HeartbeatConfig(interval_s=0.1, liveness=3, reconnect_initial_s=0.1),
    )
    stop = threading.Event()
    thread = threading.Thread(target=b.run, args=(stop,), daemon=True)
    thread.start()
    assert b.ready.wait(5)
    yield b
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def wait_flowing(pub_sock: zmq.Socket[bytes], sub: Subscriber) -> None:
    """Publish probes (sender "probe") until one arrives: the subscription has propagated."""
    sub.subscribe(PREFIX_RISK + b"probe|")
    deadline = time.monotonic() + 5
    seq = 0
    while time.monotonic() < deadline:
        seq += 1
        pub_sock.send(risk_topic("probe") + encode(risk("probe"), seq=seq, sender="probe"))
        if sub.poll(20):
            break
    else:
        pytest.fail("subscription never propagated through the broker")
    # Let the last probes land, then throw them away.
    while sub.poll(50):
        sub.drain()
    sub.unsubscribe(PREFIX_RISK + b"probe|")


def collect(sub: Subscriber, count: int, timeout: float = 5.0) -> list[Received]:
    """Drain until `count` events arrived (bounded by `timeout`)."""
    got: list[Received] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        if sub.poll(50):
            got.extend(sub.drain())
    return got


def test_subscriber_gets_only_the_symbols_it_subscribed(
    ctx: zmq.Context[zmq.Socket[bytes]], broker: Broker
) -> None:
    sub = Subscriber(
        ctx, broker.endpoints.events_out, prefixes=[market_topic("BTC/USDT")], conflate=False
    )
    pub = Publisher(ctx, broker.endpoints.events_in, sender="md-1")
    wait_flowing(pub.socket, sub)
    pub.publish(quote("ETH/USDT", "10"))
    pub.publish(quote("BTC/USDT", "100"))
    pub.publish(quote("BTC/USDTX", "5"))  # a longer symbol must not match the exact topic
    pub.publish(risk())
    pub.publish(quote("BTC/USDT", "101"), topic=market_topic("BTC/USDT"))
    got = collect(sub, 2)
    bids = [r.envelope.message.bid for r in got]  # type: ignore[union-attr]
    assert bids == [Decimal("100"), Decimal("101")]
    assert all(r.topic == b"md|BTC/USDT|" for r in got)
    assert not sub.poll(100)  # nothing else was delivered
    pub.close()
    sub.close()


def test_execution_signals_route_by_account_and_symbol(
    ctx: zmq.Context[zmq.Socket[bytes]], broker: Broker
) -> None:
    sub = Subscriber(ctx, broker.endpoints.events_out, prefixes=[b"ex|acc1|"])
    pub = Publisher(ctx, broker.endpoints.events_in, sender="gw-1")
    wait_flowing(pub.socket, sub)
    pub.publish(fill("t1", account="acc2"))
    pub.publish(fill("t2", account="acc1", symbol="ETH/USDT"))
    # An ack carries no account/symbol: the publisher names them.
    pub.publish(
        OrderAck(order_id="o1", client_order_id="c1", exchange_order_id="x1", ts_ns=TS),
        account="acc1",
        symbol="BTC/USDT",
    )
    got = collect(sub, 2)
    assert [r.topic for r in got] == [
        execution_topic("acc1", "ETH/USDT"),
        execution_topic("acc1", "BTC/USDT"),
    ]
    # Sequence numbers are per publisher, consecutive: t1 was 1, t2 is 2, the ack 3.
    assert [r.envelope.seq for r in got] == [2, 3]
    pub.close()
    sub.close()


def test_gap_is_reported_and_later_frames_still_delivered(
    ctx: zmq.Context[zmq.Socket[bytes]], broker: Broker
) -> None:
    gaps: list[tuple[str, int, int]] = []
    sub = Subscriber(
        ctx,
        broker.endpoints.events_out,
        prefixes=[b"ex|"],
        on_gap=lambda sender, expected, got: gaps.append((sender, expected, got)),
    )
    raw = make_socket(ctx, zmq.PUB, connect=broker.endpoints.events_in)
    wait_flowing(raw, sub)
    topic = execution_topic("acc1", "BTC/USDT")
    for seq in (1, 2, 4):  # seq 3 is "lost"
        raw.send(topic + encode(fill(f"t{seq}"), seq=seq, sender="gw-1"))
    got = collect(sub, 3)
    assert [r.envelope.seq for r in got] == [1, 2, 4]
    assert gaps == [("gw-1", 3, 4)]
    assert (sub.gaps, sub.missed) == (1, 1)
    raw.close()
    sub.close()


def test_set_floor_drops_updates_at_or_below_the_repaired_sequence(
    ctx: zmq.Context[zmq.Socket[bytes]], broker: Broker
) -> None:
    """Clone pattern: after a snapshot at seq 10, frames 9 and 10 are stale, 11 is applied."""
    sub = Subscriber(ctx, broker.endpoints.events_out, prefixes=[b"ex|"])
    raw = make_socket(ctx, zmq.PUB, connect=broker.endpoints.events_in)
    wait_flowing(raw, sub)
    topic = execution_topic("acc1", "BTC/USDT")
    raw.send(topic + encode(fill("t5"), seq=5, sender="gw-1"))
    assert [r.envelope.seq for r in collect(sub, 1)] == [5]
    sub.set_floor("gw-1", 10)
    for seq in (9, 10, 11):
        raw.send(topic + encode(fill(f"t{seq}"), seq=seq, sender="gw-1"))
    got = collect(sub, 1)
    assert [r.envelope.seq for r in got] == [11]
    assert not sub.poll(100)
    assert sub.stale == 2
    assert sub.gaps == 0  # the floor moved the baseline: 11 follows 10
    raw.close()
    sub.close()


def test_conflation_keeps_latest_quote_per_symbol_and_every_fill_and_risk_event(
    ctx: zmq.Context[zmq.Socket[bytes]], broker: Broker
) -> None:
    sub = Subscriber(ctx, broker.endpoints.events_out, prefixes=[b"md|", b"ex|", b"rk|"])
    pub = Publisher(ctx, broker.endpoints.events_in, sender="mixed")
    wait_flowing(pub.socket, sub)
    # 220 frames: per i, one BTC and one ETH quote; every 10th i also a fill and a risk event.
    for i in range(100):
        pub.publish(quote("BTC/USDT", str(1000 + i)))
        pub.publish(quote("ETH/USDT", str(100 + i)))
        if i % 10 == 0:
            pub.publish(fill(f"t{i}"))
            pub.publish(risk())
    pub.publish(risk("end"))  # the marker: everything before it has been sent
    batch: list[Received] = []
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline
        and not any(
            r.envelope.message.KIND == "risk_event" and r.envelope.message.event == "end"  # type: ignore[union-attr]
            for r in batch[-1:]
        )
    ):
        if sub.poll(50):
            batch.extend(sub.drain(max_batch=10_000))
    batch.pop()  # the marker
    kinds = [r.envelope.kind for r in batch]
    assert kinds.count("execution_signal") == 10
    assert kinds.count("risk_event") == 10
    last_bids = {
        r.envelope.message.symbol: r.envelope.message.bid  # type: ignore[union-attr]
        for r in batch
        if r.envelope.kind == "market_update"
    }
    assert last_bids == {"BTC/USDT": Decimal("1099"), "ETH/USDT": Decimal("199")}
    quotes = kinds.count("market_update")
    assert quotes + sub.conflated == 200  # every quote was either delivered or conflated
    assert sub.gaps == 0  # conflation is not loss
    pub.close()
    sub.close()


def test_garbage_and_oversized_event_frames_leave_broker_and_subscriber_alive(
    ctx: zmq.Context[zmq.Socket[bytes]], run_dir: Path, broker: Broker
) -> None:
    sub = Subscriber(ctx, broker.endpoints.events_out, prefixes=[b""])
    raw = make_socket(ctx, zmq.PUB, connect=broker.endpoints.events_in)
    wait_flowing(raw, sub)
    raw.send(b"\x00\xff garbage")  # no topic code: the broker drops and counts it
    raw.send(b"md|BTC/USDT|" + b"\xc1\xc1")  # a topic with an undecodable envelope
    # Events are single frames: each part is checked on its own, so the topic-like
    # first part reaches the subscriber (and fails to decode), the second is dropped.
    raw.send_multipart([b"md|X|", b"two frames"])
    big = make_socket(
        ctx,
        zmq.PUB,
        connect=broker.endpoints.events_in,
        options=SocketOptions(max_msg_size=4 << 20),
    )
    big.send(b"md|BTC/USDT|" + b"x" * (2 << 20))  # over the broker's 1 MiB: peer dropped
    raw.send(market_topic("BTC/USDT") + encode(quote("BTC/USDT", "7"), seq=1, sender="ok"))
    got = collect(sub, 1)
    assert [r.envelope.sender for r in got] == ["ok"]
    deadline = time.monotonic() + 5
    while broker.metrics.counter("malformed") < 2 and time.monotonic() < deadline:
        sub.poll(10)
    assert broker.metrics.counter("malformed") == 2  # the garbage and b"two frames"
    assert sub.decode_errors == 2  # the bad envelope behind a valid topic, and b"md|X|"
    assert broker.ready.is_set()
    big.close()
    raw.close()
    sub.close()
