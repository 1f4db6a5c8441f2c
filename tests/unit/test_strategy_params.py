"""A strategy's parameters: its constructor's signature, with the ranges its annotations declare."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

import pytest

from posbus.actors.strategies.mean_reversion import MeanReversion
from posbus.actors.strategy_params import Range, declared_params
from posbus.adapters.backtest_strategy import StrategyError, build_strategy


def test_a_range_names_its_bounds_and_says_why_a_value_is_outside() -> None:
    bounds = Range(gt=0, le=1)
    assert str(bounds) == "> 0 and <= 1"
    assert bounds.violation(Decimal("0.5")) is None
    assert bounds.violation(1) is None
    assert bounds.violation(0) == "must be > 0 and <= 1"
    assert bounds.violation(Decimal("1.01")) == "must be > 0 and <= 1"
    assert str(Range()) == "any value"


def test_the_declaration_is_the_constructors_signature_with_its_ranges() -> None:
    declared = declared_params(MeanReversion)
    assert list(declared) == ["window", "entry_z", "exit_z", "qty", "symbol"]
    assert declared["window"].kind is int
    assert declared["window"].default == 100
    assert declared["window"].range == Range(ge=2)
    assert declared["entry_z"].kind is Decimal
    assert declared["symbol"].range is None
    assert declared["window"].describe() == "window (int, >= 2, default 100)"


def test_the_constructor_checks_the_declared_ranges_too() -> None:
    with pytest.raises(ValueError, match="window must be >= 2, got 1"):
        MeanReversion(window=1)


class Custom:
    """A user strategy: a bounded float and a plain int, no defaults for one."""

    def __init__(self, level: Annotated[float, Range(gt=0, le=1)], count: int = 3) -> None:
        self.level = level
        self.count = count

    def on_start(self, context: Any) -> None: ...

    def on_market(self, update: Any) -> list[Any]:
        return []

    def on_fill(self, fill: Any) -> list[Any]:
        return []


def test_a_user_strategys_annotated_range_is_checked_by_the_single_run_path() -> None:
    spec = f"{__name__}:Custom"
    assert build_strategy(spec, {"level": "0.5"}).level == 0.5  # type: ignore[attr-defined]
    with pytest.raises(StrategyError, match=re.escape("level: must be > 0 and <= 1, got '1.5'")):
        build_strategy(spec, {"level": "1.5"})
