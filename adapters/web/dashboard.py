"""The dashboard document: one JSON-ready dict built from a stack reading and the bus view (pure).

What the page shows, every amount a decimal string at instrument precision
(`precision.py`) with the exact text kept under `exact`: accounts with their
P&L per quote currency, positions, P&L totals per currency, the risk state
and how much of each limit is used (`risk_usage.py`), working orders, recent
risk events, fills and quotes heard on the bus (`bus_view.py`), and each
worker's health. Sums are exact Decimal arithmetic. `SCHEMA` versions the
document; the page's script reads it. No I/O, no clock: the reading carries
its timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from posbus.adapters.display_precision import Precision
from posbus.adapters.portfolio_view import accounts, position_row, totals
from posbus.adapters.web.bus_view import BusView
from posbus.adapters.web.risk_usage import limit_usage
from posbus.adapters.web.stack_reads import StackReading

SCHEMA = 1
"""Version of the document's layout."""

_MONEY_METRICS = ("equity", "day_start_equity", "peak_equity", "daily_pnl", "gross")


@dataclass(frozen=True, slots=True)
class Venue:
    """What the page says of the venue: its kind and the precision of its instruments."""

    name: str
    precision: Precision


def order_row(raw: dict[str, Any], precision: Precision) -> dict[str, Any]:
    """One working order of `positions.orders` as the page shows it."""

    def shown(key: str, how: Any) -> str | None:
        value = raw.get(key)
        return None if value is None else str(how(str(value)))

    return {
        "order_id": raw.get("order_id"),
        "account": raw.get("account"),
        "symbol": raw.get("symbol"),
        "side": raw.get("side"),
        "qty": shown("qty", precision.qty),
        "filled_qty": shown("filled_qty", precision.qty),
        "limit_price": shown("limit_price", precision.price),
        "status": raw.get("status"),
        "reason": raw.get("reason"),
        "created_ts_ns": raw.get("created_ts_ns"),
    }


def worker_row(raw: dict[str, Any], breakers: dict[str, str | None]) -> dict[str, Any]:
    """One worker of `posbus status` with its state and, for a gateway, its breaker."""
    state = "up" if raw["serving"] else ("alive" if raw["alive"] else "DOWN")
    row = {k: raw.get(k) for k in ("name", "role", "shard", "pid", "uptime_s", "restarts")}
    return {**row, "state": state, "breaker": breakers.get(raw["name"])}


def risk_part(risk: dict[str, Any] | None, precision: Precision) -> dict[str, Any] | None:
    """The risk state, its key metrics, how much of each limit is used, the newest decisions."""
    if risk is None:
        return None
    metrics = dict(risk.get("metrics") or {})
    shown = {
        key: precision.money(str(value)) if key in _MONEY_METRICS else str(value)
        for key, value in sorted(metrics.items())
    }
    return {
        "state": risk.get("state"),
        "halt_reason": risk.get("halt_reason") or None,
        "cooldown_until_ns": risk.get("cooldown_until_ns"),
        "metrics": shown,
        "limits": [row.as_dict() for row in limit_usage(risk, precision)],
        "decisions": list(reversed(risk.get("recent_decisions") or [])),
    }


def build(reading: StackReading, bus: BusView, venue: Venue, interval_s: float) -> dict[str, Any]:
    """The document for `reading` and what `bus` heard; readings come every `interval_s`."""
    precision = venue.precision
    status = reading.status or {}
    workers = [worker_row(w, reading.breakers) for w in status.get("workers", [])]
    # None: not read this time (the page says so), never shown as "no positions".
    rows = None
    if reading.positions is not None:
        rows = sorted(
            (position_row(p, precision) for p in reading.positions),
            key=lambda r: (str(r["account"]), str(r["symbol"])),
        )
    orders = None
    if reading.orders is not None:
        orders = [order_row(o, precision) for o in reading.orders]
    return {
        "schema": SCHEMA,
        "ts_ns": reading.ts_ns,
        # The page counts a document older than a few intervals as stale.
        "interval_s": interval_s,
        "run_dir": reading.run_dir,
        "venue": venue.name,
        "precision": {"price_places": precision.price_places, "qty_places": precision.qty_places},
        "launcher": status.get("launcher"),
        # Without the status (the stack is not running) neither is known: null, not empty.
        "accounts": None
        if reading.status is None and rows is None
        else accounts(rows, workers, precision),
        "positions": rows,
        "totals": None if rows is None else totals(rows, precision),
        "orders": orders,
        "risk": risk_part(reading.risk, precision),
        "risk_events": bus.risk_events(),
        "fills": bus.fills(precision),
        "quotes": bus.quotes(precision),
        "workers": None if reading.status is None else workers,
        "errors": list(reading.errors),
    }
