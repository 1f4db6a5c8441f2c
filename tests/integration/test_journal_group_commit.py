"""Group commit (adapters/journal/group_commit.py) on a storage the test controls.

`GatedStore` is a GroupCommitStore whose storage is a list, and whose writer
can be held at the start of a commit, so the tests line callers up behind it
and see exactly which batches the writer forms.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from posbus.actors.journal import JournalRecord, JournalUnavailable, Snapshot
from posbus.adapters.journal.group_commit import GroupCommitConfig, GroupCommitStore

WAIT_S = 10.0


class GatedStore(GroupCommitStore):
    """Commits to `self.committed`; `hold()` stops the writer before its next commit."""

    def __init__(self, commit: GroupCommitConfig) -> None:
        super().__init__(commit, "gated")
        self.committed: list[JournalRecord] = []
        self.batches: list[int] = []
        self.fail_next: Exception | None = None
        self._gate = threading.Event()
        self._gate.set()
        self.writer_waiting = threading.Event()
        self._want_queued = 0
        self.queued_enough = threading.Event()
        self._start_writer()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def expect_queued(self, count: int) -> None:
        self._want_queued = count
        self.queued_enough.clear()

    def _enqueue(self, pending: object) -> None:
        super()._enqueue(pending)  # type: ignore[arg-type]
        if self._want_queued and len(self._queue) >= self._want_queued:
            self.queued_enough.set()

    def _load_last_seq(self, stream: str) -> int:
        return max((r.seq for r in self.committed if r.stream == stream), default=0)

    def _write_batch(self, records: Sequence[JournalRecord], snapshots: Sequence[Snapshot]) -> None:
        self.writer_waiting.set()
        assert self._gate.wait(WAIT_S)
        self.writer_waiting.clear()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.committed += records
        self.batches.append(len(records) + len(snapshots))

    def read(self, stream: str, after_seq: int = 0) -> list[JournalRecord]:
        return [r for r in self.committed if r.stream == stream and r.seq > after_seq]

    def _close_storage(self) -> None:
        pass


def appenders(store: GatedStore, count: int, stream: str = "s") -> list[threading.Thread]:
    threads = [
        threading.Thread(target=store.append, args=(stream, f"p{n}".encode())) for n in range(count)
    ]
    for thread in threads:
        thread.start()
    return threads


def join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT_S)
        assert not thread.is_alive()


@pytest.fixture
def store() -> GatedStore:
    return GatedStore(GroupCommitConfig(batch_max=4, batch_delay_s=0.0))


def test_an_append_returns_only_once_its_record_is_committed(store: GatedStore) -> None:
    record = store.append("s", b"x")
    assert store.committed == [record]
    store.close()


def test_callers_queued_behind_a_commit_share_the_next_ones_up_to_batch_max(
    store: GatedStore,
) -> None:
    store.hold()
    first = appenders(store, 1)
    assert store.writer_waiting.wait(WAIT_S)
    store.expect_queued(10)
    rest = appenders(store, 10)
    assert store.queued_enough.wait(WAIT_S)
    store.release()
    join(first + rest)
    # One commit for the first, then the ten queued meanwhile in batches of at most 4.
    assert store.batches == [1, 4, 4, 2]
    assert [r.seq for r in store.read("s")] == list(range(1, 12))
    assert store.stats().commits == 4
    store.close()


def test_a_bounded_delay_gathers_the_appends_into_one_full_batch() -> None:
    """Three appends within the delay are one commit of three, in order.

    (How soon a full batch is written is a latency, measured by the journal
    benchmarks, not asserted here.)
    """
    store = GatedStore(GroupCommitConfig(batch_max=3, batch_delay_s=5.0))
    threads = appenders(store, 3)
    join(threads)
    assert store.batches == [3]
    assert store.stats().commits == 1
    assert [r.seq for r in store.read("s")] == [1, 2, 3]
    store.close()


def test_a_failed_commit_fails_its_callers_and_those_queued_behind_it(store: GatedStore) -> None:
    store.append("s", b"kept")
    store.hold()
    errors: list[Exception] = []

    def append(payload: bytes) -> None:
        try:
            store.append("s", payload)
        except JournalUnavailable as exc:
            errors.append(exc)

    first = threading.Thread(target=append, args=(b"lost-1",))
    first.start()
    assert store.writer_waiting.wait(WAIT_S)
    store.expect_queued(2)
    queued = [threading.Thread(target=append, args=(p,)) for p in (b"lost-2", b"lost-3")]
    for thread in queued:
        thread.start()
    assert store.queued_enough.wait(WAIT_S)
    store.fail_next = OSError("disk full")
    store.release()
    join([first, *queued])
    assert len(errors) == 3
    assert "disk full" in str(errors[0])
    # Numbering restarts from what storage holds: no gap where the lost ones were.
    assert store.append("s", b"next").seq == 2
    assert [r.payload for r in store.read("s")] == [b"kept", b"next"]
    store.close()


def test_close_commits_what_is_queued_then_refuses_appends(store: GatedStore) -> None:
    store.hold()
    first = appenders(store, 1)
    assert store.writer_waiting.wait(WAIT_S)
    store.expect_queued(3)
    rest = appenders(store, 3)
    assert store.queued_enough.wait(WAIT_S)
    closer = threading.Thread(target=store.close)
    closer.start()
    store.release()
    join([*first, *rest, closer])
    assert len(store.committed) == 4
    with pytest.raises(JournalUnavailable):
        store.append("s", b"too late")


def test_batch_settings_out_of_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_max"):
        GroupCommitConfig(batch_max=0)
    with pytest.raises(ValueError, match="batch_delay_s"):
        GroupCommitConfig(batch_delay_s=5.5)
