"""Clocks: the only place posbus reads time, so backtests can replace it.

Both satisfy the domain's `Clock` port (posbus.actors.model.clock). Live code
uses WallClock; backtests and tests use ManualClock, which only moves when
told to. Both return integer nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import threading
import time


class WallClock:
    """The system clock, made monotonic (a step back of the wall clock never shows)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def now_ns(self) -> int:
        now = time.time_ns()
        with self._lock:
            self._last = max(self._last, now)
            return self._last


class ManualClock:
    """A clock that moves only through `set` and `advance`; thread-safe."""

    def __init__(self, start_ns: int = 0) -> None:
        self._lock = threading.Lock()
        self._now = start_ns

    def now_ns(self) -> int:
        with self._lock:
            return self._now

    def advance(self, delta_ns: int) -> int:
        """Move forward by `delta_ns` (>= 0) and return the new time."""
        if delta_ns < 0:
            raise ValueError("a clock never goes back")
        with self._lock:
            self._now += delta_ns
            return self._now

    def set(self, now_ns: int) -> None:
        """Jump to `now_ns`, which must not be earlier than the current time."""
        with self._lock:
            if now_ns < self._now:
                raise ValueError("a clock never goes back")
            self._now = now_ns
