"""Finding and building a strategy from the command line: `NAME` or `module:Class`, `k=v` params.

`NAME` is one of the built-in strategies (`posbus.actors.strategies.BUILTIN`);
`module:Class` imports `module` and takes its attribute `Class` (any class
implementing `posbus.actors.strategy.Strategy` whose constructor takes
keyword parameters). Each `--param name=value` is converted to the type the
constructor's annotation names (int, float, Decimal, bool, str); an unknown
name, a repeated name or a value of the wrong type is a `StrategyError`
that lists what the strategy accepts.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from posbus.actors.model.errors import PosbusError
from posbus.actors.strategies import BUILTIN
from posbus.actors.strategy import Strategy

_TRUE = frozenset(("1", "true", "yes", "on"))
_FALSE = frozenset(("0", "false", "no", "off"))


class StrategyError(PosbusError):
    """A strategy that cannot be found or built with the given parameters."""


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """`["k=v", ...]` as a dict; raises StrategyError for an item without `=` or a repeat."""
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise StrategyError(f"--param {item!r}: expected NAME=VALUE")
        if name in params:
            raise StrategyError(f"--param {name}: given twice")
        params[name] = value.strip()
    return params


def find_strategy(spec: str) -> type:
    """The strategy class `spec` names (built-in NAME or module:Class)."""
    if ":" not in spec:
        found = BUILTIN.get(spec)
        if found is None:
            raise StrategyError(
                f"unknown strategy {spec!r}: built-in ones are {sorted(BUILTIN)}, "
                "or give module:Class"
            )
        return found
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(f"strategy {spec!r}: cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise StrategyError(f"strategy {spec!r}: {module_name!r} has no class {attr!r}")
    for method in ("on_start", "on_market", "on_fill"):
        if not callable(getattr(cls, method, None)):
            raise StrategyError(f"strategy {spec!r}: {attr} has no {method}() (see Strategy)")
    return cls


def build_strategy(spec: str, params: dict[str, str]) -> Strategy:
    """An instance of the strategy `spec` names, built with `params` converted to its types."""
    cls = find_strategy(spec)
    signature = inspect.signature(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):
        hints = {}
    accepted = {
        name: hints.get(name, str)
        for name, p in signature.parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise StrategyError(
            f"strategy {spec!r}: unknown parameter(s) {unknown}; it accepts {_describe(accepted)}"
        )
    kwargs = {name: _convert(spec, name, value, accepted[name]) for name, value in params.items()}
    try:
        strategy: Strategy = cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise StrategyError(f"strategy {spec!r}: {exc}") from exc
    return strategy


def describe(spec: str) -> str:
    """The parameters of strategy `spec` with their types and defaults, for help texts."""
    cls = find_strategy(spec)
    hints = typing.get_type_hints(cls.__init__)
    parts = []
    for name, p in inspect.signature(cls).parameters.items():
        kind = getattr(hints.get(name), "__name__", "str")
        default = "" if p.default is inspect.Parameter.empty else f"={p.default}"
        parts.append(f"{name}:{kind}{default}")
    return ", ".join(parts)


def _describe(accepted: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} ({getattr(kind, '__name__', kind)})" for name, kind in accepted.items()
    )


def _convert(spec: str, name: str, value: str, kind: Any) -> Any:
    where = f"strategy {spec!r} parameter {name}"
    if kind is bool:
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise StrategyError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise StrategyError(f"{where}: expected an integer, got {value!r}") from None
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise StrategyError(f"{where}: expected a number, got {value!r}") from None
    if kind is Decimal:
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise StrategyError(f"{where}: expected a decimal number, got {value!r}") from None
        if not number.is_finite():
            raise StrategyError(f"{where}: expected a finite number, got {value!r}")
        return number
    return value
