"""Delay before a restart: exponential growth with full jitter, within [min_s, max_s].

Pure arithmetic: the caller passes the attempt number and its own
`random.Random`, so tests and backtests are deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# 2**63 seconds is already far beyond any max_s; clamping the exponent keeps
# the float arithmetic finite for absurd attempt numbers.
_MAX_EXPONENT = 63


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delay policy.

    Attempt `n` (0 for the first restart in the current intensity window)
    waits a uniformly random time in `[min_s, ceiling(n)]`, where
    `ceiling(n) = min(max_s, min_s * 2 ** (n + 1))`: the upper bound doubles
    with each attempt until it reaches `max_s` ("full jitter", so children
    that failed together do not all come back at the same instant).
    `Backoff(0, 0)` restarts immediately.
    """

    min_s: float = 0.1
    max_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_s <= self.max_s:
            msg = f"backoff needs 0 <= min_s <= max_s, got min_s={self.min_s} max_s={self.max_s}"
            raise ValueError(msg)

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the delay of attempt `attempt` (0-based)."""
        if attempt < 0:
            msg = f"attempt must be >= 0, got {attempt}"
            raise ValueError(msg)
        return min(self.max_s, self.min_s * 2.0 ** min(attempt + 1, _MAX_EXPONENT))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before restart attempt `attempt`, drawn from `rng`."""
        ceiling = self.ceiling(attempt)
        if ceiling <= self.min_s:
            return self.min_s
        return rng.uniform(self.min_s, ceiling)
