"""A strategy's parameters, declared once by its constructor's signature.

Each keyword parameter of a strategy's `__init__` is one parameter: its name,
its type (the annotation: int, float, Decimal, bool or str) and its default.
A numeric parameter may state the values it accepts with a `Range` in its
annotation, `window: Annotated[int, Range(ge=2)] = 100`; the constructor
checks it (`check_ranges`), and the tools that build strategies from text
(`posbus backtest --param`, `--sweep`) read it to refuse a bad value before
anything runs. Constraints between parameters (fast < slow) stay in the
constructor.

Pure: reading a signature, no I/O.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Number = int | float | Decimal


@dataclass(frozen=True, slots=True)
class Range:
    """The values a numeric parameter accepts: each bound given is one inequality."""

    ge: Number | None = None
    gt: Number | None = None
    le: Number | None = None
    lt: Number | None = None

    def violation(self, value: Number) -> str | None:
        """Why `value` is out of range ("must be >= 2"), or None when it is inside."""
        if (
            (self.ge is not None and not value >= self.ge)
            or (self.gt is not None and not value > self.gt)
            or (self.le is not None and not value <= self.le)
            or (self.lt is not None and not value < self.lt)
        ):
            return f"must be {self}"
        return None

    def __str__(self) -> str:
        bounds = [
            f"{op} {bound}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(bounds) or "any value"


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter: name, type, default (`inspect.Parameter.empty`: required), range."""

    name: str
    kind: type
    default: Any
    range: Range | None = None

    def describe(self) -> str:
        """`name (int, >= 2, default 100)`, for error and help texts."""
        parts = [self.kind.__name__]
        if self.range is not None:
            parts.append(str(self.range))
        if self.default is not inspect.Parameter.empty:
            parts.append(f"default {self.default}")
        return f"{self.name} ({', '.join(parts)})"


def declared_params(cls: type) -> dict[str, Param]:
    """The keyword parameters of `cls`'s constructor, in signature order.

    An unannotated parameter is a str; a `Range` in an `Annotated` annotation
    is its range.
    """
    init = next(vars(k)["__init__"] for k in cls.__mro__ if "__init__" in vars(k))
    try:
        hints = typing.get_type_hints(init, include_extras=True)
    except (NameError, TypeError):
        hints = {}
    params: dict[str, Param] = {}
    for name, p in inspect.signature(cls).parameters.items():
        if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        hint = hints.get(name, str)
        bounds = None
        if typing.get_origin(hint) is typing.Annotated:
            hint, *extras = typing.get_args(hint)
            bounds = next((e for e in extras if isinstance(e, Range)), None)
        kind = hint if isinstance(hint, type) else str
        params[name] = Param(name, kind, p.default, bounds)
    return params


def check_ranges(cls: type, values: dict[str, Any]) -> None:
    """Raise ValueError naming the first of `values` outside its declared Range."""
    params = declared_params(cls)
    for name, value in values.items():
        declared = params.get(name)
        if declared is None or declared.range is None:
            continue
        problem = declared.range.violation(value)
        if problem is not None:
            raise ValueError(f"{name} {problem}, got {value}")
