"""The admin socket of a worker process: named read/act commands answered with a Reply.

A ROUTER server (request = one `command` envelope, reply = one `reply`
envelope; REQ clients work too, the routing frames are echoed) on
ipc://RUN_DIR/admin/WORKER.sock in an owner-only directory (0700, socket
file 0600), or on tcp only with CURVE. Handlers are looked up by command
name; the arguments of a command declared in bus/admin_schema.py are checked
against its declaration first. Malformed, oversized or unknown requests and
refused arguments get an error Reply where the peer can be answered, are
counted, and never crash the server or reach a handler. Replies carry this
server's own consecutive sequence numbers (from 1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import zmq

from posbus.actors.model.errors import PosbusError
from posbus.bus.admin_schema import ADMIN
from posbus.bus.codec import Codec, decode
from posbus.bus.command_protocol import UNKNOWN_REQUEST_ID, new_request_id
from posbus.bus.curve import (
    AllowList,
    CurveClient,
    CurveServer,
    acquire_allow_list,
    release_allow_list,
)
from posbus.bus.endpoints import check_ipc_path, ipc_path, is_tcp, prepare_ipc_dir
from posbus.bus.errors import BrokerUnavailable, InvalidArgument, UnknownCommand, UnknownOutcome
from posbus.bus.messages import Command, CommandArg, Reply
from posbus.bus.metrics import BusMetrics
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.wire_error import WireError

_log = logging.getLogger(__name__)

#: A handler: the command's args in, a Reply-compatible result dict out (may raise).
AdminHandler = Callable[[dict[str, CommandArg]], dict[str, Any]]

#: Requests handled per `process` call, so a flood cannot starve the owner's other sockets.
ADMIN_BATCH = 100


def admin_endpoint(run_dir: Path, worker: str) -> str:
    """ipc://RUN_DIR/admin/WORKER.sock, creating RUN_DIR/admin owner-only (0700)."""
    directory = prepare_ipc_dir(Path(run_dir) / "admin")
    path = directory / f"{worker}.sock"
    check_ipc_path(path)
    return f"ipc://{path}"


class AdminServer:
    """Serves admin commands from `handlers` on `endpoint` (ROUTER, bound).

    Not thread-safe: one owner thread creates it, calls `process` (after its
    poller saw POLLIN on `socket`), `poll` or `run`, and closes it; handlers
    run on that thread. Counters: handled, errors (a handler's failure or
    arguments refused by the command's declaration), malformed, unknown.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        handlers: Mapping[str, AdminHandler],
        *,
        name: str = "admin",
        options: SocketOptions | None = None,
        curve: CurveServer | None = None,
        metrics: BusMetrics | None = None,
    ) -> None:
        opts = options or SocketOptions()
        self.name = name
        self.endpoint = endpoint
        self._handlers = dict(handlers)
        self._codec = Codec(max_size=opts.max_msg_size)
        self._metrics = metrics
        self._context = context
        self._allow: AllowList | None = None
        if is_tcp(endpoint) and curve is not None:
            self._allow = acquire_allow_list(context, curve.allowed_clients)
        try:
            self.socket = make_socket(
                context, zmq.ROUTER, options=opts, curve_server=curve, bind=endpoint
            )
        except BaseException:
            if self._allow is not None:
                release_allow_list(context)
            raise
        self.handled = 0
        self.errors = 0
        self.malformed = 0
        self.unknown = 0
        self._seq = 0

    def register(self, name: str, handler: AdminHandler) -> None:
        """Add or replace the handler of command `name` (owner thread)."""
        self._handlers[name] = handler

    def poll(self, timeout_ms: int) -> int:
        """Wait up to `timeout_ms` for requests and handle them; how many were handled."""
        if self.socket.poll(timeout_ms, zmq.POLLIN):
            return self.process()
        return 0

    def run(self, stop: threading.Event, *, tick_ms: int = 100) -> None:
        """Serve until `stop` is set (on the owner thread)."""
        while not stop.is_set():
            self.poll(tick_ms)

    def process(self) -> int:
        """Handle the requests waiting, without blocking; how many were handled."""
        count = 0
        for _ in range(ADMIN_BATCH):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            count += 1
            self._handle(frames)
        return count

    def _handle(self, frames: list[bytes]) -> None:
        # frames: [identity, (b"" from REQ,) body]: answer on the same route.
        if len(frames) < 2:
            self._count("malformed")
            return
        route, body = frames[:-1], frames[-1]
        try:
            envelope = decode(body, max_size=self._codec.max_size)
            command = envelope.message
            if not isinstance(command, Command):
                raise WireError(f"expected a command, got a {envelope.kind}")
        except WireError as exc:
            self._count("malformed")
            self._send(route, Reply.failure(UNKNOWN_REQUEST_ID, exc))
            return
        handler = self._handlers.get(command.name)
        if handler is None:
            self._count("unknown")
            error = UnknownCommand(command.name, list(self._handlers))
            self._send(route, Reply.failure(command.request_id, error))
            return
        reply = self._run(handler, command)
        self._send(route, reply)

    def _run(self, handler: AdminHandler, command: Command) -> Reply:
        if command.name in ADMIN.names():
            try:
                ADMIN.spec(command.name).parse(command.args)
            except InvalidArgument as exc:
                self._count("errors")
                return Reply.failure(command.request_id, exc)
        try:
            result = handler(dict(command.args))
            reply = Reply.success(command.request_id, result)
        except PosbusError as exc:
            # WireError included: a result that breaks the reply schema.
            self._count("errors")
            return Reply.failure(command.request_id, exc)
        except Exception as exc:  # noqa: BLE001
            # Process boundary: an operator command must never kill the worker.
            self._count("errors")
            _log.exception("admin handler failed", extra={"command": command.name})
            return Reply.failure(command.request_id, exc)
        self._count("handled")
        return reply

    def _count(self, counter: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        if self._metrics is not None:
            self._metrics.count(f"admin_{counter}")

    def _send(self, route: list[bytes], reply: Reply) -> None:
        self._seq += 1
        body = self._codec.encode(reply, seq=self._seq, sender=self.name, ts_ns=time.time_ns())
        try:
            self.socket.send_multipart([*route, body], zmq.NOBLOCK)
        except zmq.ZMQError:
            # The client went away (EHOSTUNREACH) or stopped reading.
            self._count("errors")

    def close(self) -> None:
        """Close the socket, remove the ipc socket file, stop the authenticator."""
        self.socket.close(linger=0)
        path = ipc_path(self.endpoint)
        if path is not None:
            path.unlink(missing_ok=True)
        if self._allow is not None:
            release_allow_list(self._context)
            self._allow = None


class AdminClient:
    """Sends admin commands to one worker's admin socket (DEALER); one request at a time.

    Not thread-safe: one owner thread. A timeout raises UnknownOutcome.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        options: SocketOptions | None = None,
        curve: CurveClient | None = None,
        sender: str = "admin-client",
    ) -> None:
        opts = options or SocketOptions()
        self.sender = sender
        self._codec = Codec(max_size=opts.max_msg_size)
        self._socket = make_socket(
            context, zmq.DEALER, options=opts, curve_client=curve, connect=endpoint, immediate=True
        )
        self._endpoint = endpoint
        self._seq = 0

    def request(
        self, name: str, args: dict[str, CommandArg] | None = None, *, timeout: float = 5.0
    ) -> Reply:
        """Run admin command `name`; its Reply (ok or not). UnknownOutcome on timeout."""
        command = Command(name=name, args=args or {}, request_id=new_request_id())
        self._seq += 1
        frame = self._codec.encode(command, seq=self._seq, sender=self.sender, ts_ns=time.time_ns())
        deadline = time.monotonic() + timeout
        # IMMEDIATE: the send fails until the ipc connection is up; retry until
        # the deadline (nothing was sent, so this is no silent re-send).
        while True:
            try:
                self._socket.send(frame, zmq.NOBLOCK)
                break
            except zmq.Again as exc:
                if time.monotonic() >= deadline:
                    raise BrokerUnavailable(f"admin socket {self._endpoint} not reachable") from exc
                self._socket.poll(10, zmq.POLLOUT)
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not self._socket.poll(remaining_ms, zmq.POLLIN):
                raise UnknownOutcome(
                    f"no reply to admin {name!r} from {self._endpoint} within {timeout} s",
                    service=self._endpoint,
                    request_id=command.request_id,
                )
            try:
                reply = decode(self._socket.recv(zmq.NOBLOCK), max_size=self._codec.max_size)
            except WireError:
                continue
            message = reply.message
            if isinstance(message, Reply) and message.request_id in (
                command.request_id,
                UNKNOWN_REQUEST_ID,
            ):
                return message

    def close(self) -> None:
        """Close the socket."""
        self._socket.close(linger=0)
