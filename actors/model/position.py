"""One netting position (account + symbol): its exact P&L accounting and its lifecycle.

Pure domain logic: no threads, sockets, clocks or I/O; timestamps are passed in
(int nanoseconds), so the same code runs live, in journal replay, in trade
history rebuilds and in backtests. This module must never round a ledger value
silently and never refuse a real fill: an exchange fill is a fact, so
`apply_fill` updates the books in every lifecycle state.

Sums and products never round (Inexact is trapped). The one quotient, the
average entry price, keeps 38 significant digits and its rounding difference
is booked to realized P&L at that fill, so the cost basis is always exactly
``qty * avg_entry``. `TRANSITIONS` is the source of truth for requested
lifecycle events, `status_after_fill` for fills. docs/accounting.md states
the conventions (average entry, realized and unrealized P&L, fees in any
currency, the fee split of a flip, the cash-flow identity) with worked
examples, and the lifecycle. A fee in a third currency with no conversion
mark is never valued at zero silently: it is counted as unconverted.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Final

from posbus.actors.model.errors import InvalidState, OrderValidationError
from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side
from posbus.actors.model.snapshot_fields import text_set
from posbus.actors.model.symbol_currencies import FeeKind, SymbolCurrencies

SNAPSHOT_SCHEMA: Final = 1
"""Version of the `Position.to_dict()` layout; `from_dict` refuses any other."""

AVG_PRICE_DIGITS: Final = 38
"""Significant digits kept in a non-terminating average entry price (ROUND_HALF_EVEN)."""

FEE_SPLIT_PLACES: Final = 8
"""Decimal places of the closing share of a flipping fill's fee (ROUND_HALF_EVEN)."""

# Sums and products of finite Decimals are exact at the largest precision the
# platform allows (a result is only as long as it needs to be); the default 28
# digits would silently round a ledger. Inexact is trapped so that any rounding
# raises instead of drifting. Never divide in this context.
LEDGER: Final = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow, decimal.DivisionByZero],
)
# The average entry price is the one quotient; a fixed context keeps it
# independent of the calling thread's context.
_AVERAGE: Final = decimal.Context(
    prec=AVG_PRICE_DIGITS,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)
_ZERO: Final = Decimal(0)


class PositionStatus(StrEnum):
    """Where a position is in its life; the values are the names used in logs and snapshots."""

    PENDING = "PendingOrder"
    AWAITING_FILL = "AwaitingFill"
    OPEN = "Open"
    CLOSING = "Closing"
    CLOSED = "Closed"
    ERROR = "Error"


class PositionEvent(StrEnum):
    """A requested lifecycle event: one `Position` method each (fills are not events here)."""

    INTENT = "intent"
    SUBMITTED = "submitted"
    INTENT_CANCELLED = "intent_cancelled"
    CLOSE_REQUESTED = "close_requested"
    CLOSE_CANCELLED = "close_cancelled"
    ERROR = "error"


_S = PositionStatus
_E = PositionEvent

TRANSITIONS: Final[Mapping[tuple[PositionStatus, PositionEvent], PositionStatus]] = (
    MappingProxyType(
        {
            # flat and idle (a fresh position, or one closed earlier): a new intent re-opens it
            (_S.CLOSED, _E.INTENT): _S.PENDING,
            (_S.CLOSED, _E.ERROR): _S.ERROR,
            # an opening intent exists, nothing sent
            (_S.PENDING, _E.SUBMITTED): _S.AWAITING_FILL,
            (_S.PENDING, _E.INTENT_CANCELLED): _S.CLOSED,
            (_S.PENDING, _E.ERROR): _S.ERROR,
            # sent; the order may still be refused or cancelled before any fill
            (_S.AWAITING_FILL, _E.INTENT_CANCELLED): _S.CLOSED,
            (_S.AWAITING_FILL, _E.ERROR): _S.ERROR,
            (_S.OPEN, _E.CLOSE_REQUESTED): _S.CLOSING,
            (_S.OPEN, _E.ERROR): _S.ERROR,
            # the close order was refused or cancelled: still open
            (_S.CLOSING, _E.CLOSE_CANCELLED): _S.OPEN,
            (_S.CLOSING, _E.ERROR): _S.ERROR,
            # Error from Error is refused: the first reason is the one worth keeping
        }
    )
)
"""(state, requested event) -> state after it; a missing pair raises InvalidState."""


def status_after_fill(
    status: PositionStatus, qty_before: Decimal, qty_after: Decimal
) -> PositionStatus:
    """The lifecycle state after a fill moved the quantity from `qty_before` to `qty_after`.

    Fills are never refused, so this is total: Error stays Error; reaching flat
    closes; leaving flat opens; a flip (sign change) while Closing re-opens,
    because nobody asked to close the new side; anything else keeps the state.
    """
    if status is PositionStatus.ERROR:
        return status
    if qty_after == 0:
        return PositionStatus.CLOSED
    if qty_before == 0:
        return PositionStatus.OPEN
    if (qty_before > 0) != (qty_after > 0):
        return PositionStatus.OPEN
    return status


@dataclass(frozen=True, slots=True)
class PositionTransition:
    """One accepted lifecycle event, for the actor to journal and log."""

    account: str
    symbol: str
    event: PositionEvent
    before: PositionStatus
    after: PositionStatus
    ts_ns: int | None


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What one applied fill did to a position: the per-fill record for trade reports.

    `closed_qty` is the part of the fill that reduced the old position and
    `opened_qty` the part that grew (or, after a flip, opened) one; both are
    >= 0 and sum to the quantity the position moved by: the fill's qty, less
    a base-currency fee on a buy or plus one on a sell. `realized_gross` is
    the price P&L of the closed part, `avg_rounding` the P&L booked from
    rounding the average entry price (0 unless a growing fill made it
    non-terminating), and the fee's value in the quote currency, `fee_value`,
    is split into `fee_closing` + `fee_opening`. `fee_converted` is False for a fee in a
    third currency that came without a conversion mark: its value is then 0
    and the position counts it as unconverted.
    """

    trade_id: str
    order_id: str
    ts_ns: int
    price: Decimal
    qty_before: Decimal
    qty_after: Decimal
    avg_entry_before: Decimal
    avg_entry_after: Decimal
    closed_qty: Decimal
    opened_qty: Decimal
    realized_gross: Decimal
    avg_rounding: Decimal
    fee_closing: Decimal
    fee_opening: Decimal
    fee_value: Decimal
    status_before: PositionStatus
    status_after: PositionStatus
    fee_converted: bool = True

    @property
    def realized_delta(self) -> Decimal:
        """How much the fill changed realized P&L: gross + rounding - both fee shares."""
        return LEDGER.subtract(
            LEDGER.add(self.realized_gross, self.avg_rounding),
            LEDGER.add(self.fee_closing, self.fee_opening),
        )

    @property
    def flipped(self) -> bool:
        """True when the fill closed one side and opened the other."""
        return self.closed_qty > 0 and self.opened_qty > 0


def split_fee(fee: Decimal, closed_qty: Decimal, fill_qty: Decimal) -> tuple[Decimal, Decimal]:
    """Split a fee pro rata by quantity into (closing share, opening share).

    The closing share is ``fee * closed_qty / fill_qty`` rounded once, from the
    exact rational, to `FEE_SPLIT_PLACES` places with ROUND_HALF_EVEN; the
    opening share is the exact remainder, so the shares always sum to `fee`.
    """
    # Fraction keeps the quotient exact, and round() on a Fraction is
    # half-even: one correct rounding instead of a 38-digit division followed
    # by a quantize (double rounding).
    scaled = Fraction(fee) * Fraction(closed_qty) / Fraction(fill_qty) * 10**FEE_SPLIT_PLACES
    closing = Decimal(round(scaled)).scaleb(-FEE_SPLIT_PLACES, LEDGER)
    return closing, LEDGER.subtract(fee, closing)


class Position:
    """One account+symbol netting position: exact accounting plus its lifecycle state machine.

    Mutable and owned by a single actor (not thread-safe); every method runs
    on the owner's thread. Accounting (`apply_fill`) works with no lifecycle
    calls at all: a fresh position is Closed and a fill simply opens it, which
    is what trade-history rebuilds rely on. Lifecycle methods check
    `TRANSITIONS` and either return a `PositionTransition` or raise
    `InvalidState` with the position untouched.
    """

    __slots__ = (
        "_avg",
        "_close_requested_ts_ns",
        "_currencies",
        "_entry_ts_ns",
        "_error_reason",
        "_fees",
        "_fees_by_currency",
        "_fees_closing",
        "_fees_opening",
        "_qty",
        "_realized",
        "_status",
        "_trade_ids",
        "_unconverted_fees",
        "_unconverted_fees_by_currency",
        "account",
        "symbol",
    )

    def __init__(self, account: str, symbol: str) -> None:
        """A flat position with no history, in state Closed."""
        self.account = account
        self.symbol = symbol
        # None for a symbol that names no pair: every fee is then taken as quote.
        self._currencies = SymbolCurrencies.of(symbol)
        self._qty = _ZERO
        # Stored, not derived: cost basis is qty * _avg exactly (module docstring).
        self._avg = _ZERO
        self._realized = _ZERO
        self._fees = _ZERO
        self._fees_closing = _ZERO
        self._fees_opening = _ZERO
        self._fees_by_currency: dict[str, Decimal] = {}
        self._unconverted_fees = 0
        self._unconverted_fees_by_currency: dict[str, Decimal] = {}
        self._entry_ts_ns: int | None = None
        self._status = PositionStatus.CLOSED
        self._error_reason: str | None = None
        self._close_requested_ts_ns: int | None = None
        self._trade_ids: set[str] = set()

    # -- accounting views --------------------------------------------------------

    @property
    def qty(self) -> Decimal:
        """Signed quantity: > 0 long, < 0 short, 0 flat; net of fees paid in the base currency."""
        return self._qty

    @property
    def avg_entry_price(self) -> Decimal:
        """Quantity-weighted average entry price of the open position; 0 when flat."""
        return self._avg

    @property
    def cost_basis(self) -> Decimal:
        """Signed cost of the open position, exactly qty * avg_entry_price (< 0 for shorts)."""
        return LEDGER.multiply(self._qty, self._avg)

    @property
    def realized_pnl(self) -> Decimal:
        """Cumulative realized P&L over the position's whole life, all fees already subtracted."""
        return self._realized

    @property
    def fees(self) -> Decimal:
        """Fees paid, valued in the quote currency: exactly what realized P&L had subtracted.

        A quote fee counts as it is, a base fee at its fill's price, a third
        currency's at its conversion mark; an unconverted fee counts 0 here
        (see `unconverted_fees`). Rebates are negative.
        """
        return self._fees

    @property
    def fees_by_currency(self) -> Mapping[str, Decimal]:
        """The exact amount of fees paid in each currency (upper-case codes), as charged."""
        return MappingProxyType(self._fees_by_currency)

    @property
    def unconverted_fees(self) -> int:
        """How many fills paid a fee that realized P&L does not include: no conversion mark."""
        return self._unconverted_fees

    @property
    def unconverted_fees_by_currency(self) -> Mapping[str, Decimal]:
        """The exact amounts of those fees per currency; realized P&L is short of their value."""
        return MappingProxyType(self._unconverted_fees_by_currency)

    @property
    def fees_closing(self) -> Decimal:
        """The part of `fees` attributed to closing quantity (reducing fills, flips' share)."""
        return self._fees_closing

    @property
    def fees_opening(self) -> Decimal:
        """The part of `fees` attributed to opening quantity; closing + opening == fees."""
        return self._fees_opening

    @property
    def entry_ts_ns(self) -> int | None:
        """When the current open position was opened (first fill or flip); None when flat."""
        return self._entry_ts_ns

    @property
    def trade_ids(self) -> frozenset[str]:
        """Trade ids of every fill applied so far."""
        return frozenset(self._trade_ids)

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """qty * (mark - avg_entry_price): exact, signed, fees excluded, 0 when flat.

        Raises ValueError when `mark` is not a positive finite Decimal.
        """
        self._check_mark(mark)
        if self._qty == 0:
            return _ZERO
        return LEDGER.multiply(self._qty, LEDGER.subtract(mark, self._avg))

    def value(self, mark: Decimal) -> Decimal:
        """Signed market value qty * mark (negative for shorts); exact.

        Raises ValueError when `mark` is not a positive finite Decimal.
        """
        self._check_mark(mark)
        if self._qty == 0:
            return _ZERO
        return LEDGER.multiply(self._qty, mark)

    # -- accounting --------------------------------------------------------------

    def apply_fill(self, fill: Fill) -> bool:
        """Apply one execution; False, changing nothing, when its trade id was already applied.

        Raises OrderValidationError, changing nothing, for a fill of another
        account or symbol. Never raises InvalidState: fills are applied in
        every lifecycle state (see `status_after_fill`).
        """
        return self.apply_fill_effect(fill) is not None

    def apply_fill_effect(self, fill: Fill) -> FillEffect | None:
        """Like `apply_fill`, but returns the fill's `FillEffect` (None for a duplicate)."""
        self._check_fill_matches(fill)
        if fill.trade_id in self._trade_ids:
            return None
        effect = self._effect_of(fill)
        self._qty = effect.qty_after
        self._avg = effect.avg_entry_after
        self._realized = LEDGER.add(self._realized, effect.realized_delta)
        self._fees = LEDGER.add(self._fees, effect.fee_value)
        self._book_fee(fill, effect.fee_converted)
        self._fees_closing = LEDGER.add(self._fees_closing, effect.fee_closing)
        self._fees_opening = LEDGER.add(self._fees_opening, effect.fee_opening)
        if effect.qty_after == 0:
            self._entry_ts_ns = None
        elif effect.qty_before == 0 or effect.flipped:
            self._entry_ts_ns = fill.ts_ns
        if effect.status_after is not PositionStatus.CLOSING:
            self._close_requested_ts_ns = None
        self._status = effect.status_after
        self._trade_ids.add(fill.trade_id)
        return effect

    def _book_fee(self, fill: Fill, converted: bool) -> None:
        if not fill.fee:
            return
        currency = fill.fee_currency.upper()
        if not currency and self._currencies is not None:
            currency = self._currencies.quote
        _add_to(self._fees_by_currency, currency, fill.fee)
        if not converted:
            self._unconverted_fees += 1
            _add_to(self._unconverted_fees_by_currency, currency, fill.fee)

    def _fee_terms(self, fill: Fill) -> tuple[Decimal | None, Decimal, bool]:
        """(base qty the fee takes or None, the fee's value in quote, converted) for `fill`.

        docs/accounting.md, "Fees in any currency": a quote fee is its own
        value; a spot base fee leaves the position and is valued at the fill
        price; any other is valued at the fill's conversion mark, or counted
        unconverted (value 0) without one.
        """
        currencies = self._currencies
        # The common case first: a quote fee named as the symbol names its quote.
        if currencies is None or not fill.fee or fill.fee_currency == currencies.quote:
            return None, fill.fee, True
        kind = currencies.fee_kind(fill.fee_currency)
        if kind is FeeKind.QUOTE:
            return None, fill.fee, True
        if kind is FeeKind.BASE:
            return fill.fee, LEDGER.multiply(fill.fee, fill.price), True
        if fill.fee_mark is None:
            return None, _ZERO, False
        return None, LEDGER.multiply(fill.fee, fill.fee_mark), True

    def _effect_of(self, fill: Fill) -> FillEffect:
        q0, avg0 = self._qty, self._avg
        base_fee, fee, converted = self._fee_terms(fill)
        # Not fill.signed_qty: its negation would round in the caller's context.
        delta = fill.qty if fill.side is Side.BUY else LEDGER.minus(fill.qty)
        if base_fee is not None:
            # A base fee leaves the balance, so the position: it holds what the account holds.
            delta = LEDGER.subtract(delta, base_fee)
        moved = LEDGER.abs(delta)
        q1 = LEDGER.add(q0, delta)
        reduces = q0 != 0 and delta != 0 and (q0 > 0) != (delta > 0)
        closed = min(moved, LEDGER.abs(q0)) if reduces else _ZERO
        opened = LEDGER.subtract(moved, closed)
        realized_gross = _ZERO
        if closed:
            # closed * (px - avg) for a long; closed * (avg - px) for a short
            gross = LEDGER.multiply(closed, LEDGER.subtract(fill.price, avg0))
            realized_gross = gross if q0 > 0 else LEDGER.minus(gross)
        avg_rounding = _ZERO
        if q1 == 0:
            avg1 = _ZERO
        elif not opened:
            avg1 = avg0
        elif q0 == 0 or closed:
            # opened from flat, or the rest of a flip: all at the fill price
            avg1 = fill.price
        else:
            exact_cost = LEDGER.add(LEDGER.multiply(q0, avg0), LEDGER.multiply(delta, fill.price))
            avg1 = _AVERAGE.divide(exact_cost, q1)
            # Keep cost basis == qty * avg exactly: the rounding difference is booked now.
            avg_rounding = LEDGER.subtract(LEDGER.multiply(q1, avg1), exact_cost)
            if avg_rounding == 0:
                # keep realized free of the zero's exponent (trailing zeros) when exact
                avg_rounding = _ZERO
        if closed and opened:
            fee_closing, fee_opening = split_fee(fee, closed, moved)
        elif closed:
            fee_closing, fee_opening = fee, _ZERO
        else:
            fee_closing, fee_opening = _ZERO, fee
        return FillEffect(
            trade_id=fill.trade_id,
            order_id=fill.order_id,
            ts_ns=fill.ts_ns,
            price=fill.price,
            qty_before=q0,
            qty_after=q1,
            avg_entry_before=avg0,
            avg_entry_after=avg1,
            closed_qty=closed,
            opened_qty=opened,
            realized_gross=realized_gross,
            avg_rounding=avg_rounding,
            fee_closing=fee_closing,
            fee_opening=fee_opening,
            fee_value=fee,
            status_before=self._status,
            status_after=status_after_fill(self._status, q0, q1),
            fee_converted=converted,
        )

    # -- lifecycle -----------------------------------------------------------------

    @property
    def status(self) -> PositionStatus:
        """The lifecycle state."""
        return self._status

    @property
    def error_reason(self) -> str | None:
        """Why the position went to Error; None otherwise."""
        return self._error_reason

    @property
    def close_requested_ts_ns(self) -> int | None:
        """When the pending close was requested; None unless Closing."""
        return self._close_requested_ts_ns

    def on_intent(self, ts_ns: int | None = None) -> PositionTransition:
        """An opening intent exists (nothing sent yet): Closed -> PendingOrder."""
        return self._commit(PositionEvent.INTENT, ts_ns)

    def on_submitted(self, ts_ns: int | None = None) -> PositionTransition:
        """The opening order was sent: PendingOrder -> AwaitingFill."""
        return self._commit(PositionEvent.SUBMITTED, ts_ns)

    def cancel_intent(self, ts_ns: int | None = None) -> PositionTransition:
        """The opening order was dropped, refused or cancelled before any fill: back to Closed."""
        return self._commit(PositionEvent.INTENT_CANCELLED, ts_ns)

    def request_close(self, ts_ns: int) -> PositionTransition:
        """A close was requested: Open -> Closing; a flat position raises InvalidState."""
        transition = self._commit(PositionEvent.CLOSE_REQUESTED, ts_ns)
        self._close_requested_ts_ns = ts_ns
        return transition

    def cancel_close(self, ts_ns: int | None = None) -> PositionTransition:
        """The close order was refused or cancelled with quantity left: Closing -> Open."""
        transition = self._commit(PositionEvent.CLOSE_CANCELLED, ts_ns)
        self._close_requested_ts_ns = None
        return transition

    def error(self, reason: str, ts_ns: int | None = None) -> PositionTransition:
        """The position's state is inconsistent or unknown: Error, kept for reconciliation.

        Fills are still applied in Error (they moved money); nothing else
        leaves it, and a second error raises InvalidState (the first reason
        is the one worth keeping).
        """
        transition = self._commit(PositionEvent.ERROR, ts_ns)
        self._error_reason = reason
        self._close_requested_ts_ns = None
        return transition

    def _commit(self, event: PositionEvent, ts_ns: int | None) -> PositionTransition:
        target = TRANSITIONS.get((self._status, event))
        if target is None:
            raise InvalidState(
                current=self._status.value,
                requested=event.value,
                symbol=self.symbol,
                ts_ns=ts_ns,
            )
        before = self._status
        self._status = target
        return PositionTransition(self.account, self.symbol, event, before, target, ts_ns)

    # -- snapshots -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The full state as plain values (Decimals as strings, sorted trade ids); exact.

        The fee breakdown is written only when it says more than `fees` (a fee
        outside the quote currency, or an unconverted one), so a position that
        paid only quote fees snapshots as it always did.
        """
        data: dict[str, Any] = {
            "schema": SNAPSHOT_SCHEMA,
            "account": self.account,
            "symbol": self.symbol,
            "qty": str(self._qty),
            "avg_entry_price": str(self._avg),
            "realized_pnl": str(self._realized),
            "fees": str(self._fees),
            "fees_closing": str(self._fees_closing),
            "fees_opening": str(self._fees_opening),
            "entry_ts_ns": self._entry_ts_ns,
            "status": self._status.value,
            "error_reason": self._error_reason,
            "close_requested_ts_ns": self._close_requested_ts_ns,
            "trade_ids": sorted(self._trade_ids),
        }
        by_currency = _texts(self._fees_by_currency)
        if by_currency != _texts(self._quote_fees_only()):
            data["fees_by_currency"] = by_currency
        if self._unconverted_fees:
            data["unconverted_fees"] = self._unconverted_fees
            data["unconverted_fees_by_currency"] = _texts(self._unconverted_fees_by_currency)
        return data

    def _quote_fees_only(self) -> dict[str, Decimal]:
        """The breakdown when every fee was in the quote currency: what `fees` alone implies."""
        if self._currencies is None or not self._fees:
            return {}
        return {self._currencies.quote: self._fees}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Position:
        """Rebuild a position from `to_dict()` output.

        A snapshot without the fee breakdown (every fee in the quote
        currency, or written before fees in other currencies were kept) has
        its fees in the quote currency and none unconverted. Raises
        OrderValidationError when the snapshot is malformed or inconsistent
        (unknown schema, bad field, fees that do not add up, a flat position
        with an entry time or average price).
        """
        symbol = data.get("symbol")
        try:
            if data["schema"] != SNAPSHOT_SCHEMA:
                raise ValueError(f"unsupported snapshot schema {data['schema']!r}")
            position = cls(_text(data["account"]), _text(data["symbol"]))
            position._qty = _decimal(data["qty"])
            position._avg = _decimal(data["avg_entry_price"])
            position._realized = _decimal(data["realized_pnl"])
            position._fees = _decimal(data["fees"])
            position._fees_closing = _decimal(data["fees_closing"])
            position._fees_opening = _decimal(data["fees_opening"])
            position._entry_ts_ns = _optional_int(data["entry_ts_ns"])
            position._status = PositionStatus(data["status"])
            position._error_reason = _optional_text(data["error_reason"])
            position._close_requested_ts_ns = _optional_int(data["close_requested_ts_ns"])
            position._trade_ids = text_set(data["trade_ids"])
            by_currency = data.get("fees_by_currency")
            position._fees_by_currency = (
                position._quote_fees_only() if by_currency is None else _decimals(by_currency)
            )
            position._unconverted_fees = _count(data.get("unconverted_fees", 0))
            position._unconverted_fees_by_currency = _decimals(
                data.get("unconverted_fees_by_currency", {})
            )
            position._check_consistent()
        except (KeyError, TypeError, ValueError, decimal.InvalidOperation) as exc:
            raise OrderValidationError(
                f"malformed position snapshot: {exc!r}",
                symbol=symbol if isinstance(symbol, str) else None,
            ) from exc
        return position

    def _check_consistent(self) -> None:
        if LEDGER.add(self._fees_closing, self._fees_opening) != self._fees:
            raise ValueError("fees_closing + fees_opening != fees")
        if (self._unconverted_fees == 0) != (not self._unconverted_fees_by_currency):
            raise ValueError("unconverted_fees must count exactly the unconverted amounts")
        if not self._unconverted_fees_by_currency.keys() <= self._fees_by_currency.keys():
            raise ValueError("an unconverted fee's currency is missing from fees_by_currency")
        if (self._qty == 0) != (self._entry_ts_ns is None):
            raise ValueError("entry_ts_ns must be set exactly when the position is not flat")
        if self._qty == 0 and self._avg != 0:
            raise ValueError("a flat position has no average entry price")
        if self._qty != 0 and self._avg <= 0:
            raise ValueError("an open position needs a positive average entry price")
        flat_states = (PositionStatus.PENDING, PositionStatus.AWAITING_FILL, PositionStatus.CLOSED)
        if self._status in flat_states and self._qty != 0:
            raise ValueError(f"state {self._status.value} with non-zero quantity")
        if self._status in (PositionStatus.OPEN, PositionStatus.CLOSING) and self._qty == 0:
            raise ValueError(f"state {self._status.value} with zero quantity")

    # -- internals -----------------------------------------------------------------

    def _check_fill_matches(self, fill: Fill) -> None:
        for name, expected, actual in (
            ("account", self.account, fill.account),
            ("symbol", self.symbol, fill.symbol),
        ):
            if actual != expected:
                raise OrderValidationError(
                    f"fill {fill.trade_id} has {name} {actual}, position has {expected}",
                    order_id=fill.order_id or None,
                    symbol=self.symbol,
                    ts_ns=fill.ts_ns,
                    state=self._status.value,
                )

    def _check_mark(self, mark: Decimal) -> None:
        if not isinstance(mark, Decimal) or not mark.is_finite() or mark <= _ZERO:
            raise ValueError(
                f"{self.account}/{self.symbol}: mark must be a positive finite Decimal"
            )

    def __repr__(self) -> str:
        return (
            f"Position({self.account!r}, {self.symbol!r}, qty={self._qty}, "
            f"avg={self._avg}, realized={self._realized}, {self._status.value})"
        )


# Snapshot field readers: each raises ValueError/TypeError, which from_dict
# turns into one OrderValidationError naming the snapshot.


def _decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise TypeError(f"expected a decimal string, got {value!r}")
    parsed = Decimal(value)
    if not parsed.is_finite():
        raise ValueError(f"expected a finite decimal, got {value!r}")
    return parsed


def _decimals(value: object) -> dict[str, Decimal]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping of currency to decimal string, got {value!r}")
    return {_text(currency): _decimal(amount) for currency, amount in value.items()}


def _texts(amounts: Mapping[str, Decimal]) -> dict[str, str]:
    return {currency: str(amount) for currency, amount in sorted(amounts.items())}


def _add_to(amounts: dict[str, Decimal], currency: str, amount: Decimal) -> None:
    amounts[currency] = LEDGER.add(amounts.get(currency, _ZERO), amount)


def _count(value: object) -> int:
    # bool is an int subclass; a True count is a bug, not a value.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a count (int >= 0), got {value!r}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    # bool is an int subclass; a True timestamp is a bug, not a value.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an int or None, got {value!r}")
    return value
