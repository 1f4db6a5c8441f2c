"""The feed: one thread that owns the stack client and an event-bus subscription.

It reads the stack (`stack_reads.read_stack`) every `interval` seconds, and
at once when an execution signal or a risk event arrives on the bus (`ex|`,
`rk|`), then again `settle_s` later: the positions worker applies a fill in
the same moment the feed hears it, so the second reading shows what the
first may have just missed. Readings are at least `min_gap_s` apart however
busy the bus. Each document (`dashboard.build`, as JSON bytes) goes to
`publish`, called on this thread. A gap on the bus costs the page nothing:
each reading asks the stack itself. The feed only reads; what a reading could
not read is named in the document and logged when that changes. It must never share its
sockets: it creates, uses and closes them on its own thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import zmq

from posbus.adapters import launcher_bus
from posbus.adapters.launcher_client import StackClient
from posbus.adapters.web.bus_view import BusView
from posbus.adapters.web.dashboard import Venue, build
from posbus.adapters.web.stack_reads import read_stack
from posbus.bus.subscriber import Subscriber
from posbus.bus.topics import PREFIX_EXECUTION, PREFIX_MARKET, PREFIX_RISK

_log = logging.getLogger(__name__)

_STOP_CHECK_MS = 200
"""Longest wait on the bus before the stop flag is looked at again."""


class StackFeed(threading.Thread):
    """Reads the stack and listens to its bus; hands every new document to `publish`.

    `client` is handed over: from `start` on only this thread uses it, and it
    closes it when it ends. `stop` may be called from any thread.
    """

    def __init__(
        self,
        client: StackClient,
        venue: Venue,
        publish: Callable[[bytes], None],
        *,
        interval: float = 1.0,
        admin_timeout: float = 0.5,
        command_timeout: float = 1.0,
        settle_s: float = 0.25,
        min_gap_s: float = 0.1,
    ) -> None:
        super().__init__(name="web-feed", daemon=True)
        self._client = client
        self._venue = venue
        self._publish = publish
        self._interval = interval
        self._admin_timeout = admin_timeout
        self._command_timeout = command_timeout
        self._settle_s = settle_s
        self._min_gap_s = min_gap_s
        self._stopping = threading.Event()
        self._bus = BusView()
        self._errors: list[str] = []

    def stop(self) -> None:
        """Ask the thread to end after its current reading (any thread)."""
        self._stopping.set()

    def run(self) -> None:
        """The feed thread: subscribe, then read and listen until `stop`."""
        try:
            subscriber = self._subscribe()
            try:
                self._loop(subscriber)
            finally:
                subscriber.close()
        except Exception:  # noqa: BLE001 - thread boundary: logged, the page shows it stale
            _log.exception("the dashboard feed stopped")
        finally:
            self._client.close()

    def _subscribe(self) -> Subscriber:
        bus = self._client.config.bus
        endpoints = launcher_bus.endpoints(bus, self._client.run_dir.root)
        return Subscriber(
            zmq.Context.instance(),
            endpoints.events_out,
            prefixes=(PREFIX_MARKET, PREFIX_EXECUTION, PREFIX_RISK),
            options=launcher_bus.socket_options(bus),
            curve=launcher_bus.curve_client(bus),
        )

    def _loop(self, subscriber: Subscriber) -> None:
        last_read = -float("inf")
        next_read = time.monotonic()
        follow_up: float | None = None
        while not self._stopping.is_set():
            due = next_read if follow_up is None else min(next_read, follow_up)
            wait_ms = min(_STOP_CHECK_MS, max(0, int((due - time.monotonic()) * 1000)))
            if subscriber.poll(wait_ms) and self._bus.take(subscriber.drain()):
                now = time.monotonic()
                next_read = min(next_read, max(now, last_read + self._min_gap_s))
                follow_up = now + self._settle_s
            now = time.monotonic()
            if follow_up is not None and now >= follow_up:
                follow_up = None
            elif now < next_read:
                continue
            self._read()
            last_read = time.monotonic()
            next_read = last_read + self._interval

    def _read(self) -> None:
        reading = read_stack(
            self._client,
            admin_timeout=self._admin_timeout,
            command_timeout=self._command_timeout,
        )
        if reading.errors != self._errors:
            # Logged when what is missing changes, not once a second while it lasts.
            if reading.errors:
                _log.warning("dashboard reading incomplete", extra={"errors": reading.errors})
            else:
                _log.info("dashboard reading complete again")
            self._errors = reading.errors
        document = build(reading, self._bus, self._venue, self._interval)
        self._publish(json.dumps(document, separators=(",", ":")).encode())
