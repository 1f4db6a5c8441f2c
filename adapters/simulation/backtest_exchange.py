"""The simulated exchange as a backtest sees it: requests reach it after the latency.

`SimulatedExchange` answers every call at once and only stamps its answers
`ts + latency_ns`; in a backtest that would let an order fill against the
quote it was decided on even when later quotes arrived within the latency.
`BacktestExchange` queues `submit` and `cancel` until `ts_ns + latency_ns`,
when the backtest releases them (`release_next`) and they are matched
against the latest quote at that moment; their answers (ack, fills, reject),
stamped with the arrival time, go to the gateway as a pushed
`ExchangeReports` message. Resting limit orders still fill on the first
quote that crosses them (`on_market`). The timing rules and why skipping
quotes gives identical fills: docs/architecture.md, "Simulated venues".

Single-threaded (the gateway's thread in a backtest, which is the only one).
This module must never read a clock: time is the requests' and quotes' own.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from decimal import Decimal

from posbus.actors.model.exchange_reports import (
    ExecutionReport,
    NewOrder,
    OrderFilled,
    OrderView,
)
from posbus.actors.model.fill import Fill
from posbus.adapters.simulation.simulated_exchange import SimulatedExchange


@dataclass(frozen=True, slots=True)
class _Submit:
    order: NewOrder


@dataclass(frozen=True, slots=True)
class _Cancel:
    client_order_id: str
    ts_ns: int


class BacktestExchange:
    """An `ExchangeClient` for the gateway: the wrapped exchange, with requests delayed.

    `pending()` / `next_arrival_ns()` / `release_next()` are the backtest's
    side: it releases each request when the replay clock reaches it.
    `reports_out` counts every report handed out, so the backtest knows when
    a fill may have happened without looking.
    """

    def __init__(self, exchange: SimulatedExchange) -> None:
        self.exchange = exchange
        self.latency_ns = exchange.config.latency_ns
        # A heap of (arrival ns, sequence, request); read-only outside this class.
        self.queue: list[tuple[int, int, _Submit | _Cancel]] = []
        self._seq = 0
        self._touch: dict[str, tuple[Decimal, Decimal, int]] = {}
        self._stale: set[str] = set()
        self._resting: dict[str, set[str]] = {}
        self.released = 0
        self.reports_out = 0

    # -- the gateway's side (ExchangeClient) ------------------------------------------

    def submit(self, order: NewOrder) -> list[ExecutionReport]:
        """Queue `order`; it reaches the exchange at `order.ts_ns + latency_ns`. Answers later."""
        self._push(order.ts_ns + self.latency_ns, _Submit(order))
        return []

    def cancel(self, client_order_id: str, ts_ns: int) -> list[ExecutionReport]:
        """Queue a cancel; it reaches the exchange at `ts_ns + latency_ns`. Answers later."""
        self._push(ts_ns + self.latency_ns, _Cancel(client_order_id, ts_ns))
        return []

    def on_market(
        self, symbol: str, bid: Decimal, ask: Decimal, ts_ns: int
    ) -> list[ExecutionReport]:
        """Record the touch; match the symbol's resting orders against it, if it has any."""
        self._touch[symbol] = (bid, ask, ts_ns)
        if not self._resting.get(symbol):
            self._stale.add(symbol)
            return []
        self._stale.discard(symbol)
        reports = self.exchange.on_market(symbol, bid, ask, ts_ns)
        if reports:
            self._track(symbol, reports)
            self.reports_out += len(reports)
        return reports

    def fills(self, since_index: int = 0) -> list[Fill]:
        """The exchange's fill ledger from `since_index` on."""
        return self.exchange.fills(since_index)

    def fetch_order(self, client_order_id: str) -> OrderView | None:
        """The exchange's view of an order it has received (None before it arrives)."""
        return self.exchange.fetch_order(client_order_id)

    # -- the backtest's side ---------------------------------------------------------

    def pending(self) -> int:
        """How many requests are still on their way."""
        return len(self.queue)

    def next_arrival_ns(self) -> int | None:
        """When the next request reaches the exchange, or None when none is on its way."""
        return self.queue[0][0] if self.queue else None

    def release_next(self) -> tuple[int, list[ExecutionReport]]:
        """Deliver the next request to the exchange; return its arrival time and the answers.

        Raises IndexError when nothing is on its way.
        """
        arrival, _, request = heapq.heappop(self.queue)
        self.released += 1
        if isinstance(request, _Submit):
            symbol = request.order.symbol
            self._sync(symbol)
            reports = self.exchange.submit(request.order)
        else:
            view = self.exchange.fetch_order(request.client_order_id)
            symbol = view.symbol if view is not None else ""
            if symbol:
                self._sync(symbol)
            reports = self.exchange.cancel(request.client_order_id, request.ts_ns)
        if symbol:
            self._track(symbol, reports)
        self.reports_out += len(reports)
        return arrival, reports

    # -- internals ---------------------------------------------------------------------

    def _push(self, arrival_ns: int, request: _Submit | _Cancel) -> None:
        # The sequence number keeps requests with the same arrival in the order sent.
        self._seq += 1
        heapq.heappush(self.queue, (arrival_ns, self._seq, request))

    def _sync(self, symbol: str) -> None:
        """Hand the exchange the latest touch of `symbol` if it has not seen it yet."""
        if symbol in self._stale:
            self._stale.discard(symbol)
            bid, ask, ts_ns = self._touch[symbol]
            reports = self.exchange.on_market(symbol, bid, ask, ts_ns)
            # No order of the symbol rested, so a quote cannot have filled one.
            assert not reports, "a lazily forwarded quote filled an order"

    def _track(self, symbol: str, reports: list[ExecutionReport]) -> None:
        """Keep the set of the symbol's orders that rest on the book up to date."""
        resting = self._resting.setdefault(symbol, set())
        for report in reports:
            client_order_id = (
                report.fill.order_id if isinstance(report, OrderFilled) else report.client_order_id
            )
            view = self.exchange.fetch_order(client_order_id)
            if view is not None and view.status.is_open:
                resting.add(client_order_id)
            else:
                resting.discard(client_order_id)
