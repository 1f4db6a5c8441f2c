"""`posbus up --demo` on a real stack: each demo starts afresh; a killed demo is recovered."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_harness import Stack, wait_for, where

from posbus.adapters.launcher_layout import pid_alive

BTC = "BTC/USDT"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        yield Path(name)


def _buy_and_wait(s: Stack) -> None:
    s.json("order", "buy", BTC, "0.1")
    wait_for(
        "BTC filled", lambda: where(s.positions(), lambda p: p.get(BTC, {}).get("qty") == "0.1")
    )


def _btc_qty(s: Stack) -> str | None:
    position = s.positions().get(BTC)
    return None if position is None else str(position["qty"])


def test_a_new_demo_after_a_clean_stop_starts_empty_and_keeps_the_previous(
    short_tmp: Path,
) -> None:
    s = Stack(short_tmp)
    s.up()
    try:
        _buy_and_wait(s)
    finally:
        s.close()
    up = s.cli("up", "--detach", "--demo", timeout=120)
    try:
        assert f"previous demo's journals are in {s.run_dir / 'journal.previous'}" in up.stdout
        wait_for("every worker serving", s.all_serving)
        assert _btc_qty(s) in (None, "0")
        assert (s.run_dir / "journal.previous" / "positions.0.sqlite").is_file()
    finally:
        s.close()


def test_a_demo_whose_launcher_was_killed_is_recovered_not_replaced(short_tmp: Path) -> None:
    s = Stack(short_tmp)
    s.up()
    try:
        _buy_and_wait(s)
        pids = s.pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_for("every process gone", lambda: not any(pid_alive(p) for p in pids))
        s.up()
        assert _btc_qty(s) == "0.1"
        assert not (s.run_dir / "journal.previous").exists()
    finally:
        s.close()


def test_a_demo_refuses_a_real_stacks_journals_with_exit_2(short_tmp: Path) -> None:
    s = Stack(short_tmp, demo=False)
    s.up()
    s.close()
    journals = sorted(p.name for p in (s.run_dir / "journal").glob("*.sqlite"))
    assert journals
    up = s.cli("up", "--detach", "--demo", check=False, timeout=120)
    assert up.returncode == 2, up.stderr
    assert "not a demo" in up.stderr
    assert sorted(p.name for p in (s.run_dir / "journal").glob("*.sqlite")) == journals
