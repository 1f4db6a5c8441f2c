"""Test harness for real stacks: `posbus up --detach` in a temporary run directory.

Every process is real (the launcher, the broker, each worker) and every
socket too. Waits are bounded polls of `posbus status --json`, `posbus
positions --json` or admin sockets, never bare sleeps. `Stack.close` always
brings the stack down (and kills what refuses to stop), so a failing test
leaves no process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# Fast heartbeats so a dead worker or broker is noticed in about a second.
BASE_CONFIG = """\
run_dir = "{run_dir}"

[log]
level = "INFO"

[exchange]
reject_rate = 0.0
partial_fill_rate = 0.0

[demo]
steps_per_s = {steps_per_s}
open_probability = {open_p}
close_probability = {close_p}

[bus]
heartbeat_interval_s = 0.2
# 2 s of silence before a worker counts as dead: slack for a loaded CI machine.
liveness = 10
{bus_extra}

[workers]
position_shards = {shards}
tick_s = 0.5

[launcher]
max_restarts = {max_restarts}
period_s = 30
stop_timeout_s = 10
"""


def posbus(
    *args: str, timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the posbus CLI in a fresh interpreter (as a user would)."""
    result = subprocess.run(
        [sys.executable, "-m", "posbus.adapters.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"posbus {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 30.0, every: float = 0.1
) -> T:
    """Poll `probe` until it returns something other than None (or False); bounded."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (AssertionError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            last_error = exc
            value = None
        if value is not None and value is not False:
            return value
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}; last error: {last_error}"
    )


def where(value: T, condition: Callable[[T], bool]) -> T | None:
    """`value` when it meets `condition`, else None (for `wait_for` probes)."""
    return value if condition(value) else None


class Stack:
    """One stack in `root` (a short temporary directory: ipc paths are limited to ~100 bytes)."""

    def __init__(
        self,
        root: Path,
        *,
        demo: bool = True,
        steps_per_s: int = 20,
        open_p: float = 0.0,
        close_p: float = 0.0,
        shards: int = 1,
        extra: str = "",
        bus_extra: str = "",
        max_restarts: int = 5,
    ) -> None:
        self.root = root
        self.run_dir = root / "var"
        self.config = root / "posbus.toml"
        self.config.write_text(
            BASE_CONFIG.format(
                run_dir=self.run_dir,
                steps_per_s=steps_per_s,
                open_p=open_p,
                close_p=close_p,
                shards=shards,
                bus_extra=bus_extra,
                max_restarts=max_restarts,
            )
            + extra,
            encoding="utf-8",
        )
        self.demo = demo

    def cli(
        self, *args: str, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`posbus ARGS --config <this stack's config>`."""
        return posbus(*args, "--config", str(self.config), timeout=timeout, check=check)

    def json(self, *args: str) -> Any:
        """The JSON a `--json` command prints."""
        return json.loads(self.cli(*args, "--json").stdout)

    def up(self) -> None:
        """`posbus up --detach` and wait until every worker serves."""
        args = ["up", "--detach"] + (["--demo"] if self.demo else [])
        self.cli(*args, timeout=120)
        wait_for("every worker serving", self.all_serving)

    def status(self) -> dict[str, Any]:
        """`posbus status --json`."""
        doc: dict[str, Any] = self.json("status")
        return doc

    def all_serving(self) -> dict[str, Any] | None:
        """The status document once every worker serves, else None."""
        doc = self.status()
        return doc if all(w["serving"] for w in doc["workers"]) else None

    def worker(self, name: str) -> dict[str, Any]:
        """One worker's entry of `posbus status --json`."""
        return next(w for w in self.status()["workers"] if w["name"] == name)

    def admin(self, worker: str, *args: str) -> Any:
        """`posbus admin WORKER ARGS` as JSON."""
        return json.loads(self.cli("admin", worker, *args).stdout)

    def positions(self) -> dict[str, dict[str, Any]]:
        """`posbus positions --json`, keyed by symbol."""
        return {p["symbol"]: p for p in self.json("positions")["positions"]}

    def pids(self) -> list[int]:
        """Pids of the launcher and every worker recorded in run.json."""
        try:
            data = json.loads((self.run_dir / "run.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return [int(data["launcher_pid"])] + [int(w["pid"]) for w in data["workers"].values()]

    def close(self) -> None:
        """`posbus down`; kill whatever is still running after it."""
        pids = self.pids()
        self.cli("down", "--timeout", "30", check=False, timeout=60)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
