"""CURVE on tcp: a listed client key works, an unlisted one gets nothing and is logged.

Real tcp sockets on 127.0.0.1 through a real broker thread; bounded waits only.
"""

from __future__ import annotations

import logging
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import zmq

from posbus.bus.admin import AdminClient, AdminServer
from posbus.bus.broker import Broker
from posbus.bus.client import CommandClient
from posbus.bus.curve import (
    CurveClient,
    CurveServer,
    generate_keypair,
    load_keypair,
    load_public_key,
)
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.errors import BrokerUnavailable, BusSecurityError
from posbus.bus.messages import MarketUpdate
from posbus.bus.publisher import Publisher
from posbus.bus.sockets import make_socket
from posbus.bus.subscriber import Subscriber
from posbus.bus.topics import PREFIX_MARKET

Ctx = zmq.Context[zmq.Socket[bytes]]


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def keys() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pbk", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ctx() -> Iterator[Ctx]:
    context: Ctx = zmq.Context()
    yield context
    context.destroy(linger=0)


class Setup:
    def __init__(self, keys: Path) -> None:
        _, broker_secret = generate_keypair(keys / "server", "broker")
        _, listed_secret = generate_keypair(keys / "clients", "listed")
        _, unlisted_secret = generate_keypair(keys / "strangers", "unlisted")
        allowed = keys / "allowed"
        allowed.mkdir()
        shutil.copy(keys / "clients" / "listed.key", allowed / "listed.key")
        self.server = CurveServer(load_keypair(broker_secret), allowed)
        self.listed = CurveClient(load_keypair(listed_secret), self.server.keys.public)
        self.unlisted = CurveClient(load_keypair(unlisted_secret), self.server.keys.public)
        ports = free_ports(4)
        self.endpoints = BusEndpoints(*(f"tcp://127.0.0.1:{p}" for p in ports))


@pytest.fixture
def setup(keys: Path) -> Setup:
    return Setup(keys)


@pytest.fixture
def broker(ctx: Ctx, setup: Setup) -> Iterator[Broker]:
    b = Broker(setup.endpoints, curve=setup.server, context=ctx)
    stop = threading.Event()
    thread = threading.Thread(target=b.run, args=(stop,), daemon=True)
    thread.start()
    assert b.ready.wait(5)
    yield b
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def quote(bid: str) -> MarketUpdate:
    return MarketUpdate(
        symbol="BTC/USDT",
        bid=Decimal(bid),
        ask=Decimal(bid),
        last=None,
        bid_size=None,
        ask_size=None,
        ts_ns=1,
    )


def test_listed_client_is_served_over_curve(ctx: Ctx, setup: Setup, broker: Broker) -> None:
    client = CommandClient(ctx, setup.endpoints.commands, curve=setup.listed)
    assert client.call("broker", "ping", timeout=5) == {}
    sub = Subscriber(ctx, setup.endpoints.events_out, prefixes=[PREFIX_MARKET], curve=setup.listed)
    pub = Publisher(ctx, setup.endpoints.events_in, sender="md", curve=setup.listed)
    deadline = time.monotonic() + 5
    got = []
    while not got and time.monotonic() < deadline:
        pub.publish(quote("100"))
        if sub.poll(50):
            got = sub.drain()
    assert got and got[0].envelope.sender == "md"
    pub.close()
    sub.close()
    client.close()


def test_unlisted_client_gets_nothing_and_is_logged(
    ctx: Ctx, setup: Setup, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="posbus.bus.curve")
    stranger = CommandClient(ctx, setup.endpoints.commands, curve=setup.unlisted)
    with pytest.raises(BrokerUnavailable):
        stranger.call("broker", "ping", timeout=1)
    sub = Subscriber(
        ctx, setup.endpoints.events_out, prefixes=[PREFIX_MARKET], curve=setup.unlisted
    )
    pub = Publisher(ctx, setup.endpoints.events_in, sender="md", curve=setup.listed)
    for i in range(20):
        pub.publish(quote(str(100 + i)))
    assert not sub.poll(500)
    # The subscriber's handshake is refused asynchronously (the ZAP thread):
    # wait, bounded, until both refusals are counted.
    deadline = time.monotonic() + 10
    while broker.status()["curve_denied"] < 2 and time.monotonic() < deadline:
        sub.poll(50)
    assert broker.status()["curve_denied"] >= 2  # the command client and the subscriber
    denied = [r for r in caplog.records if r.getMessage() == "curve client denied"]
    assert denied and denied[0].client_key == setup.unlisted.keys.public.decode()  # type: ignore[attr-defined]
    # A listed client is still served next to the refused ones.
    listed = CommandClient(ctx, setup.endpoints.commands, curve=setup.listed)
    assert listed.call("broker", "ping", timeout=5) == {}
    for closable in (pub, sub, stranger, listed):
        closable.close()


def test_plaintext_tcp_is_refused(ctx: Ctx, setup: Setup) -> None:
    with pytest.raises(BusSecurityError):
        make_socket(ctx, zmq.ROUTER, bind=setup.endpoints.commands)
    with pytest.raises(BusSecurityError):
        make_socket(ctx, zmq.DEALER, connect=setup.endpoints.commands)


def test_generated_secret_key_is_owner_only_and_never_overwritten(keys: Path) -> None:
    public, secret = generate_keypair(keys / "k", "node1")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((keys / "k").stat().st_mode) == 0o700
    assert load_public_key(public) == load_keypair(secret).public
    assert "secret" not in repr(load_keypair(secret)).replace("secret=<hidden>", "")
    with pytest.raises(BusSecurityError):
        generate_keypair(keys / "k", "node1")
    secret.chmod(0o644)
    with pytest.raises(BusSecurityError):
        load_keypair(secret)


def test_admin_socket_on_tcp_needs_curve_and_shares_the_broker_allow_list(
    ctx: Ctx, setup: Setup, broker: Broker
) -> None:
    """Broker and admin server bind CURVE tcp in one context: one ZAP handler serves both."""
    endpoint = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(BusSecurityError):
        AdminServer(ctx, endpoint, {})
    stop = threading.Event()
    started = threading.Event()

    def serve() -> None:
        server = AdminServer(
            ctx, endpoint, {"status": lambda args: {"ok": True}}, curve=setup.server
        )
        started.set()
        server.run(stop, tick_ms=20)
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        listed = AdminClient(ctx, endpoint, curve=setup.listed)
        assert listed.request("status", timeout=5).result == {"ok": True}
        stranger = AdminClient(ctx, endpoint, curve=setup.unlisted)
        with pytest.raises(BrokerUnavailable):
            stranger.request("status", timeout=0.5)
        listed.close()
        stranger.close()
    finally:
        stop.set()
        thread.join(5)
