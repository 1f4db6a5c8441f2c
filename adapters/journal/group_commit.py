"""Group commit: the write path shared by the durable journal backends.

Callers (actor threads) append; a single writer thread takes everything
queued (up to `batch_max` records, waiting at most `batch_delay_s` after the
first for more) and makes the whole batch durable with one storage commit
(one fsync for SQLite, one journaled `insert_many` for MongoDB). Each caller
blocks until its own batch is durable, so `append` keeps the Journal
contract's "durable on return" while many appends share one fsync: while one
batch is being written, the next one fills up. This is the classic group
commit of database logs (PostgreSQL's `commit_delay`, InnoDB's binlog group
commit).

Sequence numbers are assigned by the caller under one lock, in queue order,
so a stream's records reach storage in sequence order. A write that fails
fails its batch and everything queued behind it (their numbers would leave a
gap) and makes the store forget its cached sequence numbers, which it then
reloads from storage: what did get stored stays, nothing is numbered twice.

A second writer on the same storage (two processes on one stream) shows up
as a record already stored under a number this process just assigned: the
backend compares it, the same bytes are success (a retried write), other
bytes raise JournalCorrupt naming the stream and sequence.

This module must never acknowledge an append before its batch is durable.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from posbus.actors.journal import (
    JournalCorrupt,
    JournalReadOnly,
    JournalRecord,
    JournalUnavailable,
    Snapshot,
    checksum,
    snapshot_checksum,
)
from posbus.actors.model.errors import PosbusError

logger = logging.getLogger(__name__)

# MongoDB batches must be flushed at least this often (the bound);
# SQLite shares the bound so both backends accept the same configuration.
MAX_BATCH_DELAY_S = 5.0


@dataclass(frozen=True, slots=True)
class GroupCommitConfig:
    """How a backend batches: at most `batch_max` records per commit, waiting at most
    `batch_delay_s` after the first record for more (0: write as soon as the writer
    is free; the previous commit's duration already gathers the next batch)."""

    batch_max: int = 1000
    batch_delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_max < 1:
            raise ValueError("batch_max must be >= 1")
        if not 0 <= self.batch_delay_s <= MAX_BATCH_DELAY_S:
            raise ValueError(f"batch_delay_s must be within [0, {MAX_BATCH_DELAY_S}]")


@dataclass(slots=True)
class _Pending:
    """One caller's write: its records or snapshot, and the event it waits on."""

    records: list[JournalRecord] = field(default_factory=list)
    snapshot: Snapshot | None = None
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    @property
    def size(self) -> int:
        return len(self.records) + (1 if self.snapshot is not None else 0)


@dataclass(frozen=True, slots=True)
class CommitStats:
    """What the writer did since the store was opened (for benchmarks and `journal stats`)."""

    records: int
    snapshots: int
    commits: int
    failed_commits: int


class GroupCommitStore(ABC):
    """Base of the durable backends: sequence numbers, the queue and the writer thread.

    Subclasses implement the storage: `_load_last_seq`, `_write_batch` (one
    durable commit of records and snapshots) and `_close_storage`. `append`
    and `save_snapshot` run in the caller's thread and block until durable;
    `_write_batch` runs only in the writer thread. A read-only store
    (`writer=False`) starts no writer thread and refuses every write.
    """

    #: Appends and snapshots survive a crash once acknowledged (the admin reports it).
    durable = True

    def __init__(self, commit: GroupCommitConfig, name: str, *, writer: bool = True) -> None:
        self.commit_config = commit
        self.writer = writer
        # Set (once) when the store must refuse every later write, e.g. a lost lease.
        self._refusal: PosbusError | None = None
        self._lock = threading.Lock()  # guards _next_seq and the queue
        self._wakeup = threading.Condition(self._lock)
        self._queue: deque[_Pending] = deque()
        self._queued = 0
        self._next_seq: dict[str, int] = {}
        self._closing = False
        self._closed = threading.Event()
        self._n_records = self._n_snapshots = self._n_commits = self._n_failed = 0
        self._writer = threading.Thread(
            target=self._run, name=f"journal-writer-{name}", daemon=True
        )

    def _start_writer(self) -> None:
        """Start the writer thread; subclasses call it once their storage is open."""
        self._writer.start()

    # -- storage (subclasses) ----------------------------------------------------------

    @abstractmethod
    def _load_last_seq(self, stream: str) -> int:
        """The highest stored sequence number of `stream` (0 if none); any thread."""

    @abstractmethod
    def _write_batch(self, records: Sequence[JournalRecord], snapshots: Sequence[Snapshot]) -> None:
        """Make `records` and `snapshots` durable in one commit (writer thread).

        Raises JournalCorrupt for a conflicting record already stored, and any
        other exception for a failed write (the whole batch then fails).
        """

    @abstractmethod
    def _close_storage(self) -> None:
        """Release connections and files (writer thread, after the last batch)."""

    # -- the write path (caller threads) -----------------------------------------------

    def append(self, stream: str, payload: bytes) -> JournalRecord:
        """Append `payload` to `stream` with the next sequence number; durable on return.

        Raises JournalUnavailable when the write failed or the store is
        closed, JournalCorrupt when another writer stored a different record
        under the same number.
        """
        return self.append_many(stream, (payload,))[0]

    def append_many(self, stream: str, payloads: Iterable[bytes]) -> list[JournalRecord]:
        """Append several records to `stream` in order, in one commit; durable on return."""
        payloads = [bytes(p) for p in payloads]
        if not payloads:
            return []
        pending = _Pending()
        with self._lock:
            self._check_open()
            seq = self._next_seq.get(stream)
            if seq is None:
                seq = self._load_last_seq(stream) + 1
            for offset, payload in enumerate(payloads):
                n = seq + offset
                pending.records.append(
                    JournalRecord(stream, n, payload, checksum(stream, n, payload))
                )
            self._next_seq[stream] = seq + len(payloads)
            self._enqueue(pending)
        self._wait(pending)
        return pending.records

    def save_snapshot(self, stream: str, seq: int, payload: bytes) -> Snapshot:
        """Store a snapshot of `stream` at `seq` (replacing one at that seq); durable on return."""
        if seq < 0:
            raise ValueError("a snapshot's seq is >= 0")
        payload = bytes(payload)
        snapshot = Snapshot(stream, seq, payload, snapshot_checksum(stream, seq, payload))
        pending = _Pending(snapshot=snapshot)
        with self._lock:
            self._check_open()
            self._enqueue(pending)
        self._wait(pending)
        return snapshot

    def stats(self) -> CommitStats:
        """Counts of what the writer committed so far."""
        with self._lock:
            return CommitStats(self._n_records, self._n_snapshots, self._n_commits, self._n_failed)

    def close(self) -> None:
        """Write everything queued, stop the writer and release the storage (idempotent)."""
        with self._lock:
            self._closing = True
            self._wakeup.notify_all()
        if self._writer.is_alive():
            self._writer.join()
        elif not self._closed.is_set():
            self._close_storage()
            self._closed.set()

    def _enqueue(self, pending: _Pending) -> None:
        self._queue.append(pending)
        self._queued += pending.size
        self._wakeup.notify()

    def _wait(self, pending: _Pending) -> None:
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    def _check_open(self) -> None:
        if not self.writer:
            raise JournalReadOnly("journal opened read-only (writer=False): writes are refused")
        if self._refusal is not None:
            raise self._refusal
        if self._closing:
            raise JournalUnavailable("journal is closed")

    # -- the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        batch: list[_Pending] = []
        try:
            while True:
                next_batch = self._next_batch()
                if next_batch is None:
                    return
                batch = next_batch
                self._commit(batch)
                batch = []
        except BaseException as exc:
            # A bug in the writer must not leave callers waiting forever.
            with self._lock:
                self._closing = True
            self._fail(batch, JournalUnavailable(f"journal writer died: {exc!r}"))
            raise
        finally:
            try:
                self._close_storage()
            finally:
                self._closed.set()

    def _next_batch(self) -> list[_Pending] | None:
        cfg = self.commit_config
        with self._lock:
            while not self._queue:
                if self._closing:
                    return None
                self._wakeup.wait()
            if cfg.batch_delay_s > 0 and not self._closing:
                deadline = time.monotonic() + cfg.batch_delay_s
                while self._queued < cfg.batch_max and not self._closing:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wakeup.wait(left)
            batch: list[_Pending] = []
            size = 0
            # Whole callers only: an append_many larger than batch_max is one commit.
            while self._queue and (not batch or size + self._queue[0].size <= cfg.batch_max):
                pending = self._queue.popleft()
                size += pending.size
                batch.append(pending)
            self._queued -= size
            return batch

    def _commit(self, batch: list[_Pending]) -> None:
        records = [r for p in batch for r in p.records]
        snapshots = [p.snapshot for p in batch if p.snapshot is not None]
        try:
            self._write_batch(records, snapshots)
        except PosbusError as exc:
            self._fail(batch, exc)
        except Exception as exc:  # noqa: BLE001 - storage boundary: every caller gets the error
            self._fail(batch, JournalUnavailable(f"journal write failed: {exc!r}"))
        else:
            with self._lock:
                self._n_records += len(records)
                self._n_snapshots += len(snapshots)
                self._n_commits += 1
            for pending in batch:
                pending.done.set()

    def _fail(self, batch: list[_Pending], error: PosbusError) -> None:
        logger.error(
            "journal write failed; batch and queue refused, sequence numbers reloaded",
            extra={"error": str(error), "batch_records": sum(p.size for p in batch)},
        )
        with self._lock:
            # The queued records were numbered after the failed ones: written
            # now, they would leave a gap. Refuse them too and renumber from storage.
            failed = [*batch, *self._queue]
            self._queue.clear()
            self._queued = 0
            self._next_seq.clear()
            self._n_failed += 1
        refused = JournalUnavailable(f"journal write refused: the batch failed ({error})")
        for pending in failed:
            # The conflict is news only to the writer of that stream; the
            # others learn that their write did not happen.
            mine = isinstance(error, JournalCorrupt) and any(
                r.stream == error.stream for r in pending.records
            )
            pending.error = error if mine or not isinstance(error, JournalCorrupt) else refused
            pending.done.set()
