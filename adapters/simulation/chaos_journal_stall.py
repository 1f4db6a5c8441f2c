"""A chaos fault: a worker's SQLite journal held by another process for a few seconds.

`JournalStall.hold(path, seconds)` opens the journal from this process and
takes SQLite's write lock (``BEGIN EXCLUSIVE``) for `seconds`, as a stalled
disk or a backup holding the file would: every append of the worker waits
(its busy timeout is 30 s, far longer than a stall), its group commit
queues, the threads that journal before they act (the gateway's I/O thread,
a positions shard's control thread, the position actors) block, and the
rest of the stack sees a slow or silent worker. Nothing may be lost or
doubled when the lock goes; the chaos audit checks that.

Threads: each stall runs in its own daemon thread; `wait` joins them all
(the caller's thread), so the run settles only once every lock is released.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 10.0
"""How long a stall waits for the worker's own write transaction to end before it takes the lock."""


class JournalStall:
    """Holds SQLite journals locked, one thread per stall (see the module docstring)."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def hold(self, path: Path, seconds: float) -> None:
        """Lock the journal at `path` for `seconds`, in the background."""
        thread = threading.Thread(
            target=self._hold, args=(path, seconds), name=f"stall-{path.name}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _hold(self, path: Path, seconds: float) -> None:
        conn = sqlite3.connect(path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            # The worker kept its own write lock past LOCK_TIMEOUT_S: no stall this time.
            logger.warning("journal stall did not take the lock", extra={"path": str(path)})
            logger.debug("journal stall error: %s", exc)
        finally:
            conn.close()

    def wait(self) -> None:
        """Return once every stall has released its lock."""
        for thread in self._threads:
            thread.join()
        self._threads.clear()
