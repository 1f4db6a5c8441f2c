"""Fuzzing a worker's service socket from the broker's side (a fake broker ROUTER in this process).

The broker is trusted, but a bug or a version skew there must not take a
worker down: every frame a ServiceWorker cannot read is counted `malformed`
in its metrics and dropped, a request whose body is not a valid command is
answered with an error reply and never reaches the owner, and the worker
keeps serving valid requests afterwards.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posbus.bus.codec import decode, encode
from posbus.bus.command_protocol import (
    DISCONNECT,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    WORKER_PROTOCOL,
)
from posbus.bus.heartbeat import HeartbeatConfig
from posbus.bus.messages import Command, Reply
from posbus.bus.metrics import BusMetrics
from posbus.bus.service_worker import ServiceWorker

Ctx = zmq.Context[zmq.Socket[bytes]]
KNOWN_KINDS = (READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT)


class Rig:
    """A fake broker ROUTER and one ServiceWorker connected to it, both owned by the test thread."""

    def __init__(self, ctx: Ctx, root: Path) -> None:
        endpoint = f"ipc://{root / 'workers.sock'}"
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(endpoint)
        self.metrics = BusMetrics()
        self.worker = ServiceWorker(
            ctx,
            endpoint,
            ["svc"],
            name="w1",
            heartbeat=HeartbeatConfig(interval_s=60.0),
            metrics=self.metrics,
        )
        assert self.router.poll(5_000, zmq.POLLIN)
        ready = self.router.recv_multipart()
        assert ready[1:3] == [WORKER_PROTOCOL, READY]
        self.identity = ready[0]

    def send(self, *frames: bytes) -> None:
        self.router.send_multipart([self.identity, *frames])

    def close(self) -> None:
        self.worker.close()
        self.router.close(linger=0)


@pytest.fixture
def rig() -> Iterator[Rig]:
    ctx: Ctx = zmq.Context()
    with tempfile.TemporaryDirectory(prefix="pbw", dir="/tmp") as name:
        r = Rig(ctx, Path(name))
        try:
            yield r
        finally:
            r.close()
            ctx.destroy(linger=0)


def _poll_until_quiet(worker: ServiceWorker) -> list[object]:
    """Drain everything the worker was sent (bounded): the requests it handed over."""
    got: list[object] = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        batch = worker.poll(50)
        got += batch
        if not batch and worker.socket is not None and not worker.socket.poll(0, zmq.POLLIN):
            return got
    return got


@st.composite
def unreadable_frames(draw: st.DrawFn) -> list[bytes]:
    """Multipart messages a worker cannot read: wrong protocol, unknown kind, wrong frame count."""
    case = draw(st.integers(0, 2))
    if case == 0:
        first = draw(st.binary(max_size=8).filter(lambda b: b != WORKER_PROTOCOL))
        return [first, *draw(st.lists(st.binary(max_size=8), max_size=3))]
    if case == 1:
        kind = draw(st.binary(min_size=1, max_size=2).filter(lambda k: k not in KNOWN_KINDS))
        return [WORKER_PROTOCOL, kind, *draw(st.lists(st.binary(max_size=8), max_size=3))]
    # a REQUEST with too few or too many frames
    extra = draw(st.lists(st.binary(max_size=8), max_size=5).filter(lambda f: len(f) != 3))
    return [WORKER_PROTOCOL, REQUEST, *extra]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=unreadable_frames())
def test_unreadable_broker_frames_are_counted_and_dropped(rig: Rig, frames: list[bytes]) -> None:
    before = rig.metrics.counter("malformed")
    rig.send(*frames)
    assert _poll_until_quiet(rig.worker) == []
    assert rig.metrics.counter("malformed") == before + 1
    assert not rig.router.poll(0, zmq.POLLIN)  # no reply: there is nobody to answer


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=64), service=st.binary(max_size=8))
def test_garbage_request_body_gets_an_error_reply_and_never_reaches_the_owner(
    rig: Rig, body: bytes, service: bytes
) -> None:
    before = rig.metrics.counter("malformed")
    rig.send(WORKER_PROTOCOL, REQUEST, b"client-1", service, body)
    assert _poll_until_quiet(rig.worker) == []
    assert rig.metrics.counter("malformed") == before + 1
    assert rig.router.poll(2_000, zmq.POLLIN)
    reply_frames = rig.router.recv_multipart()
    assert reply_frames[1:4] == [WORKER_PROTOCOL, REPLY, b"client-1"]
    reply = decode(reply_frames[4]).message
    assert isinstance(reply, Reply) and not reply.ok
    assert reply.error is not None and reply.error["type"] == "WireError"


def test_worker_serves_a_valid_request_after_garbage(rig: Rig) -> None:
    for frames in ([b"junk"], [WORKER_PROTOCOL, b"\x77"], [WORKER_PROTOCOL, REQUEST, b"c"]):
        rig.send(*frames)
    command = Command("ping", {}, "req-1")
    rig.send(
        WORKER_PROTOCOL, REQUEST, b"client-2", b"svc", encode(command, seq=1, sender="c", ts_ns=1)
    )
    requests = _poll_until_quiet(rig.worker)
    assert [r.command for r in requests] == [command]  # type: ignore[attr-defined]
    assert rig.metrics.counter("malformed") == 3
