"""Marks taken from market data: recorded at once, priced into the book lazily.

Once the engine is told a market mark (`RiskEngine.update_mark`), a mark
inside its symbol's band (`risk_band`) cannot change the state, so it is
only recorded on the symbol; its positions are priced at the newest mark
(`catch_up`) before anything reads the book. A band holds while the book and
the state stay as they were when it was drawn: every other change of the
engine forgets the bands (`forget_bands`).

Pure: no clock, no thread, no I/O; run by the risk engine's owner only.
"""

from __future__ import annotations

from decimal import Decimal

from posbus.actors.model.risk_arithmetic import ZERO, add, mul, sub
from posbus.actors.model.risk_band import ANY_BAND, NO_BAND, mark_band
from posbus.actors.model.risk_book import ExposureBook, SymbolInfo
from posbus.actors.model.risk_machine import RiskMachine


class MarketMarks:
    """The symbols whose newest market mark the book is not priced at yet, and the bands."""

    def __init__(self, book: ExposureBook, machine: RiskMachine) -> None:
        self._book = book
        self._machine = machine
        self.active = False
        """True once a market mark was told: positions then tell marks only when newer."""
        # An ordered set: the catch-up order is deterministic (each symbol's latest mark).
        self.dirty: dict[str, None] = {}
        self.bands: dict[str, tuple[Decimal, Decimal]] = {}

    def record(self, symbol: str, info: SymbolInfo, mark: Decimal, ts_ns: int, now: int) -> bool:
        """Record `mark` on `symbol` if it changes nothing now; False: judge it at once.

        Nothing changes when the mark is inside the symbol's band and moving
        to `now` rolls no trading day and ends no cooldown.
        """
        band = self.bands.get(symbol)
        if band is None:
            band = self.bands[symbol] = self._band(symbol)
        machine = self._machine
        if not (
            band[0] <= mark <= band[1]
            and now < machine.day_end_ns
            and (machine.cooldown_until is None or now < machine.cooldown_until)
        ):
            return False
        info.mark = mark
        info.mark_ts_ns = ts_ns
        machine.last_ts_ns = now
        dirty = self.dirty
        if symbol in dirty:  # kept in the order of each symbol's latest mark
            del dirty[symbol]
        dirty[symbol] = None
        return True

    def catch_up(self) -> None:
        """Price every position of each symbol with a newer market mark at it.

        Nothing is judged: the marks skipped were inside their bands, where no
        judgement changes anything.
        """
        dirty = self.dirty
        if not dirty:
            return
        self.dirty = {}
        self.bands.clear()
        for symbol in dirty:
            self._book.reprice(symbol)

    def forget_bands(self) -> None:
        """The book or the state changed: every band is drawn again when next needed."""
        if self.bands:
            self.bands.clear()

    def _band(self, symbol: str) -> tuple[Decimal, Decimal]:
        """The marks of `symbol` that cannot change the state (see `risk_band`)."""
        qty = ZERO
        abs_qty = ZERO
        mark: Decimal | None = None
        for exp in self._book.symbol_positions(symbol):
            if not exp.qty:
                continue
            if exp.mark is None or (mark is not None and exp.mark != mark):
                return NO_BAND  # priced at different marks: judge at once
            mark = exp.mark
            qty = add(qty, exp.qty)
            abs_qty = add(abs_qty, exp.qty.copy_abs())
        if mark is None:
            return ANY_BAND
        machine = self._machine
        equity = self._book.equity
        if (
            equity > machine.peak
            or (equity <= machine.daily_floor) is not machine.daily_breached
            or (equity <= machine.drawdown_floor) is not machine.drawdown_breached
            or machine.target(equity) is not machine.state
        ):
            return NO_BAND  # the state is not what these numbers imply yet: judge at once
        rises = sub(machine.peak, equity)
        falls: Decimal | None = None
        floors = (
            machine.daily_floor,
            machine.drawdown_floor,
            machine.warn_loss_floor,
            machine.warn_drawdown_floor,
        )
        for floor in floors:
            if equity <= floor:
                rises = min(rises, sub(floor, equity))
            elif falls is None or sub(equity, floor) < falls:
                falls = sub(equity, floor)
        return mark_band(
            mark,
            qty,
            sub(abs_qty, mul(machine.warn_leverage, qty)),
            rises=rises,
            falls=falls,
            margin=sub(self._book.gross, mul(machine.warn_leverage, equity)),
            symbols=self._book.open_symbol_count(),
        )
