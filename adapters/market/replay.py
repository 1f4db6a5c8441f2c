"""Market replay: the updates of one or more data files, merged in time order.

Each file is quote ticks, trade ticks or OHLCV bars, in CSV or Parquet (see
`table`, `quotes`, `trade_ticks`, `bars`); the kind follows from the header:
`bid` and `ask` make quotes, `open`/`high`/`low`/`close` bars, `price` trades.
Every file must be in time order on its own; the files are merged by
timestamp, ties going to the file given first, then to the row that comes
first. Rows that cannot be traded on are skipped and counted (`skipped`),
never dropped silently; anything else wrong is a `MarketDataError` naming
the file, the row and the field, raised when the replay reaches it.

Streaming and deterministic: the same files always give the same updates in
the same order, and no file is held in memory whole.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from posbus.adapters.market import bars, quotes, trade_ticks
from posbus.adapters.market.market_data_error import MarketDataError
from posbus.adapters.market.skips import SkippedRows
from posbus.adapters.market.table import Table
from posbus.bus.messages import MarketUpdate

QUOTES = "quotes"
TRADES = "trades"
BARS = "bars"

_READERS: dict[str, Callable[[Table, SkippedRows], Iterator[MarketUpdate]]] = {
    QUOTES: quotes.read_quotes,
    TRADES: trade_ticks.read_trades,
    BARS: bars.read_bars,
}
_PER_ROW = {QUOTES: 1, TRADES: 1, BARS: bars.STEPS}


def kind_of(table: Table) -> str:
    """Which kind of market data the file's header says it holds."""
    columns = set(table.columns)
    if {"bid", "ask"} <= columns:
        return QUOTES
    if {"open", "high", "low", "close"} <= columns:
        return BARS
    if "price" in columns:
        return TRADES
    raise MarketDataError(
        table.name,
        "cannot tell the kind of market data: quote ticks need bid and ask columns, "
        "bars open/high/low/close, trade ticks price; the header has "
        f"{table.columns}",
    )


class MarketReplay:
    """The merged updates of `paths`; iterate once. Files are opened (and their headers
    checked) when it is built, so a missing file or column fails before anything runs."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        if not paths:
            raise MarketDataError("--data", "at least one data file is needed")
        self.tables = [Table(Path(p)) for p in paths]
        self.kinds = [kind_of(t) for t in self.tables]
        self.skipped = SkippedRows()

    def estimated_updates(self) -> int:
        """How many updates the files hold, at most (skipped rows included)."""
        return sum(
            t.row_count() * _PER_ROW[kind] for t, kind in zip(self.tables, self.kinds, strict=True)
        )

    def __iter__(self) -> Iterator[MarketUpdate]:
        streams = [
            _READERS[kind](table, self.skipped)
            for table, kind in zip(self.tables, self.kinds, strict=True)
        ]
        if len(streams) == 1:
            return streams[0]
        # heapq.merge is stable: equal timestamps keep the order of the files given.
        return heapq.merge(*streams, key=_timestamp)


def _timestamp(update: MarketUpdate) -> int:
    return update.ts_ns
