"""Which symbols and accounts a stack trades, and the nearest one to a name it does not.

A symbol posbus trades is spelled BASE/QUOTE as the venue's unified market
(ccxt's spelling). Operators type `BTCUSDT`, `btc/usdt` or `BTC-USDT`; an
order for such a spelling must be refused with the spelling meant, never
turned into a new position. So must an order for an account the stack does
not have (`Hedge`, `hedg`). Pure: no I/O.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection


def _squashed(symbol: str) -> str:
    """The symbol upper-cased with every separator dropped: `btc-usdt` → `BTCUSDT`."""
    return "".join(ch for ch in symbol.upper() if ch.isalnum())


def nearest_symbol(symbol: str, known: Collection[str]) -> str | None:
    """The known symbol (or account) `symbol` most likely means, or None when none is close.

    A spelling that differs only in case and separators names its symbol
    exactly; otherwise the closest known spelling by similarity, if any is
    close enough to be a typo (`BTC/USTD` → `BTC/USDT`).
    """
    squashed = _squashed(symbol)
    for candidate in sorted(known):
        if _squashed(candidate) == squashed:
            return candidate
    by_squashed = {_squashed(candidate): candidate for candidate in sorted(known)}
    close = difflib.get_close_matches(squashed, list(by_squashed), n=1, cutoff=0.75)
    return by_squashed[close[0]] if close else None


def unknown_symbol_message(symbol: str, known: Collection[str]) -> str:
    """Why an order for `symbol` is refused: the nearest known spelling, and the known ones."""
    nearest = nearest_symbol(symbol, known)
    hint = f"; did you mean {nearest!r}?" if nearest is not None else ""
    return f"unknown symbol {symbol!r}{hint} (trades: {', '.join(sorted(known))})"


def unknown_account_message(account: str, known: Collection[str]) -> str:
    """Why an order for `account` is refused: the nearest known account, and the known ones."""
    nearest = nearest_symbol(account, known)
    hint = f"; did you mean {nearest!r}?" if nearest is not None else ""
    return f"unknown account {account!r}{hint} (accounts: {', '.join(known)})"
