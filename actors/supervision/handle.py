"""A stable address for a supervised child, whichever incarnation is alive.

A pykka `ActorRef` dies with its actor; a `ChildHandle` does not. Senders keep
the handle, and the supervisor swaps the live ref inside it on every restart.
While the child is down (crashed, waiting for its restart), `tell` holds the
messages in a bounded buffer and the supervisor delivers them, in order, to
the new incarnation as soon as it is up.

What the handle can NOT recover: messages that were already in the dead
actor's inbox when it failed. pykka drops those (asks get `ActorDeadError`).
Their durability comes from the journal: the child replays it in `on_start`.
The handle only covers the window in which the child is known to be down.
"""

from __future__ import annotations

import threading
from collections import deque
from enum import StrEnum
from typing import Any

from pykka import ActorDeadError, ActorRef

from posbus.actors.supervision.errors import (
    ChildBufferFull,
    ChildTerminated,
    ChildUnavailable,
)

DEFAULT_BUFFER_CAPACITY = 10_000


class HandleState(StrEnum):
    """Where the handle sends a message right now."""

    RUNNING = "running"  # to the live ref
    DOWN = "down"  # into the buffer, until the next incarnation is attached
    TERMINATED = "terminated"  # nowhere: the child will not come back


class ChildHandle:
    """Thread-safe, stable address of one supervised child.

    Any thread may call `tell`, `ask` and the read-only properties. Only the
    child's supervisor (in its own thread) calls `attach`, `detach` and
    `terminate`. One lock orders everything, so messages told by one thread
    reach each incarnation in the order they were told, buffered ones first.
    A handle starts DOWN: messages told before the first start are buffered.
    """

    def __init__(self, name: str, capacity: int = DEFAULT_BUFFER_CAPACITY) -> None:
        if capacity < 1:
            msg = f"handle capacity must be >= 1, got {capacity}"
            raise ValueError(msg)
        self.name = name
        self.capacity = capacity
        self._lock = threading.Lock()
        self._state = HandleState.DOWN
        self._ref: ActorRef[Any] | None = None
        self._buffer: deque[Any] = deque()
        self._restarts = 0

    def __repr__(self) -> str:
        return f"<ChildHandle {self.name} {self._state.value} restarts={self._restarts}>"

    # -- any thread -----------------------------------------------------------

    @property
    def state(self) -> HandleState:
        """RUNNING, DOWN (buffering) or TERMINATED."""
        with self._lock:
            return self._state

    @property
    def ref(self) -> ActorRef[Any] | None:
        """The current incarnation's ref; None while down."""
        with self._lock:
            return self._ref if self._state is HandleState.RUNNING else None

    @property
    def restarts(self) -> int:
        """How many times the child was started again after its first start."""
        with self._lock:
            return self._restarts

    @property
    def alive(self) -> bool:
        """True when an incarnation is attached and its actor has not stopped."""
        with self._lock:
            return (
                self._state is HandleState.RUNNING
                and self._ref is not None
                and self._ref.is_alive()
            )

    @property
    def buffered(self) -> int:
        """Messages held for the next incarnation."""
        with self._lock:
            return len(self._buffer)

    def tell(self, message: Any) -> None:
        """Deliver `message` to the live incarnation, or hold it until the next one.

        Raises:
            ChildBufferFull: the child is down and `capacity` messages are held.
            ChildTerminated: the child is down for good.
        """
        with self._lock:
            if self._state is HandleState.RUNNING and self._ref is not None:
                try:
                    self._ref.tell(message)
                except ActorDeadError:
                    # Crashed, and the supervisor has not processed the exit
                    # yet: hold the message for the incarnation that follows.
                    self._state = HandleState.DOWN
                    self._ref = None
                else:
                    return
            if self._state is HandleState.TERMINATED:
                raise ChildTerminated(f"child {self.name} is terminated", child=self.name)
            if len(self._buffer) >= self.capacity:
                raise ChildBufferFull(self.name, self.capacity)
            self._buffer.append(message)

    def ask(self, message: Any, *, timeout: float | None = None) -> Any:
        """Ask the live incarnation and wait for its reply (control paths, not the hot path).

        Never buffered: a control request to a child that is down fails fast.

        Raises:
            ChildUnavailable: the child is down and will be restarted.
            ChildTerminated: the child is down for good.
            pykka.Timeout: no reply within `timeout` seconds.
            Exception: whatever the child raised while handling the message.
        """
        with self._lock:
            state, ref = self._state, self._ref
        if state is HandleState.TERMINATED:
            raise ChildTerminated(f"child {self.name} is terminated", child=self.name)
        if state is not HandleState.RUNNING or ref is None:
            raise ChildUnavailable(f"child {self.name} is restarting", child=self.name)
        try:
            return ref.ask(message, timeout=timeout)
        except ActorDeadError as exc:
            raise ChildUnavailable(f"child {self.name} died", child=self.name) from exc

    # -- supervisor thread only -----------------------------------------------

    def attach(self, ref: ActorRef[Any], *, restarted: bool) -> None:
        """Point the handle at a new incarnation and flush the buffer into it, in order.

        If the new incarnation dies during the flush, the undelivered messages
        stay buffered and the handle stays DOWN (its exit report follows).
        """
        with self._lock:
            if restarted:
                self._restarts += 1
            while self._buffer:
                try:
                    ref.tell(self._buffer[0])
                except ActorDeadError:
                    self._state = HandleState.DOWN
                    self._ref = None
                    return
                self._buffer.popleft()
            self._state = HandleState.RUNNING
            self._ref = ref

    def detach(self) -> None:
        """The child is down and will (or may) come back: buffer from now on."""
        with self._lock:
            if self._state is not HandleState.TERMINATED:
                self._state = HandleState.DOWN
            self._ref = None

    def terminate(self) -> int:
        """The child will not come back: refuse new messages, drop held ones.

        Returns how many held messages were dropped (the supervisor logs them).
        """
        with self._lock:
            dropped = len(self._buffer)
            self._buffer.clear()
            self._state = HandleState.TERMINATED
            self._ref = None
            return dropped
