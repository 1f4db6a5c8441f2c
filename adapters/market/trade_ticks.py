"""Trade ticks: `timestamp, symbol, price[, qty]`, one trade per row.

A trade tick is replayed as a locked quote at the trade price: bid = ask =
last = price (a market order then fills at that price, moved by the
simulated slippage). A missing or NaN price skips the row (`missing_price`,
counted); a price <= 0, a bad cell or a timestamp earlier than the row
before is a `MarketDataError` naming the row. Other columns are ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from posbus.adapters.market.fields import parse_number, parse_timestamp
from posbus.adapters.market.market_data_error import MarketDataError
from posbus.adapters.market.skips import MISSING_PRICE, SkippedRows
from posbus.adapters.market.table import Table
from posbus.bus.messages import MarketUpdate
from posbus.bus.wire_error import WireError

COLUMNS = ("timestamp", "symbol", "price")


def read_trades(table: Table, skipped: SkippedRows) -> Iterator[MarketUpdate]:
    """The file's trades as locked-quote MarketUpdates, in file order."""
    index = table.index(COLUMNS)
    missing = [c for c in COLUMNS if c not in index]
    if missing:
        raise MarketDataError(table.name, f"missing column(s) {missing} for trade ticks")
    cache: dict[str, Decimal] = {}
    last_ts = -1
    for row, (raw_ts, symbol, raw_price) in table.rows([index[c] for c in COLUMNS]):
        field = "timestamp"
        try:
            ts = parse_timestamp(raw_ts)
            field = "price"
            price = parse_number(raw_price, cache)
        except ValueError as exc:
            raise MarketDataError(table.locate(row), str(exc), field) from None
        if ts < last_ts:
            raise MarketDataError(
                table.locate(row),
                f"timestamp {ts} ns is before the previous row's {last_ts} ns: "
                "the file must be sorted by time",
                "timestamp",
            )
        last_ts = ts
        if price is None:
            skipped.skip(MISSING_PRICE, table.locate(row))
            continue
        try:
            yield MarketUpdate(symbol, price, price, price, None, None, ts)
        except WireError as exc:
            raise MarketDataError(table.locate(row), str(exc)) from None
