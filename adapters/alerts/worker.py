"""The `alerts` worker: subscribes to the risk events of a stack and sends the alerts.

A worker without actors, like the demo feed: one `WorkerIO` subscribed to
``rk|`` whose I/O thread runs `Alerting.on_event` for each risk event, and
one `AlertSender` thread per sink. Posting happens only on the sender
threads, so a webhook outage costs retries there and never stalls the bus;
a failed send never ends the process. `posbus up` starts it when `[alerts]`
has a sink; SIGTERM stops it (`stop`: the bus first, then the senders).
The sinks' secrets are read when it is built: a missing or exposed one
fails the start with a `SecretError` naming where it was looked for.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from posbus.actors.worker_io import IOConfig, WorkerIO
from posbus.adapters.alerts.alerting import Alerting
from posbus.adapters.alerts.dedupe import Dedupe
from posbus.adapters.alerts.rules import AlertRules
from posbus.adapters.alerts.secret import read_secret
from posbus.adapters.alerts.sender import AlertSender
from posbus.adapters.alerts.settings import AlertsConfig
from posbus.adapters.alerts.sink import WebhookSink
from posbus.bus.curve import CurveClient
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.messages import CommandArg, RiskEvent
from posbus.bus.sockets import SocketOptions
from posbus.bus.subscriber import Received
from posbus.bus.topics import PREFIX_RISK

logger = logging.getLogger(__name__)


def build_senders(
    config: AlertsConfig, environ: Mapping[str, str] | None = None
) -> list[AlertSender]:
    """One sender per configured sink, its secret read now (SecretError if it cannot be)."""
    senders = []
    for index, sink_config in enumerate(config.sinks):
        name = f"{sink_config.kind}#{index}"
        secret = read_secret(sink_config, environ)
        sink = WebhookSink.from_config(name, sink_config, secret, config.timeout_s)
        senders.append(
            AlertSender(
                sink,
                queue_size=config.queue_size,
                max_tries=config.max_tries,
                max_per_minute=config.max_per_minute,
            )
        )
    return senders


class AlertsWorker:
    """The alerts process of a stack (see the module docstring)."""

    role = "alerts"

    def __init__(
        self,
        config: AlertsConfig,
        *,
        endpoints: BusEndpoints,
        admin_endpoint: str,
        curve: CurveClient | None = None,
        options: SocketOptions | None = None,
        name: str = "alerts",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.started_ns = time.time_ns()
        self.escalated = None
        self.events = 0
        self.alerting = Alerting(
            AlertRules(
                refusals=config.rejection_rate.count, window_s=config.rejection_rate.window_s
            ),
            Dedupe(config.dedupe_s),
            build_senders(config, environ),
        )
        self.io = WorkerIO(
            IOConfig(
                name=name,
                endpoints=endpoints,
                admin_endpoint=admin_endpoint,
                prefixes=(PREFIX_RISK,),
                curve=curve,
                options=options or SocketOptions(),
            ),
            on_events=self.on_events,
            on_gap=self._on_gap,
            admin_handlers={"status": self.status, "metrics": self.metrics},
        )

    def start(self) -> None:
        """Start the senders, then subscribe (owner's thread)."""
        for sender in self.alerting.senders:
            sender.start()
        self.io.start()

    def stop(self) -> None:
        """Stop receiving, then the senders (each after the post in flight)."""
        self.io.stop()
        for sender in self.alerting.senders:
            sender.stop()

    def on_events(self, batch: list[Received]) -> None:
        """Each risk event of a drained batch through the rules (I/O thread)."""
        for received in batch:
            message = received.envelope.message
            if isinstance(message, RiskEvent):
                self.events += 1
                self.alerting.on_event(message)

    def _on_gap(self, sender: str, expected: int, got: int) -> None:
        # Risk events are not replayed to this worker: what was lost cannot alert.
        logger.warning(
            "risk events lost before alerting",
            extra={"sender": sender, "expected": expected, "got": got},
        )

    def status(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Admin: who, since when, how many risk events, and what each sink did."""
        return {
            "name": self.name,
            "role": self.role,
            "pid": os.getpid(),
            "started_ns": self.started_ns,
            "events": self.events,
            **self.alerting.counts(),
        }

    def metrics(self, args: dict[str, CommandArg]) -> dict[str, Any]:
        """Admin: the bus counters."""
        return self.io.metrics.snapshot()
