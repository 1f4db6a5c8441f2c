"""The gateway's circuit breaker: closed -> open -> half-open -> closed, with the time passed in."""

from __future__ import annotations

import pytest

from posbus.adapters.exchange.circuit_breaker import BreakerState, CircuitBreaker

SECOND = 1_000_000_000


def _opened(threshold: int = 3, cool_off_s: int = 30) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, cool_off_s * SECOND)
    for i in range(threshold):
        breaker.record_failure(i, "503")
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_breaker_stays_closed_below_the_threshold() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cool_off_ns=30 * SECOND)
    assert breaker.record_failure(1, "timeout") is None
    assert breaker.record_failure(2, "timeout") is None
    assert breaker.state is BreakerState.CLOSED
    assert breaker.acquire(3) == (True, None)


def test_breaker_opens_at_the_threshold_with_the_last_reason() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cool_off_ns=30 * SECOND)
    breaker.record_failure(1, "timeout")
    breaker.record_failure(2, "timeout")
    transition = breaker.record_failure(3, "503 maintenance")
    assert transition is not None
    assert (transition.previous, transition.state) == (BreakerState.CLOSED, BreakerState.OPEN)
    assert transition.failures == 3
    assert transition.ts_ns == 3
    assert "503 maintenance" in transition.reason


def test_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cool_off_ns=30 * SECOND)
    breaker.record_failure(1, "timeout")
    breaker.record_failure(2, "timeout")
    assert breaker.record_success(3) is None
    # Two more failures make 2 in a row, not 4: still closed.
    breaker.record_failure(4, "timeout")
    breaker.record_failure(5, "timeout")
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 2


def test_open_breaker_refuses_calls_until_the_cool_off_elapses() -> None:
    breaker = _opened(threshold=3, cool_off_s=30)  # opened at t=2 ns
    allowed, transition = breaker.acquire(2 + 30 * SECOND - 1)
    assert (allowed, transition) == (False, None)
    assert breaker.retry_in_ns(2 + 30 * SECOND - 1) == 1


def test_breaker_half_opens_after_the_cool_off_and_lets_one_probe_through() -> None:
    breaker = _opened(threshold=3, cool_off_s=30)  # opened at t=2 ns
    allowed, transition = breaker.acquire(2 + 30 * SECOND)
    assert allowed is True
    assert transition is not None
    assert (transition.previous, transition.state) == (BreakerState.OPEN, BreakerState.HALF_OPEN)
    # The probe is out: a second call is refused until its outcome is recorded.
    assert breaker.acquire(2 + 30 * SECOND + 1) == (False, None)


def test_successful_probe_closes_the_breaker() -> None:
    breaker = _opened()
    breaker.acquire(31 * SECOND)
    transition = breaker.record_success(31 * SECOND + 5)
    assert transition is not None
    assert (transition.previous, transition.state) == (
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    )
    assert breaker.failures == 0
    assert breaker.acquire(31 * SECOND + 6) == (True, None)


def test_failed_probe_reopens_and_restarts_the_cool_off() -> None:
    breaker = _opened(threshold=3, cool_off_s=30)
    breaker.acquire(40 * SECOND)
    transition = breaker.record_failure(40 * SECOND, "still down")
    assert transition is not None
    assert (transition.previous, transition.state) == (BreakerState.HALF_OPEN, BreakerState.OPEN)
    # The new cool-off counts from the failed probe (t=40 s), not from the first opening.
    assert breaker.acquire(69 * SECOND)[0] is False
    assert breaker.acquire(70 * SECOND)[0] is True


def test_failure_while_open_changes_nothing() -> None:
    breaker = _opened(threshold=3, cool_off_s=30)  # opened at t=2 ns
    assert breaker.record_failure(5, "straggler") is None
    assert breaker.state is BreakerState.OPEN
    # The cool-off still counts from the opening at t=2 ns.
    assert breaker.retry_in_ns(2 + 10 * SECOND) == 20 * SECOND


def test_poll_reports_the_half_open_transition_once() -> None:
    breaker = _opened(threshold=1, cool_off_s=1)  # opened at t=0
    first = breaker.poll(SECOND)
    assert first is not None
    assert first.state is BreakerState.HALF_OPEN
    assert breaker.poll(2 * SECOND) is None


def test_inspect_view_names_state_and_counts() -> None:
    breaker = _opened(threshold=2, cool_off_s=5)
    view = breaker.to_dict()
    assert view["state"] == "open"
    assert view["failures"] == 2
    assert view["failure_threshold"] == 2
    assert view["cool_off_s"] == 5.0
    assert view["last_failure"] == "503"


@pytest.mark.parametrize(("threshold", "cool_off_ns", "probes"), [(0, 1, 1), (1, -1, 1), (1, 1, 0)])
def test_invalid_settings_are_refused(threshold: int, cool_off_ns: int, probes: int) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, cool_off_ns, probes)
