"""An in-memory journal: the reference implementation of the Journal contract.

Used by tests, the in-process demo and backtests. It is not durable: a process
crash loses it. It never mutates a record once appended.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator

from posbus.actors.journal import JournalRecord, checksum


class MemoryJournal:
    """Thread-safe in-memory journal; `read` returns a stable copy of the records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: defaultdict[str, list[JournalRecord]] = defaultdict(list)

    def append(self, stream: str, payload: bytes) -> JournalRecord:
        with self._lock:
            records = self._streams[stream]
            seq = len(records) + 1
            record = JournalRecord(stream, seq, payload, checksum(stream, seq, payload))
            records.append(record)
            return record

    def read(self, stream: str, after_seq: int = 0) -> Iterator[JournalRecord]:
        with self._lock:
            records = self._streams.get(stream, [])[after_seq:]
        return iter(records)

    def last_seq(self, stream: str) -> int:
        with self._lock:
            return len(self._streams.get(stream, []))

    def streams(self) -> list[str]:
        with self._lock:
            return sorted(name for name, records in self._streams.items() if records)
