"""The exposure book: every position the risk engine knows, and their aggregates.

Equity (starting equity + realized + unrealized P&L), gross notional, the
correlation-weighted net exposure per group and in total, and the number of
open positions are kept by deltas: replacing one exposure subtracts what the
old one added and adds the new one's share, O(1) in the number of positions
(O(log n) with the mark ages, `risk_mark_ages`). Each figure is computed into
locals before anything is assigned, so a trapped decimal signal (`EXACT`)
leaves the book unchanged. x + (new - old) is (x + new) - old exactly, with
the same exponent and sign of zero, so the order of updates never shows.
It also keeps each symbol's latest mark, group and correlation (`SymbolInfo`).

Working orders: a position's exposure carries the notionals of its working
buys and sells (`PositionExposure.working_*`). If every working order filled,
its notional would end anywhere between lo = qty * mark - sells and hi =
qty * mark + buys (an unmarked position counts its orders only). The
pre-trade checks need the worst cases: the gross if each position ends at its
larger |end| (`worst_gross`), and per group and in total the
correlation-weighted net if every position ends at its highest (`total_up`)
or its lowest (`total_down`) weighted end: whichever way the orders fill,
the net lies between the two. The book keeps, by the same deltas, only what
working orders add to the gross and the net (`_Extra`), summed over the
positions that have some, so a position without working orders costs no more
than before; each worst case is its figure plus that sum, O(1).

Pure: no clock, no thread, no I/O; run by the risk engine's owner only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from posbus.actors.model.risk_arithmetic import ZERO, add, mul, sub
from posbus.actors.model.risk_exposure import PositionExposure
from posbus.actors.model.risk_mark_ages import MarkAges


@dataclass(slots=True)
class SymbolInfo:
    """The latest mark of a symbol (any account, or the market) and its correlation group.

    Owned by the book, which updates it in place; market marks are written on it
    by the engine's `MarketMarks`.
    """

    mark: Decimal | None
    mark_ts_ns: int | None
    group: str
    correlation: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "mark": None if self.mark is None else str(self.mark),
            "mark_ts_ns": self.mark_ts_ns,
            "group": self.group,
            "correlation": str(self.correlation),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SymbolInfo:
        return cls(
            mark=None if raw["mark"] is None else Decimal(raw["mark"]),
            mark_ts_ns=None if raw["mark_ts_ns"] is None else int(raw["mark_ts_ns"]),
            group=str(raw["group"]),
            correlation=Decimal(raw["correlation"]),
        )


class ExposureBook:
    """The stored exposures of one desk and every aggregate over them, kept by deltas."""

    def __init__(self, starting_equity: Decimal) -> None:
        self._starting_equity = starting_equity
        self._positions: dict[tuple[str, str], PositionExposure] = {}
        # (gross, net) each stored exposure adds to the sums: replacing it subtracts these.
        self._contributions: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        self._ages = MarkAges(self._positions)
        # Every pre-trade check asks: bound once, not forwarded per call.
        self.oldest_open = self._ages.oldest_open
        """The open position with the stalest (or no) mark (`MarkAges.oldest_open`)."""
        self.symbols: dict[str, SymbolInfo] = {}
        """What the book knows of each symbol an exposure registered (read; written here)."""
        # Each symbol's positions (in the order they were first told), and how
        # many of them are open, for pricing them at a market mark.
        self._by_symbol: dict[str, list[tuple[str, str]]] = {}
        self._open_symbols: dict[str, int] = {}
        self._realized = ZERO
        # starting equity + realized P&L: equity is this plus the unrealized P&L.
        self._booked_equity = starting_equity
        self._unrealized = ZERO
        self.equity = starting_equity
        """Starting equity + realized P&L (fees included) + unrealized P&L."""
        self.gross = ZERO
        """Sum of |qty * mark| over the marked positions."""
        self.total_net = ZERO
        """Sum of qty * mark * correlation over the marked positions (signed)."""
        self._group_net: dict[str, Decimal] = {}
        self._group_members: dict[str, int] = {}
        # What working orders add (worst gross, up, down over the gross and the net):
        # per position that has some, in total, and per group (up, down).
        self._extras: dict[tuple[str, str], _Extra] = {}
        self._extra = _NO_EXTRA
        self._group_extra: dict[str, _Extra] = {}
        self.open_count = 0
        """How many positions have qty != 0."""

    # -- reading ----------------------------------------------------------------

    def group_net(self, group: str) -> Decimal:
        """The signed net exposure of `group` (0 for a group no position names)."""
        return self._group_net.get(group, ZERO)

    @property
    def worst_gross(self) -> Decimal:
        """The gross if every working order filled, each position at its larger |end|."""
        return add(self.gross, self._extra[0])

    @property
    def total_up(self) -> Decimal:
        """The highest correlation-weighted net the working orders may bring (signed)."""
        return add(self.total_net, self._extra[1])

    @property
    def total_down(self) -> Decimal:
        """The lowest correlation-weighted net the working orders may bring (signed)."""
        return add(self.total_net, self._extra[2])

    def group_range(self, group: str) -> tuple[Decimal, Decimal]:
        """(highest, lowest) net of `group` its working orders may bring; (0, 0) if unnamed."""
        net = self._group_net.get(group, ZERO)
        extra = self._group_extra.get(group, _NO_EXTRA)
        return add(net, extra[1]), add(net, extra[2])

    def group_nets(self) -> list[tuple[str, Decimal]]:
        """(group, signed net) for every group a position names, sorted by group."""
        return sorted(self._group_net.items())

    def position(self, key: tuple[str, str]) -> PositionExposure | None:
        return self._positions.get(key)

    def positions(self) -> list[PositionExposure]:
        """Every stored exposure, flat ones included, in the order first told (O(n))."""
        return list(self._positions.values())

    def symbol_positions(self, symbol: str) -> Iterator[PositionExposure]:
        """The exposures of `symbol`, every account, in the order first told."""
        positions = self._positions
        for key in self._by_symbol.get(symbol, ()):
            yield positions[key]

    def open_symbol_count(self) -> int:
        """How many symbols have at least one open position."""
        return len(self._open_symbols)

    # -- changing ---------------------------------------------------------------

    def apply(self, exp: PositionExposure) -> None:
        """Replace the exposure of exp's account+symbol and update every aggregate by its delta.

        Also records exp's mark as its symbol's latest when it is (by mark
        time), and the group and correlation exp reports.
        """
        key = (exp.account, exp.symbol)
        old = self._positions.get(key)
        mark = exp.mark
        if mark is None:
            # Unmarked positions stay out of the sums and block new risk instead
            # (the `missing_data` check), so no guessed price enters an aggregate.
            new_gross = new_net = ZERO
        else:
            notional = mul(exp.qty, mark)
            new_gross = notional.copy_abs()
            new_net = mul(notional, exp.correlation)
        # No working order, before or now (the common case): nothing else to add.
        extras = (
            self._extras_after(exp, old, new_gross, new_net)
            if exp.working_buy_notional or exp.working_sell_notional or key in self._extras
            else None
        )
        group, group_net = exp.group, self._group_net
        unrealized = add(self._unrealized, exp.unrealized_pnl)
        # Truth of a Decimal, not `!= 0`: no int to convert on every mark.
        is_open, was_open = (1 if exp.qty else 0), 0
        left: tuple[str, Decimal] | None = None  # the group old leaves, and its net after
        if old is None:
            realized = add(self._realized, exp.realized_pnl)
            gross = add(self.gross, new_gross)
            total = add(self.total_net, new_net)
            net_after = add(group_net.get(group, ZERO), new_net)
        else:
            if exp.realized_pnl is old.realized_pnl:
                # A mark change: r + p - p is r, with r's exponent (p's is already in it).
                realized = self._realized
            else:
                realized = sub(add(self._realized, exp.realized_pnl), old.realized_pnl)
            unrealized = sub(unrealized, old.unrealized_pnl)
            was_open = 1 if old.qty else 0
            old_gross, old_net = self._contributions[key]
            gross = add(self.gross, sub(new_gross, old_gross))
            net_change = sub(new_net, old_net)
            total = add(self.total_net, net_change)
            if old.group == group:
                net_after = add(group_net[group], net_change)
            else:
                net_after = add(group_net.get(group, ZERO), new_net)
                left = (old.group, sub(group_net[old.group], old_net))
        booked = (
            self._booked_equity
            if realized is self._realized
            else add(self._starting_equity, realized)
        )
        equity = add(booked, unrealized)

        self._positions[key], self._contributions[key] = exp, (new_gross, new_net)
        self._realized, self._booked_equity, self._unrealized = realized, booked, unrealized
        self.equity, self.gross, self.total_net = equity, gross, total
        self.open_count = open_count = self.open_count + is_open - was_open
        group_net[group] = net_after
        self._set_extras(key, extras)
        if old is None or left is not None:
            self._join_group(group, left)
        if old is None or is_open != was_open:
            self._index(key, exp, old)
        self._note_symbol(exp)
        self._ages.record(key, exp, open_count)

    def reprice(self, symbol: str) -> None:
        """Price every position of `symbol` at its latest mark, as its owner would report it.

        Each gets the same quantity and realized P&L, its unrealized P&L moved
        by qty * the mark's move, and is applied like any other exposure. Each
        takes the next update seq even when its mark did not change, as if told
        the mark: the stale-mark check names the same position among equally
        old ones. An open position without a mark of its own stays unmarked
        (its P&L is unknown: the position's own word will tell).
        """
        info = self.symbols[symbol]
        mark = info.mark
        mark_ts = info.mark_ts_ns
        if mark is None or mark_ts is None:
            return
        positions = self._positions
        for key in self._by_symbol[symbol]:
            exp = positions[key]
            if exp.mark_ts_ns == mark_ts and exp.mark == mark:
                self._ages.touch(key)
                continue
            if exp.mark is None:
                if exp.qty:
                    continue
                unrealized = ZERO
            elif exp.qty:
                unrealized = add(exp.unrealized_pnl, mul(exp.qty, sub(mark, exp.mark)))
            else:
                unrealized = exp.unrealized_pnl
            self.apply(
                PositionExposure(
                    exp.account,
                    symbol,
                    exp.qty,
                    mark,
                    mark_ts,
                    exp.realized_pnl,
                    unrealized,
                    exp.group,
                    exp.correlation,
                    exp.working_buy_qty,
                    exp.working_buy_notional,
                    exp.working_sell_qty,
                    exp.working_sell_notional,
                )
            )

    # -- snapshot ---------------------------------------------------------------

    def symbols_to_dict(self) -> dict[str, dict[str, Any]]:
        """Every symbol's latest mark, group and correlation, as plain values."""
        return {symbol: info.to_dict() for symbol, info in self.symbols.items()}

    def restore_symbols(self, raw: dict[str, Any]) -> None:
        """Replace what the book knows of every symbol by `symbols_to_dict` output."""
        self.symbols = {str(symbol): SymbolInfo.from_dict(info) for symbol, info in raw.items()}

    # -- internals --------------------------------------------------------------

    def _index(
        self, key: tuple[str, str], exp: PositionExposure, old: PositionExposure | None
    ) -> None:
        """Keep the positions of each symbol, and how many of them are open."""
        if old is None:
            self._by_symbol.setdefault(exp.symbol, []).append(key)
        opened = (exp.qty != 0) - (old is not None and old.qty != 0)
        if opened:
            holders = self._open_symbols.get(exp.symbol, 0) + opened
            if holders:
                self._open_symbols[exp.symbol] = holders
            else:
                del self._open_symbols[exp.symbol]

    def _join_group(self, group: str, left: tuple[str, Decimal] | None) -> None:
        """A position entered `group`: new, or moved from `left` (the group it left, and
        that group's net after it left)."""
        self._group_members[group] = self._group_members.get(group, 0) + 1
        if left is None:
            return
        group, net = left
        members = self._group_members[group] - 1
        if members:
            self._group_members[group] = members
            self._group_net[group] = net
        else:
            # The last member left: its net is exactly zero, and a group that
            # no position names must not linger in metrics and snapshots.
            del self._group_members[group]
            del self._group_net[group]
            self._group_extra.pop(group, None)

    def _extras_after(
        self,
        exp: PositionExposure,
        old: PositionExposure | None,
        gross: Decimal,
        net: Decimal,
    ) -> tuple[_Extra | None, _Extra, dict[str, _Extra]]:
        """What working orders add after exp replaces `old`: exp's own extra (None
        without working orders), the total, and the groups that change. Computed, not
        assigned (`_set_extras` does), so a trapped signal leaves the book unchanged."""
        old_extra = self._extras.get((exp.account, exp.symbol))
        new_extra = _extra_of(exp, gross, net)
        change = _minus(new_extra, old_extra)
        total = _plus(self._extra, change)
        groups = self._group_extra
        group = exp.group
        if old is None or old.group == group:
            return new_extra, total, {group: _plus(groups.get(group, _NO_EXTRA), change)}
        moved = {group: _plus(groups.get(group, _NO_EXTRA), _minus(new_extra, None))}
        moved[old.group] = _minus(groups.get(old.group, _NO_EXTRA), old_extra)
        return new_extra, total, moved

    def _set_extras(
        self, key: tuple[str, str], extras: tuple[_Extra | None, _Extra, dict[str, _Extra]] | None
    ) -> None:
        """Assign what `_extras_after` computed (None: nothing changes)."""
        if extras is None:
            return
        own, self._extra, groups = extras
        if own is None:
            self._extras.pop(key, None)
        else:
            self._extras[key] = own
        self._group_extra.update(groups)

    def _note_symbol(self, exp: PositionExposure) -> None:
        """Record exp's mark as its symbol's latest if it is (by mark time, from any
        account), and the group and correlation exp reports."""
        info = self.symbols.get(exp.symbol)
        if info is None:
            self.symbols[exp.symbol] = SymbolInfo(
                exp.mark, exp.mark_ts_ns, exp.group, exp.correlation
            )
            return
        mark_ts = exp.mark_ts_ns
        if mark_ts is not None and (info.mark_ts_ns is None or mark_ts >= info.mark_ts_ns):
            info.mark = exp.mark
            info.mark_ts_ns = mark_ts
        info.group = exp.group
        info.correlation = exp.correlation


# (worst gross, up, down) a position's working orders add over its gross and its net.
_Extra = tuple[Decimal, Decimal, Decimal]
_NO_EXTRA: _Extra = (ZERO, ZERO, ZERO)


def _extra_of(exp: PositionExposure, gross: Decimal, net: Decimal) -> _Extra | None:
    """What exp's working orders add: it ends between notional - sells and notional +
    buys if they all fill. None when no order works."""
    if not (exp.working_buy_notional or exp.working_sell_notional):
        return None
    notional = ZERO if exp.mark is None else mul(exp.qty, exp.mark)
    high = add(notional, exp.working_buy_notional)
    low = sub(notional, exp.working_sell_notional)
    worst = max(high.copy_abs(), low.copy_abs())
    high_weighted = mul(high, exp.correlation)
    low_weighted = mul(low, exp.correlation)
    up, down = (
        (high_weighted, low_weighted)
        if high_weighted >= low_weighted
        else (low_weighted, high_weighted)
    )
    return sub(worst, gross), sub(up, net), sub(down, net)


def _plus(a: _Extra, b: _Extra) -> _Extra:
    return add(a[0], b[0]), add(a[1], b[1]), add(a[2], b[2])


def _minus(a: _Extra | None, b: _Extra | None) -> _Extra:
    a = _NO_EXTRA if a is None else a
    if b is None:
        return a
    return sub(a[0], b[0]), sub(a[1], b[1]), sub(a[2], b[2])
