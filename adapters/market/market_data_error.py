"""The one error a market data file can raise: it names the file, the row and the field."""

from __future__ import annotations

from posbus.actors.model.errors import PosbusError


class MarketDataError(PosbusError):
    """A market data file that cannot be replayed as it is; nothing after it was replayed.

    `where` locates the problem like a compiler message: `quotes.csv:7` (CSV
    line, 1 is the header), `quotes.parquet: row 6` (Parquet data row), or
    just the file for a whole-file problem; `field` is the column at fault or
    None. `str()`: `quotes.csv:7: field 'bid': not a number: 'abc'`.
    """

    def __init__(self, where: str, message: str, field: str | None = None) -> None:
        column = f"field '{field}': " if field is not None else ""
        super().__init__(f"{where}: {column}{message}")
        self.where = where
        self.field = field
        self.problem = message
