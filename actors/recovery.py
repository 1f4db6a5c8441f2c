"""Recovery: the latest valid snapshot of an actor, then a replay of its stream after it.

One procedure, `recover`, used by every actor at start-up, after a restart and
after a process crash (they are the same thing: an actor never trusts memory
it did not rebuild from storage), and by offline tools. It:

1. takes the newest snapshot of the stream whose checksum verifies, whose
   payload decodes and whose state the actor accepts; a newer snapshot that
   fails any of these is reported (ERROR log, `RecoveryReport.rejected`) and
   passed over for the next older one, down to an empty start: the journal
   holds every record, so a bad snapshot costs replay time, never state;
2. refuses a snapshot that covers records the journal does not have (the
   journal lost its tail): JournalCorrupt;
3. replays every record after the snapshot through the actor's StreamCursor,
   which verifies each checksum and refuses a gap (JournalCorrupt naming the
   stream, the sequence number and the problem);
4. checks that the replay reached the journal's last sequence number (a
   record missing at the tail is a gap too).

A JournalCorrupt stops the recovery of that stream: the caller must not come
up with a partial state. Snapshots are canonical JSON (sorted keys, no
whitespace), so equal states have equal bytes and checksums.

This module must never skip a corrupt record, and never return a state that
is not the one the journal implies.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import InvalidOperation
from typing import Any

from posbus.actors.delivery import StreamCursor
from posbus.actors.journal import Journal, JournalCorrupt, Snapshot, SnapshotStore
from posbus.actors.model.errors import PosbusError

logger = logging.getLogger(__name__)

SNAPSHOT_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Ask (or tell) an actor to save a snapshot of its state now; it answers the seq or None."""


def encode_snapshot(kind: str, state: Mapping[str, Any]) -> bytes:
    """The canonical bytes of an actor's state: `{"kind", "schema", "state"}` as sorted JSON."""
    document = {"kind": kind, "schema": SNAPSHOT_SCHEMA, "state": state}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def decode_snapshot(snapshot: Snapshot, kind: str) -> dict[str, Any]:
    """The state inside `snapshot`; JournalCorrupt when it is not a `kind` snapshot we can read."""
    try:
        document = json.loads(snapshot.payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JournalCorrupt(snapshot.stream, snapshot.seq, f"snapshot is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise JournalCorrupt(snapshot.stream, snapshot.seq, "snapshot is not a JSON object")
    if document.get("schema") != SNAPSHOT_SCHEMA or document.get("kind") != kind:
        found = (document.get("kind"), document.get("schema"))
        problem = f"snapshot is {found}, expected ({kind!r}, {SNAPSHOT_SCHEMA})"
        raise JournalCorrupt(snapshot.stream, snapshot.seq, problem)
    state = document.get("state")
    if not isinstance(state, dict):
        raise JournalCorrupt(snapshot.stream, snapshot.seq, "snapshot has no state object")
    return state


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What one recovery did: snapshot used (0: none), records replayed, problems passed over."""

    stream: str
    snapshot_seq: int
    replayed: int
    position: int
    rejected: tuple[str, ...]
    duration_ms: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (for inspection and logs)."""
        return {
            "stream": self.stream,
            "snapshot_seq": self.snapshot_seq,
            "replayed": self.replayed,
            "position": self.position,
            "rejected_snapshots": list(self.rejected),
            "duration_ms": round(self.duration_ms, 3),
        }


def recover(
    journal: Journal,
    snapshots: SnapshotStore | None,
    cursor: StreamCursor,
    *,
    kind: str,
    restore: Callable[[Mapping[str, Any]], None],
) -> RecoveryReport:
    """Bring an actor's state to the end of its stream (caller's thread: the actor's own).

    `restore` loads a decoded snapshot state into the actor and must be
    atomic: it raises (PosbusError, ValueError, KeyError, TypeError) before
    changing anything when it cannot use the state. `cursor` must be at
    position 0 on a fresh state; it ends at the last record. Raises
    JournalCorrupt as described in the module docstring.
    """
    started = time.perf_counter()
    stream = cursor.stream
    last = journal.last_seq(stream)
    rejected: list[str] = []
    snapshot_seq = 0
    for snapshot in snapshots.snapshots(stream) if snapshots is not None else []:
        problem = _use_snapshot(snapshot, last, kind, restore)
        if problem is None:
            snapshot_seq = snapshot.seq
            cursor.position = snapshot.seq
            break
        rejected.append(problem)
        logger.error(
            "snapshot rejected; recovering from an older one or the journal",
            extra={"stream": stream, "seq": snapshot.seq, "problem": problem},
        )
    replayed = cursor.replay()
    if cursor.position < last:
        raise JournalCorrupt(
            stream, cursor.position + 1, f"record missing: the journal's last seq is {last}"
        )
    report = RecoveryReport(
        stream=stream,
        snapshot_seq=snapshot_seq,
        replayed=replayed,
        position=cursor.position,
        rejected=tuple(rejected),
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    logger.info("stream recovered", extra=report.to_dict())
    return report


def _use_snapshot(
    snapshot: Snapshot, last: int, kind: str, restore: Callable[[Mapping[str, Any]], None]
) -> str | None:
    """Restore `snapshot`; None on success, else what is wrong with it."""
    if not snapshot.verify():
        return f"snapshot at seq {snapshot.seq}: checksum mismatch"
    if snapshot.seq > last:
        raise JournalCorrupt(
            snapshot.stream,
            last + 1,
            f"records missing: the journal ends at seq {last} but a snapshot covers "
            f"records up to seq {snapshot.seq}",
        )
    try:
        restore(decode_snapshot(snapshot, kind))
    except JournalCorrupt as exc:
        return f"snapshot at seq {snapshot.seq}: {exc.problem}"
    except (PosbusError, ValueError, KeyError, TypeError, InvalidOperation) as exc:
        return f"snapshot at seq {snapshot.seq}: state not usable: {exc!r}"
    return None
