"""Each risk limit's use, from `risk.inspect` metrics and limits: a share and a level."""

from __future__ import annotations

from typing import Any

from posbus.adapters.display_precision import Precision
from posbus.adapters.web.risk_usage import limit_usage

LIMITS = {
    "daily_loss_limit": "2000",
    "max_drawdown": "0.05",
    "max_leverage": "3",
    "max_total_exposure": "250000",
    "max_group_exposure": "150000",
    "warning_fraction": "0.8",
}


def _rows(metrics: dict[str, str]) -> dict[str, dict[str, Any]]:
    risk = {"metrics": metrics, "limits": LIMITS}
    return {row.name: row.as_dict() for row in limit_usage(risk, Precision(2, 4))}


def test_a_loss_uses_the_daily_loss_limit_and_a_profit_uses_none() -> None:
    assert _rows({"daily_pnl": "-500.123"})["daily loss"] == {
        "name": "daily loss",
        "value": "500.12",
        "limit": "2000",
        "used_pct": "25.0",
        "level": "ok",
    }
    assert _rows({"daily_pnl": "99.26"})["daily loss"]["used_pct"] == "0.0"


def test_the_level_is_warning_from_the_warning_fraction_and_limit_at_the_limit() -> None:
    rows = _rows({"drawdown": "0.04", "leverage": "3.5", "daily_pnl": "-1599.99"})
    assert (rows["drawdown"]["used_pct"], rows["drawdown"]["level"]) == ("80.0", "warning")
    assert (rows["leverage"]["used_pct"], rows["leverage"]["level"]) == ("116.7", "limit")
    assert rows["daily loss"]["level"] == "ok"


def test_exposures_count_by_size_whatever_their_sign() -> None:
    rows = _rows({"total_exposure": "4612.808", "group_exposure:alts": "-407.169"})
    assert rows["total exposure"]["value"] == "4612.81"
    assert rows["alts exposure"]["value"] == "407.17"
    assert rows["alts exposure"]["limit"] == "150000"
    assert rows["alts exposure"]["used_pct"] == "0.3"


def test_a_missing_metric_is_unknown_not_zero() -> None:
    rows = _rows({})
    assert rows["leverage"]["used_pct"] is None
    assert rows["leverage"]["level"] == "unknown"
