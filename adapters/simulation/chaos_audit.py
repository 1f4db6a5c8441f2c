"""The chaos run's end-of-run audit: what the stack says == its journals == the exchange's fills.

Reads the SQLite journals of a stopped-faults stack (read-only, while it
runs: SQLite readers never block the writer) and compares up to four
accounts of the same trading:

- live: each position actor's `inspect` through its positions shard;
- cold: the same position rebuilt in this process from its shard's journal
  alone, records 1..live journal_seq (no snapshot, nothing else);
- published: the fills the gateway published (all its ``published/*``
  streams, one per gateway incarnation, journaled before they left the
  process), deduplicated by trade id;
- venue (a run against the exchange emulator): the emulator's own orders
  and trade ledger, the exchange's truth (`VenueLedger`).

Trade ids are unique per symbol only (Binance numbers each market's trades
on its own), so a trade is keyed by its position stream and its id.
Every mismatch becomes one `Discrepancy` naming the stream and what differs.
This module only reads; it never sends a command that changes state.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from posbus.actors.delivery import Outbox, decode_record
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor
from posbus.actors.position_actor import logger as position_logger
from posbus.adapters.clock import WallClock
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.bus.messages import OrderAck, OrderFill, OrderRejected, OrderSubmit

COMPARED = ("status", "qty", "avg_entry_price", "realized_pnl", "fees", "trade_ids")
"""Fields of a position that live state and a cold replay must agree on exactly."""


CASH_QUANTUM = Decimal("1e-12")
"""Cash is compared to 12 decimal places (fees and prices have at most 8)."""

NOTIONAL_SLACK = Decimal("1.02")
"""An order's filled notional may pass `max_order_notional` by 2 %: risk judges it at
the mark (or its limit price) when it decides, the exchange fills it at the touch
a moment later."""

TradeKey = tuple[str, str]
"""(position stream, trade id): a trade id is unique within its symbol only."""


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One order as the exchange holds it."""

    client_order_id: str
    exchange_order_id: str
    symbol: str
    qty: Decimal
    executed: Decimal
    status: str


@dataclass(frozen=True, slots=True)
class VenueTrade:
    """One execution as the exchange's ledger records it (`side`: "buy" or "sell")."""

    trade_id: str
    client_order_id: str
    account: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal

    @property
    def key(self) -> TradeKey:
        """Its position stream and trade id."""
        return f"position/{self.account}/{self.symbol}", self.trade_id


@dataclass(frozen=True, slots=True)
class VenueLedger:
    """The exchange's own account of the run: every order it accepted, every trade."""

    orders: tuple[VenueOrder, ...] = ()
    trades: tuple[VenueTrade, ...] = ()


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One thing the audit found wrong: where, and what."""

    where: str
    what: str


@dataclass(slots=True)
class AuditResult:
    """The audit's counts and every discrepancy it found (empty: all accounts agree)."""

    positions: int = 0
    orders: int = 0
    fills: int = 0
    fills_applied: int = 0
    rejects: int = 0
    venue_orders: int = 0
    venue_trades: int = 0
    risk_refusals: int = 0
    largest_order_notional: Decimal = Decimal(0)
    cash: Decimal = Decimal(0)
    discrepancies: list[Discrepancy] = field(default_factory=list)

    def add(self, where: str, what: str) -> None:
        """Record one discrepancy."""
        self.discrepancies.append(Discrepancy(where, what))


def cold_replay(journal: SqliteJournal, stream: str, upto: int) -> dict[str, Any]:
    """The position of `stream` rebuilt from records 1..upto of `journal`, nothing else.

    Raises ValueError when the journal ends before `upto`.
    """
    _, account, symbol = stream.split("/", 2)
    with _quiet(position_logger):
        return _cold_replay(journal, stream, upto, account, symbol)


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Silence `logger` below CRITICAL: a replay repeats what the live actor logged already."""
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _cold_replay(
    journal: SqliteJournal, stream: str, upto: int, account: str, symbol: str
) -> dict[str, Any]:
    shell = PositionActor.shell(Outbox(journal, "chaos-audit", WallClock()), account, symbol)
    for record in journal.read(stream):
        if record.seq > upto:
            break
        shell.cursor.offer(decode_record(record))
    if shell.cursor.position != upto:
        raise ValueError(f"{stream}: journal ends at {shell.cursor.position}, before seq {upto}")
    state: dict[str, Any] = shell.inspect()
    return state


@dataclass(frozen=True, slots=True)
class Published:
    """What the gateway published, read back from its journal."""

    fills: dict[TradeKey, OrderFill]
    duplicate_fills: int
    acks: dict[str, set[str]]
    rejects: int


def read_published(journal: SqliteJournal, result: AuditResult) -> Published:
    """Every execution signal on the gateway's ``published/*`` streams, fills by trade id.

    A trade id published twice with different content is a discrepancy; the
    same fill published again (a redelivery after a restart) is counted only.
    """
    fills: dict[TradeKey, OrderFill] = {}
    acks: dict[str, set[str]] = defaultdict(set)
    duplicates = 0
    rejects = 0
    for stream in sorted(journal.streams()):
        if not stream.startswith("published/"):
            continue
        for record in journal.read(stream):
            message = decode_record(record).message
            if isinstance(message, OrderFill):
                key = (f"position/{message.account}/{message.symbol}", message.trade_id)
                seen = fills.get(key)
                if seen is None:
                    fills[key] = message
                    continue
                duplicates += 1
                if (seen.client_order_id, seen.qty, seen.price, seen.fee, seen.side) != (
                    message.client_order_id,
                    message.qty,
                    message.price,
                    message.fee,
                    message.side,
                ):
                    result.add(_trade(key), "published twice with different content")
            elif isinstance(message, OrderAck):
                acks[message.client_order_id].add(message.exchange_order_id)
            elif isinstance(message, OrderRejected):
                rejects += 1
    return Published(fills, duplicates, dict(acks), rejects)


def audit(
    live: dict[str, dict[str, Any]],
    shard_journals: Iterable[Path],
    gateway_journal: Path,
    *,
    venue: VenueLedger | None = None,
    max_order_notional: Decimal | None = None,
) -> AuditResult:
    """Compare live positions (stream -> inspect) with their journals and the exchange's fills.

    Checks, each a discrepancy when it fails: every journaled position is
    live and equals its cold replay on `COMPARED`; no trade is applied in
    two positions; the applied trades are exactly the published ones; each
    position's quantity is the signed sum of its symbol's published fills,
    its fees their fees and its cash (realized P&L - qty * avg entry) their
    cash flow (sum of -signed qty * price - fee); no client order id was
    acknowledged under two exchange order ids; no order is filled beyond its
    quantity and each order's filled quantity is the sum of its fills.

    With the `venue`'s ledger, also: every exchange trade is applied exactly
    once and nothing else is; quantity, fees and cash of every position equal
    those its exchange trades imply; no client order id names two exchange
    orders (no order sent twice), each names an order posbus knows, with the
    same quantity and the same filled quantity.

    With `max_order_notional` (the risk limit the stack ran with), also: no
    order was filled for more than the limit (x NOTIONAL_SLACK), so risk was
    asked before every order, also while its worker was dead or restarting.
    The rules let a risk-reducing order through whatever its size (closing
    must always be possible): an order that reduced its position when it was
    submitted, per its position's journal, is exempt. Orders risk refused
    are counted (`risk_refusals`).
    """
    result = AuditResult()
    gateway = SqliteJournal(gateway_journal, writer=False)
    try:
        published = read_published(gateway, result)
    finally:
        gateway.close()
    result.fills = len(published.fills)
    result.rejects = published.rejects

    applied: dict[TradeKey, str] = {}
    order_qty: dict[str, Decimal] = {}
    order_filled: dict[str, Decimal] = {}
    reducing: set[str] = set()
    journaled: set[str] = set()
    for path in shard_journals:
        journal = SqliteJournal(path, writer=False)
        try:
            for stream in sorted(journal.streams()):
                if not stream.startswith("position/"):
                    continue
                journaled.add(stream)
                state = live.get(stream)
                if state is None:
                    result.add(stream, "journaled but not live in any shard")
                    continue
                cold = cold_replay(journal, stream, int(state["journal_seq"]))
                reducing |= reducing_orders(journal, stream)
                for key in COMPARED:
                    if state[key] != cold[key]:
                        result.add(stream, f"{key}: live {state[key]!r} != journal {cold[key]!r}")
                _collect(stream, state, applied, order_qty, order_filled, result)
        finally:
            journal.close()
    for stream in sorted(set(live) - journaled):
        result.add(stream, "live but has no journal stream")
    result.positions = len(journaled)
    result.orders = len(order_qty)
    result.fills_applied = len(applied)

    lost = set(published.fills) - set(applied)
    invented = set(applied) - set(published.fills)
    for trade in sorted(lost):
        result.add(_trade(trade), "published by the gateway, applied by no position")
    for trade in sorted(invented):
        result.add(_trade(trade), f"applied in {applied[trade]}, never published")
    flows = [
        _Flow(k[0], f.side == "buy", f.qty, f.price, f.fee) for k, f in published.fills.items()
    ]
    result.cash = _compare_money(live, flows, "published fills", result)
    _compare_orders(published, order_qty, order_filled, result)
    _check_notional(published, max_order_notional, reducing, result)
    if venue is not None:
        _compare_venue(live, venue, applied, order_qty, order_filled, result)
    return result


def _trade(key: TradeKey) -> str:
    stream, trade_id = key
    return f"trade {trade_id} of {stream.split('/', 2)[2]}"


@dataclass(frozen=True, slots=True)
class _Flow:
    """One fill as money: its stream, direction, quantity, price and fee."""

    stream: str
    buy: bool
    qty: Decimal
    price: Decimal
    fee: Decimal


def _collect(  # noqa: PLR0917 - private accumulator of `audit`
    stream: str,
    state: dict[str, Any],
    applied: dict[TradeKey, str],
    order_qty: dict[str, Decimal],
    order_filled: dict[str, Decimal],
    result: AuditResult,
) -> None:
    for trade_id in state["trade_ids"]:
        key = (stream, str(trade_id))
        if key in applied:
            result.add(stream, f"trade {trade_id} applied twice")
        applied[key] = stream
    for order in state.get("orders", {}).values():
        result.risk_refusals += str(order.get("reason") or "").startswith("risk: ")
        client_id = str(order.get("client_order_id") or order["order_id"])
        order_qty[client_id] = Decimal(str(order["qty"]))
        order_filled[client_id] = Decimal(str(order.get("filled_qty", "0")))


def _compare_money(
    live: dict[str, dict[str, Any]], flows: Iterable[_Flow], source: str, result: AuditResult
) -> Decimal:
    """Quantity, fees and cash of every position against `flows`; returns the total cash."""
    by_stream: dict[str, list[_Flow]] = defaultdict(list)
    for flow in flows:
        by_stream[flow.stream].append(flow)
    total_cash = Decimal(0)
    for stream in sorted(set(live) | set(by_stream)):
        fills = by_stream.get(stream, [])
        state = live.get(stream)
        qty = sum((f.qty if f.buy else -f.qty for f in fills), Decimal(0))
        fees = sum((f.fee for f in fills), Decimal(0))
        cash = sum((-(f.qty if f.buy else -f.qty) * f.price - f.fee for f in fills), Decimal(0))
        total_cash += cash
        if state is None:
            if fills:
                result.add(stream, f"{len(fills)} {source} but no live position")
            continue
        live_qty = Decimal(state["qty"])
        live_cash = Decimal(state["realized_pnl"]) - live_qty * Decimal(state["avg_entry_price"])
        if live_qty != qty:
            result.add(stream, f"qty {live_qty} != signed sum of {source} {qty}")
        if Decimal(state["fees"]) != fees:
            result.add(stream, f"fees {state['fees']} != fees of {source} {fees}")
        # The average entry is a 28-digit decimal, so qty x avg carries its
        # last-digit rounding (1e-25 here): money is compared to CASH_PLACES.
        if live_cash.quantize(CASH_QUANTUM) != cash.quantize(CASH_QUANTUM):
            result.add(stream, f"cash {live_cash} != cash flow of {source} {cash}")
    return total_cash


def _compare_orders(
    published: Published,
    order_qty: dict[str, Decimal],
    order_filled: dict[str, Decimal],
    result: AuditResult,
) -> None:
    for client_id, exchange_ids in sorted(published.acks.items()):
        if len(exchange_ids) > 1:
            result.add(f"order {client_id}", f"sent twice: exchange ids {sorted(exchange_ids)}")
    filled: dict[str, Decimal] = defaultdict(Decimal)
    for fill in published.fills.values():
        filled[fill.client_order_id] += fill.qty
    for client_id, qty in sorted(filled.items()):
        ordered = order_qty.get(client_id)
        if ordered is None:
            result.add(f"order {client_id}", "filled at the exchange, unknown to every position")
            continue
        if qty > ordered:
            result.add(f"order {client_id}", f"filled {qty} > ordered {ordered}")
        if order_filled.get(client_id, Decimal(0)) != qty:
            result.add(
                f"order {client_id}",
                f"filled_qty {order_filled.get(client_id)} != published fills {qty}",
            )


def reducing_orders(journal: SqliteJournal, stream: str) -> set[str]:
    """Client order ids of `stream` whose order reduced its position when it was submitted.

    A fill is counted once by its trade id, as the position applies it: a
    restarted shard journals again the fills it fetches from the gateway.
    """
    held = Decimal(0)
    seen: set[str] = set()
    out: set[str] = set()
    for record in journal.read(stream):
        message = decode_record(record).message
        if isinstance(message, OrderFill) and message.trade_id not in seen:
            seen.add(message.trade_id)
            held += message.qty if message.side is Side.BUY else -message.qty
        elif isinstance(message, OrderSubmit):
            selling = message.side is Side.SELL
            if held and (held > 0) == selling and message.qty <= abs(held):
                out.add(message.client_order_id)
    return out


def _check_notional(
    published: Published, limit: Decimal | None, exempt: set[str], result: AuditResult
) -> None:
    notional: dict[str, Decimal] = defaultdict(Decimal)
    for fill in published.fills.values():
        notional[fill.client_order_id] += fill.qty * fill.price
    result.largest_order_notional = max(
        (v for cid, v in notional.items() if cid not in exempt), default=Decimal(0)
    )
    if limit is None:
        return
    for client_id, value in sorted(notional.items()):
        if client_id not in exempt and value > limit * NOTIONAL_SLACK:
            result.add(f"order {client_id}", f"filled notional {value} beyond the limit {limit}")


def _compare_venue(  # noqa: PLR0917 - private part of `audit`
    live: dict[str, dict[str, Any]],
    venue: VenueLedger,
    applied: dict[TradeKey, str],
    order_qty: dict[str, Decimal],
    order_filled: dict[str, Decimal],
    result: AuditResult,
) -> None:
    """The exchange's ledger against what the positions applied (see `audit`)."""
    result.venue_orders = len(venue.orders)
    result.venue_trades = len(venue.trades)
    trades: dict[TradeKey, VenueTrade] = {}
    for trade in venue.trades:
        if trade.key in trades:
            result.add(_trade(trade.key), "listed twice in the exchange's own ledger")
        trades[trade.key] = trade
    for key in sorted(set(trades) - set(applied)):
        cid = trades[key].client_order_id
        result.add(_trade(key), f"executed at the exchange (order {cid}), applied by no position")
    for key in sorted(set(applied) - set(trades)):
        result.add(_trade(key), f"applied in {applied[key]}, not a trade of the exchange")
    flows = [_Flow(t.key[0], t.side == "buy", t.qty, t.price, t.fee) for t in trades.values()]
    _compare_money(live, flows, "exchange trades", result)
    by_client: dict[str, list[VenueOrder]] = defaultdict(list)
    for order in venue.orders:
        by_client[order.client_order_id].append(order)
    for cid, orders in sorted(by_client.items()):
        if len(orders) > 1:
            ids = sorted(o.exchange_order_id for o in orders)
            result.add(f"order {cid}", f"sent twice: {len(orders)} exchange orders {ids}")
        ordered = order_qty.get(cid)
        if ordered is None:
            result.add(f"order {cid}", "at the exchange, unknown to every position")
            continue
        executed = sum((o.executed for o in orders), Decimal(0))
        if any(o.qty != ordered for o in orders):
            result.add(f"order {cid}", f"exchange qty {orders[0].qty} != ordered {ordered}")
        if order_filled.get(cid, Decimal(0)) != executed:
            result.add(
                f"order {cid}",
                f"filled_qty {order_filled.get(cid)} != executed at the exchange {executed}",
            )
