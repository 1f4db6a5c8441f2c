"""Finding and building a strategy from the command line: `NAME` or `module:Class`, `k=v` params.

`NAME` is one of the built-in strategies (`posbus.actors.strategies.BUILTIN`);
`module:Class` imports `module` and takes its attribute `Class` (any class
implementing `posbus.actors.strategy.Strategy` whose constructor takes
keyword parameters). Each `--param name=value` is converted to the type the
constructor's annotation names (int, float, Decimal, bool, str) and checked
against its declared `Range` (`posbus.actors.strategy_params`); an unknown
name, a repeated name, a value of the wrong type or out of range is a
`StrategyError` naming the parameter (an unknown one: with those declared).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from posbus.actors.model.errors import PosbusError
from posbus.actors.strategies import BUILTIN
from posbus.actors.strategy import Strategy
from posbus.actors.strategy_params import Param, declared_params

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


def strategy_params(spec: str) -> dict[str, Param]:
    """The parameters the strategy `spec` declares (`posbus.actors.strategy_params`)."""
    return declared_params(find_strategy(spec))


def convert_params(spec: str, params: dict[str, str]) -> dict[str, Any]:
    """`params` converted to the types of strategy `spec` and checked against their ranges.

    Raises StrategyError naming an unknown parameter (with the declared ones)
    or the parameter whose value is of the wrong type or out of its range.
    """
    declared = strategy_params(spec)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise StrategyError(
            f"strategy {spec!r}: unknown parameter(s) {unknown}; it accepts {_describe(declared)}"
        )
    values: dict[str, Any] = {}
    for name, text in params.items():
        param = declared[name]
        value = _convert(spec, name, text, param.kind)
        if param.range is not None:
            problem = param.range.violation(value)
            if problem is not None:
                raise StrategyError(f"strategy {spec!r} parameter {name}: {problem}, got {text!r}")
        values[name] = value
    return values


def build_strategy(spec: str, params: dict[str, str]) -> Strategy:
    """An instance of the strategy `spec` names, built with `params` converted to its types."""
    kwargs = convert_params(spec, params)
    try:
        strategy: Strategy = find_strategy(spec)(**kwargs)
    except (ValueError, TypeError) as exc:
        raise StrategyError(f"strategy {spec!r}: {exc}") from exc
    return strategy


def describe(spec: str) -> str:
    """The parameters of strategy `spec` with their types, ranges and defaults, for help texts."""
    return _describe(strategy_params(spec))


def _describe(declared: dict[str, Param]) -> str:
    return ", ".join(param.describe() for param in declared.values())


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
