"""Exactly one writer per journal: SQLite's file lock, MongoDB's lease and fencing token.

SQLite: a writer holds a flock on NAME.sqlite.lock from open to close; the
OS frees it when the holder dies (a second process, killed with SIGKILL,
shows that no lock goes stale). MongoDB: a writer holds the lease document;
a writer whose lease expired and was taken over is fenced out and stores
nothing. Expiry is driven by clocks injected into the stores, never by
waiting: a "paused" writer is one whose clock stands still. Read-only opens
(`writer=False`, what `posbus journal` uses) work beside a writer.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from journal_backends import Backend, MongoServer, fast_commit

from posbus.actors.delivery import Outbox
from posbus.actors.journal import (
    JournalCorrupt,
    JournalFenced,
    JournalLocked,
    JournalReadOnly,
    JournalStore,
    JournalUnavailable,
)
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.adapters.cli.main import main
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.mongodb import LEASES, RECORDS, MongoJournal
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.bus.messages import OrderIntent

ACCOUNT = "A"
BTC = "BTC/USDT"
BTC_STREAM = position_stream(ACCOUNT, BTC)
T0 = datetime(2030, 1, 1, 12, 0, 0)  # the injected lease clocks start here (naive UTC)


def poll(what: str, probe: Callable[[], bool], bound_s: float = 60.0) -> None:
    """Wait until `probe()` is true, checking every 20 ms; fail after `bound_s`."""
    deadline = time.monotonic() + bound_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


# -- SQLite ----------------------------------------------------------------------------


@pytest.fixture
def journal_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "journal" / "positions.0.sqlite"


@pytest.fixture
def opened() -> Iterator[list[JournalStore]]:
    """Journals a test opened, closed at teardown whatever happened."""
    stores: list[JournalStore] = []
    try:
        yield stores
    finally:
        for store in reversed(stores):
            store.close()


def sqlite(path: Path, opened: list[JournalStore], **kwargs: Any) -> SqliteJournal:
    journal = SqliteJournal(path, commit=fast_commit(), **kwargs)
    opened.append(journal)
    return journal


def test_a_second_sqlite_writer_is_refused_naming_the_file_and_the_holders_pid(
    journal_path: Path, opened: list[JournalStore]
) -> None:
    first = sqlite(journal_path, opened)
    first.append("s", b"one")
    with pytest.raises(JournalLocked) as caught:
        sqlite(journal_path, opened)
    assert str(journal_path) in str(caught.value)
    assert f"pid {os.getpid()}" in str(caught.value)
    assert not caught.value.transient
    lock = journal_path.with_name(journal_path.name + ".lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert lock.read_text().strip() == str(os.getpid())

    first.close()
    second = sqlite(journal_path, opened)
    assert second.append("s", b"two").seq == 2


def test_a_writer_in_another_process_refuses_this_one_until_it_is_killed_with_sigkill(
    journal_path: Path, opened: list[JournalStore]
) -> None:
    holder = textwrap.dedent(
        f"""
        import sys
        from posbus.adapters.journal.sqlite import SqliteJournal
        journal = SqliteJournal({str(journal_path)!r})
        journal.append("s", b"from the other process")
        print("holding", flush=True)
        sys.stdin.read()  # hold the journal until killed
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", holder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "holding"
        with pytest.raises(JournalLocked) as caught:
            sqlite(journal_path, opened)
        assert str(journal_path) in str(caught.value)
        assert f"pid {child.pid}" in str(caught.value)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdin is not None:
            child.stdin.close()
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    # The killed holder never closed anything: the OS dropped its lock.
    journal = sqlite(journal_path, opened)
    assert [r.payload for r in journal.read("s")] == [b"from the other process"]
    assert journal.append("s", b"after the kill").seq == 2


def test_a_read_only_open_beside_a_writer_sees_its_records_and_refuses_writes(
    journal_path: Path, opened: list[JournalStore]
) -> None:
    writer = sqlite(journal_path, opened)
    writer.append_many("s", [b"r1", b"r2"])
    reader = sqlite(journal_path, opened, writer=False)
    assert [r.payload for r in reader.read("s")] == [b"r1", b"r2"]
    assert reader.last_seq("s") == 2
    with pytest.raises(JournalReadOnly):
        reader.append("s", b"refused")
    with pytest.raises(JournalReadOnly):
        reader.save_snapshot("s", 2, b"{}")
    writer.append("s", b"r3")
    assert [r.seq for r in reader.read("s")] == [1, 2, 3]
    reader.close()
    assert writer.append("s", b"r4").seq == 4  # the reader took nothing from the writer


def test_a_read_only_open_creates_no_journal(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sqlite"
    with pytest.raises(JournalUnavailable, match="unable to open"):
        SqliteJournal(missing, writer=False)
    assert not missing.exists()


def test_posbus_journal_verify_reads_a_journal_a_writer_holds(
    journal_path: Path, opened: list[JournalStore], capsys: pytest.CaptureFixture[str]
) -> None:
    writer = sqlite(journal_path, opened)
    outbox = Outbox(writer, "t", ManualClock(1_700_000_000_000_000_000))
    for _ in range(2):
        outbox.append(BTC_STREAM, intent(outbox))
    code = main(["journal", "verify", "--path", str(journal_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{BTC_STREAM}: 2 records" in out
    assert writer.append(BTC_STREAM, b"still the writer").seq == 3


# -- MongoDB ---------------------------------------------------------------------------


class LeaseClock:
    """A lease clock a test moves by hand (naive UTC, as BSON dates come back)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def mongo_writer(
    mongodb_server: MongoServer, mongo: Backend, opened: list[JournalStore]
) -> Callable[..., MongoJournal]:
    """Opens a store on the test database without closing the ones already open."""

    def open_store(**kwargs: Any) -> MongoJournal:
        journal = MongoJournal(
            mongodb_server.uri, database=mongo.database, w=1, commit=fast_commit(), **kwargs
        )
        opened.append(journal)
        return journal

    return open_store


def lease(journal: MongoJournal) -> dict[str, Any]:
    doc = journal.lease()
    assert doc is not None
    return doc


def test_a_second_mongodb_writer_is_refused_naming_the_database_and_the_owner(
    mongo: Backend, mongo_writer: Callable[..., MongoJournal]
) -> None:
    first = mongo_writer()
    first.append("s", b"one")
    with pytest.raises(JournalLocked) as caught:
        mongo_writer()
    assert mongo.database in str(caught.value)
    assert first.owner in str(caught.value)
    assert f"/{os.getpid()}@" in first.owner
    assert not caught.value.transient

    first.close()  # releases the lease: the next writer need not wait for the TTL
    second = mongo_writer()
    assert second.token == first.token + 1
    assert second.append("s", b"two").seq == 2


def test_a_writer_whose_expired_lease_was_taken_over_is_fenced_and_stores_nothing(
    mongo: Backend, mongo_writer: Callable[..., MongoJournal]
) -> None:
    # The old writer is "paused": its clock stands still, and its heartbeat
    # (every 300 s) does not beat during the test. The new one's clock is past
    # the old lease's expiry, so it takes over.
    ttl = dict(lease_ttl_s=600.0, lease_renew_s=300.0)
    old = mongo_writer(clock=LeaseClock(), **ttl)
    old.append_many("s", [b"old 1", b"old 2"])
    with pytest.raises(JournalLocked):
        mongo_writer(clock=LeaseClock(T0 + timedelta(seconds=599)), **ttl)
    new = mongo_writer(clock=LeaseClock(T0 + timedelta(seconds=601)), **ttl)
    assert new.token == old.token + 1
    assert new.append("s", b"new 3").seq == 3

    with pytest.raises(JournalFenced) as caught:
        old.append("s", b"old, after the takeover")
    assert isinstance(caught.value, JournalLocked)
    assert mongo.database in str(caught.value)
    assert new.owner in str(caught.value)
    with pytest.raises(JournalFenced):
        old.save_snapshot("s", 2, b"{}")
    with pytest.raises(JournalFenced):  # and it stays fenced
        old.append("other", b"old again")

    assert new.append("s", b"new 4").seq == 4
    stored = mongo.raw[mongo.database][RECORDS].find({}).sort([("stream", 1), ("seq", 1)])
    assert [(d["stream"], d["seq"], bytes(d["payload"])) for d in stored] == [
        ("s", 1, b"old 1"),
        ("s", 2, b"old 2"),
        ("s", 3, b"new 3"),
        ("s", 4, b"new 4"),
    ]
    assert new.snapshots("s") == []
    old.close()  # a fenced writer's close must not release the new owner's lease
    lease = mongo.raw[mongo.database][LEASES].find_one({})
    assert (lease["owner"], lease["token"]) == (new.owner, new.token)


def test_a_live_writer_renews_its_lease_so_it_is_never_taken_over(
    mongo_writer: Callable[..., MongoJournal],
) -> None:
    clock = LeaseClock()
    writer = mongo_writer(clock=clock, lease_ttl_s=0.4, lease_renew_s=0.1)
    first_expiry = lease(writer)["expires_at"]
    clock.now = T0 + timedelta(seconds=10)  # far past the first expiry...
    # ...but the heartbeat renews from the clock's now: wait for that state.
    poll("the heartbeat renewed the lease", lambda: lease(writer)["expires_at"] > first_expiry)
    with pytest.raises(JournalLocked):
        mongo_writer(clock=LeaseClock(clock.now), lease_ttl_s=0.4, lease_renew_s=0.1)
    assert writer.append("s", b"still mine").seq == 1


def killed_mongodb_writer(mongodb_server: MongoServer, database: str) -> str:
    """The owner id of a writer (lease TTL 1 s) killed with SIGKILL after one append."""
    holder = textwrap.dedent(
        f"""
        import sys
        from posbus.adapters.journal.mongodb import MongoJournal
        journal = MongoJournal({mongodb_server.uri!r}, database={database!r}, w=1,
                               lease_ttl_s=1.0, lease_renew_s=0.2)
        journal.append("s", b"from the dead process")
        print(journal.owner, flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        owner = child.stdout.readline().strip()
        assert f"/{child.pid}@" in owner
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
    return owner


def test_a_killed_mongodb_writer_frees_the_database_once_its_lease_expires(
    mongo: Backend, mongodb_server: MongoServer, mongo_writer: Callable[..., MongoJournal]
) -> None:
    # Server time, no injected clock: the holder dies without releasing its
    # lease, so the next writer gets in only after the lease expired.
    owner = killed_mongodb_writer(mongodb_server, mongo.database)
    taken: list[MongoJournal] = []

    def take_over() -> bool:
        try:
            taken.append(mongo_writer(lease_ttl_s=1.0, lease_renew_s=0.2))
        except JournalLocked as exc:
            assert owner in str(exc)  # refused naming the dead owner until expiry
            return False
        return True

    poll("the dead writer's lease expired", take_over)
    (journal,) = taken
    assert journal.token == 2
    assert [r.payload for r in journal.read("s")] == [b"from the dead process"]
    assert journal.append("s", b"after the takeover").seq == 2


def test_a_writer_restarted_after_a_crash_waits_out_the_dead_writers_lease(
    mongo: Backend, mongodb_server: MongoServer, mongo_writer: Callable[..., MongoJournal]
) -> None:
    # What a worker restarted by the launcher does: one open, which waits.
    killed_mongodb_writer(mongodb_server, mongo.database)
    journal = mongo_writer(lease_ttl_s=1.0, lease_renew_s=0.2, lease_wait_s=60.0)
    assert journal.token == 2
    assert [r.payload for r in journal.read("s")] == [b"from the dead process"]


def test_a_live_writer_still_refuses_one_that_waited_for_its_lease(
    mongo_writer: Callable[..., MongoJournal],
) -> None:
    live = mongo_writer(lease_ttl_s=0.4, lease_renew_s=0.1)
    with pytest.raises(JournalLocked) as caught:
        mongo_writer(lease_ttl_s=0.4, lease_renew_s=0.1, lease_wait_s=1.0)
    assert live.owner in str(caught.value)
    assert live.append("s", b"still mine").seq == 1


def test_a_read_only_mongodb_open_beside_a_writer_reads_and_refuses_writes(
    mongo_writer: Callable[..., MongoJournal],
) -> None:
    writer = mongo_writer()
    writer.append("s", b"one")
    reader = mongo_writer(writer=False)
    assert [r.payload for r in reader.read("s")] == [b"one"]
    with pytest.raises(JournalReadOnly):
        reader.append("s", b"refused")
    with pytest.raises(JournalReadOnly):
        reader.save_snapshot("s", 1, b"{}")
    reader.close()
    assert lease(writer)["owner"] == writer.owner
    assert writer.append("s", b"two").seq == 2


def test_a_record_lost_at_the_tail_of_a_mongodb_stream_stops_recovery(mongo: Backend) -> None:
    journal = mongo.open(commit=fast_commit())
    outbox = Outbox(journal, "t", ManualClock(1_700_000_000_000_000_000))
    for _ in range(3):
        outbox.append(BTC_STREAM, intent(outbox))
    mongo.delete_record(BTC_STREAM, 3)  # the stream's head still says 3
    assert journal.last_seq(BTC_STREAM) == 3
    with pytest.raises(JournalCorrupt) as caught:
        PositionActor.recovered_state(outbox, ACCOUNT, BTC, journal)
    assert (caught.value.stream, caught.value.seq) == (BTC_STREAM, 3)
    assert "record missing: the journal's last seq is 3" in caught.value.problem


def intent(outbox: Outbox) -> OrderIntent:
    n = outbox.journal.last_seq(BTC_STREAM) + 1
    return OrderIntent(
        account=ACCOUNT,
        symbol=BTC,
        side=Side.BUY,
        qty=Decimal("0.1"),
        limit_price=Decimal(1000),
        intent_id=f"intent-{n}",
        reduce_only=False,
        reason="test",
        ts_ns=1_700_000_000_000_000_000 + n,
    )
