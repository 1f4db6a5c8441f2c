"""Write-ahead delivery: journal a message on its stream, then ring the actor's doorbell.

Every message that changes an actor's state (intents, acks, fills, cancels,
rejects, halts) goes through `Outbox.deliver`: it is appended to the
recipient's journal stream first and told to the actor second. The journal is
the mailbox of record; the `tell` is only a doorbell. An actor applies the
records of its stream strictly in sequence order, exactly once, and fills any
gap from the journal (see `StreamCursor`). So a message queued in an actor that
crashes is not lost (pykka drops its inbox): the restarted actor replays it
from the journal, and the copy still buffered in its handle is skipped by its
sequence number.

This module must never apply a message that was not journaled first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from pykka import ActorDeadError

from posbus.actors.journal import Journal, JournalCorrupt, JournalRecord
from posbus.actors.model.clock import Clock
from posbus.actors.model.errors import PosbusError
from posbus.bus.codec import decode, encode
from posbus.bus.messages import Message

logger = logging.getLogger(__name__)


class Doorbell(Protocol):
    """Anything that can be told a message: a pykka ActorRef or a ChildHandle."""

    def tell(self, message: object) -> None: ...


@dataclass(frozen=True, slots=True)
class Delivered:
    """A journaled message handed to an actor: its stream, sequence number and value."""

    stream: str
    seq: int
    message: Message


class Outbox:
    """Appends to a journal and tells the recipient. Thread-safe (the journal is).

    `sender` names this process in the envelope of every journaled record; the
    envelope's timestamp is the clock's time of journaling.
    """

    def __init__(self, journal: Journal, sender: str, clock: Clock) -> None:
        self.journal = journal
        self.sender = sender
        self.clock = clock

    def append(self, stream: str, message: Message) -> Delivered:
        """Journal `message` on `stream` and return it as a Delivered record (no tell)."""
        payload = encode(message, seq=0, sender=self.sender, ts_ns=self.clock.now_ns())
        record = self.journal.append(stream, payload)
        return Delivered(stream, record.seq, message)

    def deliver(self, stream: str, message: Message, to: Doorbell | None) -> Delivered:
        """Journal `message` on `stream`, then tell it to `to` (when given).

        A recipient that is down is not an error: the record is in the journal
        and the recipient replays it when it starts again.
        """
        delivered = self.append(stream, message)
        if to is not None:
            try:
                to.tell(delivered)
            except (PosbusError, ActorDeadError) as exc:  # the journal holds it; report, go on
                logger.warning(
                    "doorbell failed; record stays journaled",
                    extra={"stream": stream, "seq": delivered.seq, "error": repr(exc)},
                )
        return delivered


def decode_record(record: JournalRecord) -> Delivered:
    """Turn a journal record back into the Delivered it was, verifying its checksum."""
    if not record.verify():
        raise JournalCorrupt(record.stream, record.seq, "checksum mismatch")
    return Delivered(record.stream, record.seq, decode(record.payload).message)


class StreamCursor:
    """Applies one stream's records in order, each exactly once.

    `apply` is called with every record after `position`, in sequence order.
    A record that arrives ahead of its turn makes the cursor read the missing
    ones from the journal first; a record at or below the position (a copy
    already replayed) is skipped. Owned by one actor: not thread-safe.
    """

    def __init__(
        self, journal: Journal, stream: str, apply: Callable[[Delivered], None], position: int = 0
    ) -> None:
        self.journal = journal
        self.stream = stream
        self.position = position
        self._apply = apply

    def replay(self) -> int:
        """Apply every journaled record after the position; return how many."""
        count = 0
        for delivered in self._read(self.position):
            self._step(delivered)
            count += 1
        return count

    def offer(self, delivered: Delivered) -> bool:
        """Apply `delivered` (and any records before it not yet applied).

        Returns False when it was already applied.
        """
        if delivered.seq <= self.position:
            return False
        if delivered.seq > self.position + 1:
            for missing in self._read(self.position, upto=delivered.seq - 1):
                self._step(missing)
        self._step(delivered)
        return True

    def _step(self, delivered: Delivered) -> None:
        if delivered.seq != self.position + 1:
            raise JournalCorrupt(
                self.stream, self.position + 1, f"sequence gap: next record is {delivered.seq}"
            )
        self._apply(delivered)
        self.position = delivered.seq

    def _read(self, after: int, upto: int | None = None) -> Iterator[Delivered]:
        for record in self.journal.read(self.stream, after):
            if upto is not None and record.seq > upto:
                return
            yield decode_record(record)
