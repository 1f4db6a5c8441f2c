"""Where the broker's four sockets live: ipc under a run directory, or tcp with CURVE.

One machine uses ipc (the directory is the access control: 0700, owned by
the user); several machines use tcp, which the socket factory refuses without
CURVE. This module only names and prepares places; it opens no socket.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from posbus.bus.errors import BusConfigError, BusSecurityError

#: First of the four tcp ports of a tcp deployment (events_in, events_out, commands, workers).
DEFAULT_BASE_PORT = 5570

# sockaddr_un.sun_path is 108 bytes on Linux, including the NUL.
_MAX_IPC_PATH = 107


@dataclass(frozen=True, slots=True)
class BusEndpoints:
    """The broker's endpoints: XSUB for publishers, XPUB for subscribers, two ROUTERs."""

    events_in: str
    events_out: str
    commands: str
    workers: str

    @classmethod
    def local(cls, run_dir: Path) -> BusEndpoints:
        """ipc endpoints under RUN_DIR/bus/ (the directory is created 0700)."""
        bus_dir = prepare_ipc_dir(Path(run_dir) / "bus")
        names = ("events-in", "events-out", "commands", "workers")
        paths = [bus_dir / f"{name}.sock" for name in names]
        for path in paths:
            check_ipc_path(path)
        return cls(*(f"ipc://{path}" for path in paths))

    @classmethod
    def tcp(cls, host: str, base_port: int = DEFAULT_BASE_PORT) -> BusEndpoints:
        """tcp://HOST:base_port+0..3; every socket on them needs CURVE."""
        if not 0 < base_port <= 65_532:
            raise BusConfigError(f"tcp base port {base_port} out of range")
        return cls(*(f"tcp://{host}:{base_port + i}" for i in range(4)))

    def all(self) -> tuple[str, str, str, str]:
        """The four endpoints in declaration order."""
        return (self.events_in, self.events_out, self.commands, self.workers)


def is_tcp(endpoint: str) -> bool:
    """True for a tcp:// endpoint (those need CURVE)."""
    return endpoint.startswith("tcp://")


def ipc_path(endpoint: str) -> Path | None:
    """The socket file of an ipc:// endpoint, None for any other transport."""
    if endpoint.startswith("ipc://"):
        return Path(endpoint[len("ipc://") :])
    return None


def check_ipc_path(path: Path) -> None:
    """Raise BusConfigError when `path` is too long for a unix socket."""
    if len(os.fsencode(path)) > _MAX_IPC_PATH:
        raise BusConfigError(
            f"ipc socket path too long ({len(os.fsencode(path))} > {_MAX_IPC_PATH} bytes): "
            f"{path}; use a shorter run directory"
        )


def prepare_ipc_dir(directory: Path) -> Path:
    """Create `directory` (and parents) owner-only (0700) and return it.

    Refuses (BusSecurityError) a directory owned by another user: its owner
    could swap our sockets.
    """
    directory.mkdir(parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid():
        raise BusSecurityError(f"{directory} is owned by uid {info.st_uid}, not by us")
    if stat.S_IMODE(info.st_mode) != 0o700:
        directory.chmod(0o700)
    return directory
