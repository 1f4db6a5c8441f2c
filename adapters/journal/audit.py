"""Journal audits: verify every record and snapshot, count what is stored, export it all.

The engine behind `posbus journal verify | stats | export`. Works on any
JournalStore, reads only, and reports problems instead of stopping at the
first: a checksum that does not match, a sequence number missing or out of
order, a payload that does not decode, a stream whose recorded last seq is
beyond its last record, a snapshot that fails its checksum, does not decode or
covers records the journal does not have, and whatever the storage itself
reports (SQLite's integrity check, MongoDB's unique index).

Every value is JSON-ready; decimals are exact text (the CLI's rule: no
exponent). This module must never write to the journal.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from posbus.actors.journal import JournalCorrupt, JournalRecord, JournalStore, Snapshot
from posbus.actors.recovery import SNAPSHOT_SCHEMA
from posbus.adapters.cli.decimal_text import format_decimal
from posbus.bus.codec import decode
from posbus.bus.wire_error import WireError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: where (stream, seq; "" and 0 for the storage itself) and what."""

    stream: str
    seq: int
    problem: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"stream": self.stream, "seq": self.seq, "problem": self.problem}

    def __str__(self) -> str:
        return str(JournalCorrupt(self.stream, self.seq, self.problem))


@dataclass(slots=True)
class StreamReport:
    """What verify found in one stream."""

    stream: str
    records: int = 0
    last_seq: int = 0
    payload_bytes: int = 0
    snapshots: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "records": self.records,
            "last_seq": self.last_seq,
            "payload_bytes": self.payload_bytes,
            "snapshots": self.snapshots,
            "problems": [p.to_dict() for p in self.problems],
        }


def streams_of(journal: JournalStore, only: str | None = None) -> list[str]:
    """Every stream with records or snapshots (or just `only`), sorted."""
    names = set(journal.streams()) | set(journal.snapshot_streams())
    if only is not None:
        return [only] if only in names else []
    return sorted(names)


def verify_stream(journal: JournalStore, stream: str) -> StreamReport:
    """Check every record and snapshot of `stream`; never raises for what it finds."""
    report = StreamReport(stream, last_seq=journal.last_seq(stream))
    expected = 1
    try:
        for record in journal.read(stream):
            report.records += 1
            report.payload_bytes += len(record.payload)
            _check_record(record, expected, report.problems)
            expected = max(expected, record.seq + 1)
    except JournalCorrupt as exc:
        # The storage itself could not return the rest of the stream.
        report.problems.append(Problem(stream, exc.seq, exc.problem))
    if expected - 1 < report.last_seq:
        report.problems.append(
            Problem(
                stream, expected, f"record missing: the journal's last seq is {report.last_seq}"
            )
        )
    for snapshot in journal.snapshots(stream):
        report.snapshots.append(snapshot.seq)
        report.problems += _snapshot_problems(snapshot, expected - 1)
    return report


def storage_problems(journal: JournalStore) -> list[Problem]:
    """What the backend's own check reports (SQLite integrity check, MongoDB indexes)."""
    check = getattr(journal, "integrity_problems", None)
    if check is None:
        return []
    return [Problem("", 0, f"storage: {text}") for text in check()]


def _check_record(record: JournalRecord, expected: int, problems: list[Problem]) -> None:
    if record.seq < expected:
        problems.append(Problem(record.stream, record.seq, "duplicate or out-of-order record"))
    elif record.seq > expected:
        missing = f"{expected}" if record.seq == expected + 1 else f"{expected}..{record.seq - 1}"
        problems.append(Problem(record.stream, expected, f"sequence gap: seq {missing} missing"))
    if not record.verify():
        problems.append(Problem(record.stream, record.seq, "checksum mismatch"))
        return
    try:
        decode(record.payload)
    except WireError as exc:
        problems.append(Problem(record.stream, record.seq, f"payload does not decode: {exc}"))


def _snapshot_problems(snapshot: Snapshot, last_record: int) -> list[Problem]:
    where = f"snapshot at seq {snapshot.seq}"
    if not snapshot.verify():
        return [Problem(snapshot.stream, snapshot.seq, f"{where}: checksum mismatch")]
    problems = []
    if snapshot.seq > last_record:
        problems.append(
            Problem(
                snapshot.stream,
                snapshot.seq,
                f"{where} covers records up to seq {snapshot.seq}, the journal ends at "
                f"{last_record}",
            )
        )
    document = _snapshot_document(snapshot)
    if isinstance(document, str):
        problems.append(Problem(snapshot.stream, snapshot.seq, f"{where}: {document}"))
    return problems


def _snapshot_document(snapshot: Snapshot) -> dict[str, Any] | str:
    """The decoded snapshot document, or what is wrong with it."""
    try:
        document = json.loads(snapshot.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"not JSON: {exc}"
    if not isinstance(document, dict) or document.get("schema") != SNAPSHOT_SCHEMA:
        return "not a posbus snapshot of a known schema"
    return document


# -- stats and export ------------------------------------------------------------------


def stream_stats(journal: JournalStore, stream: str) -> dict[str, Any]:
    """Records, last seq, payload bytes and snapshot seqs of `stream` (reads every record)."""
    count = size = 0
    for record in journal.read(stream):
        count += 1
        size += len(record.payload)
    return {
        "records": count,
        "last_seq": journal.last_seq(stream),
        "payload_bytes": size,
        "snapshots": [s.seq for s in journal.snapshots(stream)],
    }


def export_stream(journal: JournalStore, stream: str) -> dict[str, Any]:
    """Every record of `stream` decoded, and its snapshots, JSON-ready, for audits.

    A record that fails its checksum or does not decode is exported with
    `checksum_ok` false (or `error`) and no message: nothing is hidden.
    """
    records = [_export_record(record) for record in journal.read(stream)]
    snapshots = []
    for snapshot in journal.snapshots(stream):
        document = _snapshot_document(snapshot) if snapshot.verify() else "checksum mismatch"
        snapshots.append(
            {
                "seq": snapshot.seq,
                "checksum": snapshot.checksum,
                "checksum_ok": snapshot.verify(),
                "snapshot": document if isinstance(document, dict) else None,
                "error": document if isinstance(document, str) else None,
            }
        )
    return {"last_seq": journal.last_seq(stream), "records": records, "snapshots": snapshots}


def _export_record(record: JournalRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seq": record.seq,
        "checksum": record.checksum,
        "checksum_ok": record.verify(),
    }
    if not out["checksum_ok"]:
        return {**out, "error": "checksum mismatch", "payload_hex": record.payload.hex()}
    try:
        envelope = decode(record.payload)
    except WireError as exc:
        return {**out, "error": f"payload does not decode: {exc}"}
    message = envelope.message
    return {
        **out,
        "kind": envelope.kind,
        "type": type(message).__name__,
        "sender": envelope.sender,
        "journaled_ts_ns": envelope.ts_ns,
        "message": jsonable(message),
    }


def jsonable(value: Any) -> Any:
    """A message (msgspec Struct) as plain JSON values: decimals as exact text, enums as values."""
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, msgspec.Struct):
        return {name: jsonable(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value
