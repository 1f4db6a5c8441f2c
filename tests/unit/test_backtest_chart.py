"""The report's SVG charts: coordinates hand-computed from the layout, extremes kept."""

from __future__ import annotations

import re

from posbus.adapters.backtest_chart import svg_chart

# Layout: 1000 wide, plot from x=84 to x=988 (904 wide); height 300 puts the
# plot between y=30 (top) and y=274 (bottom, 244 high).


def _polyline(svg: str) -> list[tuple[float, float]]:
    match = re.search(r'<polyline points="([^"]+)"', svg)
    assert match is not None, svg
    return [(float(x), float(y)) for x, y in (p.split(",") for p in match.group(1).split())]


def test_the_first_and_last_points_sit_on_the_plots_corners() -> None:
    svg = svg_chart([(0, 0.0), (5, 25.0), (10, 100.0)], title="t", height=300, color="#000")
    assert _polyline(svg) == [(84.0, 274.0), (536.0, 213.0), (988.0, 30.0)]


def test_the_dashed_reference_line_is_at_its_value() -> None:
    svg = svg_chart([(0, 0.0), (10, 100.0)], title="t", height=300, color="#000", reference=50.0)
    assert '<line x1="84" y1="152.0" x2="988" y2="152.0" stroke="#888" stroke-dasharray' in svg


def test_a_filled_series_is_closed_along_zero() -> None:
    svg = svg_chart(
        [(0, -10.0), (10, -40.0)], title="t", height=300, color="#000", fill_to_zero=True
    )
    # low -40, high 0: zero is the top edge (y=30), -40 the bottom (y=274).
    assert '<polygon points="84.0,30.0 84.0,91.0 988.0,274.0 988.0,30.0"' in svg


def test_a_long_series_keeps_every_columns_extremes_and_stays_small() -> None:
    # 100,000 points: a slow ramp with one spike up and one dip down.
    points = [(ts, float(ts % 7)) for ts in range(100_000)]
    points[31_337] = (31_337, 1_000.0)
    points[77_777] = (77_777, -1_000.0)
    line = _polyline(svg_chart(points, title="t", height=300, color="#000"))
    assert len(line) <= 2 * 905  # pixel columns x=84..988, two points each
    ys = [y for _, y in line]
    assert min(ys) == 30.0  # the spike: the top of the plot
    assert max(ys) == 274.0  # the dip: the bottom
    assert [x for x, _ in line] == sorted(x for x, _ in line)


def test_the_title_is_escaped_and_an_empty_series_says_so() -> None:
    svg = svg_chart([], title="P&L <quote>", height=200, color="#000")
    assert "P&amp;L &lt;quote&gt;" in svg
    assert "no data" in svg
