"""SymbolInfo: what risk needs to know of a symbol besides its prices."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """Risk metadata of a symbol: its correlation group and correlation to the reference."""

    group: str = "default"
    correlation: Decimal = Decimal(1)
