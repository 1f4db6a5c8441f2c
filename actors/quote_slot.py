"""QuoteSlot: the newest market update for one actor, conflated between the I/O thread and it.

A positions worker's I/O thread must never wait for an actor, and an actor
that is behind must not work through quotes that newer ones have already
made stale (keep only the latest market_update per symbol when a consumer
falls behind). The subscriber conflates within one drain; a slot
conflates across drains, inside the actor's mailbox: the producer puts each
quote in the actor's slot and tells the actor the slot only when the slot
was empty; the actor takes the newest quote when it gets to that message.
So an actor has at most one market message queued, whatever the rate.

Only market data goes through a slot: execution signals, commands and risk
messages are told as before and never conflated.

Thread safety: `put` from one producer thread, `take` from the actor's
thread; a lock makes "was it empty?" and "take it" atomic, so a quote is
never left in a slot nobody will be told about.
"""

from __future__ import annotations

import threading

from posbus.bus.messages import MarketUpdate


class QuoteSlot:
    """One actor's pending quote (see the module docstring). Thread-safe."""

    __slots__ = ("_lock", "_quote", "superseded")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quote: MarketUpdate | None = None
        #: Quotes replaced by a newer one before the actor took them (producer's count).
        self.superseded = 0

    def put(self, quote: MarketUpdate) -> bool:
        """Make `quote` the pending one (producer thread); True when the actor must be told.

        False means a message about this slot is already in the actor's
        mailbox: it will take `quote` instead of the older one it replaced.
        """
        with self._lock:
            was_empty = self._quote is None
            self._quote = quote
        if not was_empty:
            self.superseded += 1
        return was_empty

    def take(self) -> MarketUpdate | None:
        """The pending quote, leaving the slot empty (actor thread); None if already taken."""
        with self._lock:
            quote, self._quote = self._quote, None
        return quote
