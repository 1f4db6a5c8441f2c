"""`posbus backtest --search N`: optuna picks the runs, the same ones whatever runs them.

The search runs as `posbus backtest --search 12 ... --json` processes: on 1 and
on 2 local worker processes, and on a real Dask cluster
(`distributed.LocalCluster` with 2 worker processes, started here). Twelve
runs are two batches (8, then 4), and the last two trials are the first the
TPE sampler picks from the results told back (its first 10 are random), so
the comparison covers the told history. Each run's summary is compared with
the single-run path, `posbus backtest --seed S --param ... --json`, run alone
in its own process. The data: the first 1,000 rows of the SOL trades sample.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import distributed
import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sol_trades.csv"
RUNS = 12
SPACE = ("--sweep", "window=5..60", "--sweep", "entry_z=0.5..2.5", "--sweep", "exit_z=0,0.25")
SEARCH = ("--search", str(RUNS), *SPACE, "--rank-by", "total_return", "--seed", "11")


def posbus(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`posbus backtest ARGS` in a fresh process, with a config whose run_dir is under workdir."""
    config = workdir / "config.toml"
    command = [
        sys.executable, "-m", "posbus.adapters.cli.main", "backtest", "--config", str(config),
        *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search")
    (path / "config.toml").write_text(
        f'run_dir = "{path / "var"}"\n[exchange]\nlatency_ns = 2000000\n', encoding="utf-8"
    )
    with open(SAMPLE, encoding="utf-8") as src:
        head = [next(src) for _ in range(1001)]
    (path / "sol.csv").write_text("".join(head), encoding="utf-8")
    return path


def strategy(workdir: Path) -> tuple[str, ...]:
    return ("--data", str(workdir / "sol.csv"), "--strategy", "mean_reversion", "--param", "qty=2")


def search(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return posbus(workdir, *strategy(workdir), *SEARCH, "--json", *args)


@pytest.fixture(scope="module")
def one_worker(workdir: Path) -> subprocess.CompletedProcess[str]:
    done = search(workdir, "--workers", "1", "--out", str(workdir / "out1"))
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def two_workers(workdir: Path) -> subprocess.CompletedProcess[str]:
    done = search(workdir, "--workers", "2", "--out", str(workdir / "out2"))
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def doc(two_workers: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(two_workers.stdout)
    return parsed


def test_a_search_lists_its_runs_in_trial_order_with_its_settings(doc: dict[str, Any]) -> None:
    assert [run["index"] for run in doc["runs"]] == list(range(RUNS))
    assert doc["runs_total"] == RUNS
    assert doc["runs_failed"] == 0
    assert doc["swept"] == ["window", "entry_z", "exit_z"]
    assert doc["base_seed"] == 11
    search = doc["search"]
    assert search["space"] == {"window": "5..60", "entry_z": "0.5..2.5", "exit_z": "0,0.25"}
    assert (search["runs"], search["batch"], search["sampler"]) == (RUNS, 8, "TPESampler")
    assert search["sampler_seed"] == 11
    # Sampled, not one point twelve times: the runs trade differently.
    assert len({run["summary"]["journal_sha256"] for run in doc["runs"]}) > RUNS // 2


def test_every_sampled_value_lies_inside_its_range(doc: dict[str, Any]) -> None:
    for run in doc["runs"]:
        params = run["params"]
        assert set(params) == {"window", "entry_z", "exit_z", "qty"}
        assert params["qty"] == "2"
        assert 5 <= int(params["window"]) <= 60
        assert Decimal("0.5") <= Decimal(params["entry_z"]) <= Decimal("2.5")
        assert params["exit_z"] in ("0", "0.25")
    assert len({run["params"]["window"] for run in doc["runs"]}) > 1
    assert len({run["params"]["exit_z"] for run in doc["runs"]}) == 2


def test_one_and_two_workers_print_the_same_bytes_and_write_the_same_files(
    workdir: Path,
    one_worker: subprocess.CompletedProcess[str],
    two_workers: subprocess.CompletedProcess[str],
) -> None:
    assert one_worker.stdout == two_workers.stdout
    for name in ("sweep.json", "sweep.csv", "report.html"):
        assert (workdir / "out1" / name).read_bytes() == (workdir / "out2" / name).read_bytes()
    report = (workdir / "out2" / "report.html").read_text(encoding="utf-8")
    assert "No heat map: a search samples its parameters" in report
    assert "Equity of the best runs" in report


def test_each_run_equals_the_single_run_with_its_parameters_and_seed(
    workdir: Path, doc: dict[str, Any]
) -> None:
    def alone(run: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        params = [arg for item in run["params"].items() for arg in ("--param", "=".join(item))]
        return posbus(
            workdir, "--data", str(workdir / "sol.csv"), "--strategy", "mean_reversion",
            *params, "--seed", str(run["seed"]), "--json",
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=2) as pool:
        singles = list(pool.map(alone, doc["runs"]))
    for run, single in zip(doc["runs"], singles, strict=True):
        assert single.returncode == 0, single.stderr
        expected = json.dumps(json.loads(single.stdout), sort_keys=True)
        assert json.dumps(run["summary"], sort_keys=True) == expected


def test_the_best_run_reported_is_the_best_of_the_runs_listed(doc: dict[str, Any]) -> None:
    returns = {run["index"]: Decimal(str(run["summary"]["total_return"])) for run in doc["runs"]}
    best = max(returns.values())
    assert returns[doc["ranking"][0]] == best
    assert [returns[i] for i in doc["ranking"]] == sorted(returns.values(), reverse=True)
    assert next(run for run in doc["runs"] if run["rank"] == 1)["index"] == doc["ranking"][0]


def test_a_metric_where_lower_is_better_ranks_the_lowest_first(workdir: Path) -> None:
    done = posbus(
        workdir, *strategy(workdir), "--search", "9", "--sweep", "window=5..60",
        "--rank-by", "fees", "--workers", "2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    fees = {run["index"]: Decimal(str(run["summary"]["fees"])) for run in doc["runs"]}
    assert [fees[i] for i in doc["ranking"]] == sorted(fees.values())


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


def test_a_dask_cluster_gives_the_same_search_as_local_processes(
    workdir: Path, cluster: str, two_workers: subprocess.CompletedProcess[str]
) -> None:
    done = search(workdir, "--scheduler", cluster)
    assert done.returncode == 0, done.stderr
    assert done.stdout == two_workers.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--search", "0", "--sweep", "window=5..60"), "argument --search: must be >= 1, got 0"),
        (("--search", "4"), "give at least one --sweep NAME=LOW..HIGH"),
        (("--search", "4", "--sweep", "window=24,48"), "lists alone are a grid"),
        (("--sweep", "window=5..60"), "--sweep window=5..60 is a range"),
        (("--search", "4", "--sweep", "window=1..60"), "parameter window: must be >= 2, got '1'"),
        (("--search", "4", "--sweep", "entry_z=0..2"), "parameter entry_z: must be > 0, got '0'"),
        (("--search", "4", "--sweep", "window=60..5"), "window=60..5: LOW must be below HIGH"),
        (("--search", "4", "--sweep", "window=5..60.5"), "window: expected an integer"),
        (("--search", "4", "--sweep", "window=5..60:7"), "a whole number of STEPs"),
        (("--search", "4", "--sweep", "symbol=a..b"), "symbol is a str"),
        (("--search", "4", "--sweep", "windw=5..60"), "unknown parameter(s) ['windw']"),
    ],
)
def test_bad_input_exits_2_and_explains(workdir: Path, args: tuple[str, ...], named: str) -> None:
    done = posbus(workdir, *strategy(workdir), *args, "--workers", "1")
    assert done.returncode == 2
    assert named in done.stderr
    assert done.stdout == ""
