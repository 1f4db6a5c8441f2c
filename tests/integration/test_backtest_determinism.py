"""Determinism: the same data, config, strategy and seed give byte-identical journals and reports.

Each run is a separate `posbus backtest` process with a different
PYTHONHASHSEED, so an unordered iteration (a set, a hash) leaking into a
result would show as a difference. The config is tight enough that risk
limits trigger: the risk events must be identical too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
REPORT_FILES = ("equity.csv", "trades.csv", "summary.json", "report.html")


def backtest(tmp_path: Path, name: str, *args: str, hash_seed: str) -> tuple[dict[str, Any], Path]:
    """Run `posbus backtest ... --json --report DIR` in a fresh process; (stdout JSON, DIR)."""
    config = tmp_path / "tight.toml"
    config.write_text(
        f'run_dir = "{tmp_path / "var"}"\n'
        "[risk]\n"
        'daily_loss_limit = "120"\n'
        "cooldown_s = 7200\n"
        "[exchange]\n"
        "latency_ns = 2000000\n",
        encoding="utf-8",
    )
    report = tmp_path / name
    command = [
        sys.executable,
        "-m",
        "posbus.adapters.cli.main",
        "backtest",
        "--config",
        str(config),
        "--json",
        "--report",
        str(report),
        *args,
    ]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=240
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), report


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict[str, Any], Path]]:
    tmp_path = tmp_path_factory.mktemp("determinism")
    args = (
        "--data",
        str(DATA / "btc_quotes.csv"),
        "--data",
        str(DATA / "sol_trades.csv"),
        "--strategy",
        "mean_reversion",
        "--param",
        "window=30",
        "--seed",
        "3",
    )
    return [
        backtest(tmp_path, "first", *args, hash_seed="1"),
        backtest(tmp_path, "second", *args, hash_seed="2"),
        backtest(tmp_path, "other_seed", *args[:-1], "4", hash_seed="1"),
    ]


def test_two_runs_print_the_same_summary_and_journal_digest(
    runs: list[tuple[dict[str, Any], Path]],
) -> None:
    (first, _), (second, _), _ = runs
    assert first == second
    assert len(first["journal_sha256"]) == 64
    assert first["journal_records"] > 100


def test_two_runs_write_byte_identical_report_files(
    runs: list[tuple[dict[str, Any], Path]],
) -> None:
    (_, first), (_, second), _ = runs
    for name in REPORT_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_the_runs_triggered_risk_limits_and_report_their_events(
    runs: list[tuple[dict[str, Any], Path]],
) -> None:
    (summary, report), _, _ = runs
    kinds = summary["risk"]["events_by_kind"]
    assert kinds.get("state_change", 0) >= 1
    written = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    states = {event["state"] for event in written["risk_events"]}
    assert "CoolDown" in states
    assert len(written["risk_events"]) == summary["risk"]["events"]
    page = (report / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg ") == 2
    assert "CoolDown" in page


def test_another_exchange_seed_gives_another_journal(
    runs: list[tuple[dict[str, Any], Path]],
) -> None:
    (first, _), _, (other, _) = runs
    # the seed drives the simulated exchange's rejects and partial fills
    assert other["seed"] == 4
    assert other["journal_sha256"] != first["journal_sha256"]


def test_the_report_files_agree_with_the_summary(
    runs: list[tuple[dict[str, Any], Path]],
) -> None:
    (summary, report), _, _ = runs
    equity = (report / "equity.csv").read_text(encoding="utf-8").splitlines()
    assert equity[0] == "timestamp,equity"
    assert equity[1] == "2024-01-01T00:00:00.000000000Z,100000"
    assert equity[-1].split(",")[1] == summary["final_equity"]
    trades = (report / "trades.csv").read_text(encoding="utf-8").splitlines()
    assert trades[0] == ("symbol,side,entry_time,exit_time,entry_price,exit_price,qty,pnl,fees")
    assert len(trades) - 1 == summary["trades"] > 0
    for key in ("trades", "win_rate", "sharpe", "sortino", "max_drawdown", "total_return", "fees"):
        assert key in summary
