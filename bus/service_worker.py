"""ServiceWorker: a worker's link to the broker's command router, with Paranoid Pirate heartbeats.

The worker side of the Majordomo-like command path and of the ZeroMQ
guide's Paranoid Pirate pattern: a DEALER registers the worker's service
names (READY), receives requests, sends replies, heartbeats the broker, and
when the broker falls silent for liveness * interval it closes the socket
and reconnects after a delay that doubles up to a cap, without ever
blocking its owner. Malformed requests are answered with an error Reply and
counted; they never reach the owner. Replies carry the worker's own
consecutive sequence numbers (from 1, across reconnects), as the wire format
says of every sender.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import zmq

from posbus.bus.codec import Codec, decode
from posbus.bus.command_protocol import (
    DISCONNECT,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    UNKNOWN_REQUEST_ID,
    WORKER_PROTOCOL,
)
from posbus.bus.curve import CurveClient
from posbus.bus.envelope import Envelope
from posbus.bus.errors import ReplyTooLarge
from posbus.bus.heartbeat import HeartbeatConfig, Liveness, ReconnectDelay
from posbus.bus.messages import Command, Reply
from posbus.bus.metrics import BusMetrics
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.wire_error import FrameTooLarge, WireError

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Request:
    """A valid command for one of this worker's services; pass it back to `reply`."""

    client: bytes
    service: str
    command: Command
    envelope: Envelope


class ServiceWorker:
    """Offers `services` to the broker at `endpoint` (its workers ROUTER).

    Not thread-safe: one owner thread creates it, calls `poll` (or its own
    poller + `process` + `tick`) at least once per heartbeat interval, and
    `reply`. `socket` is replaced at each reconnect (`generation` + 1).
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        services: Sequence[str],
        *,
        name: str,
        heartbeat: HeartbeatConfig | None = None,
        options: SocketOptions | None = None,
        curve: CurveClient | None = None,
        metrics: BusMetrics | None = None,
    ) -> None:
        if not services:
            raise ValueError("a ServiceWorker needs at least one service")
        self._context = context
        self._endpoint = endpoint
        self.services = tuple(services)
        self.name = name
        self._hb = heartbeat or HeartbeatConfig()
        self._opts = options or SocketOptions()
        self._curve = curve
        self._codec = Codec(max_size=self._opts.max_msg_size)
        self._metrics = metrics
        self._delay = ReconnectDelay(self._hb)
        self._reconnect_at: float | None = None
        self.generation = 0
        self.reconnects = 0
        self.malformed = 0
        self._reply_seq = 0
        self.connected_to_broker = False
        self._socket: zmq.Socket[bytes] | None = None
        self._liveness = Liveness(self._hb, time.monotonic())
        self._connect()

    @property
    def socket(self) -> zmq.Socket[bytes] | None:
        """The current DEALER (None while waiting to reconnect); owner thread only."""
        return self._socket

    def _connect(self) -> None:
        self._socket = make_socket(
            self._context,
            zmq.DEALER,
            options=self._opts,
            curve_client=self._curve,
            connect=self._endpoint,
            identity=self.name.encode(),
        )
        self.generation += 1
        now = time.monotonic()
        self._liveness = Liveness(self._hb, now)
        self._reconnect_at = None
        # READY queues until the connection completes (no IMMEDIATE here on
        # purpose: registration must not be lost to a race with connect).
        self._send([WORKER_PROTOCOL, READY, *(s.encode() for s in self.services)], now)
        _log.info(
            "worker connecting",
            extra={"worker": self.name, "endpoint": self._endpoint, "services": self.services},
        )

    def _send(self, frames: list[bytes], now: float) -> None:
        assert self._socket is not None
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            # The HWM is full: the broker is not reading. Heartbeats will tell.
            _log.warning("worker send would block", extra={"worker": self.name})
            return
        self._liveness.sent(now)

    def poll(self, timeout_ms: int) -> list[Request]:
        """Wait up to `timeout_ms` (at most until the next heartbeat), drain, heartbeat.

        Returns the valid requests that arrived.
        """
        wait_ms = min(timeout_ms, self.tick())
        if self._socket is None:
            if wait_ms > 0:
                # Waiting out the reconnect delay: there is no socket to poll.
                time.sleep(wait_ms / 1000)
            self.tick()
            return []
        requests = self.process() if self._socket.poll(wait_ms, zmq.POLLIN) else []
        self.tick()
        return requests

    def process(self) -> list[Request]:
        """Drain the socket without blocking; heartbeats are handled, requests returned."""
        requests: list[Request] = []
        sock = self._socket
        if sock is None:
            return requests
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return requests
            now = time.monotonic()
            self._liveness.heard(now)
            if not self.connected_to_broker:
                self.connected_to_broker = True
                self._delay.reset()
                _log.info("broker is alive", extra={"worker": self.name})
            if len(frames) < 2 or frames[0] != WORKER_PROTOCOL:
                self._count_malformed()
                continue
            kind = frames[1]
            if kind == REQUEST and len(frames) == 5:
                request = self._request(frames[2], frames[3], frames[4], now)
                if request is not None:
                    requests.append(request)
            elif kind == HEARTBEAT:
                continue
            elif kind == DISCONNECT:
                # The broker does not know us (it restarted): register again now.
                _log.info("broker asked to reconnect", extra={"worker": self.name})
                self._reconnect_now()
                return requests
            else:
                self._count_malformed()

    def _count_malformed(self) -> None:
        # A frame from the broker we cannot read: counted here and in `metrics`.
        self.malformed += 1
        if self._metrics is not None:
            self._metrics.count("malformed")

    def _request(self, client: bytes, service: bytes, body: bytes, now: float) -> Request | None:
        try:
            envelope = decode(body, max_size=self._codec.max_size)
            command = envelope.message
            if not isinstance(command, Command):
                raise WireError(f"expected a command, got a {envelope.kind}")
            return Request(client, service.decode(), command, envelope)
        except (WireError, UnicodeDecodeError) as exc:
            self._count_malformed()
            error = exc if isinstance(exc, WireError) else WireError(str(exc))
            self._send_reply(client, Reply.failure(UNKNOWN_REQUEST_ID, error), now)
            return None

    def reply(self, request: Request, reply: Reply) -> None:
        """Send `reply` to the client of `request` (dropped if the broker link was replaced)."""
        if self._socket is None:
            _log.warning("reply dropped: no broker link", extra={"worker": self.name})
            return
        self._send_reply(request.client, reply, time.monotonic())
        if self._metrics is not None:
            self._metrics.count_out("reply")

    def _send_reply(self, client: bytes, reply: Reply, now: float) -> None:
        seq = self._reply_seq + 1
        try:
            body = self._codec.encode(reply, seq=seq, sender=self.name, ts_ns=time.time_ns())
        except FrameTooLarge as exc:
            # The client gets a typed error now, rather than an unknown outcome later.
            _log.warning("reply too large; refused", extra={"worker": self.name, "size": exc.size})
            if self._metrics is not None:
                self._metrics.count("replies_too_large")
            failure = Reply.failure(reply.request_id, ReplyTooLarge(exc.size, exc.limit))
            body = self._codec.encode(failure, seq=seq, sender=self.name, ts_ns=time.time_ns())
        self._reply_seq = seq
        self._send([WORKER_PROTOCOL, REPLY, client, body], now)

    def tick(self) -> int:
        """Send a heartbeat if due, detect a dead broker, reconnect when due; ms until next due."""
        now = time.monotonic()
        if self._socket is None:
            assert self._reconnect_at is not None
            if now >= self._reconnect_at:
                self.reconnects += 1
                self._connect()
                return int(self._hb.interval_s * 1000)
            return max(1, int((self._reconnect_at - now) * 1000))
        if self._liveness.expired(now):
            delay = self._delay.next()
            _log.warning(
                "broker silent: reconnecting",
                extra={
                    "worker": self.name,
                    "delay_s": delay,
                    "silent_s": now - self._liveness.last_heard,
                },
            )
            self.connected_to_broker = False
            self._socket.close(linger=0)
            self._socket = None
            self._reconnect_at = now + delay
            return max(1, int(delay * 1000))
        if self._liveness.heartbeat_due(now):
            self._send([WORKER_PROTOCOL, HEARTBEAT], now)
        return max(1, int(self._liveness.next_due(now) * 1000))

    def _reconnect_now(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
        self.reconnects += 1
        self._connect()

    def close(self) -> None:
        """Tell the broker we leave (DISCONNECT) and close the socket."""
        if self._socket is not None:
            self._send([WORKER_PROTOCOL, DISCONNECT], time.monotonic())
            self._socket.close(linger=100)
            self._socket = None
