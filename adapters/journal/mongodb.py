"""The MongoDB journal (through pymongo): the production backend.

Collections (in `database`): `journal_records` {stream, seq, payload, checksum}
with a unique index on (stream, seq), so a replayed write is detected, never
stored twice; `journal_snapshots` {stream, seq, payload, checksum}, unique on
(stream, seq), keeping the newest `keep_snapshots` per stream.

Writes are group-committed (posbus.adapters.journal.group_commit): the records
of a batch go in one ordered `insert_many`, snapshots in one `bulk_write`,
with a journaled write concern (`j: true`, `w` configurable; "majority" on a
replica set). A batch is written as soon as the writer is free (or after
`batch_delay_s`, at most 5 s) and on close, and `append` returns only when its
batch is acknowledged.

Failures:
- connection errors, timeouts, a lost primary, write-concern errors are
  transient: the batch is retried with exponential backoff and full jitter
  (the `backoff` package) for up to `retry_max_time_s`, then the callers get
  JournalUnavailable;
- a retry finds part of its batch already stored (the reply was lost, not the
  write): a record stored with the same bytes is success, with other bytes it
  is JournalCorrupt (a second writer on the stream); so nothing is lost and
  nothing is doubled;
- any other write error fails the batch (JournalUnavailable).

Checksums are stored as written and verified by the readers, never recomputed
here. This module must never acknowledge an append before MongoDB has
acknowledged it with the configured write concern.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import backoff
from bson.binary import Binary
from pymongo import ASCENDING, DESCENDING, MongoClient, ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, ConnectionFailure, PyMongoError, WriteConcernError
from pymongo.write_concern import WriteConcern

from posbus.actors.journal import JournalCorrupt, JournalRecord, JournalUnavailable, Snapshot
from posbus.adapters.journal.group_commit import GroupCommitConfig, GroupCommitStore

logger = logging.getLogger(__name__)

RECORDS = "journal_records"
SNAPSHOTS = "journal_snapshots"
_DUPLICATE_KEY = 11000
_READ_CHUNK = 10_000
# Errors after which the same write may succeed: the network, the primary, the write concern.
_TRANSIENT = (ConnectionFailure, WriteConcernError)


class _RetryableWrite(Exception):
    """A bulk write that reported a write-concern error: retry the batch."""


class MongoJournal(GroupCommitStore):
    """A journal and snapshot store in MongoDB; thread-safe.

    Args:
        uri: a MongoDB connection string (a replica set in production).
        database: the database holding the collections.
        w: the write concern's `w` (an int or "majority"); `j` is always true.
        keep_snapshots: how many snapshots to keep per stream (newest by seq).
        commit: group-commit batching (records per commit, bounded delay).
        retry_max_time_s: how long a batch is retried on transient errors.
        server_selection_timeout_ms: how long one operation waits for a server.
        client: an existing MongoClient to use instead of connecting to `uri`
            (the journal then does not close it).
    """

    def __init__(
        self,
        uri: str,
        *,
        database: str = "posbus",
        w: int | str = "majority",
        keep_snapshots: int = 3,
        commit: GroupCommitConfig | None = None,
        retry_max_time_s: float = 60.0,
        server_selection_timeout_ms: int = 5_000,
        client: MongoClient[dict[str, Any]] | None = None,
    ) -> None:
        if keep_snapshots < 1:
            raise ValueError("keep_snapshots must be >= 1")
        super().__init__(commit or GroupCommitConfig(), f"mongodb-{database}")
        self.database_name = database
        self.keep_snapshots = keep_snapshots
        self.retry_max_time_s = retry_max_time_s
        self._owns_client = client is None
        self._client: MongoClient[dict[str, Any]] = client or MongoClient(
            uri,
            serverSelectionTimeoutMS=server_selection_timeout_ms,
            connectTimeoutMS=server_selection_timeout_ms,
            socketTimeoutMS=max(30_000, server_selection_timeout_ms),
        )
        db = self._client.get_database(database, write_concern=WriteConcern(w=w, j=True))
        self._records: Collection[dict[str, Any]] = db[RECORDS]
        self._snapshots: Collection[dict[str, Any]] = db[SNAPSHOTS]
        try:
            self._retrying(self._create_indexes)()
        except PyMongoError as exc:
            if self._owns_client:
                self._client.close()
            raise JournalUnavailable(
                f"mongodb {database}: cannot prepare the journal: {exc}"
            ) from exc
        self._start_writer()

    def _create_indexes(self) -> None:
        keys = [("stream", ASCENDING), ("seq", ASCENDING)]
        self._records.create_index(keys, unique=True, name="stream_seq")
        self._snapshots.create_index(keys, unique=True, name="stream_seq")

    def _retrying(self, func: Any) -> Any:
        """`func` retried on transient errors with exponential backoff and full jitter."""
        return backoff.on_exception(
            backoff.expo,
            (*_TRANSIENT, _RetryableWrite),
            max_time=self.retry_max_time_s,
            max_value=2.0,
            jitter=backoff.full_jitter,
            on_backoff=self._on_backoff,
            logger=None,
        )(func)

    def _on_backoff(self, details: Any) -> None:
        logger.warning(
            "mongodb journal: transient error, retrying",
            extra={
                "database": self.database_name,
                "tries": details.get("tries"),
                "wait_s": round(float(details.get("wait", 0.0)), 3),
                "error": repr(details.get("exception")),
            },
        )

    # -- storage (GroupCommitStore) ------------------------------------------------------

    def _load_last_seq(self, stream: str) -> int:
        return self._head(stream)

    def _write_batch(self, records: Sequence[JournalRecord], snapshots: Sequence[Snapshot]) -> None:
        state = {"retry": False}

        def attempt() -> None:
            try:
                if records:
                    self._insert_records(records, check_stored=state["retry"])
                if snapshots:
                    self._write_snapshots(snapshots)
            except (*_TRANSIENT, _RetryableWrite):
                state["retry"] = True  # part of the batch may be stored: look first next time
                raise

        try:
            self._retrying(attempt)()
        except (*_TRANSIENT, _RetryableWrite) as exc:
            raise JournalUnavailable(
                f"mongodb {self.database_name}: write not acknowledged after "
                f"{self.retry_max_time_s} s of retries: {exc}"
            ) from exc
        except BulkWriteError as exc:
            raise JournalUnavailable(
                f"mongodb {self.database_name}: write refused: {exc.details}"
            ) from exc

    def _insert_records(self, records: Sequence[JournalRecord], *, check_stored: bool) -> None:
        remaining = list(records)
        if check_stored:
            remaining = self._not_yet_stored(remaining)
        while remaining:
            try:
                self._records.insert_many([_record_doc(r) for r in remaining], ordered=True)
                return
            except BulkWriteError as exc:
                details = exc.details
                errors = details.get("writeErrors", [])
                if not errors:
                    raise _RetryableWrite(str(details.get("writeConcernErrors"))) from exc
                error = errors[0]
                if error.get("code") != _DUPLICATE_KEY:
                    raise
                index = int(error["index"])
                self._same_as_stored(remaining[index])
                remaining = remaining[index + 1 :]

    def _not_yet_stored(self, records: list[JournalRecord]) -> list[JournalRecord]:
        """Drop the records a failed attempt did store (after checking they are the same)."""
        by_stream: dict[str, list[JournalRecord]] = {}
        for record in records:
            by_stream.setdefault(record.stream, []).append(record)
        stored: set[tuple[str, int]] = set()
        for stream, mine in by_stream.items():
            wanted = {r.seq: r for r in mine}
            cursor = self._records.find(
                {"stream": stream, "seq": {"$gte": min(wanted), "$lte": max(wanted)}},
                projection={"_id": False, "seq": True, "payload": True, "checksum": True},
            )
            for doc in cursor:
                record = wanted.get(int(doc["seq"]))
                if record is None:
                    continue
                _check_same(record, doc)
                stored.add((stream, record.seq))
        return [r for r in records if (r.stream, r.seq) not in stored]

    def _same_as_stored(self, record: JournalRecord) -> None:
        doc = self._records.find_one(
            {"stream": record.stream, "seq": record.seq},
            projection={"_id": False, "payload": True, "checksum": True},
        )
        if doc is None:  # pragma: no cover - the duplicate key says it is there
            raise JournalUnavailable(f"mongodb: duplicate key but no record {record.seq}")
        _check_same(record, doc)

    def _write_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        ops = [
            ReplaceOne({"stream": s.stream, "seq": s.seq}, _snapshot_doc(s), upsert=True)
            for s in snapshots
        ]
        result = self._snapshots.bulk_write(ops, ordered=True)
        if not result.acknowledged:  # pragma: no cover - w=0 is refused by the config
            raise _RetryableWrite("snapshot write not acknowledged")
        for stream in {s.stream for s in snapshots}:
            newest = list(
                self._snapshots.find({"stream": stream}, projection={"seq": True})
                .sort("seq", DESCENDING)
                .skip(self.keep_snapshots - 1)
                .limit(1)
            )
            if newest:
                self._snapshots.delete_many({"stream": stream, "seq": {"$lt": newest[0]["seq"]}})

    def _close_storage(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- reads (any thread) ---------------------------------------------------------------

    def read(self, stream: str, after_seq: int = 0) -> Iterator[JournalRecord]:
        """Yield the records of `stream` with seq > `after_seq`, in order, as stored."""
        after = after_seq
        while True:
            docs = self._read_call(
                lambda after=after: list(
                    self._records.find({"stream": stream, "seq": {"$gt": after}})
                    .sort("seq", ASCENDING)
                    .limit(_READ_CHUNK)
                )
            )
            for doc in docs:
                yield _record_of(stream, doc)
            if len(docs) < _READ_CHUNK:
                return
            after = int(docs[-1]["seq"])

    def last_seq(self, stream: str) -> int:
        return self._head(stream)

    def streams(self) -> list[str]:
        names: list[str] = self._read_call(lambda: self._records.distinct("stream"))
        return sorted(names)

    def snapshots(self, stream: str) -> list[Snapshot]:
        docs = self._read_call(
            lambda: list(self._snapshots.find({"stream": stream}).sort("seq", DESCENDING))
        )
        return [
            Snapshot(stream, int(d["seq"]), bytes(d["payload"]), int(d["checksum"])) for d in docs
        ]

    def snapshot_streams(self) -> list[str]:
        names: list[str] = self._read_call(lambda: self._snapshots.distinct("stream"))
        return sorted(names)

    def integrity_problems(self) -> list[str]:
        """Storage-level problems: the unique (stream, seq) index must exist on both collections."""
        problems = []
        for collection in (self._records, self._snapshots):
            info = self._read_call(collection.index_information)
            index = info.get("stream_seq")
            if index is None or not index.get("unique"):
                problems.append(f"{collection.name}: unique index on (stream, seq) is missing")
        return problems

    def _head(self, stream: str) -> int:
        doc = self._read_call(
            lambda: self._records.find_one(
                {"stream": stream}, projection={"seq": True}, sort=[("seq", DESCENDING)]
            )
        )
        return 0 if doc is None else int(doc["seq"])

    def _read_call(self, func: Any) -> Any:
        try:
            return self._retrying(func)()
        except PyMongoError as exc:
            raise JournalUnavailable(f"mongodb {self.database_name}: read failed: {exc}") from exc


def _record_doc(record: JournalRecord) -> dict[str, Any]:
    return {
        "stream": record.stream,
        "seq": record.seq,
        "payload": Binary(record.payload),
        "checksum": record.checksum,
    }


def _snapshot_doc(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "stream": snapshot.stream,
        "seq": snapshot.seq,
        "payload": Binary(snapshot.payload),
        "checksum": snapshot.checksum,
    }


def _record_of(stream: str, doc: dict[str, Any]) -> JournalRecord:
    return JournalRecord(stream, int(doc["seq"]), bytes(doc["payload"]), int(doc["checksum"]))


def _check_same(record: JournalRecord, doc: dict[str, Any]) -> None:
    if (bytes(doc["payload"]), int(doc["checksum"])) != (record.payload, record.checksum):
        raise JournalCorrupt(
            record.stream,
            record.seq,
            "the sequence number already holds a different record "
            "(a second writer on this stream?)",
        )
