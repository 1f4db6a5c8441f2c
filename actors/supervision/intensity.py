"""Restart intensity: at most N restarts in a sliding window of T seconds (OTP).

Pure bookkeeping: the caller passes the current monotonic time in seconds.
"""

from __future__ import annotations

from collections import deque


class RestartIntensity:
    """Sliding-window restart counter of one supervisor.

    A restart at time `t` counts while `now - t < period_s`. `record(now)`
    adds a restart and says whether the supervisor is still within its
    intensity (at most `max_restarts` counted restarts); when it is not, the
    supervisor gives up and escalates.
    """

    def __init__(self, max_restarts: int, period_s: float) -> None:
        if max_restarts < 0:
            msg = f"max_restarts must be >= 0, got {max_restarts}"
            raise ValueError(msg)
        if period_s <= 0:
            msg = f"period_s must be > 0, got {period_s}"
            raise ValueError(msg)
        self.max_restarts = max_restarts
        self.period_s = period_s
        self._times: deque[float] = deque()

    def recent(self, now: float) -> int:
        """Restarts that still count at `now`."""
        self._expire(now)
        return len(self._times)

    def record(self, now: float) -> bool:
        """Count a restart at `now`; False when that exceeds the intensity."""
        self._expire(now)
        self._times.append(now)
        return len(self._times) <= self.max_restarts

    def _expire(self, now: float) -> None:
        while self._times and now - self._times[0] >= self.period_s:
            self._times.popleft()
