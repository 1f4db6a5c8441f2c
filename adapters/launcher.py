"""The launcher behind `posbus up`: starts a stack's workers as OS processes and keeps them up.

Each worker is `python -m posbus.adapters.cli.main worker --role ROLE ...`, its
own process with its own root supervisor. The launcher starts them in order
(broker first), waits until each says it serves (its ready file), records
pids and endpoints in RUN_DIR/run.json, and then watches them: a worker that
exits is started again, with the same restart intensity as an OTP supervisor
(at most `max_restarts` within `period_s`, spaced by a growing backoff); one
more and the launcher gives up loudly (a CRITICAL log line, every worker
stopped, exit code 1). A worker that exits because another writer holds its
journal (exit code 4) is not restarted: the launcher gives up at once.
Stopping (SIGTERM / Ctrl-C / `posbus down`, also while it is still starting)
sends SIGTERM to the workers in reverse start order, so each snapshots,
flushes and stops; a worker still running after `stop_timeout_s` is killed.
Workers run with umask 077: what they write is their owner's only.

Runs on the main thread of the `posbus up` process; nothing here is shared
with other threads except `request_stop`, which only sets an Event.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posbus.actors.model.errors import PosbusError
from posbus.actors.supervision.intensity import RestartIntensity
from posbus.adapters import launcher_bus
from posbus.adapters.cli.command import EXIT_JOURNAL_LOCKED
from posbus.adapters.config import load_config
from posbus.adapters.launcher_layout import (
    OWNER_ONLY_UMASK,
    RUN_FILE_VERSION,
    RunDir,
    WorkerSpec,
)

logger = logging.getLogger(__name__)


class LaunchError(PosbusError):
    """A stack could not be started, or its launcher gave up on a worker."""


@dataclass(frozen=True, slots=True)
class LauncherPolicy:
    """Restart intensity and timeouts of the launcher."""

    max_restarts: int = 5
    period_s: float = 60.0
    backoff_min_s: float = 0.2
    backoff_max_s: float = 5.0
    ready_timeout_s: float = 30.0
    stop_timeout_s: float = 15.0


@dataclass(slots=True)
class _Running:
    spec: WorkerSpec
    process: subprocess.Popen[bytes]
    started_ns: int
    restarts: int = 0
    intensity: RestartIntensity | None = None
    restart_at: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class Launcher:
    """Starts, watches and stops the workers of one stack (main thread)."""

    def __init__(
        self,
        specs: list[WorkerSpec],
        run_dir: RunDir,
        *,
        config_path: Path | None,
        policy: LauncherPolicy | None = None,
        python: str = sys.executable,
    ) -> None:
        self.specs = specs
        self.run_dir = run_dir
        self.config_path = config_path.resolve() if config_path is not None else None
        self.policy = policy if policy is not None else LauncherPolicy()
        self.python = python
        self.workers: dict[str, _Running] = {}
        self.started_ns = time.time_ns()
        self._stop = threading.Event()
        self.gave_up: str | None = None

    # -- commands ---------------------------------------------------------------------

    def argv(self, spec: WorkerSpec) -> list[str]:
        """The command line of a worker."""
        cmd = [self.python, "-m", "posbus.adapters.cli.main", "worker", "--role", spec.role]
        cmd += ["--run-dir", str(self.run_dir.root), "--name", spec.name]
        if spec.shard is not None:
            cmd += ["--shard", str(spec.shard)]
        if spec.account is not None:
            cmd += ["--account", spec.account]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the broker, and once it serves every other worker (in parallel).

        The caller holds the run directory's lock (launcher_lock.py), so no
        other launcher runs here. Raises LaunchError (after stopping what it
        started) when a worker does not come up, or when `request_stop` is
        called (SIGTERM, Ctrl-C) before every worker serves.
        """
        self.run_dir.prepare()
        try:
            first, rest = self.specs[:1], self.specs[1:]
            for group in (first, rest):
                # Workers reconnect to each other through the broker, so only
                # the broker has to be up first; the rest start side by side.
                for spec in group:
                    self._check_stop()
                    self._spawn(spec)
                for spec in group:
                    self._await_ready(spec)
                self._write_run()
        except LaunchError:
            self.stop()
            raise

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise LaunchError("stopped while starting (SIGTERM or Ctrl-C); no worker is left")

    def _spawn(self, spec: WorkerSpec, restarts: int = 0) -> None:
        self.run_dir.ready_file(spec.name).unlink(missing_ok=True)
        log = self.run_dir.log_file(spec.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self.argv(spec),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                # Ctrl-C in the launcher's terminal must not hit the workers
                # directly: the launcher stops them in order.
                start_new_session=True,
                umask=OWNER_ONLY_UMASK,
            )
        previous = self.workers.get(spec.name)
        running = _Running(spec, process, time.time_ns(), restarts)
        if previous is not None:
            running.intensity = previous.intensity
            running.history = previous.history
        else:
            running.intensity = RestartIntensity(self.policy.max_restarts, self.policy.period_s)
        self.workers[spec.name] = running
        self.run_dir.pid_file(spec.name).write_text(f"{process.pid}\n", encoding="ascii")
        logger.info(
            "worker started",
            extra={
                "worker": spec.name,
                "role": spec.role,
                "pid": process.pid,
                "restarts": restarts,
            },
        )

    def _await_ready(self, spec: WorkerSpec) -> None:
        running = self.workers[spec.name]
        deadline = time.monotonic() + self.policy.ready_timeout_s
        while time.monotonic() < deadline:
            self._check_stop()
            ready = self.run_dir.read_ready(spec.name)
            if ready is not None and ready.get("pid") == running.process.pid:
                return
            code = running.process.poll()
            if code == EXIT_JOURNAL_LOCKED:
                raise LaunchError(self._journal_locked(spec.name))
            if code is not None:
                raise LaunchError(
                    f"worker {spec.name} exited with code {code} while "
                    f"starting; see {self.run_dir.log_file(spec.name)}"
                )
            self._stop.wait(0.02)
        raise LaunchError(
            f"worker {spec.name} not ready within {self.policy.ready_timeout_s} s; "
            f"see {self.run_dir.log_file(spec.name)}"
        )

    def _journal_locked(self, name: str) -> str:
        """The message of a worker that exited because another writer holds its journal."""
        reason = _last_error(self.run_dir.log_file(name)) or "another writer holds its journal"
        return (
            f"worker {name} cannot take its journal's writer lock (exit code "
            f"{EXIT_JOURNAL_LOCKED}): {reason}; stop the other writer first, "
            f"see {self.run_dir.log_file(name)}"
        )

    def request_stop(self) -> None:
        """Make `watch` return (any thread, or a signal handler)."""
        self._stop.set()

    def watch(self, poll_s: float = 0.02) -> int:
        """Restart workers that exit until asked to stop; exit code 0, or 1 when it gave up.

        Stops every worker before it returns.
        """
        try:
            while not self._stop.wait(poll_s):
                if not self._check_workers():
                    return 1
            return 0
        finally:
            self.stop()

    def _check_workers(self) -> bool:
        now = time.monotonic()
        for name, running in list(self.workers.items()):
            if running.restart_at is not None:
                if now >= running.restart_at:
                    running.restart_at = None
                    self._spawn(running.spec, running.restarts + 1)
                    self._write_run()
                continue
            code = running.process.poll()
            if code is None:
                continue
            running.history.append({"exit_code": code, "ts_ns": time.time_ns()})
            if code == EXIT_JOURNAL_LOCKED:
                # Restarting cannot help while another writer holds the journal.
                self.gave_up = name
                message = self._journal_locked(name)
                logger.critical(
                    "worker cannot take its journal's writer lock; launcher gives up",
                    extra={"worker": name, "exit_code": code},
                )
                print(f"posbus: error: {message}; giving up", file=sys.stderr, flush=True)
                return False
            assert running.intensity is not None
            if not running.intensity.record(now):
                self.gave_up = name
                logger.critical(
                    "worker keeps dying; launcher gives up and stops the stack",
                    extra={
                        "worker": name,
                        "exit_code": code,
                        "max_restarts": self.policy.max_restarts,
                        "period_s": self.policy.period_s,
                    },
                )
                print(
                    f"posbus: error: worker {name} exited {running.intensity.max_restarts + 1} "
                    f"times within {self.policy.period_s} s (last exit code {code}); giving up, "
                    f"see {self.run_dir.log_file(name)}",
                    file=sys.stderr,
                )
                return False
            attempt = running.intensity.recent(now)
            # The first exit in the window is restarted at once (OTP): a crash
            # costs no added downtime; repeated ones back off exponentially.
            delay = (
                0.0
                if attempt <= 1
                else min(self.policy.backoff_max_s, self.policy.backoff_min_s * 2 ** (attempt - 2))
            )
            logger.error(
                "worker exited; restarting",
                extra={"worker": name, "exit_code": code, "delay_s": delay, "attempt": attempt},
            )
            if delay == 0.0:
                self._spawn(running.spec, running.restarts + 1)
            else:
                running.restart_at = now + delay
            self._write_run()
        return True

    def stop(self) -> None:
        """SIGTERM every worker in reverse start order, wait, SIGKILL stragglers; clear run.json."""
        for spec in reversed(self.specs):
            running = self.workers.get(spec.name)
            if running is None or running.process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                running.process.send_signal(signal.SIGTERM)
            try:
                running.process.wait(self.policy.stop_timeout_s)
            except subprocess.TimeoutExpired:
                logger.error("worker ignored SIGTERM; killing it", extra={"worker": spec.name})
                running.process.kill()
                running.process.wait(5)
        for spec in self.specs:
            self.run_dir.pid_file(spec.name).unlink(missing_ok=True)
            self.run_dir.ready_file(spec.name).unlink(missing_ok=True)
        data = self.run_dir.read_run()
        if data is not None and data.get("launcher_pid") == os.getpid():
            self.run_dir.run_file.unlink(missing_ok=True)

    # -- run.json ---------------------------------------------------------------------------

    def _write_run(self) -> None:
        workers = {}
        for name, running in self.workers.items():
            spec = running.spec
            workers[name] = {
                "name": name,
                "role": spec.role,
                "shard": None if spec.shard is None else str(spec.shard),
                "account": spec.account,
                "pid": running.process.pid,
                "started_ns": running.started_ns,
                "restarts": running.restarts,
                "restarting": running.restart_at is not None,
                "command": spec.service,
                "admin": self.run_dir.admin_endpoint(name),
                "log": str(self.run_dir.log_file(name)),
                "exits": running.history[-10:],
            }
        self.run_dir.write_run(
            {
                "version": RUN_FILE_VERSION,
                "launcher_pid": os.getpid(),
                "started_ns": self.started_ns,
                "config": None if self.config_path is None else str(self.config_path),
                "run_dir": str(self.run_dir.root),
                "bus": _bus_entry(self.config_path, self.run_dir.root),
                # The accounts the stack trades, one gateway each, in the config's order.
                "accounts": [spec.account for spec in self.specs if spec.role == "gateway"],
                "workers": workers,
            }
        )


@functools.cache
def _bus_entry(config_path: Path | None, root: Path) -> dict[str, Any]:
    """Where a client (in any language) connects: the broker's endpoints, and whether CURVE.

    Read once per launcher from the configuration the stack was started with,
    so a later edit of the file cannot change what run.json says.
    """
    bus = load_config(config_path).bus
    endpoints = launcher_bus.endpoints(bus, root)
    return {
        "transport": bus.transport,
        "curve": bus.transport == "tcp",
        "events_in": endpoints.events_in,
        "events_out": endpoints.events_out,
        "commands": endpoints.commands,
        "workers": endpoints.workers,
    }


def _last_error(log: Path) -> str | None:
    """The last `posbus: error: ...` line a worker wrote to its log (its stderr), if any."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 65536))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    prefix = "posbus: error: "
    lines = [line[len(prefix) :].strip() for line in tail.splitlines() if line.startswith(prefix)]
    return lines[-1] if lines else None
