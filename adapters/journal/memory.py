"""An in-memory journal: the reference implementation of the Journal contract.

Used by tests, the in-process demo and backtests. It is not durable: a process
crash loses it. It never mutates a record once appended. It keeps snapshots
too (the newest `keep_snapshots` per stream), so the snapshot and recovery
paths run the same with it as with the durable backends.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator

from posbus.actors.journal import (
    JournalRecord,
    JournalUnavailable,
    Snapshot,
    checksum,
    snapshot_checksum,
)


class MemoryJournal:
    """Thread-safe in-memory journal and snapshot store; `read` returns a stable copy."""

    #: Gone with the process.
    durable = False

    def __init__(self, keep_snapshots: int = 3) -> None:
        if keep_snapshots < 1:
            raise ValueError("keep_snapshots must be >= 1")
        self.keep_snapshots = keep_snapshots
        self._lock = threading.Lock()
        self._streams: defaultdict[str, list[JournalRecord]] = defaultdict(list)
        self._snapshots: dict[str, dict[int, Snapshot]] = {}
        self._closed = False

    def append(self, stream: str, payload: bytes) -> JournalRecord:
        with self._lock:
            self._check_open()
            return self._append(stream, payload)

    def append_many(self, stream: str, payloads: Iterable[bytes]) -> list[JournalRecord]:
        """Append several records to `stream` at once, in order (all or none)."""
        with self._lock:
            self._check_open()
            return [self._append(stream, payload) for payload in payloads]

    def _append(self, stream: str, payload: bytes) -> JournalRecord:
        records = self._streams[stream]
        seq = len(records) + 1
        record = JournalRecord(stream, seq, bytes(payload), checksum(stream, seq, payload))
        records.append(record)
        return record

    def read(self, stream: str, after_seq: int = 0) -> Iterator[JournalRecord]:
        with self._lock:
            records = self._streams.get(stream, [])[max(0, after_seq) :]
        return iter(records)

    def last_seq(self, stream: str) -> int:
        with self._lock:
            return len(self._streams.get(stream, []))

    def streams(self) -> list[str]:
        with self._lock:
            return sorted(name for name, records in self._streams.items() if records)

    # -- snapshots -----------------------------------------------------------------

    def save_snapshot(self, stream: str, seq: int, payload: bytes) -> Snapshot:
        snapshot = Snapshot(stream, seq, bytes(payload), snapshot_checksum(stream, seq, payload))
        with self._lock:
            self._check_open()
            kept = self._snapshots.setdefault(stream, {})
            kept[seq] = snapshot
            for old in sorted(kept)[: -self.keep_snapshots]:
                del kept[old]
        return snapshot

    def snapshots(self, stream: str) -> list[Snapshot]:
        with self._lock:
            kept = self._snapshots.get(stream, {})
            return [kept[seq] for seq in sorted(kept, reverse=True)]

    def snapshot_streams(self) -> list[str]:
        with self._lock:
            return sorted(name for name, kept in self._snapshots.items() if kept)

    def close(self) -> None:
        """Refuse further writes (the records stay readable)."""
        with self._lock:
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise JournalUnavailable("journal is closed")
