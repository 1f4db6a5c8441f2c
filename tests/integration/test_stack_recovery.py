"""Snapshots, restarts and corruption on what operators deploy: `posbus up`.

Real processes, real sockets and the workers' real SQLite journals under
RUN_DIR/journal/. The journals are read back here through a read-only store
(no writer lock), as `posbus journal` does.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymongo
import pytest
from journal_backends import MongoServer
from stack_harness import Stack, wait_for, where

from posbus.actors.position_actor import position_stream
from posbus.actors.risk_supervisor import RISK_STREAM
from posbus.adapters.journal.mongodb import MongoJournal
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.adapters.launcher_layout import pid_alive

BTC, ETH = "BTC/USDT", "ETH/USDT"
BTC_STREAM, ETH_STREAM = position_stream("default", BTC), position_stream("default", ETH)
KEYS = ("qty", "avg_entry_price", "realized_pnl", "fees", "fills")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # ipc socket paths are limited to ~100 bytes: pytest's tmp_path can be too long.
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        yield Path(name)


def journal_of(stack: Stack, worker: str) -> Path:
    return stack.run_dir / "journal" / f"{worker}.sqlite"


class Journals:
    """The workers' journals of one stack, on SQLite files or MongoDB databases, read-only."""

    def __init__(self, backend: str, mongodb: MongoServer | None = None) -> None:
        self.backend = backend
        self.uri = "" if mongodb is None else mongodb.uri
        self.database = f"pbstack{uuid.uuid4().hex[:12]}"

    def config(self, snapshot_interval_s: float) -> str:
        """The `[storage]` table of the stack's configuration."""
        table = f"\n[storage]\nsnapshot_interval_s = {snapshot_interval_s}\n"
        if self.backend == "mongodb":
            table += f'backend = "mongodb"\nuri = "{self.uri}"\ndatabase = "{self.database}"\n'
        return table

    def heads(self, stack: Stack, worker: str, streams: list[str]) -> dict[str, tuple[int, int]]:
        """{stream: (last seq, newest snapshot seq or 0)} of `worker`'s journal."""
        if self.backend == "mongodb":
            database = f"{self.database}_{worker}".replace(".", "_")
            store: Any = MongoJournal(self.uri, database=database, writer=False)
        else:
            store = SqliteJournal(journal_of(stack, worker), writer=False)
        try:
            return {
                s: (store.last_seq(s), max((snap.seq for snap in store.snapshots(s)), default=0))
                for s in streams
            }
        finally:
            store.close()

    def drop(self) -> None:
        if self.backend == "mongodb":
            client: Any = pymongo.MongoClient(self.uri)
            for name in client.list_database_names():
                if name.startswith(self.database):
                    client.drop_database(name)
            client.close()


def heads(path: Path, streams: list[str]) -> dict[str, tuple[int, int]]:
    """{stream: (last seq, newest snapshot seq or 0)} of a worker's SQLite journal."""
    store = SqliteJournal(path, writer=False)
    try:
        return {
            s: (store.last_seq(s), max((snap.seq for snap in store.snapshots(s)), default=0))
            for s in streams
        }
    finally:
        store.close()


def filled(stack: Stack, symbol: str, qty: str) -> dict[str, Any] | None:
    position = stack.positions().get(symbol)
    if position is None or Decimal(str(position["qty"])) != Decimal(qty):
        return None
    return position


def book(stack: Stack) -> dict[str, dict[str, Any]]:
    return {sym: {k: p[k] for k in KEYS} for sym, p in stack.positions().items()}


def log_lines(path: Path, offset: int) -> list[dict[str, Any]]:
    with path.open("rb") as f:
        f.seek(offset)
        raw = f.read().decode("utf-8", errors="replace")
    return [json.loads(line) for line in raw.splitlines() if line.startswith("{")]


@pytest.fixture(params=["sqlite", "mongodb"])
def journals(request: pytest.FixtureRequest) -> Iterator[Journals]:
    if request.param == "mongodb":
        found = Journals("mongodb", request.getfixturevalue("mongodb_server"))
    else:
        found = Journals("sqlite")
    try:
        yield found
    finally:
        found.drop()


def test_workers_snapshot_on_their_timer_restart_from_a_snapshot_and_snapshot_on_down(
    short_tmp: Path, journals: Journals
) -> None:
    s = Stack(short_tmp, extra=journals.config(snapshot_interval_s=2))
    s.up()
    try:
        s.json("order", "buy", BTC, "0.1")
        s.json("order", "sell", ETH, "2")
        wait_for("BTC filled", lambda: filled(s, BTC, "0.1"))
        wait_for("ETH filled", lambda: filled(s, ETH, "-2"))
        s.cli("halt", "--reason", "a record on the risk stream")
        s.cli("resume")

        # Every open position's stream and the risk stream get a snapshot on the timer.
        def snapshotted() -> bool:
            positions = journals.heads(s, "positions.0", [BTC_STREAM, ETH_STREAM])
            risk = journals.heads(s, "risk", [RISK_STREAM])
            return all(snap > 0 for _, snap in [*positions.values(), *risk.values()])

        wait_for("periodic snapshots of positions and risk", snapshotted)
        before = book(s)

        log = s.run_dir / "logs" / "positions.0.log"
        offset = log.stat().st_size
        old_pid = s.worker("positions.0")["pid"]
        os.kill(old_pid, signal.SIGKILL)
        wait_for(
            "positions.0 restarted",
            lambda: where(s.worker("positions.0"), lambda w: w["pid"] != old_pid and w["serving"]),
        )
        wait_for(
            "positions recovered",
            lambda: where(
                s.admin("positions.0", "status"), lambda st: st["recovered"]["state"] == "done"
            ),
        )
        recovered = {
            line["stream"]: line
            for line in log_lines(log, offset)
            if line.get("msg") == "stream recovered"
        }
        for stream in (BTC_STREAM, ETH_STREAM):
            line = recovered[stream]
            assert line["snapshot_seq"] > 0, line
            # Only the records after the snapshot were replayed.
            assert line["replayed"] == line["position"] - line["snapshot_seq"], line
        assert book(s) == before

        s.cli("down", "--timeout", "30")
        # A clean stop snapshots every stream at its last record.
        for worker, streams in (("positions.0", [BTC_STREAM, ETH_STREAM]), ("risk", [RISK_STREAM])):
            for stream, (last, snap) in journals.heads(s, worker, streams).items():
                assert snap == last > 0, (worker, stream, last, snap)
    finally:
        s.close()


def test_admin_snapshot_is_durable_and_covers_the_positions(short_tmp: Path) -> None:
    s = Stack(short_tmp)
    s.up()
    try:
        s.json("order", "buy", BTC, "0.1")
        wait_for("BTC filled", lambda: filled(s, BTC, "0.1"))
        answer = s.admin("positions.0", "snapshot")
        assert answer["durable"] is True
        last, snap = heads(journal_of(s, "positions.0"), [BTC_STREAM])[BTC_STREAM]
        assert answer["saved"] == {BTC_STREAM: snap}
        assert snap == last > 0
    finally:
        s.close()


def kill_stack(stack: Stack) -> None:
    """kill -9 the launcher and every worker (a power cut: nothing snapshots)."""
    pids = stack.pids()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for("every process gone", lambda: not any(pid_alive(p) for p in pids))


def flip_a_byte(path: Path, stream: str, seq: int) -> None:
    with sqlite3.connect(path) as db:
        (payload,) = db.execute(
            "SELECT payload FROM records WHERE stream = ? AND seq = ?", (stream, seq)
        ).fetchone()
        damaged = bytearray(payload)
        damaged[-3] ^= 0x01
        db.execute(
            "UPDATE records SET payload = ? WHERE stream = ? AND seq = ?",
            (bytes(damaged), stream, seq),
        )


def drop_the_tail(path: Path, stream: str, seq: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM records WHERE stream = ? AND seq = ?", (stream, seq))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [("flip", "checksum mismatch"), ("tail", "record missing")],
)
def test_a_damaged_position_stream_halts_the_account_on_up(
    short_tmp: Path, damage: str, problem: str
) -> None:
    # No periodic snapshot: the damaged records are the ones recovery must read.
    s = Stack(short_tmp, extra="\n[storage]\nsnapshot_interval_s = 0\n")
    s.up()
    try:
        s.json("order", "buy", BTC, "0.1")
        wait_for("BTC filled", lambda: filled(s, BTC, "0.1"))
        kill_stack(s)
        path = journal_of(s, "positions.0")
        last, snap = heads(path, [BTC_STREAM])[BTC_STREAM]
        assert snap == 0 and last >= 2
        seq = 1 if damage == "flip" else last
        if damage == "flip":
            flip_a_byte(path, BTC_STREAM, seq)
        else:
            drop_the_tail(path, BTC_STREAM, seq)

        s.up()
        risk = wait_for(
            "the account halted",
            lambda: where(s.json("risk"), lambda r: r["state"] == "Halted"),
        )
        assert f"journal stream {BTC_STREAM!r} at seq {seq}: {problem}" in risk["halt_reason"]
        position = s.positions()[BTC]
        assert position["status"] == "Corrupt"
        assert f"at seq {seq}: {problem}" in position["error"]
        # Orders are refused: on the damaged stream at once, elsewhere by risk.
        refused = s.cli("order", "buy", BTC, "0.1", check=False)
        assert refused.returncode != 0
        assert f"{BTC_STREAM} is down" in refused.stderr
        verify = s.cli("journal", "verify", "--path", str(path), check=False)
        assert verify.returncode == 1
        assert BTC_STREAM in verify.stdout + verify.stderr
        assert str(seq) in verify.stdout + verify.stderr
    finally:
        s.close()

    # The halt is journaled: it survives a restart of the whole stack (without
    # --demo: after a clean stop, `up --demo` would start a new demo).
    s.demo = False
    s.up()
    try:
        assert s.json("risk")["state"] == "Halted"
    finally:
        s.close()
