"""The gateway actor's inbox as the ccxt gateway sees it: results told, or kept until attached.

`attach` and `detach` run on whichever thread wires the actor (its own, or a
supervisor's); `tell` and `report` run on the gateway's I/O loop. A message told
while no inbox is attached, or while the attached actor is dead (a supervisor
restart), is kept and handed over first, in order, at the next `attach`.

This module must never drop a message, never reorder the kept ones and never
call an inbox while holding its lock (an inbox may block).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

import pykka

from posbus.actors.gateway_actor import ExchangeReports
from posbus.actors.model.exchange_reports import ExecutionReport

Inbox = Callable[[object], None]


class ActorInbox:
    """Delivery of the gateway's results to its actor (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the inbox, the kept messages and the count
        self._inbox: Inbox | None = None
        self._undelivered: deque[object] = deque()
        self._told = 0

    @property
    def told(self) -> int:
        """How many messages were handed over so far (a progress mark for barriers)."""
        with self._lock:
            return self._told

    def attach(self, inbox: Inbox) -> None:
        """Tell `inbox` from now on, after handing it the messages kept so far (any thread)."""
        with self._lock:
            self._inbox = inbox
            pending = list(self._undelivered)
            self._undelivered.clear()
        for message in pending:
            self.tell(message)

    def detach(self) -> None:
        """Keep messages from now on until the next `attach` (any thread)."""
        with self._lock:
            self._inbox = None

    def tell(self, message: object) -> None:
        """Hand a result to the actor, or keep it until one is attached."""
        with self._lock:
            self._told += 1
            inbox = self._inbox
            if inbox is None:
                self._undelivered.append(message)
                return
        try:
            inbox(message)
        except pykka.ActorDeadError:
            with self._lock:
                if self._inbox is inbox:
                    self._inbox = None
                self._undelivered.append(message)

    def report(self, reports: Sequence[ExecutionReport]) -> None:
        """Tell execution reports as one `ExchangeReports` message (nothing when empty)."""
        if reports:
            self.tell(ExchangeReports(tuple(reports)))
