"""The files of `posbus backtest --report DIR`: equity.csv, trades.csv, summary.json, report.html.

- `equity.csv`: `timestamp,equity`, the sampled equity curve every metric is
  computed from (start, every `[backtest] equity_interval_s` boundary, end).
- `trades.csv`: one closed round trip per row: symbol, side (long/short),
  entry and exit time, entry and exit price (quantity-weighted averages),
  qty (total opened), pnl (fees included) and fees.
- `summary.json`: the summary (`backtest_summary.summarize`), keys sorted.
- `report.html`: one self-contained page: the headline metrics, an equity
  chart and a drawdown chart (inline SVG, adapters/backtest_chart.py), the
  risk events and the trades.

Deterministic: the same result writes the same bytes (timestamps come from
the replay, never the wall clock).
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from posbus.actors.model.round_trip import RoundTrip
from posbus.actors.model.side import Side
from posbus.adapters.backtest import BacktestResult
from posbus.adapters.backtest_chart import svg_chart
from posbus.adapters.backtest_summary import iso_ns, money

HTML_TRADES_SHOWN = 500
"""Trades listed in report.html (trades.csv has them all)."""
HTML_RISK_EVENTS_SHOWN = 200
"""Risk events listed in report.html (summary.json has up to 10,000)."""


def write_report(directory: Path, result: BacktestResult, summary: dict[str, Any]) -> list[Path]:
    """Write the four files under `directory` (created if needed); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [
        _write_equity(directory / "equity.csv", result.equity),
        _write_trades(directory / "trades.csv", result.trips),
        _write_summary(directory / "summary.json", summary),
    ]
    paths.append(_write_html(directory / "report.html", result, summary))
    return paths


def _write_equity(path: Path, equity: Sequence[tuple[int, Decimal]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["timestamp", "equity"])
        for ts, value in equity:
            writer.writerow([iso_ns(ts), money(value)])
    return path


def _write_trades(path: Path, trips: Sequence[RoundTrip]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(
            [
                "symbol",
                "side",
                "entry_time",
                "exit_time",
                "entry_price",
                "exit_price",
                "qty",
                "pnl",
                "fees",
            ]
        )
        for trip in trips:
            writer.writerow(_trade_row(trip))
    return path


def _trade_row(trip: RoundTrip) -> list[str]:
    return [
        trip.symbol,
        "long" if trip.side is Side.BUY else "short",
        iso_ns(trip.entry_ts_ns),
        "" if trip.exit_ts_ns is None else iso_ns(trip.exit_ts_ns),
        _price(trip.entry_price),
        "" if trip.exit_price is None else _price(trip.exit_price),
        money(trip.qty),
        money(trip.pnl),
        money(trip.fees),
    ]


def _price(value: Decimal) -> str:
    # Averages are quotients: 8 places are plenty to read and keep the files stable.
    return money(value.quantize(Decimal("0.00000001")))


def _write_summary(path: Path, summary: dict[str, Any]) -> Path:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return path


# -- charts ----------------------------------------------------------------------------


def drawdown_series(equity: Sequence[Decimal]) -> list[float]:
    """equity / running peak - 1 at every sample, as floats for plotting."""
    out: list[float] = []
    peak: Decimal | None = None
    for value in equity:
        peak = value if peak is None or value > peak else peak
        out.append(float(value / peak - 1) if peak > 0 else 0.0)
    return out


def render_charts(result: BacktestResult) -> tuple[str, str]:
    """(equity chart, drawdown chart) as inline SVG elements."""
    equity = [(ts, float(v)) for ts, v in result.equity]
    drawdown = drawdown_series([v for _, v in result.equity])
    equity_svg = svg_chart(
        equity,
        title="Equity (quote currency); dashed: starting equity",
        height=360,
        color="#1f5fa8",
        reference=float(result.starting_equity),
    )
    drawdown_svg = svg_chart(
        [(ts, 100 * d) for (ts, _), d in zip(result.equity, drawdown, strict=True)],
        title="Drawdown from the running peak (%)",
        height=260,
        color="#c0392b",
        fill_to_zero=True,
    )
    return equity_svg, drawdown_svg


# -- html ------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1040px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.5em 0.9em; min-width: 7.5em; }
.card .k { color: #666; font-size: 0.8em; }
.card .v { font-size: 1.25em; font-weight: 600; }
.neg { color: #b03a2e; } .pos { color: #1e7b45; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #eee; padding: 0.25em 0.6em; text-align: right; }
th { background: #f6f6f6; } td.l, th.l { text-align: left; }
.chart svg { width: 100%; height: auto; display: block; margin: 0.5em 0; }
"""


def _card(label: str, value: str, tone: str = "") -> str:
    cls = f"v {tone}" if tone else "v"
    return (
        f'<div class="card"><div class="k">{html.escape(label)}</div>'
        f'<div class="{cls}">{html.escape(value)}</div></div>'
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _tone(value: float | Decimal | None) -> str:
    if value is None or value == 0:
        return ""
    return "pos" if value > 0 else "neg"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    head = "".join(
        f'<th class="l">{html.escape(h)}</th>' if i < left else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="l">{html.escape(c)}</td>' if i < left else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(result: BacktestResult, summary: dict[str, Any]) -> str:
    """The report page (see the module docstring)."""
    s = summary
    final = Decimal(s["final_equity"])
    pnl = final - Decimal(s["starting_equity"])
    cards = "".join(
        [
            _card("total return", _pct(s["total_return"]), _tone(s["total_return"])),
            _card("P&L", money(pnl), _tone(pnl)),
            _card("Sharpe", _num(s["sharpe"])),
            _card("Sortino", _num(s["sortino"])),
            _card("max drawdown", _pct(s["max_drawdown"]), _tone(s["max_drawdown"])),
            _card("trades", str(s["trades"])),
            _card("win rate", _pct(s["win_rate"])),
            _card("fees", s["fees"]),
            _card("exposure time", _pct(s["exposure_time"])),
            _card("risk events", str(s["risk"]["events"]), "neg" if s["risk"]["events"] else ""),
        ]
    )
    chart_html = "".join(f'<div class="chart">{svg}</div>' for svg in render_charts(result))
    events = s["risk_events"][:HTML_RISK_EVENTS_SHOWN]
    events_html = (
        _table(
            ["time", "event", "state", "from", "reason"],
            [
                [
                    e["time"],
                    e["event"],
                    e["state"],
                    e["previous_state"] or "",
                    e["reason"],
                ]
                for e in events
            ],
            left=5,
        )
        if events
        else "<p>None: no limit was reached and no order was refused.</p>"
    )
    trades = result.trips[:HTML_TRADES_SHOWN]
    trades_html = (
        _table(
            ["symbol", "side", "entry", "exit", "entry px", "exit px", "qty", "P&L", "fees"],
            [_trade_row(t) for t in trades],
            left=4,
        )
        if trades
        else "<p>No closed trade.</p>"
    )
    params = ", ".join(f"{k}={v}" for k, v in s["strategy"]["params"].items()) or "defaults"
    settings = _table(
        ["setting", "value"],
        [
            ["strategy", f"{s['strategy']['name']} ({params})"],
            ["data", ", ".join(s["data"])],
            ["period", f"{s['start']} to {s['end']}"],
            ["market updates", str(s["market_updates"])],
            ["skipped rows", str(sum(v["rows"] for v in s["skipped_rows"].values()))],
            ["seed", str(s["seed"])],
            ["starting / final equity", f"{s['starting_equity']} / {s['final_equity']}"],
            ["realized / unrealized P&L", f"{s['realized_pnl']} / {s['unrealized_pnl']}"],
            ["fills / orders", f"{s['fills']} / {sum(s['orders'].values())}"],
            ["final risk state", s["risk"]["state"]],
            [
                "Sharpe / Sortino basis",
                f"{s['periods']} returns of {s['period_s']} s, x sqrt({s['periods_per_year']})",
            ],
            ["journal sha256", s["journal_sha256"]],
        ],
    )
    shown = (
        f" (first {len(trades)} of {len(result.trips)})" if len(result.trips) > len(trades) else ""
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>posbus backtest: {html.escape(s['strategy']['name'])}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Backtest: {html.escape(s['strategy']['name'])}</h1>"
        f'<p class="sub">{html.escape(s["start"])} to {html.escape(s["end"])}, '
        f"{s['market_updates']} market updates</p>"
        f'<div class="cards">{cards}</div>{chart_html}'
        f"<h2>Risk events</h2>{events_html}"
        f"<h2>Trades{shown}</h2>{trades_html}"
        f"<h2>Run</h2>{settings}"
        "</body></html>\n"
    )


def _write_html(path: Path, result: BacktestResult, summary: dict[str, Any]) -> Path:
    path.write_text(render_html(result, summary), encoding="utf-8")
    return path
