"""The currencies a symbol names, and which of them a fill's fee is paid in (pure).

A position accounts in its symbol's quote currency; a fee paid in the base
currency or in a third one (BNB, a rebate token) costs it something else.
This module only reads symbol names: it must never guess a currency the
symbol does not spell out (`of` returns None instead). docs/accounting.md,
"Fees in any currency", states what the position does with each kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FeeKind(StrEnum):
    """How a fee's currency relates to the symbol a position trades."""

    QUOTE = "quote"
    """The quote (or a derivative's settlement) currency: P&L's own unit."""
    BASE = "base"
    """A spot symbol's base currency: the fee comes out of the position's quantity."""
    OTHER = "other"
    """Any other currency (or a derivative's base): valued at a conversion mark."""


@dataclass(frozen=True, slots=True)
class SymbolCurrencies:
    """Base, quote and (derivatives only) settlement currency of a symbol, upper case."""

    base: str
    quote: str
    settle: str | None = None

    @classmethod
    def of(cls, symbol: str) -> SymbolCurrencies | None:
        """Read `BASE/QUOTE`, `BASE/QUOTE:SETTLE` (ccxt) or `BASE-QUOTE` (trade exports).

        None when the symbol spells out no pair (`BTCUSDT`): splitting it
        would be a guess.
        """
        pair, colon, settle = symbol.partition(":")
        for separator in ("/", "-"):
            base, found, quote = pair.partition(separator)
            if found and base and quote and separator not in quote:
                if colon and not settle:
                    return None
                return cls(base.upper(), quote.upper(), settle.upper() if colon else None)
        return None

    @property
    def is_spot(self) -> bool:
        """True for a spot pair, whose position quantity is the base balance it holds."""
        return self.settle is None

    def fee_kind(self, fee_currency: str) -> FeeKind:
        """Which kind of fee a fee paid in `fee_currency` is; an empty currency is quote.

        Currency codes compare case-insensitively. On a derivative the
        quantity is contracts, not a base balance, so its base is OTHER.
        """
        code = fee_currency.upper()
        if not code or code in (self.quote, self.settle):
            return FeeKind.QUOTE
        if code == self.base and self.is_spot:
            return FeeKind.BASE
        return FeeKind.OTHER
