"""Which risk events alert, and how loudly: pure rules over `RiskEvent`s.

- `state_change` to Warning (warning), CoolDown (error) or Halted (critical);
  a halt for a corrupt journal is its own `journal_corrupt` alert (critical);
  the return to Normal is a `resolved` notice (info).
- `order_rejected`: one `order_refusals` alert (error) when an account's
  refusals within `window_s` reach `count`, then none until a window has
  passed; the alert carries the count.
- `reconciliation` that halted (critical) or found a mismatch (error).
- `breaker_state` open (error); closed again after open: resolved.
- `worker_down`: a worker gone silent (critical) or disconnected (warning: a
  planned stop disconnects too); back up: resolved.

Everything else is not an alert. Pure: time is the events' own `ts_ns`, so
replaying the same events gives the same alerts. Not thread-safe (one owner).
"""

from __future__ import annotations

from collections import deque

from posbus.actors.model.risk_state import RiskState
from posbus.adapters.alerts.alert import Alert, Severity
from posbus.bus.messages import RiskEvent

NS_PER_S = 1_000_000_000

_STATE_SEVERITY = {
    RiskState.WARNING.value: Severity.WARNING,
    RiskState.COOLDOWN.value: Severity.ERROR,
    RiskState.HALTED.value: Severity.CRITICAL,
}
_RECONCILIATION_SEVERITY = {"halted": Severity.CRITICAL, "mismatch": Severity.ERROR}
# The risk worker halts the account with this reason when a journal stream is corrupt.
JOURNAL_CORRUPT = "journal corrupt"


class AlertRules:
    """Turns risk events into alerts (see the module docstring).

    `refusals` and `window_s`: an account alerts on refusals once `refusals`
    of them fall within `window_s` seconds of event time.
    """

    def __init__(self, *, refusals: int, window_s: float) -> None:
        if refusals < 1 or window_s <= 0:
            raise ValueError(
                f"refusal rate needs count >= 1 and window_s > 0, got {refusals}, {window_s}"
            )
        self._refusals = refusals
        self._window_ns = int(window_s * NS_PER_S)
        self._refused: dict[str, deque[int]] = {}
        self._quiet_until: dict[str, int] = {}

    def evaluate(self, event: RiskEvent) -> Alert | None:
        """The alert `event` raises, or None."""
        kind = event.event
        if kind == "state_change":
            return _state_change(event)
        if kind == "order_rejected":
            return self._refusal(event)
        if kind == "reconciliation":
            return _reconciliation(event)
        if kind == "breaker_state":
            return _breaker(event)
        if kind in ("worker_down", "worker_up"):
            return _worker(event)
        return None

    def _refusal(self, event: RiskEvent) -> Alert | None:
        account = event.account or "-"
        stamps = self._refused.setdefault(account, deque())
        # Stamps may arrive slightly out of order: the window ends at the newest one seen.
        now = max(event.ts_ns, stamps[-1]) if stamps else event.ts_ns
        stamps.append(now)
        while stamps[0] <= now - self._window_ns:
            stamps.popleft()
        if len(stamps) < self._refusals or now < self._quiet_until.get(account, 0):
            return None
        self._quiet_until[account] = now + self._window_ns
        window_s = self._window_ns / NS_PER_S
        return Alert(
            kind="order_refusals",
            severity=Severity.ERROR,
            key=f"order_refusals|{account}",
            summary=(
                f"{len(stamps)} orders refused by risk within {window_s:g} s "
                f"(account {account}); latest: {event.reason}"
            ),
            event=event,
            count=len(stamps),
        )


def _state_change(event: RiskEvent) -> Alert | None:
    state, previous = event.state, event.previous_state
    if state == RiskState.NORMAL.value:
        if previous is None or previous == RiskState.NORMAL.value:
            return None
        return Alert(
            kind="resolved",
            severity=Severity.INFO,
            key="resolved|risk_state",
            summary=f"risk state back to Normal (was {previous}): {event.reason}",
            event=event,
            clears="risk_state|",
        )
    severity = _STATE_SEVERITY.get(state)
    if severity is None:
        return None
    if state == RiskState.HALTED.value and JOURNAL_CORRUPT in event.reason:
        return Alert(
            kind="journal_corrupt",
            severity=Severity.CRITICAL,
            key=f"journal_corrupt|{event.reason}",
            summary=f"trading halted, a journal is corrupt: {event.reason}",
            event=event,
            clears="resolved|risk_state",
        )
    return Alert(
        kind="risk_state",
        severity=severity,
        key=f"risk_state|{previous}|{state}",
        summary=f"risk state {state} (was {previous}): {event.reason}",
        event=event,
        clears="resolved|risk_state",
    )


def _reconciliation(event: RiskEvent) -> Alert | None:
    severity = _RECONCILIATION_SEVERITY.get(event.state)
    if severity is None:
        return None
    account = event.account or "-"
    return Alert(
        kind="reconciliation",
        severity=severity,
        key=f"reconciliation|{account}|{event.state}",
        summary=f"reconciliation with the venue {event.state} (account {account}): {event.reason}",
        event=event,
    )


def _breaker(event: RiskEvent) -> Alert | None:
    account = event.account or "-"
    if event.state == "open":
        return Alert(
            kind="breaker_open",
            severity=Severity.ERROR,
            key=f"breaker|{account}|open",
            summary=f"gateway circuit breaker open (account {account}): {event.reason}",
            event=event,
            clears=f"breaker|{account}|closed",
        )
    if event.state == "closed" and event.previous_state in ("open", "half_open"):
        return Alert(
            kind="resolved",
            severity=Severity.INFO,
            key=f"breaker|{account}|closed",
            summary=f"gateway circuit breaker closed again (account {account})",
            event=event,
            clears=f"breaker|{account}|open",
        )
    return None


def _worker(event: RiskEvent) -> Alert | None:
    # The broker's reason starts "worker NAME ...": the name is the alert's identity.
    words = event.reason.split(maxsplit=2)
    name = words[1] if len(words) > 1 else event.reason
    if event.event == "worker_up":
        if event.previous_state != "down":
            return None
        return Alert(
            kind="resolved",
            severity=Severity.INFO,
            key=f"worker_up|{name}",
            summary=f"worker {name} is back up",
            event=event,
            clears=f"worker_down|{name}",
        )
    silent = "disconnected" not in event.reason
    return Alert(
        kind="worker_down",
        severity=Severity.CRITICAL if silent else Severity.WARNING,
        key=f"worker_down|{name}",
        summary=event.reason,
        event=event,
        clears=f"worker_up|{name}",
    )
