"""The run directory of a stack, and which workers a configuration asks for.

`posbus up` (the launcher), every worker, `posbus status` / `down` / `admin`
and the tests agree on where things live through this module only:

    RUN_DIR/run.json            the launcher: its pid, and each worker's
                                name, role, shard, pid, start time, restarts,
                                command service and admin endpoint
    RUN_DIR/pids/NAME.pid       each worker's pid (for systemd and scripts)
    RUN_DIR/admin/NAME.sock     each worker's admin socket (ipc; the admin
                                directory is 0700: only the owner can connect)
    RUN_DIR/logs/NAME.log       each worker's JSON-lines log
    RUN_DIR/ready/NAME.json     written by a worker once it serves (pid, time)
    RUN_DIR/journal/NAME.sqlite each worker's journal (SQLite backend)
    RUN_DIR/launcher.lock       the launcher's exclusive lock (launcher_lock.py)

Everything in it is its owner's only: `prepare` makes the run directory and
each subdirectory 0700 and what is already in them 0600 (a run directory left
by an older version is fixed on the next start), and the processes that write
there run with umask 077 (`OWNER_ONLY_UMASK`).

Worker names are stable: `broker`, `alerts` (webhook alerts, when `[alerts]`
has a sink), `risk`, `gateway.ACCOUNT` (one per account), `positions.I`
(shard I of N, holding the positions of every account), and `feed` (the
demo's market and signal source). Pure
bookkeeping plus small file reads and writes; no processes are started here.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posbus.actors.sharding import Shard

ROLES = ("broker", "gateway", "positions", "risk", "feed", "alerts")
RUN_FILE_VERSION = 1
OWNER_ONLY_UMASK = 0o077
"""The umask of `posbus up`, `posbus worker` and every process the launcher starts."""
SUBDIRS = ("pids", "logs", "ready", "journal", "admin", "bus")
"""The subdirectories of a run directory; `prepare` creates them (bus: the ipc sockets)."""
_ROOT_FILES = ("run.json", "launcher.lock", "journal.sqlite", "demo.log", "backtest.log")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """One worker process of a stack: its name, role, (positions) shard and (gateway) account."""

    name: str
    role: str
    shard: Shard | None = None
    account: str | None = None

    @property
    def service(self) -> str | None:
        """The command service the worker answers on the bus (None for broker, feed, alerts)."""
        if self.role in ("broker", "feed", "alerts"):
            return None
        return self.name


def plan(
    accounts: Sequence[str], position_shards: int, *, demo: bool, alerts: bool = False
) -> list[WorkerSpec]:
    """The workers of one stack, in start order (broker first, the demo feed last).

    `accounts`: the stack's accounts in the configuration's order, one
    gateway each; the positions shards hold every account's positions.
    `alerts`: the alerts worker starts right after the broker, so it hears the
    risk events of every other worker's start (and stops after them).
    """
    if not accounts:
        raise ValueError("a stack needs at least one account")
    if len(set(accounts)) != len(accounts):
        raise ValueError(f"accounts named twice: {', '.join(accounts)}")
    specs = [WorkerSpec("broker", "broker")]
    if alerts:
        specs.append(WorkerSpec("alerts", "alerts"))
    specs.append(WorkerSpec("risk", "risk"))
    specs += [WorkerSpec(f"gateway.{a}", "gateway", account=a) for a in accounts]
    specs += [
        WorkerSpec(f"positions.{i}", "positions", Shard(i, position_shards))
        for i in range(position_shards)
    ]
    if demo:
        specs.append(WorkerSpec("feed", "feed"))
    return specs


def worker_name(role: str, shard: Shard | None, account: str) -> str:
    """The stable name of a worker of `role` (and shard / account)."""
    if role == "positions":
        return f"positions.{0 if shard is None else shard.index}"
    if role == "gateway":
        return f"gateway.{account}"
    return role


class RunDir:
    """Paths under one run directory, created with the right permissions on `prepare`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def run_file(self) -> Path:
        return self.root / "run.json"

    @property
    def admin_dir(self) -> Path:
        return self.root / "admin"

    def admin_path(self, name: str) -> Path:
        """The ipc socket file of `name`'s admin socket."""
        return self.admin_dir / f"{name}.sock"

    def admin_endpoint(self, name: str) -> str:
        """The ZeroMQ endpoint of `name`'s admin socket."""
        return f"ipc://{self.admin_path(name)}"

    def pid_file(self, name: str) -> Path:
        return self.root / "pids" / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def ready_file(self, name: str) -> Path:
        return self.root / "ready" / f"{name}.json"

    def journal_file(self, name: str) -> Path:
        """Where a worker keeps its durable journal (when the backend is a file)."""
        return self.root / "journal" / f"{name}.sqlite"

    def prepare(self) -> None:
        """Create the directories, owner only: each directory 0700, each file in them 0600.

        mkdir's mode is filtered by the umask and directories or files made by
        an older version may be wider: chmod makes it certain. Only what posbus
        puts here is touched (the subdirectories and its own files at the top),
        never anything else a run directory may share its parent with.
        """
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        for sub in SUBDIRS:
            directory = self.root / sub
            directory.mkdir(mode=0o700, exist_ok=True)
            _owner_only_tree(directory)
        for entry in self.root.iterdir():
            name = entry.name
            if name.startswith(_ROOT_FILES) and entry.is_file() and not entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    entry.chmod(0o600)

    def read_run(self) -> dict[str, Any] | None:
        """The launcher's run.json, or None when there is none (no stack was started here)."""
        try:
            data = json.loads(self.run_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        if not isinstance(data, dict):
            return None
        return data

    def write_run(self, data: dict[str, Any]) -> None:
        """Replace run.json atomically (readers never see half a file)."""
        write_json_atomic(self.run_file, data)

    def read_ready(self, name: str) -> dict[str, Any] | None:
        """A worker's ready file, or None."""
        try:
            data = json.loads(self.ready_file(name).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None


def _owner_only_tree(directory: Path) -> None:
    """chmod `directory` and every directory under it 0700, every file 0600 (no symlinks).

    Other processes of the stack may be renaming files in it meanwhile (ready
    files, run.json): one that is gone by the time it is reached is skipped.
    """
    directory.chmod(0o700)
    for parent, dirs, files in os.walk(directory):
        for name, mode in [(d, 0o700) for d in dirs] + [(f, 0o600) for f in files]:
            path = Path(parent) / name
            with contextlib.suppress(FileNotFoundError):
                if not path.is_symlink() and stat.S_IMODE(path.lstat().st_mode) != mode:
                    path.chmod(mode)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def pid_alive(pid: int) -> bool:
    """True when a process with `pid` exists (and is not a zombie we could reap)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return True
