"""The admin socket: owner-only ipc, handlers by name, and bad requests that never kill it."""

from __future__ import annotations

import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from posbus.actors.model.errors import RiskViolation
from posbus.bus.admin import AdminClient, AdminServer, admin_endpoint
from posbus.bus.codec import decode, encode
from posbus.bus.endpoints import ipc_path
from posbus.bus.messages import Command, CommandArg, Reply
from posbus.bus.metrics import BusMetrics
from posbus.bus.sockets import SocketOptions, make_socket

Ctx = zmq.Context[zmq.Socket[bytes]]


@pytest.fixture
def ctx() -> Iterator[Ctx]:
    context: Ctx = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pba", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def status(args: dict[str, CommandArg]) -> dict[str, Any]:
    return {"role": "positions", "shard": "0/2"}


def inspect(args: dict[str, CommandArg]) -> dict[str, Any]:
    return {"actor": args["actor"], "state": {"qty": "1.5"}}


def refuse(args: dict[str, CommandArg]) -> dict[str, Any]:
    raise RiskViolation("halted")


def crash(args: dict[str, CommandArg]) -> dict[str, Any]:
    raise KeyError("bug")


def floats(args: dict[str, CommandArg]) -> dict[str, Any]:
    return {"pnl": 1.5}  # floats are not allowed in a reply


class ServerThread:
    """An AdminServer made and served on its own thread."""

    def __init__(self, ctx: Ctx, endpoint: str, metrics: BusMetrics) -> None:
        self.stop_event = threading.Event()
        self.started = threading.Event()
        self.server: AdminServer | None = None
        handlers = {
            "status": status,
            "inspect": inspect,
            "halt": refuse,
            "crash": crash,
            "floats": floats,
        }

        def run() -> None:
            self.server = AdminServer(ctx, endpoint, handlers, name="w1.admin", metrics=metrics)
            self.started.set()
            self.server.run(self.stop_event, tick_ms=20)
            self.server.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert self.started.wait(5)

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(5)
        assert not self._thread.is_alive()


@pytest.fixture
def served(ctx: Ctx, run_dir: Path) -> Iterator[tuple[str, ServerThread, BusMetrics]]:
    endpoint = admin_endpoint(run_dir, "positions-0")
    metrics = BusMetrics()
    server = ServerThread(ctx, endpoint, metrics)
    yield endpoint, server, metrics
    server.stop()


def test_admin_directory_is_0700_and_socket_is_0600(
    run_dir: Path, served: tuple[str, ServerThread, BusMetrics]
) -> None:
    endpoint, _, _ = served
    path = ipc_path(endpoint)
    assert path == run_dir / "admin" / "positions-0.sock"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(path.stat().st_mode)


def test_admin_commands_are_answered_by_their_handlers(
    ctx: Ctx, served: tuple[str, ServerThread, BusMetrics]
) -> None:
    endpoint, server, _ = served
    client = AdminClient(ctx, endpoint)
    assert client.request("status").result == {"role": "positions", "shard": "0/2"}
    reply = client.request("inspect", {"actor": "acc1:BTC/USDT"})
    assert reply.result == {"actor": "acc1:BTC/USDT", "state": {"qty": "1.5"}}
    assert server.server is not None and server.server.handled == 2
    client.close()


def test_failing_unknown_and_malformed_requests_get_error_replies_and_are_counted(
    ctx: Ctx, served: tuple[str, ServerThread, BusMetrics]
) -> None:
    endpoint, server, metrics = served
    client = AdminClient(ctx, endpoint)
    halted = client.request("halt")
    assert halted.error == {
        "type": "RiskViolation",
        "message": "risk limit: halted (reason=halted)",
        "transient": False,
    }
    crashed = client.request("crash")
    assert crashed.error is not None and crashed.error["type"] == "KeyError"
    bad_result = client.request("floats")
    assert bad_result.error is not None and bad_result.error["type"] == "WireError"
    unknown = client.request("reboot")
    assert unknown.error is not None and unknown.error["type"] == "UnknownCommand"
    # Raw garbage, a non-command envelope, and an oversized frame, from a bare DEALER.
    raw = make_socket(ctx, zmq.DEALER, connect=endpoint)
    raw.send(b"\xc1garbage")
    assert raw.poll(5000)
    garbage_reply = raw.recv()
    raw.send(encode(Reply.success("x"), seq=0, sender="x", ts_ns=1))
    assert raw.poll(5000)
    raw.recv()
    big = make_socket(
        ctx, zmq.DEALER, connect=endpoint, options=SocketOptions(max_msg_size=4 << 20)
    )
    big.send(b"\x00" * (2 << 20))  # over 1 MiB: libzmq drops this peer, the server lives on
    assert client.request("status").ok
    assert server.server is not None
    assert (server.server.errors, server.server.unknown, server.server.malformed) == (3, 1, 2)
    assert metrics.counter("admin_malformed") == 2
    assert decode(garbage_reply).message.error["type"] == "WireError"  # type: ignore[union-attr]
    # A REQ client works too: the server echoes its routing frames.
    req = make_socket(ctx, zmq.REQ, connect=endpoint)
    req.send(encode(Command("status", {}, "q1"), seq=0, sender="req", ts_ns=1))
    assert req.poll(5000)
    assert decode(req.recv()).message == Reply.success("q1", {"role": "positions", "shard": "0/2"})
    for sock in (raw, big, req):
        sock.close()
    client.close()
