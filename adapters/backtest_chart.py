"""The charts of a backtest report as inline SVG: no plotting library, no display.

`svg_chart` draws one time series (the equity curve, the drawdown) as a line,
optionally filled down to zero (`svg_lines`: several series on one pair of
axes, with a legend), with a dashed reference line, y grid lines
labelled with their values and the first and last dates on the x axis. A long
series is reduced to the lowest and highest value of each pixel column, so
the page stays small and no peak or trough disappears. Deterministic: the same
series gives the same bytes. Pure: no I/O, no clock.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

WIDTH = 1000
"""Width of a chart in SVG units (it scales to the page)."""
_LEFT, _RIGHT, _TOP, _BOTTOM = 84, 12, 30, 26
_GRID_LINES = 5


def svg_chart(
    points: Sequence[tuple[int, float]],
    *,
    title: str,
    height: int,
    color: str,
    reference: float | None = None,
    fill_to_zero: bool = False,
) -> str:
    """`points` ((ns since the epoch, value), in time order) as one `<svg>` element."""
    return svg_lines(
        [("", color, points)],
        title=title,
        height=height,
        reference=reference,
        fill_to_zero=fill_to_zero,
    )


def svg_lines(
    series: Sequence[tuple[str, str, Sequence[tuple[int, float]]]],
    *,
    title: str,
    height: int,
    reference: float | None = None,
    fill_to_zero: bool = False,
) -> str:
    """Several series ((label, colour, points)) on one pair of axes, as one `<svg>` element.

    The axes span every series; labelled series get a legend under the title.
    """
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'role="img" aria-label="{html.escape(title)}" font-family="sans-serif" font-size="12">',
        f'<text x="{_LEFT}" y="18" font-size="14">{html.escape(title)}</text>',
    ]
    drawn = [(label, color, points) for label, color, points in series if points]
    if not drawn:
        parts.append(f'<text x="{_LEFT}" y="{_TOP + 20}">no data</text></svg>')
        return "".join(parts)
    extra = [reference] if reference is not None else []
    values = [v for _, _, points in drawn for _, v in points]
    low = min([*values, *extra])
    high = max([*values, *extra])
    if fill_to_zero:
        low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        low, high = low - 1.0, high + 1.0
    first_ts = min(points[0][0] for _, _, points in drawn)
    last_ts = max(points[-1][0] for _, _, points in drawn)
    span = max(last_ts - first_ts, 1)

    def x(ts: int) -> float:
        return _LEFT + plot_w * (ts - first_ts) / span

    def y(value: float) -> float:
        return _TOP + plot_h * (high - value) / (high - low)

    for i in range(_GRID_LINES):
        value = high - (high - low) * i / (_GRID_LINES - 1)
        gy = y(value)
        parts.append(
            f'<line x1="{_LEFT}" y1="{gy:.1f}" x2="{WIDTH - _RIGHT}" y2="{gy:.1f}" '
            'stroke="#e4e4e4"/>'
            f'<text x="{_LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end" fill="#555">'
            f"{_label(value, high - low)}</text>"
        )
    lines = []
    for _, color, points in drawn:
        line = _columns([(x(ts), y(v)) for ts, v in points], plot_w)
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in line)
        if fill_to_zero:
            zero = y(0.0)
            area = f"{line[0][0]:.1f},{zero:.1f} {path} {line[-1][0]:.1f},{zero:.1f}"
            parts.append(f'<polygon points="{area}" fill="{color}" fill-opacity="0.3"/>')
        lines.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    if reference is not None:
        ry = y(reference)
        parts.append(
            f'<line x1="{_LEFT}" y1="{ry:.1f}" x2="{WIDTH - _RIGHT}" y2="{ry:.1f}" '
            'stroke="#888" stroke-dasharray="6 4"/>'
        )
    parts.extend(lines)
    legend_x = _LEFT + 8 * len(title) + 24
    for label, color, _ in drawn:
        if label:
            parts.append(
                f'<rect x="{legend_x}" y="9" width="12" height="3" fill="{color}"/>'
                f'<text x="{legend_x + 16}" y="18" fill="#333">{html.escape(label)}</text>'
            )
            legend_x += 16 + 7 * len(label) + 18
    parts.append(
        f'<text x="{_LEFT}" y="{height - 6}" fill="#555">{_date(first_ts)}</text>'
        f'<text x="{WIDTH - _RIGHT}" y="{height - 6}" text-anchor="end" fill="#555">'
        f"{_date(last_ts)}</text></svg>"
    )
    return "".join(parts)


def _columns(line: list[tuple[float, float]], plot_w: int) -> list[tuple[float, float]]:
    """At most two points per pixel column (its first extreme, then its other), in time order."""
    if len(line) <= 2 * plot_w:
        return line
    out: list[tuple[float, float]] = []
    column: list[tuple[float, float]] = []
    for point in line:
        if column and int(point[0]) != int(column[0][0]):
            out.extend(_extremes(column))
            column = []
        column.append(point)
    out.extend(_extremes(column))
    return out


def _extremes(column: list[tuple[float, float]]) -> list[tuple[float, float]]:
    top = min(column, key=lambda p: p[1])
    bottom = max(column, key=lambda p: p[1])
    if top is bottom:
        return [top]
    return [top, bottom] if column.index(top) < column.index(bottom) else [bottom, top]


def _label(value: float, span: float) -> str:
    decimals = 0 if span >= 50 else 2 if span >= 0.5 else 4
    return f"{value:,.{decimals}f}"


def _date(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).strftime("%Y-%m-%d %H:%M UTC")
