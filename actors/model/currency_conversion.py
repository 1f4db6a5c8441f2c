"""Risk in one reporting currency: rates from live quotes, and risk inputs converted at them.

Risk adds up every position's notional and P&L; a symbol quoted in another
currency than the reporting one (ETH/BTC when risk counts in USDT) is
converted before it is added, at the mid of the rate symbol QUOTE/REPORTING
(BTC/USDT), which must be one of the traded symbols. Only direct rates are
used: a product of two exact decimals stays exact, an inverse (1 / mid) would
not. A converted mark is as old as the older of its two quotes, so a stale
rate makes the position's mark stale, which risk treats as the worst case.
Until a rate is known, a position in that currency has no mark (worst case
for exposure; risk refuses the orders that add to it) and its P&L counts as
zero, and an order's limit price in it counts as unknown (priced at the
missing mark). Pure: no clock, no thread, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from posbus.actors.model.risk_arithmetic import ZERO, mul
from posbus.actors.model.risk_exposure import PositionExposure
from posbus.actors.model.risk_request import OrderRequest


def quote_currency(symbol: str) -> str:
    """The currency a BASE/QUOTE symbol is priced in."""
    return symbol.rpartition("/")[2]


def missing_rates(reporting: str, symbols: Iterable[str]) -> list[str]:
    """The rate symbols (QUOTE/REPORTING) that `symbols` would need and do not include."""
    known = set(symbols)
    needed = {f"{quote_currency(s)}/{reporting}" for s in known if quote_currency(s) != reporting}
    return sorted(needed - known)


class CurrencyConversion:
    """The latest rate of each foreign quote currency, and risk inputs valued at it.

    Args:
        reporting: the currency every risk figure is counted in.
        symbols: the traded symbols; every quote currency other than
            `reporting` must have its rate symbol among them (ValueError).
    """

    def __init__(self, reporting: str, symbols: Iterable[str]) -> None:
        symbols = tuple(symbols)
        missing = missing_rates(reporting, symbols)
        if missing:
            raise ValueError(f"no rate symbol into {reporting}: add {', '.join(missing)}")
        self.reporting = reporting
        # Each symbol quoted in a foreign currency -> that currency.
        self.foreign = {s: quote_currency(s) for s in symbols if quote_currency(s) != reporting}
        # Each rate symbol -> the currency it prices (BTC/USDT -> BTC).
        self.sources = {f"{c}/{reporting}": c for c in set(self.foreign.values())}
        self._rates: dict[str, tuple[Decimal, int]] = {}

    @staticmethod
    def needed(reporting: str, symbols: Iterable[str]) -> bool:
        """True when some symbol is quoted in another currency than `reporting`."""
        return any(quote_currency(s) != reporting for s in symbols)

    def set_rate(self, symbol: str, mid: Decimal, ts_ns: int) -> str | None:
        """Take a rate symbol's mid; returns the currency it prices, None for other symbols.

        A quote older than the rate held is ignored (the currency is still returned).
        """
        currency = self.sources.get(symbol)
        if currency is None:
            return None
        held = self._rates.get(currency)
        if held is None or ts_ns >= held[1]:
            self._rates[currency] = (mid, ts_ns)
        return currency

    def rate(self, currency: str) -> tuple[Decimal, int] | None:
        """(the rate of `currency` into the reporting currency, its quote's time), or None."""
        return self._rates.get(currency)

    def mark(self, symbol: str, mark: Decimal, ts_ns: int) -> tuple[Decimal, int] | None:
        """A foreign symbol's mark in the reporting currency, and its age; None without a rate."""
        held = self._rates.get(self.foreign[symbol])
        if held is None:
            return None
        rate, rate_ts = held
        return mul(mark, rate), min(ts_ns, rate_ts)

    def exposure(self, exposure: PositionExposure) -> PositionExposure:
        """A foreign symbol's exposure with every money figure in the reporting currency."""
        held = self._rates.get(self.foreign[exposure.symbol])
        if held is None:
            rate, mark, mark_ts = ZERO, None, None  # worst case until a rate comes
        else:
            rate, rate_ts = held
            if exposure.mark is None or exposure.mark_ts_ns is None:
                mark, mark_ts = None, None
            else:
                mark, mark_ts = mul(exposure.mark, rate), min(exposure.mark_ts_ns, rate_ts)
        return PositionExposure(
            exposure.account,
            exposure.symbol,
            exposure.qty,
            mark,
            mark_ts,
            mul(exposure.realized_pnl, rate),
            mul(exposure.unrealized_pnl, rate),
            exposure.group,
            exposure.correlation,
            exposure.working_buy_qty,
            mul(exposure.working_buy_notional, rate),
            exposure.working_sell_qty,
            mul(exposure.working_sell_notional, rate),
        )

    def request(self, request: OrderRequest) -> OrderRequest:
        """A foreign symbol's order with its limit price in the reporting currency.

        Without a rate the price is unknown: the order is judged at the
        symbol's mark, which is missing too, so only a risk-reducing one passes.
        """
        if request.price is None:
            return request
        held = self._rates.get(self.foreign[request.symbol])
        price = None if held is None else mul(request.price, held[0])
        return OrderRequest(
            request.account,
            request.symbol,
            request.side,
            request.qty,
            price,
            request.order_id,
            request.ts_ns,
        )
