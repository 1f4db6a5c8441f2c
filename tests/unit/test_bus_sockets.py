"""The socket factory sets the documented options on every socket and guards endpoints."""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from posbus.bus.endpoints import BusEndpoints, prepare_ipc_dir
from posbus.bus.errors import BusConfigError
from posbus.bus.sockets import SocketOptions, make_socket

Ctx = zmq.Context[zmq.Socket[bytes]]


@pytest.fixture
def ctx() -> Iterator[Ctx]:
    context: Ctx = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pbu", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_event_and_command_sockets_get_their_own_high_water_marks(ctx: Ctx) -> None:
    pub = make_socket(ctx, zmq.PUB, bind="inproc://a")
    dealer = make_socket(ctx, zmq.DEALER, connect="inproc://a")
    assert pub.getsockopt(zmq.MAXMSGSIZE) == 1 << 20
    assert (pub.getsockopt(zmq.SNDHWM), pub.getsockopt(zmq.RCVHWM)) == (100_000, 100_000)
    assert pub.getsockopt(zmq.LINGER) == 1_000  # publishers flush on close
    assert (dealer.getsockopt(zmq.SNDHWM), dealer.getsockopt(zmq.RCVHWM)) == (1_000, 1_000)
    assert dealer.getsockopt(zmq.LINGER) == 0


def test_custom_limits_are_applied(ctx: Ctx) -> None:
    sub = make_socket(
        ctx,
        zmq.SUB,
        connect="inproc://b",
        options=SocketOptions(max_msg_size=4096, event_hwm=10),
        immediate=True,
    )
    assert sub.getsockopt(zmq.MAXMSGSIZE) == 4096
    assert sub.getsockopt(zmq.RCVHWM) == 10
    assert sub.getsockopt(zmq.IMMEDIATE) == 1


def test_ipc_socket_file_is_owner_only_in_an_owner_only_directory(ctx: Ctx, run_dir: Path) -> None:
    endpoints = BusEndpoints.local(run_dir)
    router = make_socket(ctx, zmq.ROUTER, bind=endpoints.commands)
    path = run_dir / "bus" / "commands.sock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    router.close()


def test_loose_directory_is_tightened_to_0700(run_dir: Path) -> None:
    loose = run_dir / "loose"
    loose.mkdir(mode=0o755)
    prepare_ipc_dir(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700


def test_ipc_path_too_long_for_a_unix_socket_is_refused(run_dir: Path) -> None:
    with pytest.raises(BusConfigError):
        BusEndpoints.local(run_dir / ("x" * 120))


def test_bind_and_connect_are_exclusive(ctx: Ctx) -> None:
    with pytest.raises(BusConfigError):
        make_socket(ctx, zmq.PUB)
    with pytest.raises(BusConfigError):
        make_socket(ctx, zmq.PUB, bind="inproc://c", connect="inproc://c")
