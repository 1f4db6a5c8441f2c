"""Quote ticks: `timestamp, symbol, bid, ask[, bid_size, ask_size]`, one top of book per row.

Each row becomes one MarketUpdate. A row with a missing or NaN bid or ask
is skipped (`missing_price`), as is a crossed quote, bid > ask
(`crossed_quote`): both are counted and reported, never replayed. A bid or
ask <= 0, a negative size, a bad number or timestamp, or a timestamp earlier
than the row before (the file must be in time order; equal is fine) is a
`MarketDataError` naming the row. A missing or NaN size is just unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from posbus.adapters.market.fields import epoch_to_ns, parse_number, parse_timestamp
from posbus.adapters.market.market_data_error import MarketDataError
from posbus.adapters.market.skips import CROSSED_QUOTE, MISSING_PRICE, SkippedRows
from posbus.adapters.market.table import Table
from posbus.bus.messages import MarketUpdate
from posbus.bus.wire_error import WireError

COLUMNS = ("timestamp", "symbol", "bid", "ask")
OPTIONAL = ("bid_size", "ask_size")
_ZERO = Decimal(0)


def read_quotes(table: Table, skipped: SkippedRows) -> Iterator[MarketUpdate]:
    """The file's quotes as MarketUpdates, in file order (see the module docstring)."""
    index = table.index((*COLUMNS, *OPTIONAL))
    missing = [c for c in COLUMNS if c not in index]
    if missing:
        raise MarketDataError(table.name, f"missing column(s) {missing} for quote ticks")
    wanted = [index[c] for c in COLUMNS]
    sizes = "bid_size" in index and "ask_size" in index
    if sizes:
        wanted += [index["bid_size"], index["ask_size"]]
    cache: dict[str, Decimal] = {}
    cached = cache.get
    last_ts = -1
    field = "timestamp"
    for row, cells in table.rows(wanted):
        # The hot loop of a replay: cached prices and integer epochs take the short way.
        try:
            field = "timestamp"
            raw_ts = cells[0]
            if type(raw_ts) is str and raw_ts.isdigit():
                ts = epoch_to_ns(int(raw_ts))
            else:
                ts = parse_timestamp(raw_ts)
            field = "bid"
            bid = cached(cells[2]) or parse_number(cells[2], cache)
            field = "ask"
            ask = cached(cells[3]) or parse_number(cells[3], cache)
            bid_size = ask_size = None
            if sizes:
                field = "bid_size"
                bid_size = cached(cells[4]) or parse_number(cells[4], cache)
                field = "ask_size"
                ask_size = cached(cells[5]) or parse_number(cells[5], cache)
        except (ValueError, TypeError) as exc:
            raise MarketDataError(table.locate(row), str(exc), field) from None
        if ts < last_ts:
            raise MarketDataError(
                table.locate(row),
                f"timestamp {ts} ns is before the previous row's {last_ts} ns: "
                "the file must be sorted by time",
                "timestamp",
            )
        last_ts = ts
        if bid is None or ask is None:
            skipped.skip(MISSING_PRICE, table.locate(row))
            continue
        if bid <= _ZERO or ask <= _ZERO:
            raise MarketDataError(table.locate(row), f"bid {bid} and ask {ask} must be positive")
        if bid > ask:
            skipped.skip(CROSSED_QUOTE, table.locate(row))
            continue
        try:
            yield MarketUpdate(cells[1], bid, ask, None, bid_size, ask_size, ts)
        except WireError as exc:
            raise MarketDataError(table.locate(row), str(exc)) from None
