"""Sweep and search throughput: 16 backtests on 1 and 2 local processes and on a Dask LocalCluster.

    python bench/bench_sweep.py                    # 16 runs of 40,000 ticks, 3 rounds
    python bench/bench_sweep.py --ticks 10000 --rounds 1

The sweep is `mean_reversion` over window x entry_z (4 x 4) on seeded BTC/USDT
quotes. Each round times, from submission to the last outcome, the same 16
runs on: 1 local worker process, 2 local worker processes (a fresh pool each
time, its start-up included; its workers are forked from the fork server,
which a CLI run starts once, here by an untimed warm-up sweep) and a
`distributed.LocalCluster` of 2 worker processes with 1 thread each (started
once, before the rounds, and warmed by one untimed sweep so its workers have
imported posbus). Each round then times a search (`--search`, optuna's TPE
sampler) of as many runs over window in 10..200 and entry_z in 1.0..3.0 on
the same three modes, its pool or client opened inside the timing. It
checks that every mode gave the same outcomes (the sweep's, the search's),
then prints the median wall time of each, runs/s and the speed-ups against
1 worker. The engine's warnings go to a log file in the temporary directory.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

SYMBOL = "BTC/USDT"
T0 = 1_704_067_200_000_000_000
STEP_NS = 1_000_000_000
WINDOWS = ["20", "40", "80", "160"]
ENTRY_Z = ["1.5", "2", "2.5", "3"]


def write_ticks(path: Path, n: int, seed: int) -> None:
    """n BTC/USDT quotes: a seeded random walk, 1 USDT spread, one a second."""
    rng = random.Random(seed)
    mid = 60_000.0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("timestamp,symbol,bid,ask\n")
        for i in range(n):
            mid *= 1 + rng.gauss(0.0, 0.0005)
            fh.write(f"{T0 + i * STEP_NS},{SYMBOL},{mid - 0.5:.2f},{mid + 0.5:.2f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import distributed

    from posbus.adapters.backtest_search import run_search, search_space
    from posbus.adapters.backtest_sweep import RunOutcome, open_runner, plan, run_sweep
    from posbus.adapters.config import Config

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ticks.csv"
        write_ticks(path, args.ticks, args.seed)
        log = Path(tmp) / "bench.log"
        config = Config(run_dir=Path(tmp) / "var")
        specs = plan(
            "mean_reversion",
            {"qty": "0.1"},
            {"window": WINDOWS, "entry_z": ENTRY_Z},
            [str(path)],
            config,
        )
        print(f"{len(specs)} backtests of {args.ticks:,} quote ticks each", flush=True)
        axes = search_space(
            "mean_reversion", {"qty": "0.1"}, {"window": ["10..200"], "entry_z": ["1.0..3.0"]}
        )

        def search(workers: int, scheduler: str | None) -> list[RunOutcome]:
            with open_runner(workers=workers, scheduler=scheduler, log_file=log) as run_batch:
                return run_search(
                    "mean_reversion",
                    {"qty": "0.1"},
                    axes,
                    [str(path)],
                    config,
                    runs=len(specs),
                    rank_by="sharpe",
                    run_batch=run_batch,
                )

        times: dict[str, list[float]] = {"1 worker": [], "2 workers": [], "dask 2x1": []}
        search_times: dict[str, list[float]] = {mode: [] for mode in times}
        with distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster:
            address = str(cluster.scheduler_address)
            with distributed.Client(address) as client:
                client.run(logging.disable, logging.WARNING)
            run_sweep(specs[:2], workers=2, log_file=log)  # warm-up: starts the fork server
            reference = run_sweep(specs, workers=1, scheduler=address)  # warm-up, untimed
            searched: list[RunOutcome] | None = None
            for round_no in range(1, args.rounds + 1):
                for mode, taken in times.items():
                    started = time.perf_counter()
                    if mode == "dask 2x1":
                        outcomes = run_sweep(specs, workers=2, scheduler=address)
                    else:
                        outcomes = run_sweep(specs, workers=int(mode[0]), log_file=log)
                    elapsed = time.perf_counter() - started
                    if outcomes != reference:
                        raise SystemExit(f"{mode}: outcomes differ from the reference sweep")
                    if any(outcome.error for outcome in outcomes):
                        raise SystemExit(f"{mode}: a run failed: {outcomes}")
                    taken.append(elapsed)
                    print(
                        f"round {round_no} {mode:<10} {elapsed:7.2f} s  "
                        f"{len(specs) / elapsed:5.2f} runs/s",
                        flush=True,
                    )
                for mode, taken in search_times.items():
                    started = time.perf_counter()
                    dask = mode == "dask 2x1"
                    outcomes = search(2 if dask else int(mode[0]), address if dask else None)
                    elapsed = time.perf_counter() - started
                    searched = searched or outcomes
                    if outcomes != searched:
                        raise SystemExit(f"search {mode}: outcomes differ from the first search")
                    if any(outcome.error for outcome in outcomes):
                        raise SystemExit(f"search {mode}: a run failed: {outcomes}")
                    taken.append(elapsed)
                    print(
                        f"round {round_no} search {mode:<10} {elapsed:7.2f} s  "
                        f"{len(specs) / elapsed:5.2f} runs/s",
                        flush=True,
                    )

    print(
        f"\nmedians of {args.rounds} round(s), {len(specs)} runs, outcomes identical in every mode"
    )
    for kind, measured in (("sweep", times), ("search", search_times)):
        base = statistics.median(measured["1 worker"])
        for mode, values in measured.items():
            wall = statistics.median(values)
            print(
                f"{kind:<6} {mode:<10} {wall:7.2f} s  {len(specs) / wall:5.2f} runs/s  "
                f"speed-up {base / wall:4.2f}x"
            )


if __name__ == "__main__":
    main()
