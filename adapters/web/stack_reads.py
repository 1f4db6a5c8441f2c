"""One reading of a running stack, through the same requests the CLI sends, every wait bounded.

Workers and their health come from run.json and each worker's admin socket
(`posbus status`), a gateway's circuit breaker from its admin `inspect`
(`posbus top`), positions from `positions.list` and working orders from
`positions.orders` on every shard (`posbus positions`, `posbus orders
--working`), the risk state, metrics, limits and decisions from
`risk.inspect` (`posbus risk`). Every request only reads; one that fails or
times out is noted in `errors` and its part left out, never retried in the
same reading. Runs on the thread that owns the StackClient's sockets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from posbus.actors.model.errors import PosbusError
from posbus.actors.model.order import TERMINAL_STATES, OrderStatus
from posbus.adapters.cli.command import CommandError
from posbus.adapters.cli.status import collect
from posbus.adapters.launcher_client import StackClient
from posbus.adapters.metrics_http import find_breaker

WORKING = sorted(s.value for s in OrderStatus if s not in TERMINAL_STATES)
"""The order states that may still change: what the page lists as working orders."""

ORDERS_PER_SHARD = 200
"""The newest working orders asked of each positions shard."""


@dataclass(slots=True)
class StackReading:
    """The raw answers of one reading, as the commands give them (decimal strings)."""

    ts_ns: int
    run_dir: str
    status: dict[str, Any] | None = None
    breakers: dict[str, str | None] = field(default_factory=dict)
    positions: list[dict[str, Any]] | None = None
    orders: list[dict[str, Any]] | None = None
    risk: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)


def read_stack(
    client: StackClient, *, admin_timeout: float, command_timeout: float
) -> StackReading:
    """Read the stack `client` reaches; what could not be read is named in `errors`."""
    reading = StackReading(ts_ns=time.time_ns(), run_dir=str(client.run_dir.root))
    try:
        reading.status = collect(client, admin_timeout)
    except (PosbusError, CommandError) as exc:
        reading.errors.append(f"status: {_message(exc)}")
        return reading
    serving = {w["name"] for w in reading.status["workers"] if w["serving"]}
    for worker in reading.status["workers"]:
        if worker["role"] == "gateway" and worker["name"] in serving:
            reading.breakers[worker["name"]] = _breaker(client, worker["name"], admin_timeout)
    if "broker" not in serving:
        reading.errors.append("broker: not serving; positions, orders and risk not read")
        return reading
    positions: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    for service in client.position_services():
        if service not in serving:
            reading.errors.append(f"{service}: not serving; its positions and orders not read")
            continue
        try:
            positions.extend(client.shard_positions(service, timeout=command_timeout))
            result = client.call(
                service,
                "positions.orders",
                {"status": list(WORKING), "limit": ORDERS_PER_SHARD},
                timeout=command_timeout,
            )
            orders.extend(result.get("orders", []))
        except PosbusError as exc:
            reading.errors.append(f"{service}: {exc}")
    reading.positions = positions
    reading.orders = orders
    try:
        reading.risk = client.call("risk", "risk.inspect", timeout=command_timeout)
    except PosbusError as exc:
        reading.errors.append(f"risk: {exc}")
    return reading


def _breaker(client: StackClient, worker: str, timeout: float) -> str | None:
    """The gateway's circuit breaker state; None when it has none or does not answer."""
    try:
        reply = client.admin(worker, "inspect", {"actor": worker}, timeout=timeout)
    except PosbusError:
        return None
    return find_breaker(reply.result) if reply.ok else None


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, CommandError) else str(exc)
