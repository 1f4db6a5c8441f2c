"""From the `[bus]` configuration to the bus's endpoints, CURVE keys and options.

One place that turns the TOML keys into what posbus.bus needs, so the
launcher, every worker and every CLI client connect the same way. ipc (one
machine) needs no keys; tcp needs CURVE on every socket (docs/bus.md): the
broker and admin servers use `curve_server_secret` + `allowed_clients`,
clients and workers `curve_client_secret` + `curve_server_public`.
"""

from __future__ import annotations

from pathlib import Path

from posbus.adapters.config import BusConfig, ConfigError
from posbus.bus.curve import CurveClient, CurveServer, load_keypair, load_public_key
from posbus.bus.endpoints import BusEndpoints
from posbus.bus.heartbeat import HeartbeatConfig
from posbus.bus.sockets import SocketOptions


def endpoints(bus: BusConfig, run_dir: Path, *, binding: bool = False) -> BusEndpoints:
    """The broker's endpoints; `binding` gives the broker's bind form (tcp://BIND:PORT)."""
    if bus.transport == "ipc":
        return BusEndpoints.local(run_dir)
    return BusEndpoints.tcp(bus.bind if binding else bus.host, bus.base_port)


def curve_client(bus: BusConfig) -> CurveClient | None:
    """The client side of CURVE (workers, CLI); None for ipc."""
    if bus.transport == "ipc":
        return None
    if bus.curve_client_secret is None or bus.curve_server_public is None:
        raise ConfigError(
            "[bus] transport = 'tcp' needs curve_client_secret and curve_server_public "
            "(make keys with 'posbus keys generate')"
        )
    return CurveClient(
        keys=load_keypair(Path(bus.curve_client_secret)),
        server_public=load_public_key(Path(bus.curve_server_public)),
    )


def curve_server(bus: BusConfig) -> CurveServer | None:
    """The server side of CURVE (the broker); None for ipc."""
    if bus.transport == "ipc":
        return None
    if bus.curve_server_secret is None or bus.allowed_clients is None:
        raise ConfigError(
            "[bus] transport = 'tcp' needs curve_server_secret and allowed_clients on the broker"
        )
    return CurveServer(
        keys=load_keypair(Path(bus.curve_server_secret)),
        allowed_clients=Path(bus.allowed_clients),
    )


def heartbeat(bus: BusConfig) -> HeartbeatConfig:
    """Heartbeat interval and liveness of broker and workers."""
    return HeartbeatConfig(interval_s=bus.heartbeat_interval_s, liveness=bus.liveness)


def socket_options(bus: BusConfig) -> SocketOptions:
    """Socket options (the maximum message size; the rest are the bus's documented defaults)."""
    return SocketOptions(max_msg_size=bus.max_msg_size)
