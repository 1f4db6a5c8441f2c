"""The trade-history CSV reader: what it accepts, and how it names what it refuses."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from posbus.actors.model.errors import PosbusError
from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side
from posbus.adapters.trades_csv import TradeFileError, parse_timestamp_ns, read_trades

HEADER = "timestamp,symbol,side,qty,price,fee,fee_currency,trade_id"
GOOD_ROW = "2024-03-01T09:30:00Z,BTC-USDT,buy,0.5,60000,15,USDT,T1"

# 2024-03-01T09:30:00Z as epoch seconds:
# 1970-01-01 .. 2024-01-01 = 19723 days = 1_704_067_200 s;
# + Jan (31 d) + Feb 2024 (29 d, leap year) = 60 d = 5_184_000 s -> 1_709_251_200;
# + 09:30 = 34_200 s -> 1_709_285_400 s.
MAR_1_0930_NS = 1_709_285_400 * 1_000_000_000


def write(tmp_path: Path, text: str, name: str = "trades.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_become_fills_in_file_order_with_every_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEADER}\n2024-03-01T09:30:00Z,ETH-USDT,sell,2,3000.50,-0.25,USDT,T9\n{GOOD_ROW}\n",
    )

    fills = read_trades(path)

    assert fills == [
        Fill(
            trade_id="T9",
            account="default",
            symbol="ETH-USDT",
            side=Side.SELL,
            qty=Decimal("2"),
            price=Decimal("3000.50"),
            fee=Decimal("-0.25"),
            fee_currency="USDT",
            ts_ns=MAR_1_0930_NS,
        ),
        Fill(
            trade_id="T1",
            account="default",
            symbol="BTC-USDT",
            side=Side.BUY,
            qty=Decimal("0.5"),
            price=Decimal("60000"),
            fee=Decimal("15"),
            fee_currency="USDT",
            ts_ns=MAR_1_0930_NS,
        ),
    ]


def test_numbers_are_kept_exact_to_the_last_digit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEADER}\n2024-03-01T09:30:00Z,X,buy,0.10000000,0.123456789012345678901,1e-8,USDT,T1\n",
    )

    (fill,) = read_trades(path)

    assert str(fill.qty) == "0.10000000"
    assert fill.price == Decimal("0.123456789012345678901")
    assert fill.fee == Decimal("0.00000001")


def test_largest_accepted_magnitudes_are_kept_exact(tmp_path: Path) -> None:
    # 30 integer digits and 40 decimal places are the limits, inclusive
    big, small = "9" * 30, "0." + "0" * 39 + "1"
    path = write(tmp_path, f"{HEADER}\n2024-03-01T09:30:00Z,X,buy,{small},{big},1E-40,USDT,T1\n")

    (fill,) = read_trades(path)

    assert (fill.qty, fill.price, fill.fee) == (Decimal(small), Decimal(big), Decimal(small))


def test_columns_in_any_order_with_extra_columns_and_odd_header_case(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        " Trade_ID ,liquidity,FEE,fee_currency,Price,qty,Side,Symbol,Timestamp,order_id\n"
        "T1,maker,0.1,USDT,100,2,SELL,SOL-USDT,1709285400000,O7\n",
    )

    (fill,) = read_trades(path)

    assert (fill.trade_id, fill.symbol, fill.side, fill.qty, fill.price, fill.fee) == (
        "T1",
        "SOL-USDT",
        Side.SELL,
        Decimal("2"),
        Decimal("100"),
        Decimal("0.1"),
    )
    assert fill.order_id == "O7"
    assert fill.ts_ns == MAR_1_0930_NS


@pytest.mark.parametrize("side", ["buy", "BUY", "Buy", " buy "])
def test_side_is_case_insensitive(tmp_path: Path, side: str) -> None:
    path = write(tmp_path, f"{HEADER}\n2024-03-01T09:30:00Z,X,{side},1,1,0,USDT,T1\n")

    assert read_trades(path)[0].side is Side.BUY


@pytest.mark.parametrize(
    ("text", "expected_ns"),
    [
        ("2024-03-01T09:30:00Z", MAR_1_0930_NS),
        ("2024-03-01T09:30:00z", MAR_1_0930_NS),
        # naive means UTC
        ("2024-03-01T09:30:00", MAR_1_0930_NS),
        ("2024-03-01 09:30:00", MAR_1_0930_NS),
        ("2024-03-01T09:30", MAR_1_0930_NS),
        ("2024-03-01T09:30:00+00:00", MAR_1_0930_NS),
        # 11:30 at +02:00 is 09:30 UTC; 04:00 at -05:30 is 09:30 UTC
        ("2024-03-01T11:30:00+02:00", MAR_1_0930_NS),
        ("2024-03-01T11:30:00+0200", MAR_1_0930_NS),
        ("2024-03-01T04:00:00-05:30", MAR_1_0930_NS),
        # fractions: .5 s = 500_000_000 ns; nanoseconds are not truncated to micro
        ("2024-03-01T09:30:00.5Z", MAR_1_0930_NS + 500_000_000),
        ("2024-03-01T09:30:00.123456789Z", MAR_1_0930_NS + 123_456_789),
        ("2024-03-01T09:30:00,25", MAR_1_0930_NS + 250_000_000),
        # ms epoch: 1_709_285_400_123 ms = 1_709_285_400 s + 123 ms
        ("1709285400123", MAR_1_0930_NS + 123_000_000),
        ("0", 0),
    ],
)
def test_timestamp_forms_convert_exactly_to_epoch_ns(text: str, expected_ns: int) -> None:
    assert parse_timestamp_ns(text) == expected_ns


def test_timestamp_column_accepts_iso_and_ms_epoch_in_the_same_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEADER}\n"
        "2024-03-01T11:30:00+02:00,X,buy,1,1,0,USDT,T1\n"
        "1709285400000,X,buy,1,1,0,USDT,T2\n",
    )

    assert [fill.ts_ns for fill in read_trades(path)] == [MAR_1_0930_NS, MAR_1_0930_NS]


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("price", "abc", "not a number: 'abc'"),
        ("price", "0", "must be greater than 0: '0'"),
        ("price", "NaN", "not a finite number: 'NaN'"),
        ("qty", "-1", "must be greater than 0: '-1'"),
        ("qty", "0.000", "must be greater than 0: '0.000'"),
        ("qty", "Infinity", "not a finite number: 'Infinity'"),
        ("qty", "1_000", "not a number: '1_000'"),
        ("qty", "", "empty"),
        ("fee", "inf", "not a finite number: 'inf'"),
        ("fee", "1.2.3", "not a number: '1.2.3'"),
        # 1e30 has 31 integer digits; 1e-41 has 41 decimal places
        ("price", "1e30", "out of range (at most 30 digits before the point and 40 after it)"),
        ("qty", "1e-41", "out of range"),
        ("fee", "0E-999999999", "out of range"),
        ("fee", "", "empty"),
        ("side", "long", "must be buy or sell: 'long'"),
        ("symbol", "  ", "empty"),
        ("trade_id", "", "empty"),
        ("timestamp", "yesterday", "not an ISO 8601 timestamp or epoch milliseconds"),
        ("timestamp", "2024-13-01T00:00:00", "not a valid date and time: '2024-13-01T00:00:00'"),
        ("timestamp", "1709285400.5", "not an ISO 8601 timestamp or epoch milliseconds"),
        ("timestamp", "", "empty"),
    ],
)
def test_bad_field_names_file_line_and_field(
    tmp_path: Path, column: str, value: str, message: str
) -> None:
    good = dict(zip(HEADER.split(","), GOOD_ROW.split(","), strict=True))
    bad = {**good, column: value}
    path = write(tmp_path, f"{HEADER}\n{GOOD_ROW}\n{','.join(bad.values())}\n")

    with pytest.raises(TradeFileError) as caught:
        read_trades(path)

    # header is line 1, the good row line 2, the bad row line 3
    assert (caught.value.line, caught.value.field) == (3, column)
    assert str(caught.value).startswith(f"{path}:3: field '{column}': {message}")


def test_error_message_reads_like_a_compiler_message(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD_ROW.replace('60000', 'abc')}\n")

    with pytest.raises(TradeFileError) as caught:
        read_trades(path)

    assert str(caught.value) == f"{path}:2: field 'price': not a number: 'abc'"


def test_line_numbers_count_blank_lines_and_quoted_newlines(tmp_path: Path) -> None:
    # line 1 header, 2 good, 3 blank, 4-5 one row whose quoted symbol spans a newline, 6 bad
    path = write(
        tmp_path,
        f"{HEADER}\n{GOOD_ROW}\n\n"
        '2024-03-01T09:30:00Z,"odd\nname",buy,1,1,0,USDT,T2\n'
        "2024-03-01T09:30:00Z,X,buy,1,1,x,USDT,T3\n",
    )

    with pytest.raises(TradeFileError) as caught:
        read_trades(path)

    assert (caught.value.line, caught.value.field) == (6, "fee")


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, f"\n{HEADER}\n\n{GOOD_ROW}\n\n")

    assert [fill.trade_id for fill in read_trades(path)] == ["T1"]


def test_short_row_names_the_first_missing_field(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n2024-03-01T09:30:00Z,X,buy,1,1,0\n")

    with pytest.raises(TradeFileError) as caught:
        read_trades(path)

    assert (caught.value.line, caught.value.field) == (2, "fee_currency")
    assert "missing (row has 6 values, header has 8)" in str(caught.value)


def test_long_row_is_rejected_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD_ROW},surplus\n")

    with pytest.raises(TradeFileError) as caught:
        read_trades(path)

    assert caught.value.line == 2
    assert "row has 9 values but the header has 8 columns" in str(caught.value)


def test_missing_header_columns_are_all_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,symbol,side,qty,price,fee_currency\n")

    with pytest.raises(TradeFileError) as caught:
        read_trades(path)

    assert caught.value.line == 1
    assert "missing columns 'fee', 'trade_id' in the header" in str(caught.value)


def test_file_starting_with_data_reports_missing_header_columns(tmp_path: Path) -> None:
    # a file that starts with data: its first row is read as a header
    path = write(tmp_path, f"{GOOD_ROW}\n")

    with pytest.raises(TradeFileError, match="missing columns 'timestamp', 'symbol'"):
        read_trades(path)


def test_a_required_column_twice_is_ambiguous(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER},price\n{GOOD_ROW},1\n")

    with pytest.raises(TradeFileError) as caught:
        read_trades(path)

    assert (caught.value.line, caught.value.field) == (1, "price")


@pytest.mark.parametrize("text", ["", "\n\n", " \n"])
def test_empty_file_is_an_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(TradeFileError, match="empty file: expected a header line") as caught:
        read_trades(path)

    assert caught.value.line is None


def test_header_only_is_an_empty_history(tmp_path: Path) -> None:
    assert read_trades(write(tmp_path, f"{HEADER}\n")) == []


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"

    with pytest.raises(TradeFileError) as caught:
        read_trades(path)

    assert str(caught.value) == f"{path}: no such file"


def test_directory_is_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TradeFileError, match="cannot read"):
        read_trades(tmp_path)


def test_utf8_byte_order_mark_from_spreadsheets_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\n{GOOD_ROW}\n".encode())

    assert [fill.trade_id for fill in read_trades(path)] == ["T1"]


def test_bytes_that_are_not_utf8_are_an_error_with_a_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\n{GOOD_ROW}\n".encode() + b"2024-03-01,\xe9\n")

    with pytest.raises(TradeFileError, match="not valid UTF-8"):
        read_trades(path)


def test_trade_file_error_is_a_posbus_error_with_context(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD_ROW.replace('buy', 'hold')}\n")

    with pytest.raises(PosbusError) as caught:
        read_trades(path)

    assert isinstance(caught.value, TradeFileError)
    assert caught.value.context() == {
        "error": "TradeFileError",
        "message": f"{path}:2: field 'side': must be buy or sell: 'hold'",
        "transient": False,
        "path": str(path),
        "line": 2,
        "field": "side",
        "detail": "must be buy or sell: 'hold'",
    }
