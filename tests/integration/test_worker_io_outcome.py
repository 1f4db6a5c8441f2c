"""What a send's outcome says when the sender stops before the reply: maybe delivered.

A command that left the client socket may have reached its service and been
acted on (a submit may have traded): a worker stopping with it unanswered
must not report it as never delivered. Real broker and workers, one process.
"""

from __future__ import annotations

import threading
from typing import Any

from inprocess_workers import in_process_bus
from stack_harness import wait_for

from posbus.actors.worker_io import IOConfig, WorkerIO
from posbus.bus.admin import admin_endpoint
from posbus.bus.messages import Command

OUTCOME_TIMEOUT_S = 30.0


def _io(bus: Any, name: str, **hooks: Any) -> WorkerIO:
    services = hooks.pop("services", ())
    config = IOConfig(
        name=name,
        endpoints=bus.endpoints,
        admin_endpoint=admin_endpoint(bus.root, name),
        services=services,
        heartbeat=bus.heartbeat,
    )
    return WorkerIO(config, **hooks)


def test_a_send_unanswered_when_the_sender_stops_may_have_been_delivered() -> None:
    served = threading.Event()
    release = threading.Event()

    def hold(request: Any) -> dict[str, Any]:
        served.set()
        release.wait(OUTCOME_TIMEOUT_S)
        return {}

    outcomes: list[str | None] = []
    over = threading.Event()

    def outcome(reason: str | None) -> None:
        outcomes.append(reason)
        over.set()

    with in_process_bus() as bus:
        service = _io(bus, "svc", services=["svc"], on_request=hold)
        sender = _io(bus, "sender")
        service.start()
        sender.start()
        try:
            # Sent again until the service is registered at the broker: until
            # then each outcome is the broker's proof of non-delivery.
            while not served.is_set():
                over.clear()
                sender.send("svc", Command("svc.do", {}, sender.new_request_id()), outcome)
                wait_for("served or refused", lambda: served.is_set() or over.is_set())
                if not served.is_set():
                    assert outcomes[-1] is not None
            outcomes.clear()
            sender.stop()  # the service holds the command: no reply yet
            assert over.wait(OUTCOME_TIMEOUT_S)
            assert outcomes == [None]
        finally:
            release.set()
            service.stop()
