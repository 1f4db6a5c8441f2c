"""Request bodies for each sink kind: generic JSON, Slack-compatible, Telegram `sendMessage`.

- "json": every field of the alert and of the risk event behind it.
- "slack": ``{"text": ...}``, what Slack incoming webhooks (and Mattermost,
  Rocket.Chat, Discord's /slack endpoint) take.
- "telegram": ``{"chat_id": ..., "text": ...}`` for the Bot API's
  `sendMessage`, posted to `telegram_url(api_url, token)`.

`suppressed` is how many alerts the sink's rate limit held back before this
one; the text says so. Pure functions.
"""

from __future__ import annotations

from typing import Any

import msgspec

from posbus.actors.model.timestamp_text import iso_utc
from posbus.adapters.alerts.alert import Alert

# Telegram refuses texts over 4096 characters; Slack folds long ones. Keep them readable.
MAX_TEXT = 3_500


def alert_text(alert: Alert, suppressed: int = 0) -> str:
    """The alert for a human: severity, summary, the figures behind it, when."""
    tag = "RESOLVED" if alert.resolved else alert.severity.value.upper()
    lines = [f"[{tag}] posbus: {alert.summary}"]
    values = alert.event.values
    if values:
        lines.append(", ".join(f"{k}={v}" for k, v in values.items()))
    lines.append(f"at {iso_utc(alert.event.ts_ns)}")
    if suppressed:
        lines.append(f"({suppressed} earlier alert(s) not sent: over the rate limit)")
    text = "\n".join(lines)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def json_body(alert: Alert, suppressed: int = 0) -> dict[str, Any]:
    """The generic JSON document: the alert's fields and every field of its event."""
    return {
        "alert": alert.kind,
        "severity": alert.severity.value,
        "resolved": alert.resolved,
        "key": alert.key,
        "summary": alert.summary,
        "count": alert.count,
        "suppressed": suppressed,
        "text": alert_text(alert, suppressed),
        "event": msgspec.structs.asdict(alert.event),
    }


def slack_body(alert: Alert, suppressed: int = 0) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body."""
    return {"text": alert_text(alert, suppressed)}


def telegram_body(alert: Alert, chat_id: int | str, suppressed: int = 0) -> dict[str, Any]:
    """A Bot API `sendMessage` body (plain text: no parse mode to escape for)."""
    return {"chat_id": chat_id, "text": alert_text(alert, suppressed)}


def telegram_url(api_url: str, token: str) -> str:
    """Where `sendMessage` is posted: the token is part of the path (so the URL is a secret)."""
    return f"{api_url.rstrip('/')}/bot{token}/sendMessage"
