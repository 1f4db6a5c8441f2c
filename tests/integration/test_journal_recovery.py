"""Recovery = latest valid snapshot + replay, with real actors, on every journal backend.

A node trades a little on the simulated exchange; then a second node (a
restarted process) opens the same storage and must come up with exactly the
same positions, orders and risk state, through snapshots taken on shutdown, on
demand and on a timer. Then the storage is damaged underneath (a flipped byte
in an event or a snapshot, a missing record, a truncated file) and each damage
must give its clear error, never a wrong state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from journal_backends import Backend, fast_commit, sqlite_backend
from node_inputs import ACCOUNT, BTC, CONFIG_NO_SNAPSHOTS, ETH, intent, quote

from posbus.actors.delivery import Outbox, decode_record
from posbus.actors.journal import Journal, JournalCorrupt, JournalRecord, JournalStore
from posbus.actors.model.side import Side
from posbus.actors.node import Node
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.actors.risk_supervisor import RISK_STREAM
from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimConfig, SimulatedExchange
from posbus.bus.messages import Command

BTC_STREAM = position_stream(ACCOUNT, BTC)
T0 = 1_700_000_000_000_000_000
WAIT_S = 20.0

# Three restarts, not ten: a record that stays corrupt escalates after a few quick attempts.
FAST = SupervisorPolicy(max_restarts=3, period_s=60.0, backoff=Backoff(0.001, 0.005))
CONFIG = replace(CONFIG_NO_SNAPSHOTS, policy=FAST)


class JournalOnly:
    """A journal without snapshots: a node on it can only replay (to damage a replayed record)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def append(self, stream: str, payload: bytes) -> JournalRecord:
        return self._journal.append(stream, payload)

    def read(self, stream: str, after_seq: int = 0) -> Iterator[JournalRecord]:
        return self._journal.read(stream, after_seq)

    def last_seq(self, stream: str) -> int:
        return self._journal.last_seq(stream)

    def streams(self) -> list[str]:
        return self._journal.streams()


def open_journal(backend: Backend) -> JournalStore:
    return backend.open() if backend.name == "memory" else backend.open(commit=fast_commit())


def trade_part_one(node: Node, clock: ManualClock) -> None:
    node.market(quote(clock, BTC, "49990", "50010"))
    node.market(quote(clock, ETH, "2999", "3001"))
    node.signal(intent(clock, BTC, Side.BUY, "0.3"))
    node.signal(intent(clock, ETH, Side.SELL, "2"))
    node.settle()


def trade_part_two(node: Node, clock: ManualClock) -> None:
    clock.advance(10**9)
    node.market(quote(clock, BTC, "50490", "50510"))
    node.signal(intent(clock, BTC, Side.SELL, "0.1"))
    node.signal(intent(clock, BTC, Side.BUY, "0.1", limit="49000"))  # rests
    node.settle()


def books(node: Node) -> dict[str, dict[str, Any]]:
    """What must survive a restart: per position, the journaled state (no marks, no timing)."""
    keep = ("status", "qty", "avg_entry_price", "realized_pnl", "fees", "trade_ids", "orders")
    out = {}
    for name in node.position_names():
        state = node.inspect(name)
        out[name] = {key: state[key] for key in keep} | {"journal_seq": state["journal_seq"]}
    return out


def without_execution(book: dict[str, Any]) -> dict[str, Any]:
    """A position's book without its orders' execution statistics (market-data derived)."""
    orders = {
        oid: {k: v for k, v in order.items() if k != "execution"}
        for oid, order in book["orders"].items()
    }
    return {**book, "orders": orders}


def exchange() -> SimulatedExchange:
    return SimulatedExchange(SimConfig(seed=11, partial_fill_rate=0.5), account=ACCOUNT)


# -- recovery through snapshots ------------------------------------------------------


def test_a_restarted_node_recovers_every_actor_from_its_shutdown_snapshots(
    journal_backend: Backend, start_node: Any
) -> None:
    clock, venue = ManualClock(T0), exchange()
    first = start_node(CONFIG, journal=open_journal(journal_backend), exchange=venue, clock=clock)
    trade_part_one(first, clock)
    trade_part_two(first, clock)
    assert first.halt("end of day") == "Halted"
    first.settle()  # the halt cancels the resting buy: let the venue answer
    before = books(first)
    first.stop()

    storage = open_journal(journal_backend)
    (snapshot, *_) = storage.snapshots(BTC_STREAM)
    assert snapshot.seq == before[BTC_STREAM]["journal_seq"]
    assert storage.snapshots(RISK_STREAM)[0].seq == storage.last_seq(RISK_STREAM)

    second = start_node(CONFIG, journal=storage, exchange=venue, clock=clock)
    second.settle()
    assert books(second) == before
    recovery = second.inspect(BTC_STREAM)["recovery"]
    assert (recovery["snapshot_seq"], recovery["replayed"]) == (snapshot.seq, 0)
    risk = second.inspect("risk")
    assert risk["state"] == "Halted"
    assert risk["recovery"]["snapshot_seq"] == storage.last_seq(RISK_STREAM)


def test_records_after_the_latest_snapshot_are_replayed_on_top_of_it(
    journal_backend: Backend, start_node: Any
) -> None:
    clock = ManualClock(T0)
    journal = open_journal(journal_backend)
    node = start_node(CONFIG, journal=journal, exchange=exchange(), clock=clock)
    trade_part_one(node, clock)
    taken = node.snapshot()
    # No risk state change yet: the risk stream is empty and has nothing to snapshot.
    assert set(taken) == {BTC_STREAM, position_stream(ACCOUNT, ETH)}
    trade_part_two(node, clock)
    live = books(node)[BTC_STREAM]

    # The offline path: the same recovery as an actor start, read-only. Its replay
    # sees no market data, so the arrival prices of replayed orders are unknown.
    rebuilt = PositionActor.recovered_state(node.outbox, ACCOUNT, BTC, journal)
    assert without_execution({key: rebuilt[key] for key in live}) == without_execution(live)
    recovery = rebuilt["recovery"]
    assert recovery["snapshot_seq"] == taken[BTC_STREAM]
    assert recovery["replayed"] == live["journal_seq"] - taken[BTC_STREAM] > 0


def test_periodic_snapshots_are_taken_once_the_interval_has_passed(start_node: Any) -> None:
    clock, journal = ManualClock(T0), MemoryJournal()
    config = replace(CONFIG, snapshot_interval_s=30)
    node = start_node(config, journal=journal, exchange=exchange(), clock=clock)
    trade_part_one(node, clock)
    assert node.halt("a risk record to snapshot") == "Halted"
    clock.set(T0 + 29 * 10**9)
    node.tick()
    node.settle()
    assert journal.snapshots(BTC_STREAM) == []
    clock.set(T0 + 30 * 10**9)
    node.tick()
    node.settle()  # the actors handle the told TakeSnapshot before the settle's Inspect
    assert [s.seq for s in journal.snapshots(BTC_STREAM)] == [journal.last_seq(BTC_STREAM)]
    assert [s.seq for s in journal.snapshots(RISK_STREAM)] == [journal.last_seq(RISK_STREAM)]
    assert journal.last_seq(RISK_STREAM) > 0


def test_an_actor_with_nothing_new_since_its_snapshot_saves_none(start_node: Any) -> None:
    clock = ManualClock(T0)
    node = start_node(CONFIG, journal=MemoryJournal(), exchange=exchange(), clock=clock)
    trade_part_one(node, clock)
    assert node.snapshot() != {}
    assert node.snapshot() == {}


# -- damage: events -------------------------------------------------------------------


def test_a_flipped_byte_in_an_event_stops_recovery_and_halts_the_account(
    journal_backend: Backend, start_node: Any
) -> None:
    clock, venue = ManualClock(T0), exchange()
    storage = open_journal(journal_backend)
    first = start_node(CONFIG, journal=JournalOnly(storage), exchange=venue, clock=clock)
    trade_part_one(first, clock)
    first.stop()
    (_, record, *_) = storage.read(BTC_STREAM)
    damaged = bytearray(record.payload)
    damaged[-3] ^= 0x01
    journal_backend.overwrite_payload(BTC_STREAM, record.seq, bytes(damaged))

    reopened = open_journal(journal_backend)
    with pytest.raises(JournalCorrupt) as caught:
        PositionActor.recovered_state(Outbox(reopened, "t", clock), ACCOUNT, BTC, reopened)
    assert (caught.value.stream, caught.value.seq) == (BTC_STREAM, 2)
    assert caught.value.problem == "checksum mismatch"

    # The position's start fails (and fails again on each restart, until its
    # supervisor gives up and escalates); before failing it halts the account.
    second = start_node(CONFIG, journal=reopened, exchange=venue, clock=clock)
    risk = second.inspect("risk")  # asked after the Halt the failing start told it
    assert risk["state"] == "Halted"
    assert BTC_STREAM not in second.running_position_names()
    # The halt is journaled, so it survives restarts until an operator resumes.
    halts = [
        m
        for m in (decode_record(r).message for r in reopened.read(RISK_STREAM))
        if isinstance(m, Command) and m.args.get("durable.halted") == "true"
    ]
    assert halts, "the halt was not journaled"
    reason = halts[-1].args["durable.halt_reason"]
    assert f"journal stream {BTC_STREAM!r} at seq 2: checksum mismatch" in str(reason)


def test_a_missing_event_is_a_sequence_gap(journal_backend: Backend) -> None:
    clock = ManualClock(T0)
    journal = open_journal(journal_backend)
    node_outbox = Outbox(journal, "t", clock)
    for _ in range(3):
        node_outbox.append(BTC_STREAM, intent(clock, BTC, Side.BUY, "0.1", limit="1000"))
    journal_backend.delete_record(BTC_STREAM, 2)
    with pytest.raises(JournalCorrupt) as caught:
        PositionActor.recovered_state(node_outbox, ACCOUNT, BTC)
    assert (caught.value.stream, caught.value.seq) == (BTC_STREAM, 2)
    assert "sequence gap" in caught.value.problem


# -- damage: snapshots ------------------------------------------------------------------


def test_a_flipped_byte_in_a_snapshot_is_reported_and_the_journal_recovers_the_state(
    journal_backend: Backend, start_node: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock, venue = ManualClock(T0), exchange()
    first = start_node(CONFIG, journal=open_journal(journal_backend), exchange=venue, clock=clock)
    trade_part_one(first, clock)
    before = books(first)
    first.stop()
    storage = open_journal(journal_backend)
    (snapshot,) = storage.snapshots(BTC_STREAM)
    journal_backend.overwrite_snapshot(
        BTC_STREAM, snapshot.seq, snapshot.payload.replace(b'"qty":"0.3"', b'"qty":"0.9"')
    )

    with caplog.at_level(logging.ERROR, logger="posbus.actors.recovery"):
        second = start_node(CONFIG, journal=storage, exchange=venue, clock=clock)
        second.settle()
    # qty 0.3, not the 0.9 written into the snapshot (execution statistics hold
    # arrival prices from market data, which a replay does not see).
    after = books(second)
    assert {k: without_execution(v) for k, v in after.items()} == {
        k: without_execution(v) for k, v in before.items()
    }
    recovery = second.inspect(BTC_STREAM)["recovery"]
    assert recovery["rejected_snapshots"] == [f"snapshot at seq {snapshot.seq}: checksum mismatch"]
    assert (recovery["snapshot_seq"], recovery["replayed"]) == (0, snapshot.seq)
    assert any(
        r.message.startswith("snapshot rejected") and getattr(r, "stream", "") == BTC_STREAM
        for r in caplog.records
    )


def test_a_snapshot_covering_records_the_journal_lost_stops_recovery() -> None:
    clock, journal = ManualClock(T0), MemoryJournal()
    outbox = Outbox(journal, "t", clock)
    for _ in range(3):
        outbox.append(BTC_STREAM, intent(clock, BTC, Side.BUY, "0.1", limit="1000"))
    journal.save_snapshot(BTC_STREAM, 3, b"{}")
    del journal._streams[BTC_STREAM][2]  # the tail record is lost; the snapshot covers it
    with pytest.raises(JournalCorrupt) as caught:
        PositionActor.recovered_state(outbox, ACCOUNT, BTC, journal)
    assert (caught.value.stream, caught.value.seq) == (BTC_STREAM, 3)
    assert "the journal ends at seq 2 but a snapshot covers records up to seq 3" in str(
        caught.value
    )


# -- damage: the SQLite file ----------------------------------------------------------


def test_records_missing_at_the_tail_of_an_sqlite_stream_stop_recovery(tmp_path: Any) -> None:
    backend = sqlite_backend(tmp_path / "journal.sqlite")
    clock = ManualClock(T0)
    journal = backend.open(commit=fast_commit())
    outbox = Outbox(journal, "t", clock)
    for _ in range(3):
        outbox.append(BTC_STREAM, intent(clock, BTC, Side.BUY, "0.1", limit="1000"))
    backend.delete_record(BTC_STREAM, 3)  # the streams table still says 3
    try:
        with pytest.raises(JournalCorrupt) as caught:
            PositionActor.recovered_state(outbox, ACCOUNT, BTC, journal)
        assert (caught.value.stream, caught.value.seq) == (BTC_STREAM, 3)
        assert "record missing: the journal's last seq is 3" in caught.value.problem
    finally:
        backend.close_all()


def test_a_truncated_sqlite_file_is_refused_naming_the_file(tmp_path: Any) -> None:
    backend = sqlite_backend(tmp_path / "journal.sqlite")
    clock = ManualClock(T0)
    journal = backend.open(commit=fast_commit())
    outbox = Outbox(journal, "t", clock)
    for n in range(200):
        outbox.append(f"position/A/S{n % 7}", intent(clock, BTC, Side.BUY, "0.1", limit="1000"))
    journal.close()  # checkpoints the WAL into the file
    path = tmp_path / "journal.sqlite"
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 4096)
    with pytest.raises(JournalCorrupt) as caught:
        backend.open()
    assert str(path) in str(caught.value)
    assert "malformed" in str(caught.value)
