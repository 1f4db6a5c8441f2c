"""Open the journal the configuration names (`[storage] backend`): SQLite, MongoDB or memory.

The one place that maps configuration to a backend, so the demo, the workers
and `posbus journal` open the same storage the same way. The caller owns the
returned store and closes it (that writes what is still queued).
"""

from __future__ import annotations

from pathlib import Path

from posbus.actors.journal import JournalStore
from posbus.adapters.config import StorageConfig
from posbus.adapters.journal.group_commit import GroupCommitConfig
from posbus.adapters.journal.memory import MemoryJournal


def open_backend(
    storage: StorageConfig, run_dir: Path, *, writer: bool = True, wait_for_lease: bool = False
) -> JournalStore:
    """The configured journal and snapshot store, opened (SQLite under `run_dir` by default).

    `writer=True` takes the journal's single-writer lock (SQLite) or lease
    (MongoDB); `writer=False` opens it read-only, beside a running writer.
    `wait_for_lease` (MongoDB): wait out another owner's lease (one TTL and a
    renewal) before refusing, as a worker restarted after a crash must; its
    dead predecessor cannot release the lease.
    Raises JournalLocked when another writer holds it, JournalUnavailable when
    the storage cannot be reached, JournalCorrupt when it is damaged; pymongo
    is imported only for the MongoDB backend.
    """
    commit = GroupCommitConfig(
        batch_max=storage.batch_max, batch_delay_s=storage.batch_delay_ms / 1000
    )
    if storage.backend == "memory":
        return MemoryJournal(keep_snapshots=storage.keep_snapshots)
    if storage.backend == "mongodb":
        from posbus.adapters.journal.mongodb import (  # noqa: PLC0415 - optional server
            LEASE_RENEW_S,
            LEASE_TTL_S,
            MongoJournal,
        )

        return MongoJournal(
            storage.uri,
            database=storage.database,
            w=storage.w,
            keep_snapshots=storage.keep_snapshots,
            commit=commit,
            writer=writer,
            lease_wait_s=LEASE_TTL_S + LEASE_RENEW_S if wait_for_lease else 0.0,
        )
    from posbus.adapters.journal.sqlite import SqliteJournal  # noqa: PLC0415 - same for symmetry

    return SqliteJournal(
        storage.sqlite_path(run_dir),
        keep_snapshots=storage.keep_snapshots,
        commit=commit,
        writer=writer,
    )


def describe(storage: StorageConfig, run_dir: Path) -> str:
    """Where the journal lives, for messages: the SQLite file or the MongoDB database."""
    if storage.backend == "sqlite":
        return f"sqlite:{storage.sqlite_path(run_dir)}"
    if storage.backend == "mongodb":
        return f"mongodb:{storage.database}"
    return "memory"
