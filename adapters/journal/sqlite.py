"""The SQLite journal: the embedded default backend (one file under the run directory).

Durability: WAL mode with `synchronous=FULL`, so an acknowledged append
survives a power loss, not only a process crash. Appends are group-committed
(posbus.adapters.journal.group_commit): one transaction, one fsync, for
everything queued while the previous commit ran. Tables: `records`,
`streams` (each stream's highest acknowledged seq, written in the same
transaction, so a record missing at the tail is detected) and `snapshots`
(the newest `keep_snapshots` per stream). Checksums are stored as written and
verified by the readers, never recomputed here.

One writer per file: a writer holds an exclusive `flock` on the sidecar
`NAME.sqlite.lock` from open to `close()`, and a second writer is refused
with JournalLocked naming the file and the holder's pid. A read-only store
(`writer=False`: `posbus journal`) takes no lock and opens the file with
`mode=ro`. Readers, corruption and the lock: docs/architecture.md, "SQLite
journal".

This module must never acknowledge an append before its commit is durable,
and never overwrite a stored record.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from posbus.actors.journal import (
    JournalCorrupt,
    JournalLocked,
    JournalRecord,
    JournalUnavailable,
    Snapshot,
)
from posbus.adapters.journal.group_commit import GroupCommitConfig, GroupCommitStore

SCHEMA_VERSION = "1"
_READ_CHUNK = 10_000
_BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS posbus_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    stream TEXT NOT NULL, seq INTEGER NOT NULL, payload BLOB NOT NULL, checksum INTEGER NOT NULL,
    PRIMARY KEY (stream, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY, last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    stream TEXT NOT NULL, seq INTEGER NOT NULL, payload BLOB NOT NULL, checksum INTEGER NOT NULL,
    PRIMARY KEY (stream, seq)
) WITHOUT ROWID;
"""


class SqliteJournal(GroupCommitStore):
    """A journal and snapshot store in one SQLite file; thread-safe.

    Args:
        path: the database file (created with its directory if missing).
        keep_snapshots: how many snapshots to keep per stream (newest by seq).
        commit: group-commit batching (records per commit, bounded delay).
        writer: False opens the file read-only: no writer lock, nothing
            created, appends and snapshot saves raise JournalReadOnly.

    Raises JournalLocked when another writer holds the file, JournalUnavailable
    when it cannot be opened, JournalCorrupt when it is not a posbus journal or
    is damaged.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        keep_snapshots: int = 3,
        commit: GroupCommitConfig | None = None,
        writer: bool = True,
    ) -> None:
        if keep_snapshots < 1:
            raise ValueError("keep_snapshots must be >= 1")
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.keep_snapshots = keep_snapshots
        super().__init__(commit or GroupCommitConfig(), self.path.name, writer=writer)
        self._pool_lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._readers_closed = False
        self._lock_fd: int | None = None
        try:
            if writer:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_fd = _take_writer_lock(self.path, self.lock_path)
            self._conn = self._connect()
            if writer:
                version = self._prepare()
            else:
                (version,) = self._conn.execute(
                    "SELECT value FROM posbus_meta WHERE key = 'schema'"
                ).fetchone()
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the error below is what matters
                conn = getattr(self, "_conn", None)
                if conn is not None:
                    conn.close()
            self._release_writer_lock()
            if isinstance(exc, sqlite3.DatabaseError):
                raise _storage_error(self.path, "", 0, exc) from exc
            if isinstance(exc, OSError):
                raise JournalUnavailable(f"{self.path}: cannot open the journal: {exc}") from exc
            raise
        if version != SCHEMA_VERSION:
            self._conn.close()
            self._release_writer_lock()
            raise JournalCorrupt("", 0, f"{self.path}: unsupported journal schema {version!r}")
        if writer:
            self._start_writer()

    def _prepare(self) -> str:
        """WAL mode and the schema (writer only); returns the stored schema version."""
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalUnavailable(f"{self.path}: cannot switch to WAL mode (got {mode})")
        self._conn.executescript(_SCHEMA)
        self._conn.execute(
            "INSERT OR IGNORE INTO posbus_meta (key, value) VALUES ('schema', ?)",
            (SCHEMA_VERSION,),
        )
        (version,) = self._conn.execute(
            "SELECT value FROM posbus_meta WHERE key = 'schema'"
        ).fetchone()
        return str(version)

    def _connect(self) -> sqlite3.Connection:
        if self.writer:
            conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=FULL")
            return conn
        # mode=ro: SQLite itself refuses any write, and a missing file is not created.
        return sqlite3.connect(
            f"{self.path.absolute().as_uri()}?mode=ro",
            uri=True,
            timeout=_BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )

    def _release_writer_lock(self) -> None:
        # Closing the descriptor drops the flock; the file stays (removing it
        # would race a writer that just opened it and lock a different inode).
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    # -- storage (GroupCommitStore) ------------------------------------------------------

    def _load_last_seq(self, stream: str) -> int:
        with self._reader() as conn:
            row = conn.execute(
                "SELECT max(coalesce((SELECT last_seq FROM streams WHERE stream = ?1), 0),"
                " coalesce((SELECT max(seq) FROM records WHERE stream = ?1), 0))",
                (stream,),
            ).fetchone()
        return int(row[0])

    def _write_batch(self, records: Sequence[JournalRecord], snapshots: Sequence[Snapshot]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if records:
                self._insert_records(conn, records)
            for snapshot in snapshots:
                conn.execute(
                    "INSERT OR REPLACE INTO snapshots (stream, seq, payload, checksum)"
                    " VALUES (?, ?, ?, ?)",
                    (snapshot.stream, snapshot.seq, snapshot.payload, snapshot.checksum),
                )
                conn.execute(
                    "DELETE FROM snapshots WHERE stream = ?1 AND seq NOT IN"
                    " (SELECT seq FROM snapshots WHERE stream = ?1 ORDER BY seq DESC LIMIT ?2)",
                    (snapshot.stream, self.keep_snapshots),
                )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # the original error is what matters
                conn.execute("ROLLBACK")
            raise

    def _insert_records(self, conn: sqlite3.Connection, records: Sequence[JournalRecord]) -> None:
        rows = [(r.stream, r.seq, r.payload, r.checksum) for r in records]
        cursor = conn.executemany(
            "INSERT OR IGNORE INTO records (stream, seq, payload, checksum) VALUES (?, ?, ?, ?)",
            rows,
        )
        if cursor.rowcount != len(rows):
            # Some numbers were taken: a retried write (same bytes) or a second writer.
            for record in records:
                stored = conn.execute(
                    "SELECT payload, checksum FROM records WHERE stream = ? AND seq = ?",
                    (record.stream, record.seq),
                ).fetchone()
                if stored is not None and (bytes(stored[0]), stored[1]) != (
                    record.payload,
                    record.checksum,
                ):
                    raise JournalCorrupt(
                        record.stream,
                        record.seq,
                        "the sequence number already holds a different record "
                        "(a second writer on this stream?)",
                    )
        heads: dict[str, int] = {}
        for record in records:
            heads[record.stream] = max(heads.get(record.stream, 0), record.seq)
        conn.executemany(
            "INSERT INTO streams (stream, last_seq) VALUES (?, ?) ON CONFLICT (stream)"
            " DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            list(heads.items()),
        )

    def _close_storage(self) -> None:
        with self._pool_lock:
            self._readers_closed = True
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()
        self._conn.close()
        self._release_writer_lock()

    # -- reads (any thread) ---------------------------------------------------------------

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            if self._readers_closed:
                raise JournalUnavailable(f"{self.path}: journal is closed")
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                if self._readers_closed:
                    conn.close()
                else:
                    self._pool.append(conn)

    def read(self, stream: str, after_seq: int = 0) -> Iterator[JournalRecord]:
        """Yield the records of `stream` with seq > `after_seq`, in order, as stored."""
        after = after_seq
        while True:
            try:
                with self._reader() as conn:
                    rows = conn.execute(
                        "SELECT seq, payload, checksum FROM records WHERE stream = ? AND seq > ?"
                        " ORDER BY seq LIMIT ?",
                        (stream, after, _READ_CHUNK),
                    ).fetchall()
            except sqlite3.DatabaseError as exc:
                raise _storage_error(self.path, stream, after + 1, exc) from exc
            for seq, payload, crc in rows:
                yield JournalRecord(stream, seq, bytes(payload), crc)
            if len(rows) < _READ_CHUNK:
                return
            after = rows[-1][0]

    def last_seq(self, stream: str) -> int:
        """The highest acknowledged sequence number of `stream`, 0 when it is empty."""
        row = self._query(stream, "SELECT last_seq FROM streams WHERE stream = ?", (stream,))
        return 0 if not row else int(row[0][0])

    def streams(self) -> list[str]:
        rows = self._query("", "SELECT stream FROM streams ORDER BY stream", ())
        return [row[0] for row in rows]

    def snapshots(self, stream: str) -> list[Snapshot]:
        rows = self._query(
            stream,
            "SELECT seq, payload, checksum FROM snapshots WHERE stream = ? ORDER BY seq DESC",
            (stream,),
        )
        return [Snapshot(stream, seq, bytes(payload), crc) for seq, payload, crc in rows]

    def snapshot_streams(self) -> list[str]:
        rows = self._query("", "SELECT DISTINCT stream FROM snapshots ORDER BY stream", ())
        return [row[0] for row in rows]

    def integrity_problems(self) -> list[str]:
        """SQLite's own page-level check of the file (`PRAGMA integrity_check`); [] when sound."""
        rows = self._query("", "PRAGMA integrity_check", ())
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    def size_bytes(self) -> int:
        """The file's size on disk, WAL included."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total

    def _query(self, stream: str, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        try:
            with self._reader() as conn:
                rows: list[tuple[object, ...]] = conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _storage_error(self.path, stream, 0, exc) from exc
        return rows


def _take_writer_lock(path: Path, lock_path: Path) -> int:
    """Hold an exclusive flock on `lock_path` and write our pid into it; the open descriptor.

    A sidecar, not the database file: SQLite takes its own POSIX (fcntl)
    locks on the database and drops all of a process's locks on a file when
    any descriptor of it closes; where flock is emulated with fcntl locks
    (NFS, some BSDs) a flock on the database would mix with those. The
    sidecar is only ever flocked here, and can hold the pid.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        raise JournalLocked(
            str(path), f"pid {holder}" if holder else "a process whose pid is not written yet"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _storage_error(path: Path, stream: str, seq: int, exc: sqlite3.DatabaseError) -> Exception:
    """A damaged file is corruption; a locked or unreachable one is unavailability."""
    if isinstance(exc, sqlite3.OperationalError) and "malformed" not in str(exc):
        return JournalUnavailable(f"{path}: {exc}")
    return JournalCorrupt(stream, seq, f"{path}: storage damaged: {exc}")
