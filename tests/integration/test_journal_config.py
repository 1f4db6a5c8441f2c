"""`[storage]` configuration, opening the configured backend, and the demo's fresh journal."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from posbus.actors.delivery import Outbox
from posbus.actors.model.errors import PosbusError
from posbus.actors.model.side import Side
from posbus.adapters.clock import ManualClock
from posbus.adapters.config import ConfigError, config_from_dict
from posbus.adapters.journal.backend import open_backend
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.adapters.simulation.demo import DEMO_SENDER, fresh_journal
from posbus.bus.messages import OrderIntent


def test_the_default_storage_is_sqlite_under_the_run_directory(tmp_path: Path) -> None:
    config = config_from_dict({"run_dir": str(tmp_path)})
    assert config.storage.backend == "sqlite"
    assert config.storage.sqlite_path(config.run_dir) == tmp_path / "journal.sqlite"
    assert config.node_config().snapshot_interval_s == 30.0
    journal = open_backend(config.storage, config.run_dir)
    try:
        assert isinstance(journal, SqliteJournal)
        assert journal.path == tmp_path / "journal.sqlite"
        assert journal.commit_config.batch_max == 1000
    finally:
        journal.close()


def test_every_storage_key_is_read() -> None:
    config = config_from_dict(
        {
            "storage": {
                "backend": "mongodb",
                "path": "/data/j.sqlite",
                "uri": "mongodb://db1,db2/?replicaSet=rs0",
                "database": "desk",
                "w": 2,
                "batch_max": 50,
                "batch_delay_ms": 2.5,
                "snapshot_interval_s": 0,
                "keep_snapshots": 5,
            }
        }
    )
    s = config.storage
    assert (s.backend, s.path, s.uri, s.database, s.w) == (
        "mongodb",
        Path("/data/j.sqlite"),
        "mongodb://db1,db2/?replicaSet=rs0",
        "desk",
        2,
    )
    assert (s.batch_max, s.batch_delay_ms, s.keep_snapshots) == (50, 2.5, 5)
    # 0 s: snapshots only on demand and on shutdown.
    assert config.node_config().snapshot_interval_s is None


@pytest.mark.parametrize(
    ("storage", "fragment"),
    [
        ({"backend": "postgres"}, "backend"),
        ({"w": 0}, " w:"),
        ({"w": "all"}, " w:"),
        ({"batch_max": 0}, "batch_max"),
        ({"batch_delay_ms": 6000}, "batch_delay_ms"),
        ({"keep_snapshots": 0}, "keep_snapshots"),
        ({"snapshot_interval_s": -1}, "snapshot_interval_s"),
        ({"fsync": "never"}, "unknown key"),
    ],
)
def test_bad_storage_values_are_refused_naming_the_key(
    storage: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError, match="storage") as caught:
        config_from_dict({"storage": storage})
    assert fragment in str(caught.value)


def test_the_memory_backend_opens_an_in_memory_journal(tmp_path: Path) -> None:
    config = config_from_dict({"run_dir": str(tmp_path), "storage": {"backend": "memory"}})
    journal = open_backend(config.storage, config.run_dir)
    assert isinstance(journal, MemoryJournal)
    assert not (tmp_path / "journal.sqlite").exists()


def _write(config_dir: Path, sender: str) -> None:
    journal = SqliteJournal(config_dir / "journal.sqlite")
    outbox = Outbox(journal, sender, ManualClock(1))
    outbox.append(
        "position/A/BTC/USDT",
        OrderIntent("A", "BTC/USDT", Side.BUY, Decimal(1), None, "i1", False, "t", 1),
    )
    journal.close()


def test_a_demo_starts_a_new_journal_and_keeps_the_previous_demo_one(tmp_path: Path) -> None:
    _write(tmp_path, DEMO_SENDER)
    config = config_from_dict({"run_dir": str(tmp_path)})
    journal = fresh_journal(config)
    try:
        assert journal.streams() == []
    finally:
        journal.close()
    kept = SqliteJournal(tmp_path / "journal.sqlite.previous")
    try:
        assert kept.streams() == ["position/A/BTC/USDT"]
    finally:
        kept.close()


def test_a_demo_never_touches_a_journal_it_did_not_write(tmp_path: Path) -> None:
    _write(tmp_path, "worker.positions.0")
    config = config_from_dict({"run_dir": str(tmp_path)})
    with pytest.raises(PosbusError, match="not written by a demo"):
        fresh_journal(config)
    assert (tmp_path / "journal.sqlite").exists()
    assert not (tmp_path / "journal.sqlite.previous").exists()
    memory = replace(config, storage=msgspec.structs.replace(config.storage, backend="memory"))
    assert fresh_journal(memory).streams() == []
