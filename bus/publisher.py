"""Publisher: the PUB side of the event bus, with per-publisher sequence numbers.

Part of the ZeroMQ guide's Clone pattern: every frame carries this
publisher's next sequence number in its envelope, so a subscriber can detect
a gap and repair it from this publisher's journal. One frame per event
(topic + envelope, bus/topics.py). Never blocks: at the high-water mark
ZeroMQ drops, and the gap is the subscriber's to repair.
"""

from __future__ import annotations

import zmq

from posbus.bus.codec import Codec
from posbus.bus.curve import CurveClient
from posbus.bus.errors import BrokerUnavailable
from posbus.bus.messages import Message
from posbus.bus.metrics import BusMetrics
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.topics import topic_for


class Publisher:
    """Publishes events to the broker's events_in endpoint.

    Not thread-safe: one owner thread creates, uses and closes it. `sender`
    names this publisher in every envelope; sequence numbers are consecutive
    from `first_seq` (a restarted publisher resumes from its journal, or
    takes a new sender name).
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        sender: str,
        first_seq: int = 1,
        options: SocketOptions | None = None,
        curve: CurveClient | None = None,
        metrics: BusMetrics | None = None,
    ) -> None:
        opts = options or SocketOptions()
        self.sender = sender
        self._seq = first_seq - 1
        self._codec = Codec(max_size=opts.max_msg_size)
        self._metrics = metrics
        self._socket = make_socket(
            context, zmq.PUB, options=opts, curve_client=curve, connect=endpoint
        )

    @property
    def socket(self) -> zmq.Socket[bytes]:
        """The PUB socket (owner thread only)."""
        return self._socket

    @property
    def last_seq(self) -> int:
        """The sequence number of the last frame published (first_seq - 1 before any)."""
        return self._seq

    def publish(
        self,
        message: Message,
        *,
        topic: bytes | None = None,
        account: str | None = None,
        symbol: str | None = None,
        ts_ns: int | None = None,
    ) -> int:
        """Publish one event under `topic` (default: topic_for(message)); returns its seq.

        Raises WireError/TopicError for a message that cannot be framed (no
        sequence number is used then).
        """
        if topic is None:
            topic = topic_for(message, account=account, symbol=symbol)
        seq = self._seq + 1
        frame = topic + self._codec.encode(message, seq=seq, sender=self.sender, ts_ns=ts_ns)
        try:
            self._socket.send(frame, zmq.NOBLOCK)
        except zmq.Again as exc:
            # PUB never blocks or raises EAGAIN at the HWM (it drops); this is
            # only reachable if libzmq changes that: say so, never hide it.
            raise BrokerUnavailable(f"publisher {self.sender}: send would block") from exc
        self._seq = seq
        if self._metrics is not None:
            self._metrics.count_out(message.KIND)
        return seq

    def close(self) -> None:
        """Close the socket (waits up to the publisher linger to flush)."""
        self._socket.close()
