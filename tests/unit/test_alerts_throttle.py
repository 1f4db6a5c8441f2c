"""Deduplication and rate limiting of alerts, on a fake clock (no sleeps)."""

from __future__ import annotations

from posbus.adapters.alerts.alert import Severity
from posbus.adapters.alerts.alerting import Alerting
from posbus.adapters.alerts.dedupe import Dedupe
from posbus.adapters.alerts.rate_limit import RateLimit
from posbus.adapters.alerts.rules import AlertRules
from posbus.adapters.alerts.sender import AlertSender
from posbus.adapters.alerts.sink import WebhookSink
from posbus.bus.messages import RiskEvent


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def halted(previous: str = "Normal") -> RiskEvent:
    return RiskEvent(
        event="state_change",
        state="Halted",
        previous_state=previous,
        reason="halted: operator",
        account=None,
        symbol=None,
        values={},
        ts_ns=1,
    )


def test_the_same_key_is_let_through_once_within_the_window() -> None:
    dedupe = Dedupe(60)
    assert dedupe.first("a", 0.0)
    assert not dedupe.first("a", 59.9)
    assert dedupe.first("b", 59.9)
    assert dedupe.first("a", 60.0)
    assert dedupe.suppressed == 1


def test_a_zero_window_lets_everything_through() -> None:
    dedupe = Dedupe(0)
    assert all(dedupe.first("a", 5.0) for _ in range(3))


def test_the_rate_limit_holds_back_the_excess_and_the_next_one_carries_the_count() -> None:
    limit = RateLimit(per_minute=2)
    assert [limit.admit(t) for t in (0.0, 1.0, 2.0, 3.0, 59.0)] == [0, 0, None, None, None]
    assert limit.suppressed == 3
    # The first admitted at 60 s (the 0 s one left the window) says 3 were held back.
    assert limit.admit(60.0) == 3
    assert limit.admit(61.0) == 0
    assert limit.admit(61.5) is None


def _sender(name: str, clock: FakeClock, *, min_severity: Severity = Severity.INFO) -> AlertSender:
    sink = WebhookSink(name, "http://127.0.0.1:9/", lambda a, s: {}, min_severity=min_severity)
    # Never started: what is published stays queued, which is what these tests read.
    return AlertSender(sink, queue_size=10, max_tries=1, max_per_minute=100, clock=clock)


def test_alerting_deduplicates_then_fans_out_to_the_sinks_that_want_the_severity() -> None:
    clock = FakeClock()
    everything = _sender("json#0", clock)
    serious = _sender("slack#1", clock, min_severity=Severity.CRITICAL)
    alerting = Alerting(
        AlertRules(refusals=3, window_s=10), Dedupe(300), [everything, serious], clock
    )
    warning = RiskEvent("state_change", "Warning", "Normal", "leverage", None, None, {}, 1)
    assert alerting.on_event(halted()) is not None
    assert alerting.on_event(halted()) is None  # duplicate within dedupe_s
    assert alerting.on_event(warning) is not None
    clock.now += 300
    assert alerting.on_event(halted()) is not None
    assert everything.counts()["queued"] == 3
    assert serious.counts()["queued"] == 2
    counts = alerting.counts()
    assert counts["raised"] == {"risk_state": 3} and counts["duplicates"] == 1


def test_a_sender_rate_limits_on_its_clock_and_counts_what_it_held_back() -> None:
    clock = FakeClock()
    sink = WebhookSink("slack#0", "http://127.0.0.1:9/", lambda a, s: {})
    sender = AlertSender(sink, queue_size=10, max_tries=1, max_per_minute=2, clock=clock)
    alert = AlertRules(refusals=1, window_s=1).evaluate(halted())
    assert alert is not None
    for _ in range(5):
        sender.publish(alert)
    assert sender.counts()["queued"] == 2 and sender.counts()["rate_limited"] == 3


def test_a_change_of_condition_is_news_however_soon_it_comes() -> None:
    """Halted, resumed, halted again within dedupe_s: both halts and both resumes are sent."""
    clock = FakeClock()
    sink = _sender("slack#0", clock)
    alerting = Alerting(AlertRules(refusals=3, window_s=10), Dedupe(300), [sink], clock)
    normal = RiskEvent("state_change", "Normal", "Halted", "resumed", None, None, {}, 2)
    sent = [alerting.on_event(e) for e in (halted(), normal, halted(), normal, normal)]
    assert [a.kind if a else None for a in sent] == [
        "risk_state",
        "resolved",
        "risk_state",
        "resolved",
        None,  # the same notice twice: a duplicate
    ]


def test_forgetting_one_key_leaves_its_longer_namesakes() -> None:
    dedupe = Dedupe(60)
    for key in ("worker_down|positions.1", "worker_down|positions.10", "risk_state|a|b"):
        dedupe.first(key, 0.0)
    dedupe.forget("worker_down|positions.1")
    dedupe.forget("risk_state|")
    assert dedupe.first("worker_down|positions.1", 1.0)
    assert dedupe.first("risk_state|a|b", 1.0)
    assert not dedupe.first("worker_down|positions.10", 1.0)
