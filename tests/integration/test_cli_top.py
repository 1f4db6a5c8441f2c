"""`posbus top` against a real stack: JSON frames, a killed worker, the tables, no stack.

One stack (launcher, broker, risk, gateway, feed, positions.0 and .1) serves
every test of the module; the test that kills a worker waits, through `top`
itself, until the launcher has it serving again, so the stack is whole for
whichever test runs next. Every wait is on a state `top` or `status` reports.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from stack_harness import Stack, wait_for, where

MONEY = ("qty", "avg_entry_price", "realized_pnl", "fees", "mark", "unrealized_pnl")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), shards=2)
        s.up()
        try:
            s.cli("order", "buy", "BTC/USDT", "0.1")
            wait_for(
                "the BTC/USDT fill applied",
                lambda: where(s.positions(), lambda p: p["BTC/USDT"]["qty"] == "0.1"),
            )
            yield s
        finally:
            s.close()


def _top_command(s: Stack, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "posbus.adapters.cli.main",
        "top",
        *args,
        "--config",
        str(s.config),
    ]


def _top(s: Stack, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """`posbus top ARGS` to a pipe, as a terminal of `columns` columns would size it."""
    return subprocess.run(
        _top_command(s, *args),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": str(columns)},
    )


def _read_lines(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    """Hand each line `process` prints to `lines` (a reader thread: the test never blocks)."""
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)


def _worker(frame: dict[str, Any], name: str) -> dict[str, Any]:
    return next(w for w in frame["workers"] if w["name"] == name)


def test_json_frames_carry_every_worker_the_risk_state_and_the_positions(stack: Stack) -> None:
    names = {w["name"] for w in stack.status()["workers"]}
    result = _top(stack, "--json", "--frames", "3", "--interval", "0.2")
    assert result.returncode == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(frames) == 3
    assert [f["ts_ns"] for f in frames] == sorted(f["ts_ns"] for f in frames)
    for frame in frames:
        assert {w["name"] for w in frame["workers"]} == names
        assert all(w["state"] == "up" and w["serving"] for w in frame["workers"]), frame
        assert frame["risk"]["state"] == "Normal"
        assert all(isinstance(v, str) for v in frame["risk"]["metrics"].values())
        btc = next(p for p in frame["positions"] if p["symbol"] == "BTC/USDT")
        assert btc["qty"] == "0.1"
        for key in MONEY:
            # Money travels as exact decimal strings (null before the first quote).
            value = btc[key]
            assert value is None or (isinstance(value, str) and Decimal(value).is_finite()), key
        # The simulated exchange has no circuit breaker.
        assert _worker(frame, "gateway.default")["breaker"] is None
        for shard in ("positions.0", "positions.1"):
            row = _worker(frame, shard)
            # The one order's signals were all applied before the frames (the
            # fixture waited for its fill), and the feed quotes all the while.
            assert row["journal_lag"] == 0, row
            assert isinstance(row["mailbox_max"], int) and row["actor_restarts"] == 0, row
            assert Decimal(row["msgs_in_per_s"]) > 0, row
        assert Decimal(_worker(frame, "risk")["latency_p99_us"]) > 0
        assert frame["errors"] == []


def test_a_positions_worker_killed_shows_as_not_serving_then_restarted(stack: Stack) -> None:
    victim = "positions.0"
    top = subprocess.Popen(
        _top_command(stack, "--json", "--interval", "0.2", "--frames", "300"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_lines, args=(top, lines), daemon=True).start()
    stamps: list[int] = []

    def next_frame_where(what: str, condition: Callable[[dict[str, Any]], bool]) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                frame = json.loads(lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
            stamps.append(frame["ts_ns"])
            if condition(frame):
                return frame
        raise AssertionError(f"no frame of posbus top showed {what} within 30 s")

    try:
        before = next_frame_where("every worker up", lambda f: _worker(f, victim)["serving"])
        pid = _worker(before, victim)["pid"]
        # Stopped, it answers nothing until it is killed: top must see it down
        # however fast the launcher would restart a dead worker.
        os.kill(pid, signal.SIGSTOP)
        down = next_frame_where(
            f"{victim} not serving", lambda f: not _worker(f, victim)["serving"]
        )
        os.kill(pid, signal.SIGKILL)
        row = _worker(down, victim)
        assert row["state"] in ("alive", "DOWN"), row
        assert row["msgs_in_per_s"] is None and row["journal_lag"] is None, row
        # The other workers are still read in the same frame.
        assert _worker(down, "positions.1")["serving"], down
        assert down["risk"]["state"] == "Normal"
        back = next_frame_where(
            f"{victim} restarted by the launcher",
            lambda f: _worker(f, victim)["serving"] and _worker(f, victim)["pid"] != pid,
        )
        assert _worker(back, victim)["restarts"] >= 1
        # A dead worker never held a frame up for long.
        assert max(b - a for a, b in itertools.pairwise(stamps)) < 3e9, stamps
        # SIGTERM, not SIGINT: a shell running this test in the background
        # starts it with SIGINT ignored, and top then never sees Ctrl-C.
        top.send_signal(signal.SIGTERM)
        assert top.wait(10) == 0
    finally:
        if top.poll() is None:
            top.kill()
            top.wait(10)


def test_table_frames_name_every_worker_and_the_risk_state(stack: Stack) -> None:
    names = [w["name"] for w in stack.status()["workers"]]
    result = _top(stack, "--frames", "2", "--interval", "0.2", columns=80)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("posbus top") == 2
    assert out.count("risk Normal") == 2
    assert out.count("breaker gateway.default -") == 2
    for name in names:
        assert out.count(name) >= 2, (name, out)
    assert "BTC/USDT" in out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    # A wider terminal also shows each worker's role.
    wide = _top(stack, "--once", columns=120)
    assert wide.returncode == 0, wide.stderr
    assert "positions.1 positions" in " ".join(wide.stdout.split())


def test_q_on_the_terminal_quits_the_live_view(stack: Stack) -> None:
    leader, follower = os.openpty()
    process = subprocess.Popen(
        _top_command(stack, "--interval", "0.2"),
        stdin=follower,
        stdout=follower,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    shown = queue.Queue[bytes]()

    def drain() -> None:
        # Read the terminal until the process closes it, so `top` never blocks on a full pty.
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                return
            if not chunk:
                return
            shown.put(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    seen = b""
    while b"positions.1" not in seen:
        seen += shown.get()
    os.write(leader, b"q")
    assert process.wait() == 0
    assert process.stderr is not None
    assert process.stderr.read() == b""
    reader.join()
    os.close(leader)


def test_without_a_running_stack_top_exits_2_like_status(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    status = s.cli("status", check=False)
    for args in (("--once",), ("--json", "--frames", "3")):
        result = s.cli("top", *args, check=False)
        assert result.returncode == status.returncode == 2
        assert result.stdout == ""
        assert "no stack is running" in result.stderr
        assert "posbus up" in result.stderr


def test_contradictory_frame_options_are_usage_errors(tmp_path: Path) -> None:
    s = Stack(tmp_path)
    for args in (("--frames", "0"), ("--once", "--frames", "3"), ("--interval", "0")):
        result = s.cli("top", *args, check=False)
        assert result.returncode == 2, args
        assert "usage: posbus top" in result.stderr
