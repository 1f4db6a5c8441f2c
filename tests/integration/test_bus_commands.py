"""Commands through a real broker: routing by service name, typed errors, timeouts, heartbeats.

The broker and each worker run in their own thread (each owns its sockets);
every wait is bounded by a deadline; nothing sleeps.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from posbus.bus.broker import Broker
from posbus.bus.client import CommandClient
from posbus.bus.codec import decode, encode
from posbus.bus.command_protocol import CLIENT_PROTOCOL
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.envelope import Envelope
from posbus.bus.errors import CommandFailed, UnknownOutcome
from posbus.bus.heartbeat import HeartbeatConfig
from posbus.bus.messages import Command, Reply, RiskEvent
from posbus.bus.service_worker import Request, ServiceWorker
from posbus.bus.sockets import make_socket
from posbus.bus.subscriber import Received, Subscriber

# Expiry after 0.5 s of silence: quick tests, yet no false alarm on a loaded 2-core host.
FAST = HeartbeatConfig(interval_s=0.1, liveness=5, reconnect_initial_s=0.1, reconnect_max_s=0.4)

Ctx = zmq.Context[zmq.Socket[bytes]]
Handler = Callable[[Request], Reply | None]


@pytest.fixture
def ctx() -> Iterator[Ctx]:
    context: Ctx = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def endpoints() -> Iterator[BusEndpoints]:
    path = Path(tempfile.mkdtemp(prefix="pb", dir="/tmp"))
    yield BusEndpoints.local(path)
    shutil.rmtree(path, ignore_errors=True)


class BrokerThread:
    """A broker on its own thread; `stop()` joins it (bounded)."""

    def __init__(self, ctx: Ctx, endpoints: BusEndpoints) -> None:
        self.broker = Broker(endpoints, context=ctx, heartbeat=FAST)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.broker.run, args=(self._stop,), daemon=True)
        self._thread.start()
        assert self.broker.ready.wait(5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive()


class WorkerThread:
    """A ServiceWorker created and served on its own thread; `pause` stops its polling."""

    running: list[WorkerThread] = []

    def __init__(self, ctx: Ctx, endpoint: str, services: list[str], handler: Handler) -> None:
        self.ctx, self.endpoint, self.services, self.handler = ctx, endpoint, services, handler
        self.stop_event = threading.Event()
        self.paused = threading.Event()
        self.started = threading.Event()
        self.requests: list[Request] = []
        self.worker: ServiceWorker | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        WorkerThread.running.append(self)
        assert self.started.wait(5)

    def _run(self) -> None:
        worker = ServiceWorker(
            self.ctx, self.endpoint, self.services, name=f"w-{self.services[0]}", heartbeat=FAST
        )
        self.worker = worker
        self.started.set()
        while not self.stop_event.is_set():
            if self.paused.is_set():
                # Silent on purpose (no heartbeats): wait for stop, bounded.
                self.stop_event.wait(0.05)
                continue
            for request in worker.poll(20):
                self.requests.append(request)
                reply = self.handler(request)
                if reply is not None:
                    worker.reply(request, reply)
        worker.close()

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(5)
        assert not self._thread.is_alive()


@pytest.fixture(autouse=True)
def stop_workers(ctx: Ctx) -> Iterator[None]:
    """Stop every worker thread before the context goes, even when a test failed."""
    yield
    while WorkerThread.running:
        WorkerThread.running.pop().stop()


def echo(request: Request) -> Reply:
    return Reply.success(
        request.command.request_id, {"service": request.service, "name": request.command.name}
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        event.wait(0.01)
    return True


def registered(client: CommandClient, service: str) -> Callable[[], bool]:
    def check() -> bool:
        # A read, so re-sent when unanswered: right after a broker restart the
        # client's first request may still go down the dead connection.
        services = client.call("broker", "services", timeout=5, idempotent=True)["services"]
        return bool(services.get(service))

    return check


@pytest.fixture
def broker(ctx: Ctx, endpoints: BusEndpoints) -> Iterator[BrokerThread]:
    b = BrokerThread(ctx, endpoints)
    yield b
    b.stop()


@pytest.fixture
def client(ctx: Ctx, endpoints: BusEndpoints, broker: BrokerThread) -> Iterator[CommandClient]:
    c = CommandClient(ctx, endpoints.commands)
    assert c.call("broker", "ping") == {}
    yield c
    c.close()


def test_request_is_routed_to_the_worker_of_the_named_service(
    ctx: Ctx, endpoints: BusEndpoints, client: CommandClient
) -> None:
    gw = WorkerThread(ctx, endpoints.workers, ["gateway.acc1"], echo)
    pos = WorkerThread(ctx, endpoints.workers, ["positions.0", "positions.1"], echo)
    assert wait_for(registered(client, "positions.1"))
    assert wait_for(registered(client, "gateway.acc1"))
    reply = client.request("positions.1", Command("inspect", {"actor": "p1"}, "r1"))
    assert reply == Reply.success("r1", {"service": "positions.1", "name": "inspect"})
    assert client.call("gateway.acc1", "halt") == {"service": "gateway.acc1", "name": "halt"}
    assert [r.service for r in gw.requests] == ["gateway.acc1"]
    assert [r.service for r in pos.requests] == ["positions.1"]
    gw.stop()
    pos.stop()


def test_unknown_service_gets_a_typed_error_reply(client: CommandClient) -> None:
    reply = client.request("nobody", Command("halt", {}, "r2"))
    assert not reply.ok
    assert reply.error == {
        "type": "UnknownService",
        "message": "unknown service 'nobody': no worker offers it",
        "transient": False,
    }
    with pytest.raises(CommandFailed) as failed:
        client.call("nobody", "halt")
    assert failed.value.error_type == "UnknownService"


def test_service_whose_worker_left_is_unavailable_and_transient(
    ctx: Ctx, endpoints: BusEndpoints, client: CommandClient
) -> None:
    w = WorkerThread(ctx, endpoints.workers, ["risk"], echo)
    assert wait_for(registered(client, "risk"))
    w.stop()  # sends DISCONNECT
    assert wait_for(lambda: not registered(client, "risk")())
    reply = client.request("risk", Command("halt", {}, "r3"))
    assert reply.error is not None
    assert (reply.error["type"], reply.error["transient"]) == ("ServiceUnavailable", True)


def test_a_reply_beyond_the_size_limit_becomes_a_typed_error_not_a_timeout(
    ctx: Ctx, endpoints: BusEndpoints, client: CommandClient
) -> None:
    def huge(request: Request) -> Reply:
        if request.command.name == "small":
            return echo(request)
        return Reply.success(request.command.request_id, {"rows": ["x" * 1_000] * 2_000})

    WorkerThread(ctx, endpoints.workers, ["positions.0"], huge)
    assert wait_for(registered(client, "positions.0"))
    # A timeout would raise UnknownOutcome: a reply, with a typed error, is the answer.
    reply = client.request("positions.0", Command("list", {}, "r-big"), timeout=30)
    assert reply.error is not None
    assert (reply.request_id, reply.error["type"]) == ("r-big", "ReplyTooLarge")
    assert "exceeds the message size limit" in reply.error["message"]
    # The worker goes on serving.
    assert client.call("positions.0", "small") == {"service": "positions.0", "name": "small"}


def test_timeout_raises_unknown_outcome_and_is_never_resent(
    ctx: Ctx, endpoints: BusEndpoints, client: CommandClient
) -> None:
    silent = WorkerThread(ctx, endpoints.workers, ["gateway.acc1"], lambda request: None)
    assert wait_for(registered(client, "gateway.acc1"))
    with pytest.raises(UnknownOutcome) as outcome:
        client.request("gateway.acc1", Command("order", {"qty": "1"}, "r4"), timeout=0.3)
    assert outcome.value.request_id == "r4"
    assert outcome.value.transient is False
    # The worker saw the order exactly once: a state-changing command is not retried.
    assert wait_for(lambda: len(silent.requests) == 1)
    assert not wait_for(lambda: len(silent.requests) > 1, timeout=0.3)
    silent.stop()


def test_idempotent_request_is_resent_with_the_same_request_id(
    ctx: Ctx, endpoints: BusEndpoints, client: CommandClient
) -> None:
    answered: list[str] = []

    def second_time_lucky(request: Request) -> Reply | None:
        answered.append(request.command.request_id)
        return None if len(answered) == 1 else echo(request)

    w = WorkerThread(ctx, endpoints.workers, ["positions.0"], second_time_lucky)
    assert wait_for(registered(client, "positions.0"))
    reply = client.request(
        "positions.0", Command("positions", {}, "r5"), timeout=0.3, idempotent=True
    )
    assert reply.ok
    assert answered == ["r5", "r5"]
    w.stop()


def test_silent_worker_is_reported_down_then_up_on_the_event_bus(
    ctx: Ctx, endpoints: BusEndpoints, client: CommandClient
) -> None:
    sub = Subscriber(ctx, endpoints.events_out, prefixes=[b"rk|worker_"])
    w = WorkerThread(ctx, endpoints.workers, ["risk"], echo)
    events: list[Received] = []

    def saw(event: str) -> Callable[[], bool]:
        def check() -> bool:
            if sub.poll(10):
                events.extend(sub.drain())
            return bool(events) and events[-1].envelope.message.event == event  # type: ignore[union-attr]

        return check

    assert wait_for(registered(client, "risk"))
    assert wait_for(saw("worker_up"))  # its first registration
    seen_before = len(events)
    w.paused.set()  # no more heartbeats
    assert wait_for(saw("worker_down"), timeout=5)
    # Exactly one event for the silence: the worker goes down once (not up, not twice).
    assert [e.envelope.message.event for e in events[seen_before:]] == ["worker_down"]  # type: ignore[union-attr]
    down = events[-1].envelope.message
    assert isinstance(down, RiskEvent)
    assert (down.state, down.previous_state) == ("down", "up")
    assert "w-risk" in down.reason
    assert client.request("risk", Command("halt", {}, "r6")).error["type"] == "ServiceUnavailable"  # type: ignore[index]
    w.paused.clear()  # it speaks again: the broker asks it to register, it comes back
    assert wait_for(saw("worker_up"), timeout=5)
    assert client.call("risk", "status") == {"service": "risk", "name": "status"}
    w.stop()
    sub.close()


def test_worker_reconnects_after_the_broker_restarts(ctx: Ctx, endpoints: BusEndpoints) -> None:
    first = BrokerThread(ctx, endpoints)
    w = WorkerThread(ctx, endpoints.workers, ["positions.0"], echo)
    c = CommandClient(ctx, endpoints.commands)
    assert c.call("broker", "ping") == {}
    assert wait_for(registered(c, "positions.0"))
    first.stop()
    assert w.worker is not None
    assert wait_for(lambda: not w.worker.connected_to_broker)  # type: ignore[union-attr]
    second = BrokerThread(ctx, endpoints)
    # Reconnect delay is 0.1 s doubling to 0.4 s: well within 5 s.
    assert wait_for(registered(c, "positions.0"), timeout=5)
    assert c.call("positions.0", "positions") == {"service": "positions.0", "name": "positions"}
    assert w.worker.reconnects >= 1  # type: ignore[union-attr]
    c.close()
    w.stop()
    second.stop()


def test_worker_lost_with_a_request_in_flight_answers_unknown_outcome(
    ctx: Ctx, endpoints: BusEndpoints, client: CommandClient
) -> None:
    w = WorkerThread(ctx, endpoints.workers, ["gateway.acc1"], lambda request: None)
    assert wait_for(registered(client, "gateway.acc1"))

    def vanish(request: Request) -> None:
        w.paused.set()  # goes silent holding the request

    w.handler = vanish
    with pytest.raises(UnknownOutcome):
        client.call("gateway.acc1", "order", {"qty": "1"}, timeout=5)
    w.stop()


def test_garbage_on_command_sockets_is_answered_or_dropped_and_counted(
    ctx: Ctx, endpoints: BusEndpoints, broker: BrokerThread, client: CommandClient
) -> None:
    raw_client = make_socket(ctx, zmq.DEALER, connect=endpoints.commands)
    raw_worker = make_socket(ctx, zmq.DEALER, connect=endpoints.workers)
    raw_client.send(b"\xff\x00garbage")
    raw_client.send_multipart([b"PBC1", b"risk", b"\xc1 not msgpack"])
    raw_worker.send_multipart([b"junk"])
    raw_worker.send_multipart([b"PBW1", b"\x09", b"?"])  # unknown worker, unknown type
    # The client-side garbage gets error replies on its own route.
    replies = []
    deadline = time.monotonic() + 5
    while len(replies) < 2 and time.monotonic() < deadline:
        if raw_client.poll(50):
            replies.append(raw_client.recv_multipart())
    assert [frames[0] for frames in replies] == [b"PBC1", b"PBC1"]
    # The unknown worker is told to register again.
    assert raw_worker.poll(2000)
    assert raw_worker.recv_multipart() == [b"PBW1", b"\x05"]
    assert wait_for(lambda: broker.broker.metrics.counter("malformed") >= 3)
    assert client.call("broker", "ping") == {}  # still serving
    raw_client.close()
    raw_worker.close()


def test_each_broker_run_publishes_as_a_new_sender(ctx: Ctx, endpoints: BusEndpoints) -> None:
    """A restarted broker's seq restarts at 1: a new sender name keeps it from looking stale."""
    first = Broker(endpoints, context=ctx)
    second = Broker(endpoints, context=ctx)
    assert first.event_sender.startswith("broker.")
    assert first.event_sender != second.event_sender


def test_worker_that_reregisters_can_still_answer_its_request(
    ctx: Ctx, endpoints: BusEndpoints, client: CommandClient
) -> None:
    """A reconnect (READY again under the same name) keeps the worker's requests in flight."""
    raw = make_socket(ctx, zmq.DEALER, connect=endpoints.workers, identity=b"w-raw")
    raw.send_multipart([b"PBW1", b"\x01", b"gateway.acc9"])
    assert wait_for(registered(client, "gateway.acc9"))
    answer: dict[str, Reply] = {}

    def ask() -> None:
        inner = CommandClient(ctx, endpoints.commands)
        answer["reply"] = inner.request("gateway.acc9", Command("order", {}, "r9"), timeout=5)
        inner.close()

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    frames: list[bytes] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not frames:
        raw.send_multipart([b"PBW1", b"\x04"])  # heartbeat: this worker stays alive
        if raw.poll(50) and (got := raw.recv_multipart())[1] == b"\x02":
            frames = got
    assert frames, "the request never reached the worker"
    _, _, client_id, _, _ = frames
    raw.send_multipart([b"PBW1", b"\x01", b"gateway.acc9"])  # reconnected, registers again
    body = encode(Reply.success("r9", {"filled": "1"}), seq=0, sender="w-raw", ts_ns=1)
    raw.send_multipart([b"PBW1", b"\x03", client_id, body])
    asker.join(6)
    assert answer["reply"] == Reply.success("r9", {"filled": "1"})
    raw.close()


def _replies(ctx: Ctx, endpoint: str, service: bytes, commands: list[Command]) -> list[Envelope]:
    """Each command sent in turn by a bare DEALER, and the envelope of its reply."""
    dealer = make_socket(ctx, zmq.DEALER, connect=endpoint)
    out = []
    for index, command in enumerate(commands, start=1):
        frame = encode(command, seq=index, sender="raw", ts_ns=1)
        dealer.send_multipart([CLIENT_PROTOCOL, service, frame])
        assert dealer.poll(5000)
        out.append(decode(dealer.recv_multipart()[2]))
    dealer.close()
    return out


def test_the_replies_of_a_worker_and_of_the_broker_are_numbered_consecutively(
    ctx: Ctx, endpoints: BusEndpoints, client: CommandClient
) -> None:
    WorkerThread(ctx, endpoints.workers, ["risk"], echo)
    assert wait_for(registered(client, "risk"))
    worker = _replies(
        ctx, endpoints.commands, b"risk", [Command("a", {}, "r1"), Command("b", {}, "r2")]
    )
    assert [(e.sender, e.seq) for e in worker] == [("w-risk", 1), ("w-risk", 2)]
    broker = _replies(
        ctx,
        endpoints.commands,
        b"broker",
        [Command("ping", {}, "p1"), Command("reboot", {}, "p2"), Command("ping", {"x": 1}, "p3")],
    )
    seqs = [e.seq for e in broker]
    assert seqs == list(range(seqs[0], seqs[0] + 3)) and seqs[0] >= 1
    refused = [e.message for e in broker[1:]]
    assert [r.error["type"] for r in refused if isinstance(r, Reply) and r.error] == [
        "UnknownCommand",
        "InvalidArgument",
    ]
