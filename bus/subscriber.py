"""Subscriber: the SUB side of the event bus; drains in batches, detects gaps, conflates prices.

The receiving half of the ZeroMQ guide's Clone pattern: it tracks the last
sequence number per sender, reports a gap with `on_gap(sender, expected,
got)` so its owner can repair from the publisher's journal, and after
`set_floor` drops updates at or below the repaired sequence. Within one
drain it keeps only the latest market_update per symbol (the consumer is
behind when several arrived between two drains); execution_signal and
risk_event are never conflated or dropped. A bad frame is counted and
dropped: it never raises out of `drain`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import cast

import zmq

from posbus.bus.codec import decode
from posbus.bus.curve import CurveClient
from posbus.bus.envelope import Envelope
from posbus.bus.messages import MarketUpdate
from posbus.bus.metrics import BusMetrics
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.topics import split_frame
from posbus.bus.wire_error import WireError

_log = logging.getLogger(__name__)

#: on_gap(sender, expected seq, received seq): frames expected..got-1 were lost.
GapHandler = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Received:
    """One event as received: its topic and decoded envelope."""

    topic: bytes
    envelope: Envelope


class Subscriber:
    """Receives events from the broker's events_out endpoint for the prefixes it subscribed.

    Not thread-safe: one owner thread creates it, calls `drain` (and
    `on_gap` runs there), and closes it. Register `socket` in the owner's
    zmq.Poller, or use `poll`.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        prefixes: Iterable[bytes] = (),
        on_gap: GapHandler | None = None,
        max_batch: int = 1_000,
        conflate: bool = True,
        options: SocketOptions | None = None,
        curve: CurveClient | None = None,
        metrics: BusMetrics | None = None,
    ) -> None:
        opts = options or SocketOptions()
        self._max_size = opts.max_msg_size
        self._on_gap = on_gap
        self._max_batch = max_batch
        self._conflate = conflate
        self._metrics = metrics
        self._last: dict[str, int] = {}
        self.socket = make_socket(
            context, zmq.SUB, options=opts, curve_client=curve, connect=endpoint
        )
        for prefix in prefixes:
            self.subscribe(prefix)
        self.received = 0
        self.decode_errors = 0
        self.gaps = 0
        self.missed = 0
        self.stale = 0
        self.conflated = 0

    def subscribe(self, prefix: bytes) -> None:
        """Receive frames whose topic starts with `prefix` (b"" = everything)."""
        self.socket.setsockopt(zmq.SUBSCRIBE, prefix)

    def unsubscribe(self, prefix: bytes) -> None:
        """Stop receiving `prefix` (exactly as subscribed)."""
        self.socket.setsockopt(zmq.UNSUBSCRIBE, prefix)

    def poll(self, timeout_ms: int) -> bool:
        """Wait up to `timeout_ms` for a frame; True if one is waiting."""
        return bool(self.socket.poll(timeout_ms, zmq.POLLIN))

    def last_seq(self, sender: str) -> int | None:
        """The last sequence number accepted from `sender` (None if never heard)."""
        return self._last.get(sender)

    def set_floor(self, sender: str, seq: int) -> None:
        """Clone repair done up to `seq`: drop `sender`'s frames with seq <= `seq` from now on."""
        # The floor is the gap baseline: anything at or below it is stale.
        self._last[sender] = max(seq, self._last.get(sender, 0))

    def drain(self, max_batch: int | None = None) -> list[Received]:
        """Receive without blocking up to `max_batch` frames; return the valid ones in order.

        Runs `on_gap` for each gap found, after the batch is assembled.
        Never raises for a bad frame (counted in `decode_errors`).
        """
        limit = self._max_batch if max_batch is None else max_batch
        recv = self.socket.recv
        metrics = self._metrics
        batch: list[Received | None] = []
        gaps: list[tuple[str, int, int]] = []
        latest_md: dict[str, int] = {}
        conflated = 0
        n = 0
        while n < limit:
            try:
                frame = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            received = self._decode(frame)
            if received is None or not self._in_sequence(received.envelope, gaps):
                continue
            message = received.envelope.message
            if self._conflate and type(message) is MarketUpdate:
                previous = latest_md.get(message.symbol)
                if previous is not None:
                    # Keep the newest quote at its own position; mark the older one.
                    batch[previous] = None
                    conflated += 1
                latest_md[message.symbol] = len(batch)
            batch.append(received)
        # Without conflation no slot was blanked: skip the copy on the hot path.
        result: list[Received] = (
            [item for item in batch if item is not None]
            if conflated
            else cast("list[Received]", batch)
        )
        self.conflated += conflated
        self.received += n
        if metrics is not None:
            for kind, n in Counter(item.envelope.kind for item in result).items():
                metrics.count_in(kind, n)
            if conflated:
                metrics.count("conflated", conflated)
        self._report_gaps(gaps)
        return result

    def _decode(self, frame: bytes) -> Received | None:
        try:
            topic, payload = split_frame(frame)
            return Received(topic, decode(payload, max_size=self._max_size))
        except WireError as exc:
            self.decode_errors += 1
            if self._metrics is not None:
                self._metrics.count("decode_errors")
            _log.debug("dropped bad event frame: %s", exc)
            return None

    def _in_sequence(self, envelope: Envelope, gaps: list[tuple[str, int, int]]) -> bool:
        """Track the sender's seq; False for a stale frame (drop it); a jump is noted as a gap."""
        sender, seq = envelope.sender, envelope.seq
        last = self._last.get(sender)
        if last is not None:
            if seq <= last:
                self.stale += 1
                if self._metrics is not None:
                    self._metrics.count("stale")
                return False
            if seq != last + 1:
                gaps.append((sender, last + 1, seq))
        self._last[sender] = seq
        return True

    def _report_gaps(self, gaps: list[tuple[str, int, int]]) -> None:
        metrics = self._metrics
        for sender, expected, got in gaps:
            self.gaps += 1
            self.missed += got - expected
            if metrics is not None:
                metrics.count("gaps")
                metrics.count("missed", got - expected)
            _log.warning("event gap", extra={"sender": sender, "expected": expected, "got": got})
            if self._on_gap is not None:
                self._on_gap(sender, expected, got)

    def close(self) -> None:
        """Close the socket."""
        self.socket.close()
