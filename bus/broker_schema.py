"""The commands of the `broker` service, which the broker answers itself, declared once.

Read-only: the broker executes no other command. Declarations only: the
broker (bus/broker.py) dispatches them.
"""

from __future__ import annotations

from posbus.bus.command_schema import CommandSpec, Example, NoArguments, ServiceSchema

PING = CommandSpec(
    "ping",
    "Whether the broker answers (an empty result).",
    NoArguments,
    reply={},
    example=Example(args={}, reply={}),
)

SERVICES = CommandSpec(
    "services",
    "Every service with a live worker, and which workers offer it.",
    NoArguments,
    reply={"services": "service name -> the names of the workers offering it"},
    example=Example(
        args={},
        reply={
            "services": {
                "risk": ["risk"],
                "gateway.default": ["gateway.default"],
                "positions.0": ["positions.0"],
            }
        },
    ),
)

WORKERS = CommandSpec(
    "workers",
    "Every registered worker: its services, how long it has been silent and up, requests held.",
    NoArguments,
    reply={"workers": "worker name -> {services, silent_ms, up_s, inflight}"},
    example=Example(
        args={},
        reply={
            "workers": {"risk": {"services": ["risk"], "silent_ms": 120, "up_s": 60, "inflight": 0}}
        },
    ),
)

BROKER = ServiceSchema(
    service="broker",
    summary="The broker's own read-only commands about the bus.",
    reached="the broker's `commands` endpoint, service `broker`",
    commands=(PING, SERVICES, WORKERS),
)
