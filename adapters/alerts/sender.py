"""The sender of one sink: a background thread that posts alerts, so trading never waits for it.

`publish` (any thread) applies the sink's rate limit and puts the alert on a
bounded queue: it never blocks on the network, and when the queue is full
the oldest waiting alert is dropped and counted. The sender's own thread
posts each alert (`WebhookSink.post`) and retries a transient failure with
exponential backoff and full jitter (the `backoff` package's `expo` and
`full_jitter`), at most `max_tries` attempts in all; then it gives up and
logs the failure with the sink's name, never its URL or token. The waits
are taken on the stop event, so `stop` never sits out a backoff. A failed
send never ends the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, NamedTuple

import backoff

from posbus.adapters.alerts.alert import Alert
from posbus.adapters.alerts.rate_limit import RateLimit
from posbus.adapters.alerts.sink import DeliveryError, WebhookSink

logger = logging.getLogger(__name__)

#: The first retry waits up to BACKOFF_BASE_S, each next one up to twice as long,
#: never more than BACKOFF_MAX_S.
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


class _Queued(NamedTuple):
    alert: Alert
    suppressed: int  # alerts the rate limit held back before this one


class AlertSender:
    """Posts one sink's alerts on its own thread (see the module docstring).

    `publish` and the counters are safe from any thread; `start` and `stop`
    belong to the owner. `clock` is a monotonic clock in seconds (the rate
    limit's time).
    """

    def __init__(
        self,
        sink: WebhookSink,
        *,
        queue_size: int,
        max_tries: int,
        max_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        if queue_size < 1 or max_tries < 1:
            raise ValueError(
                f"queue_size and max_tries must be >= 1, got {queue_size}, {max_tries}"
            )
        self.sink = sink
        self._queue_size = queue_size
        self._max_tries = max_tries
        self._clock = clock
        self._base_s = backoff_base_s
        self._max_s = backoff_max_s
        self._limit = RateLimit(max_per_minute)
        self._queue: deque[_Queued] = deque()
        self._busy = False
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"alerts-{sink.name}", daemon=True)
        self._counts: Counter[str] = Counter()

    # -- any thread -----------------------------------------------------------------------

    def publish(self, alert: Alert) -> None:
        """Queue `alert` for the sink unless the rate limit holds it back; never blocks."""
        with self._changed:
            suppressed = self._limit.admit(self._clock())
            if suppressed is None:
                return
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self._counts["dropped"] += 1
            self._queue.append(_Queued(alert, suppressed))
            self._changed.notify_all()

    @property
    def alive(self) -> bool:
        """True while the sending thread runs."""
        return self._thread.is_alive()

    def wait_idle(self) -> None:
        """Block until every queued alert was sent or given up on (tests, and a draining stop)."""
        with self._changed:
            self._changed.wait_for(lambda: not self._queue and not self._busy)

    def counts(self) -> dict[str, Any]:
        """Sent, failed (gave up), retries, dropped (queue full), rate limited, queued."""
        with self._changed:
            counts = self._counts
            return {
                "sink": self.sink.name,
                **{name: counts[name] for name in ("sent", "failed", "retries", "dropped")},
                "rate_limited": self._limit.suppressed,
                "queued": len(self._queue),
            }

    # -- owner ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sending thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the thread after the post in flight (no further retry); what is queued is counted."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        with self._changed:
            unsent = len(self._queue)
            self._queue.clear()
            self._changed.notify_all()
        if unsent:
            logger.warning(
                "alerts not sent before stopping", extra={"sink": self.sink.name, "count": unsent}
            )

    # -- the sender's thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._changed:
                self._busy = False
                self._changed.notify_all()
                self._changed.wait_for(lambda: self._queue or self._stop.is_set())
                if self._stop.is_set():
                    return
                item = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(item)
            except Exception as exc:  # noqa: BLE001 - the thread outlives any one alert
                # Only the type, no traceback: an unexpected error's text could quote the URL.
                logger.error(
                    "alert sender failed unexpectedly",
                    extra={"sink": self.sink.name, "error": type(exc).__name__},
                )
                self._count("failed")

    def _deliver(self, item: _Queued) -> None:
        waits = backoff.expo(factor=self._base_s, max_value=self._max_s)
        next(waits)  # backoff's wait generators are primed before their first value
        for attempt in range(1, self._max_tries + 1):
            try:
                self.sink.post(item.alert, item.suppressed)
            except DeliveryError as exc:
                if not exc.transient or attempt == self._max_tries:
                    logger.error(
                        "alert not delivered; giving up",
                        extra={
                            "sink": self.sink.name,
                            "alert": item.alert.kind,
                            "tries": attempt,
                            "error": exc.message,
                        },
                    )
                    self._count("failed")
                    return
                delay = backoff.full_jitter(next(waits))
                logger.warning(
                    "alert not delivered; retrying",
                    extra={"sink": self.sink.name, "tries": attempt, "error": exc.message},
                )
                self._count("retries")
                if self._stop.wait(delay):
                    self._count("failed")
                    return
            else:
                self._count("sent")
                return

    def _count(self, counter: str) -> None:
        with self._changed:
            self._counts[counter] += 1
