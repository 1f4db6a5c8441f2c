"""What a sweep reports: the ranked table, `--json`, and the files of `--out DIR`.

- `sweep.json` (and `--json`): the sweep's settings, `ranking` (run indices
  best first) and `runs` in grid order, each with its `index`, `rank`,
  `params`, `seed` and `summary` (the single run's `--json` summary), or its
  `error`. A search (`posbus.adapters.backtest_search`) adds its settings
  as `search`; its runs are in trial order.
- `sweep.csv`: the ranked table, one run per row.
- `report.html`: one self-contained page: a heat map of the ranking metric
  over the first two swept parameters (with more than two, each cell shows
  the best run over the others; with one, a single row; none for a search,
  whose values are sampled rather than a grid), the equity curves of the
  best runs (inline SVG, adapters/backtest_chart.py) and the table.

Deterministic: the same outcomes write the same bytes (nothing from the wall
clock, the worker count or the completion order).
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posbus.adapters.backtest_chart import svg_lines
from posbus.adapters.backtest_sweep import RANK_METRICS, RunOutcome, metric_value

TABLE_METRICS = ("sharpe", "total_return", "max_drawdown", "trades", "win_rate", "final_equity")
"""The metrics shown in the table besides the ranking one."""
BEST_CURVES = 5
"""Equity curves drawn in report.html: the best runs."""
_COLORS = ("#1f5fa8", "#1e7b45", "#c0392b", "#8e44ad", "#d68910")


def document(
    outcomes: Sequence[RunOutcome],
    ranked: Sequence[RunOutcome],
    *,
    strategy: str,
    data: Sequence[str],
    swept: Sequence[str],
    rank_by: str,
    base_seed: int,
    search: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sweep as one JSON-ready dict (module docstring); `search`: a search's settings."""
    ranks = {outcome.index: place for place, outcome in enumerate(ranked, 1)}
    runs = []
    for outcome in outcomes:
        run: dict[str, Any] = {
            "index": outcome.index,
            "rank": ranks[outcome.index],
            "params": dict(sorted(outcome.params.items())),
            "seed": outcome.seed,
        }
        if outcome.error is not None:
            run["error"] = outcome.error
        else:
            run["summary"] = outcome.summary
        runs.append(run)
    doc: dict[str, Any] = {
        "strategy": strategy,
        "data": list(data),
        "swept": list(swept),
        "rank_by": rank_by,
        "base_seed": base_seed,
        "runs_total": len(outcomes),
        "runs_failed": sum(1 for o in outcomes if o.error is not None),
        "ranking": [outcome.index for outcome in ranked],
        "runs": runs,
    }
    if search is not None:
        doc["search"] = search
    return doc


def table(
    ranked: Sequence[RunOutcome], swept: Sequence[str], rank_by: str
) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the ranked table: rank, swept parameters, seed, metrics, error."""
    metrics = [rank_by, *(m for m in TABLE_METRICS if m != rank_by)]
    header = ["rank", *swept, "seed", *metrics, "error"]
    rows = []
    for place, outcome in enumerate(ranked, 1):
        summary = outcome.summary or {}
        cells = [_cell(summary.get(m)) if outcome.summary else "" for m in metrics]
        rows.append(
            [
                str(place),
                *(outcome.params[name] for name in swept),
                str(outcome.seed),
                *cells,
                outcome.error or "",
            ]
        )
    return header, rows


def _cell(value: object) -> str:
    return "null" if value is None else str(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The table as aligned text columns (the error column last, unpadded)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.rjust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def write(
    directory: Path,
    doc: dict[str, Any],
    *,
    outcomes: Sequence[RunOutcome],
    ranked: Sequence[RunOutcome],
    swept: Sequence[str],
    rank_by: str,
) -> list[Path]:
    """Write sweep.json, sweep.csv and report.html under `directory` (created); their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "sweep.json"
    with open(json_path, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.write("\n")
    csv_path = directory / "sweep.csv"
    header, rows = table(ranked, swept, rank_by)
    with open(csv_path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    html_path = directory / "report.html"
    html_path.write_text(
        render_html(doc, outcomes=outcomes, ranked=ranked, swept=swept, rank_by=rank_by),
        encoding="utf-8",
    )
    return [json_path, csv_path, html_path]


# -- html ------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1040px; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #eee; padding: 0.25em 0.6em; text-align: right; }
th { background: #f6f6f6; } td.err { text-align: left; color: #b03a2e; }
.chart svg { width: 100%; height: auto; display: block; margin: 0.5em 0; }
"""


def heat_map(
    outcomes: Sequence[RunOutcome], ranked: Sequence[RunOutcome], swept: Sequence[str], metric: str
) -> str:
    """The metric over the first two swept parameters as an SVG grid of coloured cells.

    Rows: the first parameter's values; columns: the second's (one column
    without a second). A cell holds the best-ranked run with those two
    values, coloured by its value's rank among the cells; a cell whose runs
    all failed or gave null is grey, marked "n/a".
    """
    if not swept:
        return ""
    row_name = swept[0]
    col_name = swept[1] if len(swept) > 1 else None
    row_values = _values_in_order(outcomes, row_name)
    col_values = _values_in_order(outcomes, col_name) if col_name else [""]
    best: dict[tuple[str, str], RunOutcome] = {}
    for outcome in ranked:  # best first: the first seen of a cell is its best
        key = (outcome.params[row_name], outcome.params[col_name] if col_name else "")
        best.setdefault(key, outcome)
    numbers = sorted({v for o in best.values() if (v := metric_value(o, metric)) is not None})
    cell_w, cell_h, left, top = 110, 34, 120, 56
    width = left + cell_w * len(col_values) + 10
    height = top + cell_h * len(row_values) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" role="img" aria-label="{html.escape(metric)} heat map" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="4" y="18" font-size="14">{html.escape(metric)} by '
        f"{html.escape(row_name)} (rows)"
        + (f" and {html.escape(col_name)} (columns)" if col_name else "")
        + "</text>",
    ]
    for j, col in enumerate(col_values):
        parts.append(
            f'<text x="{left + cell_w * j + cell_w / 2:.0f}" y="{top - 8}" '
            f'text-anchor="middle" fill="#555">{html.escape(col)}</text>'
        )
    for i, row in enumerate(row_values):
        y = top + cell_h * i
        parts.append(
            f'<text x="{left - 8}" y="{y + cell_h / 2 + 4:.0f}" text-anchor="end" '
            f'fill="#555">{html.escape(row)}</text>'
        )
        for j, col in enumerate(col_values):
            found = best.get((row, col))
            value = metric_value(found, metric) if found is not None else None
            fill = "#dddddd" if value is None else _heat(numbers.index(value), len(numbers), metric)
            text = "n/a" if value is None else f"{value:.4g}"
            x = left + cell_w * j
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{fill}"/><text x="{x + cell_w / 2 - 1:.0f}" y="{y + cell_h / 2 + 3:.0f}" '
                f'text-anchor="middle">{html.escape(text)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _values_in_order(outcomes: Sequence[RunOutcome], name: str | None) -> list[str]:
    """The values of parameter `name` in grid order (ascending), each once."""
    seen: dict[str, None] = {}
    for outcome in outcomes:
        seen.setdefault(outcome.params[name] if name else "", None)
    return list(seen)


def _heat(place: int, count: int, metric: str) -> str:
    """The colour of the `place`-th lowest of `count` values: red (worst) to green (best).

    By rank, not by value, so one outlier does not paint every other cell alike.
    """
    share = 0.5 if count < 2 else place / (count - 1)
    if not RANK_METRICS.get(metric, True):
        share = 1 - share
    if share < 0.5:
        red, green = 230, int(120 + 2 * share * 110)
    else:
        red, green = int(230 - 2 * (share - 0.5) * 150), 200
    return f"#{red:02x}{green:02x}78"


def equity_chart(ranked: Sequence[RunOutcome], swept: Sequence[str]) -> str:
    """The equity curves of the best `BEST_CURVES` runs that finished, on one chart."""
    series = []
    for outcome, color in zip(
        [o for o in ranked if o.summary is not None][:BEST_CURVES], _COLORS, strict=False
    ):
        label = ", ".join(f"{name}={outcome.params[name]}" for name in swept)
        points = [(ts, float(value)) for ts, value in outcome.equity]
        series.append((label or f"run {outcome.index}", color, points))
    return svg_lines(series, title="Equity of the best runs", height=380)


def render_html(
    doc: dict[str, Any],
    *,
    outcomes: Sequence[RunOutcome],
    ranked: Sequence[RunOutcome],
    swept: Sequence[str],
    rank_by: str,
) -> str:
    """The comparison page (see the module docstring)."""
    header, rows = table(ranked, swept, rank_by)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(c)}</td>" for c in row[:-1])
        + f'<td class="err">{html.escape(row[-1])}</td></tr>'
        for row in rows
    )
    failed = doc["runs_failed"]
    search = doc.get("search")
    if search is None:
        kind, over = "sweep", "over " + html.escape(", ".join(swept))
        grid = heat_map(outcomes, ranked, swept, rank_by)
    else:
        kind = "search"
        space = ", ".join(f"{k} in {v}" for k, v in search["space"].items())
        over = (
            f"picked by optuna's {search['sampler']} (seed {search['sampler_seed']}) "
            f"from {html.escape(space)}"
        )
        grid = (
            '<p class="sub">No heat map: a search samples its parameters from ranges '
            "rather than covering a grid; the table lists every run.</p>"
        )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>posbus {kind}: {html.escape(doc['strategy'])}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{kind.capitalize()}: {html.escape(doc['strategy'])}</h1>"
        f'<p class="sub">{doc["runs_total"]} runs {over}'
        f" ({failed} failed), ranked by {html.escape(rank_by)}; data "
        f"{html.escape(', '.join(doc['data']))}; base seed {doc['base_seed']}</p>"
        f"<div>{grid}</div>"
        f'<div class="chart">{equity_chart(ranked, swept)}</div>'
        f"<h2>Runs, best first</h2><table><tr>{head}</tr>{body}</table>"
        "</body></html>\n"
    )
