"""Parameter sweeps: one backtest per point of a grid over a strategy's parameters, in parallel.

`expand_grid` turns `--sweep name=v1,v2` lists into the runs' parameters,
checked against what the strategy declares (`posbus.actors.strategy_params`):
an unknown name is refused with the declared ones, a bad value with its
parameter's name. `run_sweep` runs them on local worker processes
(`concurrent.futures`, forked from a fork server) or on a Dask distributed cluster (the
`sweep` extra), `open_runner` keeps either for several batches (a search,
`posbus.adapters.backtest_search`), and `rank` orders the outcomes by a metric.

Deterministic whatever the number of workers and the order runs finish in:
each run is numbered by its place in the grid (parameters in the strategy's
declaration order, each one's values ascending) and seeded from the base
seed and its parameters (`run_seed`), and the outcomes are returned in grid
order. Each run is the single-run path (`posbus backtest --seed S --param
...` gives the same summary, byte for byte). A run that fails is reported
with its error; the others go on.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from posbus.adapters.backtest import Backtest
from posbus.adapters.backtest_strategy import (
    StrategyError,
    build_strategy,
    convert_params,
    strategy_params,
)
from posbus.adapters.backtest_summary import money, summarize
from posbus.adapters.config import Config
from posbus.adapters.log_format import configure_logging
from posbus.adapters.market.replay import MarketReplay

_log = logging.getLogger(__name__)

RANK_METRICS: dict[str, bool] = {
    "sharpe": True,
    "sortino": True,
    "total_return": True,
    "max_drawdown": True,
    "win_rate": True,
    "final_equity": True,
    "realized_pnl": True,
    "fees": False,
}
"""The metrics `rank` orders by, and whether higher is better (max_drawdown is negative)."""


def parse_sweep(items: Sequence[str]) -> dict[str, list[str]]:
    """`["name=v1,v2", ...]` as {name: [values]}; StrategyError for a bad item or a repeat."""
    sweep: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        listed = [v.strip() for v in values.split(",")]
        if not sep or not name or not all(listed):
            raise StrategyError(f"--sweep {item!r}: expected NAME=VALUE[,VALUE...]")
        if name in sweep:
            raise StrategyError(f"--sweep {name}: given twice")
        sweep[name] = listed
    return sweep


def is_range(text: str) -> bool:
    """Whether a `--sweep` value is a search's range (`LOW..HIGH[:STEP]`) rather than one value."""
    return ".." in text


def expand_grid(
    strategy: str, fixed: dict[str, str], sweep: dict[str, list[str]]
) -> list[dict[str, str]]:
    """Every run's parameters (`fixed` plus one value of each swept one), in grid order.

    Grid order: the swept parameters in the strategy's declaration order, the
    last one varying fastest, each one's values ascending. Raises
    StrategyError for a name the strategy does not declare (naming those it
    does), a name both fixed and swept, a value of the wrong type or out of
    range, or a value listed twice.
    """
    declared = strategy_params(strategy)
    both = sorted(set(fixed) & set(sweep))
    if both:
        raise StrategyError(f"parameter(s) {both} given both by --param and --sweep")
    convert_params(strategy, fixed)
    axes: list[list[tuple[str, str]]] = []
    for name in [n for n in declared if n in sweep] + sorted(set(sweep) - set(declared)):
        typed = [(convert_params(strategy, {name: text})[name], text) for text in sweep[name]]
        typed.sort(key=lambda pair: pair[0])
        for (a, text_a), (b, text_b) in itertools.pairwise(typed):
            if a == b:
                raise StrategyError(f"--sweep {name}: {text_a!r} and {text_b!r} are the same value")
        axes.append([(name, text) for _, text in typed])
    return [{**fixed, **dict(point)} for point in itertools.product(*axes)]


def run_seed(base_seed: int, params: dict[str, str]) -> int:
    """The exchange seed of the run with `params`: a 32-bit hash of the base seed and them."""
    text = "\n".join([str(base_seed), *(f"{k}={params[k]}" for k in sorted(params))])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run of a sweep: everything a worker needs, picklable.

    The worker opens the `data` files as named (a Dask worker: relative to
    its own working directory), so the summary names them as a single run does.
    """

    index: int
    strategy: str
    params: dict[str, str]
    data: tuple[str, ...]
    config: Config
    seed: int


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one run gave: its summary (without the risk event list) and equity, or its error."""

    index: int
    params: dict[str, str]
    seed: int
    summary: dict[str, Any] | None = None
    equity: list[tuple[int, str]] = field(default_factory=list)
    error: str | None = None


def plan(
    strategy: str,
    fixed: dict[str, str],
    sweep: dict[str, list[str]],
    data: Sequence[str],
    config: Config,
) -> list[RunSpec]:
    """The runs of the sweep in grid order, each seeded from `config`'s seed and its params."""
    return [
        RunSpec(
            index=i,
            strategy=strategy,
            params=params,
            data=tuple(data),
            config=config,
            seed=run_seed(config.exchange.seed, params),
        )
        for i, params in enumerate(expand_grid(strategy, fixed, sweep))
    ]


def run_one(spec: RunSpec) -> RunOutcome:
    """Run one backtest of the sweep; runs in a worker process (local or Dask).

    The single-run path of `posbus backtest`: the same config with the run's
    seed, the strategy built from the text parameters, the same summary. Any
    error is returned in the outcome: this is a process boundary.
    """
    config = replace(spec.config, exchange=replace(spec.config.exchange, seed=spec.seed))
    try:
        strategy = build_strategy(spec.strategy, spec.params)
        replay = MarketReplay(list(spec.data))
        result = Backtest(config, strategy).run(replay)
        summary = summarize(
            result,
            config.backtest,
            strategy=spec.strategy,
            params=spec.params,
            data=list(spec.data),
            skipped=replay.skipped.to_dict(),
            seed=spec.seed,
        )
    except Exception as exc:  # noqa: BLE001 - process boundary: the run failed, the sweep goes on
        _log.warning("sweep run %d %s failed: %r", spec.index, spec.params, exc)
        return RunOutcome(spec.index, spec.params, spec.seed, error=_error_text(exc))
    del summary["risk_events"]
    equity = [(ts, money(value)) for ts, value in result.equity]
    return RunOutcome(spec.index, spec.params, spec.seed, summary=summary, equity=equity)


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class SweepError(StrategyError):
    """The sweep could not be run at all (no scheduler, the `sweep` extra missing)."""


Runner = Callable[[Sequence[RunSpec], Callable[[RunOutcome], None] | None], list[RunOutcome]]
"""Runs a batch of specs, calling `on_done` as each finishes; the outcomes in index order."""


def run_sweep(
    specs: Sequence[RunSpec],
    *,
    workers: int,
    scheduler: str | None = None,
    on_done: Callable[[RunOutcome], None] | None = None,
    log_file: Path | None = None,
    log_level: str = "INFO",
    log_format: str = "json",
) -> list[RunOutcome]:
    """Run every spec, on `workers` local processes or the Dask `scheduler`; outcomes in grid order.

    `on_done(outcome)` is called in this process as each run finishes (in
    completion order). Local workers log to `log_file` as a single run does.
    """
    if not specs:
        return []
    with open_runner(
        workers=min(workers, len(specs)),
        scheduler=scheduler,
        log_file=log_file,
        log_level=log_level,
        log_format=log_format,
    ) as run:
        return run(specs, on_done)


@contextmanager
def open_runner(
    *,
    workers: int,
    scheduler: str | None = None,
    log_file: Path | None = None,
    log_level: str = "INFO",
    log_format: str = "json",
) -> Iterator[Runner]:
    """`workers` local processes or a client of the Dask `scheduler`, kept for several batches.

    Local workers log to `log_file` as a single run does. Raises SweepError
    when the scheduler cannot be reached or Dask is not installed.
    """
    if scheduler is not None:
        with _dask_client(scheduler) as client:
            yield partial(_run_on_dask, client)
        return
    # Not fork: the parent may run threads (the progress bar) a fork would copy mid-step. A fork
    # server is a fresh process that imports the engine once; each worker is forked from it.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(
        max_workers=max(1, workers),
        mp_context=context,
        initializer=_init_worker,
        initargs=(log_file, log_level, log_format),
    ) as pool:
        yield partial(_run_on_processes, pool)


def _run_on_processes(
    pool: ProcessPoolExecutor,
    specs: Sequence[RunSpec],
    on_done: Callable[[RunOutcome], None] | None,
) -> list[RunOutcome]:
    outcomes: list[RunOutcome] = []
    futures = [pool.submit(run_one, spec) for spec in specs]
    try:
        for future in as_completed(futures):
            outcome = future.result()
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
    except BrokenProcessPool as exc:
        raise SweepError(f"a worker process died, the sweep stopped: {exc}") from exc
    except BaseException:  # Ctrl-C: do not start the runs still queued
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return sorted(outcomes, key=lambda outcome: outcome.index)


def _init_worker(log_file: Path | None, level: str, fmt: str) -> None:
    if log_file is not None:
        configure_logging(level, fmt, file=log_file)


@contextmanager
def _dask_client(scheduler: str) -> Iterator[Any]:
    try:
        import distributed  # noqa: PLC0415 - the optional 'sweep' extra, only with --scheduler
    except ImportError as exc:
        raise SweepError(
            "--scheduler needs Dask's distributed scheduler: pip install 'posbus[sweep]'"
        ) from exc
    try:
        client = distributed.Client(scheduler, timeout=10, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    with client:
        yield client


def _run_on_dask(
    client: Any, specs: Sequence[RunSpec], on_done: Callable[[RunOutcome], None] | None
) -> list[RunOutcome]:
    import distributed  # noqa: PLC0415 - imported by _dask_client already

    outcomes: list[RunOutcome] = []
    futures = [client.submit(run_one, spec, pure=False) for spec in specs]
    try:
        for future in distributed.as_completed(futures, loop=client.loop):
            outcome: RunOutcome = future.result()
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome)
    except BaseException:  # Ctrl-C or a lost worker: take the runs back from the cluster
        client.cancel(futures)
        raise
    return sorted(outcomes, key=lambda outcome: outcome.index)


def rank(outcomes: Sequence[RunOutcome], metric: str) -> list[RunOutcome]:
    """`outcomes` best first by `metric` (RANK_METRICS); null values, then failed runs, last.

    Ties keep grid order.
    """
    if metric not in RANK_METRICS:
        raise StrategyError(f"--rank-by {metric!r}: choose one of {sorted(RANK_METRICS)}")
    higher_is_better = RANK_METRICS[metric]

    def key(outcome: RunOutcome) -> tuple[int, Decimal, int]:
        value = None if outcome.summary is None else outcome.summary.get(metric)
        if value is None:
            return (1 if outcome.summary is not None else 2, Decimal(0), outcome.index)
        number = Decimal(str(value))
        return (0, -number if higher_is_better else number, outcome.index)

    return sorted(outcomes, key=key)


def metric_value(outcome: RunOutcome, metric: str) -> float | None:
    """`metric` of a run as a float (for colours and charts), None when null or failed."""
    if outcome.summary is None:
        return None
    value = outcome.summary.get(metric)
    return None if value is None else float(value)
