"""Envelope: one decoded frame, the message with who sent it, when, and its sequence number.

Pure value; the codec builds it when it decodes (bus/codec.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from posbus.bus.constraints import check_id, check_non_negative_int64
from posbus.bus.messages import MESSAGE_TYPES, Message
from posbus.bus.wire_error import WireError

_MESSAGE_TYPES = frozenset(MESSAGE_TYPES)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as it travelled: kind and schema version, the sender's sequence number and clock.

    `seq` counts per sender (a gap means lost frames, repaired from the
    journal); `ts_ns` is when the sender put the frame on the wire, which
    may differ from the message's own event time; `sender` names the
    publishing process or actor. `kind` and `version` always equal
    `message.KIND` and `message.VERSION`.
    """

    kind: str
    version: int
    seq: int
    ts_ns: int
    sender: str
    message: Message

    def __post_init__(self) -> None:
        if type(self.message) not in _MESSAGE_TYPES:
            raise WireError(
                f"envelope.message: not a wire message: {type(self.message).__name__}",
                field="envelope.message",
            )
        if self.kind != self.message.KIND:
            raise WireError(
                f"envelope.kind: {self.kind!r} does not match the message's {self.message.KIND!r}",
                field="envelope.kind",
            )
        if type(self.version) is not int or self.version != self.message.VERSION:
            raise WireError(
                f"envelope.version: {self.version!r} does not match the message's "
                f"{self.message.VERSION}",
                field="envelope.version",
            )
        check_non_negative_int64(self.seq, "envelope.seq")
        check_non_negative_int64(self.ts_ns, "envelope.ts_ns")
        check_id(self.sender, "envelope.sender")
