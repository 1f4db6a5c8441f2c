"""The options every command that talks to a running stack takes: `--config` and `--run-dir`.

The stack is found from the configuration (bus endpoints and keys, the
number of positions shards) and the run directory (run.json, admin sockets).
"""

from __future__ import annotations

import argparse


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """Add `--config FILE` and `--run-dir DIR` to `parser`."""
    parser.add_argument(
        "--config", metavar="FILE", help="TOML config of the stack (default: embedded)"
    )
    parser.add_argument(
        "--run-dir", metavar="DIR", help="run directory of the stack (default: run_dir of config)"
    )
