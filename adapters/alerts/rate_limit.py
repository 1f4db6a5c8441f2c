"""Rate limiting of one sink: at most `per_minute` alerts in any 60 seconds.

An alert over the limit is not sent but counted; the next alert let through
carries that count so the channel says how many it missed. Pure bookkeeping
over the times it is given (a monotonic clock's seconds); not thread-safe.
"""

from __future__ import annotations

from collections import deque

WINDOW_S = 60.0


class RateLimit:
    """A sliding one-minute window of the alerts let through."""

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError(f"max_per_minute must be >= 1, got {per_minute}")
        self._per_minute = per_minute
        self._sent: deque[float] = deque()
        self._pending = 0
        self.suppressed = 0

    def admit(self, now: float) -> int | None:
        """None when over the limit (counted); else how many were suppressed since the last one."""
        sent = self._sent
        while sent and sent[0] <= now - WINDOW_S:
            sent.popleft()
        if len(sent) >= self._per_minute:
            self._pending += 1
            self.suppressed += 1
            return None
        sent.append(now)
        missed, self._pending = self._pending, 0
        return missed
