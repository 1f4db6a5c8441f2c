"""Risk events in, alerts out: the rules, then deduplication, then every sink that wants it.

`Alerting.on_event` runs on the alerts worker's I/O thread (one owner): it
decides, and hands each alert to the senders, whose `publish` never blocks,
so a slow or dead webhook never holds up the bus. `counts` may be read from
any thread (the admin thread).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from posbus.adapters.alerts.alert import Alert
from posbus.adapters.alerts.dedupe import Dedupe
from posbus.adapters.alerts.rules import AlertRules
from posbus.adapters.alerts.sender import AlertSender
from posbus.bus.messages import RiskEvent


class Alerting:
    """Applies `rules` to each risk event, `dedupe` to each alert, and fans out to `senders`.

    `clock` is a monotonic clock in seconds (the dedupe window's time).
    """

    def __init__(
        self,
        rules: AlertRules,
        dedupe: Dedupe,
        senders: Sequence[AlertSender],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = rules
        self.dedupe = dedupe
        self.senders = tuple(senders)
        self._clock = clock
        self._lock = threading.Lock()
        self._raised: Counter[str] = Counter()

    def on_event(self, event: RiskEvent) -> Alert | None:
        """The alert `event` raised and sent on (None: not an alert, or a duplicate)."""
        alert = self.rules.evaluate(event)
        if alert is None:
            return None
        if alert.clears:
            self.dedupe.forget(alert.clears)
        if not self.dedupe.first(alert.key, self._clock()):
            return None
        with self._lock:
            self._raised[alert.kind] += 1
        for sender in self.senders:
            if sender.sink.wants(alert):
                sender.publish(alert)
        return alert

    def counts(self) -> dict[str, Any]:
        """Alerts raised by kind, duplicates suppressed, and each sink's counters."""
        with self._lock:
            raised = dict(self._raised)
        return {
            "raised": raised,
            "duplicates": self.dedupe.suppressed,
            "sinks": [sender.counts() for sender in self.senders],
        }
