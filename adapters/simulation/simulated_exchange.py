"""A simulated exchange: deterministic matching against a top-of-book quote.

It serves `posbus demo`, the tests and `posbus backtest`, and answers with the
same execution reports (`posbus.actors.model.exchange_reports`) a real exchange
adapter produces, so the engine cannot tell the difference. The book is the
latest touch per symbol (`on_market`), with no depth: market orders and
limits that cross the touch fill at once as taker, other limits rest and fill
as maker at their limit price on the first quote that crosses them. Calls are
processed in the order they are made; `latency_ns` only shifts timestamps.
Funds are not checked: pre-trade checks belong to risk, not to the exchange.
Prices, fees and balances: docs/architecture.md, "Simulated venues".

Deterministic: all chance (random rejects, partial fills) comes from one
`random.Random(seed)`, so the same config and the same calls give identical
reports. This module must never read a clock, sleep, start a thread, do I/O
or touch the global `random` state. It is not thread-safe: call it from one
thread (the gateway actor's, in the live engine).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from itertools import pairwise

from posbus.actors.model.exchange_reports import (
    ExchangeOrderStatus,
    ExecutionReport,
    Liquidity,
    NewOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderView,
)
from posbus.actors.model.fill import Fill
from posbus.actors.model.side import Side

FEE_QUANTUM = Decimal("0.00000001")
"""Fees are rounded to this (8 decimal places), ROUND_HALF_EVEN."""

_BPS = Decimal(10_000)

REJECT_SIMULATED = "simulated reject"
REJECT_UNKNOWN_ORDER = "unknown order"
REJECT_ALREADY_FILLED = "already filled"
CANCEL_REASON_CLIENT = "cancelled by client"


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Every knob of the simulated exchange; the defaults give a frictionless-ish venue.

    - `seed`: seeds the one RNG behind random rejects and partial fills.
    - `taker_fee_rate`, `maker_fee_rate`: fractions of notional (0.001 = 10
      bps). A negative maker rate is a rebate.
    - `slippage_bps`: how far a market order's price moves against the taker
      from the touch, in basis points (0 <= bps < 10000).
    - `latency_ns`: added to a request's timestamp to stamp its answers.
    - `reject_rate`: probability in [0, 1] that a valid order is rejected with
      "simulated reject".
    - `partial_fill_rate`: probability in [0, 1] that a fill is split into 2-3
      partial fills (when the quantity has at least two `qty_step`s).
    - `price_tick`: fill prices are rounded to a multiple of it
      (ROUND_HALF_EVEN); limit prices must be multiples of it.
    - `qty_step`: order quantities must be multiples of it.
    - `fee_currency`: the currency fees are charged in.
    - `max_order_qty`: orders above it are rejected; None for no limit.
    """

    seed: int = 0
    taker_fee_rate: Decimal = Decimal("0.001")
    maker_fee_rate: Decimal = Decimal("0.0002")
    slippage_bps: Decimal = Decimal(0)
    latency_ns: int = 0
    reject_rate: float = 0.0
    partial_fill_rate: float = 0.0
    price_tick: Decimal = Decimal("0.01")
    qty_step: Decimal = Decimal("0.00001")
    fee_currency: str = "USDT"
    max_order_qty: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("taker_fee_rate", "maker_fee_rate"):
            rate: Decimal = getattr(self, name)
            if not rate.is_finite() or abs(rate) >= 1:
                raise ValueError(f"{name} must be a finite fraction in (-1, 1), not {rate}")
        if not self.slippage_bps.is_finite() or not 0 <= self.slippage_bps < _BPS:
            raise ValueError(f"slippage_bps must be in [0, 10000), not {self.slippage_bps}")
        if self.latency_ns < 0:
            raise ValueError(f"latency_ns must be >= 0, not {self.latency_ns}")
        for name in ("reject_rate", "partial_fill_rate"):
            probability: float = getattr(self, name)
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], not {probability}")
        for name in ("price_tick", "qty_step"):
            step: Decimal = getattr(self, name)
            if not step.is_finite() or step <= 0:
                raise ValueError(f"{name} must be a positive finite number, not {step}")
        if self.max_order_qty is not None and (
            not self.max_order_qty.is_finite() or self.max_order_qty <= 0
        ):
            raise ValueError(f"max_order_qty must be positive or None, not {self.max_order_qty}")


@dataclass(frozen=True, slots=True)
class _Touch:
    """The best bid and ask of one symbol."""

    bid: Decimal
    ask: Decimal
    ts_ns: int


@dataclass(slots=True)
class _SimOrder:
    """One order the exchange accepted, with every report it produced for it."""

    request: NewOrder
    exchange_order_id: str
    status: ExchangeOrderStatus = ExchangeOrderStatus.OPEN
    filled_qty: Decimal = Decimal(0)
    reports: list[ExecutionReport] = field(default_factory=list)

    def view(self) -> OrderView:
        r = self.request
        return OrderView(
            client_order_id=r.client_order_id,
            exchange_order_id=self.exchange_order_id,
            account=r.account,
            symbol=r.symbol,
            side=r.side,
            qty=r.qty,
            limit_price=r.limit_price,
            status=self.status,
            filled_qty=self.filled_qty,
        )


def _base_and_quote(symbol: str) -> tuple[str, str]:
    """Split `BASE/QUOTE` (or ccxt's `BASE/QUOTE:SETTLE`) into its two currencies."""
    base, sep, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    if not sep or not base or not quote:
        raise ValueError(f"symbol must look like BASE/QUOTE, not {symbol!r}")
    return base, quote


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    """True when `value` is a whole number of `step`s."""
    try:
        return value % step == 0
    except InvalidOperation:
        # The quotient has more digits than the context can hold: far beyond
        # any real quantity, so it cannot be accepted as a whole number of steps.
        return False


class SimulatedExchange:
    """A deterministic exchange for one account; see the module docstring for its model.

    Not thread-safe: every method must be called from the same thread. No
    method raises for a bad order or cancel; they answer with `OrderRejected`.
    """

    def __init__(
        self,
        config: SimConfig,
        account: str = "default",
        *,
        initial_balances: Mapping[str, Decimal] | None = None,
        incarnation: str = "",
    ) -> None:
        """`incarnation`: part of every order and trade id when given; a stack's gateway
        worker passes its own, so a venue restarted with it never repeats an id its
        predecessor gave (a position drops a fill whose trade id it already holds)."""
        self._config = config
        self._account = account
        self._ids = f"{account}-{incarnation}" if incarnation else account
        self._rng = random.Random(config.seed)  # noqa: S311 -- simulation, not cryptography
        self._touches: dict[str, _Touch] = {}
        # Insertion order is submission order, which fixes the order in which
        # resting orders fill on a quote, and so keeps replays identical.
        self._orders: dict[str, _SimOrder] = {}
        # The open limit orders of each symbol (the only ones a quote can fill),
        # by client order id, in submission order too: a quote looks at these only.
        self._resting: dict[str, dict[str, _SimOrder]] = {}
        self._fills: list[Fill] = []
        self._balances: dict[str, Decimal] = dict(initial_balances or {})
        self._next_order_no = 1
        self._next_trade_no = 1

    @property
    def config(self) -> SimConfig:
        """The configuration this exchange was built with."""
        return self._config

    @property
    def account(self) -> str:
        """The account this exchange serves."""
        return self._account

    # -- market data ------------------------------------------------------------

    def on_market(
        self, symbol: str, bid: Decimal, ask: Decimal, ts_ns: int
    ) -> list[ExecutionReport]:
        """Record the touch of `symbol` and fill the resting limit orders it crosses.

        Returns one `OrderFilled` (or several, when a fill is split) per
        crossed order, in submission order, stamped `ts_ns`. Raises ValueError
        for a malformed quote (non-positive or crossed prices, a symbol that
        is not BASE/QUOTE): bad market data is a caller bug, not an order event.
        """
        _base_and_quote(symbol)
        if not (bid.is_finite() and ask.is_finite()) or bid <= 0 or ask <= 0:
            raise ValueError(f"{symbol}: bid and ask must be positive, got {bid} / {ask}")
        if bid > ask:
            raise ValueError(f"{symbol}: crossed quote, bid {bid} > ask {ask}")
        self._touches[symbol] = _Touch(bid=bid, ask=ask, ts_ns=ts_ns)

        resting = self._resting.get(symbol)
        if not resting:
            return []
        reports: list[ExecutionReport] = []
        for client_order_id, order in list(resting.items()):
            request = order.request
            limit = request.limit_price
            assert limit is not None, "a market order fills on submit and never rests"
            crossed = ask <= limit if request.side is Side.BUY else bid >= limit
            if crossed:
                reports.extend(self._fill(order, limit, "maker", ts_ns))
                del resting[client_order_id]
        return reports

    # -- orders -----------------------------------------------------------------

    def submit(self, order: NewOrder) -> list[ExecutionReport]:
        """Place `order`; return what the exchange answers, in order.

        - A `client_order_id` the exchange already accepted creates nothing:
          the answer is that order's full report history, unchanged (same
          exchange order id, trade ids and timestamps), whatever the new
          request says. This makes a blind resend harmless.
        - An invalid order gets one `OrderRejected` whose reason names the
          rule; a valid one may still be rejected at random ("simulated
          reject", with probability `reject_rate`). Rejected orders are not
          kept: `fetch_order` does not know them and the id may be reused.
        - Otherwise `OrderAccepted`, then for a market or marketable limit
          order its `OrderFilled` reports (taker); a non-marketable limit
          order rests.
        """
        existing = self._orders.get(order.client_order_id)
        if existing is not None:
            return list(existing.reports)

        ts_ns = order.ts_ns + self._config.latency_ns
        reason = self._validate(order)
        if reason is None and self._rng.random() < self._config.reject_rate:
            reason = REJECT_SIMULATED
        if reason is not None:
            return [
                OrderRejected(client_order_id=order.client_order_id, reason=reason, ts_ns=ts_ns)
            ]

        sim_order = _SimOrder(request=order, exchange_order_id=self._new_order_id())
        self._orders[order.client_order_id] = sim_order
        accepted = OrderAccepted(
            client_order_id=order.client_order_id,
            exchange_order_id=sim_order.exchange_order_id,
            symbol=order.symbol,
            ts_ns=ts_ns,
        )
        sim_order.reports.append(accepted)
        reports: list[ExecutionReport] = [accepted]

        touch = self._touches[order.symbol]
        price = self._taker_price(order, touch)
        if price is not None:
            reports.extend(self._fill(sim_order, price, "taker", ts_ns))
        elif order.limit_price is not None:
            self._resting.setdefault(order.symbol, {})[order.client_order_id] = sim_order
        return reports

    def cancel(self, client_order_id: str, ts_ns: int) -> list[ExecutionReport]:
        """Cancel an open order; answers are stamped `ts_ns + latency_ns`.

        - open order: `[OrderCancelled(reason="cancelled by client")]`;
        - already cancelled (or expired): `[]` -- cancelling is idempotent,
          and the first `OrderCancelled` already said all there is to say;
        - filled order: `[OrderRejected(reason="already filled")]`;
        - unknown id: `[OrderRejected(reason="unknown order")]`.
        """
        answer_ts = ts_ns + self._config.latency_ns
        order = self._orders.get(client_order_id)
        if order is None:
            return [OrderRejected(client_order_id, REJECT_UNKNOWN_ORDER, answer_ts)]
        if order.status is ExchangeOrderStatus.FILLED:
            return [OrderRejected(client_order_id, REJECT_ALREADY_FILLED, answer_ts)]
        if not order.status.is_open:
            return []
        order.status = ExchangeOrderStatus.CANCELLED
        del self._resting[order.request.symbol][client_order_id]
        cancelled = OrderCancelled(client_order_id, answer_ts, CANCEL_REASON_CLIENT)
        order.reports.append(cancelled)
        return [cancelled]

    # -- queries ----------------------------------------------------------------

    def fetch_order(self, client_order_id: str) -> OrderView | None:
        """The exchange's view of an accepted order, or None if it never accepted that id."""
        order = self._orders.get(client_order_id)
        return None if order is None else order.view()

    def open_orders(self) -> list[OrderView]:
        """Every order that can still fill, in submission order."""
        return [o.view() for o in self._orders.values() if o.status.is_open]

    def fills(self, since_index: int = 0) -> list[Fill]:
        """Every fill the exchange produced, in order, from position `since_index` on.

        Pass the number of fills already seen to get only the new ones. Each
        fill's `order_id` is the client order id of its order.
        """
        if since_index < 0:
            raise ValueError(f"since_index must be >= 0, not {since_index}")
        return self._fills[since_index:]

    def balances(self) -> dict[str, Decimal]:
        """The account's balance per currency (a copy), moved by fills and fees."""
        return dict(self._balances)

    # -- internals --------------------------------------------------------------

    def _validate(self, order: NewOrder) -> str | None:
        """The reason `order` must be rejected, or None when it is acceptable."""
        cfg = self._config
        if order.account != self._account:
            return f"unknown account {order.account!r}"
        if order.symbol not in self._touches:
            return f"unknown symbol or no market yet: {order.symbol!r}"
        qty = order.qty
        if not qty.is_finite() or qty <= 0:
            return f"qty must be positive, got {qty}"
        if not _is_multiple(qty, cfg.qty_step):
            return f"qty {qty} is not a multiple of qty_step {cfg.qty_step}"
        if cfg.max_order_qty is not None and qty > cfg.max_order_qty:
            return f"qty {qty} exceeds max_order_qty {cfg.max_order_qty}"
        limit = order.limit_price
        if limit is not None:
            if not limit.is_finite() or limit <= 0:
                return f"limit price must be positive, got {limit}"
            if not _is_multiple(limit, cfg.price_tick):
                return f"limit price {limit} is not a multiple of price_tick {cfg.price_tick}"
        return None

    def _taker_price(self, order: NewOrder, touch: _Touch) -> Decimal | None:
        """The price `order` takes liquidity at now, or None if it must rest."""
        limit = order.limit_price
        buy = order.side is Side.BUY
        if limit is None:
            bps = self._config.slippage_bps
            raw = touch.ask * (_BPS + bps) / _BPS if buy else touch.bid * (_BPS - bps) / _BPS
            return self._to_tick(raw)
        if buy and touch.ask <= limit:
            return min(self._to_tick(touch.ask), limit)
        if not buy and touch.bid >= limit:
            return max(self._to_tick(touch.bid), limit)
        return None

    def _to_tick(self, price: Decimal) -> Decimal:
        """`price` rounded to the nearest tick (ROUND_HALF_EVEN), never below one tick."""
        tick = self._config.price_tick
        rounded = (price / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick
        # A positive quote below half a tick would round to a zero price,
        # which no exchange trades at.
        return max(rounded, tick)

    def _fill(
        self, order: _SimOrder, price: Decimal, liquidity: Liquidity, ts_ns: int
    ) -> list[ExecutionReport]:
        """Fill the rest of `order` at `price`, maybe in parts; book fills and balances."""
        request = order.request
        rate = self._config.taker_fee_rate if liquidity == "taker" else self._config.maker_fee_rate
        reports: list[ExecutionReport] = []
        for qty in self._split(request.qty - order.filled_qty):
            fee = (qty * price * rate).quantize(FEE_QUANTUM, rounding=ROUND_HALF_EVEN)
            fill = Fill(
                trade_id=self._new_trade_id(),
                account=self._account,
                symbol=request.symbol,
                side=request.side,
                qty=qty,
                price=price,
                fee=fee,
                fee_currency=self._config.fee_currency,
                ts_ns=ts_ns,
                order_id=request.client_order_id,
            )
            self._book(fill)
            order.filled_qty += qty
            report = OrderFilled(request.client_order_id, fill, liquidity)
            order.reports.append(report)
            reports.append(report)
        order.status = ExchangeOrderStatus.FILLED
        return reports

    def _split(self, qty: Decimal) -> list[Decimal]:
        """`qty` as one part, or (with `partial_fill_rate`) 2-3 parts of whole qty steps.

        The parts add up to `qty` exactly: they are differences of sorted cut
        points on the grid of `qty_step`s.
        """
        if self._rng.random() >= self._config.partial_fill_rate:
            return [qty]
        step = self._config.qty_step
        steps = int(qty / step)
        parts = min(self._rng.choice((2, 3)), steps)
        if parts < 2:
            return [qty]
        cuts = sorted(self._rng.sample(range(1, steps), parts - 1))
        bounds = [0, *cuts, steps]
        return [(hi - lo) * step for lo, hi in pairwise(bounds)]

    def _book(self, fill: Fill) -> None:
        """Record `fill` in the ledger and move balances: base, quote and fee."""
        base, quote = _base_and_quote(fill.symbol)
        notional = fill.qty * fill.price
        sign = fill.side.sign
        balances = self._balances
        balances[base] = balances.get(base, Decimal(0)) + sign * fill.qty
        balances[quote] = balances.get(quote, Decimal(0)) - sign * notional
        currency = fill.fee_currency
        balances[currency] = balances.get(currency, Decimal(0)) - fill.fee
        self._fills.append(fill)

    def _new_order_id(self) -> str:
        order_id = f"{self._ids}-order-{self._next_order_no}"
        self._next_order_no += 1
        return order_id

    def _new_trade_id(self) -> str:
        trade_id = f"{self._ids}-trade-{self._next_trade_no}"
        self._next_trade_no += 1
        return trade_id
