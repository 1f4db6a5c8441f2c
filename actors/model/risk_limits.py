"""The risk limits: one typed, validated set of numbers the risk engine enforces.

The integrator loads them from TOML; `from_dict` accepts the plain values a TOML
or msgpack decoder produces. Every money or ratio field is a `Decimal`; never
compute with floats here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

_DECIMAL_FIELDS = (
    "daily_loss_limit",
    "max_drawdown",
    "max_leverage",
    "warning_fraction",
    "warning_leverage_factor",
    "max_group_exposure",
    "max_total_exposure",
    "max_order_notional",
)
_INT_FIELDS = (
    "max_orders_per_second",
    "cooldown_s",
    "stale_after_s",
    "trading_day_offset_s",
)
_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits of one risk engine, immutable and validated on construction.

    - `daily_loss_limit`: quote amount; reaching a loss of this much since the
      start of the trading day forces CoolDown.
    - `max_drawdown`: fraction of peak equity (0.10 = 10 %); reaching it forces
      CoolDown.
    - `max_leverage`: cap on gross notional / equity for new risk.
    - `warning_fraction`: Warning is entered when daily loss, drawdown or
      leverage reaches this fraction of its limit.
    - `warning_leverage_factor`: in Warning the leverage cap is multiplied by it.
    - `max_group_exposure` / `max_total_exposure`: caps on |sum qty * mark *
      correlation| per correlation group and over all groups (quote amounts).
    - `max_order_notional`: cap on qty * price of one order (quote amount).
    - `max_orders_per_second`: approved orders in any sliding 1 s window.
    - `cooldown_s`: how long CoolDown (closeout only) lasts.
    - `stale_after_s`: a mark older than this (relative to the order) is stale.
    - `trading_day_offset_s`: the trading day starts at UTC midnight + offset.

    Raises `ValueError` naming the field when a value is out of range.
    """

    daily_loss_limit: Decimal
    max_drawdown: Decimal
    max_leverage: Decimal
    warning_fraction: Decimal
    warning_leverage_factor: Decimal
    max_group_exposure: Decimal
    max_total_exposure: Decimal
    max_order_notional: Decimal
    max_orders_per_second: int
    cooldown_s: int
    stale_after_s: int
    trading_day_offset_s: int = 0

    def __post_init__(self) -> None:
        for name in _DECIMAL_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"risk limit {name} must be a finite Decimal, got {value!r}")
            if value <= 0:
                raise ValueError(f"risk limit {name} must be positive, got {value}")
        for name in ("max_drawdown", "warning_fraction", "warning_leverage_factor"):
            if getattr(self, name) > 1:
                raise ValueError(f"risk limit {name} is a fraction and must be <= 1")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            # bool is an int subclass; a TOML `true` here is a typo, not a number.
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"risk limit {name} must be an int, got {value!r}")
        for name in ("max_orders_per_second", "cooldown_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"risk limit {name} must be >= 1")
        if self.stale_after_s < 0:
            raise ValueError("risk limit stale_after_s must be >= 0")
        if not -_SECONDS_PER_DAY < self.trading_day_offset_s < _SECONDS_PER_DAY:
            raise ValueError("risk limit trading_day_offset_s must be within one day")

    def to_dict(self) -> dict[str, str | int]:
        """The limits as plain values (decimals as exact strings), for snapshots."""
        out: dict[str, str | int] = {}
        for name in _DECIMAL_FIELDS:
            out[name] = str(getattr(self, name))
        for name in _INT_FIELDS:
            out[name] = int(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskLimits:
        """Build limits from plain values (TOML table, snapshot).

        Decimal fields accept `str`, `int`, `Decimal` or `float`; a float goes
        through its shortest repr (`0.1` -> `Decimal("0.1")`), which is what a
        TOML author typed. Unknown keys are refused so a typo cannot silently
        leave a limit at a default. Raises `ValueError`.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown risk limit keys: {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name in _DECIMAL_FIELDS:
            if name not in data:
                raise ValueError(f"missing risk limit {name}")
            kwargs[name] = _to_decimal(name, data[name])
        for name in _INT_FIELDS:
            if name in data:
                kwargs[name] = data[name]
            elif name != "trading_day_offset_s":
                raise ValueError(f"missing risk limit {name}")
        return cls(**kwargs)


def _to_decimal(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError(f"risk limit {name} must be a number or a decimal string, got {value!r}")
    try:
        return Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"risk limit {name} is not a decimal: {value!r}") from exc
