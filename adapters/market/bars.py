"""OHLCV bars: `timestamp, symbol, open, high, low, close[, volume]`, one bar per row.

A bar is replayed as four locked quotes (bid = ask = last) walking its
prices: open, then the extreme nearer to the open (high on a tie), then the
other extreme, then close. `timestamp` is the bar's open time; the bar
interval is the gap between the file's first two distinct timestamps, and
the four prices are stamped at open + 0, 1/4, 2/4 and 3/4 of it (all at the
open time when the file has a single timestamp). Bars of several symbols
sharing a timestamp are interleaved step by step, so time never goes back.

Skipped and counted: a bar with a missing or NaN price (`missing_price`).
Errors naming the row: a price <= 0, high below open/close or low above
them, a bad cell, a timestamp earlier than the row before, or bars of one
file closer together than its interval (their steps would overlap).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from posbus.adapters.market.fields import parse_number, parse_timestamp
from posbus.adapters.market.market_data_error import MarketDataError
from posbus.adapters.market.skips import MISSING_PRICE, SkippedRows
from posbus.adapters.market.table import Table
from posbus.bus.messages import MarketUpdate
from posbus.bus.wire_error import WireError

COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close")
STEPS = 4
"""Quotes per bar."""


@dataclass(frozen=True, slots=True)
class _Bar:
    where: str
    symbol: str
    path: tuple[Decimal, Decimal, Decimal, Decimal]


def read_bars(table: Table, skipped: SkippedRows) -> Iterator[MarketUpdate]:
    """The file's bars as four locked quotes each, in time order."""
    groups = _groups(table, skipped)
    first = next(groups, None)
    if first is None:
        return
    second = next(groups, None)
    interval = 0 if second is None else second[0] - first[0]
    previous_ts: int | None = None
    for ts, bars in _chain(first, second, groups):
        if previous_ts is not None and ts - previous_ts < interval:
            raise MarketDataError(
                bars[0].where,
                f"bar at {ts} ns starts {ts - previous_ts} ns after the previous one, less "
                f"than the bar interval of {interval} ns (the gap of the first two bars)",
                "timestamp",
            )
        previous_ts = ts
        for step in range(STEPS):
            stamp = ts + interval * step // STEPS
            for bar in bars:
                price = bar.path[step]
                try:
                    yield MarketUpdate(bar.symbol, price, price, price, None, None, stamp)
                except WireError as exc:
                    raise MarketDataError(bar.where, str(exc)) from None


def _chain(
    first: tuple[int, list[_Bar]],
    second: tuple[int, list[_Bar]] | None,
    rest: Iterator[tuple[int, list[_Bar]]],
) -> Iterator[tuple[int, list[_Bar]]]:
    yield first
    if second is not None:
        yield second
        yield from rest


def _groups(table: Table, skipped: SkippedRows) -> Iterator[tuple[int, list[_Bar]]]:
    """Bars grouped by timestamp, in file order."""
    index = table.index(COLUMNS)
    missing = [c for c in COLUMNS if c not in index]
    if missing:
        raise MarketDataError(table.name, f"missing column(s) {missing} for OHLCV bars")
    cache: dict[str, Decimal] = {}
    group_ts: int | None = None
    group: list[_Bar] = []
    for row, cells in table.rows([index[c] for c in COLUMNS]):
        where = table.locate(row)
        field = "timestamp"
        try:
            ts = parse_timestamp(cells[0])
            prices = []
            for name, cell in zip(COLUMNS[2:], cells[2:], strict=True):
                field = name
                prices.append(parse_number(cell, cache))
        except ValueError as exc:
            raise MarketDataError(where, str(exc), field) from None
        if group_ts is not None and ts < group_ts:
            raise MarketDataError(
                where,
                f"timestamp {ts} ns is before the previous row's {group_ts} ns: "
                "the file must be sorted by time",
                "timestamp",
            )
        if any(p is None for p in prices):
            skipped.skip(MISSING_PRICE, where)
            continue
        o, h, lo, c = (p for p in prices if p is not None)
        if min(o, h, lo, c) <= 0:
            raise MarketDataError(where, "prices must be positive")
        if h < max(o, c) or lo > min(o, c):
            raise MarketDataError(
                where, f"inconsistent bar: high {h} / low {lo} do not contain open {o}, close {c}"
            )
        high_first = h - o <= o - lo
        path = (o, h, lo, c) if high_first else (o, lo, h, c)
        if group_ts is not None and ts != group_ts:
            yield group_ts, group
            group = []
        group_ts = ts
        group.append(_Bar(where, cells[1], path))
    if group_ts is not None:
        yield group_ts, group
