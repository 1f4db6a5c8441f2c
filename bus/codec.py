"""The msgpack codec of the bus: messages to frames and back, validating every field.

A frame is one msgpack array, positional for speed and for other languages:

    [kind: str, version: int, seq: int, ts_ns: int, sender: str, body: array]

and the body lists the message's fields in the dataclass order (for
``execution_signal`` the signal type comes first). Decimals travel as plain
decimal strings. docs/wire-format.md is the full specification.

Decoding takes untrusted bytes. It must never execute anything (no pickle, no
ext types, no object hooks), never allocate more than the frame's size bounds
allow (the size is checked before unpacking and msgpack's declared lengths are
capped), and never raise anything but WireError, whatever the bytes.

Thread safety: `decode` is stateless and safe from any thread. A `Codec`
reuses one msgpack Packer (about 20 % faster than `msgpack.packb`), so an
instance belongs to one thread; the module-level `encode` keeps one Codec per
thread for you.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import Any

import msgpack

from posbus.actors.model.side import Side
from posbus.bus.constraints import (
    INT64_MAX,
    MAX_ID_LEN,
    MAX_RESULT_STR_LEN,
    check_id,
    check_non_negative_int64,
    format_decimal,
    parse_decimal,
    parse_optional_decimal,
    show,
)
from posbus.bus.envelope import Envelope
from posbus.bus.messages import (
    CancelRequest,
    Command,
    Liquidity,
    MarketUpdate,
    Message,
    OrderAck,
    OrderCancelled,
    OrderExpired,
    OrderFill,
    OrderIntent,
    OrderRejected,
    OrderSubmit,
    Reply,
    RiskEvent,
)
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

# Caps on what a msgpack header may declare, checked by msgpack before it
# allocates. No field is binary and no ext type is allowed, hence 0; a str
# may take 4 UTF-8 bytes per character.
_UNPACK_OPTIONS: dict[str, Any] = {
    "raw": False,
    "strict_map_key": True,
    "use_list": True,
    "max_str_len": 4 * MAX_RESULT_STR_LEN,
    "max_bin_len": 0,
    "max_ext_len": 0,
    "max_array_len": 65_536,
    "max_map_len": 65_536,
}

_Encoder = Callable[[Any, str], Any]
_Decoder = Callable[[Any, str], Any]


# -- field converters: only fields whose wire form differs from Python's -------


def _format_optional_decimal(value: Decimal | None, where: str) -> str | None:
    return None if value is None else format_decimal(value, where)


_SIDES = {side.value: side for side in Side}
_LIQUIDITIES = {liquidity.value: liquidity for liquidity in Liquidity}


def _parse_side(value: object, where: str) -> Side:
    side = _SIDES.get(value) if type(value) is str else None
    if side is None:
        raise WireError(f"{where}: must be 'buy' or 'sell', got {show(value)}", field=where)
    return side


def _parse_liquidity(value: object, where: str) -> Liquidity:
    liquidity = _LIQUIDITIES.get(value) if type(value) is str else None
    if liquidity is None:
        raise WireError(f"{where}: must be 'maker' or 'taker', got {show(value)}", field=where)
    return liquidity


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    to_wire: _Encoder | None
    from_wire: _Decoder | None


def _as_is(name: str) -> _Field:
    # Strings, ints, bools, None, maps: msgpack carries them unchanged and the
    # message constructor validates them.
    return _Field(name, None, None)


def _decimal(name: str) -> _Field:
    return _Field(name, format_decimal, parse_decimal)


def _optional_decimal(name: str) -> _Field:
    return _Field(name, _format_optional_decimal, parse_optional_decimal)


def _side(name: str) -> _Field:
    # Side is a StrEnum: msgpack packs it as its str value.
    return _Field(name, None, _parse_side)


def _liquidity(name: str) -> _Field:
    return _Field(name, None, _parse_liquidity)


# -- the layout of every body -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Schema:
    """How one message class sits in a body; built once at import."""

    cls: type[Message]
    kind: str
    version: int
    signal: str | None
    path: str
    names: tuple[str, ...]
    getter: Callable[[Any], tuple[Any, ...]]
    wheres: tuple[str, ...]
    encoders: tuple[_Encoder | None, ...]
    decoders: tuple[_Decoder | None, ...]


def _schema(cls: type[Message], *fields: _Field) -> _Schema:
    signal: str | None = getattr(cls, "SIGNAL", None)
    path = cls.KIND if signal is None else f"{cls.KIND}.{signal}"
    names = tuple(field.name for field in fields)
    # attrgetter of one name returns the value, not a 1-tuple.
    assert len(names) >= 2, f"{cls.__name__}: a body needs at least two fields"
    wheres = tuple(f"{path}.{name}" for name in names)
    return _Schema(
        cls=cls,
        kind=cls.KIND,
        version=cls.VERSION,
        signal=signal,
        path=path,
        names=names,
        getter=attrgetter(*names),
        wheres=wheres,
        encoders=tuple(f.to_wire for f in fields),
        decoders=tuple(f.from_wire for f in fields),
    )


# The wire layout. Positions are the dataclass field order (a test holds the
# two together); changing a position means bumping the class's VERSION.
_SCHEMAS: tuple[_Schema, ...] = (
    _schema(
        MarketUpdate,
        _as_is("symbol"),
        _decimal("bid"),
        _decimal("ask"),
        _optional_decimal("last"),
        _optional_decimal("bid_size"),
        _optional_decimal("ask_size"),
        _as_is("ts_ns"),
    ),
    _schema(
        OrderIntent,
        _as_is("account"),
        _as_is("symbol"),
        _side("side"),
        _decimal("qty"),
        _optional_decimal("limit_price"),
        _as_is("intent_id"),
        _as_is("reduce_only"),
        _as_is("reason"),
        _as_is("ts_ns"),
    ),
    _schema(
        OrderSubmit,
        _as_is("order_id"),
        _as_is("client_order_id"),
        _as_is("account"),
        _as_is("symbol"),
        _side("side"),
        _decimal("qty"),
        _optional_decimal("limit_price"),
        _as_is("ts_ns"),
    ),
    _schema(
        OrderAck,
        _as_is("order_id"),
        _as_is("client_order_id"),
        _as_is("exchange_order_id"),
        _as_is("ts_ns"),
    ),
    _schema(
        OrderFill,
        _as_is("order_id"),
        _as_is("client_order_id"),
        _as_is("trade_id"),
        _as_is("account"),
        _as_is("symbol"),
        _side("side"),
        _decimal("qty"),
        _decimal("price"),
        _decimal("fee"),
        _as_is("fee_currency"),
        _liquidity("liquidity"),
        _as_is("ts_ns"),
    ),
    _schema(CancelRequest, _as_is("order_id"), _as_is("ts_ns")),
    _schema(OrderCancelled, _as_is("order_id"), _as_is("reason"), _as_is("ts_ns")),
    _schema(OrderRejected, _as_is("order_id"), _as_is("reason"), _as_is("ts_ns")),
    _schema(OrderExpired, _as_is("order_id"), _as_is("ts_ns")),
    _schema(
        RiskEvent,
        _as_is("event"),
        _as_is("state"),
        _as_is("previous_state"),
        _as_is("reason"),
        _as_is("account"),
        _as_is("symbol"),
        _as_is("values"),
        _as_is("ts_ns"),
    ),
    _schema(Command, _as_is("name"), _as_is("args"), _as_is("request_id")),
    _schema(Reply, _as_is("request_id"), _as_is("ok"), _as_is("result"), _as_is("error")),
)

_BY_CLASS: dict[type[Message], _Schema] = {schema.cls: schema for schema in _SCHEMAS}
_SIGNALS: dict[str, _Schema] = {s.signal: s for s in _SCHEMAS if s.signal is not None}
# Kinds without signal types map to their one schema; execution_signal to None.
_KINDS: dict[str, _Schema | None] = {s.kind: (None if s.signal else s) for s in _SCHEMAS}
_VERSIONS: dict[str, int] = {s.kind: s.version for s in _SCHEMAS}


def kind_prefix(kind: str) -> bytes:
    """The first bytes of every frame of `kind`: a ZeroMQ SUB prefix filter for that kind.

    Raises WireError for an unknown kind.
    """
    if kind not in _KINDS:
        raise WireError(f"envelope.kind: unknown kind {show(kind)}", field="envelope.kind")
    packed_kind: bytes = msgpack.packb(kind)
    return b"\x96" + packed_kind


# -- encode -------------------------------------------------------------------


class Codec:
    """Encodes messages into frames and decodes frames, reusing one msgpack Packer.

    Not thread-safe: use one instance per thread (the module-level `encode`
    and `decode` do that for you). `max_size` bounds both the frames it
    produces and the frames it accepts.
    """

    __slots__ = ("_pack", "max_size")

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        # autoreset: pack() returns the bytes and empties the buffer, also
        # after an exception.
        self._pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
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
        check_non_negative_int64(seq, "envelope.seq")
        check_non_negative_int64(ts_ns, "envelope.ts_ns")
        check_id(sender, "envelope.sender")
        values = schema.getter(msg)
        body = [
            value if to_wire is None else to_wire(value, where)
            for value, to_wire, where in zip(values, schema.encoders, schema.wheres, strict=True)
        ]
        if schema.signal is not None:
            body.insert(0, schema.signal)
        try:
            frame: bytes = self._pack([schema.kind, schema.version, seq, ts_ns, sender, body])
        except (TypeError, ValueError, OverflowError) as exc:
            # Only reachable when a message was mutated after construction
            # (its dicts are not frozen): the constructor checks every field.
            raise WireError(f"{schema.path}: cannot encode: {exc}", field=schema.path) from exc
        if len(frame) > self.max_size:
            raise FrameTooLarge(len(frame), self.max_size)
        return frame

    def decode(self, data: bytes, *, max_size: int | None = None) -> Envelope:
        """The envelope in `data` (see the module-level `decode`); raises only WireError."""
        return decode(data, max_size=self.max_size if max_size is None else max_size)


_per_thread = threading.local()


def encode(msg: Message, *, seq: int, sender: str, ts_ns: int | None = None) -> bytes:
    """The frame for `msg`, with this thread's Codec (see Codec.encode). Any thread."""
    try:
        codec: Codec = _per_thread.codec
    except AttributeError:
        codec = _per_thread.codec = Codec()
    return codec.encode(msg, seq=seq, sender=sender, ts_ns=ts_ns)


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
        frame = msgpack.unpackb(data, **_UNPACK_OPTIONS)
    except ValueError as exc:
        # msgpack's errors (truncated, extra data, over a length cap, ext
        # type, bad UTF-8) are all ValueErrors.
        raise WireError(
            f"envelope: not a valid msgpack frame ({exc or type(exc).__name__})"
        ) from exc
    if type(frame) is not list or len(frame) != ENVELOPE_FIELDS:
        raise WireError(
            f"envelope: must be an array of {ENVELOPE_FIELDS} items, got {show(frame)}",
            field="envelope",
        )
    kind, version, seq, ts_ns, sender, body = frame
    if type(kind) is not str or kind not in _KINDS:
        raise WireError(f"envelope.kind: unknown kind {show(kind)}", field="envelope.kind")
    if type(version) is not int or version != _VERSIONS[kind]:
        raise WireError(
            f"envelope.version: {kind} version {show(version)} is not supported "
            f"(this build speaks version {_VERSIONS[kind]})",
            field="envelope.version",
        )
    if type(body) is not list:
        raise WireError(f"envelope.body: must be an array, got {show(body)}", field="envelope.body")
    schema = _KINDS[kind]
    offset = 0
    if schema is None:
        signal = body[0] if body else None
        schema = _SIGNALS.get(signal) if type(signal) is str else None
        if schema is None:
            raise WireError(
                f"{kind}.signal: unknown signal type {show(signal)}", field=f"{kind}.signal"
            )
        offset = 1
    fields = body[offset:] if offset else body
    if len(fields) != len(schema.decoders):
        raise WireError(
            f"{schema.path}: body must hold {len(schema.decoders) + offset} items, got {len(body)}",
            field=schema.path,
        )
    message = schema.cls(
        *[
            value if from_wire is None else from_wire(value, where)
            for value, from_wire, where in zip(fields, schema.decoders, schema.wheres, strict=True)
        ]
    )
    return Envelope(kind, version, seq, ts_ns, sender, message)
