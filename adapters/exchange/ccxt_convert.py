"""ccxt's unified structures (orders, trades, tickers) as posbus values, exactly.

The ccxt gateway tells ccxt to hand numbers over as the strings the exchange
sent (`exchange.number = str`); here they become Decimal, never float. Pure
functions: no I/O, no clocks (the caller passes "now" for a structure that
has no timestamp of its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from posbus.actors.model.errors import ExchangeUnavailable
from posbus.actors.model.exchange_events import TradeView
from posbus.actors.model.exchange_reports import ExchangeOrderStatus, Liquidity, OrderView
from posbus.actors.model.side import Side
from posbus.bus.messages import MarketUpdate


def decimal_of(value: Any) -> Decimal | None:
    """A ccxt number (a string, with `number = str`) as Decimal; None if absent or not one."""
    if value is None or value == "":
        return None
    try:
        # A float can only come from a ccxt code path that ignores `number`: its
        # shortest repr is the decimal the exchange sent.
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        return None


def ns_of_ms(value: Any, default_ns: int) -> int:
    """A ccxt timestamp (ms) in ns; `default_ns` when there is none."""
    return int(value) * 1_000_000 if isinstance(value, int | float) and value > 0 else default_ns


def order_view(order: Mapping[str, Any], account: str) -> OrderView:
    """A ccxt order structure as the exchange's view of the order."""
    status_text = order.get("status")
    filled = decimal_of(order.get("filled")) or Decimal(0)
    qty = decimal_of(order.get("amount")) or filled
    if status_text == "open":
        status = ExchangeOrderStatus.PARTIALLY_FILLED if filled > 0 else ExchangeOrderStatus.OPEN
    elif status_text == "closed":
        status = ExchangeOrderStatus.FILLED
    elif status_text == "expired":
        status = ExchangeOrderStatus.EXPIRED
    else:  # canceled, rejected: off the book, the rest will never fill
        status = ExchangeOrderStatus.CANCELLED
    price = decimal_of(order.get("price"))
    limit = price if order.get("type") == "limit" and price else None
    return OrderView(
        client_order_id=str(order.get("clientOrderId") or ""),
        exchange_order_id=str(order.get("id") or ""),
        account=account,
        symbol=str(order.get("symbol")),
        side=Side.BUY if order.get("side") == "buy" else Side.SELL,
        qty=qty,
        limit_price=limit,
        status=status,
        filled_qty=filled,
    )


def trade_view(
    raw: Mapping[str, Any], cid: str | None, liquidity: Liquidity | None, now_ns: int
) -> TradeView:
    """A ccxt trade structure; `liquidity` when the exchange does not say, `now_ns` for no time.

    Raises ExchangeUnavailable (transient: a garbled answer) without price or amount.
    """
    fee = raw.get("fee") or {}
    symbol = str(raw.get("symbol"))
    quote = symbol.partition("/")[2].partition(":")[0]
    said = raw.get("takerOrMaker")
    resolved: Liquidity = said if said in ("maker", "taker") else (liquidity or "taker")
    price, qty = decimal_of(raw.get("price")), decimal_of(raw.get("amount"))
    if price is None or qty is None:
        raise ExchangeUnavailable(f"trade {raw.get('id')} without price or amount", symbol=symbol)
    return TradeView(
        trade_id=str(raw.get("id")),
        exchange_order_id=str(raw.get("order") or ""),
        client_order_id=cid,
        symbol=symbol,
        side=Side.BUY if raw.get("side") == "buy" else Side.SELL,
        qty=qty,
        price=price,
        fee=decimal_of(fee.get("cost")) or Decimal(0),
        fee_currency=str(fee.get("currency") or quote),
        ts_ns=ns_of_ms(raw.get("timestamp"), now_ns),
        liquidity=resolved,
    )


def trades_in_order(
    placed: Mapping[str, Any], view: OrderView, liquidity: Liquidity, now_ns: int
) -> list[TradeView]:
    """The fills an order structure carries (Binance's FULL answer), completed from the order.

    Such fills name neither their order, side nor time: they are the order's,
    at the order's time.
    """
    default_ts = ns_of_ms(placed.get("timestamp"), now_ns)
    out = []
    for raw in placed.get("trades") or ():
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
    return TradeView(
        trade_id=trade.trade_id,
        exchange_order_id=trade.exchange_order_id,
        client_order_id=cid,
        symbol=trade.symbol,
        side=trade.side,
        qty=trade.qty,
        price=trade.price,
        fee=trade.fee,
        fee_currency=trade.fee_currency,
        ts_ns=trade.ts_ns,
        liquidity=trade.liquidity,
    )


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
