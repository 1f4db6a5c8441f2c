"""The circuit breaker of an exchange gateway: closed / open / half-open.

Pure state machine: no threads, clocks or I/O; every method takes the current
time (int ns) and returns the state change it caused, if any, for the caller
to announce (a `risk_event` "breaker_state") and log.

    closed    --failure number `failure_threshold` in a row-->  open
    open      --`cool_off_ns` elapsed (seen by `poll`/`acquire`)-->  half_open
    half_open --the probe succeeds-->  closed
    half_open --the probe fails-->  open (the cool-off starts again)

While closed every call may go out; a success resets the failure count.
While open nothing goes out: the gateway rejects new orders at once instead
of piling requests onto an exchange that is failing. Half-open lets
`half_open_probes` calls through (`acquire`) to test the water; the others
are refused as if open. Only failures that say something about the exchange's
health count (network errors, timeouts, 5xx, throttling): an order the
exchange refuses for its own reasons is an answer, so the caller records it
as a success.

Not thread-safe: one owner (the gateway's I/O loop) calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class BreakerState(StrEnum):
    """Where the breaker stands; the values are the names used in risk events and logs."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """One change of breaker state, with the failure count and the reason behind it."""

    previous: BreakerState
    state: BreakerState
    reason: str
    failures: int
    ts_ns: int


class CircuitBreaker:
    """Counts consecutive failures and decides whether a call may go out.

    Args:
        failure_threshold: consecutive failures that open the breaker (>= 1).
        cool_off_ns: how long it stays open before letting a probe through (>= 0).
        half_open_probes: calls let through at a time while half-open (>= 1).
    """

    def __init__(self, failure_threshold: int, cool_off_ns: int, half_open_probes: int = 1) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, not {failure_threshold}")
        if cool_off_ns < 0:
            raise ValueError(f"cool_off_ns must be >= 0, not {cool_off_ns}")
        if half_open_probes < 1:
            raise ValueError(f"half_open_probes must be >= 1, not {half_open_probes}")
        self.failure_threshold = failure_threshold
        self.cool_off_ns = cool_off_ns
        self.half_open_probes = half_open_probes
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at_ns: int | None = None
        self._probes = 0
        self._last_reason = ""

    @property
    def state(self) -> BreakerState:
        """The state as of the last call (an elapsed cool-off shows after `poll`)."""
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted since the last success."""
        return self._failures

    def poll(self, now_ns: int) -> BreakerTransition | None:
        """Let time pass: open becomes half-open once the cool-off has elapsed."""
        if (
            self._state is BreakerState.OPEN
            and self._opened_at_ns is not None
            and now_ns - self._opened_at_ns >= self.cool_off_ns
        ):
            self._probes = 0
            return self._move(BreakerState.HALF_OPEN, "cool-off elapsed; probing", now_ns)
        return None

    def acquire(self, now_ns: int) -> tuple[bool, BreakerTransition | None]:
        """May a call go out now? Also returns the transition `poll` made, if any.

        Closed: yes. Open: no. Half-open: yes for up to `half_open_probes`
        calls whose outcome is not yet recorded, no for the rest.
        """
        transition = self.poll(now_ns)
        if self._state is BreakerState.CLOSED:
            return True, transition
        if self._state is BreakerState.HALF_OPEN and self._probes < self.half_open_probes:
            self._probes += 1
            return True, transition
        return False, transition

    def record_success(self, now_ns: int) -> BreakerTransition | None:
        """A call got an answer: reset the count; a successful probe closes the breaker."""
        self._failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._probes = 0
            self._opened_at_ns = None
            return self._move(BreakerState.CLOSED, "probe succeeded", now_ns)
        return None

    def record_failure(self, now_ns: int, reason: str) -> BreakerTransition | None:
        """A call failed for a reason that says the exchange is unwell.

        Closed: count it, and open at the threshold. Half-open: the probe
        failed, open again (a new cool-off). Open: a straggler that left
        before the breaker opened; counted, nothing changes.
        """
        self._failures += 1
        self._last_reason = reason
        if self._state is BreakerState.HALF_OPEN:
            self._opened_at_ns = now_ns
            self._probes = 0
            return self._move(BreakerState.OPEN, f"probe failed: {reason}", now_ns)
        if self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._opened_at_ns = now_ns
            return self._move(
                BreakerState.OPEN, f"{self._failures} failures in a row; last: {reason}", now_ns
            )
        return None

    def retry_in_ns(self, now_ns: int) -> int:
        """How long until an open breaker half-opens (0 when it is not open)."""
        if self._state is not BreakerState.OPEN or self._opened_at_ns is None:
            return 0
        return max(0, self._opened_at_ns + self.cool_off_ns - now_ns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view for `inspect`."""
        return {
            "state": self._state.value,
            "failures": self._failures,
            "failure_threshold": self.failure_threshold,
            "cool_off_s": self.cool_off_ns / 1e9,
            "opened_at_ns": self._opened_at_ns,
            "last_failure": self._last_reason,
        }

    def _move(self, state: BreakerState, reason: str, now_ns: int) -> BreakerTransition:
        previous, self._state = self._state, state
        return BreakerTransition(previous, state, reason, self._failures, now_ns)
