"""One stack per run directory: the launcher's lock, signals while starting, locked journals.

Real processes throughout: `posbus up` (foreground or --detach), its workers,
and faults injected into a worker through tests/support/worker_faults (a
`sitecustomize` the workers pick up from PYTHONPATH). Waits are bounded polls.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stack_harness import wait_for, where

from posbus.adapters.launcher_layout import pid_alive

FAULTS = Path(__file__).resolve().parents[1] / "support" / "worker_faults"
WORKERS = ["broker", "gateway.default", "positions.0", "risk"]

# Memory journals and no demo feed: the smallest stack, quick to start and stop.
CONFIG = """\
run_dir = "{run_dir}"

[log]
level = "INFO"

[bus]
heartbeat_interval_s = 0.2
liveness = 10

[workers]
journal = "{journal}"

[launcher]
max_restarts = 5
period_s = 30
stop_timeout_s = 10
"""


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # ipc socket paths are limited to ~100 bytes: pytest's tmp_path can be too long.
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        yield Path(name)


class Rig:
    """A config and run directory in `root`; kills every process it saw when closed."""

    def __init__(
        self,
        root: Path,
        *,
        journal: str = "memory",
        fault: str = "",
        fault_worker: str = "",
        fault_if: str = "",
    ) -> None:
        self.root = root
        self.run_dir = root / "var"
        self.config = root / "posbus.toml"
        self.config.write_text(CONFIG.format(run_dir=self.run_dir, journal=journal))
        self.env = dict(os.environ)
        self.env.pop("POSBUS_RUN_DIR", None)
        if fault:
            self.env["PYTHONPATH"] = os.pathsep.join(
                [str(FAULTS), *filter(None, [self.env.get("PYTHONPATH")])]
            )
            self.env["POSBUS_TEST_FAULT"] = fault
            self.env["POSBUS_TEST_FAULT_WORKER"] = fault_worker
            self.env["POSBUS_TEST_FAULT_IF"] = fault_if
        self.seen: set[int] = set()
        self.popens: list[subprocess.Popen[str]] = []

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "posbus.adapters.cli.main",
            *args,
            "--config",
            str(self.config),
        ]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        self.popens.append(process)
        self.seen.add(process.pid)
        return process

    def run_file(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.run_dir / "run.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        self.seen.add(int(data["launcher_pid"]))
        self.seen.update(int(w["pid"]) for w in data["workers"].values())
        return data

    def pid_files(self) -> dict[str, int]:
        pids = {}
        for path in (self.run_dir / "pids").glob("*.pid"):
            with contextlib.suppress(ValueError, FileNotFoundError):
                pids[path.stem] = int(path.read_text())
        self.seen.update(pids.values())
        return pids

    def worker_processes(self) -> dict[int, list[str]]:
        """Every live `posbus worker` process of this run directory: pid -> argv."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if "worker" in argv and str(self.run_dir) in argv and pid_alive(int(entry.name)):
                found[int(entry.name)] = argv
        self.seen.update(found)
        return found

    def lock_is_held(self) -> bool:
        fd = os.open(self.run_dir / "launcher.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def close(self) -> None:
        self.run("down", "--timeout", "30")
        for process in self.popens:
            if process.poll() is None:
                process.kill()
            process.communicate()
        self.worker_processes()
        for pid in self.seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def rig(short_tmp: Path) -> Iterator[Rig]:
    r = Rig(short_tmp)
    try:
        yield r
    finally:
        r.close()


def _role_of(argv: list[str]) -> str:
    return argv[argv.index("--name") + 1]


def test_two_ups_started_at_the_same_instant_run_exactly_one_stack(rig: Rig) -> None:
    for attempt in range(20):
        first, second = rig.popen("up"), rig.popen("up")
        pair = (first, second)
        loser = wait_for(
            f"one of the two launchers to refuse (attempt {attempt})",
            lambda pair=pair: next((p for p in pair if p.poll() is not None), None),  # type: ignore[misc]
        )
        winner = second if loser is first else first
        out, err = loser.communicate(timeout=30)
        assert loser.returncode == 1, (out, err)
        assert out == ""
        assert (
            err
            == f"posbus: error: a stack is already running in {rig.run_dir} (pid {winner.pid})\n"
        )
        data = wait_for(
            "the winner's stack up",
            lambda: where(rig.run_file(), lambda d: d is not None and len(d["workers"]) == 4),
        )
        assert data["launcher_pid"] == winner.pid
        # Exactly one process per worker, every one the winner's child.
        workers = rig.worker_processes()
        assert sorted(_role_of(argv) for argv in workers.values()) == WORKERS
        for pid in workers:
            stat = Path(f"/proc/{pid}/stat").read_text()
            assert int(stat.rsplit(") ", 1)[1].split()[1]) == winner.pid
        assert set(rig.pid_files().values()) == set(workers)
        assert (rig.run_dir / "launcher.lock").read_text() == f"{winner.pid}\n"
        winner.send_signal(signal.SIGTERM)
        winner.communicate(timeout=60)
        assert winner.returncode == 0
        wait_for("every worker gone", lambda: not rig.worker_processes())
        assert rig.run_file() is None


def test_a_detached_launcher_keeps_the_lock_and_kill_9_frees_it(rig: Rig) -> None:
    up = rig.run("up", "--detach")
    assert up.returncode == 0, up.stderr
    data = rig.run_file()
    assert data is not None
    launcher = int(data["launcher_pid"])
    # The parent has returned: the detached launcher alone holds the lock.
    assert rig.lock_is_held()
    assert (rig.run_dir / "launcher.lock").read_text() == f"{launcher}\n"

    for args in (("up", "--detach"), ("up",)):
        again = rig.run(*args)
        assert again.returncode == 1
        assert again.stdout == ""
        message = f"posbus: error: a stack is already running in {rig.run_dir} (pid {launcher})\n"
        assert again.stderr == message
    assert rig.run_file() == data
    assert len(rig.worker_processes()) == 4

    os.kill(launcher, signal.SIGKILL)
    wait_for("the launcher gone", lambda: not pid_alive(launcher))
    # Its workers still run, and none of them holds the lock.
    assert len(rig.worker_processes()) == 4
    assert not rig.lock_is_held()
    down = rig.run("down")
    assert down.returncode == 0, down.stderr
    wait_for("the orphaned workers gone", lambda: not rig.worker_processes())
    up = rig.run("up", "--detach")
    assert up.returncode == 0, up.stderr
    assert rig.run_file() is not None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_starting_stops_every_worker_started(
    short_tmp: Path, signum: signal.Signals
) -> None:
    rig = Rig(short_tmp, fault="slow", fault_worker="risk")
    try:
        launcher = rig.popen("up", "--ready-timeout", "600")
        # The broker serves, the others are started; risk never becomes ready.
        started = wait_for(
            "every worker started",
            lambda: where(rig.pid_files(), lambda pids: sorted(pids) == WORKERS),
        )
        wait_for("the broker ready", (rig.run_dir / "ready" / "broker.json").exists)
        assert launcher.poll() is None
        launcher.send_signal(signum)
        _, err = launcher.communicate(timeout=60)
        assert launcher.returncode == 1
        assert "stopped while starting" in err
        wait_for(
            "every started worker gone",
            lambda: not any(pid_alive(pid) for pid in started.values()),
        )
        assert not rig.worker_processes()
        assert rig.run_file() is None
        assert not rig.lock_is_held()
    finally:
        rig.close()


def _starts(rig: Rig, worker: str) -> int:
    count = 0
    for line in (rig.run_dir / "logs" / "launcher.log").read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            if entry.get("msg") == "worker started" and entry.get("worker") == worker:
                count += 1
    return count


def test_a_worker_whose_journal_is_locked_is_not_restarted_the_launcher_gives_up(
    short_tmp: Path,
) -> None:
    marker = short_tmp / "lock-risk"
    rig = Rig(short_tmp, fault="locked", fault_worker="risk", fault_if=str(marker))
    try:
        up = rig.run("up", "--detach")
        assert up.returncode == 0, up.stderr
        data = rig.run_file()
        assert data is not None
        pids = [int(data["launcher_pid"])] + [int(w["pid"]) for w in data["workers"].values()]
        marker.touch()
        os.kill(int(data["workers"]["risk"]["pid"]), signal.SIGKILL)
        wait_for("the whole stack stopped", lambda: not any(pid_alive(p) for p in pids), 60)
        out = (rig.run_dir / "logs" / "launcher.out").read_text()
        assert (
            "posbus: error: worker risk cannot take its journal's writer lock (exit code 4): "
            "worker risk: risk.sqlite: another writer holds this journal" in out
        )
        assert "giving up" in out
        # Started once, restarted once after the kill, and never again.
        assert _starts(rig, "risk") == 2
        assert not rig.worker_processes()
    finally:
        rig.close()


def test_a_locked_journal_at_start_fails_up_naming_the_worker(short_tmp: Path) -> None:
    rig = Rig(short_tmp, fault="locked", fault_worker="positions.0")
    try:
        worker = rig.run("worker", "--role", "positions", "--run-dir", str(rig.run_dir))
        assert worker.returncode == 4
        assert "posbus: error: worker positions.0: positions.0.sqlite: another writer" in (
            worker.stderr
        )
        up = rig.run("up", "--detach")
        assert up.returncode == 1
        assert up.stdout == ""
        assert "worker positions.0 cannot take its journal's writer lock (exit code 4)" in (
            up.stderr
        )
        assert _starts(rig, "positions.0") == 1
        wait_for("every worker gone", lambda: not rig.worker_processes())
    finally:
        rig.close()


def test_a_second_copy_of_a_worker_exits_4_while_the_first_holds_its_journal(
    short_tmp: Path,
) -> None:
    rig = Rig(short_tmp, journal="sqlite")
    try:
        up = rig.run("up", "--detach")
        assert up.returncode == 0, up.stderr
        second = rig.run("worker", "--role", "risk", "--run-dir", str(rig.run_dir))
        assert second.returncode == 4
        assert f"{rig.run_dir}/journal/risk.sqlite" in second.stderr
        assert "another writer holds this journal" in second.stderr
    finally:
        rig.close()
