"""The summary of a backtest: its metrics and counts as one JSON-ready, deterministic dict.

`summarize` turns a `BacktestResult` into what `posbus backtest --json`
prints and `summary.json` holds. The metric conventions are those of
`posbus.actors.model.metrics` (stated in `posbus backtest --help` and
docs/backtest.md). Ledger values (equity, P&L, fees, prices, quantities) are exact
decimal strings; ratios are JSON numbers rounded to 6 decimal places;
timestamps are ISO 8601 UTC with nanoseconds. Keys are sorted when written,
and nothing depends on the wall clock, so the same run gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from posbus.actors.model import metrics
from posbus.adapters.backtest import BacktestResult
from posbus.adapters.cli.decimal_text import format_decimal
from posbus.adapters.config import BacktestConfig

_NS_PER_S = 1_000_000_000
RISK_EVENTS_KEPT = 10_000
"""At most this many risk events are listed in summary.json (all are counted)."""


def iso_ns(ts_ns: int) -> str:
    """`ts_ns` as ISO 8601 UTC with 9 fractional digits: 2024-01-02T03:04:05.000000006Z."""
    seconds, nanos = divmod(ts_ns, _NS_PER_S)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def money(value: Decimal) -> str:
    """A ledger value as the CLI writes decimals (exact, no exponent)."""
    return format_decimal(value)


def summarize(
    result: BacktestResult,
    settings: BacktestConfig,
    *,
    strategy: str,
    params: dict[str, str],
    data: list[str],
    skipped: dict[str, dict[str, object]],
    seed: int,
) -> dict[str, Any]:
    """The run's summary (see the module docstring); `risk_events` lists the first events."""
    equity_values = [value for _, value in result.equity]
    closes = metrics.period_closes(result.equity, settings.period_s * _NS_PER_S)
    period_returns = metrics.returns(closes)
    final = equity_values[-1]
    realized = sum((Decimal(p["realized_pnl"]) for p in result.positions.values()), Decimal(0))
    unrealized = sum((Decimal(p["unrealized_pnl"]) for p in result.positions.values()), Decimal(0))
    kinds = Counter(event.event for event in result.risk_events)
    return {
        "trades": len(result.trips),
        "win_rate": metrics.fmt_ratio(metrics.win_rate(result.trips)),
        "sharpe": metrics.fmt_ratio(metrics.sharpe(period_returns, settings.periods_per_year)),
        "sortino": metrics.fmt_ratio(metrics.sortino(period_returns, settings.periods_per_year)),
        "max_drawdown": metrics.fmt_ratio(float(metrics.max_drawdown(equity_values))),
        "total_return": metrics.fmt_ratio(float(metrics.total_return(equity_values))),
        "fees": money(result.fees),
        "exposure_time": metrics.fmt_ratio(
            metrics.exposure_time(result.open_intervals, result.start_ns, result.end_ns)
        ),
        "winning_trades": sum(1 for trip in result.trips if trip.is_win),
        "open_trades": len(result.open_trips),
        "starting_equity": money(result.starting_equity),
        "final_equity": money(final),
        "realized_pnl": money(realized),
        "unrealized_pnl": money(unrealized),
        "period_s": settings.period_s,
        "periods_per_year": settings.periods_per_year,
        "periods": len(period_returns),
        "equity_interval_s": settings.equity_interval_s,
        "start": iso_ns(result.start_ns),
        "end": iso_ns(result.end_ns),
        "market_updates": result.updates,
        "skipped_rows": skipped,
        "fills": result.fills,
        "orders": result.orders,
        "positions": result.positions,
        "risk": {
            "state": result.risk_state,
            "events": len(result.risk_events),
            "events_by_kind": dict(sorted(kinds.items())),
            "decisions": result.risk_decisions,
        },
        "strategy": {"name": strategy, "params": dict(sorted(params.items()))},
        "data": list(data),
        "seed": seed,
        "journal_records": result.journal_records,
        "journal_sha256": result.journal_sha256,
        "risk_events": [
            {
                "time": iso_ns(event.ts_ns),
                "event": event.event,
                "state": event.state,
                "previous_state": event.previous_state,
                "reason": event.reason,
                "symbol": event.symbol,
            }
            for event in result.risk_events[:RISK_EVENTS_KEPT]
        ],
    }
