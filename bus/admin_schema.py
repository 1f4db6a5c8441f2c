"""The admin socket's commands, declared once: what each takes, answers and may refuse.

Every process of a stack has an admin socket (bus/admin.py) and answers a
subset of these: a worker all but `workers`, the broker's process `status`,
`metrics` and `workers`, the demo feed `status` and `metrics`. The admin
server checks a declared command's arguments before its handler runs.
Declarations only: no handler, no I/O.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from posbus.bus.command_schema import (
    Arguments,
    CommandSpec,
    Doc,
    Example,
    NoArguments,
    ServiceSchema,
)
from posbus.bus.constraints import Id

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ActorArgs(Arguments, frozen=True, kw_only=True):
    """The actor an admin command is about."""

    actor: Annotated[Id, Doc("the actor's name, as `actors` lists it")]


class LogLevelArgs(Arguments, frozen=True, kw_only=True):
    """The new log level."""

    level: Annotated[
        str,
        Meta(pattern=f"(?i)^({'|'.join(LOG_LEVELS)})$"),
        Doc(f"one of {', '.join(LOG_LEVELS)} (any case)"),
    ]


_METRICS_REPLY = {
    "uptime_s": "seconds since the counters started, a decimal string",
    "in": "per message kind received: count and rate (per second since the last call)",
    "out": "per message kind sent: count and rate",
    "counters": "named counters (rejects, gaps, malformed, request_timeouts, ...)",
    "latency_us": "count and p50, p99, p999 of the receive latency in microseconds",
    "restarts": "(workers) actor restarts by their supervisors",
    "market_to_risk_us": "(risk) latency from a quote's timestamp to the risk supervisor",
}

STATUS = CommandSpec(
    "status",
    "Who this process is and whether it is healthy.",
    NoArguments,
    reply={
        "name": "the process's name (positions.0, risk, gateway.default, broker, feed)",
        "role": "positions, risk, gateway, broker or feed",
        "pid": "the process id",
        "started_ns": "when it started, ns since the epoch",
        "shard": "(workers) the positions shard I/N, else null",
        "uptime_s": "(workers) seconds since start, a decimal string",
        "sender": "(workers) this incarnation's publisher name on the event bus",
        "services": "(workers) the command services it answers",
        "broker_connected": "(workers) whether the broker answers its heartbeats",
        "escalated": "(workers) whether its root supervisor gave up",
        "actors": "(workers) how many actors it runs",
        "journal_streams": "(workers) how many journal streams it keeps",
        "positions": "(positions) how many positions the shard holds",
        "recovered": "(positions) per gateway incarnation, what start-up recovery applied",
        "applied_seq": "(positions) per gateway incarnation, the last execution signal applied",
        "gaps_repaired": "(positions) execution-signal gaps repaired from the gateway's journal",
        "gaps_unrepaired": "(positions) gaps the gateway's journal could not fill",
        "published_seq": "(gateway) the last execution signal journaled and published",
        "endpoints": "(broker) the four bus endpoints it binds",
        "steps": "(feed) market steps published",
        "intents": "(feed) demo orders sent",
    },
    example=Example(
        args={},
        reply={
            "name": "risk",
            "role": "risk",
            "shard": None,
            "pid": 4242,
            "started_ns": 1767225600000000000,
            "uptime_s": "12.503",
            "sender": "risk.4242.503117650",
            "services": ["risk"],
            "broker_connected": True,
            "escalated": False,
            "actors": 1,
            "journal_streams": 1,
        },
    ),
)

ACTORS = CommandSpec(
    "actors",
    "Each actor of the worker: its state, mailbox depth, restarts, age of its last message.",
    NoArguments,
    reply={
        "actors": "a list of {name, state, alive, mailbox, restarts, last_message_age_s}",
    },
    example=Example(
        args={},
        reply={
            "actors": [
                {
                    "name": "risk",
                    "state": "running",
                    "alive": True,
                    "mailbox": 0,
                    "restarts": 0,
                    "last_message_age_s": "0.214",
                }
            ]
        },
    ),
)

INSPECT = CommandSpec(
    "inspect",
    "The full state of one actor (a position, the risk supervisor, the gateway).",
    ActorArgs,
    reply={"(the actor's state)": "its fields as the actor reports them; decimals as strings"},
    errors={"WorkerError": "no actor of that name in this worker"},
    example=Example(
        args={"actor": "position/default/BTC/USDT"},
        reply={"account": "default", "symbol": "BTC/USDT", "status": "Open", "qty": "0.5"},
    ),
)

METRICS = CommandSpec(
    "metrics",
    "Message counts and rates, latency percentiles, counters of the process.",
    NoArguments,
    reply=_METRICS_REPLY,
    example=Example(
        args={},
        reply={
            "uptime_s": "60.002",
            "in": {"command": {"count": 12, "rate": "0.200"}},
            "out": {"reply": {"count": 12, "rate": "0.200"}},
            "counters": {"rejects": 1},
            "latency_us": {"count": 12, "p50": "180.000", "p99": "950.000", "p999": "950.000"},
            "restarts": 0,
        },
    ),
)

RESTART = CommandSpec(
    "restart",
    "Make an actor fail so its supervisor restarts it; it recovers from its journal.",
    ActorArgs,
    reply={
        "actor": "the actor's name",
        "restarts_before": "its restart count before this one",
    },
    errors={"WorkerError": "no actor of that name in this worker"},
    example=Example(
        args={"actor": "position/default/BTC/USDT"},
        reply={"actor": "position/default/BTC/USDT", "restarts_before": 0},
    ),
)

SNAPSHOT = CommandSpec(
    "snapshot",
    "Snapshot every actor that keeps snapshots (each durable on return) and report them.",
    NoArguments,
    reply={
        "saved": "each actor that saved a snapshot -> the journal seq it covers",
        "streams": "journal streams of the worker",
        "records": "journal records of the worker",
        "durable": "whether the store keeps snapshots beyond the process",
    },
    example=Example(
        args={},
        reply={
            "saved": {"position/default/BTC/USDT": 42},
            "streams": 3,
            "records": 57,
            "durable": True,
        },
    ),
)

LOG_LEVEL = CommandSpec(
    "log-level",
    "Change the process's log level.",
    LogLevelArgs,
    reply={"level": "the level now in force, upper case"},
    example=Example(args={"level": "debug"}, reply={"level": "DEBUG"}),
)

WORKERS = CommandSpec(
    "workers",
    "The broker's view of the bus: endpoints, registered workers, services, counters.",
    NoArguments,
    reply={
        "endpoints": "the four endpoints the broker binds",
        "workers": "worker name -> {services, silent_ms, up_s, inflight}",
        "services": "service name -> the workers offering it",
        "metrics": "the broker's counters (as `metrics`)",
        "curve_denied": "CURVE handshakes the allow-list refused",
    },
    example=Example(
        args={},
        reply={
            "endpoints": [
                "ipc:///tmp/pb/var/bus/events-in.sock",
                "ipc:///tmp/pb/var/bus/events-out.sock",
                "ipc:///tmp/pb/var/bus/commands.sock",
                "ipc:///tmp/pb/var/bus/workers.sock",
            ],
            "workers": {
                "risk": {"services": ["risk"], "silent_ms": 120, "up_s": 60, "inflight": 0}
            },
            "services": {"risk": ["risk"]},
            "metrics": {"counters": {}},
            "curve_denied": 0,
        },
    ),
)

ADMIN = ServiceSchema(
    service="admin",
    summary="Operator commands of one process: inspect it, restart an actor, change logging.",
    reached=(
        "each process's own admin socket (ROUTER; ipc://RUN_DIR/admin/NAME.sock, "
        "`admin` in `posbus status --json`); one frame each way: a command envelope, "
        "a reply envelope. Workers answer all but `workers`; the broker's process "
        "`status`, `metrics` and `workers`; the demo feed `status` and `metrics`"
    ),
    commands=(STATUS, ACTORS, INSPECT, METRICS, RESTART, SNAPSHOT, LOG_LEVEL, WORKERS),
)
