"""CommandClient: send a Command to a named service through the broker and wait for its Reply.

The client side of the Majordomo-like command path (bus/command_protocol.py).
A timeout after sending is an UnknownOutcome: the command may or may not
have run. Unlike the guide's Lazy Pirate client, it never re-sends on its
own: only when the caller flags the request idempotent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from posbus.bus.codec import Codec, decode
from posbus.bus.command_protocol import CLIENT_PROTOCOL, new_request_id
from posbus.bus.curve import CurveClient
from posbus.bus.errors import BrokerUnavailable, CommandFailed, UnknownOutcome
from posbus.bus.messages import Command, CommandArg, Reply
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.wire_error import WireError

_log = logging.getLogger(__name__)


class CommandClient:
    """A DEALER connected to the broker's commands endpoint; one request at a time.

    Not thread-safe: one owner thread. Replies that arrive after their
    request timed out are discarded (`stale_replies`).
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        sender: str = "client",
        options: SocketOptions | None = None,
        curve: CurveClient | None = None,
    ) -> None:
        opts = options or SocketOptions()
        self.sender = sender
        self._codec = Codec(max_size=opts.max_msg_size)
        self._socket = make_socket(
            context, zmq.DEALER, options=opts, curve_client=curve, connect=endpoint, immediate=True
        )
        self.stale_replies = 0
        self.bad_replies = 0
        self._seq = 0

    def request(
        self,
        service: str,
        command: Command,
        *,
        timeout: float = 5.0,
        idempotent: bool = False,
        retries: int = 2,
    ) -> Reply:
        """Send `command` to `service` and return its Reply (ok or not).

        Raises UnknownOutcome when no reply came within `timeout` seconds
        (after `retries` re-sends of the same request_id, only if
        `idempotent`), BrokerUnavailable when it could not even be queued.
        """
        # A re-send repeats the frame, seq included: it is the same request.
        self._seq += 1
        frame = self._codec.encode(command, seq=self._seq, sender=self.sender, ts_ns=time.time_ns())
        attempts = 1 + (retries if idempotent else 0)
        for attempt in range(attempts):
            self._send([CLIENT_PROTOCOL, service.encode(), frame], command, service, timeout)
            reply = self._wait(command.request_id, timeout)
            if reply is not None:
                return reply
            if attempt + 1 < attempts:
                _log.info(
                    "re-sending idempotent command",
                    extra={"service": service, "command": command.name, "attempt": attempt + 2},
                )
        raise UnknownOutcome(
            f"no reply to {command.name!r} from {service!r} within {timeout} s: "
            "it may or may not have been executed",
            service=service,
            request_id=command.request_id,
        )

    def call(
        self,
        service: str,
        name: str,
        args: dict[str, CommandArg] | None = None,
        *,
        timeout: float = 5.0,
        idempotent: bool = False,
    ) -> dict[str, Any]:
        """Run command `name` on `service`; its result, or CommandFailed/UnknownOutcome."""
        command = Command(name=name, args=args or {}, request_id=new_request_id())
        reply = self.request(service, command, timeout=timeout, idempotent=idempotent)
        if reply.ok:
            return reply.result
        assert reply.error is not None
        if reply.error["type"] == UnknownOutcome.__name__:
            raise UnknownOutcome(
                reply.error["message"], service=service, request_id=command.request_id
            )
        raise CommandFailed(
            reply.error["type"], reply.error["message"], remote_transient=reply.error["transient"]
        )

    def _send(self, frames: list[bytes], command: Command, service: str, timeout: float) -> None:
        # IMMEDIATE: the send fails until the connection is up. Waiting for
        # it is no re-send (nothing left), so wait up to the timeout.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._socket.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again as exc:
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    raise BrokerUnavailable(
                        f"cannot queue {command.name!r} for {service!r}: no broker connection "
                        f"within {timeout} s (not sent)"
                    ) from exc
                self._socket.poll(min(remaining_ms, 10), zmq.POLLOUT)

    def _wait(self, request_id: str, timeout: float) -> Reply | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not self._socket.poll(remaining_ms, zmq.POLLIN):
                return None
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
            if len(frames) != 3 or frames[0] != CLIENT_PROTOCOL:
                self.bad_replies += 1
                continue
            try:
                envelope = decode(frames[2], max_size=self._codec.max_size)
            except WireError:
                self.bad_replies += 1
                continue
            reply = envelope.message
            if not isinstance(reply, Reply):
                self.bad_replies += 1
                continue
            if reply.request_id != request_id:
                # The answer to an earlier request that timed out.
                self.stale_replies += 1
                continue
            return reply

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()
