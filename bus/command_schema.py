"""The declared schema of commands: each one's arguments, reply fields, errors and an example.

A command's arguments are one frozen msgspec Struct (`Arguments`) whose field
annotations are the constraints (the aliases of bus/constraints.py) plus a
`Doc` line each. `CommandSpec.parse` converts a Command's args into it
strictly: an unknown, missing or mistyped argument raises `InvalidArgument`
naming it, so a handler sees typed arguments or nothing. Decimals travel as
plain decimal strings (the wire's grammar) and reach handlers as Decimals; an
int is not a decimal and "5" is not an int. `Dispatcher` runs the handler of a
declared command and refuses an undeclared one (`UnknownCommand`, listing the
known ones). docs/commands.md is generated from these declarations.

Pure: no I/O, no clocks, no per-request state; any thread.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from msgspec import Meta, Struct, ValidationError

from posbus.bus.constraints import DecimalRule, format_decimal, show, wire_text
from posbus.bus.errors import InvalidArgument, UnknownCommand
from posbus.bus.messages import Command, CommandArg


@dataclass(frozen=True, slots=True)
class Doc:
    """The one-line description of an argument, in its annotation: ``Annotated[Id, Doc("...")]``."""

    text: str


class Arguments(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every command's arguments: unknown keys are refused."""


class NoArguments(Arguments, frozen=True, kw_only=True):
    """The arguments of a command that takes none."""


A = TypeVar("A", bound=Arguments)
Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Example:
    """An example request's arguments and the reply's result, as they travel."""

    args: Mapping[str, CommandArg]
    reply: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ArgumentDoc:
    """One argument as documented: wire name, type in words, required or its default."""

    name: str
    type: str
    required: bool
    default: Any
    description: str


_STEP = re.compile(r"`\$\.(?P<path>[^`]*)`")
_FIELD = re.compile(r"field `(?P<name>[^`]*)`")


class CommandSpec(Generic[A]):
    """One command: its name, what it does, its arguments, its reply's fields and its errors.

    `errors` maps the error types this command itself may answer to when
    (the ones every command may answer are listed once, in docs/commands.md).
    """

    def __init__(
        self,
        name: str,
        summary: str,
        arguments: type[A],
        *,
        reply: Mapping[str, str],
        example: Example,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.summary = summary
        self.arguments = arguments
        self.reply = dict(reply)
        self.example = example
        self.errors = dict(errors or {})
        hints = typing.get_type_hints(arguments, include_extras=True)
        docs, wire_fields, decimals = [], [], []
        for info in msgspec.structs.fields(arguments):
            annotation = hints[info.name]
            base, optional = _split_optional(annotation)
            doc = _metadata(annotation, Doc) or _metadata(base, Doc)
            if doc is None:
                raise TypeError(f"{name}: argument {info.encode_name!r} has no Doc line")
            required = info.required
            docs.append(
                ArgumentDoc(
                    info.encode_name,
                    _type_text(annotation),
                    required,
                    None if required else info.default,
                    doc.text,
                )
            )
            rule = _metadata(base, DecimalRule)
            wire_type = annotation
            if rule is not None:
                # Decimal text on the wire, checked by the rule's pattern: msgspec
                # would take an int, "1e5" or "NaN" for a Decimal.
                text = wire_text(rule)
                wire_type = text | None if optional else text
                decimals.append(info.name)
            default = msgspec.NODEFAULT if required else info.default
            wire_fields.append(
                (info.name, wire_type, msgspec.field(default=default, name=info.encode_name))
            )
        self._docs = tuple(docs)
        self._decimals = tuple(decimals)
        self._wire: type[Struct] = msgspec.defstruct(
            f"{arguments.__name__}Wire",
            wire_fields,
            kw_only=True,
            frozen=True,
            forbid_unknown_fields=True,
        )

    def argument_docs(self) -> tuple[ArgumentDoc, ...]:
        """Every argument, in declaration order."""
        return self._docs

    def parse(self, args: Mapping[str, CommandArg]) -> A:
        """The typed arguments of `args`; InvalidArgument naming the first one refused."""
        try:
            wire = msgspec.convert(dict(args), self._wire, strict=True)
        except ValidationError as exc:
            raise self._refusal(str(exc), args) from None
        values = msgspec.structs.asdict(wire)
        for name in self._decimals:
            if values[name] is not None:
                values[name] = Decimal(values[name])
        return self.arguments(**values)

    def encode(self, arguments: A) -> dict[str, CommandArg]:
        """The args map of `arguments` as it travels: decimals as plain text, enums as values.

        An argument left at a default of None is left out.
        """
        out: dict[str, CommandArg] = {}
        for doc, info in zip(self._docs, msgspec.structs.fields(self.arguments), strict=True):
            value = getattr(arguments, info.name)
            if value is None and not doc.required and doc.default is None:
                continue
            if isinstance(value, Decimal):
                value = format_decimal(value, doc.name)
            elif isinstance(value, Enum):
                value = value.value
            elif isinstance(value, list | tuple):
                value = [v.value if isinstance(v, Enum) else v for v in value]
            out[doc.name] = value
        return out

    def route(self, handler: Callable[[A], Result]) -> Route:
        """This command bound to `handler`, which gets the parsed arguments."""
        return Route(self, lambda args: handler(self.parse(args)))

    def _refusal(self, text: str, args: Mapping[str, CommandArg]) -> InvalidArgument:
        names = [d.name for d in self._docs]
        field = _FIELD.search(text)
        if "unknown field" in text and field is not None:
            takes = ", ".join(names) if names else "no argument"
            return InvalidArgument(self.name, field["name"], f"unknown; it takes {takes}")
        if "missing required field" in text and field is not None:
            doc = self._doc(field["name"])
            return InvalidArgument(self.name, field["name"], f"required: {doc.type}")
        step = _STEP.search(text)
        if step is not None:
            path = step["path"]
            # The longest wire name the path starts with ("exposure.qty" has a dot).
            for name in sorted(names, key=len, reverse=True):
                if path == name or path.startswith((name + "[", name + ".")):
                    doc = self._doc(name)
                    return InvalidArgument(
                        self.name, name, f"must be {doc.type}, got {show(args.get(name))}"
                    )
        return InvalidArgument(self.name, "", text)

    def _doc(self, name: str) -> ArgumentDoc:
        return next(d for d in self._docs if d.name == name)


@dataclass(frozen=True, slots=True)
class Route:
    """A declared command and what runs it: `run(args)` parses, then calls the handler."""

    spec: CommandSpec[Any]
    run: Callable[[Mapping[str, CommandArg]], Result]


@dataclass(frozen=True, slots=True)
class ServiceSchema:
    """The commands one service answers, and how a client reaches it (`reached`)."""

    service: str
    summary: str
    reached: str
    commands: tuple[CommandSpec[Any], ...]

    def names(self) -> list[str]:
        """The command names, in declaration order."""
        return [spec.name for spec in self.commands]

    def spec(self, name: str) -> CommandSpec[Any]:
        """The declaration of command `name`; UnknownCommand listing the known ones."""
        for spec in self.commands:
            if spec.name == name:
                return spec
        raise UnknownCommand(name, self.names())


class Dispatcher:
    """Runs each command of `schema` through its route; every declared command must have one."""

    def __init__(self, schema: ServiceSchema, routes: Iterable[Route]) -> None:
        self.schema = schema
        self._routes = {route.spec.name: route for route in routes}
        if sorted(self._routes) != sorted(schema.names()):
            raise ValueError(
                f"{schema.service}: routes {sorted(self._routes)} "
                f"do not match the declared commands {sorted(schema.names())}"
            )

    def __call__(self, command: Command) -> Result:
        """The handler's result; UnknownCommand or InvalidArgument before anything runs."""
        route = self._routes.get(command.name)
        if route is None:
            raise UnknownCommand(command.name, self.schema.names())
        return route.run(command.args)


# -- types in words --------------------------------------------------------------------


def _type_text(annotation: Any) -> str:
    base, optional = _split_optional(annotation)
    text = _base_text(base)
    return f"{text} or null" if optional else text


def _base_text(annotation: Any) -> str:
    metas: list[Any] = []
    while typing.get_origin(annotation) is Annotated:
        metas.extend(annotation.__metadata__)
        annotation = annotation.__origin__
    rule = next((m for m in metas if isinstance(m, DecimalRule)), None)
    if rule is not None:
        return rule.description.replace("a finite Decimal", "decimal string")
    constraints: dict[str, Any] = {}
    for meta in metas:
        if isinstance(meta, Meta):
            for key in ("ge", "le", "min_length", "max_length", "pattern"):
                if getattr(meta, key) is not None:
                    constraints[key] = getattr(meta, key)
    if annotation is bool:
        return "bool"
    if annotation is int:
        low, high = constraints.get("ge"), constraints.get("le")
        if low is not None and high is not None and high < 2**62:
            return f"int {low}..{high}"
        return f"int >= {low}" if low is not None else "int"
    if annotation is str:
        if "pattern" in constraints:
            return f"string matching {constraints['pattern']}"
        low, high = constraints.get("min_length", 0), constraints.get("max_length")
        if high is None:
            return "non-empty string" if low else "string"
        return f"string of {low}..{high} chars" if low else f"string of at most {high} chars"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(f'"{member.value}"' for member in annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(f'"{value}"' for value in typing.get_args(annotation))
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return f"list of ({_base_text(item)})"
    return getattr(annotation, "__name__", str(annotation))


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    """(T, True) for ``T | None`` (inside Annotated too), (annotation, False) otherwise."""
    inner = annotation
    while typing.get_origin(inner) is Annotated:
        inner = inner.__origin__
    if typing.get_origin(inner) in (typing.Union, types.UnionType):
        members = typing.get_args(inner)
        if len(members) == 2 and type(None) in members:
            return next(m for m in members if m is not type(None)), True
    return annotation, False


_T = TypeVar("_T")


def _metadata(annotation: Any, kind: type[_T]) -> _T | None:
    while typing.get_origin(annotation) is Annotated:
        for item in annotation.__metadata__:
            if isinstance(item, kind):
                return item
        annotation = annotation.__origin__
    return None
