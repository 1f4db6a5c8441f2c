"""How much of each risk limit is used, from what `risk.inspect` reports (pure).

The risk supervisor reports its metrics and its limits as decimal strings
(docs/commands.md, `risk.inspect`); this module pairs them: daily loss
against `daily_loss_limit`, drawdown against `max_drawdown`, leverage against
`max_leverage`, total exposure against `max_total_exposure` and each
correlation group's net exposure against `max_group_exposure`. A row's
`level` is "limit" at or over the limit, "warning" from `warning_fraction` of
it (the fraction at which the supervisor enters Warning), "ok" below and
"unknown" when the metric is missing. Exact Decimal arithmetic; strings out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from posbus.adapters.display_precision import Precision

_PERCENT = Decimal("0.1")
_RATIO = Decimal("0.0001")
_GROUP = "group_exposure:"


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """One limit: the figure it caps, the cap, the share used (percent) and a level."""

    name: str
    value: str | None
    limit: str
    used_pct: str | None
    level: str

    def as_dict(self) -> dict[str, str | None]:
        """The row as the page receives it."""
        return {
            "name": self.name,
            "value": self.value,
            "limit": self.limit,
            "used_pct": self.used_pct,
            "level": self.level,
        }


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _row(
    name: str, value: Decimal | None, limit: Decimal, warning: Decimal, shown: str | None
) -> LimitUsage:
    if value is None or limit <= 0:
        return LimitUsage(name, shown, format(limit, "f"), None, "unknown")
    used = value / limit
    level = "limit" if used >= 1 else "warning" if used >= warning else "ok"
    pct = (used * 100).quantize(_PERCENT, rounding=ROUND_HALF_EVEN)
    return LimitUsage(name, shown, format(limit, "f"), format(pct, "f"), level)


def _ratio(value: Decimal | None) -> str | None:
    return None if value is None else format(value.quantize(_RATIO, ROUND_HALF_EVEN), "f")


def limit_usage(risk: Mapping[str, Any], precision: Precision) -> list[LimitUsage]:
    """The rows for `risk` (a `risk.inspect` result); amounts shown at `precision`."""
    metrics: Mapping[str, Any] = risk.get("metrics") or {}
    limits: Mapping[str, Any] = risk.get("limits") or {}
    warning = _decimal(limits.get("warning_fraction")) or Decimal(1)

    def limit(key: str) -> Decimal | None:
        return _decimal(limits.get(key))

    rows: list[LimitUsage] = []
    daily_pnl = _decimal(metrics.get("daily_pnl"))
    loss = None if daily_pnl is None else max(Decimal(0), -daily_pnl)
    cap = limit("daily_loss_limit")
    if cap is not None:
        shown = None if loss is None else precision.money(str(loss))
        rows.append(_row("daily loss", loss, cap, warning, shown))
    for name, metric, key in (
        ("drawdown", "drawdown", "max_drawdown"),
        ("leverage", "leverage", "max_leverage"),
    ):
        cap = limit(key)
        if cap is not None:
            value = _decimal(metrics.get(metric))
            rows.append(_row(name, value, cap, warning, _ratio(value)))
    exposures = [("total exposure", "total_exposure", "max_total_exposure")]
    exposures += [
        (f"{key[len(_GROUP) :]} exposure", key, "max_group_exposure")
        for key in sorted(metrics)
        if key.startswith(_GROUP)
    ]
    for name, metric, key in exposures:
        cap = limit(key)
        if cap is not None:
            value = _decimal(metrics.get(metric))
            size = None if value is None else abs(value)
            shown = None if size is None else precision.money(str(size))
            rows.append(_row(name, size, cap, warning, shown))
    return rows
