"""Exit codes and pipes, as a shell script sees them, for every stack command.

0 success, 1 the command failed, 2 bad usage or bad input (a missing config
file, an unknown worker); a reader that goes away ends a command quietly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack_harness import Stack, posbus

MISSING = "/nonexistent/posbus.toml"

COMMANDS_TAKING_A_CONFIG = [
    ("up",),
    ("down",),
    ("status",),
    ("positions",),
    ("orders",),
    ("order", "buy", "BTC/USDT", "1"),
    ("close", "BTC/USDT"),
    ("cancel", "default:BTC/USDT:1"),
    ("risk",),
    ("halt", "--reason", "test"),
    ("resume",),
    ("admin", "risk", "status"),
    ("top", "--once"),
    ("journal", "verify"),
    ("demo", "--duration", "1"),
]


@pytest.mark.parametrize("command", COMMANDS_TAKING_A_CONFIG, ids=" ".join)
def test_a_missing_config_file_is_bad_input_exit_2(command: tuple[str, ...]) -> None:
    result = posbus(*command, "--config", MISSING, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert f"config file not found: {MISSING}" in result.stderr


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name))
        s.up()
        try:
            yield s
        finally:
            s.close()


def test_admin_to_a_worker_the_stack_does_not_run_is_exit_2_naming_its_workers(
    stack: Stack,
) -> None:
    result = stack.cli("admin", "positions.9", "status", check=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "no worker 'positions.9' in this stack" in result.stderr
    assert "positions.0" in result.stderr and "risk" in result.stderr


@pytest.mark.parametrize(
    "command",
    [("status",), ("admin", "risk", "status"), ("risk",), ("orders",), ("positions",)],
    ids=" ".join,
)
def test_a_reader_that_went_away_ends_the_command_quietly(
    stack: Stack, command: tuple[str, ...]
) -> None:
    # The pipe's reading end is closed before the command writes: every write fails at once.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "posbus.adapters.cli.main",
                *command,
                "--config",
                str(stack.config),
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write_end)
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
