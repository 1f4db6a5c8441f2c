"""Rows of a market data file, CSV or Parquet, with their location for error messages.

- CSV (`.csv`, `.csv.gz` read as text): a header row, then one row per record;
  cells are text. Row numbers are physical line numbers (1 is the header).
- Parquet (`.parquet`, `.pq`): read in batches through pyarrow, which is an
  optional dependency (`pip install 'posbus[parquet]'`); cells keep their
  types (numbers, text; timestamp columns become ns since the epoch). Row
  numbers count data rows from 1.

Column names are matched case-insensitively, ignoring surrounding spaces.
Streaming: a file is never held in memory whole.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from posbus.adapters.market.market_data_error import MarketDataError

_PARQUET = (".parquet", ".pq")
_BATCH_ROWS = 65_536


class Table:
    """One open data file: its column names and an iterator of (row number, cells)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.is_parquet = path.suffix.lower() in _PARQUET
        if not path.is_file():
            raise MarketDataError(self.name, "no such file")
        self.columns = self._read_columns()

    def locate(self, row: int) -> str:
        """Where row `row` is, for an error message."""
        return f"{self.name}: row {row}" if self.is_parquet else f"{self.name}:{row}"

    def index(self, names: Sequence[str]) -> dict[str, int]:
        """The position of each of `names` that the file has."""
        return {name: self.columns.index(name) for name in names if name in self.columns}

    def row_count(self) -> int:
        """The number of data rows (Parquet metadata; for CSV, lines after the header)."""
        if self.is_parquet:
            return int(self._parquet().metadata.num_rows)
        count = 0
        with self._open_binary() as fh:
            while chunk := fh.read(1 << 20):
                count += chunk.count(b"\n")
        return max(0, count - 1)

    def rows(self, wanted: Sequence[int]) -> Iterator[tuple[int, list[Any]]]:
        """(row number, cells of the `wanted` column positions), in file order."""
        if self.is_parquet:
            yield from self._parquet_rows(wanted)
            return
        with self._open_text() as fh:
            reader = csv.reader(fh)
            next(reader, None)
            width = len(self.columns)
            for cells in reader:
                if not cells:
                    continue
                if len(cells) != width:
                    raise MarketDataError(
                        self.locate(reader.line_num),
                        f"{len(cells)} cells, the header has {width}",
                    )
                yield reader.line_num, [cells[i] for i in wanted]

    # -- CSV -------------------------------------------------------------------------

    def _open_binary(self) -> IO[bytes]:
        if self.name.endswith(".gz"):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def _open_text(self) -> IO[str]:
        if self.name.endswith(".gz"):
            return gzip.open(self.path, "rt", encoding="utf-8", newline="")
        return open(self.path, encoding="utf-8", newline="")

    def _read_columns(self) -> list[str]:
        if self.is_parquet:
            names = list(self._parquet().schema_arrow.names)
        else:
            try:
                with self._open_text() as fh:
                    header = next(csv.reader(fh), None)
            except (OSError, UnicodeDecodeError, csv.Error) as exc:
                raise MarketDataError(self.name, f"cannot read: {exc}") from exc
            if header is None:
                raise MarketDataError(self.name, "empty file: a header row is required")
            names = header
        columns = [name.strip().lower() for name in names]
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise MarketDataError(self.name, f"duplicate columns {duplicates}")
        return columns

    # -- Parquet ---------------------------------------------------------------------

    def _parquet(self) -> Any:
        try:
            import pyarrow.parquet as pq  # noqa: PLC0415 -- optional dependency
        except ImportError as exc:
            raise MarketDataError(
                self.name, "reading Parquet needs pyarrow: pip install 'posbus[parquet]'"
            ) from exc
        try:
            return pq.ParquetFile(self.path)
        except (OSError, ValueError) as exc:
            raise MarketDataError(self.name, f"not a readable Parquet file: {exc}") from exc

    def _parquet_rows(self, wanted: Sequence[int]) -> Iterator[tuple[int, list[Any]]]:
        import pyarrow as pa  # noqa: PLC0415 -- optional dependency

        names = [self._parquet().schema_arrow.names[i] for i in wanted]
        row = 0
        for batch in self._parquet().iter_batches(batch_size=_BATCH_ROWS, columns=names):
            columns = []
            for column in batch.columns:
                if pa.types.is_timestamp(column.type):
                    unit = column.type.unit
                    scale = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[unit]
                    values = column.cast(pa.int64()).to_pylist()
                    columns.append([None if v is None else v * scale for v in values])
                else:
                    columns.append(column.to_pylist())
            for cells in zip(*columns, strict=True):
                row += 1
                yield row, list(cells)
