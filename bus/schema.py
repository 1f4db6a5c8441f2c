"""The wire schema of each message class, derived from its field annotations.

A message class (bus/messages.py) declares its fields with the aliases of
bus/constraints.py. From those annotations, once per class, this module
derives the msgspec Struct of its body on the wire (decimals as plain decimal
text checked by pattern, the signal type as the tag) and the in-process check
its constructor runs; and it names the field behind a msgspec error path, so
every failure is a WireError such as ``market_update.bid: ...``.

A field added to a message after its first version (``ADDED``) is trailing
and optional by omission: absent from the body when None (never nil), and a
message carrying one is written as the version that added it
(`version_of`), so a message without it keeps its bytes and every frame has
one encoding.

It must never hold per-message state: schemas are built on first use and
shared by every thread (building one twice is harmless).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct, ValidationError
from msgspec.structs import astuple

from posbus.bus.constraints import DecimalRule, format_decimal, show, wire_text
from posbus.bus.wire_error import WireError


@dataclass(frozen=True, slots=True)
class FieldSchema:
    """One field: its name, its dotted path in errors, and what it must be."""

    name: str
    where: str
    rule: DecimalRule | None
    enum: type[Enum] | None
    optional: bool
    description: str | None
    added: int | None = None  # the version that added this trailing field, if any

    def explain(self, value: object) -> str:
        """The error text for `value` refused in this field."""
        what = self.description or "of its declared type"
        if self.added is not None:
            what = f"absent or {what}"
        elif self.optional:
            what = f"None or {what}"
        return f"{self.where}: must be {what}, got {show(value)}"


# msgspec ends every error with " - at `$[5][2]`" or " - at `key` in `$[5][1]`".
_AT = re.compile(r"^(?P<text>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)
_STEP = re.compile(r"\[(\d+|\.\.\.)\]|\.([^.\[]+)")


@dataclass(frozen=True, slots=True)
class ErrorPath:
    """A msgspec error taken apart: its text, the path as indexes, whether a map key failed."""

    text: str
    steps: tuple[int | str, ...]
    key: bool

    @classmethod
    def parse(cls, error: Exception) -> ErrorPath:
        """The path of a msgspec ValidationError (empty steps for the root)."""
        found = _AT.match(str(error))
        assert found is not None  # the pattern matches any text
        steps: list[int | str] = []
        for index, name in _STEP.findall(found["path"] or ""):
            steps.append(int(index) if index.isdigit() else (index or name))
        return cls(found["text"], tuple(steps), found["key"] is not None)

    def suffix(self, start: int) -> str:
        """The steps from `start` on, as a field path suffix: ``[0]``, ``[...]``, `` key``."""
        text = "".join(f"[{step}]" for step in self.steps[start:])
        return text + (" key" if self.key else "")


class MessageSchema:
    """The derived schema of one message class; built once, shared by every thread."""

    __slots__ = (
        "added",
        "checker",
        "cls",
        "decimals",
        "fields",
        "kind",
        "path",
        "python_checks",
        "required",
        "signal",
        "version",
        "versions",
        "wire",
    )

    def __init__(self, cls: type[Struct]) -> None:
        self.cls = cls
        self.kind: str = cls.KIND  # type: ignore[attr-defined]
        self.version: int = cls.VERSION  # type: ignore[attr-defined]
        self.signal: str | None = getattr(cls, "SIGNAL", None)
        self.path = self.kind if self.signal is None else f"{self.kind}.{self.signal}"
        hints = typing.get_type_hints(cls, include_extras=True)
        added_in = _added_fields(cls)
        self.required = len(cls.__struct_fields__) - len(added_in)
        fields: list[FieldSchema] = []
        wire_fields: list[tuple[Any, ...]] = []
        checked_fields = []
        for name in cls.__struct_fields__:
            annotation = hints[name]
            base, optional = _split_optional(annotation)
            rule = _metadata(base, DecimalRule)
            enum = base if isinstance(base, type) and issubclass(base, Enum) else None
            meta = _metadata(base, Meta)
            description = meta.description if meta is not None else None
            added = added_in.get(name)
            if added is not None:
                # Absent when None, never nil: a reader refuses an explicit nil.
                wire = wire_text(rule) if rule is not None else base
                wire_fields.append((name, wire, None))
                if rule is not None:
                    description = rule.description
            elif rule is not None:
                description = rule.description
                wire = wire_text(rule)
                wire_fields.append((name, wire | None if optional else wire))
            else:
                wire_fields.append((name, annotation))
            checked = annotation
            if typing.is_typeddict(base):
                # msgspec drops unknown keys of a TypedDict. The wire refuses
                # them (a map of the known keys, decoded in the sender's key
                # order so a frame re-encodes to the same bytes) and the check
                # converts to a Struct of the same keys that refuses them too.
                keys: Any = Literal[tuple(typing.get_type_hints(base))]
                known: Any = dict[keys, Any]
                wire_fields[-1] = (name, known | None if optional else known)
                strict = _strict_map(base)
                checked = strict | None if optional else strict
            if enum is not None:
                description = f"a {enum.__name__} ({' or '.join(repr(m.value) for m in enum)})"
            # Decimals and enums are checked in Python in-process: msgspec's
            # conversion would accept a float for a Decimal or "buy" for a Side.
            python_checked = rule is not None or enum is not None
            checked_fields.append((name, Any if python_checked else checked))
            fields.append(
                FieldSchema(name, f"{self.path}.{name}", rule, enum, optional, description, added)
            )
        self.fields: tuple[FieldSchema, ...] = tuple(fields)
        #: (index, version) of each added trailing field.
        self.added: tuple[tuple[int, int], ...] = tuple(
            (i, f.added) for i, f in enumerate(fields) if f.added is not None
        )
        #: Every version a frame of this message may be: VERSION up to the newest addition.
        self.versions: tuple[int, ...] = tuple(
            range(self.version, max((v for _, v in self.added), default=self.version) + 1)
        )
        self.decimals = tuple(i for i, f in enumerate(fields) if f.rule is not None)
        # (index, test, optional) of the fields checked in Python in-process.
        self.python_checks: tuple[tuple[int, Callable[[object], bool], bool], ...] = tuple(
            (i, f.rule.accepts if f.rule is not None else _instance_of(f.enum), f.optional)
            for i, f in enumerate(fields)
            if f.rule is not None or f.enum is not None
        )
        options: dict[str, Any] = {
            "array_like": True,
            "frozen": True,
            "gc": False,
            "forbid_unknown_fields": True,
        }
        #: The body as msgspec decodes it from the wire, signal type first.
        self.wire: type[Struct] = msgspec.defstruct(
            f"{cls.__name__}Wire", wire_fields, tag=self.signal, **options
        )
        # The constructor's check: every declared constraint but the ones of
        # decimals and enums, converted from the message's own field tuple.
        self.checker: type[Struct] = msgspec.defstruct(
            f"{cls.__name__}Check", checked_fields, **options
        )

    # -- in-process ----------------------------------------------------------------

    def check(self, message: Struct) -> None:
        """Raise WireError naming the first field of `message` the schema refuses."""
        values = astuple(message)
        try:
            msgspec.convert(values, self.checker)
        except ValidationError as exc:
            raise self.refusal(ErrorPath.parse(exc), values, offset=0) from None
        for index, accepts, optional in self.python_checks:
            value = values[index]
            if not accepts(value) and not (optional and value is None):
                field = self.fields[index]
                raise WireError(field.explain(value), field=field.where)

    def version_of(self, message: Struct) -> int:
        """The version `message` is written as: the newest of the added fields it carries.

        VERSION when it carries none, so adding a field never changes the
        bytes of a message without it.
        """
        version = self.version
        for index, added in self.added:
            if added > version and getattr(message, self.fields[index].name) is not None:
                version = added
        return version

    # -- the wire --------------------------------------------------------------------

    def from_wire(self, body: Struct) -> Any:
        """The message of a decoded body: decimal texts become Decimals; the constructor checks."""
        values = astuple(body)
        if self.decimals:
            converted = list(values)
            for index in self.decimals:
                text = converted[index]
                if text is not None:
                    converted[index] = Decimal(text)
            return self.cls(*converted)
        return self.cls(*values)

    def to_wire(self, message: Struct) -> Any:
        """The body of `message` for msgspec to encode: the Struct itself, or a list with plain
        decimal texts (msgspec writes str(Decimal), which may use an exponent) and without
        the added trailing fields it does not carry."""
        if not self.decimals and not self.added:
            return message
        values = list(astuple(message))
        for index in self.decimals:
            value = values[index]
            if value is not None:
                values[index] = format_decimal(value, self.fields[index].where)
        while len(values) > self.required and values[-1] is None:
            values.pop()
        if self.signal is not None:
            values.insert(0, self.signal)
        return values

    def refusal(self, error: ErrorPath, values: Any, *, offset: int) -> WireError:
        """The WireError of a msgspec error at `error.steps[offset:]` inside this message's body.

        `values` are the body's raw values (None when unknown) to show the refused one.
        """
        steps = error.steps[offset:]
        if not steps or type(steps[0]) is not int or steps[0] >= len(self.fields):
            return WireError(f"{self.path}: {error.text}", field=self.path)
        field = self.fields[steps[0]]
        if len(steps) == 1 and not error.key and field.description is not None:
            value = values[steps[0]] if values is not None and steps[0] < len(values) else "?"
            return WireError(field.explain(value), field=field.where)
        where = field.where + error.suffix(offset + 1)
        return WireError(f"{where}: {error.text}", field=where)


_T = TypeVar("_T")
_SCHEMAS: dict[type, MessageSchema] = {}


def schema_of(cls: type[Struct]) -> MessageSchema:
    """The schema of a message class, derived on first use. Any thread."""
    try:
        return _SCHEMAS[cls]
    except KeyError:
        schema = _SCHEMAS[cls] = MessageSchema(cls)
        return schema


def validate(message: Struct) -> None:
    """Raise WireError naming the first field of `message` its declared types refuse. Any thread."""
    try:
        schema = _SCHEMAS[type(message)]
    except KeyError:
        schema = schema_of(type(message))
    schema.check(message)


def wire_version(message: Struct) -> int:
    """The version `message` is written as on the wire (`MessageSchema.version_of`). Any thread."""
    return schema_of(type(message)).version_of(message)


def _added_fields(cls: type[Struct]) -> dict[str, int]:
    """`cls.ADDED`, checked: it names exactly the trailing fields, each defaulting to None."""
    added: dict[str, int] = dict(getattr(cls, "ADDED", {}))
    names = cls.__struct_fields__
    if set(names[len(names) - len(added) :]) != set(added) or any(
        default is not None for default in cls.__struct_defaults__
    ):
        raise TypeError(f"{cls.__name__}: ADDED must name its trailing fields defaulting to None")
    return added


def _instance_of(cls: type[Enum] | None) -> Callable[[object], bool]:
    return lambda value: isinstance(value, cls)  # type: ignore[arg-type]


def _strict_map(typed_dict: Any) -> type[Struct]:
    """A Struct (a msgpack map) with the keys of `typed_dict`, refusing any other key."""
    hints = typing.get_type_hints(typed_dict, include_extras=True)
    return msgspec.defstruct(
        f"{typed_dict.__name__}Wire",
        list(hints.items()),
        frozen=True,
        gc=False,
        forbid_unknown_fields=True,
    )


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    """(T, True) for ``T | None``, (annotation, False) otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if len(args) == 2 and type(None) in args:
            return next(arg for arg in args if arg is not type(None)), True
    return annotation, False


def _metadata(annotation: Any, kind: type[_T]) -> _T | None:
    if typing.get_origin(annotation) is Annotated:
        for item in annotation.__metadata__:
            if isinstance(item, kind):
                return item
    return None
