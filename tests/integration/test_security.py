"""Security checks: CURVE keys, owner-only sockets, size limits on every socket, no secret shown.

- CURVE (tcp): a client that claims a listed public key without its secret,
  a client with the wrong server key and a plaintext client get nothing
  (tests/integration/test_bus_curve.py and test_stack_curve.py cover the
  listed and the unlisted key; these are the other ways to be wrong).
- Every socket the broker and a worker's I/O thread create has
  ZMQ_MAXMSGSIZE set (recorded from the sockets themselves), and a real
  stack survives an oversized frame on every socket it listens on.
- Real stacks with every logger at DEBUG: the run directory and every
  socket are owner-only; neither the exchange credentials (in every
  process's environment) nor the CURVE secret keys (loaded by every process
  of a tcp stack) appear in any file of the run directory (logs, run.json)
  or any `status`, `metrics`, `actors`, `inspect`, `positions`, `orders` or
  `risk` output. (The ccxt gateway's own log lines and inspect view are
  checked in-process by test_ccxt_config.py: `posbus up` does not start the
  ccxt gateway yet.)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import zmq
from stack_harness import Stack, wait_for, where
from test_stack_curve import free_base_port, make_keys

from posbus.actors.worker_io import IOConfig, WorkerIO
from posbus.bus.admin import admin_endpoint
from posbus.bus.broker import Broker
from posbus.bus.client import CommandClient
from posbus.bus.codec import decode, encode
from posbus.bus.curve import CurveClient, CurveServer, KeyPair, generate_keypair, load_keypair
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.errors import BrokerUnavailable
from posbus.bus.heartbeat import HeartbeatConfig
from posbus.bus.messages import Command, Reply
from posbus.bus.sockets import SocketOptions

Ctx = zmq.Context[zmq.Socket[bytes]]

API_KEY = "AKIA-posbus-test-key-8c1f2e"
SECRET = "s3cr3t-posbus-test-9d7a4b61e0"


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
def ctx() -> Iterator[Ctx]:
    context: Ctx = zmq.Context()
    yield context
    context.destroy(linger=0)


# -- CURVE: the wrong ways to hold a key ---------------------------------------------------------


class Keys:
    """A broker key pair, one listed client and one stranger (not listed)."""

    def __init__(self, root: Path) -> None:
        _, broker_secret = generate_keypair(root / "server", "broker")
        _, listed_secret = generate_keypair(root / "clients", "listed")
        _, stranger_secret = generate_keypair(root / "strangers", "stranger")
        allowed = root / "allowed"
        allowed.mkdir()
        shutil.copy(root / "clients" / "listed.key", allowed / "listed.key")
        self.server = CurveServer(load_keypair(broker_secret), allowed)
        self.listed = load_keypair(listed_secret)
        self.stranger = load_keypair(stranger_secret)
        self.endpoints = BusEndpoints(*(f"tcp://127.0.0.1:{p}" for p in free_ports(4)))


@pytest.fixture
def curve_broker(ctx: Ctx) -> Iterator[tuple[Broker, Keys]]:
    root = Path(tempfile.mkdtemp(prefix="pbs", dir="/tmp"))
    keys = Keys(root)
    broker = Broker(keys.endpoints, curve=keys.server, context=ctx)
    stop = threading.Event()
    thread = threading.Thread(target=broker.run, args=(stop,), daemon=True)
    thread.start()
    assert broker.ready.wait(5)
    try:
        yield broker, keys
    finally:
        stop.set()
        thread.join(5)
        shutil.rmtree(root, ignore_errors=True)


def test_client_claiming_a_listed_public_key_without_its_secret_gets_nothing(
    ctx: Ctx, curve_broker: tuple[Broker, Keys]
) -> None:
    broker, keys = curve_broker
    impostor = KeyPair(public=keys.listed.public, secret=keys.stranger.secret)
    client = CommandClient(
        ctx, keys.endpoints.commands, curve=CurveClient(impostor, keys.server.keys.public)
    )
    try:
        with pytest.raises(BrokerUnavailable):
            client.call("broker", "ping", timeout=1)
    finally:
        client.close()
    assert broker.metrics.received("command") == 0


def test_client_with_the_wrong_server_key_gets_nothing(
    ctx: Ctx, curve_broker: tuple[Broker, Keys]
) -> None:
    broker, keys = curve_broker
    wrong_server = keys.stranger.public
    client = CommandClient(
        ctx, keys.endpoints.commands, curve=CurveClient(keys.listed, wrong_server)
    )
    try:
        with pytest.raises(BrokerUnavailable):
            client.call("broker", "ping", timeout=1)
    finally:
        client.close()
    assert broker.metrics.received("command") == 0


def test_plaintext_client_on_a_curve_endpoint_gets_nothing(
    ctx: Ctx, curve_broker: tuple[Broker, Keys]
) -> None:
    broker, keys = curve_broker
    # A raw socket: make_socket itself refuses tcp without CURVE.
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(keys.endpoints.commands)
    ping = encode(Command("ping", {}, "p1"), seq=0, sender="plain", ts_ns=1)
    raw.send_multipart([b"PBC1", b"broker", ping])
    assert not raw.poll(1_000, zmq.POLLIN)
    raw.close()
    assert broker.metrics.received("command") == 0
    # The listed key is still served on the same endpoint.
    listed = CommandClient(
        ctx, keys.endpoints.commands, curve=CurveClient(keys.listed, keys.server.keys.public)
    )
    assert listed.call("broker", "ping", timeout=5) == {}
    listed.close()


# -- ZMQ_MAXMSGSIZE on every socket --------------------------------------------------------------


class RecordingSocket(zmq.Socket):  # type: ignore[type-arg]
    """Records its type and MAXMSGSIZE when closed (on its owner thread)."""

    record: list[tuple[int, int]]

    def close(self, linger: int | None = None) -> None:
        if not self.closed:
            self.record.append((self.type, self.getsockopt(zmq.MAXMSGSIZE)))
        super().close(linger=linger)


class RecordingContext(zmq.Context):  # type: ignore[type-arg]
    """A context whose sockets report their MAXMSGSIZE when they close."""

    _socket_class = RecordingSocket
    record: list[tuple[int, int]]

    def __init__(self) -> None:
        super().__init__()
        self.record: list[tuple[int, int]] = []

    def socket(self, socket_type: int, **kwargs: Any) -> Any:
        sock = super().socket(socket_type, **kwargs)
        sock.record = self.record
        return sock


def test_every_socket_of_the_broker_and_a_worker_has_the_size_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = 64 * 1024
    options = SocketOptions(max_msg_size=limit)
    context = RecordingContext()
    with tempfile.TemporaryDirectory(prefix="pbm", dir="/tmp") as name:
        run_dir = Path(name)
        endpoints = BusEndpoints.local(run_dir)
        broker = Broker(endpoints, options=options, context=context)
        stop = threading.Event()
        thread = threading.Thread(target=broker.run, args=(stop,), daemon=True)
        thread.start()
        assert broker.ready.wait(5)
        # WorkerIO takes the process's shared context: make it ours.
        monkeypatch.setattr(zmq.Context, "instance", classmethod(lambda cls: context))
        io = WorkerIO(
            IOConfig(
                name="w",
                endpoints=endpoints,
                admin_endpoint=admin_endpoint(run_dir, "w"),
                services=["svc"],
                prefixes=[b"md|"],
                heartbeat=HeartbeatConfig(interval_s=0.2),
                options=options,
            ),
            on_request=lambda request: {},
        )
        io.start()
        io.stop()
        stop.set()
        thread.join(5)
    context.term()
    types = sorted(t for t, _ in context.record)
    broker_types = [zmq.XSUB, zmq.XPUB, zmq.ROUTER, zmq.ROUTER]
    # The worker: PUB, SUB, DEALER (service), DEALER (client), ROUTER (admin).
    worker_types = [zmq.PUB, zmq.SUB, zmq.DEALER, zmq.DEALER, zmq.ROUTER]
    assert types == sorted([*broker_types, *worker_types])
    assert {size for _, size in context.record} == {limit}


# -- real stacks: permissions and secrets ------------------------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """An ipc stack with exchange credentials in its environment and every logger at DEBUG."""
    saved = {k: os.environ.get(k) for k in ("POSBUS_API_KEY", "POSBUS_API_SECRET")}
    os.environ["POSBUS_API_KEY"] = API_KEY
    os.environ["POSBUS_API_SECRET"] = SECRET
    root = Path(tempfile.mkdtemp(prefix="pbs-", dir="/tmp"))
    stack = Stack(root, steps_per_s=20)
    text = stack.config.read_text(encoding="utf-8")
    stack.config.write_text(text.replace('level = "INFO"', 'level = "DEBUG"'), encoding="utf-8")
    try:
        stack.up()
        yield stack
    finally:
        stack.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tcp_stack() -> Iterator[tuple[Stack, Path]]:
    """A tcp stack with CURVE: the broker's and the workers' secret keys are loaded everywhere."""
    with tempfile.TemporaryDirectory(prefix="pbt-", dir="/tmp") as name:
        root = Path(name)
        keys, allowed = root / "keys", root / "allowed"
        make_keys(keys, allowed, ["broker", "workers"], ["workers"])
        bus = (
            'transport = "tcp"\n'
            'host = "127.0.0.1"\n'
            'bind = "127.0.0.1"\n'
            f"base_port = {free_base_port()}\n"
            f'curve_server_secret = "{keys / "broker.key_secret"}"\n'
            f'curve_server_public = "{keys / "broker.key"}"\n'
            f'curve_client_secret = "{keys / "workers.key_secret"}"\n'
            f'allowed_clients = "{allowed}"\n'
        )
        stack = Stack(root, bus_extra=bus)
        stack.config.write_text(
            stack.config.read_text(encoding="utf-8").replace('level = "INFO"', 'level = "DEBUG"'),
            encoding="utf-8",
        )
        stack.up()
        try:
            yield stack, keys
        finally:
            stack.close()


def test_run_directory_and_every_socket_are_owner_only(stack: Stack) -> None:
    for folder in ("admin", "bus"):
        directory = stack.run_dir / folder
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        sockets = sorted(directory.glob("*.sock"))
        assert sockets, directory
        for path in sockets:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    admin = {p.stem for p in (stack.run_dir / "admin").glob("*.sock")}
    assert {"broker", "gateway.default", "positions.0", "risk"} <= admin


def _everything_shown(stack: Stack) -> str:
    """Every status, metrics, actors and inspect output of every worker, as one text."""
    out: list[Any] = [stack.status(), stack.json("positions"), stack.json("orders")]
    out.append(stack.json("risk"))
    for worker in sorted(p.stem for p in (stack.run_dir / "admin").glob("*.sock")):
        for command in ("status", "metrics"):
            out.append(stack.admin(worker, command))
        if worker in ("broker", "feed"):  # processes without actors
            continue
        actors = stack.admin(worker, "actors")
        out.append(actors)
        for actor in actors["actors"]:
            out.append(stack.admin(worker, "inspect", actor["name"]))
    return json.dumps(out)


def _files_containing(root: Path, secrets: list[str]) -> list[str]:
    """Every file under `root` (logs, run.json, pid files...) holding one of `secrets`."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith((".sqlite", ".sqlite-wal", ".sqlite-shm")):
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.name}: {s[:4]}..." for s in secrets if s in text]
    return found


def _trade_and_show(stack: Stack) -> str:
    stack.json("order", "buy", "BTC/USDT", "0.01")
    wait_for(
        "the fill",
        lambda: where(
            stack.positions(),
            lambda p: "BTC/USDT" in p and Decimal(str(p["BTC/USDT"]["qty"])) == Decimal("0.01"),
        ),
    )
    shown = _everything_shown(stack)
    assert "gateway" in shown and "BTC/USDT" in shown  # the views were really read
    logs = [p.read_text(encoding="utf-8") for p in (stack.run_dir / "logs").glob("*.log")]
    # DEBUG lines were written: the search below has something to search.
    assert sum('"level":"DEBUG"' in text for text in logs) >= 1
    return shown


def test_no_exchange_credential_in_any_log_line_or_inspect_output(stack: Stack) -> None:
    """The credentials are in every process's environment; no log file or view shows them."""
    shown = _trade_and_show(stack)
    for secret in (API_KEY, SECRET):
        assert secret not in shown
    assert _files_containing(stack.run_dir, [API_KEY, SECRET]) == []


def test_no_curve_secret_key_in_any_log_line_or_inspect_output(
    tcp_stack: tuple[Stack, Path],
) -> None:
    stack, keys = tcp_stack
    secrets = [load_keypair(keys / f"{n}.key_secret").secret for n in ("broker", "workers")]
    texts = [s.decode() for s in secrets if s is not None]
    assert len(texts) == 2
    shown = _trade_and_show(stack)
    for secret in texts:
        assert secret not in shown
    assert _files_containing(stack.run_dir, texts) == []


# -- oversized frames on every socket of a real stack --------------------------------------------


OVERSIZED = b"\x00" * ((1 << 20) + 1)  # one byte over the default ZMQ_MAXMSGSIZE


def test_oversized_frame_on_every_socket_is_dropped_and_every_worker_stays(
    stack: Stack, ctx: Ctx
) -> None:
    before = {w["name"]: w["pid"] for w in wait_for("serving", stack.all_serving)["workers"]}
    bus = stack.run_dir / "bus"
    admin = sorted((stack.run_dir / "admin").glob("*.sock"))
    targets = [bus / "commands.sock", bus / "workers.sock", *admin]
    pub = ctx.socket(zmq.PUB)
    pub.connect(f"ipc://{bus / 'events-in.sock'}")
    sockets = [pub]
    for path in targets:
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(f"ipc://{path}")
        sockets.append(dealer)
    for sock in sockets[1:]:
        assert sock.poll(2_000, zmq.POLLOUT)
        sock.send(OVERSIZED)
    for prefix in (b"md|", b"ex|default|BTC/USDT|", b"rk|resync|"):
        pub.send(prefix + OVERSIZED)
    # The peers that sent too much lost their connection: nothing comes back on the admin ones.
    for sock in sockets[3:]:
        assert not sock.poll(300, zmq.POLLIN)
    for sock in sockets:
        sock.close(linger=0)
    doc = wait_for("every worker serving", stack.all_serving)
    assert {w["name"]: w["pid"] for w in doc["workers"]} == before
    # ...and each admin socket still answers a normal request on a new connection.
    for path in targets[2:]:
        dealer = ctx.socket(zmq.DEALER)
        dealer.connect(f"ipc://{path}")
        dealer.send(encode(Command("status", {}, "s1"), seq=0, sender="t", ts_ns=time.time_ns()))
        assert dealer.poll(5_000, zmq.POLLIN), path
        reply = decode(dealer.recv()).message
        assert isinstance(reply, Reply) and reply.ok, path
        dealer.close(linger=0)
