"""Searches: the space parsed from `--sweep` items, sampled values as text, and the trial loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from posbus.adapters.backtest_search import Axis, run_search, search_space
from posbus.adapters.backtest_strategy import StrategyError
from posbus.adapters.backtest_sweep import RunOutcome, RunSpec, parse_sweep, run_seed
from posbus.adapters.config import Config


def test_the_axes_follow_the_declaration_order_with_their_distributions() -> None:
    sweep = parse_sweep(["exit_z=0.5,0", "entry_z=1.0..3.0:0.25", "window=24..96"])
    axes = search_space("mean_reversion", {"qty": "2"}, sweep)
    assert [(a.name, a.kind, a.spec()) for a in axes] == [
        ("window", "int", "24..96"),
        ("entry_z", "float", "1.0..3.0:0.25"),
        ("exit_z", "choice", "0,0.5"),
    ]
    assert axes[0].distribution() == IntDistribution(24, 96)
    assert axes[1].distribution() == FloatDistribution(1.0, 3.0, step=0.25)
    assert axes[2].distribution() == CategoricalDistribution(("0", "0.5"))


def test_a_float_on_a_step_is_written_exactly_with_the_finer_places() -> None:
    axis = Axis("entry_z", "float", "1.0", "3.0", "0.25")
    assert [axis.text(v) for v in (1.0, 1.2500000000000002, 2.0, 3.0)] == [
        "1.00",
        "1.25",
        "2.00",
        "3.00",
    ]
    assert Axis("entry_z", "float", "1", "3").text(2.5) == "2.5"
    assert Axis("window", "int", "2", "9").text(4) == "4"


@pytest.mark.parametrize(
    ("items", "named"),
    [
        (["window=24,48"], "lists alone are a grid"),
        (["window=24..96,100"], "not part of a list"),
        (["window=96..24"], "LOW must be below HIGH"),
        (["entry_z=1..3:0.7"], "a whole number of STEPs"),
        (["entry_z=1..3:-1"], "STEP must be above 0"),
        (["window=2..10:x"], "STEP must be a whole number"),
        (["symbol=a..z"], "symbol is a str"),
        (["window=1..10"], "parameter window: must be >= 2, got '1'"),
        (["entry_z=1..inf"], "a finite number"),
    ],
)
def test_a_bad_space_is_refused_naming_what_is_wrong(items: list[str], named: str) -> None:
    with pytest.raises(StrategyError) as caught:
        search_space("mean_reversion", {}, parse_sweep(items))
    assert named in str(caught.value)


def fake_runner(
    score: Callable[[dict[str, str]], Decimal | None],
) -> Callable[[Sequence[RunSpec], object], list[RunOutcome]]:
    """Runs nothing: each spec's outcome has `score(params)` as its total_return (None: failed)."""

    def run(specs: Sequence[RunSpec], _on_done: object) -> list[RunOutcome]:
        outcomes = []
        for spec in reversed(specs):  # finishing in another order than asked
            value = score(spec.params)
            if value is None:
                outcomes.append(RunOutcome(spec.index, spec.params, spec.seed, error="boom"))
            else:
                summary = {"total_return": str(value)}
                outcomes.append(RunOutcome(spec.index, spec.params, spec.seed, summary=summary))
        return sorted(outcomes, key=lambda o: o.index)

    return run


def search(seed: int, score: Callable[[dict[str, str]], Decimal | None]) -> list[RunOutcome]:
    """20 trials over window in 2..50 with the fake runner, base seed `seed`."""
    axes = search_space("mean_reversion", {"qty": "2"}, parse_sweep(["window=2..50"]))
    config = Config(run_dir=Path("unused"))
    config = replace(config, exchange=replace(config.exchange, seed=seed))
    return run_search(
        "mean_reversion",
        {"qty": "2"},
        axes,
        ["data.csv"],
        config,
        runs=20,
        rank_by="total_return",
        run_batch=fake_runner(score),
    )


def closeness_to_30(params: dict[str, str]) -> Decimal:
    return -abs(Decimal(params["window"]) - 30)


def test_trials_are_numbered_in_order_each_seeded_from_the_base_seed_and_its_params() -> None:
    outcomes = search(5, closeness_to_30)
    assert [o.index for o in outcomes] == list(range(20))
    for outcome in outcomes:
        assert outcome.params["qty"] == "2"
        assert 2 <= int(outcome.params["window"]) <= 50
        assert outcome.seed == run_seed(5, outcome.params)


def test_the_same_seed_samples_the_same_runs_and_another_seed_others() -> None:
    first = [o.params for o in search(5, closeness_to_30)]
    assert [o.params for o in search(5, closeness_to_30)] == first
    assert [o.params for o in search(6, closeness_to_30)] != first


def test_the_results_told_back_steer_the_trials_after_the_random_ones() -> None:
    # TPE's first 10 trials are random; from the 11th it samples from what it was told.
    near_30 = [o.params for o in search(5, closeness_to_30)]
    near_10 = [o.params for o in search(5, lambda p: -abs(Decimal(p["window"]) - 10))]
    assert near_10[:10] == near_30[:10]
    assert near_10[10:] != near_30[10:]


def test_failed_runs_are_told_as_failed_trials_and_the_search_goes_on() -> None:
    def odd_fails(params: dict[str, str]) -> Decimal | None:
        return None if int(params["window"]) % 2 else closeness_to_30(params)

    outcomes = search(5, odd_fails)
    assert len(outcomes) == 20
    assert any(o.error for o in outcomes)
    assert any(o.summary for o in outcomes)
