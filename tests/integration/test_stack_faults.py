"""Faults against a real stack: garbage on every socket, heartbeat loss, broker restart."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import zmq
from stack_harness import Stack, wait_for, where

from posbus.bus.codec import decode
from posbus.bus.messages import RiskEvent
from posbus.bus.topics import split_frame

OVERSIZED = b"\x00" * (2 << 20)  # 2 MiB: twice the configured maximum message size


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), steps_per_s=50)
        s.up()
        try:
            yield s
        finally:
            s.close()


def _filled(stack: Stack, symbol: str, qty: Decimal) -> bool:
    position = stack.positions().get(symbol)
    return position is not None and Decimal(str(position["qty"])) == qty


def _send_garbage(context: zmq.Context[zmq.Socket[bytes]], stack: Stack) -> None:
    bus = stack.run_dir / "bus"
    sockets = []
    try:
        pub = context.socket(zmq.PUB)  # into the broker's XSUB
        pub.connect(f"ipc://{bus / 'events-in.sock'}")
        xsub = context.socket(zmq.XSUB)  # into the broker's XPUB: bogus subscription frames
        xsub.connect(f"ipc://{bus / 'events-out.sock'}")
        sockets += [pub, xsub]
        for endpoint in ("commands.sock", "workers.sock"):
            dealer = context.socket(zmq.DEALER)
            dealer.connect(f"ipc://{bus / endpoint}")
            sockets.append(dealer)
        for admin in sorted((stack.run_dir / "admin").glob("*.sock")):
            dealer = context.socket(zmq.DEALER)
            dealer.connect(f"ipc://{admin}")
            sockets.append(dealer)
        for s in sockets:
            s.setsockopt(zmq.LINGER, 2000)
        # Let the connections complete before sending (bounded).
        for s in sockets[2:]:
            s.poll(2000, zmq.POLLOUT)
        for _ in range(3):
            pub.send(b"garbage")
            pub.send(b"md|BTC/USDT|\xc1\xc1\xc1")
            pub.send(b"ex|default|BTC/USDT|" + b"\x93\x01\x02")
            pub.send(OVERSIZED)
            xsub.send(b"\x07not a subscription")
        for dealer in sockets[2:]:
            dealer.send_multipart([b"junk"])
            dealer.send_multipart([b"PBC1", b"positions.0", b"\xc1\xc1"])
            dealer.send_multipart([b"PBW1", b"\x09", b"what"])
            dealer.send(b"\x92\xa3abc")
            dealer.send(OVERSIZED)
    finally:
        for s in sockets:
            s.close()


def test_garbage_bytes_on_every_socket_leave_every_worker_alive(stack: Stack) -> None:
    before = {w["name"]: w["pid"] for w in stack.status()["workers"]}
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        _send_garbage(context, stack)
    finally:
        context.term()
    # Every worker still serves, with the same pid (none died and was restarted)...
    doc = wait_for("every worker serving", stack.all_serving)
    assert {w["name"]: w["pid"] for w in doc["workers"]} == before
    assert all(w["restarts"] == 0 for w in doc["workers"])
    # ...the broker counted what it refused...
    counters = stack.admin("broker", "metrics")["counters"]
    assert sum(counters.values()) > 0
    # ...and the stack still trades.
    stack.json("order", "buy", "ETH/USDT", "1")
    wait_for("ETH/USDT filled", lambda: _filled(stack, "ETH/USDT", Decimal("1")))


def test_a_stopped_worker_is_reported_down_then_up_by_heartbeats(stack: Stack) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"ipc://{stack.run_dir / 'bus' / 'events-out.sock'}")
    sub.setsockopt(zmq.SUBSCRIBE, b"rk|worker_")
    pid = stack.worker("gateway.default")["pid"]
    seen: list[RiskEvent] = []

    def event(kind: str) -> RiskEvent | None:
        while sub.poll(100, zmq.POLLIN):
            _, body = split_frame(sub.recv())
            message = decode(body).message
            if isinstance(message, RiskEvent):
                seen.append(message)
        return next((e for e in seen if e.event == kind and "gateway.default" in e.reason), None)

    try:
        sub.poll(500, zmq.POLLIN)  # the subscription reaches the broker (slow joiner)
        os.kill(pid, signal.SIGSTOP)
        try:
            down = wait_for("worker_down for the gateway", lambda: event("worker_down"), 15)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert down.state == "down"
        up = wait_for("worker_up for the gateway", lambda: event("worker_up"), 15)
        assert up.state == "up"
    finally:
        sub.close()
        context.term()
    # The stopped worker was not restarted by the launcher: it only missed heartbeats.
    assert stack.worker("gateway.default")["pid"] == pid


def test_broker_killed_is_restarted_and_workers_reconnect(stack: Stack) -> None:
    old = stack.worker("broker")["pid"]
    os.kill(old, signal.SIGKILL)
    broker = wait_for(
        "broker restarted",
        lambda: where(stack.worker("broker"), lambda w: w["pid"] != old and w["serving"]),
    )
    assert broker["restarts"] == 1

    # Workers notice the new broker by heartbeats and register again: a new order
    # goes CLI -> broker -> positions -> risk -> gateway -> positions.
    def order_filled() -> bool:
        # --no-wait: a reply means journaled, so a failure here was never journaled.
        result = stack.cli("order", "buy", "SOL/USDT", "10", "--json", "--no-wait", check=False)
        if result.returncode != 0:
            return False
        return wait_for("SOL/USDT filled", lambda: _filled(stack, "SOL/USDT", Decimal("10")), 20)

    assert wait_for("an order through the new broker", order_filled, 30, every=0.5)
