"""The 1-minute soak (marked `soak`): 1,000 open positions, a steady market, nothing grows.

A real stack (posbus.adapters.simulation.chaos_soak) opens 1,000 positions, then the
feed publishes one market_update per symbol per second (1,000 updates/s)
for SOAK_S seconds while RSS, mailbox depths and the risk worker's p99
latencies are sampled every 2 s. After WARMUP_S the first and last thirds
of the samples are compared (medians): RSS growth under 5 % per worker,
mailbox depth no more than 200 above where it started, p99 no more than 4x
its start + 0.5 s. The margins are for a shared 2-core CI machine: growth
that a leak or a backlog causes over a minute clears them, scheduling noise
does not. The 10-minute version is `python bench/soak.py`
(docs/reliability.md).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from posbus.adapters.simulation.chaos_soak import SoakSettings, run_soak

SOAK_S = 60.0
WARMUP_S = 15.0


@pytest.mark.soak
def test_one_minute_soak_with_1000_positions_grows_neither_memory_nor_queues() -> None:
    settings = SoakSettings(
        positions=1000,
        market_steps_per_s=1,
        duration_s=SOAK_S,
        warmup_s=WARMUP_S,
        sample_s=2.0,
        p99_factor=4.0,
        p99_slack_ms=500.0,
    )
    with tempfile.TemporaryDirectory(prefix="pbs-", dir="/tmp") as name:
        result = run_soak(settings, Path(name))
    assert result.positions_open == 1000
    # One update per symbol per step: at least half the nominal 1,000/s got out.
    assert result.market_updates >= 1000 * SOAK_S / 2
    assert len(result.samples) >= 20
    assert result.failures == [], result.to_json()
