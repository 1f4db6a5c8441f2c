"""The msgpack codec of the bus: messages to frames and back, validating every field.

A frame is one msgpack array, positional for speed and for other languages:

    [kind: str, version: int, seq: int, ts_ns: int, sender: str, body: array]

and the body lists the message's fields in their declared order (for
``execution_signal`` the signal type comes first). Decimals travel as plain
decimal strings. A message is written as the lowest version that carries it
(a field added later is present only when set: bus/schema.py), and a reader
refuses a frame whose version is not the one its message is written as, so
every message has exactly one frame. docs/wire-format.md is the full
specification.

Decoding is one msgspec pass over the frame into Structs derived from the
message declarations (bus/schema.py): the kind and the signal type are the
tags of msgspec tagged unions, every field is type- and range-checked in C.
It takes untrusted bytes: it never executes anything (no pickle; ext types
are refused), never allocates beyond the frame's size (checked before
decoding; msgspec checks every declared length against the bytes left), and
never raises anything but WireError, whatever the bytes.

Thread safety: `decode` and `encode` are stateless and safe from any thread;
a `Codec` only adds a size limit of its own.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

import msgpack
import msgspec
from msgspec import Struct, ValidationError

from posbus.bus.constraints import INT64_MAX, MAX_ID_LEN, Id, Uint63, show
from posbus.bus.envelope import Envelope, check_header
from posbus.bus.messages import MESSAGE_TYPES, MarketUpdate, Message
from posbus.bus.schema import ErrorPath, MessageSchema, schema_of
from posbus.bus.wire_error import FrameTooLarge, WireError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "Codec",
    "WireError",
    "decode",
    "encode",
    "kind_prefix",
    "market_header",
]

#: Largest frame `decode` accepts by default, in bytes (1 MiB).
DEFAULT_MAX_SIZE = 1 << 20

ENVELOPE_FIELDS = 6
_HEADER = ("kind", "version", "seq", "ts_ns", "sender", "body")
_BODY = 5

_BY_CLASS: dict[type[Struct], MessageSchema] = {cls: schema_of(cls) for cls in MESSAGE_TYPES}
_BY_WIRE: dict[type[Struct], MessageSchema] = {s.wire: s for s in _BY_CLASS.values()}
_SIGNALS: dict[str, MessageSchema] = {s.signal: s for s in _BY_CLASS.values() if s.signal}
# Every version of each kind this build reads and writes, oldest first.
_VERSIONS: dict[str, tuple[int, ...]] = {
    kind: tuple(sorted({v for s in _BY_CLASS.values() if s.kind == kind for v in s.versions}))
    for kind in dict.fromkeys(s.kind for s in _BY_CLASS.values())
}
# The one schema of each kind; None for execution_signal, whose body names its signal type.
_BY_KIND: dict[str, MessageSchema | None] = {
    s.kind: (None if s.signal else s) for s in _BY_CLASS.values()
}


@dataclass(frozen=True, slots=True)
class _FrameKind:
    kind: str
    signals: bool


def _frame_types() -> dict[type[Struct], _FrameKind]:
    """One msgspec Struct per kind, tagged by the kind: the envelope as msgspec decodes it."""
    frames: dict[type[Struct], _FrameKind] = {}
    for kind, versions in _VERSIONS.items():
        bodies = tuple(s.wire for s in _BY_CLASS.values() if s.kind == kind)
        body = bodies[0] if len(bodies) == 1 else typing.Union[bodies]  # noqa: UP007
        frame = msgspec.defstruct(
            f"{kind.title().replace('_', '')}Frame",
            [
                ("version", Literal[versions]),
                ("seq", Uint63),
                ("ts_ns", Uint63),
                ("sender", Id),
                ("body", body),
            ],
            tag=kind,
            array_like=True,
            frozen=True,
            gc=False,
            forbid_unknown_fields=True,
        )
        frames[frame] = _FrameKind(kind, len(bodies) > 1)
    return frames


_FRAMES = _frame_types()


class _ExtRefused(Exception):
    """An ext value where the decoder expected any value: refused before it is built."""


def _refuse_ext(code: int, data: memoryview) -> NoReturn:
    raise _ExtRefused(f"ext type {code} of {len(data)} bytes: max_ext_len is 0")


_DECODER = msgspec.msgpack.Decoder(typing.Union[tuple(_FRAMES)], ext_hook=_refuse_ext)  # noqa: UP007
_ENCODER = msgspec.msgpack.Encoder()


def kind_prefix(kind: str) -> bytes:
    """The first bytes of every envelope of `kind` (array of 6, then the kind as a fixstr).

    On the event bus a frame starts with its topic, not with this: filter
    subscriptions by topic (bus/topics.py). Raises WireError for an unknown kind.
    """
    if kind not in _VERSIONS:
        raise WireError(f"envelope.kind: unknown kind {show(kind)}", field="envelope.kind")
    packed_kind: bytes = msgpack.packb(kind)
    return b"\x96" + packed_kind


# -- encode -------------------------------------------------------------------


class Codec:
    """Encodes messages into frames and decodes frames, within a size limit.

    Any thread. `max_size` bounds both the frames it produces and the frames
    it accepts.
    """

    __slots__ = ("max_size",)

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size

    def encode(self, msg: Message, *, seq: int, sender: str, ts_ns: int | None = None) -> bytes:
        """The frame for `msg`; `ts_ns` defaults to the message's own ts_ns.

        Command and Reply carry no ts_ns, so they need one passed. Raises
        WireError for a non-message, a bad seq/ts_ns/sender, a decimal too
        long for the wire, or a frame over `max_size`.
        """
        schema = _BY_CLASS.get(type(msg))
        if schema is None:
            raise WireError(
                f"envelope.body: cannot encode a {type(msg).__name__}: not a wire message",
                field="envelope.body",
            )
        if ts_ns is None:
            ts_ns = getattr(msg, "ts_ns", None)
            if ts_ns is None:
                raise WireError(
                    f"envelope.ts_ns: a {schema.kind} has no ts_ns of its own: pass ts_ns=",
                    field="envelope.ts_ns",
                )
        check_header(seq, ts_ns, sender)
        body = schema.to_wire(msg)
        version = schema.version_of(msg) if schema.added else schema.version
        try:
            frame = _ENCODER.encode([schema.kind, version, seq, ts_ns, sender, body])
        except (TypeError, ValueError, OverflowError) as exc:
            # A lone surrogate in a str, or a message mutated after
            # construction (its dicts are not frozen).
            raise WireError(f"{schema.path}: cannot encode: {exc}", field=schema.path) from exc
        if len(frame) > self.max_size:
            raise FrameTooLarge(len(frame), self.max_size)
        return frame

    def decode(self, data: bytes, *, max_size: int | None = None) -> Envelope:
        """The envelope in `data` (see the module-level `decode`); raises only WireError."""
        return decode(data, max_size=self.max_size if max_size is None else max_size)


_DEFAULT = Codec()


def encode(msg: Message, *, seq: int, sender: str, ts_ns: int | None = None) -> bytes:
    """The frame for `msg` (see Codec.encode). Any thread."""
    return _DEFAULT.encode(msg, seq=seq, sender=sender, ts_ns=ts_ns)


# -- decode -------------------------------------------------------------------


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Envelope:
    """The envelope in `data`, validated field by field. Any thread.

    Raises WireError, and only WireError, when `data` is larger than
    `max_size`, is not one msgpack array of the envelope's shape, or any
    field breaks the schema (docs/wire-format.md).
    """
    try:
        return _decode(data, max_size)
    except WireError:
        raise
    except Exception as exc:
        # Trust boundary: whatever the bytes provoke (RecursionError,
        # MemoryError, a bug in a check), the caller sees the one error it
        # handles for a bad frame, with the cause chained.
        raise WireError(f"envelope: undecodable frame ({type(exc).__name__}: {exc})") from exc


def _decode(data: bytes, max_size: int) -> Envelope:
    if type(data) is bytes:
        size = len(data)
    elif isinstance(data, bytearray | memoryview):
        size = data.nbytes if isinstance(data, memoryview) else len(data)
    else:
        raise WireError(f"envelope: expected bytes, got {type(data).__name__}")
    if size > max_size:
        raise WireError(f"envelope: frame of {size} bytes exceeds max_size {max_size}")
    try:
        frame = _DECODER.decode(data)
    except ValidationError as exc:
        raise _refusal(ErrorPath.parse(exc), data) from None
    except (msgspec.DecodeError, _ExtRefused) as exc:
        raise WireError(f"envelope: not a valid msgpack frame ({exc})") from None
    kind = _FRAMES[type(frame)]
    body = frame.body
    schema = _BY_WIRE[type(body)]
    message = schema.from_wire(body)
    if frame.version != schema.version or schema.added:
        _check_version(schema, message, frame.version)
    return Envelope(kind.kind, frame.version, frame.seq, frame.ts_ns, frame.sender, message)


def _check_version(schema: MessageSchema, message: Message, version: int) -> None:
    """Refuse a frame of another version than its message is written as (one frame each)."""
    written = schema.version_of(message)
    if written == version:
        return
    for index, added in schema.added:
        field = schema.fields[index]
        if added > version and getattr(message, field.name) is not None:
            raise WireError(
                f"{field.where}: added in {schema.kind} version {added}, "
                f"not carried by a version {version} frame",
                field=field.where,
            )
    raise WireError(
        f"envelope.version: this {schema.path} carries no field added in version {version}: "
        f"it is written as version {written}",
        field="envelope.version",
    )


# -- naming what the decoder refused --------------------------------------------


def _raw(data: bytes) -> Any:
    """The frame as plain values, to name what the typed decoder refused; None if unreadable."""
    try:
        return msgspec.msgpack.decode(data, ext_hook=lambda code, _data: f"<ext {code}>")
    except Exception:  # noqa: BLE001  # only context for an error already being raised
        return None


def _refusal(error: ErrorPath, data: bytes) -> WireError:
    if "got `ext`" in error.text:
        return WireError(f"envelope: not a valid msgpack frame (an ext value: {error.text})")
    raw = _raw(data)
    frame = raw if type(raw) is list and len(raw) == ENVELOPE_FIELDS else None
    steps = error.steps
    if not steps or frame is None or type(steps[0]) is not int:
        return WireError(
            f"envelope: must be an array of {ENVELOPE_FIELDS} items ({error.text}), "
            f"got {show(raw)}",
            field="envelope",
        )
    position = steps[0]
    kind, version = frame[0], frame[1]
    if position == 0:
        return WireError(f"envelope.kind: unknown kind {show(kind)}", field="envelope.kind")
    if position == 1:
        known = " and ".join(str(v) for v in _VERSIONS[kind])
        return WireError(
            f"envelope.version: {kind} version {show(version)} is not supported "
            f"(this build speaks version{'s' if len(_VERSIONS[kind]) > 1 else ''} {known})",
            field="envelope.version",
        )
    if position < _BODY:
        where = f"envelope.{_HEADER[position]}"
        return WireError(f"{where}: {error.text}, got {show(frame[position])}", field=where)
    body = frame[_BODY]
    if len(steps) == 1 and type(body) is not list:
        return WireError(
            f"envelope.body: must be an array, got {show(body)}", field="envelope.body"
        )
    schema = _BY_KIND[kind]
    if schema is None:  # execution_signal: the signal type comes first
        signal = body[0] if body else None
        schema = _SIGNALS.get(signal) if type(signal) is str else None
        if schema is None or steps[1:2] == (0,):
            where = f"{kind}.signal"
            return WireError(f"{where}: unknown signal type {show(signal)}", field=where)
        body = body[1:]
        if len(steps) > 1 and type(steps[1]) is int:
            steps = (_BODY, steps[1] - 1, *steps[2:])
    if len(steps) == 1:
        most = len(schema.fields) + bool(schema.signal)
        least = schema.required + bool(schema.signal)
        items = f"{least} to {most}" if least < most else str(most)
        return WireError(
            f"{schema.path}: body must hold {items} items, got {len(body) + bool(schema.signal)}",
            field=schema.path,
        )
    return schema.refusal(ErrorPath(error.text, steps, error.key), body, offset=1)


# A version-1 market_update envelope starts with these bytes: array of 6, the
# kind as a fixstr, the version as a positive fixint.
_MARKET_HEAD = b"\x96" + msgpack.packb(MarketUpdate.KIND) + bytes([MarketUpdate.VERSION])
_MARKET_SEQ_AT = len(_MARKET_HEAD)
# msgpack uint formats: type byte -> payload size.
_UINT_SIZES = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def market_header(data: bytes) -> tuple[int, str] | None:
    """(seq, sender) of a market_update frame read from its first bytes, unpacking nothing.

    Any thread.

    A subscriber that conflates quotes needs every frame's sender and seq
    (gap detection) but only the newest quote per topic in full: this costs
    about a tenth of `decode`. None when `data` does not start as a
    version-1 market_update envelope in the canonical msgpack this codec
    writes (seq and ts_ns as uints, sender as a fixstr or str8 of valid
    UTF-8): decode such a frame in full. Nothing after the sender is looked
    at, so `decode` may still refuse the frame. Never raises.
    """
    if not data.startswith(_MARKET_HEAD):
        return None
    try:
        at = _MARKET_SEQ_AT
        code = data[at]
        if code < 0x80:
            seq = code
            at += 1
        else:
            size = _UINT_SIZES.get(code)
            if size is None:
                return None
            seq = int.from_bytes(data[at + 1 : at + 1 + size], "big")
            at += 1 + size
        code = data[at]  # ts_ns: only skipped, decode checks it
        if code >= 0x80:
            size = _UINT_SIZES.get(code)
            if size is None:
                return None
            at += size
        at += 1
        code = data[at]
        if 0xA1 <= code <= 0xBF:
            length = code & 0x1F
            at += 1
        elif code == 0xD9:
            length = data[at + 1]
            at += 2
        else:
            return None
        if length == 0 or at + length > len(data) or seq > INT64_MAX:
            return None
        sender = data[at : at + length].decode()
    except (IndexError, UnicodeDecodeError):
        return None
    if len(sender) > MAX_ID_LEN:
        return None
    return seq, sender
