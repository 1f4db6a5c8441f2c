"""`posbus positions rebuild` with fees paid in the base currency and in BNB.

Run as a real process on small trade files; expected values are computed by
hand with the conventions of docs/accounting.md, "Fees in any currency".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HEADER = "timestamp,symbol,side,qty,price,fee,fee_currency,trade_id"

BASE_FEES = [
    "1709285400000,BTC-USDT,buy,1,100,0.001,BTC,t1",
    "1709285401000,BTC-USDT,buy,1,110,0.001,BTC,t2",
    "1709285402000,BTC-USDT,sell,0.5,120,0.0005,BTC,t3",
]
BNB_FEES = [
    "1709285400000,BTC-USDT,buy,1,100,0.0002,BNB,t1",
    "1709285401000,BTC-USDT,buy,1,110,0.0002,BNB,t2",
    "1709285402000,BTC-USDT,sell,0.5,120,0.0001,BNB,t3",
    "1709285403000,BTC-USDT,sell,2.5,90,0.0005,BNB,t4",
    "1709285404000,BTC-USDT,buy,1,80,0.0002,BNB,t5",
]


def posbus(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "posbus.adapters.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def trades(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "trades.csv"
    path.write_text("\n".join((HEADER, *rows)) + "\n", encoding="utf-8")
    return path


def rebuild(path: Path, *marks: str) -> tuple[dict[str, Any], str]:
    mark_args = [arg for mark in marks for arg in ("--mark", mark)]
    done = posbus("positions", "rebuild", "--trades", path, *mark_args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["positions"], done.stderr


def test_base_fees_come_out_of_the_quantity_and_are_valued_at_the_fill_price(
    tmp_path: Path,
) -> None:
    positions, _ = rebuild(trades(tmp_path, *BASE_FEES), "BTC-USDT=100")

    assert positions["BTC-USDT"] == {
        # 0.999 + 0.999 - (0.5 + 0.0005)
        "qty": "1.4975",
        # 0.999 @ 100 and 0.999 @ 110
        "avg_entry_price": "105",
        # -0.001*100 - 0.001*110 + 0.5005*(120 - 105) - 0.0005*120
        "realized_pnl": "7.2375",
        # 1.4975 * (100 - 105)
        "unrealized_pnl": "-7.4875",
        "fees": "0.27",
        "fees_by_currency": {"BTC": "0.0025"},
    }


def test_bnb_fees_are_valued_at_the_conversion_mark_given_for_the_pair(tmp_path: Path) -> None:
    positions, stderr = rebuild(trades(tmp_path, *BNB_FEES), "BNB-USDT=600")

    # fee values 0.12, 0.12, 0.06, 0.3, 0.12; price P&L +7.5 - 22.5 + 10 = -5
    assert positions["BTC-USDT"] == {
        "qty": "0",
        "avg_entry_price": "0",
        "realized_pnl": "-5.72",
        "unrealized_pnl": None,
        "fees": "0.72",
        "fees_by_currency": {"BNB": "0.0012"},
    }
    assert "not in realized P&L" not in stderr


def test_bnb_fees_without_conversion_mark_are_reported_unconverted(tmp_path: Path) -> None:
    positions, stderr = rebuild(trades(tmp_path, *BNB_FEES))

    assert positions["BTC-USDT"]["realized_pnl"] == "-5"
    assert positions["BTC-USDT"]["fees"] == "0"
    assert positions["BTC-USDT"]["unconverted_fees"] == 5
    assert positions["BTC-USDT"]["unconverted_fees_by_currency"] == {"BNB": "0.0012"}
    assert (
        "warning: BTC-USDT: 5 fees (0.0012 BNB) not in realized P&L:"
        " no conversion mark (give --mark BNB-USDT=PRICE)" in stderr
    )


def test_the_table_adds_fees_by_currency_when_a_fee_was_outside_the_quote(
    tmp_path: Path,
) -> None:
    path = trades(tmp_path, *BASE_FEES[:1], "1709285401000,ETH-USDT,buy,1,2000,2,USDT,e1")

    done = posbus("positions", "rebuild", "--trades", path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "SYMBOL      QTY  AVG ENTRY  REALIZED P&L  MARK  UNREALIZED P&L  FEES  FEES BY CURRENCY\n"
        "BTC-USDT  0.999        100          -0.1     -               -   0.1         0.001 BTC\n"
        "ETH-USDT      1       2000            -2     -               -     2            2 USDT\n"
        "\n"
        f"2 fills from {path}, applied in file order; 0 duplicate trade ids ignored.\n"
        "Realized P&L is net of all fees; unrealized excludes fees.\n"
        "FEES are valued in the quote currency: base fees at the fill price, others at --mark.\n"
        "'-': no --mark given for the symbol.\n"
    )


def test_a_mark_that_neither_marks_a_symbol_nor_converts_a_fee_is_a_usage_error(
    tmp_path: Path,
) -> None:
    done = posbus(
        "positions", "rebuild", "--trades", trades(tmp_path, *BNB_FEES), "--mark", "BNB-EUR=500"
    )

    assert done.returncode == 2
    assert done.stdout == ""
    assert "--mark for BNB-EUR: no trades for that symbol" in done.stderr
    assert "and no fee it converts" in done.stderr
