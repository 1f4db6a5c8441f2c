"""The MongoDB journal (through pymongo): the production backend.

Collections (in `database`): `journal_records` (unique on stream + seq, so a
replayed write is detected, never stored twice), `journal_streams` (each
stream's highest acknowledged seq, so a record lost at the tail is detected),
`journal_snapshots` (the newest `keep_snapshots` per stream) and
`journal_leases` (the writer lease). One writer per database: a writer holds
a fenced lease from open to close; opening while another owner's lease is
unexpired raises JournalLocked, and a writer that lost its lease fails with
JournalFenced. Writes are group-committed (posbus.adapters.journal.group_commit),
one batch per transaction with a journaled write concern (`j: true`); on a
server without transactions the fence is checked and renewed just before
each batch instead.

Threads: callers append, the writer thread writes batches, the heartbeat
thread renews the lease; a read-only store (`writer=False`) has neither and
writes nothing (no lease, no index). The lease, fencing and failures:
docs/architecture.md, "MongoDB journal".

Checksums are stored as written and verified by the readers, never recomputed
here. This module must never acknowledge an append before MongoDB has
acknowledged it with the configured write concern.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import backoff
from bson.binary import Binary
from pymongo import ASCENDING, DESCENDING, MongoClient, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    PyMongoError,
    WriteConcernError,
)
from pymongo.write_concern import WriteConcern

from posbus.actors.journal import (
    JournalCorrupt,
    JournalFenced,
    JournalLocked,
    JournalRecord,
    JournalUnavailable,
    Snapshot,
)
from posbus.actors.model.errors import PosbusError
from posbus.adapters.journal.group_commit import GroupCommitConfig, GroupCommitStore

logger = logging.getLogger(__name__)

RECORDS = "journal_records"
SNAPSHOTS = "journal_snapshots"
STREAMS = "journal_streams"
LEASES = "journal_leases"
#: The writer lease's defaults: valid this long after each renewal, renewed this often.
LEASE_TTL_S = 10.0
LEASE_RENEW_S = 2.0
LEASE_ID = "writer"
_DUPLICATE_KEY = 11000
_READ_CHUNK = 10_000
# Errors after which the same write may succeed: the network, the primary, the write concern.
_TRANSIENT = (ConnectionFailure, WriteConcernError)


class _RetryableWrite(Exception):
    """A write that reported a write-concern error or a transient transaction error: retry."""


class _SeqTaken(Exception):
    """A record's (stream, seq) is already stored: redo the batch, comparing what is stored."""


class MongoJournal(GroupCommitStore):
    """A journal and snapshot store in MongoDB, with one writer per database; thread-safe.

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
        writer: False opens read-only: no lease, nothing written, appends and
            snapshot saves raise JournalReadOnly.
        lease_ttl_s: how long the writer lease stays valid after a renewal.
        lease_renew_s: how often the heartbeat renews it (at most half the TTL).
        lease_wait_s: how long opening waits for another owner's lease to
            expire before JournalLocked (0: refuse at once). A worker waits
            out a crashed predecessor's lease (`open_backend(wait_for_lease=True)`).
        clock: the lease's time source (naive UTC or aware datetimes); None
            reads the server's clock (`hello`'s localTime). Tests inject one.

    Raises JournalLocked when another owner's lease is unexpired,
    JournalUnavailable when the server cannot be reached.
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
        writer: bool = True,
        lease_ttl_s: float = LEASE_TTL_S,
        lease_renew_s: float = LEASE_RENEW_S,
        lease_wait_s: float = 0.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if keep_snapshots < 1:
            raise ValueError("keep_snapshots must be >= 1")
        if not 0 < lease_renew_s <= lease_ttl_s / 2:
            raise ValueError("lease_renew_s must be > 0 and at most half of lease_ttl_s")
        super().__init__(commit or GroupCommitConfig(), f"mongodb-{database}", writer=writer)
        self.database_name = database
        self.keep_snapshots = keep_snapshots
        self.retry_max_time_s = retry_max_time_s
        self.lease_ttl = timedelta(seconds=lease_ttl_s)
        self.lease_renew_s = lease_renew_s
        self.lease_wait_s = lease_wait_s
        self.owner = f"{uuid.uuid4().hex}/{os.getpid()}@{socket.gethostname()}"
        self.token = 0  # the fencing token of our lease, once acquired
        self._clock = clock
        self._owns_client = client is None
        self._client: MongoClient[dict[str, Any]] = client or MongoClient(
            uri,
            serverSelectionTimeoutMS=server_selection_timeout_ms,
            connectTimeoutMS=server_selection_timeout_ms,
            socketTimeoutMS=max(30_000, server_selection_timeout_ms),
        )
        self._write_concern = WriteConcern(w=w, j=True)
        db = self._client.get_database(database, write_concern=self._write_concern)
        self._records: Collection[dict[str, Any]] = db[RECORDS]
        self._snapshots: Collection[dict[str, Any]] = db[SNAPSHOTS]
        self._streams: Collection[dict[str, Any]] = db[STREAMS]
        self._leases: Collection[dict[str, Any]] = db[LEASES]
        self._transactions = False
        self._heartbeat_stop = threading.Event()
        self._heartbeat = threading.Thread(
            target=self._renew_loop, name=f"journal-lease-{database}", daemon=True
        )
        if writer:
            self._open_writer()

    def _open_writer(self) -> None:
        """Take the lease, prepare the indexes, start the heartbeat and the writer thread."""
        try:
            self._transactions = self._retrying(self._supports_transactions)()
            self._acquire_waiting()
            self._retrying(self._create_indexes)()
        except JournalLocked:
            self._close_client()
            raise
        except PyMongoError as exc:
            if self.token:
                self._release()
            self._close_client()
            raise JournalUnavailable(
                f"mongodb {self.database_name}: cannot prepare the journal: {exc}"
            ) from exc
        if not self._transactions:
            logger.warning(
                "mongodb journal: the server has no transactions (not a replica set); "
                "the writer fence is checked before each batch, not with it",
                extra={"database": self.database_name},
            )
        self._heartbeat.start()
        self._start_writer()

    def _acquire_waiting(self) -> None:
        """Take the lease, waiting up to `lease_wait_s` for another owner's to expire.

        A worker restarted after a crash finds its predecessor's lease still
        valid for up to the TTL: it waits that out, while a live owner, who
        keeps renewing, is still refused once the wait is over.
        """
        deadline = time.monotonic() + self.lease_wait_s
        while True:
            try:
                self._retrying(self._acquire)()
                return
            except JournalLocked as exc:
                if time.monotonic() >= deadline:
                    raise
                logger.warning(
                    "mongodb journal: another owner holds the writer lease; waiting for it",
                    extra={"database": self.database_name, "holder": str(exc)},
                )
                time.sleep(min(self.lease_renew_s, max(0.0, deadline - time.monotonic())))

    def _supports_transactions(self) -> bool:
        hello = self._client.admin.command("hello")
        return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"

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

    # -- the writer lease -----------------------------------------------------------------

    def _now(self) -> datetime:
        """The lease clock: the injected one, else the server's (so hosts' clocks never matter)."""
        if self._clock is not None:
            now = self._clock()
        else:
            now = self._client.admin.command("hello")["localTime"]
        if now.tzinfo is not None:
            now = now.astimezone(UTC).replace(tzinfo=None)
        # BSON dates hold milliseconds: round the same way so comparisons agree.
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def _acquire(self) -> None:
        """Take the lease if it is free or expired (a takeover: token + 1), else JournalLocked."""
        now = self._now()
        fields = {
            "owner": self.owner,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "acquired_at": now,
            "renewed_at": now,
            "expires_at": now + self.lease_ttl,
        }
        try:
            # Matches only an expired lease; when none matches the upsert inserts
            # one, which fails with a duplicate _id while an unexpired lease exists.
            doc = self._leases.find_one_and_update(
                {"_id": LEASE_ID, "expires_at": {"$lte": now}},
                {"$set": fields, "$inc": {"token": 1}, "$unset": {"released_at": ""}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            doc = self._leases.find_one({"_id": LEASE_ID})
            if doc is None or doc.get("owner") != self.owner:  # ours: a retried acquire
                raise JournalLocked(
                    f"mongodb database {self.database_name!r}", _holder(doc)
                ) from None
        self.token = int(doc["token"])
        logger.info(
            "mongodb journal: writer lease acquired",
            extra={"database": self.database_name, "owner": self.owner, "token": self.token},
        )

    def _renew(self) -> None:
        """Extend our lease from now (expired or not: nobody took it while it matches)."""
        now = self._now()
        result = self._leases.update_one(
            {"_id": LEASE_ID, "owner": self.owner, "token": self.token},
            {"$set": {"renewed_at": now, "expires_at": now + self.lease_ttl}},
        )
        if result.matched_count == 0:
            self._fence()

    def _fence(self) -> PosbusError:
        """Record that another owner took the lease: every later write is refused."""
        try:
            holder = _holder(self._leases.find_one({"_id": LEASE_ID}))
        except PyMongoError:
            holder = ""
        fenced = JournalFenced(
            f"mongodb database {self.database_name!r}",
            holder,
            f"this writer (owner {self.owner}, token {self.token}) lost its lease; writes refused",
        )
        with self._lock:
            if self._refusal is None:
                self._refusal = fenced
                logger.error(
                    "mongodb journal: writer lease lost; writes refused",
                    extra={"database": self.database_name, "owner": self.owner},
                )
            return self._refusal or fenced

    def _renew_loop(self) -> None:
        """The heartbeat thread: renew every `lease_renew_s` until closed or fenced."""
        while not self._heartbeat_stop.wait(self.lease_renew_s):
            if self._refusal is not None:
                return
            try:
                self._renew()
            except PyMongoError as exc:
                # The next beat tries again; the writes are fenced either way.
                logger.warning(
                    "mongodb journal: lease renewal failed",
                    extra={"database": self.database_name, "error": repr(exc)},
                )

    def _release(self) -> None:
        """Expire our lease now so the next writer need not wait for the TTL (best effort)."""
        try:
            now = self._now()
            self._leases.update_one(
                {"_id": LEASE_ID, "owner": self.owner, "token": self.token},
                {"$set": {"expires_at": now, "released_at": now}},
            )
        except PyMongoError as exc:
            logger.warning(
                "mongodb journal: lease not released; it expires by itself",
                extra={"database": self.database_name, "error": repr(exc)},
            )

    # -- storage (GroupCommitStore) ------------------------------------------------------

    def _load_last_seq(self, stream: str) -> int:
        return self.last_seq(stream)

    def _write_batch(self, records: Sequence[JournalRecord], snapshots: Sequence[Snapshot]) -> None:
        if self._refusal is not None:
            raise self._refusal
        state = {"retry": False}

        def attempt() -> None:
            try:
                try:
                    self._write_once(records, snapshots, check_stored=state["retry"])
                except _SeqTaken:
                    # Compare what is stored: the same bytes are a retried write.
                    state["retry"] = True
                    self._write_once(records, snapshots, check_stored=True)
            except (*_TRANSIENT, _RetryableWrite):
                state["retry"] = True  # part of the batch may be stored: look first next time
                raise
            except PyMongoError as exc:
                if exc.has_error_label("TransientTransactionError") or exc.has_error_label(
                    "UnknownTransactionCommitResult"
                ):
                    state["retry"] = True
                    raise _RetryableWrite(str(exc)) from exc
                raise

        try:
            self._retrying(attempt)()
        except (*_TRANSIENT, _RetryableWrite) as exc:
            raise JournalUnavailable(
                f"mongodb {self.database_name}: write not acknowledged after "
                f"{self.retry_max_time_s} s of retries: {exc}"
            ) from exc
        except _SeqTaken as exc:
            raise JournalUnavailable(f"mongodb {self.database_name}: write refused: {exc}") from exc
        except BulkWriteError as exc:
            raise JournalUnavailable(
                f"mongodb {self.database_name}: write refused: {exc.details}"
            ) from exc

    def _write_once(
        self, records: Sequence[JournalRecord], snapshots: Sequence[Snapshot], *, check_stored: bool
    ) -> None:
        """One attempt at the batch: a fenced transaction, or fence then writes without one."""
        if not self._transactions:
            self._renew()  # the fence, just before the writes (see the module docstring)
            if self._refusal is not None:
                raise self._refusal
            self._write_ops(records, snapshots, check_stored=check_stored, session=None)
            return
        with self._client.start_session() as session:
            session.start_transaction(write_concern=self._write_concern)
            try:
                # First: a takeover committed after this update is a write conflict.
                fenced = self._leases.update_one(
                    {"_id": LEASE_ID, "owner": self.owner, "token": self.token},
                    {"$inc": {"batches": 1}},
                    session=session,
                )
                if fenced.matched_count == 0:
                    raise self._fence()
                self._write_ops(records, snapshots, check_stored=check_stored, session=session)
            except BaseException:
                if session.in_transaction:
                    try:
                        session.abort_transaction()
                    except PyMongoError as exc:  # the server drops it anyway
                        logger.debug("abort failed", extra={"error": repr(exc)})
                raise
            session.commit_transaction()

    def _write_ops(
        self,
        records: Sequence[JournalRecord],
        snapshots: Sequence[Snapshot],
        *,
        check_stored: bool,
        session: ClientSession | None,
    ) -> None:
        if records:
            self._insert_records(records, check_stored=check_stored, session=session)
            heads: dict[str, int] = {}
            for record in records:
                heads[record.stream] = max(heads.get(record.stream, 0), record.seq)
            self._streams.bulk_write(
                [
                    UpdateOne({"_id": stream}, {"$max": {"last_seq": seq}}, upsert=True)
                    for stream, seq in heads.items()
                ],
                ordered=False,
                session=session,
            )
        if snapshots:
            self._write_snapshots(snapshots, session=session)

    def _insert_records(
        self,
        records: Sequence[JournalRecord],
        *,
        check_stored: bool,
        session: ClientSession | None,
    ) -> None:
        remaining = list(records)
        if check_stored:
            remaining = self._not_yet_stored(remaining, session)
        if not remaining:
            return
        try:
            self._records.insert_many(
                [_record_doc(r) for r in remaining], ordered=True, session=session
            )
        except BulkWriteError as exc:
            details = exc.details
            errors = details.get("writeErrors", [])
            if not errors:
                raise _RetryableWrite(str(details.get("writeConcernErrors"))) from exc
            error = errors[0]
            if error.get("code") != _DUPLICATE_KEY:
                raise
            if check_stored:  # stored between our look and our insert: not our lease's doing
                raise _SeqTaken(
                    f"record {remaining[int(error['index'])].seq} stored twice"
                ) from exc
            raise _SeqTaken(str(error.get("errmsg", ""))) from exc

    def _not_yet_stored(
        self, records: list[JournalRecord], session: ClientSession | None
    ) -> list[JournalRecord]:
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
                session=session,
            )
            for doc in cursor:
                record = wanted.get(int(doc["seq"]))
                if record is None:
                    continue
                _check_same(record, doc)
                stored.add((stream, record.seq))
        return [r for r in records if (r.stream, r.seq) not in stored]

    def _write_snapshots(
        self, snapshots: Sequence[Snapshot], *, session: ClientSession | None
    ) -> None:
        ops = [
            ReplaceOne({"stream": s.stream, "seq": s.seq}, _snapshot_doc(s), upsert=True)
            for s in snapshots
        ]
        result = self._snapshots.bulk_write(ops, ordered=True, session=session)
        if not result.acknowledged:  # pragma: no cover - w=0 is refused by the config
            raise _RetryableWrite("snapshot write not acknowledged")
        for stream in {s.stream for s in snapshots}:
            newest = list(
                self._snapshots.find({"stream": stream}, projection={"seq": True}, session=session)
                .sort("seq", DESCENDING)
                .skip(self.keep_snapshots - 1)
                .limit(1)
            )
            if newest:
                self._snapshots.delete_many(
                    {"stream": stream, "seq": {"$lt": newest[0]["seq"]}}, session=session
                )

    def _close_storage(self) -> None:
        # Writer thread, after the last batch: stop renewing, then free the lease.
        self._heartbeat_stop.set()
        if self._heartbeat.is_alive():
            self._heartbeat.join()
        if self.writer and self.token and self._refusal is None:
            self._release()
        self._close_client()

    def _close_client(self) -> None:
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
        """The highest acknowledged seq of `stream`: its head, or its last record if higher.

        The head outlives a record lost at the tail, so recovery sees the loss;
        the records count too for journals written before heads were kept.
        """
        head = self._read_call(lambda: self._streams.find_one({"_id": stream}))
        return max(0 if head is None else int(head["last_seq"]), self._last_record(stream))

    def streams(self) -> list[str]:
        heads: list[str] = self._read_call(lambda: self._streams.distinct("_id"))
        names: list[str] = self._read_call(lambda: self._records.distinct("stream"))
        return sorted({*heads, *names})

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

    def lease(self) -> dict[str, Any] | None:
        """The writer lease document as stored (None when no writer ever held one)."""
        doc: dict[str, Any] | None = self._read_call(
            lambda: self._leases.find_one({"_id": LEASE_ID})
        )
        return doc

    def _last_record(self, stream: str) -> int:
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


def _holder(doc: dict[str, Any] | None) -> str:
    """Who holds the lease, for messages: owner, token and expiry."""
    if doc is None:
        return ""
    return (
        f"owner {doc.get('owner')}, token {doc.get('token')}, expires {doc.get('expires_at')} UTC"
    )


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
