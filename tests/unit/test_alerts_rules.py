"""Which risk events alert, at which severity: the pure rules of adapters/alerts/rules.py."""

from __future__ import annotations

import pytest

from posbus.adapters.alerts.alert import Severity
from posbus.adapters.alerts.rules import NS_PER_S, AlertRules
from posbus.bus.messages import RiskEvent


def event(
    kind: str = "state_change",
    state: str = "Halted",
    previous: str | None = "Normal",
    reason: str = "halted: operator",
    account: str | None = None,
    ts_ns: int = 1_700_000_000 * NS_PER_S,
) -> RiskEvent:
    return RiskEvent(
        event=kind,
        state=state,
        previous_state=previous,
        reason=reason,
        account=account,
        symbol=None,
        values={"equity": "99000"},
        ts_ns=ts_ns,
    )


def rules(count: int = 3, window_s: float = 10.0) -> AlertRules:
    return AlertRules(refusals=count, window_s=window_s)


@pytest.mark.parametrize(
    ("state", "severity"),
    [("Warning", Severity.WARNING), ("CoolDown", Severity.ERROR), ("Halted", Severity.CRITICAL)],
)
def test_a_change_to_a_restricted_state_alerts_at_its_severity(
    state: str, severity: Severity
) -> None:
    alert = rules().evaluate(event(state=state, reason="why it changed"))
    assert alert is not None
    assert (alert.kind, alert.severity, alert.resolved) == ("risk_state", severity, False)
    assert state in alert.summary and "why it changed" in alert.summary


def test_the_return_to_normal_is_a_resolved_notice() -> None:
    alert = rules().evaluate(event(state="Normal", previous="Halted", reason="resumed"))
    assert alert is not None
    assert alert.resolved and alert.severity is Severity.INFO
    assert "was Halted" in alert.summary


def test_normal_without_a_previous_restriction_is_not_news() -> None:
    assert rules().evaluate(event(state="Normal", previous=None)) is None


def test_a_halt_for_a_corrupt_journal_is_its_own_critical_alert_naming_the_stream() -> None:
    reason = "halted: journal corrupt: position/default/BTC/USDT seq 12: checksum mismatch"
    alert = rules().evaluate(event(state="Halted", reason=reason))
    assert alert is not None
    assert (alert.kind, alert.severity) == ("journal_corrupt", Severity.CRITICAL)
    assert "position/default/BTC/USDT" in alert.summary


def test_refusals_alert_once_per_window_when_the_rate_is_reached_with_the_count() -> None:
    r = rules(count=3, window_s=10)
    t0 = 1_700_000_000 * NS_PER_S
    refused = [
        r.evaluate(event("order_rejected", "Normal", None, f"max_order_notional: {i}", "acc", t))
        for i, t in enumerate(t0 + k * NS_PER_S for k in range(6))
    ]
    fired = [a for a in refused if a is not None]
    assert [a.count for a in fired] == [3]
    assert refused[2] is fired[0]
    assert fired[0].kind == "order_refusals" and "3 orders refused" in fired[0].summary
    # A window after the alert: one more alert, counting the refusals of the 10 s before it
    # (those at 3, 4, 5 and 12 s).
    later = r.evaluate(event("order_rejected", "Normal", None, "x", "acc", t0 + 12 * NS_PER_S))
    assert later is not None and later.count == 4


def test_refusals_spread_wider_than_the_window_never_alert() -> None:
    r = rules(count=3, window_s=10)
    t0 = 1_700_000_000 * NS_PER_S
    for k in range(10):
        ts = t0 + k * 6 * NS_PER_S
        assert r.evaluate(event("order_rejected", "Normal", None, "x", "acc", ts)) is None


def test_refusals_are_counted_per_account() -> None:
    r = rules(count=2, window_s=10)
    t0 = 1_700_000_000 * NS_PER_S
    assert r.evaluate(event("order_rejected", "Normal", None, "x", "a", t0)) is None
    assert r.evaluate(event("order_rejected", "Normal", None, "x", "b", t0)) is None
    alert = r.evaluate(event("order_rejected", "Normal", None, "x", "a", t0 + 1))
    assert alert is not None and alert.key == "order_refusals|a"


@pytest.mark.parametrize(
    ("state", "severity"),
    [
        ("halted", Severity.CRITICAL),
        ("mismatch", Severity.ERROR),
        ("clean", None),
        ("repaired", None),
    ],
)
def test_reconciliation_alerts_on_a_mismatch_only(state: str, severity: Severity | None) -> None:
    alert = rules().evaluate(event("reconciliation", state, None, "startup: books", "acc"))
    assert (alert.severity if alert else None) is severity


def test_an_open_breaker_alerts_and_its_closing_resolves() -> None:
    r = rules()
    opened = r.evaluate(event("breaker_state", "open", "closed", "5 failures", "acc"))
    assert opened is not None and (opened.kind, opened.severity) == ("breaker_open", Severity.ERROR)
    assert r.evaluate(event("breaker_state", "half_open", "open", "probe", "acc")) is None
    closed = r.evaluate(event("breaker_state", "closed", "half_open", "probe ok", "acc"))
    assert closed is not None and closed.resolved


def test_a_worker_gone_silent_is_critical_and_a_disconnected_one_a_warning() -> None:
    r = rules()
    silent = r.evaluate(
        event("worker_down", "down", "up", "worker risk (services risk) silent for 2.1 s")
    )
    gone = r.evaluate(
        event("worker_down", "down", "up", "worker positions.0 (services positions.0) disconnected")
    )
    assert silent is not None and silent.severity is Severity.CRITICAL
    assert silent.key == "worker_down|risk"
    assert gone is not None and gone.severity is Severity.WARNING
    back = r.evaluate(event("worker_up", "up", "down", "worker risk up: services risk"))
    assert back is not None and back.resolved and back.key == "worker_up|risk"


def test_events_that_are_no_alert() -> None:
    r = rules()
    assert r.evaluate(event("worker_up", "up", None, "worker risk up: services risk")) is None
    assert r.evaluate(event("limit_warning", "Warning", None, "leverage")) is None
