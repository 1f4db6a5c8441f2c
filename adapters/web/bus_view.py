"""What the dashboard hears on the event bus: recent risk events, recent fills, latest quotes.

The feed subscribes to `md|`, `ex|` and `rk|` (docs/wire-format.md, "Topics
and shards") and hands each drained batch to `BusView.take`, which keeps the
newest quote per symbol and bounded lists of the newest risk events and fills.
It only records what it is given: no socket, no clock. Owned by the feed thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from posbus.adapters.display_precision import Precision
from posbus.bus.messages import MarketUpdate, OrderFill, RiskEvent
from posbus.bus.subscriber import Received
from posbus.bus.topics import PREFIX_EXECUTION, PREFIX_RISK


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class BusView:
    """The newest `keep` risk events and fills and the latest quote of each symbol heard."""

    def __init__(self, keep: int = 50) -> None:
        self._risk_events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._fills: deque[dict[str, Any]] = deque(maxlen=keep)
        self._quotes: dict[str, dict[str, Any]] = {}

    def take(self, batch: Iterable[Received]) -> bool:
        """Record `batch`; True when it held an execution signal or a risk event.

        Those change positions, orders or the risk state: the caller reads the
        stack again at once. A quote alone does not: it waits for the next refresh.
        """
        urgent = False
        for item in batch:
            message = item.envelope.message
            if item.topic.startswith((PREFIX_EXECUTION, PREFIX_RISK)):
                urgent = True
            if isinstance(message, MarketUpdate):
                self._quotes[message.symbol] = {
                    "symbol": message.symbol,
                    "bid": str(message.bid),
                    "ask": str(message.ask),
                    "last": _text(message.last),
                    "ts_ns": message.ts_ns,
                }
            elif isinstance(message, OrderFill):
                self._fills.append(
                    {
                        "ts_ns": message.ts_ns,
                        "order_id": message.order_id,
                        "account": message.account,
                        "symbol": message.symbol,
                        "side": str(message.side),
                        "qty": str(message.qty),
                        "price": str(message.price),
                        "fee": str(message.fee),
                        "fee_currency": message.fee_currency,
                        "liquidity": str(message.liquidity),
                    }
                )
            elif isinstance(message, RiskEvent):
                self._risk_events.append(
                    {
                        "ts_ns": message.ts_ns,
                        "sender": item.envelope.sender,
                        "event": message.event,
                        "state": message.state,
                        "previous_state": message.previous_state,
                        "reason": message.reason,
                        "account": message.account,
                        "symbol": message.symbol,
                        "values": dict(message.values),
                    }
                )
        return urgent

    def risk_events(self) -> list[dict[str, Any]]:
        """The risk events heard, newest first."""
        return list(reversed(self._risk_events))

    def fills(self, precision: Precision) -> list[dict[str, Any]]:
        """The fills heard, newest first, prices and quantities at `precision`."""
        return [
            {
                **fill,
                "qty": precision.qty(fill["qty"]),
                "price": precision.price(fill["price"]),
                "fee": precision.money(fill["fee"]),
            }
            for fill in reversed(self._fills)
        ]

    def quotes(self, precision: Precision) -> list[dict[str, Any]]:
        """The latest quote of each symbol, by symbol, prices at `precision`."""
        return [
            {
                **quote,
                "bid": precision.price(quote["bid"]),
                "ask": precision.price(quote["ask"]),
                "last": None if quote["last"] is None else precision.price(quote["last"]),
            }
            for _, quote in sorted(self._quotes.items())
        ]
