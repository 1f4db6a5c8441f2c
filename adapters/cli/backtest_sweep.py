"""`posbus backtest --sweep` and `--search`: backtests in parallel, ranked, with a report.

A sweep runs every point of a grid; a search, N runs whose parameters optuna
samples from ranges (`posbus.adapters.backtest_search`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posbus.adapters.cli.command import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError, UsageError

if TYPE_CHECKING:
    from posbus.adapters.backtest_sweep import RunOutcome
    from posbus.adapters.config import Config


def run_sweep_command(args: argparse.Namespace) -> int:
    """Run the sweep `args` describe; exit 1 when a run failed (every run is still reported)."""
    from posbus.adapters.backtest_strategy import StrategyError, parse_params, strategy_params
    from posbus.adapters.backtest_sweep import SweepError, is_range, parse_sweep, plan, run_sweep

    config = _config(args)
    try:
        sweep = parse_sweep(args.sweep)
        for name, values in sweep.items():
            if any(is_range(value) for value in values):
                raise StrategyError(
                    f"--sweep {name}={','.join(values)} is a range: ranges are sampled by "
                    "--search N (N runs); a sweep takes NAME=V1,V2"
                )
        specs = plan(args.strategy, parse_params(args.param), sweep, args.data, config)
        swept = [name for name in strategy_params(args.strategy) if name in sweep]
    except StrategyError as exc:
        raise UsageError(str(exc)) from exc
    log_file = _open_data_and_log(args, config)
    workers = args.workers or _cpu_count()
    started = time.perf_counter()
    with _progress("sweep", len(specs), _shows_progress(args)) as on_done:
        try:
            outcomes = run_sweep(
                specs,
                workers=workers,
                scheduler=args.scheduler,
                on_done=on_done,
                log_file=log_file,
                log_level=config.log.level,
                log_format=config.log.format,
            )
        except SweepError as exc:
            raise CommandError(str(exc)) from exc
    elapsed = time.perf_counter() - started

    return _report(
        args,
        outcomes,
        swept=swept,
        workers=workers,
        elapsed=elapsed,
        base_seed=config.exchange.seed,
    )


def run_search_command(args: argparse.Namespace) -> int:
    """Run the search `args` describe (`--search N`); exit 1 when a run failed."""
    import importlib.util

    from posbus.adapters.backtest_strategy import StrategyError, parse_params
    from posbus.adapters.backtest_sweep import SweepError, open_runner, parse_sweep

    if not args.sweep:
        raise UsageError(
            "--search N samples N runs from ranges: give at least one --sweep NAME=LOW..HIGH "
            "(e.g. --sweep window=24..96 --sweep entry_z=1.0..3.0)"
        )
    if importlib.util.find_spec("optuna") is None:
        raise CommandError("--search needs optuna: pip install 'posbus[sweep]'")
    from posbus.adapters.backtest_search import (
        SEARCH_BATCH,
        describe_search,
        run_search,
        search_space,
    )

    config = _config(args)
    try:
        fixed = parse_params(args.param)
        axes = search_space(args.strategy, fixed, parse_sweep(args.sweep))
    except StrategyError as exc:
        raise UsageError(str(exc)) from exc
    log_file = _open_data_and_log(args, config)
    _log_optuna_to_the_run_log()
    workers = min(args.workers or _cpu_count(), SEARCH_BATCH, args.search)
    started = time.perf_counter()
    with _progress("search", args.search, _shows_progress(args)) as on_done:
        try:
            with open_runner(
                workers=workers,
                scheduler=args.scheduler,
                log_file=log_file,
                log_level=config.log.level,
                log_format=config.log.format,
            ) as run_batch:
                outcomes = run_search(
                    args.strategy,
                    fixed,
                    axes,
                    args.data,
                    config,
                    runs=args.search,
                    rank_by=args.rank_by,
                    run_batch=run_batch,
                    on_done=on_done,
                )
        except SweepError as exc:
            raise CommandError(str(exc)) from exc
    elapsed = time.perf_counter() - started

    return _report(
        args,
        outcomes,
        swept=[axis.name for axis in axes],
        workers=workers,
        elapsed=elapsed,
        base_seed=config.exchange.seed,
        search=describe_search(axes, args.search, config.exchange.seed),
    )


def _config(args: argparse.Namespace) -> Config:
    """The configuration with `--seed`, after the checks of options a sweep or search refuses."""
    from posbus.adapters.backtest_sweep import RANK_METRICS
    from posbus.adapters.config import ConfigError, load_config

    if args.report:
        raise UsageError(
            "--report writes one run's files; a sweep or search writes its report with --out DIR"
        )
    if args.rank_by not in RANK_METRICS:
        raise UsageError(f"--rank-by {args.rank_by!r}: choose one of {', '.join(RANK_METRICS)}")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    if args.seed is not None:
        config = replace(config, exchange=replace(config.exchange, seed=args.seed))
    return config


def _open_data_and_log(args: argparse.Namespace, config: Config) -> Path:
    """Check every data file (exit 2 on a bad one) before any run; log to the run's log file."""
    from posbus.adapters.log_format import configure_logging
    from posbus.adapters.market.market_data_error import MarketDataError
    from posbus.adapters.market.replay import MarketReplay

    try:
        MarketReplay(args.data)  # opens every file and checks its header, before any run
    except MarketDataError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    log_file = Path(config.run_dir) / "backtest.log"
    configure_logging(config.log.level, config.log.format, file=log_file)
    return log_file


def _log_optuna_to_the_run_log() -> None:
    """optuna's warnings (a failed trial) to the run's log file rather than stderr."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def _shows_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and not args.json and sys.stderr.isatty()


def _report(
    args: argparse.Namespace,
    outcomes: list[RunOutcome],
    *,
    swept: list[str],
    workers: int,
    elapsed: float,
    base_seed: int,
    search: dict[str, Any] | None = None,
) -> int:
    """Rank, print (table or JSON) and write the files of `--out`; the exit code."""
    from posbus.adapters import backtest_sweep_report as report
    from posbus.adapters.backtest_sweep import rank

    ranked = rank(outcomes, args.rank_by)
    doc = report.document(
        outcomes,
        ranked,
        strategy=args.strategy,
        data=args.data,
        swept=swept,
        rank_by=args.rank_by,
        base_seed=base_seed,
        search=search,
    )
    if args.out:
        report.write(
            Path(args.out), doc, outcomes=outcomes, ranked=ranked, swept=swept, rank_by=args.rank_by
        )
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        header, rows = report.table(ranked, swept, args.rank_by)
        print(report.format_table(header, rows))
        where = f"on {args.scheduler}" if args.scheduler else f"on {workers} worker process(es)"
        print(
            f"{len(outcomes)} runs ({doc['runs_failed']} failed) {where} in {elapsed:.2f} s, "
            f"ranked by {args.rank_by}"
        )
        if args.out:
            print(f"report: {Path(args.out) / 'report.html'}")
    return EXIT_FAILURE if doc["runs_failed"] else EXIT_OK


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


@contextmanager
def _progress(label: str, total: int, show: bool) -> Iterator[Callable[[RunOutcome], None] | None]:
    """A progress bar on stderr (runs done, runs/s, ETA) and its callback; None when not shown."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs  {task.fields[rate]} runs/s  {task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total, rate="-", failed=0)
        started = time.perf_counter()
        done = failed = 0

        def on_done(outcome: RunOutcome) -> None:
            nonlocal done, failed
            done += 1
            failed += outcome.error is not None
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done, rate=f"{rate:.2f}", failed=failed)

        yield on_done
