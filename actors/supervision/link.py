"""The tie between a supervisor and one incarnation of a child, and the exit report.

A supervisor hands a fresh `SupervisorLink` to every incarnation it starts
(`ChildSpec.start(link)`); the child passes it to `SupervisedActor.__init__`
and reports its exit through it with a `ChildExited` message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from pykka import ActorRef


@dataclass(frozen=True, slots=True)
class ChildExited:
    """Told by a child to its supervisor when the child stops or fails.

    `incarnation` identifies which start of the child exited, so a late report
    from an incarnation the supervisor has already replaced is ignored.
    `error` is the repr of the exception for an abnormal exit.
    """

    name: str
    incarnation: int
    abnormal: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SupervisorLink:
    """Who supervises this incarnation of the child, and under which name.

    Thread-safe: the supervisor marks the link before it stops the child
    itself (`request_stop`), and the child reads the mark in its `on_stop`
    (its own thread) to keep quiet about a stop it did not choose.
    """

    supervisor: ActorRef[Any]
    name: str
    incarnation: int
    _stop_requested: threading.Event = field(
        default_factory=threading.Event, repr=False, compare=False
    )

    @property
    def stop_requested(self) -> bool:
        """True once the supervisor has started stopping this incarnation."""
        return self._stop_requested.is_set()

    def request_stop(self) -> None:
        """Mark the stop that follows as the supervisor's own (any thread; supervisor only)."""
        self._stop_requested.set()
