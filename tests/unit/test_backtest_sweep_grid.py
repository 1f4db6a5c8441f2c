"""Sweeps: the grid of runs, the declared parameters it is checked against, and the ranking."""

from __future__ import annotations

import re
from typing import Any

import pytest

from posbus.adapters.backtest_strategy import StrategyError
from posbus.adapters.backtest_sweep import (
    RunOutcome,
    expand_grid,
    parse_sweep,
    rank,
    run_seed,
)


def test_the_grid_is_every_combination_in_declaration_order_values_ascending() -> None:
    # Given out of order on the command line: entry_z before window, values unsorted.
    sweep = parse_sweep(["entry_z=2,1.5", "window=96,24,48"])
    grid = expand_grid("mean_reversion", {"qty": "0.2"}, sweep)
    assert grid == [
        {"qty": "0.2", "window": "24", "entry_z": "1.5"},
        {"qty": "0.2", "window": "24", "entry_z": "2"},
        {"qty": "0.2", "window": "48", "entry_z": "1.5"},
        {"qty": "0.2", "window": "48", "entry_z": "2"},
        {"qty": "0.2", "window": "96", "entry_z": "1.5"},
        {"qty": "0.2", "window": "96", "entry_z": "2"},
    ]


def test_values_are_ordered_by_their_type_not_as_text() -> None:
    grid = expand_grid("mean_reversion", {}, {"window": ["100", "9", "20"]})
    assert [run["window"] for run in grid] == ["9", "20", "100"]


def test_an_unknown_parameter_names_the_declared_ones() -> None:
    with pytest.raises(StrategyError) as caught:
        expand_grid("mean_reversion", {}, {"windw": ["2", "3"]})
    message = str(caught.value)
    assert "unknown parameter(s) ['windw']" in message
    for name in ("window", "entry_z", "exit_z", "qty", "symbol"):
        assert name in message


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ({"window": ["24", "x"]}, "parameter window: expected an integer, got 'x'"),
        ({"window": ["1", "24"]}, "parameter window: must be >= 2, got '1'"),
        ({"qty": ["0.1", "0"]}, "parameter qty: must be > 0, got '0'"),
        ({"entry_z": ["2", "2.0"]}, "--sweep entry_z: '2' and '2.0' are the same value"),
    ],
)
def test_a_bad_value_names_its_parameter(sweep: dict[str, list[str]], expected: str) -> None:
    with pytest.raises(StrategyError, match=re.escape(expected)):
        expand_grid("mean_reversion", {}, sweep)


def test_a_parameter_both_fixed_and_swept_is_refused() -> None:
    with pytest.raises(StrategyError, match=r"\['window'\] given both by --param and --sweep"):
        expand_grid("mean_reversion", {"window": "10"}, {"window": ["20", "30"]})


@pytest.mark.parametrize("item", ["window", "window=", "window=2,,3", "=2"])
def test_a_malformed_sweep_item_is_refused(item: str) -> None:
    with pytest.raises(StrategyError, match="expected NAME=VALUE"):
        parse_sweep([item])


def test_a_sweep_given_twice_is_refused() -> None:
    with pytest.raises(StrategyError, match="--sweep window: given twice"):
        parse_sweep(["window=2,3", "window=4"])


def test_the_run_seed_depends_on_the_base_seed_and_every_parameter_not_their_order() -> None:
    seed = run_seed(7, {"window": "24", "entry_z": "2"})
    assert seed == run_seed(7, {"entry_z": "2", "window": "24"})
    assert seed != run_seed(8, {"window": "24", "entry_z": "2"})
    assert seed != run_seed(7, {"window": "48", "entry_z": "2"})
    assert 0 <= seed < 2**32


def _outcome(index: int, sharpe: float | None, fees: str = "1", error: str | None = None) -> Any:
    summary = None if error else {"sharpe": sharpe, "fees": fees}
    return RunOutcome(index, {"window": str(index)}, 0, summary=summary, error=error)


def test_ranking_puts_the_best_first_then_nulls_then_failures_ties_in_grid_order() -> None:
    outcomes = [
        _outcome(0, 0.5, fees="3"),
        _outcome(1, None, fees="1"),
        _outcome(2, 1.25, fees="2"),
        _outcome(3, None, error="BacktestError: boom"),
        _outcome(4, 0.5, fees="0.5"),
        _outcome(5, -2.0, fees="2"),
    ]
    assert [o.index for o in rank(outcomes, "sharpe")] == [2, 0, 4, 5, 1, 3]
    # fees: lower is better.
    assert [o.index for o in rank(outcomes, "fees")] == [4, 1, 2, 5, 0, 3]


def test_ranking_by_an_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(StrategyError, match=r"--rank-by 'speed': choose one of \[.*'sharpe'"):
        rank([], "speed")
