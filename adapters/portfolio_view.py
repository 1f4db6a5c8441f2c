"""Positions and their P&L per account and currency, as the CLI and the dashboard show them (pure).

A position row keeps the exact decimal texts under `exact` beside the values
shown at the venue's precision; totals are exact Decimal sums per account and
per currency (a sum across currencies means nothing: a desk's totals are one
row per quote currency). No I/O.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from posbus.actors.model.symbol_currencies import SymbolCurrencies
from posbus.adapters.display_precision import Precision

_MONEY = ("realized_pnl", "unrealized_pnl", "fees")
# Wide enough for any sum of wire decimals (at most 64 characters each): never rounds.
_EXACT = decimal.Context(prec=1000, traps=[decimal.Inexact, decimal.InvalidOperation])


def currency_of(symbol: str) -> str:
    """The currency a symbol's P&L is in: its settlement or quote currency; "?" if unspelled."""
    pair = SymbolCurrencies.of(symbol)
    if pair is None:
        return "?"
    return pair.settle or pair.quote


def _sum(values: Iterable[str | None]) -> Decimal:
    total = Decimal(0)
    for value in values:
        if value is not None:
            total = _EXACT.add(total, Decimal(value))
    return total


def _text(value: Decimal) -> str:
    return format(value, "f")


def position_row(raw: dict[str, Any], precision: Precision) -> dict[str, Any]:
    """One position of `positions.list` as the page shows it."""
    exact = {
        key: None if raw.get(key) is None else str(raw[key])
        for key in ("qty", "avg_entry_price", "mark", *_MONEY)
    }
    total = None
    if exact["realized_pnl"] is not None and exact["unrealized_pnl"] is not None:
        total = _text(_sum([exact["realized_pnl"], exact["unrealized_pnl"]]))
    exact["total_pnl"] = total

    def shown(key: str, how: Any) -> str | None:
        value = exact[key]
        return None if value is None else str(how(value))

    return {
        "account": raw.get("account"),
        "symbol": raw.get("symbol"),
        "currency": currency_of(str(raw.get("symbol", ""))),
        "status": raw.get("status"),
        "qty": shown("qty", precision.qty),
        "avg_entry_price": shown("avg_entry_price", precision.price),
        "mark": shown("mark", precision.price),
        "realized_pnl": shown("realized_pnl", precision.money),
        "unrealized_pnl": shown("unrealized_pnl", precision.money),
        "total_pnl": shown("total_pnl", precision.money),
        "fees": shown("fees", precision.money),
        "fills": raw.get("fills"),
        "orders": raw.get("orders"),
        "error": raw.get("error"),
        "exact": exact,
    }


def _pnl(rows: list[dict[str, Any]], precision: Precision) -> dict[str, Any]:
    """Realized, unrealized, total P&L and fees of `rows` (same currency), exact and shown."""
    sums = {key: _sum(r["exact"][key] for r in rows) for key in (*_MONEY, "total_pnl")}
    return {
        **{key: precision.money(_text(value)) for key, value in sums.items()},
        "positions": len(rows),
        "open": sum(1 for r in rows if r["exact"]["qty"] and Decimal(r["exact"]["qty"]) != 0),
        "exact": {key: _text(value) for key, value in sums.items()},
    }


def totals(rows: list[dict[str, Any]], precision: Precision) -> list[dict[str, Any]]:
    """P&L totals per currency over every account (a sum across currencies means nothing)."""
    currencies = sorted({r["currency"] for r in rows})
    return [
        {"currency": c, **_pnl([r for r in rows if r["currency"] == c], precision)}
        for c in currencies
    ]


def accounts(
    rows: list[dict[str, Any]] | None, workers: list[dict[str, Any]], precision: Precision
) -> list[dict[str, Any]]:
    """Each account (a gateway's or a position's) with its gateway's health and its P&L.

    `rows` None (positions not read): the P&L is None, not zero.
    """
    gateways = {w["name"].partition(".")[2]: w for w in workers if w["role"] == "gateway"}
    names = sorted(set(gateways) | {str(r["account"]) for r in rows or []})
    out = []
    for name in names:
        mine = None if rows is None else [r for r in rows if r["account"] == name]
        gateway = gateways.get(name)
        out.append(
            {
                "account": name,
                "gateway": None
                if gateway is None
                else {k: gateway[k] for k in ("name", "state", "breaker")},
                "pnl": None if mine is None else totals(mine, precision),
            }
        )
    return out
