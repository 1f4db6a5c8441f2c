"""Round-trip trades: a position's life from flat back to flat, cut out of its fills.

A round trip opens when a fill takes the position of an account+symbol away
from flat and closes when a fill brings it back to flat, or flips it (the
flipping fill closes one round trip and opens the next). Its P&L follows the
position accounting exactly (docs/accounting.md): the price
P&L of every reducing fill against the average entry price, the rounding the
average entry booked, minus every fee paid while it was open, opening fees
included, with a flipping fill's fee split pro rata as the position splits
it. So the P&L of the closed round trips plus that of the open one equals the
position's realized P&L, to the last digit.

Descriptive prices: `entry_price` is the quantity-weighted average price of
the fills that opened or grew it, `exit_price` that of the fills that reduced
or closed it; `qty` is the total quantity opened.

Pure: no clocks, no I/O. A fill whose trade id was already applied is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from posbus.actors.model.fill import Fill
from posbus.actors.model.position import LEDGER, FillEffect, Position
from posbus.actors.model.side import Side

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One closed (or, from `open_trips`, still open) round-trip trade.

    `side` is BUY for a long and SELL for a short. `pnl` includes every fee
    in `fees`. `exit_ts_ns` and `exit_price` are None while it is open.
    """

    account: str
    symbol: str
    side: Side
    entry_ts_ns: int
    exit_ts_ns: int | None
    entry_price: Decimal
    exit_price: Decimal | None
    qty: Decimal
    pnl: Decimal
    fees: Decimal

    @property
    def is_win(self) -> bool:
        """True when the trade made money; a P&L of exactly 0 is not a win."""
        return self.pnl > 0


class _Open:
    """The running totals of the open round trip of one account+symbol."""

    __slots__ = (
        "entry_notional",
        "entry_ts_ns",
        "exit_notional",
        "exit_qty",
        "fees",
        "opened_qty",
        "pnl",
        "side",
    )

    def __init__(self, side: Side, ts_ns: int) -> None:
        self.side = side
        self.entry_ts_ns = ts_ns
        self.opened_qty = _ZERO
        self.entry_notional = _ZERO
        self.exit_qty = _ZERO
        self.exit_notional = _ZERO
        self.pnl = _ZERO
        self.fees = _ZERO

    def grow(self, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        self.opened_qty = LEDGER.add(self.opened_qty, qty)
        self.entry_notional = LEDGER.add(self.entry_notional, LEDGER.multiply(qty, price))
        self.pnl = LEDGER.subtract(self.pnl, fee)
        self.fees = LEDGER.add(self.fees, fee)

    def reduce(self, effect: FillEffect) -> None:
        qty = effect.closed_qty
        self.exit_qty = LEDGER.add(self.exit_qty, qty)
        self.exit_notional = LEDGER.add(self.exit_notional, LEDGER.multiply(qty, effect.price))
        # A reducing fill books no average-entry rounding: only growing fills do.
        self.pnl = LEDGER.subtract(LEDGER.add(self.pnl, effect.realized_gross), effect.fee_closing)
        self.fees = LEDGER.add(self.fees, effect.fee_closing)

    def view(self, account: str, symbol: str, exit_ts_ns: int | None) -> RoundTrip:
        exit_price = self.exit_notional / self.exit_qty if self.exit_qty else None
        return RoundTrip(
            account=account,
            symbol=symbol,
            side=self.side,
            entry_ts_ns=self.entry_ts_ns,
            exit_ts_ns=exit_ts_ns,
            entry_price=self.entry_notional / self.opened_qty,
            exit_price=exit_price if exit_ts_ns is not None else None,
            qty=self.opened_qty,
            pnl=self.pnl,
            fees=self.fees,
        )


class RoundTripLedger:
    """Cuts the fills of any number of account+symbol positions into round trips.

    Not thread-safe: one owner applies every fill, in the order the positions
    applied them.
    """

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], Position] = {}
        self._open: dict[tuple[str, str], _Open] = {}
        self.closed: list[RoundTrip] = []

    def apply(self, fill: Fill) -> list[RoundTrip]:
        """Apply one fill; return the round trips it closed (0 or 1), also kept in `closed`."""
        key = (fill.account, fill.symbol)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = Position(fill.account, fill.symbol)
        effect = position.apply_fill_effect(fill)
        if effect is None:
            return []
        closed: list[RoundTrip] = []
        trip = self._open.get(key)
        if trip is not None and effect.closed_qty:
            trip.reduce(effect)
            if effect.qty_after == 0 or effect.flipped:
                done = trip.view(fill.account, fill.symbol, fill.ts_ns)
                closed.append(done)
                self.closed.append(done)
                del self._open[key]
                trip = None
        if effect.opened_qty:
            if trip is None:
                side = Side.BUY if effect.qty_after > 0 else Side.SELL
                trip = self._open[key] = _Open(side, fill.ts_ns)
            trip.grow(effect.opened_qty, fill.price, effect.fee_opening)
            if effect.avg_rounding:
                trip.pnl = LEDGER.add(trip.pnl, effect.avg_rounding)
        return closed

    def open_trips(self) -> list[RoundTrip]:
        """The round trips still open, by account and symbol."""
        return [
            trip.view(account, symbol, None)
            for (account, symbol), trip in sorted(self._open.items(), key=lambda kv: kv[0])
        ]

    def realized_pnl(self, account: str, symbol: str) -> Decimal:
        """The realized P&L of the shadow position (what the trips add up to)."""
        position = self._positions.get((account, symbol))
        return position.realized_pnl if position is not None else _ZERO

    def fees(self) -> Decimal:
        """Every fee paid, over all positions."""
        total = _ZERO
        for position in self._positions.values():
            total = LEDGER.add(total, position.fees)
        return total

    def qty(self, account: str, symbol: str) -> Decimal:
        """The signed quantity of the shadow position."""
        position = self._positions.get((account, symbol))
        return position.qty if position is not None else _ZERO
