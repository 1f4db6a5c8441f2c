"""ccxt's unified structures (orders, trades, balances, tickers) as posbus values, strictly.

The ccxt gateway tells ccxt to hand numbers over as the strings the exchange
sent (`exchange.number = str`); here they become Decimal, never float.

Strict: a field posbus needs that it cannot interpret (an order status other
than open, closed, canceled, expired or rejected; no side; no order id; a
missing or non-numeric amount) is never guessed. `UnreadableField` names the
structure, the field and the value; the gateway then looks the order up again
or leaves the read incomplete (docs/venues.md). A trade without an id gets a
synthetic one, `synthetic:` and the first 32 hex digits of the SHA-256 of
`ORDER_ID|TIMESTAMP_MS|AMOUNT|PRICE` (amount and price as plain normalized
decimals): the same fill always gets the same id, two different fills never
share one.

Pure functions, safe on any thread: no I/O, no clocks (the caller passes "now"
for a structure that has no timestamp of its own).
"""

from __future__ import annotations

import dataclasses
import decimal
import hashlib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from posbus.actors.model.errors import ExchangeUnavailable
from posbus.actors.model.exchange_events import TradeView
from posbus.actors.model.exchange_reports import ExchangeOrderStatus, Liquidity, OrderView
from posbus.actors.model.side import Side
from posbus.bus.messages import MarketUpdate

# Fees of one trade are summed without rounding: any rounding raises instead.
_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow],
)

SYNTHETIC_TRADE_ID_PREFIX = "synthetic:"

# ccxt's unified order statuses; None for "open", which `filled` splits in two.
_ORDER_STATUSES: dict[str, ExchangeOrderStatus | None] = {
    "open": None,
    "closed": ExchangeOrderStatus.FILLED,
    "canceled": ExchangeOrderStatus.CANCELLED,
    "expired": ExchangeOrderStatus.EXPIRED,
    # Refused by the venue: off the book, nothing of it will ever fill.
    "rejected": ExchangeOrderStatus.CANCELLED,
}
_SIDES = {"buy": Side.BUY, "sell": Side.SELL}


class UnreadableField(ExchangeUnavailable):
    """A ccxt structure has a field posbus needs and cannot interpret; nothing was guessed.

    Transient: the structure is asked for again (an order is looked up, a read
    is retried). `structure` is "order", "trade", "balance", "position" or
    "funding"; `field` and `value` say what could not be read.
    """

    def __init__(self, structure: str, field: str, value: Any, **context: Any) -> None:
        super().__init__(f"{structure} with an unreadable {field}: {value!r}", **context)
        self.structure = structure
        self.field = field
        self.value = value

    def context(self) -> dict[str, Any]:
        return {
            **super().context(),
            "structure": self.structure,
            "field": self.field,
            "value": repr(self.value),
        }


def decimal_of(value: Any) -> Decimal | None:
    """A ccxt number (a string, with `number = str`) as Decimal; None if absent or not one."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        # A float can only come from a ccxt code path that ignores `number`: its
        # shortest repr is the decimal the exchange sent.
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def ns_of_ms(value: Any, default_ns: int) -> int:
    """A ccxt timestamp (ms) in ns; `default_ns` when there is none."""
    return int(value) * 1_000_000 if _is_ms(value) else default_ns


def text_of(raw: Mapping[str, Any], field: str, structure: str, **context: Any) -> str:
    """A non-empty text field (an id, a symbol, a currency code); UnreadableField without one."""
    value = raw.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # an exchange id some venues send as a number
    if not isinstance(value, str) or not value:
        raise UnreadableField(structure, field, value, **context)
    return value


def number_of(
    raw: Mapping[str, Any], field: str, structure: str, *, positive: bool = False, **context: Any
) -> Decimal:
    """A numeric field as Decimal (`positive`: above zero, else at least zero)."""
    value = raw.get(field)
    number = decimal_of(value)
    if number is None or number < 0 or (positive and number == 0):
        raise UnreadableField(structure, field, value, **context)
    return number


def side_of(raw: Mapping[str, Any], structure: str, **context: Any) -> Side:
    """ "buy" or "sell" as a Side; UnreadableField for anything else, None included."""
    side = _SIDES.get(raw.get("side"))  # type: ignore[arg-type]
    if side is None:
        raise UnreadableField(structure, "side", raw.get("side"), **context)
    return side


def order_view(
    order: Mapping[str, Any], account: str, client_order_id: str | None = None
) -> OrderView:
    """A ccxt order structure as the exchange's view of the order (strict, see the module).

    `client_order_id`: posbus's id of the order, for answers that do not
    repeat it (a placement, a lookup by client order id).
    """
    order_id = text_of(order, "id", "order", order_id=client_order_id)
    symbol = text_of(order, "symbol", "order", order_id=order_id)
    context: dict[str, Any] = {"order_id": order_id, "symbol": symbol}
    status_text = order.get("status")
    if status_text not in _ORDER_STATUSES:
        raise UnreadableField("order", "status", status_text, **context)
    side = side_of(order, "order", **context)
    qty = number_of(order, "amount", "order", positive=True, **context)
    filled = number_of(order, "filled", "order", **context)
    if filled > qty:
        raise UnreadableField("order", "filled", order.get("filled"), **context)
    status = _ORDER_STATUSES[status_text]
    if status is None:
        status = ExchangeOrderStatus.PARTIALLY_FILLED if filled > 0 else ExchangeOrderStatus.OPEN
    limit = None
    if order.get("type") == "limit":
        limit = number_of(order, "price", "order", positive=True, **context)
    return OrderView(
        client_order_id=client_order_id or str(order.get("clientOrderId") or ""),
        exchange_order_id=order_id,
        account=account,
        symbol=symbol,
        side=side,
        qty=qty,
        limit_price=limit,
        status=status,
        filled_qty=filled,
    )


def synthetic_trade_id(order_id: str, ts_ms: int, qty: Decimal, price: Decimal) -> str:
    """The id of a trade the venue gave none: the same for the same fill (module docstring)."""
    key = f"{order_id}|{ts_ms}|{_plain(qty)}|{_plain(price)}"
    return SYNTHETIC_TRADE_ID_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:32]


def is_synthetic_trade_id(trade_id: str) -> bool:
    """Whether posbus made this trade id up (the venue gave the trade none)."""
    return trade_id.startswith(SYNTHETIC_TRADE_ID_PREFIX)


def trade_fee(raw: Mapping[str, Any], symbol: str) -> tuple[Decimal, str]:
    """The fee a ccxt trade structure reports, exactly: (amount, currency as the venue named it).

    ccxt lists a trade's fees in `fees` (one entry per currency and rate) and
    repeats a lone one in `fee`; entries in one currency are summed exactly.
    An entry's `rate` is the fee rate, not a conversion rate: it is not read.
    A fee without a currency, or no fee at all, is in the symbol's settlement
    (else quote) currency. Raises UnreadableField for a cost that is not a
    number, or for fees in several currencies, which one fill cannot carry:
    a fee is never dropped or read as zero.
    """
    entries = [entry for entry in raw.get("fees") or () if entry]
    if not entries and raw.get("fee"):
        entries = [raw["fee"]]
    by_currency: dict[str, Decimal] = {}
    for entry in entries:
        cost_text = entry.get("cost")
        if cost_text is None or cost_text == "":
            continue  # ccxt's placeholder for a fee the venue did not report
        cost = decimal_of(cost_text)
        if cost is None:
            raise UnreadableField("trade", "fee cost", cost_text, symbol=symbol)
        currency = str(entry.get("currency") or _settlement_currency(symbol))
        by_currency[currency] = _EXACT.add(by_currency.get(currency, Decimal(0)), cost)
    if len(by_currency) > 1:
        raise UnreadableField("trade", "fees (several currencies)", entries, symbol=symbol)
    if not by_currency:
        return Decimal(0), _settlement_currency(symbol)
    ((currency, amount),) = by_currency.items()
    return amount, currency


def _settlement_currency(symbol: str) -> str:
    """What a ccxt symbol settles in: SETTLE of BASE/QUOTE:SETTLE, else QUOTE."""
    pair, _, settle = symbol.partition(":")
    return settle or pair.partition("/")[2]


def trade_view(
    raw: Mapping[str, Any], cid: str | None, liquidity: Liquidity | None, now_ns: int
) -> TradeView:
    """A ccxt trade structure; `liquidity` when the exchange does not say, `now_ns` for no time.

    Raises UnreadableField (transient) without symbol, side, a positive price
    and amount, or, for a trade without an id, its order id and timestamp.
    """
    symbol = text_of(raw, "symbol", "trade", order_id=cid)
    fee, fee_currency = trade_fee(raw, symbol)
    said = raw.get("takerOrMaker")
    resolved: Liquidity = said if said in ("maker", "taker") else (liquidity or "taker")
    context: dict[str, Any] = {"order_id": cid, "symbol": symbol}
    side = side_of(raw, "trade", **context)
    price = number_of(raw, "price", "trade", positive=True, **context)
    qty = number_of(raw, "amount", "trade", positive=True, **context)
    order_id = str(raw.get("order") or "")
    trade_id = raw.get("id")
    if isinstance(trade_id, int) and not isinstance(trade_id, bool):
        trade_id = str(trade_id)
    if not isinstance(trade_id, str) or not trade_id:
        # Without an id the fill is named by what makes it this fill; that needs
        # its order and its own time, never the time it was read.
        if not order_id:
            raise UnreadableField("trade", "order", raw.get("order"), **context)
        if not _is_ms(raw.get("timestamp")):
            raise UnreadableField("trade", "timestamp", raw.get("timestamp"), **context)
        trade_id = synthetic_trade_id(order_id, int(raw["timestamp"]), qty, price)
    return TradeView(
        trade_id=trade_id,
        exchange_order_id=order_id,
        client_order_id=cid,
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        fee=fee,
        fee_currency=fee_currency,
        ts_ns=ns_of_ms(raw.get("timestamp"), now_ns),
        liquidity=resolved,
    )


def trades_in_order(
    placed: Mapping[str, Any], view: OrderView, liquidity: Liquidity, now_ns: int
) -> list[TradeView]:
    """The fills an order structure carries (Binance's FULL answer), completed from the order.

    Such fills name neither their order, side nor time: they are the order's,
    at the order's time. A carried trade without price or amount is only a
    reference (Kraken lists the ids of an order's trades): then none is
    returned, and the caller reads the order's trades instead.
    """
    default_ts = ns_of_ms(placed.get("timestamp"), now_ns)
    carried = placed.get("trades") or ()
    if any(
        decimal_of(t.get("price")) is None or decimal_of(t.get("amount")) is None for t in carried
    ):
        return []
    out = []
    for raw in carried:
        trade = dict(raw)
        trade.setdefault("order", view.exchange_order_id)
        trade["symbol"] = trade.get("symbol") or view.symbol
        trade["side"] = trade.get("side") or ("buy" if view.side is Side.BUY else "sell")
        if not trade.get("timestamp"):
            trade["timestamp"] = default_ts // 1_000_000
        out.append(trade_view(trade, view.client_order_id, liquidity, now_ns))
    return out


def with_client_order_id(trade: TradeView, cid: str | None) -> TradeView:
    """The same trade, naming its order's client order id."""
    if cid == trade.client_order_id:
        return trade
    return dataclasses.replace(trade, client_order_id=cid)


def balances_of(balance: Mapping[str, Any]) -> dict[str, Decimal]:
    """The total of every currency in a ccxt balance structure (negative when owed).

    Raises UnreadableField without a `total` map or for a total that is not a
    number: a currency is never left out of a reconciliation unsaid.
    """
    totals = balance.get("total")
    if not isinstance(totals, Mapping):
        raise UnreadableField("balance", "total", totals)
    out: dict[str, Decimal] = {}
    for currency, total in totals.items():
        amount = decimal_of(total)
        if amount is None:
            raise UnreadableField("balance", f"total of {currency}", total)
        out[str(currency)] = amount
    return out


def ticker_mark(ticker: Mapping[str, Any]) -> Decimal | None:
    """A ccxt ticker's price: the mid of a positive, uncrossed bid and ask, else its last.

    None when it has neither (a conversion mark is then not to be had).
    """
    bid, ask = decimal_of(ticker.get("bid")), decimal_of(ticker.get("ask"))
    if bid is not None and ask is not None and 0 < bid <= ask:
        return (bid + ask) / 2
    last = decimal_of(ticker.get("last"))
    return last if last is not None and last > 0 else None


def market_update(symbol: str, ticker: Mapping[str, Any], ts_ns: int) -> MarketUpdate | None:
    """A ccxt ticker as a market_update; None when it has no usable bid and ask."""
    bid, ask = decimal_of(ticker.get("bid")), decimal_of(ticker.get("ask"))
    if bid is None or ask is None or bid <= 0 or ask <= 0 or bid > ask:
        return None
    last = decimal_of(ticker.get("last"))
    bid_size, ask_size = decimal_of(ticker.get("bidVolume")), decimal_of(ticker.get("askVolume"))
    return MarketUpdate(
        symbol=symbol,
        bid=bid,
        ask=ask,
        last=last if last is not None and last > 0 else None,
        bid_size=bid_size if bid_size is not None and bid_size >= 0 else None,
        ask_size=ask_size if ask_size is not None and ask_size >= 0 else None,
        ts_ns=ts_ns,
    )


def _reference_only(trade: Mapping[str, Any]) -> bool:
    return decimal_of(trade.get("price")) is None or decimal_of(trade.get("amount")) is None


def _is_ms(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _plain(number: Decimal) -> str:
    """A decimal without exponent or trailing zeros: "0.10" and "1E-1" both read "0.1"."""
    return format(number.normalize(), "f")
