"""`posbus demo` end to end, in a subprocess: the real engine with crashes injected."""

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "demo.toml"
    config.write_text(f'run_dir = "{tmp_path / "var"}"\n[demo]\nsteps_per_s = 50\n')
    return subprocess.run(
        [sys.executable, "-m", "posbus.adapters.cli.main", "demo", "--config", str(config), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_demo_json_summary_loses_and_doubles_no_fill_despite_crashes(tmp_path: Path):
    result = _demo(tmp_path, "--duration", "3", "--crash-rate", "5", "--seed", "11", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["fills"] > 0
    assert summary["fills_lost"] == 0
    assert summary["fills_duplicated"] == 0
    assert sum(summary["crashes_injected"].values()) > 0
    assert summary["restarts"], "crashed actors must have been restarted"
    # equity is starting equity plus the positions' P&L, exactly
    equity = Decimal(100000) + Decimal(summary["realized_pnl"]) + Decimal(summary["unrealized_pnl"])
    assert Decimal(summary["equity"]) == equity
    assert (tmp_path / "var" / "demo.log").stat().st_size > 0


def test_demo_rejects_a_bad_duration_with_usage_exit_code(tmp_path: Path):
    result = _demo(tmp_path, "--duration", "-1")
    assert result.returncode == 2
    assert "--duration" in result.stderr
    assert result.stdout == ""


def test_demo_rejects_an_unknown_config_key(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("[risk]\nmax_leverag = 2\n")
    result = subprocess.run(
        [sys.executable, "-m", "posbus.adapters.cli.main", "demo", "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "max_leverag" in result.stderr
