"""Test-only faults in `posbus worker` processes, switched on through the environment.

Put this directory on PYTHONPATH of a `posbus up` (its workers inherit the
environment) and set:

    POSBUS_TEST_FAULT         "slow": the worker never becomes ready (until
                              SIGTERM, which ends it at once); "locked": it
                              fails as if another writer held its journal
    POSBUS_TEST_FAULT_WORKER  the worker's name (e.g. risk)
    POSBUS_TEST_FAULT_IF      optional: only while this file exists

Python imports `sitecustomize` at start-up, before the worker's code runs;
this replaces `_build` of adapters/cli/worker.py for the named worker only.
Never used outside tests.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

_FAULT = os.environ.get("POSBUS_TEST_FAULT", "")
_WORKER = os.environ.get("POSBUS_TEST_FAULT_WORKER", "")
_IF = os.environ.get("POSBUS_TEST_FAULT_IF", "")


def _install() -> None:
    from posbus.actors.journal import JournalLocked  # noqa: PLC0415 - only when a fault is on
    from posbus.adapters.cli import worker  # noqa: PLC0415

    build = worker._build

    def _build(role: str, name: str, *args: Any) -> Any:
        if name == _WORKER and (not _IF or os.path.exists(_IF)):
            if _FAULT == "slow":
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                threading.Event().wait()
            if _FAULT == "locked":
                raise JournalLocked(f"{name}.sqlite", "pid 1 (test fault)")
        return build(role, name, *args)

    worker._build = _build  # type: ignore[assignment]


if _FAULT and _WORKER:
    _install()
