"""Request bodies of the alert sinks: generic JSON, Slack-compatible, Telegram sendMessage."""

from __future__ import annotations

from posbus.adapters.alerts.alert import Alert, Severity
from posbus.adapters.alerts.formats import (
    MAX_TEXT,
    alert_text,
    json_body,
    slack_body,
    telegram_body,
    telegram_url,
)
from posbus.bus.messages import RiskEvent

EVENT = RiskEvent(
    event="state_change",
    state="Halted",
    previous_state="Normal",
    reason="halted: operator",
    account="acc",
    symbol="BTC/USDT",
    values={"equity": "99000.5", "daily_pnl": "-1000"},
    ts_ns=1_700_000_000_000_000_000,
)
ALERT = Alert(
    kind="risk_state",
    severity=Severity.CRITICAL,
    key="risk_state|Normal|Halted",
    summary="risk state Halted (was Normal): halted: operator",
    event=EVENT,
)


def test_the_json_body_carries_every_event_field() -> None:
    body = json_body(ALERT, suppressed=2)
    assert body["event"] == {
        "event": "state_change",
        "state": "Halted",
        "previous_state": "Normal",
        "reason": "halted: operator",
        "account": "acc",
        "symbol": "BTC/USDT",
        "values": {"equity": "99000.5", "daily_pnl": "-1000"},
        "ts_ns": 1_700_000_000_000_000_000,
    }
    # A field added to RiskEvent one day reaches the JSON sinks too.
    assert set(body["event"]) == set(RiskEvent.__struct_fields__)
    assert body["alert"] == "risk_state"
    assert (body["severity"], body["resolved"], body["suppressed"]) == ("critical", False, 2)
    assert body["key"] == ALERT.key and body["count"] == 1


def test_the_slack_body_is_text_only_with_severity_summary_figures_and_time() -> None:
    body = slack_body(ALERT)
    assert list(body) == ["text"]
    text = body["text"]
    assert text.startswith("[CRITICAL] posbus: risk state Halted (was Normal)")
    assert "equity=99000.5, daily_pnl=-1000" in text
    assert "2023-11-14T22:13:20" in text


def test_the_telegram_body_has_the_chat_and_the_text_and_the_token_goes_in_the_path() -> None:
    assert telegram_body(ALERT, -100123) == {"chat_id": -100123, "text": alert_text(ALERT)}
    assert telegram_url("http://127.0.0.1:8080/", "123:ABC") == (
        "http://127.0.0.1:8080/bot123:ABC/sendMessage"
    )


def test_a_resolved_notice_says_so() -> None:
    resolved = Alert("resolved", Severity.INFO, "resolved|risk_state", "back to Normal", EVENT)
    assert alert_text(resolved).startswith("[RESOLVED] posbus: back to Normal")


def test_alerts_held_back_by_the_rate_limit_are_counted_in_the_text() -> None:
    assert "3 earlier alert(s) not sent: over the rate limit" in alert_text(ALERT, 3)
    assert "not sent" not in alert_text(ALERT, 0)


def test_a_long_text_is_cut_to_what_every_chat_accepts() -> None:
    long = Alert("risk_state", Severity.WARNING, "k", "x" * 10_000, EVENT)
    text = alert_text(long)
    assert len(text) == MAX_TEXT and text.endswith("…")
