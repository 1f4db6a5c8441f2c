"""WorkerIO: the one I/O thread of a worker process, owner of every bus socket of the process.

A worker talks to the bus through one publisher (PUB; a second one, named
`<sender>.md`, for the market data a gateway relays), one subscriber (SUB),
one service socket (DEALER to the broker's workers ROUTER, Majordomo-like:
it answers the worker's command services), one client socket (DEALER to the
broker's commands ROUTER: the worker's own requests to other services) and
its admin socket (ROUTER, ipc). ZeroMQ sockets are not thread-safe, so all of
them are created, used and closed by this thread only (docs/bus.md).

Other threads (actor threads mostly) reach the bus through the thread-safe
`Link` methods (`publish`, `send`, `request`, `call_soon`): each enqueues the
work and wakes the I/O thread through a pipe registered in its poller.
Received events are handed to the owner as one list per drain (batching
amortises the per-message cost). Received commands are handled on the worker's one control
thread (`control`), in arrival order, and every one is answered with a Reply
or a typed error reply; the admin socket has its own thread and socket.

The I/O thread never waits for an actor: an actor may itself be waiting for
the I/O thread (a position asking the risk supervisor), so anything that
asks an actor or starts one runs on the control thread. It must never die of
a bad frame: decoding failures are counted and dropped by the bus classes,
and a handler's failure becomes an error reply.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zmq

from posbus.actors.model.errors import PosbusError
from posbus.bus.admin import AdminHandler, AdminServer
from posbus.bus.codec import decode, encode
from posbus.bus.curve import CurveClient, CurveServer
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.errors import (
    BrokerUnavailable,
    ServiceUnavailable,
    UnknownOutcome,
    UnknownService,
)
from posbus.bus.heartbeat import HeartbeatConfig
from posbus.bus.messages import Command, Message, Reply
from posbus.bus.metrics import BusMetrics
from posbus.bus.publisher import Publisher
from posbus.bus.service_worker import Request, ServiceWorker
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.subscriber import GapHandler, Received, Subscriber
from posbus.bus.wire_error import WireError

logger = logging.getLogger(__name__)

Outcome = Callable[[str | None], None]
"""`on_outcome(reason)` of `WorkerIO.send`: why the command provably never reached its
service, or None (it was delivered, or may have been)."""

NOT_DELIVERED = frozenset({UnknownService.__name__, ServiceUnavailable.__name__})
"""Error replies of the broker that prove a command was not delivered (it had no worker)."""

CLIENT_PROTOCOL = b"PBC1"

EventHandler = Callable[[list[Received]], None]
RequestHandler = Callable[[Request], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class IOConfig:
    """Where a worker's sockets connect and how they are secured."""

    name: str
    endpoints: BusEndpoints
    admin_endpoint: str
    services: Sequence[str] = ()
    prefixes: Sequence[bytes] = ()
    curve: CurveClient | None = None
    admin_curve: CurveServer | None = None
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    options: SocketOptions = field(default_factory=SocketOptions)
    #: The sender name of this process's publisher; unique per incarnation so
    #: subscribers never take a restarted publisher's seq 1 for a stale frame.
    sender: str = ""
    tick_s: float = 0.0
    #: Most event frames one drain takes off the SUB socket. Large, so that a
    #: worker that fell behind (the socket holds many frames) conflates quotes
    #: across many of them at once; a worker that keeps up drains what there is
    #: (docs/bus.md: 50,000 measured better than 10,000 with 1,000 positions).
    event_batch: int = 50_000


@dataclass(slots=True)
class _Pending:
    future: Future[Reply]
    service: str
    deadline: float


class WorkerIO:
    """The I/O thread of one worker (see the module docstring).

    `start()` spawns the thread and returns once every socket is connected;
    `stop()` ends it and closes the sockets. The hooks run in the I/O thread:
    `on_events(batch)` for each drained batch, `on_request(request)` for each
    command (returns the reply's result or raises), `on_tick()` every
    `tick_s` seconds (when > 0), `on_gap(sender, expected, got)` from the
    subscriber.
    """

    def __init__(
        self,
        config: IOConfig,
        *,
        on_events: EventHandler | None = None,
        on_request: RequestHandler | None = None,
        admin_handlers: Mapping[str, AdminHandler] | None = None,
        on_tick: Callable[[], None] | None = None,
        on_gap: GapHandler | None = None,
        metrics: BusMetrics | None = None,
    ) -> None:
        self.config = config
        self.sender = config.sender or f"{config.name}.{os.getpid()}.{time.time_ns() % 10**9}"
        self.metrics = metrics if metrics is not None else BusMetrics()
        self._on_events = on_events
        self._on_request = on_request
        self._admin_handlers = dict(admin_handlers or {})
        self._on_tick = on_tick
        self._gap_hook = on_gap
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_pending = False
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"io-{config.name}", daemon=True)
        # One control thread: commands (and owner work that asks actors) run
        # there in arrival order, never on the I/O thread.
        self._control = ThreadPoolExecutor(1, thread_name_prefix=f"control-{config.name}")
        self._admin_thread = threading.Thread(
            target=self._run_admin, name=f"admin-{config.name}", daemon=True
        )
        self._admin_ready = threading.Event()
        self._pending: dict[str, _Pending] = {}
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        # Owned by the I/O thread once it runs.
        self.publisher: Publisher | None = None
        # Created on the first `publish_market` (a gateway relaying its venue's quotes).
        self.market_sender = f"{self.sender}.md"
        self.market_publisher: Publisher | None = None
        self.subscriber: Subscriber | None = None
        self.service: ServiceWorker | None = None
        self.admin: AdminServer | None = None
        self._client: zmq.Socket[bytes] | None = None

    # -- lifecycle (owner's thread) ------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the I/O thread; returns once its sockets exist. Raises what it failed with."""
        self._thread.start()
        if not self.ready.wait(timeout_s):
            raise TimeoutError(f"{self.config.name}: I/O thread not ready in {timeout_s} s")
        if self.failed is not None:
            raise self.failed
        self._admin_thread.start()
        if not self._admin_ready.wait(timeout_s):
            raise TimeoutError(f"{self.config.name}: admin socket not ready in {timeout_s} s")
        if self.failed is not None:
            raise self.failed

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the I/O thread to finish what is queued, close its sockets and end."""
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._admin_thread.is_alive():
            self._admin_thread.join(timeout_s)
        self._control.shutdown(wait=False, cancel_futures=True)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def alive(self) -> bool:
        """True while the I/O thread runs."""
        return self._thread.is_alive()

    # -- Link: thread-safe ------------------------------------------------------------------

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn()` in the I/O thread (any thread). Exceptions are logged, not raised."""
        self._queue.put(fn)
        self._wake()

    def control(self, fn: Callable[[], None]) -> None:
        """Run `fn()` on the control thread, after everything submitted before (any thread).

        Exceptions are logged and counted, never raised.
        """
        if self._stop.is_set():
            return
        self._control.submit(self._guard, "control", fn)

    def publish(self, topic: bytes, message: Message) -> None:
        """Publish `message` under `topic` (any thread; never blocks)."""
        self.call_soon(lambda: self._publish(topic, message))

    def publish_market(self, topic: bytes, message: Message) -> None:
        """Publish a market event through the market publisher (any thread; never blocks).

        Its sender is `market_sender`, with sequence numbers of its own: the
        main publisher's then count only what the owner journals (a gateway's
        execution signals: journal seq == bus seq), whatever the quote rate.
        """
        self.call_soon(lambda: self._publish_market(topic, message))

    def send(self, service: str, command: Command, on_outcome: Outcome | None = None) -> None:
        """Send `command` to `service` and do not wait (any thread).

        A failure reply that comes back later is logged and counted; nothing is
        re-sent. `on_outcome(reason)` runs once the send is over (in the I/O
        thread): with the reason when the failure proves the command never
        reached the service (no broker connection, or no worker of the
        service: NOT_DELIVERED), with None otherwise (delivered, or maybe).
        """
        future: Future[Reply] = Future()
        future.add_done_callback(lambda f: self._log_failed_send(service, command, f, on_outcome))
        self.call_soon(lambda: self._request(service, command, future, 30.0))

    def request(self, service: str, command: Command, timeout: float) -> Reply:
        """Send `command` to `service` and wait for its Reply (any thread but the I/O thread).

        Raises UnknownOutcome when no reply came within `timeout` seconds (it
        may have been executed: never re-sent here) and BrokerUnavailable
        when it could not be queued at all.
        """
        if threading.current_thread() is self._thread:
            return self.request_blocking(service, command, timeout)
        future: Future[Reply] = Future()
        self.call_soon(lambda: self._request(service, command, future, timeout))
        try:
            return future.result(timeout + 0.5)
        except TimeoutError as exc:
            raise UnknownOutcome(
                f"no reply from {service} within {timeout} s",
                service=service,
                request_id=command.request_id,
            ) from exc

    # -- I/O thread ---------------------------------------------------------------------------

    def request_blocking(self, service: str, command: Command, timeout: float) -> Reply:
        """`request` from inside the I/O thread: waits on the client socket only.

        Replies to other requests that arrive meanwhile are delivered to their
        futures; events and commands wait in their sockets until it returns.
        """
        future: Future[Reply] = Future()
        self._request(service, command, future, timeout)
        deadline = time.monotonic() + timeout
        assert self._client is not None
        while not future.done():
            left = deadline - time.monotonic()
            if left <= 0:
                self._pending.pop(command.request_id, None)
                raise UnknownOutcome(
                    f"no reply from {service} within {timeout} s",
                    service=service,
                    request_id=command.request_id,
                )
            if self._client.poll(int(left * 1000) + 1, zmq.POLLIN):
                self._read_replies()
        return future.result()

    def _wake(self) -> None:
        # One byte per wake-up, not per message: the I/O thread clears the flag
        # before it drains the queue, so an item put after that writes again.
        if self._wake_pending:
            return
        self._wake_pending = True
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:  # noqa: BLE001 - reported to start() in the owner's thread
            self.failed = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            self._loop()
        except Exception:
            logger.critical("I/O thread failed", exc_info=True, extra={"worker": self.config.name})
            self.failed = RuntimeError("I/O thread failed")
            raise
        finally:
            self._close()

    def _open(self) -> None:
        cfg = self.config
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.publisher = Publisher(
            context,
            cfg.endpoints.events_in,
            sender=self.sender,
            options=cfg.options,
            curve=cfg.curve,
            metrics=self.metrics,
        )
        if cfg.prefixes:
            self.subscriber = Subscriber(
                context,
                cfg.endpoints.events_out,
                prefixes=cfg.prefixes,
                on_gap=self._on_gap,
                max_batch=cfg.event_batch,
                options=cfg.options,
                curve=cfg.curve,
                metrics=self.metrics,
            )
        if cfg.services:
            self.service = ServiceWorker(
                context,
                cfg.endpoints.workers,
                list(cfg.services),
                name=cfg.name,
                heartbeat=cfg.heartbeat,
                options=cfg.options,
                curve=cfg.curve,
                metrics=self.metrics,
            )
        self._client = make_socket(
            context,
            zmq.DEALER,
            options=cfg.options,
            curve_client=cfg.curve,
            connect=cfg.endpoints.commands,
            immediate=True,
        )

    def _close(self) -> None:
        for closer in (
            self.publisher.close if self.publisher else None,
            self.market_publisher.close if self.market_publisher else None,
            self.subscriber.close if self.subscriber else None,
            self.service.close if self.service else None,
            self._client.close if self._client else None,
        ):
            if closer is not None:
                with contextlib.suppress(zmq.ZMQError):
                    closer()
        for request_id, pending in self._pending.items():
            if not pending.future.done():
                # Sent already: it may have been delivered (and acted on).
                pending.future.set_exception(
                    UnknownOutcome(
                        f"{self.config.name} is stopping; no reply from {pending.service}",
                        service=pending.service,
                        request_id=request_id,
                    )
                )

    def _loop(self) -> None:
        assert self._client is not None
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        poller.register(self._client, zmq.POLLIN)
        sub_socket = self.subscriber.socket if self.subscriber else None
        if sub_socket is not None:
            poller.register(sub_socket, zmq.POLLIN)
        service_socket: zmq.Socket[bytes] | None = None
        generation = -1
        tick_s = self.config.tick_s
        next_tick = time.monotonic() + tick_s if tick_s > 0 else None
        while True:
            self._drain_queue()
            if self._stop.is_set():
                return
            timeout_ms = 100
            if self.service is not None:
                timeout_ms = min(timeout_ms, max(0, self.service.tick()))
                current = self.service.socket
                if current is not service_socket or self.service.generation != generation:
                    # The service socket is replaced on every reconnect (None in between).
                    if service_socket is not None:
                        with contextlib.suppress(KeyError):
                            poller.unregister(service_socket)
                    service_socket = current
                    if service_socket is not None:
                        poller.register(service_socket, zmq.POLLIN)
                    generation = self.service.generation
            if next_tick is not None:
                timeout_ms = min(timeout_ms, max(0, int((next_tick - time.monotonic()) * 1000)))
            events = dict(poller.poll(timeout_ms))
            if self._wake_r in events:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
            self._drain_queue()
            if sub_socket is not None and sub_socket in events:
                assert self.subscriber is not None
                self._dispatch_events()
            if service_socket is not None and service_socket in events:
                assert self.service is not None
                if self.service.socket is service_socket:
                    for request in self.service.process():
                        self._serve(request)
            if self._client in events:
                self._read_replies()
            self._expire()
            if next_tick is not None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + tick_s
                if self._on_tick is not None:
                    self._guard("tick", self._on_tick)

    def _run_admin(self) -> None:
        cfg = self.config
        try:
            self.admin = AdminServer(
                zmq.Context.instance(),
                cfg.admin_endpoint,
                self._admin_handlers,
                name=f"{cfg.name}.admin",
                options=cfg.options,
                curve=cfg.admin_curve,
                metrics=self.metrics,
            )
        except BaseException as exc:  # noqa: BLE001 - reported to start() in the owner's thread
            self.failed = exc
            self._admin_ready.set()
            return
        self._admin_ready.set()
        try:
            self.admin.run(self._stop)
        finally:
            self.admin.close()

    def _dispatch_events(self) -> None:
        assert self.subscriber is not None
        batch = self.subscriber.drain()
        handler = self._on_events
        if batch and handler is not None:
            self._guard("events", lambda: handler(batch))

    def _guard(self, what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            # The process boundary: a hook's bug must not kill the I/O thread
            # (every actor would lose the bus); it is logged with its traceback and counted.
            self.metrics.count(f"hook_errors.{what}")
            logger.exception("worker hook failed", extra={"worker": self.config.name, "hook": what})

    def _drain_queue(self) -> None:
        self._wake_pending = False
        while True:
            try:
                fn = self._queue.get_nowait()
            except queue.Empty:
                return
            self._guard("call", fn)

    def _publish(self, topic: bytes, message: Message) -> None:
        assert self.publisher is not None
        self.publisher.publish(message, topic=topic, ts_ns=time.time_ns())

    def _publish_market(self, topic: bytes, message: Message) -> None:
        if self.market_publisher is None:
            cfg = self.config
            self.market_publisher = Publisher(
                zmq.Context.instance(),
                cfg.endpoints.events_in,
                sender=self.market_sender,
                options=cfg.options,
                curve=cfg.curve,
                metrics=self.metrics,
            )
        self.market_publisher.publish(message, topic=topic, ts_ns=time.time_ns())

    def _request(
        self, service: str, command: Command, future: Future[Reply], timeout: float
    ) -> None:
        assert self._client is not None
        frame = encode(command, seq=next(self._seq), sender=self.config.name, ts_ns=time.time_ns())
        try:
            self._client.send_multipart(
                [CLIENT_PROTOCOL, service.encode(), frame], flags=zmq.NOBLOCK
            )
        except zmq.Again:
            future.set_exception(
                BrokerUnavailable(f"cannot queue a request to {service}: no broker connection")
            )
            return
        self._pending[command.request_id] = _Pending(future, service, time.monotonic() + timeout)

    def _read_replies(self) -> None:
        assert self._client is not None
        while True:
            try:
                frames = self._client.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 3 or frames[0] != CLIENT_PROTOCOL:
                self.metrics.count("malformed")
                continue
            try:
                message = decode(frames[2]).message
            except WireError:
                self.metrics.count("decode_errors")
                continue
            if not isinstance(message, Reply):
                self.metrics.count("malformed")
                continue
            pending = self._pending.pop(message.request_id, None)
            if pending is None:
                self.metrics.count("late_replies")
                continue
            pending.future.set_result(message)

    def _expire(self) -> None:
        if not self._pending:
            return
        now = time.monotonic()
        for request_id, pending in list(self._pending.items()):
            if now >= pending.deadline:
                del self._pending[request_id]
                self.metrics.count("request_timeouts")
                pending.future.set_exception(
                    UnknownOutcome(
                        f"no reply from {pending.service}",
                        service=pending.service,
                        request_id=request_id,
                    )
                )

    def _serve(self, request: Request) -> None:
        self._control.submit(self._answer, request)

    def _answer(self, request: Request) -> None:
        # Control thread: the handler may ask actors; the reply goes back
        # through the I/O thread, which owns the service socket.
        if self._on_request is None:
            reply = Reply.failure(
                request.command.request_id, PosbusError(f"{self.config.name} serves no commands")
            )
        else:
            try:
                reply = Reply.success(request.command.request_id, self._on_request(request))
            except PosbusError as exc:
                self.metrics.count("rejects")
                reply = Reply.failure(request.command.request_id, exc)
            except Exception as exc:
                # Process boundary: report the failure to the caller, keep serving.
                self.metrics.count("handler_errors")
                logger.exception(
                    "command handler failed",
                    extra={"worker": self.config.name, "command": request.command.name},
                )
                reply = Reply.failure(request.command.request_id, exc)
        self.call_soon(lambda: self._reply(request, reply))

    def _reply(self, request: Request, reply: Reply) -> None:
        if self.service is None or self.service.socket is None:
            # The broker connection is being re-made: the client sees an
            # unknown outcome, as for any reply lost with its connection.
            self.metrics.count("replies_lost")
            return
        self.metrics.count_out("reply")
        self.service.reply(request, reply)

    def _on_gap(self, sender: str, expected: int, got: int) -> None:
        logger.warning(
            "event sequence gap",
            extra={"worker": self.config.name, "sender": sender, "expected": expected, "got": got},
        )
        if self._gap_hook is not None:
            self._gap_hook(sender, expected, got)

    def _log_failed_send(
        self,
        service: str,
        command: Command,
        future: Future[Reply],
        on_outcome: Outcome | None,
    ) -> None:
        error = future.exception()
        reply = None if error is not None else future.result()
        undelivered: str | None = None
        if isinstance(error, BrokerUnavailable):
            undelivered = str(error)
        elif reply is not None and reply.error and reply.error["type"] in NOT_DELIVERED:
            undelivered = f"{reply.error['type']}: {reply.error['message']}"
        if on_outcome is not None:
            on_outcome(undelivered)
        if error is None and reply is not None and reply.ok:
            return
        self.metrics.count("send_failures")
        logger.error(
            "command failed; not re-sent",
            extra={
                "worker": self.config.name,
                "service": service,
                "command": command.name,
                "request_id": command.request_id,
                "error": repr(error) if error is not None else str(reply and reply.error),
            },
        )

    def new_request_id(self) -> str:
        """A request id unique to this process incarnation."""
        return f"{self.sender}-{next(self._ids)}"
