"""The event journal interface every actor writes to before an event takes effect.

Write-ahead rule: a record is appended (and durable, for durable backends)
before the event changes any state or leaves the process. Records are grouped
in streams (one per actor: `position/ACCOUNT/SYMBOL`, `risk`, `gateway/ACCOUNT`)
with gap-free sequence numbers starting at 1, and carry a checksum of their
bytes so recovery can tell a corrupt record from a valid one.

Snapshots (`SnapshotStore`) are an actor's whole state at a stream position,
with their own checksum: recovery is the latest valid snapshot plus a replay
of the records after it (posbus.actors.recovery). A snapshot is a cache of the
journal, never its replacement: records are never deleted because a snapshot
covers them, so a corrupt snapshot costs a longer replay, not the state.

This module defines the contract only; backends live in posbus.adapters.journal.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from posbus.actors.model.errors import PosbusError


def checksum(stream: str, seq: int, payload: bytes) -> int:
    """CRC-32 over the record's identity and bytes, so a record moved to another
    stream or sequence number fails verification just like a flipped byte."""
    head = f"{stream}\x00{seq}\x00".encode()
    return zlib.crc32(payload, zlib.crc32(head))


def snapshot_checksum(stream: str, seq: int, payload: bytes) -> int:
    """CRC-32 of a snapshot: like `checksum`, but in its own domain, so a record's
    bytes stored as a snapshot (or the reverse) never verify."""
    head = f"snapshot\x00{stream}\x00{seq}\x00".encode()
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


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of a stream's owner after records 1..`seq`; `payload` is canonical JSON."""

    stream: str
    seq: int
    payload: bytes
    checksum: int

    def verify(self) -> bool:
        """True when the checksum matches the stream, sequence and payload."""
        return snapshot_checksum(self.stream, self.seq, self.payload) == self.checksum


@runtime_checkable
class SnapshotStore(Protocol):
    """Keeps the newest snapshots of each stream. Implementations are thread-safe."""

    def save_snapshot(self, stream: str, seq: int, payload: bytes) -> Snapshot:
        """Store the state of `stream`'s owner at `seq`; durable on return.

        A second snapshot at the same `seq` replaces the first; only the
        newest `keep_snapshots` (by seq) of a stream are kept.
        """
        ...

    def snapshots(self, stream: str) -> list[Snapshot]:
        """The stored snapshots of `stream`, newest (highest seq) first, as stored (unverified)."""
        ...

    def snapshot_streams(self) -> list[str]:
        """Every stream that has at least one snapshot, sorted."""
        ...


class JournalStore(Journal, SnapshotStore, Protocol):
    """A journal with snapshots and a lifecycle: what the storage backends implement."""

    def append_many(self, stream: str, payloads: Iterable[bytes]) -> list[JournalRecord]:
        """Append several records to `stream` in order, all in one write; durable on return."""
        ...

    def close(self) -> None:
        """Write what is pending, then release the storage; appends after it raise."""
        ...


class JournalUnavailable(PosbusError):
    """The journal could not make a write durable (storage down, closed, retries exhausted).

    The outcome of the write is unknown: the record may or may not be stored.
    The caller must not act as if it were journaled; a restarted actor
    replays whatever did get stored.
    """

    transient = True


class JournalLocked(PosbusError):
    """Another writer holds this journal: refused at open, or fenced out while writing.

    The message names where (the file or database) and, when known, who holds
    it (`holder`: pid, owner id). Not transient: the holder must stop first (a
    dead holder frees it: the OS drops a file lock, a lease expires).
    """

    transient = False

    def __init__(
        self, where: str, holder: str = "", problem: str = "another writer holds this journal"
    ) -> None:
        held = f" (held by {holder})" if holder else ""
        super().__init__(f"{where}: {problem}{held}")
        self.where = where
        self.holder = holder


class JournalFenced(JournalLocked):
    """This writer lost its lease to another (paused or cut off past its expiry).

    Whatever it still tries to write is refused, never stored: the new holder
    owns the journal. The store stays refused until it is reopened.
    """


class JournalReadOnly(PosbusError):
    """The journal was opened read-only (`writer=False`): appends and snapshot saves are refused."""


class JournalCorrupt(PosbusError):
    """A record failed verification or a sequence has a gap: recovery of the stream stops.

    Never skipped silently: the stream's owner stays down (and its account
    Halted) until an operator acts. `stream` is "" (and `seq` 0) when the
    damage is in the storage itself, before any stream could be read.
    """

    def __init__(self, stream: str, seq: int, problem: str) -> None:
        where = f"journal stream {stream!r} at seq {seq}" if stream else "journal storage"
        super().__init__(f"{where}: {problem}")
        self.stream = stream
        self.seq = seq
        self.problem = problem
