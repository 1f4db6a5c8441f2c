"""Market data files for backtests: quotes, trades and bars, CSV and Parquet, and bad data.

Bad data is either an error naming the file, row and field, or a counted
skip that the summary reports; never a silent wrong result.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from posbus.adapters.cli.main import main
from posbus.adapters.market.market_data_error import MarketDataError
from posbus.adapters.market.replay import MarketReplay
from posbus.bus.messages import MarketUpdate

D = Decimal
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z in ns
MIN = 60_000_000_000


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def replay(*paths: Path) -> tuple[list[MarketUpdate], MarketReplay]:
    source = MarketReplay(paths)
    return list(source), source


def test_quote_rows_become_market_updates_with_exact_prices_and_any_timestamp_form(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "q.csv",
        "Timestamp, symbol ,bid,ask,bid_size,ask_size\n"
        "2024-01-01T00:00:00Z,BTC/USDT,42000.10,42000.30,1.5,\n"
        "1704067260000,BTC/USDT,42001,42002,,2\n"
        "2024-01-01 00:02:00.000000001,BTC/USDT,0.1,0.3,0,0\n",
    )
    updates, source = replay(path)
    assert updates == [
        MarketUpdate("BTC/USDT", D("42000.10"), D("42000.30"), None, D("1.5"), None, T0),
        # epoch milliseconds (13 digits)
        MarketUpdate("BTC/USDT", D(42001), D(42002), None, None, D(2), T0 + MIN),
        # ISO without offset is UTC; 9 fractional digits kept
        MarketUpdate("BTC/USDT", D("0.1"), D("0.3"), None, D(0), D(0), T0 + 2 * MIN + 1),
    ]
    assert source.skipped.total == 0


def test_trade_ticks_replay_as_a_locked_quote_at_the_trade_price(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        f"timestamp,symbol,price,qty\n{T0},SOL/USDT,99.5,3\n{T0 + 1},SOL/USDT,99.6,1\n",
    )
    updates, _ = replay(path)
    assert updates[0] == MarketUpdate("SOL/USDT", D("99.5"), D("99.5"), D("99.5"), None, None, T0)
    assert updates[1].ts_ns == T0 + 1


def test_a_bar_is_four_quotes_open_nearer_extreme_other_extreme_close(tmp_path: Path) -> None:
    hour = 3_600_000_000_000
    path = write(
        tmp_path,
        "b.csv",
        "timestamp,symbol,open,high,low,close,volume\n"
        # open 100: low 95 is nearer than high 110 -> open, low, high, close
        f"{T0},ETH/USDT,100,110,95,105,1\n"
        # open 105: high 106 is nearer than low 90 -> open, high, low, close
        f"{T0 + hour},ETH/USDT,105,106,90,92,1\n",
    )
    updates, _ = replay(path)
    assert [(u.ts_ns - T0, u.bid) for u in updates] == [
        # the interval is the gap of the first two bars (1 h): steps at 0, 15, 30, 45 min
        (0, D(100)),
        (hour // 4, D(95)),
        (hour // 2, D(110)),
        (3 * hour // 4, D(105)),
        (hour, D(105)),
        (hour + hour // 4, D(106)),
        (hour + hour // 2, D(90)),
        (hour + 3 * hour // 4, D(92)),
    ]
    assert all(u.bid == u.ask == u.last for u in updates)


def test_bars_of_several_symbols_at_one_time_are_interleaved_step_by_step(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "b.csv",
        "timestamp,symbol,open,high,low,close\n"
        f"{T0},A/USDT,10,11,9,10\n"
        f"{T0},B/USDT,20,22,19,21\n"
        f"{T0 + 400},A/USDT,10,10,10,10\n",
    )
    updates, _ = replay(path)
    first_bar = [(u.ts_ns - T0, u.symbol) for u in updates[:8]]
    assert first_bar == [
        (0, "A/USDT"),
        (0, "B/USDT"),
        (100, "A/USDT"),
        (100, "B/USDT"),
        (200, "A/USDT"),
        (200, "B/USDT"),
        (300, "A/USDT"),
        (300, "B/USDT"),
    ]


def test_files_are_merged_by_time_and_ties_go_to_the_file_given_first(tmp_path: Path) -> None:
    a = write(
        tmp_path, "a.csv", f"timestamp,symbol,bid,ask\n{T0},A/USDT,1,2\n{T0 + 2},A/USDT,1,2\n"
    )
    b = write(tmp_path, "b.csv", f"timestamp,symbol,price\n{T0},B/USDT,5\n{T0 + 1},B/USDT,5\n")
    updates, _ = replay(a, b)
    assert [(u.ts_ns - T0, u.symbol) for u in updates] == [
        (0, "A/USDT"),
        (0, "B/USDT"),
        (1, "B/USDT"),
        (2, "A/USDT"),
    ]


def test_parquet_reads_the_same_as_csv(tmp_path: Path) -> None:
    table = pa.table(
        {
            "timestamp": pa.array([T0, T0 + MIN], type=pa.timestamp("ns", tz="UTC")),
            "symbol": ["BTC/USDT", "BTC/USDT"],
            "bid": [42000.1, 42001.0],
            "ask": [42000.3, float("nan")],
        }
    )
    path = tmp_path / "q.parquet"
    pq.write_table(table, path)
    updates, source = replay(path)
    # floats through their shortest repr: 42000.1 is Decimal("42000.1")
    assert updates == [MarketUpdate("BTC/USDT", D("42000.1"), D("42000.3"), None, None, None, T0)]
    assert source.skipped.to_dict() == {"missing_price": {"rows": 1, "first": f"{path}: row 2"}}


# -- bad data ---------------------------------------------------------------------------


def test_an_unsorted_timestamp_is_an_error_naming_the_row(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "q.csv",
        "timestamp,symbol,bid,ask\n"
        f"{T0 + 5},X/USDT,1,2\n{T0 + 5},X/USDT,1,2\n{T0 + 4},X/USDT,1,2\n",
    )
    with pytest.raises(MarketDataError) as error:
        replay(path)
    assert error.value.where == f"{path}:4"
    assert error.value.field == "timestamp"
    assert "sorted by time" in str(error.value)


def test_missing_columns_are_an_error_before_anything_runs(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", f"timestamp,bid,ask\n{T0},1,2\n")
    with pytest.raises(MarketDataError, match=r"missing column\(s\) \['symbol'\] for quote ticks"):
        replay(path)
    unknown = write(tmp_path, "u.csv", "timestamp,symbol,value\n")
    with pytest.raises(MarketDataError, match="cannot tell the kind of market data"):
        MarketReplay([unknown])


def test_nan_and_empty_prices_are_skipped_counted_and_the_first_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "q.csv",
        "timestamp,symbol,bid,ask\n"
        f"{T0},X/USDT,1,2\n{T0 + 1},X/USDT,NaN,2\n{T0 + 2},X/USDT,1,\n{T0 + 3},X/USDT,1,2\n",
    )
    updates, source = replay(path)
    assert [u.ts_ns - T0 for u in updates] == [0, 3]
    assert source.skipped.to_dict() == {"missing_price": {"rows": 2, "first": f"{path}:3"}}


def test_a_crossed_quote_is_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", f"timestamp,symbol,bid,ask\n{T0},X/USDT,2,1\n{T0},X/USDT,1,1\n")
    updates, source = replay(path)
    # bid 2 > ask 1 is skipped; a locked quote (bid == ask) is fine
    assert [(u.bid, u.ask) for u in updates] == [(D(1), D(1))]
    assert source.skipped.to_dict() == {"crossed_quote": {"rows": 1, "first": f"{path}:2"}}


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        (f"{T0},X/USDT,abc,2", "bid", "not a number: 'abc'"),
        (f"{T0},X/USDT,1,inf", "ask", "not a finite number"),
        ("yesterday,X/USDT,1,2", "timestamp", "not an epoch integer or ISO 8601"),
        (f"{T0},X/USDT,-1,2", None, "must be positive"),
    ],
)
def test_a_bad_cell_is_an_error_naming_the_row_and_field(
    tmp_path: Path, row: str, field: str | None, problem: str
) -> None:
    path = write(tmp_path, "q.csv", f"timestamp,symbol,bid,ask\n{T0 - 1},X/USDT,1,2\n{row}\n")
    with pytest.raises(MarketDataError) as error:
        replay(path)
    assert error.value.where == f"{path}:3"
    assert error.value.field == field
    assert problem in str(error.value)


def test_an_inconsistent_bar_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", f"timestamp,symbol,open,high,low,close\n{T0},X/USDT,10,9,8,9\n")
    with pytest.raises(MarketDataError, match="inconsistent bar") as error:
        replay(path)
    assert error.value.where == f"{path}:2"


def test_bars_closer_than_the_first_gap_are_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "b.csv",
        "timestamp,symbol,open,high,low,close\n"
        f"{T0},X/USDT,1,1,1,1\n{T0 + 100},X/USDT,1,1,1,1\n{T0 + 150},X/USDT,1,1,1,1\n",
    )
    with pytest.raises(MarketDataError, match="less than the bar interval of 100 ns") as error:
        replay(path)
    assert error.value.where == f"{path}:4"


def test_the_cli_reports_bad_data_on_stderr_with_exit_2_and_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the run's log goes to ./var
    path = write(
        tmp_path, "q.csv", f"timestamp,symbol,bid,ask\n{T0},X/USDT,1,2\n{T0 + 1},X/USDT,1,oops\n"
    )
    code = main(["backtest", "--data", str(path), "--strategy", "flip", "--quiet", "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.strip() == f"posbus: error: {path}:3: field 'ask': not a number: 'oops'"


def test_the_cli_names_skipped_rows_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(
        tmp_path,
        "q.csv",
        f"timestamp,symbol,bid,ask\n{T0},X/USDT,1,2\n{T0 + 1},X/USDT,3,2\n{T0 + 2},X/USDT,1,2\n",
    )
    code = main(["backtest", "--data", str(path), "--strategy", "flip", "--quiet", "--json"])
    _, err = capsys.readouterr()
    assert code == 0
    assert err.strip() == f"posbus: skipped 1 row(s): crossed_quote: 1 (first at {path}:3)"
