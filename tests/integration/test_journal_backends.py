"""The journal contract, one suite for every backend (memory, SQLite, MongoDB).

Each test takes `journal_backend` (tests/conftest.py) and so runs once per
backend: what one backend does, the others must do too. Tests of what only
durable storage has (reopening, a record stored behind the journal's back)
take `durable_backend`; the single-writer lock and lease are tested in
test_journal_single_writer.py.
"""

from __future__ import annotations

import threading

import pytest
from journal_backends import Backend, fast_commit

from posbus.actors.journal import (
    JournalCorrupt,
    JournalStore,
    JournalUnavailable,
    checksum,
    snapshot_checksum,
)


def open_journal(backend: Backend, **kwargs: object) -> JournalStore:
    """Open the backend's storage with group commit that adds no delay."""
    if backend.name != "memory":
        kwargs.setdefault("commit", fast_commit())
    return backend.open(**kwargs)


# -- appending and reading -------------------------------------------------------------


def test_each_stream_numbers_its_records_from_one_without_gaps(journal_backend: Backend) -> None:
    journal = open_journal(journal_backend)
    seqs = [journal.append("a", b"a1").seq, journal.append("b", b"b1").seq]
    seqs += [journal.append("a", b"a2").seq, journal.append("a", b"a3").seq]
    assert seqs == [1, 1, 2, 3]
    assert journal.last_seq("a") == 3
    assert journal.last_seq("b") == 1
    assert journal.last_seq("never-written") == 0
    assert journal.streams() == ["a", "b"]


def test_read_returns_the_exact_bytes_after_a_sequence_number_in_order(
    journal_backend: Backend,
) -> None:
    journal = open_journal(journal_backend)
    payloads = [bytes([n, 0, 255, n]) * (n + 1) for n in range(5)]
    for payload in payloads:
        journal.append("position/A/BTC", payload)
    tail = list(journal.read("position/A/BTC", after_seq=2))
    assert [r.seq for r in tail] == [3, 4, 5]
    assert [r.payload for r in tail] == payloads[2:]
    assert [r.payload for r in journal.read("position/A/BTC")] == payloads
    assert list(journal.read("position/A/BTC", after_seq=5)) == []
    assert list(journal.read("nothing-here")) == []


def test_every_record_carries_the_checksum_of_its_stream_seq_and_bytes(
    journal_backend: Backend,
) -> None:
    journal = open_journal(journal_backend)
    appended = journal.append("risk", b"payload")
    (stored,) = journal.read("risk")
    assert stored == appended
    assert stored.checksum == checksum("risk", 1, b"payload")
    assert stored.verify()


def test_append_many_numbers_the_records_consecutively_in_one_call(
    journal_backend: Backend,
) -> None:
    journal = open_journal(journal_backend)
    journal.append("s", b"first")
    records = journal.append_many("s", [b"x", b"y", b"z"])
    assert [r.seq for r in records] == [2, 3, 4]
    assert [r.payload for r in journal.read("s", after_seq=1)] == [b"x", b"y", b"z"]


def test_concurrent_appends_lose_nothing_and_leave_no_gap(journal_backend: Backend) -> None:
    journal = open_journal(journal_backend)
    threads, per_thread = 6, 15 if journal_backend.name == "mongodb" else 60

    def writer(n: int) -> None:
        for i in range(per_thread):
            journal.append(f"s{n % 3}", f"{n}:{i}".encode())

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seen: list[bytes] = []
    for stream in ("s0", "s1", "s2"):
        records = list(journal.read(stream))
        # Two writers per stream: 2 x per_thread records, numbered 1..n.
        assert [r.seq for r in records] == list(range(1, 2 * per_thread + 1))
        seen += [r.payload for r in records]
    assert sorted(seen) == sorted(
        f"{n}:{i}".encode() for n in range(threads) for i in range(per_thread)
    )


def test_append_after_close_is_refused(journal_backend: Backend) -> None:
    journal = open_journal(journal_backend)
    journal.append("s", b"kept")
    journal.close()
    with pytest.raises(JournalUnavailable):
        journal.append("s", b"refused")
    with pytest.raises(JournalUnavailable):
        journal.save_snapshot("s", 1, b"{}")


# -- snapshots ------------------------------------------------------------------------


def test_snapshots_come_back_newest_first_with_their_checksum(journal_backend: Backend) -> None:
    journal = open_journal(journal_backend)
    journal.save_snapshot("s", 10, b'{"at":10}')
    journal.save_snapshot("s", 20, b'{"at":20}')
    journal.save_snapshot("other", 5, b"{}")
    newest, older = journal.snapshots("s")
    assert (newest.seq, newest.payload) == (20, b'{"at":20}')
    assert (older.seq, older.payload) == (10, b'{"at":10}')
    assert newest.checksum == snapshot_checksum("s", 20, b'{"at":20}')
    assert newest.verify()
    assert journal.snapshots("none") == []
    assert journal.snapshot_streams() == ["other", "s"]


def test_only_the_newest_snapshots_are_kept(journal_backend: Backend) -> None:
    journal = open_journal(journal_backend, keep_snapshots=2)
    for seq in (3, 1, 7, 5):
        journal.save_snapshot("s", seq, f"{seq}".encode())
    assert [s.seq for s in journal.snapshots("s")] == [7, 5]


def test_a_snapshot_at_the_same_seq_replaces_the_older_one(journal_backend: Backend) -> None:
    journal = open_journal(journal_backend)
    journal.save_snapshot("s", 4, b"old")
    journal.save_snapshot("s", 4, b"new")
    (kept,) = journal.snapshots("s")
    assert kept.payload == b"new"
    assert kept.verify()


def test_a_record_checksum_never_verifies_as_a_snapshot() -> None:
    # Domain separation: the same stream, seq and bytes give different checksums.
    assert checksum("s", 1, b"x") != snapshot_checksum("s", 1, b"x")


# -- damage underneath -------------------------------------------------------------------


def test_a_flipped_byte_in_a_stored_record_fails_its_checksum(journal_backend: Backend) -> None:
    journal = open_journal(journal_backend)
    for n in range(3):
        journal.append("s", f"record {n}".encode())
    journal_backend.overwrite_payload("s", 2, b"record 9")
    reopened = open_journal(journal_backend)
    verified = [(r.seq, r.verify()) for r in reopened.read("s")]
    assert verified == [(1, True), (2, False), (3, True)]


def test_a_flipped_byte_in_a_stored_snapshot_fails_its_checksum(journal_backend: Backend) -> None:
    journal = open_journal(journal_backend)
    journal.save_snapshot("s", 3, b'{"qty":"1"}')
    journal_backend.overwrite_snapshot("s", 3, b'{"qty":"7"}')
    (damaged,) = open_journal(journal_backend).snapshots("s")
    assert damaged.payload == b'{"qty":"7"}'
    assert not damaged.verify()


# -- durable storage ---------------------------------------------------------------------


def test_a_reopened_journal_has_every_record_and_goes_on_numbering(
    durable_backend: Backend,
) -> None:
    first = open_journal(durable_backend)
    for n in range(4):
        first.append("s", f"r{n}".encode())
    first.save_snapshot("s", 4, b"{}")
    first.close()
    second = open_journal(durable_backend)
    assert [r.payload for r in second.read("s")] == [b"r0", b"r1", b"r2", b"r3"]
    assert second.append("s", b"r4").seq == 5
    assert [s.seq for s in second.snapshots("s")] == [4]


def test_a_record_stored_behind_the_journals_back_under_its_next_seq_is_corruption(
    durable_backend: Backend,
) -> None:
    # A second writer got past the writer lock (a restored copy, an older
    # posbus): the journal numbers from what it knew and finds the seq taken.
    journal = open_journal(durable_backend)
    journal.append("s", b"one")
    assert durable_backend.insert_record is not None
    durable_backend.insert_record("s", 2, b"two from elsewhere")
    with pytest.raises(JournalCorrupt) as caught:
        journal.append("s", b"two from the journal")
    assert (caught.value.stream, caught.value.seq) == ("s", 2)
    assert "different record" in caught.value.problem
    assert [r.payload for r in journal.read("s")] == [b"one", b"two from elsewhere"]


def test_the_same_bytes_written_again_under_their_seq_are_accepted_once(
    durable_backend: Backend,
) -> None:
    # A retried write whose first attempt did reach storage: success, not a copy.
    journal = open_journal(durable_backend)
    journal.append("s", b"one")
    assert durable_backend.insert_record is not None
    durable_backend.insert_record("s", 2, b"two")
    assert journal.append("s", b"two").seq == 2
    assert [r.payload for r in journal.read("s")] == [b"one", b"two"]


def test_a_failed_commit_renumbers_from_what_storage_holds(durable_backend: Backend) -> None:
    journal = open_journal(durable_backend)
    journal.append("s", b"one")
    assert durable_backend.insert_record is not None
    durable_backend.insert_record("s", 2, b"two")
    with pytest.raises(JournalCorrupt):
        journal.append("s", b"conflicting two")
    # The failure made the journal forget its numbering: it goes on after what is stored.
    assert journal.append("s", b"three").seq == 3
    assert [r.seq for r in journal.read("s")] == [1, 2, 3]
