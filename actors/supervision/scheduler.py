"""Run an action after a delay without blocking the caller.

The supervisor uses it to space restarts out (backoff) while its own thread
keeps serving messages; tests inject a scheduler that captures the delay and
fires the action on demand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class Cancellable(Protocol):
    """A scheduled action that can still be called off."""

    def cancel(self) -> None:
        """Prevent the action from running, if it has not run yet."""


class Scheduler(Protocol):
    """Calls `action` (in some other thread) once `delay_s` seconds have passed."""

    def __call__(self, delay_s: float, action: Callable[[], None]) -> Cancellable:
        """Schedule `action`; return a handle that can cancel it."""
        ...


def timer_scheduler(delay_s: float, action: Callable[[], None]) -> Cancellable:
    """Default scheduler: one daemon `threading.Timer` per action.

    Daemon, so a pending restart never keeps a process alive that is exiting.
    The action runs in the timer's thread.
    """
    timer = threading.Timer(delay_s, action)
    timer.daemon = True
    timer.start()
    return timer
