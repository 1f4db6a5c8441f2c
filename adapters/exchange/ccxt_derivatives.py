"""What a derivatives account holds and pays, as ccxt reports it: positions and funding payments.

ccxt's position and funding-history structures become immutable values with
the strict rules of ccxt_convert.py: a field posbus needs that it cannot
interpret raises `UnreadableField`, never a guess. A position's size stays in
the venue's contracts, signed (short below zero), beside the contract size the
venue states (None when it states none: a contract is then never assumed to be
one unit of the base currency).

Pure functions, safe on any thread: no I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from posbus.adapters.exchange.ccxt_convert import (
    UnreadableField,
    decimal_of,
    ns_of_ms,
    number_of,
    text_of,
)


@dataclass(frozen=True, slots=True)
class PositionView:
    """One open position at the venue: `contracts` signed, in the venue's contracts."""

    symbol: str
    contracts: Decimal
    contract_size: Decimal | None


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """One funding payment of a perpetual: `amount` received (negative when paid)."""

    funding_id: str | None
    symbol: str
    currency: str
    amount: Decimal
    ts_ns: int


def position_view(position: Mapping[str, Any]) -> PositionView:
    """A ccxt position structure; UnreadableField without symbol, contracts, or a side when open."""
    symbol = text_of(position, "symbol", "position")
    contracts = number_of(position, "contracts", "position", symbol=symbol)
    side = position.get("side")
    if contracts and side not in ("long", "short"):
        raise UnreadableField("position", "side", side, symbol=symbol)
    size = position.get("contractSize")
    contract_size = None if size is None else decimal_of(size)
    if size is not None and (contract_size is None or contract_size <= 0):
        raise UnreadableField("position", "contractSize", size, symbol=symbol)
    return PositionView(
        symbol=symbol,
        contracts=-contracts if side == "short" else contracts,
        contract_size=contract_size,
    )


def funding_payment(entry: Mapping[str, Any]) -> FundingPayment:
    """A ccxt funding-history entry; UnreadableField without symbol, currency, amount or time."""
    symbol = text_of(entry, "symbol", "funding")
    currency = text_of(entry, "code", "funding", symbol=symbol)
    amount = decimal_of(entry.get("amount"))
    if amount is None:
        raise UnreadableField("funding", "amount", entry.get("amount"), symbol=symbol)
    # A payment is history: without its own time it cannot be placed, never "now".
    ts_ns = ns_of_ms(entry.get("timestamp"), 0)
    if ts_ns == 0:
        raise UnreadableField("funding", "timestamp", entry.get("timestamp"), symbol=symbol)
    funding_id = entry.get("id")
    return FundingPayment(
        funding_id=str(funding_id) if funding_id not in (None, "") else None,
        symbol=symbol,
        currency=currency,
        amount=amount,
        ts_ns=ts_ns,
    )
