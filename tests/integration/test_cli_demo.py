"""`posbus demo` end to end, in a subprocess: the real engine with crashes injected."""

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from posbus.actors.model.side import Side
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.bus.codec import decode
from posbus.bus.messages import OrderFill

STARTING_EQUITY = Decimal(250000)


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "demo.toml"
    config.write_text(
        f'run_dir = "{tmp_path / "var"}"\nstarting_equity = {STARTING_EQUITY}\n'
        "[demo]\nsteps_per_s = 50\n"
    )
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
    assert Decimal(summary["equity"]) == _equity_from_journal(tmp_path, summary)
    assert (tmp_path / "var" / "demo.log").stat().st_size > 0


def _equity_from_journal(tmp_path: Path, summary: dict[str, Any]) -> Decimal:
    """Starting equity + cash flow of the journaled fills - their fees + open qty at the mark.

    Replays the fills the demo journaled, so it shares no arithmetic with the
    demo's summary; the mark of an open position is the one its summary shows,
    mark = avg_entry_price + unrealized_pnl / qty, so qty * mark = qty * avg + unrealized.
    """
    fills: dict[str, OrderFill] = {}
    journal = SqliteJournal(tmp_path / "var" / "journal.sqlite", writer=False)
    try:
        for stream in journal.streams():
            if stream.startswith("position/"):
                for record in journal.read(stream):
                    message = decode(record.payload).message
                    if isinstance(message, OrderFill):
                        fills.setdefault(message.trade_id, message)
    finally:
        journal.close()
    assert len(fills) == summary["fills"]
    cash = fees = Decimal(0)
    qty: dict[str, Decimal] = {}
    for fill in fills.values():
        assert fill.fee_currency == "USDT"
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        qty[fill.symbol] = qty.get(fill.symbol, Decimal(0)) + signed
        cash -= signed * fill.price
        fees += fill.fee
    marked = Decimal(0)
    for symbol, position in summary["positions"].items():
        assert Decimal(position["qty"]) == qty.get(symbol, Decimal(0))
        if qty.get(symbol):
            avg, unrealized = Decimal(position["avg_entry_price"]), position["unrealized_pnl"]
            marked += qty[symbol] * avg + Decimal(unrealized)
    return STARTING_EQUITY + cash - fees + marked


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
