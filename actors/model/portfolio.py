"""The portfolio: cash, every account+symbol position, marks, and an index of orders.

Pure domain logic: no threads, sockets, clocks or I/O; timestamps are passed
in. Aggregates (equity, exposures, P&L totals) are kept incrementally, by
exact deltas, so reading them costs O(1) in the number of positions; they
are exactly what a full recomputation would give because every sum is exact.

Fail safe on marks: a non-flat position without a mark price has no value,
so equity, exposures and unrealized P&L raise `MissingMark` (naming the
symbols) rather than guess; `missing_marks()` lists them beforehand. A flat
position needs no mark. This module must never value a position at its entry
price in place of a missing mark, nor apply a fill without moving cash.
"""

from __future__ import annotations

import decimal
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Protocol

from posbus.actors.model.errors import OrderError, OrderValidationError, PosbusError
from posbus.actors.model.fill import Fill
from posbus.actors.model.position import LEDGER, FillEffect, Position

SNAPSHOT_SCHEMA: Final = 1
"""Version of the `Portfolio.to_dict()` layout; `from_dict` refuses any other."""

_ZERO: Final = Decimal(0)


class MissingMark(PosbusError):
    """A value needs the mark price of symbols that have none yet (fail safe: no guessing)."""

    def __init__(self, symbols: Iterable[str]) -> None:
        self.symbols = tuple(sorted(set(symbols)))
        super().__init__(
            f"no mark price for open position(s) in {', '.join(self.symbols)}",
            symbol=self.symbols[0] if len(self.symbols) == 1 else None,
        )


class OrderLike(Protocol):
    """What the order index needs of an order: its id, symbol and (hashable) status."""

    @property
    def order_id(self) -> str:
        """Unique id of the order."""
        ...

    @property
    def symbol(self) -> str:
        """The instrument the order trades."""
        ...

    @property
    def status(self) -> Hashable:
        """The order's current state (e.g. an OrderStatus)."""
        ...


@dataclass(frozen=True, slots=True)
class Mark:
    """The latest mark price of a symbol and when it was observed."""

    price: Decimal
    ts_ns: int


@dataclass(frozen=True, slots=True)
class PnL:
    """Realized (fees subtracted) and unrealized (at the mark) P&L."""

    realized: Decimal
    unrealized: Decimal

    @property
    def total(self) -> Decimal:
        """realized + unrealized."""
        return LEDGER.add(self.realized, self.unrealized)


@dataclass(frozen=True, slots=True)
class _Contribution:
    """One position's share of the aggregates; None values mean: open but unmarked."""

    realized: Decimal
    value: Decimal | None
    unrealized: Decimal | None


class Portfolio:
    """Cash, positions keyed by (account, symbol), marks per symbol, and an order index.

    Mutable and owned by a single actor (not thread-safe). Cash is one pool in
    the quote/settlement currency shared by every account; `account` is the
    default account for lookups that do not name one. Apply fills through
    `apply_fill` (not on a `Position` directly) so cash and aggregates follow;
    lifecycle calls on a position from `position()` are fine.
    """

    def __init__(self, cash: Decimal | int = 0, account: str = "default") -> None:
        """A portfolio holding `cash` (a finite Decimal or an int) and no positions."""
        self.account = account
        self._cash = _money(cash, "cash")
        self._positions: dict[tuple[str, str], Position] = {}
        self._keys_by_symbol: dict[str, list[tuple[str, str]]] = {}
        self._marks: dict[str, Mark] = {}
        self._contributions: dict[tuple[str, str], _Contribution] = {}
        self._unmarked: dict[tuple[str, str], str] = {}
        self._realized = _ZERO
        self._unrealized = _ZERO
        self._net = _ZERO
        self._gross = _ZERO
        self._orders: dict[str, OrderLike] = {}
        self._order_status: dict[str, Hashable] = {}
        self._orders_by_symbol: dict[str, dict[str, OrderLike]] = {}
        self._orders_by_status: dict[Hashable, dict[str, OrderLike]] = {}

    # -- positions and fills ---------------------------------------------------------

    @property
    def cash(self) -> Decimal:
        """Cash after every applied fill: starting cash - sum(signed_qty * price + fee)."""
        return self._cash

    def position(self, symbol: str, account: str | None = None) -> Position | None:
        """The position of `symbol` in `account` (default: the portfolio's); None if unknown."""
        return self._positions.get((self._account(account), symbol))

    def get_or_create_position(self, symbol: str, account: str | None = None) -> Position:
        """The position of `symbol` in `account`, created flat (Closed) if missing."""
        key = (self._account(account), symbol)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = Position(key[0], symbol)
            self._keys_by_symbol.setdefault(symbol, []).append(key)
            self._refresh(key)
        return position

    def positions(self) -> list[Position]:
        """Every position, flat ones included, in the order they were first created."""
        return list(self._positions.values())

    def open_positions(self) -> list[Position]:
        """The non-flat positions, in creation order."""
        return [p for p in self._positions.values() if p.qty != 0]

    def apply_fill(self, fill: Fill) -> bool:
        """Apply a fill to its position and to cash; False, changing nothing, for a duplicate."""
        return self.apply_fill_effect(fill) is not None

    def apply_fill_effect(self, fill: Fill) -> FillEffect | None:
        """Like `apply_fill`, returning the position's `FillEffect` (None for a duplicate)."""
        position = self.get_or_create_position(fill.symbol, fill.account)
        effect = position.apply_fill_effect(fill)
        if effect is None:
            return None
        # Buying spends qty * price, selling receives it; every fee leaves cash.
        flow = LEDGER.multiply(LEDGER.subtract(effect.qty_after, effect.qty_before), fill.price)
        self._cash = LEDGER.subtract(self._cash, LEDGER.add(flow, fill.fee))
        self._refresh((fill.account, fill.symbol))
        return effect

    # -- marks -------------------------------------------------------------------------

    def set_mark(self, symbol: str, price: Decimal, ts_ns: int) -> bool:
        """Record the mark price of `symbol`; False, ignoring it, when older than the current one.

        An out-of-order mark (ts_ns before the stored one) is stale market data,
        not an error. Raises ValueError when `price` is not a positive finite
        Decimal.
        """
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise ValueError(f"mark of {symbol}: price must be a positive finite Decimal")
        current = self._marks.get(symbol)
        if current is not None and ts_ns < current.ts_ns:
            return False
        self._marks[symbol] = Mark(price, ts_ns)
        for key in self._keys_by_symbol.get(symbol, ()):
            self._refresh(key)
        return True

    def mark(self, symbol: str) -> Mark | None:
        """The latest mark of `symbol`, None if none was set."""
        return self._marks.get(symbol)

    def missing_marks(self) -> list[str]:
        """Symbols with a non-flat position and no mark, sorted: what MissingMark would name."""
        return sorted(set(self._unmarked.values()))

    # -- aggregates --------------------------------------------------------------------

    def equity(self) -> Decimal:
        """cash + sum of position values at their marks; raises MissingMark if one is unmarked."""
        self._require_marks()
        return LEDGER.add(self._cash, self._net)

    def net_exposure(self) -> Decimal:
        """sum(qty * mark) over positions (shorts count negative); raises MissingMark."""
        self._require_marks()
        return self._net

    def gross_exposure(self) -> Decimal:
        """sum(|qty * mark|) over positions; raises MissingMark."""
        self._require_marks()
        return self._gross

    def total_pnl(self) -> PnL:
        """Realized and unrealized P&L summed over every position; raises MissingMark."""
        self._require_marks()
        return PnL(self._realized, self._unrealized)

    def realized_pnl(self) -> Decimal:
        """Realized P&L summed over every position (fees subtracted); needs no mark."""
        return self._realized

    def pnl(self, symbol: str, account: str | None = None) -> PnL:
        """P&L of one position (zero if never traded); raises MissingMark if open and unmarked."""
        key = (self._account(account), symbol)
        contribution = self._contributions.get(key)
        if contribution is None:
            return PnL(_ZERO, _ZERO)
        if contribution.unrealized is None:
            raise MissingMark([symbol])
        return PnL(contribution.realized, contribution.unrealized)

    def pnl_by_symbol(self) -> dict[str, PnL]:
        """P&L per symbol, summed over accounts, sorted by symbol; raises MissingMark."""
        self._require_marks()
        totals: dict[str, PnL] = {}
        for (_, symbol), contribution in sorted(self._contributions.items(), key=_by_symbol):
            unrealized = contribution.unrealized if contribution.unrealized is not None else _ZERO
            so_far = totals.get(symbol, PnL(_ZERO, _ZERO))
            totals[symbol] = PnL(
                LEDGER.add(so_far.realized, contribution.realized),
                LEDGER.add(so_far.unrealized, unrealized),
            )
        return totals

    def _refresh(self, key: tuple[str, str]) -> None:
        """Replace a position's contribution to the aggregates by its current one (exact deltas)."""
        old = self._contributions.get(key)
        if old is not None:
            self._add_contribution(old, sign=-1)
        position = self._positions[key]
        mark = self._marks.get(key[1])
        if position.qty == 0:
            new = _Contribution(position.realized_pnl, _ZERO, _ZERO)
        elif mark is None:
            new = _Contribution(position.realized_pnl, None, None)
        else:
            new = _Contribution(
                position.realized_pnl,
                position.value(mark.price),
                position.unrealized_pnl(mark.price),
            )
        self._contributions[key] = new
        self._add_contribution(new, sign=1)
        if new.value is None:
            self._unmarked[key] = key[1]
        else:
            self._unmarked.pop(key, None)

    def _add_contribution(self, contribution: _Contribution, sign: int) -> None:
        add = LEDGER.add if sign > 0 else LEDGER.subtract
        self._realized = add(self._realized, contribution.realized)
        if contribution.value is not None and contribution.unrealized is not None:
            self._net = add(self._net, contribution.value)
            self._gross = add(self._gross, LEDGER.abs(contribution.value))
            self._unrealized = add(self._unrealized, contribution.unrealized)

    def _require_marks(self) -> None:
        if self._unmarked:
            raise MissingMark(self._unmarked.values())

    # -- orders ------------------------------------------------------------------------

    def add_order(self, order: OrderLike) -> None:
        """Index a new order by id, symbol and status; OrderValidationError on a reused id."""
        if order.order_id in self._orders:
            raise OrderValidationError(
                f"order id {order.order_id} is already indexed",
                order_id=order.order_id,
                symbol=order.symbol,
            )
        self._orders[order.order_id] = order
        self._order_status[order.order_id] = order.status
        self._orders_by_symbol.setdefault(order.symbol, {})[order.order_id] = order
        self._orders_by_status.setdefault(order.status, {})[order.order_id] = order

    def update_order_index(self, order: OrderLike) -> None:
        """Re-index an indexed order after its status changed (or replace its object).

        Raises OrderError when the order id is not indexed, OrderValidationError
        when its symbol differs from the indexed one (an order never changes
        instrument).
        """
        indexed = self._orders.get(order.order_id)
        if indexed is None:
            raise OrderError(f"order id {order.order_id} is not indexed", order_id=order.order_id)
        if order.symbol != indexed.symbol:
            raise OrderValidationError(
                f"order {order.order_id} changed symbol from {indexed.symbol} to {order.symbol}",
                order_id=order.order_id,
                symbol=order.symbol,
            )
        self._unindex_status(order.order_id)
        self._orders[order.order_id] = order
        self._orders_by_symbol[order.symbol][order.order_id] = order
        self._order_status[order.order_id] = order.status
        self._orders_by_status.setdefault(order.status, {})[order.order_id] = order

    def remove_order(self, order_id: str) -> OrderLike:
        """Drop an order from every index and return it; raises OrderError if not indexed."""
        order = self._orders.pop(order_id, None)
        if order is None:
            raise OrderError(f"order id {order_id} is not indexed", order_id=order_id)
        self._unindex_status(order_id)
        del self._order_status[order_id]
        by_symbol = self._orders_by_symbol[order.symbol]
        del by_symbol[order_id]
        if not by_symbol:
            del self._orders_by_symbol[order.symbol]
        return order

    def order(self, order_id: str) -> OrderLike | None:
        """The indexed order with this id, None if unknown; O(1)."""
        return self._orders.get(order_id)

    def orders(self) -> list[OrderLike]:
        """Every indexed order, in the order they were added."""
        return list(self._orders.values())

    def orders_for_symbol(self, symbol: str) -> list[OrderLike]:
        """The indexed orders of `symbol`, in the order they were added."""
        return list(self._orders_by_symbol.get(symbol, {}).values())

    def orders_with_status(self, status: Hashable) -> list[OrderLike]:
        """The indexed orders whose status was `status` when last (re-)indexed."""
        return list(self._orders_by_status.get(status, {}).values())

    def _unindex_status(self, order_id: str) -> None:
        old_status = self._order_status[order_id]
        by_status = self._orders_by_status[old_status]
        del by_status[order_id]
        if not by_status:
            del self._orders_by_status[old_status]

    # -- snapshots -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Cash, positions and marks as plain values (Decimals as strings); exact.

        Orders are not included: each order snapshots itself (`Order.to_dict`)
        and is re-indexed with `add_order` after recovery.
        """
        return {
            "schema": SNAPSHOT_SCHEMA,
            "account": self.account,
            "cash": str(self._cash),
            "positions": [position.to_dict() for position in self._positions.values()],
            "marks": {
                symbol: {"price": str(mark.price), "ts_ns": mark.ts_ns}
                for symbol, mark in sorted(self._marks.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Portfolio:
        """Rebuild a portfolio from `to_dict()` output, aggregates recomputed.

        Raises OrderValidationError when the snapshot is malformed (including a
        malformed position or two positions with the same account+symbol).
        """
        try:
            if data["schema"] != SNAPSHOT_SCHEMA:
                raise ValueError(f"unsupported snapshot schema {data['schema']!r}")
            account = data["account"]
            if not isinstance(account, str):
                raise TypeError(f"account: expected a string, got {account!r}")
            cash = data["cash"]
            if not isinstance(cash, str):
                raise TypeError(f"cash: expected a decimal string, got {cash!r}")
            portfolio = cls(Decimal(cash), account)
            for symbol, mark in dict(data["marks"]).items():
                ts_ns = mark["ts_ns"]
                if not isinstance(symbol, str) or not isinstance(mark["price"], str):
                    raise TypeError(f"malformed mark {symbol!r}: {mark!r}")
                if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
                    raise TypeError(f"mark {symbol}: ts_ns must be an int, got {ts_ns!r}")
                portfolio.set_mark(symbol, Decimal(mark["price"]), ts_ns)
            for item in list(data["positions"]):
                position = Position.from_dict(item)
                key = (position.account, position.symbol)
                if key in portfolio._positions:
                    raise ValueError(f"duplicate position {key[0]}/{key[1]}")
                portfolio._positions[key] = position
                portfolio._keys_by_symbol.setdefault(position.symbol, []).append(key)
                portfolio._refresh(key)
        except (KeyError, TypeError, ValueError, decimal.InvalidOperation) as exc:
            raise OrderValidationError(f"malformed portfolio snapshot: {exc!r}") from exc
        return portfolio

    # -- internals -------------------------------------------------------------------------

    def _account(self, account: str | None) -> str:
        return self.account if account is None else account

    def __repr__(self) -> str:
        return (
            f"Portfolio({self.account!r}, cash={self._cash}, positions={len(self._positions)}, "
            f"orders={len(self._orders)})"
        )


def _money(value: Decimal | int, name: str) -> Decimal:
    # bool is an int; float would smuggle binary rounding into the ledger.
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal or an int, got {value!r}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return amount


def _by_symbol(item: tuple[tuple[str, str], _Contribution]) -> tuple[str, str]:
    (account, symbol), _ = item
    return symbol, account
