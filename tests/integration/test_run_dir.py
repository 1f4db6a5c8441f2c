"""The run directory: owner-only modes, found from anywhere, and every worker journal verified.

Real stacks (`posbus up --detach`, stack_harness.Stack) and the real CLI in
fresh interpreters, run from working directories other than the stack's.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from journal_backends import sqlite_backend
from stack_harness import Stack, wait_for

from posbus.adapters.launcher_layout import pid_alive

BTC = "position/default/BTC/USDT"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # ipc socket paths are limited to ~100 bytes: pytest's tmp_path can be too long.
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        yield Path(name)


def cli(
    *args: str, cwd: Path, run_dir_env: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`posbus ARGS` from `cwd`, with POSBUS_RUN_DIR set to `run_dir_env` (or unset)."""
    env = dict(os.environ)
    env.pop("POSBUS_RUN_DIR", None)
    if run_dir_env is not None:
        env["POSBUS_RUN_DIR"] = run_dir_env
    return subprocess.run(
        [sys.executable, "-m", "posbus.adapters.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_after_up_demo_every_file_is_0600_and_every_directory_0700(short_tmp: Path) -> None:
    s = Stack(short_tmp, steps_per_s=50, open_p=0.3, close_p=0.2)
    # A run directory left by an older version: world-readable directories and files.
    old_log = s.run_dir / "logs" / "old.log"
    old_log.parent.mkdir(parents=True)
    old_log.write_text("from before\n")
    for path in (s.run_dir, old_log.parent):
        path.chmod(0o755)
    old_log.chmod(0o644)
    previous = os.umask(0o022)
    try:
        s.up()
    finally:
        os.umask(previous)
    try:
        # Wait for the journals' WAL and shared-memory files: SQLite makes them on first write.
        journal = s.run_dir / "journal"
        wait_for(
            "the positions journal's -wal and -shm files",
            lambda: all(
                (journal / f"positions.0.sqlite{suffix}").exists() for suffix in ("-wal", "-shm")
            ),
        )
        wrong = []
        seen = 0
        for parent, dirs, files in os.walk(s.run_dir):
            for name in dirs:
                mode = stat.S_IMODE(os.lstat(Path(parent) / name).st_mode)
                if mode != 0o700:
                    wrong.append((f"{parent}/{name}", oct(mode)))
            for name in files:
                seen += 1
                try:
                    mode = stat.S_IMODE(os.lstat(Path(parent) / name).st_mode)
                except FileNotFoundError:
                    continue  # a temporary file renamed meanwhile
                if mode != 0o600:
                    wrong.append((f"{parent}/{name}", oct(mode)))
        assert stat.S_IMODE(s.run_dir.stat().st_mode) == 0o700
        assert wrong == []
        names = {p.name for p in s.run_dir.rglob("*")}
        expected = {"run.json", "launcher.lock", "positions.0.sqlite-wal", "positions.0.sqlite-shm"}
        assert expected <= names
        assert {"risk.log", "broker.pid", "feed.json", "broker.sock"} <= names
    finally:
        s.close()


def test_posbus_run_dir_and_the_option_find_the_stack_from_another_directory(
    short_tmp: Path,
) -> None:
    s = Stack(short_tmp)
    # The config names a relative run directory: from elsewhere it would point elsewhere.
    s.config.write_text(s.config.read_text().replace(f'run_dir = "{s.run_dir}"', 'run_dir = "var"'))
    starter, elsewhere = short_tmp / "a", short_tmp / "b"
    starter.mkdir()
    elsewhere.mkdir()
    run_dir = str(s.run_dir)
    config = str(s.config)
    up = cli("up", "--detach", "--config", config, "--run-dir", run_dir, cwd=starter)
    assert up.returncode == 0, up.stderr
    try:
        assert (s.run_dir / "run.json").exists()
        assert not (starter / "var").exists()

        status = cli("status", "--json", "--config", config, cwd=elsewhere, run_dir_env=run_dir)
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["run_dir"] == run_dir
        assert doc["launcher"]["alive"]
        # --run-dir wins over the environment.
        status = cli(
            "status", "--json", "--config", config, "--run-dir", run_dir,
            cwd=elsewhere, run_dir_env=str(elsewhere / "nothing"),
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        # Without either, the config's relative run_dir is taken from the current directory.
        status = cli("status", "--config", config, cwd=elsewhere)
        assert status.returncode == 2
        assert f"no stack is running in {elsewhere / 'var'}" in status.stderr

        verify = cli("journal", "verify", "--json", "--config", config,
                     cwd=elsewhere, run_dir_env=run_dir)  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr
        report = json.loads(verify.stdout)
        assert report["ok"] is True
        assert sorted(report["workers"]) == ["gateway.default", "positions.0", "risk"]

        pids = [int(p.read_text()) for p in (s.run_dir / "pids").glob("*.pid")]
        down = cli("down", "--config", config, cwd=elsewhere, run_dir_env=run_dir)
        assert down.returncode == 0, down.stderr
        assert f"posbus: stack in {run_dir} stopped" in down.stdout
        assert not any(pid_alive(p) for p in pids)
    finally:
        s.close()


def _filled(s: Stack, symbol: str, qty: Decimal) -> bool:
    position = s.positions().get(symbol)
    return position is not None and Decimal(str(position["qty"])) == qty


def test_journal_verify_covers_every_worker_and_names_a_flipped_byte(short_tmp: Path) -> None:
    s = Stack(short_tmp, steps_per_s=50)
    s.up()
    try:
        s.json("order", "buy", "BTC/USDT", "0.1")
        wait_for("BTC/USDT filled", lambda: _filled(s, "BTC/USDT", Decimal("0.1")))
        s.json("halt", "--reason", "audit")
        s.json("resume")
        # The README's example, on the running stack.
        verify = s.cli("journal", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        for worker in ("gateway.default", "positions.0", "risk"):
            assert f"== {worker}: sqlite:{s.run_dir}/journal/{worker}.sqlite" in verify.stdout
        assert verify.stdout.rstrip().endswith(f"3 worker journals in {s.run_dir}: sound")
        export = json.loads(s.cli("journal", "export", "--stream", "risk", "--json").stdout)
        last = export["streams"]["risk"]["records"][-1]
        assert last["checksum_ok"] is True
        assert export["streams"]["risk"]["worker"] == "risk"
        assert list(export["workers"]) == ["risk"]
    finally:
        s.close()

    sqlite_backend(s.run_dir / "journal" / "positions.0.sqlite").overwrite_payload(
        BTC, 1, b"\x96" + b"x" * 20
    )
    verify = s.cli("journal", "verify", "--json", check=False)
    assert verify.returncode == 1
    report = json.loads(verify.stdout)
    assert report["ok"] is False
    assert report["problems"] == [
        {"worker": "positions.0", "stream": BTC, "seq": 1, "problem": "checksum mismatch"}
    ]
    assert report["workers"]["positions.0"]["ok"] is False
    assert report["workers"]["risk"]["ok"] is True
    text = s.cli("journal", "verify", check=False)
    assert text.returncode == 1
    assert f"PROBLEM positions.0: journal stream {BTC!r} at seq 1: checksum mismatch" in text.stdout
    assert text.stdout.rstrip().endswith("problems in positions.0")
