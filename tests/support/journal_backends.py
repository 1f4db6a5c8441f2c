"""The journal backends the shared test suite runs against, and raw access to their storage.

`BACKENDS` names them: "memory", "sqlite", "mongodb". A `Backend` opens the
same storage again and again (`open()`, a process restart in miniature: a
writer open first closes the writers it opened before, as the previous
process would be gone, since a journal has one writer) and reaches under the
journal to damage it the way disks and operators do: overwrite a stored
payload, delete a record, change a snapshot, store a record as another
writer would.

MongoDB: `mongodb_server()` returns the URI of a server for the test session:
POSBUS_TEST_MONGODB_URI when set (CI starts one, see .ci/run), else a
SecantusDB test server started for the session with
tests/support/mongodb_test_server.sh. If no server can be had the tests fail;
they never skip (a skipped MongoDB test would not count).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson.binary import Binary
from pymongo import MongoClient

from posbus.actors.journal import JournalRecord, JournalStore, Snapshot, checksum
from posbus.adapters.journal.group_commit import GroupCommitConfig
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.journal.mongodb import RECORDS, SNAPSHOTS, STREAMS, MongoJournal
from posbus.adapters.journal.sqlite import SqliteJournal

BACKENDS = ("memory", "sqlite", "mongodb")
DURABLE_BACKENDS = ("sqlite", "mongodb")
_SCRIPT = Path(__file__).with_name("mongodb_test_server.sh")


@dataclass
class Backend:
    """One backend's storage for one test: open it (again), and damage it underneath."""

    name: str
    open: Callable[..., JournalStore]
    overwrite_payload: Callable[[str, int, bytes], None]
    delete_record: Callable[[str, int], None]
    overwrite_snapshot: Callable[[str, int, bytes], None]
    opened: list[JournalStore] = field(default_factory=list)
    database: str = ""  # mongodb only
    raw: Any = None  # mongodb only: a client that bypasses the journal
    # durable only: store (stream, seq, payload) with its checksum and move the
    # stream's head, as a writer other than the open journals would
    insert_record: Callable[[str, int, bytes], None] | None = None

    def close_all(self) -> None:
        """Close every journal this backend opened (teardown)."""
        for journal in reversed(self.opened):
            journal.close()


def memory_backend() -> Backend:
    """Memory 'storage' is the first journal's dicts, shared by every journal opened after it."""
    first = MemoryJournal()
    opened: list[JournalStore] = []

    def open_journal(**kwargs: Any) -> JournalStore:
        journal = MemoryJournal(keep_snapshots=kwargs.get("keep_snapshots", 3))
        journal._streams = first._streams
        journal._snapshots = first._snapshots
        opened.append(journal)
        return journal

    def overwrite_payload(stream: str, seq: int, payload: bytes) -> None:
        records = first._streams[stream]
        old = records[seq - 1]
        records[seq - 1] = JournalRecord(stream, seq, payload, old.checksum)

    def delete_record(stream: str, seq: int) -> None:
        del first._streams[stream][seq - 1]

    def overwrite_snapshot(stream: str, seq: int, payload: bytes) -> None:
        old = first._snapshots[stream][seq]
        first._snapshots[stream][seq] = Snapshot(stream, seq, payload, old.checksum)

    return Backend(
        "memory", open_journal, overwrite_payload, delete_record, overwrite_snapshot, opened
    )


def sqlite_backend(path: Path) -> Backend:
    """An SQLite file at `path`; damage goes through a separate sqlite3 connection."""
    opened: list[JournalStore] = []

    def open_journal(**kwargs: Any) -> JournalStore:
        if kwargs.get("writer", True):
            _restart(opened)
        journal = SqliteJournal(path, **kwargs)
        opened.append(journal)
        return journal

    def execute(sql: str, args: tuple[Any, ...]) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(sql, args)
        finally:
            conn.close()

    def overwrite_payload(stream: str, seq: int, payload: bytes) -> None:
        execute(
            "UPDATE records SET payload = ? WHERE stream = ? AND seq = ?", (payload, stream, seq)
        )

    def delete_record(stream: str, seq: int) -> None:
        execute("DELETE FROM records WHERE stream = ? AND seq = ?", (stream, seq))

    def overwrite_snapshot(stream: str, seq: int, payload: bytes) -> None:
        execute(
            "UPDATE snapshots SET payload = ? WHERE stream = ? AND seq = ?", (payload, stream, seq)
        )

    def insert_record(stream: str, seq: int, payload: bytes) -> None:
        execute(
            "INSERT INTO records (stream, seq, payload, checksum) VALUES (?, ?, ?, ?)",
            (stream, seq, payload, checksum(stream, seq, payload)),
        )
        execute(
            "INSERT INTO streams (stream, last_seq) VALUES (?, ?) ON CONFLICT (stream)"
            " DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            (stream, seq),
        )

    return Backend(
        "sqlite",
        open_journal,
        overwrite_payload,
        delete_record,
        overwrite_snapshot,
        opened,
        insert_record=insert_record,
    )


def mongodb_backend(uri: str) -> Backend:
    """A fresh database on the test server; dropped by `drop`."""
    database = f"posbus_test_{uuid.uuid4().hex[:12]}"
    opened: list[JournalStore] = []
    raw: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    db = raw[database]

    def open_journal(**kwargs: Any) -> JournalStore:
        kwargs.setdefault("w", 1)
        if kwargs.get("writer", True):
            _restart(opened)
        journal = MongoJournal(kwargs.pop("uri", uri), database=database, **kwargs)
        opened.append(journal)
        return journal

    def overwrite_payload(stream: str, seq: int, payload: bytes) -> None:
        db[RECORDS].update_one(
            {"stream": stream, "seq": seq}, {"$set": {"payload": Binary(payload)}}
        )

    def delete_record(stream: str, seq: int) -> None:
        db[RECORDS].delete_one({"stream": stream, "seq": seq})

    def overwrite_snapshot(stream: str, seq: int, payload: bytes) -> None:
        db[SNAPSHOTS].update_one(
            {"stream": stream, "seq": seq}, {"$set": {"payload": Binary(payload)}}
        )

    def insert_record(stream: str, seq: int, payload: bytes) -> None:
        db[RECORDS].insert_one(
            {
                "stream": stream,
                "seq": seq,
                "payload": Binary(payload),
                "checksum": checksum(stream, seq, payload),
            }
        )
        db[STREAMS].update_one({"_id": stream}, {"$max": {"last_seq": seq}}, upsert=True)

    return Backend(
        "mongodb",
        open_journal,
        overwrite_payload,
        delete_record,
        overwrite_snapshot,
        opened,
        database=database,
        raw=raw,
        insert_record=insert_record,
    )


def _restart(opened: list[JournalStore]) -> None:
    """Close the writers opened so far: the process that held them is gone."""
    for journal in opened:
        if getattr(journal, "writer", True):
            journal.close()


def drop_mongodb(backend: Backend) -> None:
    """Drop the test database and close the raw client."""
    backend.raw.drop_database(backend.database)
    backend.raw.close()


def fast_commit() -> GroupCommitConfig:
    """Group commit without an added delay: the tests wait for nothing."""
    return GroupCommitConfig(batch_max=500, batch_delay_s=0.0)


class MongoServer:
    """The session's MongoDB: the one named by POSBUS_TEST_MONGODB_URI, or one started here."""

    def __init__(self) -> None:
        self.uri = os.environ.get("POSBUS_TEST_MONGODB_URI", "")
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        if not self.uri:
            self._start()

    def _start(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="posbus-mongo-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        result = subprocess.run(
            ["bash", str(_SCRIPT), "start", str(port), self._dir.name],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                "no MongoDB for the tests: set POSBUS_TEST_MONGODB_URI or let "
                f"{_SCRIPT} start the test server; it said:\n{result.stderr}"
            )
        self.uri = result.stdout.strip().splitlines()[-1]

    @property
    def port(self) -> int:
        """The server's port (for a proxy in front of it)."""
        host_port = self.uri.split("://", 1)[1].split("/", 1)[0].split(",")[0]
        return int(host_port.rsplit(":", 1)[1])

    def stop(self) -> None:
        """Stop the server if this session started it."""
        if self._dir is not None:
            subprocess.run(["bash", str(_SCRIPT), "stop", self._dir.name], timeout=60, check=False)
            self._dir.cleanup()
            self._dir = None
