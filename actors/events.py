"""Where actors announce what happened: risk events and position state changes.

An `EventSink` is the seam between actors and whoever listens: the demo's live
view and the tests in one process, the ZeroMQ publisher across processes.
Publishing never blocks the actor and never fails it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from posbus.bus.messages import Message


class EventSink(Protocol):
    """Receives every event an actor announces; called from actor threads."""

    def publish(self, message: Message) -> None: ...


class EventLog:
    """A thread-safe, bounded in-memory sink that also forwards to subscribers.

    Keeps the last `capacity` events (oldest dropped first) for views and
    tests; `subscribe` adds a callback run in the publishing actor's thread,
    which must be quick and must not raise.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._events: deque[Message] = deque(maxlen=capacity)
        self._subscribers: list[Callable[[Message], None]] = []
        self._count = 0

    def publish(self, message: Message) -> None:
        with self._lock:
            self._events.append(message)
            self._count += 1
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(message)

    def subscribe(self, callback: Callable[[Message], None]) -> None:
        """Call `callback(message)` for every event published from now on."""
        with self._lock:
            self._subscribers.append(callback)

    def events(self) -> list[Message]:
        """A copy of the retained events, oldest first."""
        with self._lock:
            return list(self._events)

    @property
    def count(self) -> int:
        """How many events were published in total (retained or not)."""
        with self._lock:
            return self._count
