"""What a network exchange client and its gateway actor tell each other (in-process values).

A network client (the ccxt gateway) answers later, on its own I/O thread:
its results reach the gateway actor as messages, never as return values, so
the actor's mailbox never waits on the network. Execution reports travel as
`ExchangeReports` (posbus.actors.gateway_actor); the rest is here:

- `BreakerChanged`: the client's circuit breaker changed state.
- `ReconcileDue`: time to reconcile (periodic timer, reconnect).
- `ReconcileRequest` (actor -> client): what to fetch, and from where on.
- `ReconcileSnapshot` (client -> actor): what the exchange said. Every part
  may be missing (None, or a key absent) when its fetch failed: a missing
  report means "unknown", never "empty" or "flat".
- `TradeView`, `TradeCursor`: the exchange's trade history and how far it
  was read; `ReconcilePolicy`: what the gateway does with what it finds.

A port of the domain: frozen values only; no I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from posbus.actors.model.exchange_reports import Liquidity, OrderView
from posbus.actors.model.side import Side


@dataclass(frozen=True, slots=True)
class TradeView:
    """One execution on the exchange, as its trade history reports it.

    `client_order_id` is None when the exchange's trade record does not say
    (Binance's myTrades gives only its own order id) and the order could not
    be looked up. `fee_mark` is the price of one `fee_currency` in the
    symbol's quote currency around the trade's time, set by the client for a
    fee in a third currency when it has one (`Fill.fee_mark`).
    """

    trade_id: str
    exchange_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    ts_ns: int
    liquidity: Liquidity
    fee_mark: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TradeCursor:
    """Where a symbol's trade history was last read up to (inclusive).

    `trade_id` is the exchange's id of the newest trade covered and
    `ts_ms` its time; exchanges with ordered ids page by id, the others by time.
    """

    trade_id: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class ReconcileRequest:
    """Ask the client for the exchange's side of the books.

    - `symbols`: whose trade history to read (after `cursors[symbol]`; with
      no cursor, the most recent page, to set a baseline).
    - `lookups`: (client order id, symbol) of orders posbus thinks may be
      live or whose outcome it does not know; each is looked up unless the
      open orders already show it.
    - `balances`: whether to fetch balances.
    - `known_exchange_ids`: exchange order ids posbus already knows; the
      client looks up the orders of other trades to learn their client ids.
    """

    reason: str
    symbols: tuple[str, ...]
    cursors: Mapping[str, TradeCursor] = field(default_factory=dict)
    lookups: tuple[tuple[str, str], ...] = ()
    balances: bool = True
    known_exchange_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ReconcileSnapshot:
    """The exchange's answer to a ReconcileRequest.

    - `open_orders`: every open order of the account, or None if unknown.
    - `trades`: per symbol, the trades after its cursor (oldest first); a
      symbol that is missing is unknown.
    - `lookups`: client order id -> the order, or None when the exchange
      says it has no such order (proof of absence); a missing id is unknown.
    - `balances`: total per currency (free + used), or None if unknown.
    - `errors`: what could not be fetched, and why.
    - `balances_read_ns`: wall-clock ns when the balance request left and
      when its answer came (fills inside that window race the read).
    - `trades_read_ms`: wall-clock ms just before the trade history was
      read: the cursor of a symbol that has no trade yet.
    """

    reason: str
    ts_ns: int
    open_orders: tuple[OrderView, ...] | None
    trades: Mapping[str, tuple[TradeView, ...]]
    lookups: Mapping[str, OrderView | None]
    balances: Mapping[str, Decimal] | None
    errors: tuple[str, ...] = ()
    balances_read_ns: tuple[int, int] | None = None
    trades_read_ms: int = 0


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    """The client's circuit breaker moved from `previous` to `state`.

    States are "closed", "open" and "half_open".
    """

    previous: str
    state: str
    reason: str
    failures: int
    ts_ns: int


@dataclass(frozen=True, slots=True)
class ReconcileDue:
    """The client asks its gateway to reconcile: `reason` is "periodic" or "reconnect"."""

    reason: str


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """How the gateway reacts to what reconciliation finds (from the `[exchange]` config).

    `adopt_unknown`: adopt exchange orders posbus did not place (else flag
    them and halt); `halt_on_balance_mismatch`: halt (else only report) when
    balances differ from what fills explain by more than `balance_tolerance`.
    """

    adopt_unknown: bool = False
    halt_on_balance_mismatch: bool = True
    balance_tolerance: Decimal = Decimal(0)
