"""Parameter search: N backtests whose parameters optuna's TPE sampler picks from declared ranges.

`search_space` turns `--sweep` items into the search's axes, checked against
what the strategy declares (`posbus.actors.strategy_params`): `NAME=LOW..HIGH`
is a range (an int parameter: the whole numbers from LOW to HIGH; a float or
Decimal one: any number between them), `NAME=LOW..HIGH:STEP` a range on a
grid of STEP from LOW, and `NAME=V1,V2` a set of choices. Both ends of a
range must lie inside the parameter's declared `Range`, so every sampled
value does too. `run_search` runs the trials with the sweep's runner
(`posbus.adapters.backtest_sweep.open_runner`: local worker processes or a
Dask cluster) and tells optuna each run's `--rank-by` metric, maximised or
minimised as `rank` orders it.

Deterministic whatever the number of workers and the order runs finish in:
the sampler is seeded from the base seed, trials are asked in batches of
`SEARCH_BATCH` (a constant, not the worker count), and a batch's results are
told back in trial-number order once all of it has finished, so optuna sees
the same history whoever ran the runs. Each run is seeded from the base seed
and its parameters as a sweep's runs are (`run_seed`), so it is the single
run `posbus backtest --seed S --param ...` of its parameters. A run that
fails, or whose metric is null, is told to optuna as a failed trial and
listed with the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from posbus.adapters.backtest_strategy import (
    StrategyError,
    convert_params,
    describe,
    strategy_params,
)
from posbus.adapters.backtest_sweep import (
    RANK_METRICS,
    Runner,
    RunOutcome,
    RunSpec,
    expand_grid,
    is_range,
    metric_value,
    run_seed,
)
from posbus.adapters.config import Config

SEARCH_BATCH = 8
"""Trials asked of optuna at once and run in parallel; fixed, so results never depend on workers."""

_NUMERIC = (int, float, Decimal)


@dataclass(frozen=True, slots=True)
class Axis:
    """One searched parameter: an int or float range (its ends' text, a step) or choices."""

    name: str
    kind: str
    """"int", "float" or "choice"."""
    low: str = ""
    high: str = ""
    step: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def continuous(self) -> bool:
        """Whether the axis is a range (its values are sampled, not listed)."""
        return self.kind != "choice"

    def spec(self) -> str:
        """The axis as given on the command line: `24..96`, `1.0..3.0:0.5` or `24,48`."""
        if not self.continuous:
            return ",".join(self.choices)
        return f"{self.low}..{self.high}" + (f":{self.step}" if self.step else "")

    def distribution(self) -> BaseDistribution:
        """The optuna distribution the axis is sampled from."""
        if self.kind == "int":
            step = int(self.step) if self.step else 1
            return IntDistribution(int(self.low), int(self.high), step=step)
        if self.kind == "float":
            step_f = float(self.step) if self.step else None
            return FloatDistribution(float(self.low), float(self.high), step=step_f)
        return CategoricalDistribution(self.choices)

    def text(self, value: Any) -> str:
        """A sampled value as the parameter's text (what `--param NAME=TEXT` would give).

        A float on a step is written exactly, LOW plus a whole number of steps, with
        as many decimal places as the finer of LOW and STEP.
        """
        if self.kind == "float":
            if not self.step:
                return repr(float(value))
            low, step = Decimal(self.low), Decimal(self.step)
            steps = ((Decimal(repr(float(value))) - low) / step).to_integral_value(ROUND_HALF_EVEN)
            places = min(low.as_tuple().exponent, step.as_tuple().exponent, 0)
            return str((low + steps * step).quantize(Decimal(1).scaleb(int(places))))
        return str(value)


def search_space(strategy: str, fixed: dict[str, str], sweep: dict[str, list[str]]) -> list[Axis]:
    """The axes of a search over `sweep` (`parse_sweep`), in the strategy's declaration order.

    Raises StrategyError for a name the strategy does not declare (naming
    those it does), a name both fixed and searched, a range on a parameter
    that is not a number, a range whose ends are of the wrong type, outside
    the declared range or not in order, a step that does not divide it, or
    a search without any range (a grid is a sweep).
    """
    declared = strategy_params(strategy)
    unknown = sorted(set(sweep) - set(declared))
    if unknown:
        accepted = describe(strategy)
        raise StrategyError(
            f"strategy {strategy!r}: unknown parameter(s) {unknown}; it accepts {accepted}"
        )
    both = sorted(set(fixed) & set(sweep))
    if both:
        raise StrategyError(f"parameter(s) {both} given both by --param and --sweep")
    convert_params(strategy, fixed)
    axes: list[Axis] = []
    for name in [n for n in declared if n in sweep]:
        values = sweep[name]
        if not any(is_range(v) for v in values):
            choices = [point[name] for point in expand_grid(strategy, {}, {name: values})]
            axes.append(Axis(name, "choice", choices=tuple(choices)))
            continue
        given = f"--sweep {name}={','.join(values)}"
        if len(values) > 1:
            raise StrategyError(f"{given}: a range is one LOW..HIGH[:STEP], not part of a list")
        kind = declared[name].kind
        if kind not in _NUMERIC:
            raise StrategyError(
                f"{given}: a range needs a number parameter; {name} is a {kind.__name__}"
            )
        axes.append(_range_axis(strategy, name, values[0], int_kind=kind is int))
    if not any(axis.continuous for axis in axes):
        raise StrategyError(
            "--search samples ranges: give at least one --sweep NAME=LOW..HIGH "
            "(lists alone are a grid: drop --search to run every point)"
        )
    return axes


def _range_axis(strategy: str, name: str, text: str, *, int_kind: bool) -> Axis:
    given = f"--sweep {name}={text}"
    low, _, rest = text.partition("..")
    high, colon, step = rest.partition(":")
    low, high, step = low.strip(), high.strip(), step.strip()
    if not low or not high or (colon and not step):
        raise StrategyError(f"{given}: expected NAME=LOW..HIGH or NAME=LOW..HIGH:STEP")
    ends = [convert_params(strategy, {name: end})[name] for end in (low, high)]
    if not all(math.isfinite(end) for end in ends):
        raise StrategyError(f"{given}: LOW and HIGH must be finite numbers")
    if not ends[0] < ends[1]:
        raise StrategyError(f"{given}: LOW must be below HIGH")
    if colon:
        try:
            size = int(step) if int_kind else Decimal(step)
        except (ValueError, InvalidOperation):
            kind = "a whole number" if int_kind else "a number"
            raise StrategyError(f"{given}: STEP must be {kind}, got {step!r}") from None
        if not (size > 0 and math.isfinite(size)):
            raise StrategyError(f"{given}: STEP must be above 0, got {step!r}")
        if (Decimal(high) - Decimal(low)) % Decimal(size) != 0:
            raise StrategyError(f"{given}: HIGH - LOW must be a whole number of STEPs")
    return Axis(name, "int" if int_kind else "float", low, high, step or None)


def run_search(
    strategy: str,
    fixed: dict[str, str],
    axes: Sequence[Axis],
    data: Sequence[str],
    config: Config,
    *,
    runs: int,
    rank_by: str,
    run_batch: Runner,
    on_done: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """`runs` trials of optuna's TPE sampler over `axes`, in batches; outcomes in trial order.

    Each trial is one backtest (`RunSpec`, index = trial number) of `fixed`
    plus the sampled values, seeded from `config`'s seed and its parameters;
    its `rank_by` metric (RANK_METRICS: higher or lower is better) is told
    back to the sampler.
    """
    distributions = {axis.name: axis.distribution() for axis in axes}
    study = optuna.create_study(
        direction="maximize" if RANK_METRICS[rank_by] else "minimize",
        sampler=optuna.samplers.TPESampler(seed=sampler_seed(config.exchange.seed)),
    )
    outcomes: list[RunOutcome] = []
    while len(outcomes) < runs:
        trials = [study.ask(distributions) for _ in range(min(SEARCH_BATCH, runs - len(outcomes)))]
        specs = []
        for trial in trials:
            params = {**fixed, **{a.name: a.text(trial.params[a.name]) for a in axes}}
            specs.append(
                RunSpec(
                    index=trial.number,
                    strategy=strategy,
                    params=params,
                    data=tuple(data),
                    config=config,
                    seed=run_seed(config.exchange.seed, params),
                )
            )
        batch = run_batch(specs, on_done)
        for trial, outcome in zip(trials, batch, strict=True):
            value = metric_value(outcome, rank_by)
            if value is None or not math.isfinite(value):
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, value)
        outcomes.extend(batch)
    return outcomes


def sampler_seed(base_seed: int) -> int:
    """The TPE sampler's seed: the base seed, brought into numpy's 0 .. 2**32 - 1."""
    return base_seed % 2**32


def describe_search(axes: Sequence[Axis], runs: int, base_seed: int) -> dict[str, Any]:
    """The search's settings for its report: space, runs, batch, sampler and its seed."""
    return {
        "runs": runs,
        "batch": SEARCH_BATCH,
        "space": {axis.name: axis.spec() for axis in axes},
        "sampler": "TPESampler",
        "sampler_seed": sampler_seed(base_seed),
        "optuna": optuna.__version__,
    }
