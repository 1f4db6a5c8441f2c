"""The order state machine: one order's life, from creation to a terminal state.

Pure domain logic: no threads, sockets, clocks or I/O; every timestamp is
passed in (int nanoseconds), so the same code runs live, in journal replay and
in backtests. An actor owns each `Order`, calls one method per event it
receives and journals the `Transition` each call returns.

This module must never guess: an event that `TRANSITIONS` (the single source
of truth) does not allow raises `InvalidState`, a malformed fill raises
`OrderValidationError`, and in both cases the order is left exactly as it was.
A fill whose trade id was already applied returns None and changes nothing.

Money is exact: quantities, notional and fees are summed in a context that
never rounds; only the average fill price, a quotient, is rounded (28
significant digits), and it is derived, never stored. The decisions the
comments cite by number are in docs/architecture.md, "Order state machine".
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from posbus.actors.model.errors import InvalidState, OrderValidationError
from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side
from posbus.actors.model.snapshot_fields import text_set


class OrderStatus(StrEnum):
    """Where an order is in its life; the values are the names used in logs and snapshots."""

    PENDING = "PendingOrder"
    AWAITING_FILL = "AwaitingFill"
    ACCEPTED = "Accepted"
    PARTIALLY_FILLED = "PartiallyFilled"
    FILLED = "Filled"
    CANCEL_REQUESTED = "CancelRequested"
    CANCELLED = "Cancelled"
    REJECTED = "Rejected"
    EXPIRED = "Expired"
    ERROR = "Error"


class OrderEvent(StrEnum):
    """What can happen to an order: one `Order` method per event."""

    SUBMIT = "submit"
    ACK = "ack"
    FILL = "fill"
    CANCEL_REQUEST = "cancel_request"
    CANCEL_ACK = "cancel_ack"
    REJECT = "reject"
    EXPIRE = "expire"
    ERROR = "error"


TERMINAL_STATES: Final[frozenset[OrderStatus]] = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.ERROR,
    }
)

_S = OrderStatus
_E = OrderEvent

TRANSITIONS: Final[Mapping[tuple[OrderStatus, OrderEvent], OrderStatus]] = MappingProxyType(
    {
        # not sent yet: nothing at the exchange to wait for
        (_S.PENDING, _E.SUBMIT): _S.AWAITING_FILL,
        (_S.PENDING, _E.CANCEL_REQUEST): _S.CANCELLED,
        (_S.PENDING, _E.REJECT): _S.REJECTED,
        (_S.PENDING, _E.ERROR): _S.ERROR,
        # sent, no ack yet: a fill may overtake the ack (decision 1)
        (_S.AWAITING_FILL, _E.ACK): _S.ACCEPTED,
        (_S.AWAITING_FILL, _E.FILL): _S.PARTIALLY_FILLED,
        (_S.AWAITING_FILL, _E.CANCEL_REQUEST): _S.CANCEL_REQUESTED,
        (_S.AWAITING_FILL, _E.CANCEL_ACK): _S.CANCELLED,
        (_S.AWAITING_FILL, _E.REJECT): _S.REJECTED,
        (_S.AWAITING_FILL, _E.EXPIRE): _S.EXPIRED,
        (_S.AWAITING_FILL, _E.ERROR): _S.ERROR,
        # acked, nothing filled
        (_S.ACCEPTED, _E.FILL): _S.PARTIALLY_FILLED,
        (_S.ACCEPTED, _E.CANCEL_REQUEST): _S.CANCEL_REQUESTED,
        (_S.ACCEPTED, _E.CANCEL_ACK): _S.CANCELLED,
        (_S.ACCEPTED, _E.REJECT): _S.REJECTED,
        (_S.ACCEPTED, _E.EXPIRE): _S.EXPIRED,
        (_S.ACCEPTED, _E.ERROR): _S.ERROR,
        # traded: no reject any more (decision 5)
        (_S.PARTIALLY_FILLED, _E.ACK): _S.PARTIALLY_FILLED,
        (_S.PARTIALLY_FILLED, _E.FILL): _S.PARTIALLY_FILLED,
        (_S.PARTIALLY_FILLED, _E.CANCEL_REQUEST): _S.CANCEL_REQUESTED,
        (_S.PARTIALLY_FILLED, _E.CANCEL_ACK): _S.CANCELLED,
        (_S.PARTIALLY_FILLED, _E.EXPIRE): _S.EXPIRED,
        (_S.PARTIALLY_FILLED, _E.ERROR): _S.ERROR,
        # the cancel races fills (decision 3)
        (_S.CANCEL_REQUESTED, _E.ACK): _S.CANCEL_REQUESTED,
        (_S.CANCEL_REQUESTED, _E.FILL): _S.CANCEL_REQUESTED,
        (_S.CANCEL_REQUESTED, _E.CANCEL_ACK): _S.CANCELLED,
        (_S.CANCEL_REQUESTED, _E.REJECT): _S.REJECTED,
        (_S.CANCEL_REQUESTED, _E.EXPIRE): _S.EXPIRED,
        (_S.CANCEL_REQUESTED, _E.ERROR): _S.ERROR,
        # terminal states: self-loops only (decisions 1 and 6)
        (_S.FILLED, _E.ACK): _S.FILLED,
        (_S.CANCELLED, _E.ACK): _S.CANCELLED,
        (_S.EXPIRED, _E.ACK): _S.EXPIRED,
        (_S.ERROR, _E.FILL): _S.ERROR,
    }
)
"""(state, event) -> state after the event; a missing pair is an invalid transition.

Guards on top of the table: only the first ack is accepted; a reject needs
nothing filled; a fill completing the quantity ends in Filled unless the order
is in Error.
"""

SNAPSHOT_SCHEMA: Final = 1
"""Version of the `Order.to_dict()` layout; `from_dict` refuses any other."""

# Sums and products of finite Decimals are exact at the largest precision the
# platform allows (the result is only as long as it needs to be); the default
# 28 digits would silently round a ledger. Inexact is trapped so any rounding
# raises instead of drifting.
_EXACT: Final = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow, decimal.DivisionByZero],
)
# The average price is a quotient and cannot always be exact; a fixed context
# keeps it independent of whatever the calling thread's context is.
_AVERAGE: Final = decimal.Context(prec=28)


@dataclass(frozen=True, slots=True)
class Transition:
    """One accepted event and its effect, for the actor to journal and log.

    `before == after` for the accepted no-op events (late ack, fill in Error,
    partial fill while a cancel is pending): they still changed the order's
    record and must be journaled.
    """

    order_id: str
    event: OrderEvent
    before: OrderStatus
    after: OrderStatus
    ts_ns: int


class Order:
    """One order and its state machine; mutable, owned by a single actor (not thread-safe).

    Every state-changing method takes the event's timestamp, checks the
    transition against `TRANSITIONS` and its guards, and either applies it and
    returns a `Transition` or raises (`InvalidState`, `OrderValidationError`)
    with the order untouched.
    """

    __slots__ = (
        "_fees",
        "_trade_ids",
        "account",
        "acked",
        "client_order_id",
        "created_ts_ns",
        "exchange_order_id",
        "filled_qty",
        "last_ts_ns",
        "limit_price",
        "notional",
        "order_id",
        "qty",
        "reason",
        "side",
        "status",
        "symbol",
    )

    def __init__(
        self,
        *,
        order_id: str,
        client_order_id: str,
        account: str,
        symbol: str,
        side: Side,
        qty: Decimal,
        limit_price: Decimal | None,
        created_ts_ns: int,
    ) -> None:
        """Create an order in PendingOrder; `limit_price=None` means a market order.

        Raises OrderValidationError when qty is not a positive finite Decimal,
        or limit_price is given and is not one.
        """
        if not _is_positive_decimal(qty):
            raise OrderValidationError(
                f"order quantity must be a positive finite Decimal, got {qty!r}",
                order_id=order_id,
                symbol=symbol,
                ts_ns=created_ts_ns,
            )
        if limit_price is not None and not _is_positive_decimal(limit_price):
            raise OrderValidationError(
                f"limit price must be a positive finite Decimal or None, got {limit_price!r}",
                order_id=order_id,
                symbol=symbol,
                ts_ns=created_ts_ns,
            )
        self.order_id = order_id
        self.client_order_id = client_order_id
        self.account = account
        self.symbol = symbol
        self.side = side
        self.qty = qty
        self.limit_price = limit_price
        self.created_ts_ns = created_ts_ns
        self.last_ts_ns = created_ts_ns
        self.status = OrderStatus.PENDING
        self.acked = False
        self.exchange_order_id: str | None = None
        self.filled_qty = Decimal(0)
        # Sum of qty * price over applied fills: exact, the base of the average price.
        self.notional = Decimal(0)
        self._fees: dict[str, Decimal] = {}
        self._trade_ids: set[str] = set()
        self.reason: str | None = None

    # -- derived views ---------------------------------------------------------

    @property
    def remaining_qty(self) -> Decimal:
        """Quantity not yet filled."""
        return _EXACT.subtract(self.qty, self.filled_qty)

    @property
    def avg_fill_price(self) -> Decimal | None:
        """Volume-weighted average fill price (notional / filled qty), None before any fill."""
        if self.filled_qty == 0:
            return None
        return _AVERAGE.divide(self.notional, self.filled_qty)

    @property
    def fees(self) -> Mapping[str, Decimal]:
        """Fees paid per fee currency (negative for net rebates); fills may mix currencies."""
        return MappingProxyType(self._fees)

    @property
    def trade_ids(self) -> frozenset[str]:
        """Trade ids of the fills applied so far."""
        return frozenset(self._trade_ids)

    @property
    def is_terminal(self) -> bool:
        """True once the order is Filled, Cancelled, Rejected, Expired or in Error."""
        return self.status in TERMINAL_STATES

    # -- events ----------------------------------------------------------------

    def submit(self, ts_ns: int) -> Transition:
        """The order was sent to the exchange: PendingOrder -> AwaitingFill."""
        target = self._target(OrderEvent.SUBMIT, ts_ns)
        return self._commit(OrderEvent.SUBMIT, target, ts_ns)

    def ack(self, ts_ns: int, exchange_order_id: str | None = None) -> Transition:
        """The exchange acknowledged the order; a second ack raises InvalidState (decision 1)."""
        target = self._target(OrderEvent.ACK, ts_ns)
        if self.acked:
            raise self._invalid(OrderEvent.ACK, ts_ns)
        self.acked = True
        if exchange_order_id is not None:
            self.exchange_order_id = exchange_order_id
        return self._commit(OrderEvent.ACK, target, ts_ns)

    def apply_fill(self, fill: Fill) -> Transition | None:
        """Apply one execution; returns None, changing nothing, when its trade id was applied.

        Raises OrderValidationError for a fill of another account, symbol or
        side, or one larger than the remaining quantity; InvalidState when the
        order's state takes no fills. Which order a fill belongs to is the
        caller's routing: `fill.order_id` may be the exchange's id, unknown
        before the ack.
        """
        self._check_fill_matches(fill)
        if fill.trade_id in self._trade_ids:
            return None
        target = self._target(OrderEvent.FILL, fill.ts_ns)
        filled = _EXACT.add(self.filled_qty, fill.qty)
        if filled > self.qty:
            raise OrderValidationError(
                f"overfill: fill {fill.trade_id} of {fill.qty} exceeds the remaining "
                f"{self.remaining_qty} of {self.qty}",
                order_id=self.order_id,
                symbol=self.symbol,
                ts_ns=fill.ts_ns,
                state=self.status.value,
            )
        if filled == self.qty and not self.is_terminal:
            target = OrderStatus.FILLED
        self.filled_qty = filled
        self.notional = _EXACT.add(self.notional, _EXACT.multiply(fill.qty, fill.price))
        fee_so_far = self._fees.get(fill.fee_currency, Decimal(0))
        self._fees[fill.fee_currency] = _EXACT.add(fee_so_far, fill.fee)
        self._trade_ids.add(fill.trade_id)
        return self._commit(OrderEvent.FILL, target, fill.ts_ns)

    def request_cancel(self, ts_ns: int) -> Transition:
        """A cancel was asked for: CancelRequested, or Cancelled at once if never sent."""
        target = self._target(OrderEvent.CANCEL_REQUEST, ts_ns)
        return self._commit(OrderEvent.CANCEL_REQUEST, target, ts_ns)

    def cancelled(self, ts_ns: int) -> Transition:
        """The exchange reports the order cancelled, asked for or not (decision 4)."""
        target = self._target(OrderEvent.CANCEL_ACK, ts_ns)
        return self._commit(OrderEvent.CANCEL_ACK, target, ts_ns)

    def reject(self, reason: str, ts_ns: int) -> Transition:
        """The order was refused, locally or by the exchange; only while nothing is filled."""
        target = self._target(OrderEvent.REJECT, ts_ns)
        if self.filled_qty != 0:
            raise self._invalid(OrderEvent.REJECT, ts_ns)
        self.reason = reason
        return self._commit(OrderEvent.REJECT, target, ts_ns)

    def expire(self, ts_ns: int) -> Transition:
        """The exchange expired the order (time in force); fills so far are kept."""
        target = self._target(OrderEvent.EXPIRE, ts_ns)
        return self._commit(OrderEvent.EXPIRE, target, ts_ns)

    def error(self, reason: str, ts_ns: int) -> Transition:
        """The order's fate is unknown or inconsistent: Error, left for reconciliation."""
        target = self._target(OrderEvent.ERROR, ts_ns)
        self.reason = reason
        return self._commit(OrderEvent.ERROR, target, ts_ns)

    # -- snapshots -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The full state as plain values (Decimals as strings), for snapshots; exact."""
        return {
            "schema": SNAPSHOT_SCHEMA,
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "exchange_order_id": self.exchange_order_id,
            "account": self.account,
            "symbol": self.symbol,
            "side": self.side.value,
            "qty": str(self.qty),
            "limit_price": None if self.limit_price is None else str(self.limit_price),
            "status": self.status.value,
            "acked": self.acked,
            "filled_qty": str(self.filled_qty),
            "notional": str(self.notional),
            "fees": {currency: str(fee) for currency, fee in sorted(self._fees.items())},
            "trade_ids": sorted(self._trade_ids),
            "reason": self.reason,
            "created_ts_ns": self.created_ts_ns,
            "last_ts_ns": self.last_ts_ns,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        """Rebuild an order from `to_dict()` output; raises OrderValidationError if malformed."""
        order_id = data.get("order_id")
        try:
            if data["schema"] != SNAPSHOT_SCHEMA:
                raise ValueError(f"unsupported snapshot schema {data['schema']!r}")
            limit_price = data["limit_price"]
            order = cls(
                order_id=_str(data, "order_id"),
                client_order_id=_str(data, "client_order_id"),
                account=_str(data, "account"),
                symbol=_str(data, "symbol"),
                side=Side(data["side"]),
                qty=_decimal(data["qty"]),
                limit_price=None if limit_price is None else _decimal(limit_price),
                created_ts_ns=_int(data, "created_ts_ns"),
            )
            order.status = OrderStatus(data["status"])
            order.acked = _bool(data, "acked")
            order.exchange_order_id = _optional_str(data, "exchange_order_id")
            order.filled_qty = _decimal(data["filled_qty"])
            order.notional = _decimal(data["notional"])
            order._fees = {_text(c): _decimal(fee) for c, fee in dict(data["fees"]).items()}
            order._trade_ids = text_set(data["trade_ids"])
            order.reason = _optional_str(data, "reason")
            order.last_ts_ns = _int(data, "last_ts_ns")
            if not 0 <= order.filled_qty <= order.qty:
                raise ValueError(f"filled_qty {order.filled_qty} outside [0, {order.qty}]")
        except (KeyError, TypeError, ValueError, decimal.InvalidOperation) as exc:
            raise OrderValidationError(
                f"malformed order snapshot: {exc!r}",
                order_id=order_id if isinstance(order_id, str) else None,
            ) from exc
        return order

    # -- internals ---------------------------------------------------------------

    def _target(self, event: OrderEvent, ts_ns: int) -> OrderStatus:
        target = TRANSITIONS.get((self.status, event))
        if target is None:
            raise self._invalid(event, ts_ns)
        return target

    def _commit(self, event: OrderEvent, target: OrderStatus, ts_ns: int) -> Transition:
        before = self.status
        self.status = target
        self.last_ts_ns = ts_ns
        return Transition(self.order_id, event, before, target, ts_ns)

    def _invalid(self, event: OrderEvent, ts_ns: int) -> InvalidState:
        return InvalidState(
            current=self.status.value,
            requested=event.value,
            order_id=self.order_id,
            symbol=self.symbol,
            ts_ns=ts_ns,
        )

    def _check_fill_matches(self, fill: Fill) -> None:
        for name, expected, actual in (
            ("account", self.account, fill.account),
            ("symbol", self.symbol, fill.symbol),
            ("side", self.side, fill.side),
        ):
            if actual != expected:
                raise OrderValidationError(
                    f"fill {fill.trade_id} has {name} {actual}, order has {expected}",
                    order_id=self.order_id,
                    symbol=self.symbol,
                    ts_ns=fill.ts_ns,
                    state=self.status.value,
                )

    def __repr__(self) -> str:
        return (
            f"Order({self.order_id!r}, {self.side.value} {self.qty} {self.symbol}, "
            f"{self.status.value}, filled={self.filled_qty})"
        )


def _is_positive_decimal(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite() and value > 0


# Snapshot field readers: each raises ValueError/TypeError/KeyError, which
# from_dict turns into one OrderValidationError naming the snapshot.


def _decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise TypeError(f"expected a decimal string, got {value!r}")
    parsed = Decimal(value)
    if not parsed.is_finite():
        raise ValueError(f"expected a finite decimal, got {value!r}")
    return parsed


def _str(data: Mapping[str, Any], key: str) -> str:
    return _text(data[key])


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data[key]
    return None if value is None else _text(value)


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    # bool is an int subclass; a True timestamp is a bug, not a value.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key}: expected an int, got {value!r}")
    return value


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = data[key]
    if not isinstance(value, bool):
        raise TypeError(f"{key}: expected a bool, got {value!r}")
    return value
