"""`posbus backtest --sweep`: each run is the single run, whatever runs it and in what order.

The sweep runs as `posbus backtest --sweep ... --json` processes: on 1 and on
2 local worker processes, and on a real Dask cluster (`distributed.LocalCluster`
with 2 worker processes, started here). Each run's summary is compared with
the single-run path, `posbus backtest --seed S --param ... --json`, run alone
in its own process with the run's parameters and seed. Short data (the SOL
trades sample, 2,880 rows) keeps each run under a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import distributed
import pytest

DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "sol_trades.csv"
SWEEP = ("--sweep", "window=24,48", "--sweep", "entry_z=1.5,2")
STRATEGY = ("--data", str(DATA), "--strategy", "mean_reversion", "--param", "qty=2")


def posbus(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`posbus backtest ARGS` in a fresh process, with a config whose run_dir is under tmp_path."""
    config = tmp_path / "config.toml"
    if not config.exists():
        config.write_text(
            f'run_dir = "{tmp_path / "var"}"\n[exchange]\nlatency_ns = 2000000\n',
            encoding="utf-8",
        )
    command = [
        sys.executable,
        "-m",
        "posbus.adapters.cli.main",
        "backtest",
        "--config",
        str(config),
        *args,
    ]
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    return subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=240
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sweep")


@pytest.fixture(scope="module")
def one_worker(workdir: Path) -> subprocess.CompletedProcess[str]:
    out = str(workdir / "out1")
    done = posbus(workdir, *STRATEGY, *SWEEP, "--workers", "1", "--json", "--out", out)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def two_workers(workdir: Path) -> subprocess.CompletedProcess[str]:
    out = str(workdir / "out2")
    done = posbus(workdir, *STRATEGY, *SWEEP, "--workers", "2", "--json", "--out", out)
    assert done.returncode == 0, done.stderr
    return done


def test_a_sweep_runs_every_point_of_the_grid_in_grid_order(
    one_worker: subprocess.CompletedProcess[str],
) -> None:
    doc = json.loads(one_worker.stdout)
    assert [run["params"] for run in doc["runs"]] == [
        {"entry_z": "1.5", "qty": "2", "window": "24"},
        {"entry_z": "2", "qty": "2", "window": "24"},
        {"entry_z": "1.5", "qty": "2", "window": "48"},
        {"entry_z": "2", "qty": "2", "window": "48"},
    ]
    assert doc["runs_failed"] == 0
    assert all(run["summary"]["trades"] > 0 for run in doc["runs"])
    # Different parameters trade differently: the runs are not one run four times.
    assert len({run["summary"]["journal_sha256"] for run in doc["runs"]}) == 4


def test_one_and_two_workers_print_the_same_bytes_and_write_the_same_files(
    workdir: Path,
    one_worker: subprocess.CompletedProcess[str],
    two_workers: subprocess.CompletedProcess[str],
) -> None:
    assert one_worker.stdout == two_workers.stdout
    for name in ("sweep.json", "sweep.csv", "report.html"):
        assert (workdir / "out1" / name).read_bytes() == (workdir / "out2" / name).read_bytes()


def test_each_run_equals_the_single_run_with_its_parameters_and_seed(
    workdir: Path, two_workers: subprocess.CompletedProcess[str]
) -> None:
    for run in json.loads(two_workers.stdout)["runs"]:
        params = [
            arg for name, value in run["params"].items() for arg in ("--param", f"{name}={value}")
        ]
        alone = posbus(
            workdir, "--data", str(DATA), "--strategy", "mean_reversion", *params,
            "--seed", str(run["seed"]), "--json",
        )  # fmt: skip
        assert alone.returncode == 0, alone.stderr
        single = json.loads(alone.stdout)
        assert json.dumps(run["summary"], sort_keys=True) == json.dumps(single, sort_keys=True)


def test_the_ranking_follows_the_runs_sharpe_best_first(
    two_workers: subprocess.CompletedProcess[str],
) -> None:
    doc = json.loads(two_workers.stdout)
    sharpe = {run["index"]: run["summary"]["sharpe"] for run in doc["runs"]}
    assert all(value is not None for value in sharpe.values())
    ranked = doc["ranking"]
    assert sorted(ranked) == [0, 1, 2, 3]
    values = [sharpe[i] for i in ranked]
    assert values == sorted(values, reverse=True)
    assert [run["rank"] for run in sorted(doc["runs"], key=lambda r: r["index"])] == [
        ranked.index(i) + 1 for i in range(4)
    ]


def test_the_table_lists_the_runs_best_first_by_the_chosen_metric(
    workdir: Path, two_workers: subprocess.CompletedProcess[str]
) -> None:
    done = posbus(workdir, *STRATEGY, *SWEEP, "--workers", "2", "--rank-by", "max_drawdown")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = lines[0].split()
    assert header[:5] == ["rank", "window", "entry_z", "seed", "max_drawdown"]
    rows = [line.split() for line in lines[1:5]]
    runs = json.loads(two_workers.stdout)["runs"]
    by_params = {(r["params"]["window"], r["params"]["entry_z"]): r for r in runs}
    drawdowns = [by_params[(row[1], row[2])]["summary"]["max_drawdown"] for row in rows]
    # Drawdowns are negative: the shallowest (highest) first.
    assert drawdowns == sorted(drawdowns, reverse=True)
    assert [Decimal(row[4]) for row in rows] == [Decimal(str(d)) for d in drawdowns]
    assert lines[5].startswith("4 runs (0 failed) on 2 worker process(es)")


def test_a_failing_run_is_reported_with_its_error_and_the_others_finish(workdir: Path) -> None:
    done = posbus(
        workdir, "--data", str(DATA), "--strategy", "ma_crossover", "--param", "slow=20",
        "--sweep", "fast=5,10,30", "--workers", "2", "--json",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["runs_failed"] == 1
    failed = doc["runs"][2]
    assert failed["params"] == {"fast": "30", "slow": "20"}
    assert failed["error"] == "StrategyError: strategy 'ma_crossover': need 1 <= fast < slow"
    assert "summary" not in failed
    assert doc["ranking"][-1] == 2
    assert [run["summary"]["market_updates"] for run in doc["runs"][:2]] == [2880, 2880]


@pytest.mark.parametrize(
    ("sweep", "named"),
    [
        ("windw=24,48", "unknown parameter(s) ['windw']; it accepts window (int, >= 2"),
        ("window=24,oops", "parameter window: expected an integer, got 'oops'"),
        ("window=1,24", "parameter window: must be >= 2, got '1'"),
    ],
)
def test_a_bad_parameter_exits_2_naming_it(workdir: Path, sweep: str, named: str) -> None:
    done = posbus(workdir, *STRATEGY, "--sweep", sweep, "--workers", "1")
    assert done.returncode == 2
    assert named in done.stderr
    assert done.stdout == ""


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield str(local.scheduler_address)


def test_a_dask_cluster_gives_the_same_runs_as_local_processes(
    workdir: Path, cluster: str, two_workers: subprocess.CompletedProcess[str]
) -> None:
    done = posbus(workdir, *STRATEGY, *SWEEP, "--scheduler", cluster, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == two_workers.stdout
