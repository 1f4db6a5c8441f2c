"""Envelope: one decoded frame, the message with who sent it, when, and its sequence number.

Pure value; the codec builds it when it decodes (bus/codec.py).
"""

from __future__ import annotations

import msgspec
from msgspec import Struct, ValidationError

from posbus.bus.constraints import Id, Uint63, show
from posbus.bus.messages import MESSAGE_TYPES, Message
from posbus.bus.schema import ErrorPath, wire_version
from posbus.bus.wire_error import WireError

_MESSAGE_TYPES = frozenset(MESSAGE_TYPES)

# The envelope fields the constructor checks against their declared types.
_HEADER_FIELDS = ("seq", "ts_ns", "sender")


class _Header(Struct, array_like=True, frozen=True, gc=False):
    # A Struct, not a tuple type: msgspec caches a Struct's type info, while
    # convert() to a tuple type re-reads it on every call (about 5 us).
    seq: Uint63
    ts_ns: Uint63
    sender: Id


class Envelope(Struct, frozen=True, gc=False):
    """A message as it travelled: kind and schema version, the sender's sequence number and clock.

    `seq` counts per sender (a gap means lost frames, repaired from the
    journal); `ts_ns` is when the sender put the frame on the wire, which
    may differ from the message's own event time; `sender` names the
    publishing process or actor. `kind` always equals `message.KIND` and
    `version` the version the message is written as (`message.VERSION`
    unless it carries a field added later: bus/schema.py `wire_version`).
    """

    kind: str
    version: int
    seq: Uint63
    ts_ns: Uint63
    sender: Id
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
        if type(self.version) is not int or self.version != wire_version(self.message):
            raise WireError(
                f"envelope.version: {self.version!r} does not match the message's "
                f"{wire_version(self.message)}",
                field="envelope.version",
            )
        check_header(self.seq, self.ts_ns, self.sender)


def check_header(seq: object, ts_ns: object, sender: object) -> None:
    """Raise WireError naming the first of seq, ts_ns and sender their declared types refuse."""
    try:
        msgspec.convert((seq, ts_ns, sender), _Header)
    except ValidationError as exc:
        path = ErrorPath.parse(exc)
        index = path.steps[0] if path.steps and type(path.steps[0]) is int else 0
        where = f"envelope.{_HEADER_FIELDS[index]}"
        value = (seq, ts_ns, sender)[index]
        raise WireError(f"{where}: {path.text}, got {show(value)}", field=where) from None
