"""`posbus backtest`: replay market data files through the live engine's actors and report."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from posbus.adapters.cli.command import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    SubParsers,
    UsageError,
    add_command,
)

if TYPE_CHECKING:
    from posbus.adapters.backtest import Backtest, BacktestResult

_DESCRIPTION = """\
Replay market data through the same position, order and risk actors as the
live engine, with a strategy sending the same order intents it would send
live. Only the data source (the files, on a replay clock) and the exchange
(the simulated exchange: fees, slippage, rejects, partial fills and latency
from [exchange] in the config) differ. Risk limits apply exactly as live:
refused orders and risk state changes are reported as risk events.

Data (--data, repeatable; CSV, or Parquet with the 'parquet' extra), told
apart by the header: quote ticks (timestamp, symbol, bid, ask[, bid_size,
ask_size]), trade ticks (timestamp, symbol, price; replayed as a quote with
bid = ask = price) or OHLCV bars (timestamp, symbol, open, high, low, close;
replayed as 4 quotes per bar: open, nearer extreme, other extreme, close).
timestamp: epoch s/ms/us/ns (by size) or ISO 8601 (UTC when naive). Files
are merged by time; each must be sorted. A row with a missing/NaN price or
a crossed quote (bid > ask) is skipped and counted (reported on stderr and
in the summary); any other bad row stops the run with an error naming the
file and row (exit 2).

Orders reach the exchange latency_ns after they are sent and fill against
the quote in effect then; equal timestamps: the order arrives before the
quote. Deterministic: the same data, config, strategy, params and seed give
byte-identical journals and reports; the run prints the sha256 of its journal.

Metrics (--json keys; all from the sampled equity curve in equity.csv):
  trades        round trips closed (flat -> position -> flat, a flip closes one)
  win_rate      winning trades / closed trades; P&L exactly 0 is not a win
                and counts in the denominator; null without trades
  sharpe        mean / stdev (ddof 1) of per-period equity returns
                x sqrt(periods per year), risk-free 0; period and
                annualisation from [backtest] (default daily, 252); returns
                are taken between the equity at each period close (UTC
                multiples of the period), from the start to the end; null
                with < 2 returns; flat equity (stdev 0, mean 0) gives 0
  sortino       the same over the downside deviation
                sqrt(sum(min(r, 0)^2) / (n - 1)); 0 when flat, null with no
                losing period and a positive mean
  max_drawdown  the lowest equity / running peak - 1 (a negative fraction)
  total_return  final equity / starting equity - 1
  fees          every fee paid (exact decimal)
  exposure_time fraction of the run with any position open
and others: final_equity, realized_pnl, fills, orders, risk, journal_sha256...

--report DIR writes equity.csv, trades.csv, summary.json and report.html
(equity and drawdown charts as inline SVG). A progress bar
with ticks/s and ETA shows on a terminal (not with --quiet or --json).

--sweep NAME=V1,V2 (repeatable) runs one backtest per point of the grid,
on --workers local processes or a Dask --scheduler, each seeded from the
base seed and its parameters (the same sweep gives the same results on any
number of workers); it prints the runs ranked by --rank-by, and --out DIR
writes sweep.json, sweep.csv and report.html (heat map, equity curves).
A run that fails is listed with its error (exit 1); the others finish.

--search N runs N backtests whose parameters optuna's TPE sampler (seeded
from --seed) picks to do best by --rank-by, from each --sweep NAME=LOW..HIGH
(an int parameter: whole numbers; a float or Decimal one: any number between),
NAME=LOW..HIGH:STEP (on a grid of STEP) or NAME=V1,V2 (choices). Trials run
in batches of 8 and are told back in trial order: the same search gives the
same runs on any number of workers. Output as a sweep's, runs in trial order.
"""

_EXAMPLES = """\
  posbus backtest --data examples/data/btc_quotes.csv --strategy ma_crossover
  posbus backtest --data examples/data/btc_quotes.csv --strategy mean_reversion \\
      --param window=50 --param entry_z=2.5 --report var/report
  posbus backtest --data examples/data/eth_bars_1h.csv --strategy ma_crossover \\
      --param fast=10 --param slow=40 --param qty=2 --json
  posbus backtest --data ticks.parquet --strategy mypkg.strategies:Breakout --seed 3
  posbus backtest --data examples/data/btc_quotes.csv --strategy mean_reversion \\
      --sweep window=24,48,96 --sweep entry_z=1.5,2 --rank-by sharpe --out var/sweep
  posbus backtest --data examples/data/btc_quotes.csv --strategy mean_reversion \\
      --search 40 --sweep window=24..96 --sweep entry_z=1.0..3.0 --out var/search

built-in strategies: ma_crossover (fast, slow, qty, symbol, allow_short),
mean_reversion (window, entry_z, exit_z, qty, symbol), flip (every, qty, symbol)
"""


def register(subparsers: SubParsers) -> None:
    """Add `posbus backtest`."""
    parser = add_command(
        subparsers,
        "backtest",
        summary="replay market data through the engine with a strategy; metrics and report",
        description=_DESCRIPTION,
        examples=_EXAMPLES,
        handler=run,
    )
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="FILE",
        help="market data file (CSV or Parquet); repeat for several",
    )
    parser.add_argument(
        "--strategy", required=True, metavar="NAME|module:Class", help="the strategy to run"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy parameter; repeat for several",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: embedded)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--report", metavar="DIR", help="write the report files into DIR")
    parser.add_argument("--seed", type=int, help="seed of the simulated exchange ([exchange] seed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep = parser.add_argument_group(
        "sweeps",
        "one backtest per point of a grid over the strategy's parameters, or N picked by "
        "--search, run in parallel",
    )
    sweep.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="values of one strategy parameter to sweep; repeat for a grid "
        "(with --search: LOW..HIGH[:STEP] or choices)",
    )
    sweep.add_argument(
        "--search",
        type=_positive_int,
        metavar="N",
        help="run N backtests picked by optuna's TPE sampler from the --sweep ranges",
    )
    sweep.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="local worker processes (default: the number of CPUs)",
    )
    sweep.add_argument(
        "--scheduler",
        metavar="tcp://HOST:8786",
        help="run on this Dask distributed scheduler instead (the 'sweep' extra)",
    )
    sweep.add_argument(
        "--rank-by",
        default="sharpe",
        metavar="METRIC",
        help="rank runs by sharpe (default), sortino, total_return, max_drawdown, win_rate, "
        "final_equity, realized_pnl or fees (lowest first)",
    )
    sweep.add_argument(
        "--out", metavar="DIR", help="write sweep.json, sweep.csv and report.html into DIR"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Handler of `posbus backtest`."""
    if args.search is not None:
        from posbus.adapters.cli.backtest_sweep import run_search_command

        return run_search_command(args)
    if args.sweep:
        from posbus.adapters.cli.backtest_sweep import run_sweep_command

        return run_sweep_command(args)
    for option, given in (
        ("--workers", args.workers is not None),
        ("--scheduler", args.scheduler is not None),
        ("--out", args.out is not None),
        ("--rank-by", args.rank_by != "sharpe"),
    ):
        if given:
            raise UsageError(f"{option} applies to a sweep: give --sweep NAME=V1,V2")
    from posbus.actors.runtime.inline import ActorFailed
    from posbus.adapters.backtest import Backtest, BacktestError
    from posbus.adapters.backtest_report import write_report
    from posbus.adapters.backtest_summary import summarize
    from posbus.adapters.log_format import configure_logging
    from posbus.adapters.market.market_data_error import MarketDataError

    config, params, strategy, replay = _inputs(args)
    configure_logging(
        config.log.level, config.log.format, file=Path(config.run_dir) / "backtest.log"
    )

    backtest = Backtest(config, strategy)
    show_progress = not args.quiet and not args.json and sys.stdout.isatty()
    started = time.perf_counter()
    try:
        result = _run_with_progress(backtest, replay) if show_progress else backtest.run(replay)
    except MarketDataError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    except (BacktestError, ActorFailed) as exc:
        raise CommandError(str(exc)) from exc
    elapsed = time.perf_counter() - started

    summary = summarize(
        result,
        config.backtest,
        strategy=args.strategy,
        params=params,
        data=list(args.data),
        skipped=replay.skipped.to_dict(),
        seed=config.exchange.seed,
    )
    if replay.skipped.total:
        details = "; ".join(
            f"{reason}: {info['rows']} (first at {info['first']})"
            for reason, info in summary["skipped_rows"].items()
        )
        print(f"posbus: skipped {replay.skipped.total} row(s): {details}", file=sys.stderr)
    if args.report:
        write_report(Path(args.report), result, summary)
    if args.json:
        shown = {k: v for k, v in summary.items() if k != "risk_events"}
        print(json.dumps(shown, indent=2, sort_keys=True))
    else:
        _print_summary(summary, result, elapsed, args.report)
    return EXIT_OK


def _inputs(args: argparse.Namespace) -> tuple[Any, dict[str, str], Any, Any]:
    """(config, params, strategy, replay) from the arguments; bad ones are usage errors."""
    from dataclasses import replace

    from posbus.adapters.backtest_strategy import StrategyError, build_strategy, parse_params
    from posbus.adapters.config import ConfigError, load_config
    from posbus.adapters.market.market_data_error import MarketDataError
    from posbus.adapters.market.replay import MarketReplay

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    if args.seed is not None:
        config = replace(config, exchange=replace(config.exchange, seed=args.seed))
    try:
        params = parse_params(args.param)
        strategy = build_strategy(args.strategy, params)
    except StrategyError as exc:
        raise UsageError(str(exc)) from exc
    try:
        replay = MarketReplay(args.data)
    except MarketDataError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from exc
    return config, params, strategy, replay


def _run_with_progress(backtest: Backtest, replay: Any) -> BacktestResult:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    total = replay.estimated_updates()
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} ticks/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("replay", total=total or None, rate="-")
        started = time.perf_counter()

        def update(done: int) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done, rate=f"{rate:,.0f}")

        result: BacktestResult = backtest.run(replay, on_progress=update)
        return result


def _print_summary(
    summary: dict[str, Any], result: BacktestResult, elapsed: float, report: str | None
) -> None:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f} %"

    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    s = summary
    print(
        f"backtest {s['strategy']['name']}: {s['market_updates']} market updates "
        f"from {s['start']} to {s['end']}"
    )
    print(
        f"equity {s['starting_equity']} -> {s['final_equity']}  "
        f"total return {pct(s['total_return'])}  max drawdown {pct(s['max_drawdown'])}"
    )
    print(
        f"trades {s['trades']}  win rate {pct(s['win_rate'])}  sharpe {num(s['sharpe'])}  "
        f"sortino {num(s['sortino'])}  fees {s['fees']}  exposure {pct(s['exposure_time'])}"
    )
    risk = s["risk"]
    print(
        f"orders {s['orders']}  fills {s['fills']}  risk {risk['state']}, "
        f"{risk['events']} risk events {risk['events_by_kind']}"
    )
    print(f"journal: {s['journal_records']} records, sha256 {s['journal_sha256']}")
    rate = result.updates / elapsed if elapsed > 0 else 0.0
    print(f"ran in {elapsed:.2f} s ({rate:,.0f} ticks/s)")
    if report:
        print(f"report: {Path(report) / 'report.html'}")
