"""PositionsWorker.positions: many position actors started pipelined, the worker's restart path."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from posbus.actors.positions_worker import PositionsWorker
from posbus.actors.sharding import Shard
from posbus.actors.supervision.handle import HandleState
from posbus.actors.worker import WorkerError, WorkerSettings
from posbus.adapters.clock import WallClock
from posbus.adapters.config import Config
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.admin import admin_endpoint
from posbus.bus.broker import Broker
from posbus.bus.endpoints import BusEndpoints

ACCOUNT = "bulk"


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[PositionsWorker]:
    # A short run dir: ipc socket paths are limited to ~100 bytes.
    root = Path(f"/tmp/pbk-{tmp_path.name[-12:]}")
    root.mkdir()
    endpoints = BusEndpoints.local(root)
    stop = threading.Event()
    broker = Broker(endpoints)
    thread = threading.Thread(target=broker.run, args=(stop,), daemon=True)
    thread.start()
    assert broker.ready.wait(10)
    positions = PositionsWorker(
        WorkerSettings(
            name="positions.0",
            role="positions",
            run_dir=root,
            endpoints=endpoints,
            admin_endpoint=admin_endpoint(root, "positions.0"),
            account=ACCOUNT,
            policy=Config().node_config().policy,
            shard=Shard(0, 2),
        ),
        journal=MemoryJournal(),
        clock=WallClock(),
    )
    positions.start()
    try:
        yield positions
    finally:
        positions.stop()
        stop.set()
        thread.join(10)
        shutil.rmtree(root, ignore_errors=True)


def test_positions_starts_every_missing_actor_and_returns_them_in_order(
    worker: PositionsWorker,
) -> None:
    owned = [s for s in (f"S{i}/USDT" for i in range(40)) if worker.shard.owns(ACCOUNT, s)][:10]
    first = worker.position(ACCOUNT, owned[0])  # already running: reused, not restarted
    handles = worker.positions((ACCOUNT, symbol) for symbol in owned)
    assert [h.name for h in handles] == [f"position/{ACCOUNT}/{s}" for s in owned]
    assert handles[0] is first
    assert all(h.state is HandleState.RUNNING for h in handles)
    assert [worker.position(ACCOUNT, s) for s in owned] == handles
    assert len(worker.position_handles()) == 10


def test_positions_refuses_a_pair_of_another_shard_before_starting_any(
    worker: PositionsWorker,
) -> None:
    symbols = [f"S{i}/USDT" for i in range(40)]
    mine = next(s for s in symbols if worker.shard.owns(ACCOUNT, s))
    other = next(s for s in symbols if not worker.shard.owns(ACCOUNT, s))
    with pytest.raises(WorkerError, match="another positions shard"):
        worker.positions([(ACCOUNT, mine), (ACCOUNT, other)])
    assert worker.position_handles() == {}
