"""The options every command that talks to a stack takes: `--config` and `--run-dir`.

The stack is found from the configuration (bus endpoints and keys, the
number of positions shards) and the run directory (run.json, admin sockets,
journals). Which run directory: `--run-dir DIR`, else the environment's
`POSBUS_RUN_DIR`, else `run_dir` of the configuration; a relative one is
taken from the current directory. Every stack command resolves it through
`run_dir_of`, so they all agree.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from posbus.adapters.config import Config

RUN_DIR_ENV = "POSBUS_RUN_DIR"
"""The environment variable naming the run directory when --run-dir is not given."""

RUN_DIR_HELP = f"run directory of the stack (default: ${RUN_DIR_ENV}, else run_dir of the config)"


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """Add `--config FILE` and `--run-dir DIR` to `parser`."""
    parser.add_argument(
        "--config", metavar="FILE", help="TOML config of the stack (default: embedded)"
    )
    parser.add_argument("--run-dir", metavar="DIR", help=RUN_DIR_HELP)


def run_dir_of(option: str | None, config: Config) -> Path:
    """The run directory: `option` (--run-dir), else $POSBUS_RUN_DIR, else the config's."""
    if option:
        return Path(option)
    from_env = os.environ.get(RUN_DIR_ENV, "")
    if from_env:
        return Path(from_env)
    return config.run_dir
