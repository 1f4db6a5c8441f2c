"""The one factory every bus socket comes from: size limit, high-water marks, linger, CURVE.

Options are set deliberately (docs/bus.md, "Socket setup", says why each
number): a socket made anywhere else would miss the size limit or the
security check. This module opens sockets; it never sends or receives.
"""

from __future__ import annotations

from dataclasses import dataclass

import zmq

from posbus.bus.codec import DEFAULT_MAX_SIZE
from posbus.bus.curve import CurveClient, CurveServer, secure_client, secure_server
from posbus.bus.endpoints import check_ipc_path, ipc_path, is_tcp
from posbus.bus.errors import BusConfigError

_EVENT_TYPES = frozenset({zmq.PUB, zmq.SUB, zmq.XPUB, zmq.XSUB})


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """Socket options of the bus; the defaults are the documented, deliberate numbers."""

    #: ZMQ_MAXMSGSIZE on every socket: libzmq drops a peer sending a larger frame.
    max_msg_size: int = DEFAULT_MAX_SIZE
    #: SNDHWM/RCVHWM of event sockets (PUB, SUB, XPUB, XSUB), in frames.
    event_hwm: int = 100_000
    #: SNDHWM/RCVHWM of command sockets (DEALER, ROUTER, REQ, REP), in frames.
    command_hwm: int = 1_000
    #: ZMQ_LINGER of every socket but publishers: a dead peer never blocks shutdown.
    linger_ms: int = 0
    #: ZMQ_LINGER of PUB sockets: flush the last events on close, for at most this long.
    publisher_linger_ms: int = 1_000

    def __post_init__(self) -> None:
        if self.max_msg_size < 1024:
            raise BusConfigError(f"max_msg_size {self.max_msg_size} is below 1 KiB")
        if self.event_hwm < 1 or self.command_hwm < 1:
            raise BusConfigError("high-water marks must be positive")


def make_socket(
    context: zmq.Context[zmq.Socket[bytes]],
    socket_type: int,
    *,
    options: SocketOptions | None = None,
    curve_server: CurveServer | None = None,
    curve_client: CurveClient | None = None,
    bind: str | None = None,
    connect: str | None = None,
    immediate: bool = False,
    identity: bytes | None = None,
) -> zmq.Socket[bytes]:
    """A socket of `socket_type` with the bus's options, bound or connected (exactly one).

    Call from the thread that will own the socket. tcp without CURVE raises
    BusSecurityError; an ipc path that is too long raises BusConfigError. An
    ipc socket file is chmod 0600 after bind.
    """
    if (bind is None) == (connect is None):
        raise BusConfigError("make_socket: pass exactly one of bind= or connect=")
    endpoint = bind if bind is not None else connect
    assert endpoint is not None
    opts = options or SocketOptions()
    path = ipc_path(endpoint)
    if path is not None:
        check_ipc_path(path)
    sock = context.socket(socket_type)
    try:
        sock.setsockopt(zmq.MAXMSGSIZE, opts.max_msg_size)
        hwm = opts.event_hwm if socket_type in _EVENT_TYPES else opts.command_hwm
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        linger = opts.publisher_linger_ms if socket_type == zmq.PUB else opts.linger_ms
        sock.setsockopt(zmq.LINGER, linger)
        if socket_type == zmq.ROUTER:
            # An unroutable message raises EHOSTUNREACH instead of vanishing.
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if immediate:
            sock.setsockopt(zmq.IMMEDIATE, 1)
        if identity is not None:
            sock.setsockopt(zmq.IDENTITY, identity)
        if is_tcp(endpoint):
            sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
            sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 30)
        if bind is not None:
            secure_server(sock, bind, curve_server)
            sock.bind(bind)
            if path is not None:
                path.chmod(0o600)
        else:
            assert connect is not None
            secure_client(sock, connect, curve_client)
            sock.connect(connect)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock
