"""The event journal interface every actor writes to before an event takes effect.

Write-ahead rule: a record is appended (and durable, for durable backends)
before the event changes any state or leaves the process. Records are grouped
in streams (one per actor: `position/ACCOUNT/SYMBOL`, `risk`, `gateway/ACCOUNT`)
with gap-free sequence numbers starting at 1, and carry a checksum of their
bytes so recovery can tell a corrupt record from a valid one.

This module defines the contract only; backends live in posbus.adapters.journal.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from posbus.actors.model.errors import PosbusError


def checksum(stream: str, seq: int, payload: bytes) -> int:
    """CRC-32 over the record's identity and bytes, so a record moved to another
    stream or sequence number fails verification just like a flipped byte."""
    head = f"{stream}\x00{seq}\x00".encode()
    return zlib.crc32(payload, zlib.crc32(head))


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One appended event: `payload` is the wire encoding of the message."""

    stream: str
    seq: int
    payload: bytes
    checksum: int

    def verify(self) -> bool:
        """True when the checksum matches the stream, sequence and payload."""
        return checksum(self.stream, self.seq, self.payload) == self.checksum


class Journal(Protocol):
    """An append-only, per-stream sequenced event log. Implementations are thread-safe."""

    def append(self, stream: str, payload: bytes) -> JournalRecord:
        """Append `payload` to `stream` with the next sequence number; durable on return."""
        ...

    def read(self, stream: str, after_seq: int = 0) -> Iterator[JournalRecord]:
        """Yield the records of `stream` with seq > `after_seq`, in order."""
        ...

    def last_seq(self, stream: str) -> int:
        """The highest sequence number of `stream`, 0 when it is empty."""
        ...

    def streams(self) -> list[str]:
        """Every stream that has at least one record, sorted."""
        ...


class JournalCorrupt(PosbusError):
    """A record failed verification or a sequence has a gap: recovery of the stream stops.

    Never skipped silently: the stream's owner stays down (and its account
    Halted) until an operator acts.
    """

    def __init__(self, stream: str, seq: int, problem: str) -> None:
        super().__init__(f"journal stream {stream!r} at seq {seq}: {problem}")
        self.stream = stream
        self.seq = seq
        self.problem = problem
