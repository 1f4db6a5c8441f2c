"""Subscriber: the SUB side of the event bus; drains in batches, detects gaps, conflates prices.

The receiving half of the ZeroMQ guide's Clone pattern: it tracks the last
sequence number per sender, reports a gap with `on_gap(sender, expected,
got)` so its owner can repair from the publisher's journal, and after
`set_floor` drops updates at or below the repaired sequence. Within one
drain it keeps only the latest market_update per symbol (the consumer is
behind when several arrived between two drains); execution_signal and
risk_event are never conflated or dropped. A bad frame is counted and
dropped: it never raises out of `drain`.

Conflation happens before decoding: a quote's sender and sequence number
are read straight from its first bytes (`codec.market_header`, about a tenth
of a full decode), and only the quote kept per market topic is decoded.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import zmq

from posbus.bus.codec import decode, market_header
from posbus.bus.curve import CurveClient
from posbus.bus.envelope import Envelope
from posbus.bus.metrics import BusMetrics
from posbus.bus.sockets import SocketOptions, make_socket
from posbus.bus.topics import PREFIX_MARKET, split_frame
from posbus.bus.wire_error import WireError

_log = logging.getLogger(__name__)

#: on_gap(sender, expected seq, received seq): frames expected..got-1 were lost.
GapHandler = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Received:
    """One event as received: its topic and decoded envelope."""

    topic: bytes
    envelope: Envelope


class _Quote(NamedTuple):
    """A market_update frame not decoded yet, waiting for the end of the drain (owner thread)."""

    topic: bytes
    payload: bytes
    older: _Quote | None  # the quote of the same topic it superseded in this drain


# Longest market topic looked for ("md|" + a symbol id of at most 256 chars,
# 4 UTF-8 bytes each, + "|"); a longer one goes the slow way (split_frame).
_MAX_MARKET_TOPIC = 3 + 4 * 256 + 1


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

    def rewind(self, sender: str, seq: int) -> None:
        """Forget `sender`'s frames after `seq`: a frame the owner refused as unverified
        (e.g. a forged seq far ahead) must not make the publisher's real next frames stale.
        """
        if self._last.get(sender, 0) > seq:
            self._last[sender] = seq

    def drain(self, max_batch: int | None = None) -> list[Received]:
        """Receive without blocking up to `max_batch` frames; return the valid ones in order.

        Runs `on_gap` for each gap found, after the batch is assembled.
        Never raises for a bad frame (counted in `decode_errors`).
        """
        limit = self._max_batch if max_batch is None else max_batch
        if not self._conflate:
            return self._drain_plain(limit)
        recv = self.socket.recv
        last_seq = self._last
        # Slots in arrival order: a decoded event, or a quote still to decode
        # (with the quote it superseded, for a fallback); None: conflated.
        batch: list[Received | _Quote | None] = []
        gaps: list[tuple[str, int, int]] = []
        latest_md: dict[bytes, int] = {}
        conflated = 0
        n = 0
        while n < limit:
            try:
                frame = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            header = None
            if frame.startswith(PREFIX_MARKET):
                end = frame.find(b"|", 3, _MAX_MARKET_TOPIC)
                if end > 3:
                    topic, payload = frame[: end + 1], frame[end + 1 :]
                    header = market_header(payload)
            if header is None:
                # Not a quote, or not in the canonical form: decoded now, never conflated.
                received = self._decode(frame)
                if received is not None:
                    envelope = received.envelope
                    if self._in_sequence(envelope.sender, envelope.seq, gaps):
                        batch.append(received)
                continue
            seq, sender = header
            if last_seq.get(sender, -2) == seq - 1:
                last_seq[sender] = seq  # the usual case of _in_sequence, inlined
            elif not self._in_sequence(sender, seq, gaps):
                continue
            previous = latest_md.get(topic)
            older = None
            if previous is not None:
                # Keep the newest quote at its own position; park the older one.
                parked = batch[previous]
                batch[previous] = None
                conflated += 1
                older = parked if isinstance(parked, _Quote) else None
            latest_md[topic] = len(batch)
            batch.append(tuple.__new__(_Quote, (topic, payload, older)))
        result, fallbacks = self._assemble(batch)
        conflated -= fallbacks
        self.conflated += conflated
        self._account(n, result, conflated)
        self._report_gaps(gaps)
        return result

    def _assemble(self, batch: list[Received | _Quote | None]) -> tuple[list[Received], int]:
        """The drained events in order, kept quotes decoded now; and how many fell back."""
        result: list[Received] = []
        fallbacks = 0
        for item in batch:
            if item is None:
                continue
            if isinstance(item, _Quote):
                received, superseded = self._decode_quote(item)
                fallbacks += superseded
                if received is not None:
                    result.append(received)
            else:
                result.append(item)
        return result, fallbacks

    def _drain_plain(self, limit: int) -> list[Received]:
        """`drain` without conflation: every frame fully decoded, in order."""
        recv = self.socket.recv
        batch: list[Received] = []
        gaps: list[tuple[str, int, int]] = []
        n = 0
        while n < limit:
            try:
                frame = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            received = self._decode(frame)
            if received is None:
                continue
            envelope = received.envelope
            if self._in_sequence(envelope.sender, envelope.seq, gaps):
                batch.append(received)
        self._account(n, batch, 0)
        self._report_gaps(gaps)
        return batch

    def _account(self, frames: int, result: list[Received], conflated: int) -> None:
        self.received += frames
        metrics = self._metrics
        if metrics is not None:
            for kind, count in Counter(item.envelope.kind for item in result).items():
                metrics.count_in(kind, count)
            if conflated:
                metrics.count("conflated", conflated)

    def _decode_quote(self, quote: _Quote) -> tuple[Received | None, int]:
        """The newest valid quote of a chain, and how many superseded quotes it had to fall back on.

        A kept quote whose body turns out invalid is counted as a decode
        error, and the quote it superseded takes its place: an invalid frame
        never costs the consumer the valid quote before it.
        """
        fallbacks = 0
        item: _Quote | None = quote
        while item is not None:
            received = self._finish(item.topic, item.payload)
            if received is not None:
                return received, fallbacks
            item = item.older
            fallbacks += item is not None
        return None, fallbacks

    def _finish(self, topic: bytes, payload: bytes) -> Received | None:
        try:
            return Received(topic, decode(payload, max_size=self._max_size))
        except WireError as exc:
            self._bad_frame(exc)
            return None

    def _decode(self, frame: bytes) -> Received | None:
        try:
            topic, payload = split_frame(frame)
            return Received(topic, decode(payload, max_size=self._max_size))
        except WireError as exc:
            self._bad_frame(exc)
            return None

    def _bad_frame(self, exc: WireError) -> None:
        self.decode_errors += 1
        if self._metrics is not None:
            self._metrics.count("decode_errors")
        _log.debug("dropped bad event frame: %s", exc)

    def _in_sequence(self, sender: str, seq: int, gaps: list[tuple[str, int, int]]) -> bool:
        """Track the sender's seq; False for a stale frame (drop it); a jump is noted as a gap."""
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
