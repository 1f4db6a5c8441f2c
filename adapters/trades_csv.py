"""Read a trade-history export (CSV) into `Fill` values.

The format is the one exchanges and spreadsheets produce: a header line, then
one trade per row. Required columns, in any order (extra columns are ignored;
header names are matched case-insensitively, surrounding spaces ignored)::

    timestamp,symbol,side,qty,price,fee,fee_currency,trade_id

An optional `order_id` column is carried into `Fill.order_id` when present.

Field rules:

- `timestamp`: ISO 8601 (`2024-03-01T09:30:00`, `...Z`, `...+02:00`, `...+0200`,
  a space instead of `T`, up to 9 fractional digits; no offset means UTC) or an
  integer epoch in **milliseconds**. Converted exactly to `Fill.ts_ns`.
- `side`: `buy` or `sell`, any case.
- `qty`, `price`: plain decimal numbers (`1`, `0.5`, `-2.5e-3` syntax), finite,
  strictly positive. `fee`: finite, may be negative (a rebate). Numbers are
  kept exact; at most 30 digits before the point and 40 after are accepted.
- `symbol`, `trade_id`: non-empty. `fee_currency` may be empty.

The whole file is validated before anything is returned: the first bad row
raises `TradeFileError` naming the file, the line and the field. Rows are
returned in file order; this module never sorts, deduplicates or computes.
It reads files and nothing else: no network, no clocks, no global state.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from posbus.actors.model.errors import PosbusError
from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side

REQUIRED_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "symbol",
    "side",
    "qty",
    "price",
    "fee",
    "fee_currency",
    "trade_id",
)
"""Columns every trade file must have, in the order the docs list them."""

OPTIONAL_COLUMNS: tuple[str, ...] = ("order_id",)
"""Columns used when present."""

MAX_INTEGER_DIGITS = 30
"""Most digits a number may have before the decimal point (also after expanding an exponent)."""

MAX_DECIMAL_PLACES = 40
"""Most digits a number may have after the decimal point (also after expanding an exponent)."""

ACCOUNT = "default"
"""Trade exports are single-account: every fill is booked to this account."""

# A strict number syntax: Decimal() alone would also take "1_000", "NaN",
# "Infinity" and non-ASCII digits, none of which belong in a ledger file.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_EPOCH_MS = re.compile(r"\d+")
# The fraction is split off because datetime keeps only microseconds and
# exports may carry nanoseconds; fromisoformat() checks the rest.
_ISO_8601 = re.compile(
    r"(?P<head>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2})?)"
    r"(?:[.,](?P<frac>\d{1,9}))?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000


class TradeFileError(PosbusError):
    """A trade file that cannot be read or holds an invalid row; nothing was returned.

    `line` is the 1-based physical line (1 is the header) or None for a
    whole-file problem; `field` is the column at fault or None. `str()` reads
    like a compiler message: `trades.csv:7: field 'price': not a number: 'abc'`.
    """

    def __init__(self, path: str, line: int | None, field: str | None, message: str) -> None:
        location = path if line is None else f"{path}:{line}"
        where = f"field '{field}': " if field is not None else ""
        super().__init__(f"{location}: {where}{message}")
        self.path = path
        self.line = line
        self.field = field
        self.detail = message

    def __str__(self) -> str:
        return self.message

    def context(self) -> dict[str, object]:
        """The error as a plain dict, with path, line and field."""
        return {
            **super().context(),
            "path": self.path,
            "line": self.line,
            "field": self.field,
            "detail": self.detail,
        }


class _FieldError(Exception):
    """A bad value in one field; `read_trades` adds the path and line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def read_trades(path: str | os.PathLike[str]) -> list[Fill]:
    """Parse and validate a whole trade-history CSV and return its fills in file order.

    Blank lines are skipped. A header without rows is a valid, empty history
    (returns []); a file with no header at all is an error. Raises
    `TradeFileError` for a missing or unreadable file, a missing column, or
    the first invalid row (the error names line and field).
    """
    shown = os.fspath(path)
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            return _parse(shown, _Lines(shown, handle))
    except FileNotFoundError:
        raise TradeFileError(shown, None, None, "no such file") from None
    except OSError as exc:
        raise TradeFileError(shown, None, None, f"cannot read: {exc.strerror or exc}") from exc


def parse_timestamp_ns(text: str) -> int:
    """Convert an ISO 8601 timestamp or a millisecond epoch integer to epoch nanoseconds.

    Exact: fractional seconds up to 9 digits are kept to the nanosecond. A
    timestamp without offset is UTC. Raises ValueError for anything else.
    """
    value = text.strip()
    if _EPOCH_MS.fullmatch(value):
        return int(value) * _NS_PER_MS
    match = _ISO_8601.fullmatch(value)
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp or epoch milliseconds: {text!r}")
    tz = match["tz"]
    offset = "+00:00" if tz is None or tz in "Zz" else tz
    try:
        moment = datetime.fromisoformat(match["head"].replace("t", "T") + offset)
    except ValueError:
        raise ValueError(f"not a valid date and time: {text!r}") from None
    whole_seconds = (moment - _EPOCH) // timedelta(seconds=1)
    fraction_ns = int((match["frac"] or "").ljust(9, "0"))
    return whole_seconds * _NS_PER_S + fraction_ns


def parse_decimal(text: str) -> Decimal:
    """Parse a plain decimal number exactly; raise ValueError for anything else.

    Refused: NaN, infinities, other syntax (`1_000`, `1,5`), and magnitudes
    beyond `MAX_INTEGER_DIGITS` integer digits or `MAX_DECIMAL_PLACES` places.
    """
    value = text.strip()
    if not _NUMBER.fullmatch(value):
        if value.lower().lstrip("+-") in ("nan", "snan", "inf", "infinity"):
            raise ValueError(f"not a finite number: {text!r}")
        raise ValueError(f"not a number: {text!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:  # unreachable after the regex; kept so nothing leaks untyped
        raise ValueError(f"not a number: {text!r}") from None
    # Exact ledger arithmetic grows with the exponent spread of its inputs: a
    # stray "1e-999999" would make every later sum millions of digits long.
    exponent = number.as_tuple().exponent
    if (
        not isinstance(exponent, int)
        or number.adjusted() >= MAX_INTEGER_DIGITS
        or -exponent > MAX_DECIMAL_PLACES
    ):
        raise ValueError(
            f"out of range (at most {MAX_INTEGER_DIGITS} digits before the point"
            f" and {MAX_DECIMAL_PLACES} after it): {text!r}"
        )
    return number


def _parse(path: str, reader: _Lines) -> list[Fill]:
    header = reader.next_row()
    while header is not None and _is_blank(header):
        header = reader.next_row()
    if header is None:
        raise TradeFileError(
            path, None, None, f"empty file: expected a header line {','.join(REQUIRED_COLUMNS)}"
        )
    columns = _column_index(path, reader.line, header)
    fills: list[Fill] = []
    while (row := reader.next_row()) is not None:
        if _is_blank(row):
            continue
        if len(row) > len(header):
            raise TradeFileError(
                path,
                reader.line,
                None,
                f"row has {len(row)} values but the header has {len(header)} columns",
            )
        try:
            fills.append(_fill(row, columns, len(header)))
        except _FieldError as exc:
            raise TradeFileError(path, reader.line, exc.field, exc.message) from None
    return fills


class _Lines:
    """Wraps csv.reader so decoding and CSV errors come out typed, with a line number."""

    def __init__(self, path: str, handle: Iterable[str]) -> None:
        self._path = path
        self._rows = csv.reader(handle)
        self.line = 0

    def next_row(self) -> list[str] | None:
        try:
            row = next(self._rows)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise TradeFileError(self._path, self.line + 1, None, "not valid UTF-8") from None
        except csv.Error as exc:
            raise TradeFileError(self._path, self.line + 1, None, f"malformed CSV: {exc}") from None
        # csv.reader counts physical lines; a quoted field may span several.
        self.line = self._rows.line_num
        return row


def _is_blank(row: list[str]) -> bool:
    return all(not cell.strip() for cell in row)


def _column_index(path: str, line: int, header: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, raw in enumerate(header):
        name = raw.strip().lower()
        if name in index and name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
            raise TradeFileError(path, line, name, "column appears twice in the header")
        index.setdefault(name, position)
    missing = [name for name in REQUIRED_COLUMNS if name not in index]
    if missing:
        listed = ", ".join(f"'{name}'" for name in missing)
        raise TradeFileError(
            path,
            line,
            None,
            f"missing column{'s' if len(missing) > 1 else ''} {listed} in the header"
            f" (required: {','.join(REQUIRED_COLUMNS)})",
        )
    return index


def _fill(row: list[str], columns: dict[str, int], width: int) -> Fill:
    def cell(name: str) -> str:
        position = columns[name]
        if position >= len(row):
            raise _FieldError(name, f"missing (row has {len(row)} values, header has {width})")
        return row[position].strip()

    def required(name: str) -> str:
        value = cell(name)
        if not value:
            raise _FieldError(name, "empty")
        return value

    def number(name: str) -> Decimal:
        text = required(name)
        try:
            return parse_decimal(text)
        except ValueError as exc:
            raise _FieldError(name, str(exc)) from None

    def positive(name: str) -> Decimal:
        value = number(name)
        if value <= 0:
            raise _FieldError(name, f"must be greater than 0: {cell(name)!r}")
        return value

    timestamp = required("timestamp")
    try:
        ts_ns = parse_timestamp_ns(timestamp)
    except ValueError as exc:
        raise _FieldError("timestamp", str(exc)) from None
    symbol = required("symbol")
    side_text = required("side").lower()
    if side_text not in (Side.BUY.value, Side.SELL.value):
        raise _FieldError("side", f"must be buy or sell: {cell('side')!r}")
    qty = positive("qty")
    price = positive("price")
    fee = number("fee")
    fee_currency = cell("fee_currency")
    trade_id = required("trade_id")
    order_id = cell("order_id") if "order_id" in columns and columns["order_id"] < len(row) else ""
    return Fill(
        trade_id=trade_id,
        account=ACCOUNT,
        symbol=symbol,
        side=Side(side_text),
        qty=qty,
        price=price,
        fee=fee,
        fee_currency=fee_currency,
        ts_ns=ts_ns,
        order_id=order_id,
    )
