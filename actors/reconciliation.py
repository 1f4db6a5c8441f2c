"""Reconciliation: what posbus knows of an account against what the exchange says.

Two pure parts, owned by the gateway actor (no threads, clocks or I/O):
`Ledger`, posbus's side, rebuilt from the journal and kept current by every
record the gateway journals; and `plan(ledger, snapshot, ...)`, which compares
a `ReconcileSnapshot` with the ledger and says what to do: fills to apply
(deduplicated by trade id), acks and ends the positions never heard, orders
proven absent to send again, exchange orders and trades posbus does not know
(adopt or flag), balance differences, and what stayed unknown.

A plan must never read a missing report as empty or flat, nor conclude from
an order's absence from the open orders that it does not exist: only a lookup
that says "no such order" proves that. The plan's rules: docs/architecture.md,
"Exchange sync and reconciliation". Money is exact (Decimal, 60-digit
context). The ledger reads the wire messages the gateway journals
(posbus.bus.messages), so this module sits in the actors layer, not the domain.
"""

from __future__ import annotations

import decimal
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from posbus.actors.model.exchange_events import ReconcileSnapshot, TradeCursor, TradeView
from posbus.actors.model.exchange_reports import ExchangeOrderStatus, OrderView
from posbus.actors.model.side import Side
from posbus.bus.messages import (
    Command,
    Message,
    OrderAck,
    OrderCancelled,
    OrderExpired,
    OrderFill,
    OrderRejected,
    OrderSubmit,
)

_MONEY = decimal.Context(prec=60)
_ZERO = Decimal(0)
# Fills kept with their time so a balance read can be matched to the fills before it.
_RECENT_FILLS = 10_000
# A trade this close to a balance read may or may not be in it (clock skew, latency).
RACE_MARGIN_NS = 1_000_000_000

CURSOR_RECORD = "gateway.trade_cursor"
BASELINE_RECORD = "gateway.balance_baseline"
ADOPTED_RECORD = "gateway.adopted"


def base_and_quote(symbol: str) -> tuple[str, str] | None:
    """The currencies of a spot symbol BASE/QUOTE; None for a derivative (BASE/QUOTE:SETTLE)."""
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote or ":" in quote:
        return None
    return base, quote


def fill_effect(
    symbol: str, side: Side, qty: Decimal, price: Decimal, *, fee: Decimal, fee_currency: str
) -> dict[str, Decimal]:
    """How one spot fill moves balances: base +-qty, quote -+qty*price, fee currency -fee."""
    currencies = base_and_quote(symbol)
    if currencies is None:
        return {}
    base, quote = currencies
    sign = Decimal(side.sign)
    out: dict[str, Decimal] = {}
    out[base] = _MONEY.multiply(sign, qty)
    out[quote] = _MONEY.minus(_MONEY.multiply(sign, _MONEY.multiply(qty, price)))
    out[fee_currency] = _MONEY.subtract(out.get(fee_currency, _ZERO), fee)
    return out


def _add(into: dict[str, Decimal], effect: Mapping[str, Decimal], sign: int = 1) -> None:
    for currency, amount in effect.items():
        delta = amount if sign > 0 else _MONEY.minus(amount)
        into[currency] = _MONEY.add(into.get(currency, _ZERO), delta)


@dataclass(slots=True)
class KnownOrder:
    """An order posbus placed (or adopted), as far as the journal tells."""

    client_order_id: str
    order_id: str
    stream: str
    symbol: str
    side: Side
    qty: Decimal
    limit_price: Decimal | None
    submitted_ts_ns: int
    filled_qty: Decimal = _ZERO
    acked: bool = False
    exchange_order_id: str | None = None
    ended: bool = False
    possibly_sent: bool = False
    adopted: bool = False

    @property
    def terminal(self) -> bool:
        """Nothing more will happen to it: cancelled, rejected, expired or filled."""
        return self.ended or (self.qty > 0 and self.filled_qty >= self.qty)


class Ledger:
    """posbus's view of one account, fed with journal records in order (owned by one actor).

    `stream_for(symbol)` names the position stream of a symbol (where fills
    of adopted orders go).
    """

    def __init__(self, stream_for: Callable[[str], str]) -> None:
        self.stream_for = stream_for
        self.orders: dict[str, KnownOrder] = {}
        self.by_exchange_id: dict[str, str] = {}
        self.by_order_id: dict[str, str] = {}
        self.trades: set[tuple[str, str]] = set()
        self.holdings: dict[str, Decimal] = {}
        self.recent: deque[tuple[int, dict[str, Decimal]]] = deque(maxlen=_RECENT_FILLS)
        self.cursors: dict[str, TradeCursor] = {}
        self.baseline: dict[str, Decimal] | None = None

    # -- feeding ---------------------------------------------------------------------

    def observe(self, stream: str, message: Message, *, possibly_sent: bool = False) -> None:
        """Apply one journaled record of a position stream (other kinds are ignored)."""
        if isinstance(message, OrderSubmit):
            if message.client_order_id not in self.orders:
                self.orders[message.client_order_id] = KnownOrder(
                    client_order_id=message.client_order_id,
                    order_id=message.order_id,
                    stream=stream,
                    symbol=message.symbol,
                    side=message.side,
                    qty=message.qty,
                    limit_price=message.limit_price,
                    submitted_ts_ns=message.ts_ns,
                    possibly_sent=possibly_sent,
                )
                self.by_order_id[message.order_id] = message.client_order_id
        elif isinstance(message, OrderAck):
            order = self.orders.get(message.client_order_id)
            if order is not None:
                order.acked = True
                order.exchange_order_id = message.exchange_order_id
                self.by_exchange_id[message.exchange_order_id] = message.client_order_id
        elif isinstance(message, OrderFill):
            self._observe_fill(message)
        elif isinstance(message, OrderCancelled | OrderRejected | OrderExpired):
            cid = self.by_order_id.get(message.order_id)
            if cid is not None:
                self.orders[cid].ended = True

    def _observe_fill(self, fill: OrderFill) -> None:
        key = (fill.symbol, fill.trade_id)
        if key in self.trades:
            return
        self.trades.add(key)
        effect = fill_effect(
            fill.symbol,
            fill.side,
            fill.qty,
            fill.price,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
        )
        _add(self.holdings, effect)
        self.recent.append((fill.ts_ns, effect))
        order = self.orders.get(fill.client_order_id)
        if order is not None:
            order.filled_qty = _MONEY.add(order.filled_qty, fill.qty)

    def observe_gateway(self, command: Command) -> None:
        """Apply one of the gateway's own records (cursor, baseline, adoption)."""
        args = command.args
        if command.name == CURSOR_RECORD:
            symbol, trade_id, ts_ms = args.get("symbol"), args.get("trade_id"), args.get("ts_ms")
            if isinstance(symbol, str) and isinstance(trade_id, str) and isinstance(ts_ms, int):
                self.cursors[symbol] = TradeCursor(trade_id, ts_ms)
        elif command.name == BASELINE_RECORD:
            self.baseline = {k: Decimal(v) for k, v in args.items() if isinstance(v, str)}
        elif command.name == ADOPTED_RECORD:
            cid, eid, symbol = (
                args.get("client_order_id"),
                args.get("exchange_order_id"),
                args.get("symbol"),
            )
            side, qty = args.get("side"), args.get("qty")
            if all(isinstance(v, str) for v in (cid, eid, symbol, side, qty)):
                assert isinstance(cid, str) and isinstance(eid, str) and isinstance(symbol, str)
                self.adopt(cid, eid, symbol, Side(str(side)), Decimal(str(qty)))

    def adopt(
        self, cid: str, exchange_order_id: str, symbol: str, side: Side, qty: Decimal
    ) -> KnownOrder:
        """Take on an exchange order posbus did not place: its fills go to its symbol's position."""
        order = self.orders.get(cid)
        if order is None:
            order = KnownOrder(
                client_order_id=cid,
                order_id=adopted_order_id(exchange_order_id),
                stream=self.stream_for(symbol),
                symbol=symbol,
                side=side,
                qty=qty,
                limit_price=None,
                submitted_ts_ns=0,
                acked=True,
                exchange_order_id=exchange_order_id,
                possibly_sent=True,
                adopted=True,
            )
            self.orders[cid] = order
            self.by_order_id[order.order_id] = cid
        self.by_exchange_id[exchange_order_id] = cid
        return order

    # -- questions -------------------------------------------------------------------

    def cid_of(self, exchange_order_id: str) -> str | None:
        """The client order id of an exchange order posbus knows."""
        return self.by_exchange_id.get(exchange_order_id)

    def live_orders(self) -> list[KnownOrder]:
        """Orders that may still be working (or whose outcome is unknown) at the exchange."""
        return [o for o in self.orders.values() if not o.terminal and o.possibly_sent]

    def to_dict(self) -> dict[str, object]:
        """Counts and cursors for `inspect`."""
        return {
            "known_orders": len(self.orders),
            "live_orders": len(self.live_orders()),
            "adopted_orders": sum(1 for o in self.orders.values() if o.adopted),
            "trades": len(self.trades),
            "cursors": {
                s: {"trade_id": c.trade_id, "ts_ms": c.ts_ms} for s, c in self.cursors.items()
            },
            "baseline": None
            if self.baseline is None
            else {k: str(v) for k, v in self.baseline.items()},
        }


def adopted_order_id(exchange_order_id: str) -> str:
    """The posbus order id given to an adopted exchange order."""
    return f"external:{exchange_order_id}"


# -- planning -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BalanceCheck:
    """One currency: what the exchange holds against baseline + posbus's fills."""

    currency: str
    expected: Decimal
    actual: Decimal

    @property
    def difference(self) -> Decimal:
        """actual - expected."""
        return _MONEY.subtract(self.actual, self.expected)


@dataclass(frozen=True, slots=True)
class ReconcilePlan:
    """What a reconciliation found and what the gateway must do about it (see module docstring)."""

    fills: tuple[TradeView, ...] = ()
    acks: tuple[tuple[str, str], ...] = ()
    ends: tuple[tuple[str, ExchangeOrderStatus], ...] = ()
    resend: tuple[str, ...] = ()
    track: tuple[tuple[str, str, str], ...] = ()
    lost: tuple[str, ...] = ()
    adopt: tuple[OrderView | TradeView, ...] = ()
    unknown_orders: tuple[OrderView, ...] = ()
    foreign_trades: tuple[TradeView, ...] = ()
    history: int = 0
    cursors: Mapping[str, TradeCursor] = field(default_factory=dict)
    mismatches: tuple[BalanceCheck, ...] = ()
    baseline: Mapping[str, Decimal] | None = None
    unknown: tuple[str, ...] = ()

    @property
    def repaired(self) -> bool:
        """Something was brought back in line (fills, acks, ends, resends, adoptions)."""
        return bool(self.fills or self.acks or self.ends or self.resend or self.adopt)


def _trade_order(trade: TradeView) -> tuple[int, int, str]:
    """Oldest first: by numeric id when the id is a number, else by time."""
    numeric = trade.trade_id.isdigit()
    return (
        trade.ts_ns if not numeric else 0,
        int(trade.trade_id) if numeric else 0,
        trade.trade_id,
    )


@dataclass(slots=True)
class _Draft:
    """The plan while it is being worked out (mutable); frozen into a ReconcilePlan."""

    exchange_ids: dict[str, str]
    unknown: list[str]
    acks: list[tuple[str, str]] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    ends: list[tuple[str, ExchangeOrderStatus]] = field(default_factory=list)
    resend: list[str] = field(default_factory=list)
    track: list[tuple[str, str, str]] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    adopt: list[OrderView | TradeView] = field(default_factory=list)
    adopted: set[str] = field(default_factory=set)
    unknown_orders: list[OrderView] = field(default_factory=list)
    fills: list[TradeView] = field(default_factory=list)
    foreign: list[TradeView] = field(default_factory=list)
    history: int = 0
    cursors: dict[str, TradeCursor] = field(default_factory=dict)
    mismatches: list[BalanceCheck] = field(default_factory=list)
    baseline: dict[str, Decimal] | None = None

    def ack(self, ledger: Ledger, cid: str, view: OrderView) -> None:
        self.exchange_ids[view.exchange_order_id] = cid
        if not ledger.orders[cid].acked and cid not in self.acked:
            self.acked.add(cid)
            self.acks.append((cid, view.exchange_order_id))


def plan(
    ledger: Ledger,
    snapshot: ReconcileSnapshot,
    *,
    adopt_unknown: bool,
    balance_tolerance: Decimal,
) -> ReconcilePlan:
    """Compare the exchange's snapshot with the ledger; the ledger is not changed.

    Balances are compared only when the snapshot says when they were read
    (`balances_read_ns`).
    """
    draft = _Draft(exchange_ids=dict(ledger.by_exchange_id), unknown=list(snapshot.errors))
    _plan_open_orders(ledger, snapshot, draft, adopt_unknown)
    _plan_lookups(ledger, snapshot, draft)
    _plan_trades(ledger, snapshot, draft, adopt_unknown)
    _plan_balances(ledger, snapshot, draft, balance_tolerance)
    return ReconcilePlan(
        fills=tuple(draft.fills),
        acks=tuple(draft.acks),
        ends=tuple(draft.ends),
        resend=tuple(draft.resend),
        track=tuple(dict.fromkeys(draft.track)),
        lost=tuple(draft.lost),
        adopt=tuple(draft.adopt),
        unknown_orders=tuple(draft.unknown_orders),
        foreign_trades=tuple(draft.foreign),
        history=draft.history,
        cursors=draft.cursors,
        mismatches=tuple(draft.mismatches),
        baseline=draft.baseline,
        unknown=tuple(draft.unknown),
    )


def _plan_open_orders(
    ledger: Ledger, snapshot: ReconcileSnapshot, draft: _Draft, adopt_unknown: bool
) -> None:
    """Open orders: ours are acknowledged and tracked; the others adopted or flagged."""
    if snapshot.open_orders is None:
        draft.unknown.append("open orders")
        return
    for view in snapshot.open_orders:
        cid = view.client_order_id
        if cid in ledger.orders:
            draft.ack(ledger, cid, view)
            if not ledger.orders[cid].terminal:
                draft.track.append((cid, view.symbol, view.exchange_order_id))
        elif adopt_unknown:
            draft.adopt.append(view)
            draft.adopted.add(cid)
            draft.exchange_ids[view.exchange_order_id] = cid
            draft.track.append((cid, view.symbol, view.exchange_order_id))
        else:
            draft.unknown_orders.append(view)


def _plan_lookups(ledger: Ledger, snapshot: ReconcileSnapshot, draft: _Draft) -> None:
    """Lookups: the only proof that an order is, or is not, at the exchange."""
    for cid, found in snapshot.lookups.items():
        order = ledger.orders.get(cid)
        if order is None:
            continue
        if found is None:
            if order.acked or order.filled_qty > 0:
                draft.lost.append(cid)
            elif not order.terminal:
                draft.resend.append(cid)
            continue
        draft.ack(ledger, cid, found)
        if found.status in (ExchangeOrderStatus.CANCELLED, ExchangeOrderStatus.EXPIRED):
            if not order.ended:
                draft.ends.append((cid, found.status))
        elif found.status.is_open and not order.terminal:
            draft.track.append((cid, found.symbol, found.exchange_order_id))


def _plan_trades(
    ledger: Ledger, snapshot: ReconcileSnapshot, draft: _Draft, adopt_unknown: bool
) -> None:
    """Trades: apply what is ours and new; the rest is history, adopted or foreign."""
    seen: set[tuple[str, str]] = set()
    for symbol, trades in snapshot.trades.items():
        first_time = symbol not in ledger.cursors
        ordered = sorted(trades, key=_trade_order)
        for trade in ordered:
            key = (trade.symbol, trade.trade_id)
            if key in seen:
                continue  # the exchange repeated itself
            seen.add(key)
            if key in ledger.trades:
                continue
            cid = trade.client_order_id or draft.exchange_ids.get(trade.exchange_order_id)
            if cid is not None and (cid in ledger.orders or cid in draft.adopted):
                draft.fills.append(trade)
            elif first_time:
                draft.history += 1
            elif adopt_unknown:
                draft.adopt.append(trade)
                draft.fills.append(trade)
            else:
                draft.foreign.append(trade)
        if ordered:
            newest = ordered[-1]
            draft.cursors[symbol] = TradeCursor(newest.trade_id, newest.ts_ns // 1_000_000)
        elif first_time:
            draft.cursors[symbol] = TradeCursor("", snapshot.trades_read_ms)


def _plan_balances(
    ledger: Ledger, snapshot: ReconcileSnapshot, draft: _Draft, tolerance: Decimal
) -> None:
    """Balances against baseline + every fill before the read (or set the baseline)."""
    balances, window = snapshot.balances, snapshot.balances_read_ns
    if balances is None:
        draft.unknown.append("balances")
        return
    if window is None or any(e.startswith("trades of") for e in draft.unknown):
        draft.unknown.append("balances (not every trade could be read)")
        return
    projected, raced = _projected(ledger, draft.fills, window)
    if raced:
        draft.unknown.append("balances (a fill raced the balance read)")
        return
    if ledger.baseline is None:
        draft.baseline = {
            c: _MONEY.subtract(amount, projected.get(c, _ZERO)) for c, amount in balances.items()
        }
        return
    for currency in sorted(set(ledger.baseline) | set(projected) | set(balances)):
        actual = balances.get(currency)
        if actual is None:
            draft.unknown.append(f"balance of {currency} (not reported)")
            continue
        expected = _MONEY.add(ledger.baseline.get(currency, _ZERO), projected.get(currency, _ZERO))
        check = BalanceCheck(currency, expected, actual)
        if abs(check.difference) > tolerance:
            draft.mismatches.append(check)


def _projected(
    ledger: Ledger, fills: Iterable[TradeView], window_ns: tuple[int, int]
) -> tuple[dict[str, Decimal], bool]:
    """Balance changes of every fill up to the balance read, and whether one raced it."""
    start, end = window_ns[0] - RACE_MARGIN_NS, window_ns[1] + RACE_MARGIN_NS
    projected = dict(ledger.holdings)
    raced = False
    for ts_ns, effect in ledger.recent:
        if ts_ns > end:
            _add(projected, effect, sign=-1)  # after the read: not in the balances yet
        elif ts_ns >= start:
            raced = True
    for trade in fills:
        if trade.ts_ns > end:
            continue
        if trade.ts_ns >= start:
            raced = True
        _add(
            projected,
            fill_effect(
                trade.symbol,
                trade.side,
                trade.qty,
                trade.price,
                fee=trade.fee,
                fee_currency=trade.fee_currency,
            ),
        )
    return projected, raced
