"""The accounts of `posbus up --demo` without `--config`: two simulated venues.

A newcomer's first stack shows what posbus is for: several accounts on
several venues, each with its own gateway, positions and limits, totalled
per account and for the firm. The configuration is written to
RUN_DIR/demo.toml, which every worker of the demo stack reads, so what runs
is on disk to read. A demo given a `--config` runs that file's accounts.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from posbus.adapters.config import Config, config_from_dict

DEMO_CONFIG = """\
# posbus up --demo: two accounts on two simulated venues (written at each start).

[accounts.main]
starting_equity = "100000"

[accounts.main.exchange]
seed = 7

[accounts.hedge]
starting_equity = "50000"

[accounts.hedge.exchange]
seed = 11
taker_fee_rate = "0.0005"
maker_fee_rate = "-0.0001"
slippage_bps = "2"
latency_ns = 5000000
"""

DEMO_CONFIG_FILE = "demo.toml"
"""Its name in the run directory."""


def demo_config() -> Config:
    """The configuration of a demo stack started without `--config`."""
    return config_from_dict(tomllib.loads(DEMO_CONFIG), where=DEMO_CONFIG_FILE)


def write_demo_config(run_dir: Path) -> Path:
    """Write RUN_DIR/demo.toml (owner only) and return its path."""
    path = run_dir / DEMO_CONFIG_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(DEMO_CONFIG)
    return path
