"""The sweep's table and heat map, on hand-made outcomes."""

from __future__ import annotations

import re

from posbus.adapters.backtest_sweep import RunOutcome, rank
from posbus.adapters.backtest_sweep_report import document, heat_map, table


def outcome(index: int, window: str, z: str, sharpe: float | None) -> RunOutcome:
    params = {"window": window, "entry_z": z}
    if sharpe is None:
        return RunOutcome(index, params, 100 + index, error="BacktestError: boom")
    summary = {"sharpe": sharpe, "trades": 3, "final_equity": "101.5"}
    return RunOutcome(index, params, 100 + index, summary=summary)


OUTCOMES = [
    outcome(0, "24", "1.5", 0.5),
    outcome(1, "24", "2", None),
    outcome(2, "48", "1.5", 2.0),
    outcome(3, "48", "2", -1.0),
]


def test_the_table_is_ranked_with_the_swept_params_seed_metrics_and_error() -> None:
    header, rows = table(rank(OUTCOMES, "sharpe"), ["window", "entry_z"], "sharpe")
    assert header[:5] == ["rank", "window", "entry_z", "seed", "sharpe"]
    assert header[-1] == "error"
    assert [row[:5] for row in rows] == [
        ["1", "48", "1.5", "102", "2.0"],
        ["2", "24", "1.5", "100", "0.5"],
        ["3", "48", "2", "103", "-1.0"],
        ["4", "24", "2", "101", ""],
    ]
    assert rows[3][-1] == "BacktestError: boom"
    # total_return is not in these summaries: null, not a crash.
    assert rows[0][header.index("total_return")] == "null"


def test_the_document_keeps_grid_order_and_gives_each_run_its_rank() -> None:
    ranked = rank(OUTCOMES, "sharpe")
    doc = document(
        OUTCOMES, ranked, strategy="s", data=["d.csv"], swept=["window"], rank_by="sharpe",
        base_seed=7,
    )  # fmt: skip
    assert [run["index"] for run in doc["runs"]] == [0, 1, 2, 3]
    assert [run["rank"] for run in doc["runs"]] == [2, 4, 1, 3]
    assert doc["ranking"] == [2, 0, 3, 1]
    assert doc["runs_failed"] == 1
    assert doc["runs"][1]["error"] == "BacktestError: boom"
    assert "summary" not in doc["runs"][1]


def test_the_heat_map_has_one_cell_per_pair_coloured_by_rank_and_na_when_failed() -> None:
    svg = heat_map(OUTCOMES, rank(OUTCOMES, "sharpe"), ["window", "entry_z"], "sharpe")
    cells = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"/><text [^>]*>([^<]+)</text>', svg)
    # Rows window 24, 48; columns entry_z 1.5, 2.
    assert [text for _, text in cells] == ["0.5", "n/a", "2", "-1"]
    colours = [fill for fill, _ in cells]
    assert colours[1] == "#dddddd"
    # Three values: the worst red, the middle pale, the best green.
    assert colours[3] == "#e67878"
    assert colours[0] == "#e6c878"
    assert colours[2] == "#50c878"
