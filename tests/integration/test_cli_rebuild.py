"""`posbus positions rebuild`, run as a real process on small trade files.

Expected values are computed by hand with the Position conventions: weighted
average entry; realized P&L on the reduced quantity; every fee (opening ones
included) subtracted from realized at its fill; on a flip the fee is split pro
rata but both shares are subtracted, so realized sees the whole fee;
unrealized = qty * (mark - avg), fees excluded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEADER = "timestamp,symbol,side,qty,price,fee,fee_currency,trade_id"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "trades.csv"

# One BTC-USDT life: open, add, partial close, flip, add to the short,
# close to flat, re-open with a maker rebate.
LIFE = [
    "1709285400000,BTC-USDT,buy,1,100,0.1,USDT,t1",
    "1709285401000,BTC-USDT,buy,1,110,0.11,USDT,t2",
    "1709285402000,BTC-USDT,sell,0.5,120,0.06,USDT,t3",
    "1709285403000,BTC-USDT,sell,2.5,90,0.3,USDT,t4",
    "1709285404000,BTC-USDT,sell,1,80,0.08,USDT,t5",
    "1709285405000,BTC-USDT,buy,2,70,0.14,USDT,t6",
    "1709285406000,BTC-USDT,buy,0.4,75,-0.03,USDT,t7",
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


def rebuild_json(path: Path, *marks: str) -> dict[str, dict[str, str | None]]:
    mark_args = [arg for mark in marks for arg in ("--mark", mark)]
    done = posbus("positions", "rebuild", "--trades", path, *mark_args, "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert list(document) == ["positions"]
    positions: dict[str, dict[str, str | None]] = document["positions"]
    return positions


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            2,
            # t1: qty 1, cost 100; t2: qty 2, cost 100 + 110 = 210, avg 210 / 2 = 105
            # realized = -(0.1 + 0.11) = -0.21
            {"qty": "2", "avg_entry_price": "105", "realized_pnl": "-0.21", "fees": "0.21"},
            id="open-and-add",
        ),
        pytest.param(
            3,
            # t3 closes 0.5 at 120 against avg 105: +0.5 * 15 = 7.5
            # realized = -0.21 + 7.5 - 0.06 = 7.23; qty 1.5, avg stays 105
            {"qty": "1.5", "avg_entry_price": "105", "realized_pnl": "7.23", "fees": "0.27"},
            id="partial-close",
        ),
        pytest.param(
            4,
            # t4 sells 2.5 at 90: closes 1.5 at 90 vs 105: 1.5 * -15 = -22.5,
            # opens a 1.0 short at 90. Fee 0.3 splits 0.3 * 1.5 / 2.5 = 0.18 closing
            # + 0.12 opening; both are subtracted: realized = 7.23 - 22.5 - 0.3 = -15.57
            {"qty": "-1", "avg_entry_price": "90", "realized_pnl": "-15.57", "fees": "0.57"},
            id="flip-long-to-short-with-fee-split",
        ),
        pytest.param(
            5,
            # t5 adds a 1.0 short at 80: cost 90 + 80 = 170, avg 170 / 2 = 85
            # realized = -15.57 - 0.08 = -15.65
            {"qty": "-2", "avg_entry_price": "85", "realized_pnl": "-15.65", "fees": "0.65"},
            id="add-to-short",
        ),
        pytest.param(
            6,
            # t6 buys 2 at 70 against a short at 85: +2 * 15 = 30
            # realized = -15.65 + 30 - 0.14 = 14.21; flat, so avg prints "0"
            {"qty": "0", "avg_entry_price": "0", "realized_pnl": "14.21", "fees": "0.79"},
            id="close-short-to-flat",
        ),
        pytest.param(
            7,
            # t7 re-opens 0.4 at 75 with a 0.03 rebate: realized = 14.21 + 0.03 = 14.24
            # fees = 0.79 - 0.03 = 0.76
            {"qty": "0.4", "avg_entry_price": "75", "realized_pnl": "14.24", "fees": "0.76"},
            id="re-open-after-flat",
        ),
    ],
)
def test_position_life_without_mark_prints_exact_decimals_and_null_unrealized(
    tmp_path: Path, rows: int, expected: dict[str, str]
) -> None:
    positions = rebuild_json(trades(tmp_path, *LIFE[:rows]))

    assert positions == {"BTC-USDT": {**expected, "unrealized_pnl": None}}
    assert list(positions["BTC-USDT"]) == [
        "qty",
        "avg_entry_price",
        "realized_pnl",
        "unrealized_pnl",
        "fees",
    ]


def test_mark_gives_unrealized_pnl_of_the_reopened_long(tmp_path: Path) -> None:
    positions = rebuild_json(trades(tmp_path, *LIFE), "BTC-USDT=80")

    # 0.4 * (80 - 75) = 2
    assert positions["BTC-USDT"]["unrealized_pnl"] == "2"
    assert positions["BTC-USDT"]["realized_pnl"] == "14.24"


def test_mark_on_a_short_loses_when_price_rises(tmp_path: Path) -> None:
    positions = rebuild_json(trades(tmp_path, *LIFE[:4]), "BTC-USDT=95.5")

    # short 1 at avg 90: -1 * (95.5 - 90) = -5.5
    assert positions["BTC-USDT"]["unrealized_pnl"] == "-5.5"


def test_mark_on_a_flat_position_is_zero(tmp_path: Path) -> None:
    positions = rebuild_json(trades(tmp_path, *LIFE[:6]), "BTC-USDT=1000")

    assert positions["BTC-USDT"]["unrealized_pnl"] == "0"


def test_symbols_are_independent_and_only_marked_ones_get_unrealized(tmp_path: Path) -> None:
    path = trades(
        tmp_path,
        "2024-03-01T09:30:00Z,ETH-USDT,buy,3,2000,1.5,USDT,e1",
        "2024-03-01T09:31:00Z,BTC-USDT,buy,0.1,50000,2.5,USDT,b1",
        "2024-03-01T09:32:00Z,ETH-USDT,sell,1,2100,0.5,USDT,e2",
    )

    positions = rebuild_json(path, "ETH-USDT=2050")

    assert positions == {
        # b1 only: realized = -2.5 (its fee)
        "BTC-USDT": {
            "qty": "0.1",
            "avg_entry_price": "50000",
            "realized_pnl": "-2.5",
            "unrealized_pnl": None,
            "fees": "2.5",
        },
        # e2 closes 1 at 2100 vs 2000: +100; realized = 100 - 1.5 - 0.5 = 98
        # unrealized = 2 * (2050 - 2000) = 100
        "ETH-USDT": {
            "qty": "2",
            "avg_entry_price": "2000",
            "realized_pnl": "98",
            "unrealized_pnl": "100",
            "fees": "2",
        },
    }


def test_duplicate_trade_id_is_ignored_and_counted_on_stderr(tmp_path: Path) -> None:
    path = trades(tmp_path, LIFE[0], LIFE[1], LIFE[1], LIFE[2])

    done = posbus("positions", "rebuild", "--trades", path, "--json")

    assert done.returncode == 0, done.stderr
    # same state as t1..t3 without the repeated t2
    assert json.loads(done.stdout)["positions"]["BTC-USDT"]["qty"] == "1.5"
    assert json.loads(done.stdout)["positions"]["BTC-USDT"]["realized_pnl"] == "7.23"
    assert "ignored 1 duplicate trade id (already applied): t2" in done.stderr


def test_table_is_aligned_with_dash_for_missing_mark_and_a_footer(tmp_path: Path) -> None:
    path = trades(
        tmp_path,
        "2024-03-01T09:30:00Z,ETH-USDT,buy,3,2000,1.5,USDT,e1",
        "2024-03-01T09:31:00Z,BTC-USDT,buy,0.1,50000,2.5,USDT,b1",
        "2024-03-01T09:32:00Z,ETH-USDT,sell,1,2100,0.5,USDT,e2",
        "2024-03-01T09:32:00Z,ETH-USDT,sell,1,2100,0.5,USDT,e2",
    )

    done = posbus("positions", "rebuild", "--trades", path, "--mark", "ETH-USDT=2050")

    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "SYMBOL    QTY  AVG ENTRY  REALIZED P&L  MARK  UNREALIZED P&L  FEES\n"
        "BTC-USDT  0.1      50000          -2.5     -               -   2.5\n"
        "ETH-USDT    2       2000            98  2050             100     2\n"
        "\n"
        f"3 fills from {path}, applied in file order; 1 duplicate trade id ignored.\n"
        "Realized P&L is net of all fees; unrealized excludes fees.\n"
        "'-': no --mark given for the symbol.\n"
    )


def test_header_only_file_has_no_positions(tmp_path: Path) -> None:
    assert rebuild_json(trades(tmp_path)) == {}


def test_bad_row_exits_2_names_line_and_field_and_prints_nothing(tmp_path: Path) -> None:
    path = trades(tmp_path, *LIFE[:5], "1709285405000,BTC-USDT,buy,2,abc,0.14,USDT,t6", LIFE[6])

    done = posbus("positions", "rebuild", "--trades", path, "--json")

    assert done.returncode == 2
    assert done.stdout == ""
    # header is line 1, so the sixth row is line 7
    assert f"{path}:7: field 'price': not a number: 'abc'" in done.stderr


def test_missing_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    done = posbus("positions", "rebuild", "--trades", tmp_path / "nope.csv")

    assert done.returncode == 2
    assert done.stdout == ""
    assert f"{tmp_path / 'nope.csv'}: no such file" in done.stderr


def test_missing_column_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text("timestamp,symbol,side,qty,price,fee_currency,trade_id\n", encoding="utf-8")

    done = posbus("positions", "rebuild", "--trades", path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert "missing column 'fee'" in done.stderr


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ("BTC-USDT", "expected SYMBOL=PRICE"),
        ("=100", "missing symbol"),
        ("BTC-USDT=abc", "not a number: 'abc'"),
        ("BTC-USDT=NaN", "not a finite number"),
        ("BTC-USDT=0", "must be greater than 0"),
        ("BTC-USDT=-5", "must be greater than 0"),
    ],
)
def test_malformed_mark_is_a_usage_error(tmp_path: Path, mark: str, message: str) -> None:
    done = posbus("positions", "rebuild", "--trades", trades(tmp_path, *LIFE), "--mark", mark)

    assert done.returncode == 2
    assert done.stdout == ""
    assert "argument --mark" in done.stderr
    assert message in done.stderr


def test_mark_for_a_symbol_without_trades_is_a_usage_error(tmp_path: Path) -> None:
    path = trades(tmp_path, *LIFE)

    done = posbus("positions", "rebuild", "--trades", path, "--mark", "ETH-USDT=3000", "--json")

    assert done.returncode == 2
    assert done.stdout == ""
    assert "--mark for ETH-USDT: no trades for that symbol" in done.stderr
    assert "usage: posbus positions rebuild" in done.stderr


def test_mark_given_twice_for_one_symbol_is_a_usage_error(tmp_path: Path) -> None:
    path = trades(tmp_path, *LIFE)

    done = posbus(
        "positions", "rebuild", "--trades", path, "--mark", "BTC-USDT=1", "--mark", "BTC-USDT=2"
    )

    assert done.returncode == 2
    assert done.stdout == ""
    assert "--mark given more than once for BTC-USDT" in done.stderr


def test_out_of_order_timestamps_warn_but_keep_file_order(tmp_path: Path) -> None:
    # newest first: file order is t2 (sell 1 @ 120) then t1 (buy 1 @ 100)
    path = trades(
        tmp_path,
        "1709285401000,BTC-USDT,sell,1,120,0,USDT,t2",
        "1709285400000,BTC-USDT,buy,1,100,0,USDT,t1",
    )

    done = posbus("positions", "rebuild", "--trades", path, "--json")

    assert done.returncode == 0, done.stderr
    # file order: short 1 at 120, then buy 1 at 100 closes it: +1 * (120 - 100) = 20
    assert json.loads(done.stdout)["positions"]["BTC-USDT"]["realized_pnl"] == "20"
    assert "not ascending" in done.stderr


def test_example_file_rebuilds_to_hand_computed_positions() -> None:
    positions = rebuild_json(EXAMPLE, "BTC-USDT=65000", "ETH-USDT=3000")

    assert positions == {
        # buy .5@60000 (fee 15), buy .5@62000 (15.5): qty 1, avg 61000, realized -30.5
        # sell .25@63000 (7.875): +.25*2000 = 500 -> 461.625
        # sell 1@62000 (31), flip: closes .75: +.75*1000 = 750 -> 1180.625; short .25@62000
        # buy .25@60500 (7.5625): +.25*1500 = 375 -> 1548.0625; flat
        # buy .2@64000 (6.4): -> 1541.6625; unrealized .2*(65000-64000) = 200
        # fees 15+15.5+7.875+31+7.5625+6.4 = 83.3375
        "BTC-USDT": {
            "qty": "0.2",
            "avg_entry_price": "64000",
            "realized_pnl": "1541.6625",
            "unrealized_pnl": "200",
            "fees": "83.3375",
        },
        # buy 2@3000 (3), buy 1@3150 (1.575): qty 3, avg 9150/3 = 3050, realized -4.575
        # sell 1.5@3200 (2.4): +225 -> 218.025 (its repeated row T1008 is ignored)
        # sell 1.5@3100 (2.325): +75 -> 290.7; flat
        # sell 3@3050 (4.575): -> 286.125; buy 1@2990 (1.495): +60 -> 344.63
        # unrealized -2*(3000-3050) = 100; fees 3+1.575+2.4+2.325+4.575+1.495 = 15.37
        "ETH-USDT": {
            "qty": "-2",
            "avg_entry_price": "3050",
            "realized_pnl": "344.63",
            "unrealized_pnl": "100",
            "fees": "15.37",
        },
        # buy 40@150 (-0.6), buy 10@145 (-0.145): avg 7450/50 = 149, realized 0.745
        # sell 20@160 (1.6): +220 -> 219.145; sell 10@158 (-0.158): +90 -> 309.303
        # fees -0.6-0.145+1.6-0.158 = 0.697; no mark -> null
        "SOL-USDT": {
            "qty": "20",
            "avg_entry_price": "149",
            "realized_pnl": "309.303",
            "unrealized_pnl": None,
            "fees": "0.697",
        },
    }


def test_help_lists_commands_with_one_line_descriptions() -> None:
    done = posbus("--help")

    assert done.returncode == 0
    assert "positions" in done.stdout
    assert "list positions, or rebuild them from a trade file" in done.stdout


def test_rebuild_help_explains_with_an_example() -> None:
    done = posbus("positions", "rebuild", "--help")

    assert done.returncode == 0
    assert "--trades FILE.csv" in done.stdout
    assert "examples:\n  posbus positions rebuild --trades examples/trades.csv" in done.stdout


def test_positions_without_subcommand_needs_a_running_stack() -> None:
    done = posbus("positions")

    assert done.returncode == 2
    assert done.stdout == ""
    assert "posbus up" in done.stderr


def test_unknown_command_is_a_usage_error() -> None:
    done = posbus("frobnicate")

    assert done.returncode == 2
    assert "invalid choice: 'frobnicate'" in done.stderr
