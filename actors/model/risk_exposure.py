"""What the risk engine knows of one position: its size, mark, P&L, correlation group
and working orders."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_ZERO = Decimal(0)
_ONE = Decimal(1)
_MINUS_ONE = Decimal(-1)


@dataclass(frozen=True, slots=True, init=False)
class PositionExposure:
    """The risk view of one account+symbol position, immutable.

    `qty` is signed (long > 0, short < 0). `mark` is the latest mark price and
    `mark_ts_ns` when it was observed; both are None when no mark is known yet
    (the engine then treats the position as the worst case). `realized_pnl`
    already includes fees; `unrealized_pnl` is against `mark`. `correlation` is
    the correlation of the symbol to the reference asset, in [-1, 1], and
    `group` names its correlation group. A flat position (qty == 0) still
    carries its realized P&L into equity.

    `working_buy_qty` / `working_sell_qty` are the remaining quantities of the
    position's working orders on each side, and `working_buy_notional` /
    `working_sell_notional` those quantities valued at their limit prices (a
    market order at the position's mark when it reported): what may still
    trade. They are zero (the default) when no order works.

    Raises `ValueError` on non-finite numbers, a negative working figure, a
    non-positive mark, a mark without its timestamp (or the reverse) or a
    correlation outside [-1, 1].
    """

    account: str
    symbol: str
    qty: Decimal
    mark: Decimal | None
    mark_ts_ns: int | None
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    group: str
    correlation: Decimal
    working_buy_qty: Decimal
    working_buy_notional: Decimal
    working_sell_qty: Decimal
    working_sell_notional: Decimal

    def __init__(  # noqa: PLR0917 -- the dataclass's own positional signature
        self,
        account: str,
        symbol: str,
        qty: Decimal,
        mark: Decimal | None,
        mark_ts_ns: int | None,
        realized_pnl: Decimal,
        unrealized_pnl: Decimal,
        group: str,
        correlation: Decimal,
        working_buy_qty: Decimal = _ZERO,
        working_buy_notional: Decimal = _ZERO,
        working_sell_qty: Decimal = _ZERO,
        working_sell_notional: Decimal = _ZERO,
    ) -> None:
        # Written out (not generated) because every position builds one per mark
        # change: the fields are written through their slots' own setters (the
        # frozen dataclass's object.__setattr__ costs half as much again), the
        # common, valid case is checked in one expression, and the failing field
        # is looked for only when it fails.
        _set_account(self, account)
        _set_symbol(self, symbol)
        _set_qty(self, qty)
        _set_mark(self, mark)
        _set_mark_ts_ns(self, mark_ts_ns)
        _set_realized_pnl(self, realized_pnl)
        _set_unrealized_pnl(self, unrealized_pnl)
        _set_group(self, group)
        _set_correlation(self, correlation)
        _set_working_buy_qty(self, working_buy_qty)
        _set_working_buy_notional(self, working_buy_notional)
        _set_working_sell_qty(self, working_sell_qty)
        _set_working_sell_notional(self, working_sell_notional)
        if not (
            isinstance(qty, Decimal)
            and qty.is_finite()
            and isinstance(realized_pnl, Decimal)
            and realized_pnl.is_finite()
            and isinstance(unrealized_pnl, Decimal)
            and unrealized_pnl.is_finite()
            and isinstance(correlation, Decimal)
            and correlation.is_finite()
            and (mark is None) == (mark_ts_ns is None)
            # Against Decimal constants: an int or a negation costs a conversion each time.
            and (mark is None or (mark.is_finite() and mark > _ZERO))
            and _MINUS_ONE <= correlation <= _ONE
            # No working order (the common case): the four shared zero constants.
            and (
                (
                    working_buy_qty is _ZERO
                    and working_buy_notional is _ZERO
                    and working_sell_qty is _ZERO
                    and working_sell_notional is _ZERO
                )
                or self._working_valid()
            )
        ):
            self._refuse()

    def _working_valid(self) -> bool:
        return all(
            isinstance(value, Decimal) and value.is_finite() and value >= _ZERO
            for value in self._working()
        )

    def _working(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        return (
            self.working_buy_qty,
            self.working_buy_notional,
            self.working_sell_qty,
            self.working_sell_notional,
        )

    @property
    def has_working(self) -> bool:
        """Some order of this position works (a working notional is not zero)."""
        return bool(self.working_buy_notional or self.working_sell_notional)

    def _refuse(self) -> None:
        """Raise the ValueError naming the first invalid field."""
        where = f"exposure {self.account}/{self.symbol}"
        for name in ("qty", "realized_pnl", "unrealized_pnl", "correlation"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"{where}: {name} must be a finite Decimal")
        if not self._working_valid():
            raise ValueError(f"{where}: working quantities and notionals must be finite and >= 0")
        mark = self.mark
        if (mark is None) != (self.mark_ts_ns is None):
            raise ValueError(f"{where}: mark and mark_ts_ns must be both set or both None")
        if mark is not None and (not mark.is_finite() or mark <= 0):
            raise ValueError(f"{where}: mark must be a positive finite number")
        raise ValueError(f"{where}: correlation must be within [-1, 1]")

    def to_dict(self) -> dict[str, Any]:
        """The exposure as plain values (decimals as exact strings), for snapshots."""
        return {
            "account": self.account,
            "symbol": self.symbol,
            "qty": str(self.qty),
            "mark": None if self.mark is None else str(self.mark),
            "mark_ts_ns": self.mark_ts_ns,
            "realized_pnl": str(self.realized_pnl),
            "unrealized_pnl": str(self.unrealized_pnl),
            "group": self.group,
            "correlation": str(self.correlation),
            "working_buy_qty": str(self.working_buy_qty),
            "working_buy_notional": str(self.working_buy_notional),
            "working_sell_qty": str(self.working_sell_qty),
            "working_sell_notional": str(self.working_sell_notional),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PositionExposure:
        """Rebuild an exposure written by `to_dict`; raises `ValueError` or `KeyError`.

        The working figures default to zero (snapshots written before they existed).
        """
        mark = data["mark"]
        return cls(
            account=str(data["account"]),
            symbol=str(data["symbol"]),
            qty=Decimal(data["qty"]),
            mark=None if mark is None else Decimal(mark),
            mark_ts_ns=None if data["mark_ts_ns"] is None else int(data["mark_ts_ns"]),
            realized_pnl=Decimal(data["realized_pnl"]),
            unrealized_pnl=Decimal(data["unrealized_pnl"]),
            group=str(data["group"]),
            correlation=Decimal(data["correlation"]),
            working_buy_qty=_decimal_or_zero(data, "working_buy_qty"),
            working_buy_notional=_decimal_or_zero(data, "working_buy_notional"),
            working_sell_qty=_decimal_or_zero(data, "working_sell_qty"),
            working_sell_notional=_decimal_or_zero(data, "working_sell_notional"),
        )


def _decimal_or_zero(data: dict[str, Any], key: str) -> Decimal:
    raw = data.get(key)
    return _ZERO if raw is None else Decimal(raw)


# The slots' setters, which `__init__` writes the fields with (they bypass the
# frozen __setattr__, as object.__setattr__ does).
_slots = vars(PositionExposure)
_set_account = _slots["account"].__set__
_set_symbol = _slots["symbol"].__set__
_set_qty = _slots["qty"].__set__
_set_mark = _slots["mark"].__set__
_set_mark_ts_ns = _slots["mark_ts_ns"].__set__
_set_realized_pnl = _slots["realized_pnl"].__set__
_set_unrealized_pnl = _slots["unrealized_pnl"].__set__
_set_group = _slots["group"].__set__
_set_correlation = _slots["correlation"].__set__
_set_working_buy_qty = _slots["working_buy_qty"].__set__
_set_working_buy_notional = _slots["working_buy_notional"].__set__
_set_working_sell_qty = _slots["working_sell_qty"].__set__
_set_working_sell_notional = _slots["working_sell_notional"].__set__
del _slots
