"""The clock port: how actors read the time, so backtests and tests can replace it.

A protocol only: the implementations (WallClock, ManualClock) live in
posbus.adapters.clock, and a backtest brings its own replay clock. This module
must never read the time itself.
"""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    """A source of the current time in ns since the Unix epoch."""

    def now_ns(self) -> int:
        """The current time, never decreasing."""
        ...
