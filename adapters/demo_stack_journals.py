"""A demo stack's journals belong to that demo: `posbus up --demo` starts a new one.

A demo that stopped (`posbus down`, Ctrl-C, the launcher giving up) is over:
the next `up --demo` moves RUN_DIR/journal to RUN_DIR/journal.previous
(replacing an older one) and starts with empty journals, so each demo has
its own positions and its own risk day. A demo that crashed (its launcher
killed: run.json is still there) is recovered instead, as any stack is.
RUN_DIR/journal/DEMO marks journals a demo wrote; journals without it are a
real stack's, and `up --demo` refuses to touch them.

Only the SQLite backend keeps its journals in the run directory; with
MongoDB a demo stack continues the journals it finds, as any stack does.
Runs in `posbus up` on the main thread, under the run directory's lock,
before any worker starts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from posbus.actors.model.errors import PosbusError
from posbus.adapters.launcher_layout import RunDir

MARKER = "DEMO"
"""The file in RUN_DIR/journal that says a demo stack wrote these journals."""


def begin_demo_journals(run_dir: RunDir, *, crashed: bool) -> Path | None:
    """Prepare RUN_DIR/journal for a demo; where the previous demo's journals went, if moved.

    `crashed`: the previous stack in this run directory did not stop (its
    run.json is still there), so its journals are recovered, not replaced.
    Raises PosbusError when RUN_DIR/journal holds a real stack's journals.
    """
    journal_dir = run_dir.root / "journal"
    journals = sorted(journal_dir.glob("*.sqlite"))
    marker = journal_dir / MARKER
    if journals and not marker.exists():
        raise PosbusError(
            f"{journal_dir} holds the journals of a stack that is not a demo; "
            "a demo never touches them: use another --run-dir for the demo"
        )
    kept: Path | None = None
    if journals and not crashed:
        kept = run_dir.root / "journal.previous"
        shutil.rmtree(kept, ignore_errors=True)
        journal_dir.rename(kept)
    journal_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    marker.touch(mode=0o600)
    return kept
