"""Restart benchmark: `kill -9` of a positions worker to serving again, snapshots vs full replay.

    python bench/bench_restart.py            # 1,000 positions x 1,000 events (a few minutes)
    python bench/bench_restart.py --quick    # 100 positions x 1,000 events

A positions worker whose journal holds 1,000 events per position is killed
with SIGKILL in a real stack (`posbus up --detach`: launcher, broker, risk,
gateway, positions.0; no demo). The clock runs from just before the kill to
the `ready_ns` in the ready file the launcher's new positions.0 writes once
every journaled position has recovered. Two variants share one journal: a
snapshot per position 10 events before its end, or none (full replay).
Target: with snapshots under 2 s and at least 10x faster than full replay.
Each variant is killed 3 times; the medians are printed, with each restart's
breakdown. The journal, the timing and the breakdown: docs/architecture.md,
"Restart benchmark".

It must never leave a process behind: every process it starts is stopped on
exit, on error too (`posbus down`, then SIGKILL of what is left in its run
directories).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from posbus.actors.delivery import Outbox, decode_record
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.group_commit import GroupCommitConfig
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.bus.codec import encode
from posbus.bus.messages import Liquidity, OrderAck, OrderFill, OrderIntent, OrderSubmit

T0 = 1_700_000_000_000_000_000
ACCOUNT = "default"  # the config's account: the positions worker (1 shard) owns every stream
WORKER = "positions.0"
FILL_QTY = Decimal("0.001")
PRICE = Decimal("0.12345678")
TAIL = 10
KILLS = 3
POLL_S = 0.005
TARGET_S = 2.0
TARGET_RATIO = 10.0

CONFIG = """\
run_dir = "{run_dir}"

[log]
level = "INFO"

[exchange]
reject_rate = 0.0
partial_fill_rate = 0.0

[storage]
snapshot_interval_s = 0

[workers]
position_shards = 1
tick_s = 0.5

[launcher]
max_restarts = 5
period_s = 1
stop_timeout_s = 60
"""


# -- the journal --------------------------------------------------------------------------------


def stream_payloads(symbol: str, events: int) -> list[bytes]:
    """One order of (events - 3) x 0.001: intent, submit, ack, then the fills that fill it."""
    fills = events - 3
    order_id, client_id = f"{ACCOUNT}:{symbol}:1", "pb1"
    qty = FILL_QTY * fills
    head = [
        OrderIntent(ACCOUNT, symbol, Side.BUY, qty, None, "i1", False, "bench", T0),
        OrderSubmit(order_id, client_id, ACCOUNT, symbol, Side.BUY, qty, None, T0),
        OrderAck(order_id, client_id, "x1", T0),
    ]
    out = [encode(m, seq=0, sender="bench", ts_ns=T0) for m in head]
    for n in range(fills):
        fill = OrderFill(
            order_id=order_id,
            client_order_id=client_id,
            trade_id=f"T{n}",
            account=ACCOUNT,
            symbol=symbol,
            side=Side.BUY,
            qty=FILL_QTY,
            price=PRICE,
            fee=Decimal("0.00000012"),
            fee_currency="USDT",
            liquidity=Liquidity.TAKER,
            ts_ns=T0 + n + 1,
        )
        out.append(encode(fill, seq=0, sender="bench", ts_ns=T0 + n + 1))
    return out


def build_journal(path: Path, symbols: list[str], events: int) -> None:
    """Every position's stream, one large commit per stream; closed (the lock let go) on return."""
    journal = SqliteJournal(path, commit=GroupCommitConfig(batch_max=50_000))
    try:
        for symbol in symbols:
            journal.append_many(position_stream(ACCOUNT, symbol), stream_payloads(symbol, events))
            assert journal.last_seq(position_stream(ACCOUNT, symbol)) == events
    finally:
        journal.close()


def add_snapshots(path: Path, symbols: list[str], tail: int) -> None:
    """Snapshot each stream at all but its last `tail` events (as the 30 s timer would)."""
    journal = SqliteJournal(path, commit=GroupCommitConfig(batch_max=50_000))
    try:
        outbox = Outbox(journal, "bench", ManualClock(T0))
        for symbol in symbols:
            stream = position_stream(ACCOUNT, symbol)
            last = journal.last_seq(stream)
            shell = PositionActor.shell(outbox, ACCOUNT, symbol, snapshots=journal)
            for record in journal.read(stream):
                if record.seq > last - tail:
                    break
                shell.cursor.offer(decode_record(record))
            assert shell.take_snapshot() == last - tail
    finally:
        journal.close()


# -- the stack ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restart:
    """One kill -9 and what the new worker took to serve again (seconds)."""

    total_s: float  # kill -> ready file's ready_ns
    respawn_s: float  # kill -> the new process started (launcher poll + backoff + fork)
    worker_s: float  # new process started -> ready
    recovery_s: float  # sum of the new worker's "stream recovered" duration_ms
    streams: int
    replayed: int
    from_snapshot: int


class Stack:
    """One `posbus up --detach` in `root` (short path: ipc socket paths are limited)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run_dir = root / "var"
        self.config = root / "posbus.toml"
        root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(CONFIG.format(run_dir=self.run_dir), encoding="utf-8")
        self.journal = self.run_dir / "journal" / f"{WORKER}.sqlite"
        self.ready = self.run_dir / "ready" / f"{WORKER}.json"
        self.log = self.run_dir / "logs" / f"{WORKER}.log"
        self.seen: set[int] = set()

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "posbus.adapters.cli.main", *args]
        result = subprocess.run(
            [*argv, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"posbus {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def up(self) -> None:
        """Start the stack; returns once every worker serves (the first recovery included)."""
        self.cli("up", "--detach", "--ready-timeout", "900", timeout=960)
        self.remember_pids()

    def run_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.run_dir / "run.json").read_text(encoding="utf-8"))
        return data

    def remember_pids(self) -> None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = self.run_json()
            self.seen.add(int(data["launcher_pid"]))
            self.seen.update(int(w["pid"]) for w in data["workers"].values())
        for pid_file in (self.run_dir / "pids").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                self.seen.add(int(pid_file.read_text(encoding="ascii")))

    def worker_pid(self) -> int:
        return int(self.run_json()["workers"][WORKER]["pid"])

    def wait_recovered(self, pid: int, positions: int, timeout: float = 120.0) -> None:
        """Until the worker's Clone fetch is done with every position held (admin status)."""
        deadline = time.monotonic() + timeout
        status: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError, ValueError):
                status = json.loads(self.cli("admin", WORKER, "status", timeout=30).stdout)
                # status["positions"]: the actors it holds; "recovered": its Clone fetch.
                if (
                    status.get("pid") == pid
                    and status.get("positions") == positions
                    and status.get("recovered", {}).get("state") == "done"
                ):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{WORKER} did not report {positions} positions recovered: {status}")

    def kill_and_time(self, timeout: float = 900.0) -> Restart:
        """SIGKILL the positions worker; wait for the launcher's new one to write its ready file."""
        old = self.worker_pid()
        kill_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        kill_ns = time.time_ns()
        os.kill(old, signal.SIGKILL)
        # The old process is gone: what the log gets from now on is the new one's.
        log_offset = self.log.stat().st_size
        launcher = int(self.run_json()["launcher_pid"])
        deadline = time.monotonic() + timeout
        next_check = time.monotonic() + 1.0
        ready: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            try:
                data = json.loads(self.ready.read_bytes())
            except (FileNotFoundError, ValueError):
                data = None
            if isinstance(data, dict) and data.get("pid") not in (None, old):
                ready = data
                break
            if time.monotonic() >= next_check:
                next_check += 1.0
                if not _alive(launcher):
                    raise RuntimeError(f"the launcher exited; see {self.run_dir / 'logs'}")
            time.sleep(POLL_S)
        if ready is None:
            raise RuntimeError(f"{WORKER} not serving again within {timeout} s after kill -9")
        pid = int(ready["pid"])
        self.seen.add(pid)
        total = (int(ready["ready_ns"]) - kill_ns) / 1e9
        respawn = _process_start_boottime(pid) - kill_boot
        durations, replayed, from_snapshot = _recovered_lines(self.log, log_offset)
        return Restart(
            total_s=total,
            respawn_s=respawn,
            worker_s=total - respawn,
            recovery_s=sum(durations) / 1000,
            streams=len(durations),
            replayed=replayed,
            from_snapshot=from_snapshot,
        )

    def close(self) -> None:
        """`posbus down`; SIGKILL whatever of this stack is still running after it."""
        self.remember_pids()
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            self.cli("down", "--timeout", "120", timeout=180)
        self.remember_pids()
        for pid in self.seen:
            if _alive(pid) and str(self.run_dir) in _cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _process_start_boottime(pid: int) -> float:
    """When `pid` started, in CLOCK_BOOTTIME seconds (/proc/PID/stat field 22; 10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _recovered_lines(log: Path, offset: int) -> tuple[list[float], int, int]:
    """After `offset`: "stream recovered" duration_ms of each position, replayed, snapshots used."""
    with open(log, "rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", errors="replace")
    durations, replayed, from_snapshot = [], 0, 0
    for line in text.splitlines():
        if '"stream recovered"' not in line:
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("msg") == "stream recovered" and entry["stream"].startswith("position/"):
                durations.append(float(entry["duration_ms"]))
                replayed += int(entry["replayed"])
                from_snapshot += int(entry["snapshot_seq"]) > 0
    return durations, replayed, from_snapshot


# -- the bench ----------------------------------------------------------------------------------


def run_variant(
    name: str, root: Path, journal: Path, positions: int, events: int, kills: int
) -> tuple[list[Restart], float]:
    """Kill -9 the positions worker of a stack on `journal` `kills` times; (restarts, up s)."""
    stack = Stack(root)
    stack.journal.parent.mkdir(parents=True)
    shutil.copyfile(journal, stack.journal)
    restarts: list[Restart] = []
    try:
        start = time.perf_counter()
        stack.up()
        first_up = time.perf_counter() - start
        stack.wait_recovered(stack.worker_pid(), positions)
        print(f"{name}: stack up in {first_up:.1f} s (first start included)", flush=True)
        for k in range(kills):
            # Past [launcher] period_s: each kill is a first exit, restarted at once.
            time.sleep(1.5)
            restart = stack.kill_and_time()
            restarts.append(restart)
            print(
                f"  kill {k + 1}: serving again after {restart.total_s:7.3f} s "
                f"(kill -> new process {restart.respawn_s:.2f} s, process -> ready "
                f"{restart.worker_s:7.3f} s, of which stream recovery {restart.recovery_s:7.3f} s "
                f"over {restart.streams:,} streams: {restart.replayed:,} events replayed, "
                f"{restart.from_snapshot:,} from a snapshot)",
                flush=True,
            )
            if restart.streams != positions:
                raise RuntimeError(f"expected {positions} recovered streams, saw {restart.streams}")
            stack.wait_recovered(stack.worker_pid(), positions)
    finally:
        stack.close()
    # Honesty check: the restarts replayed the journal they were given, nothing was appended.
    journal_after = SqliteJournal(stack.journal, writer=False)
    try:
        held = [s for s in journal_after.streams() if s.startswith("position/")]
        grown = [s for s in held if journal_after.last_seq(s) != events]
    finally:
        journal_after.close()
    if grown or len(held) != positions:
        raise RuntimeError(f"position streams changed during the bench: {len(held)}, {grown[:3]}")
    return restarts, first_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 positions x 1,000 events")
    parser.add_argument("--kills", type=int, default=KILLS, help=f"kills per variant ({KILLS})")
    args = parser.parse_args()
    positions, events = (100, 1_000) if args.quick else (1_000, 1_000)
    symbols = [f"S{n:04d}/USDT" for n in range(positions)]
    # Short: ipc socket paths under RUN_DIR/bus and RUN_DIR/admin are limited to ~100 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="pbr-", dir="/tmp"))
    try:
        base = workdir / "base.sqlite"
        start = time.perf_counter()
        build_journal(base, symbols, events)
        print(
            f"journal: {positions:,} positions x {events:,} events built in "
            f"{time.perf_counter() - start:.1f} s ({base.stat().st_size / 1e6:.0f} MB)",
            flush=True,
        )
        snap = workdir / "snap.sqlite"
        shutil.copyfile(base, snap)
        start = time.perf_counter()
        add_snapshots(snap, symbols, TAIL)
        print(
            f"snapshots at all but the last {TAIL} events of each stream: "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
        with_snap, _ = run_variant("snapshots", workdir / "s", snap, positions, events, args.kills)
        full, _ = run_variant("full replay", workdir / "f", base, positions, events, args.kills)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    snap_s = statistics.median(r.total_s for r in with_snap)
    full_s = statistics.median(r.total_s for r in full)
    ratio = full_s / snap_s
    met = snap_s < TARGET_S and ratio >= TARGET_RATIO
    print(
        f"restart after kill -9, {positions:,} positions, {positions * events:,} events: "
        f"snapshots {snap_s:.2f} s | full replay {full_s:.1f} s | ratio {ratio:.1f}x "
        f"(target: < {TARGET_S:g} s and >= {TARGET_RATIO:g}x: {'met' if met else 'MISSED'})"
    )
    for label, runs in (("snapshots", with_snap), ("full replay", full)):
        print(
            f"  {label:11} medians: kill -> new process "
            f"{statistics.median(r.respawn_s for r in runs):.2f} s, process -> ready "
            f"{statistics.median(r.worker_s for r in runs):.2f} s, of which stream recovery "
            f"{statistics.median(r.recovery_s for r in runs):.2f} s"
        )


if __name__ == "__main__":
    main()
