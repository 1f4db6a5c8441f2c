"""The latest dashboard document and the clients waiting for the next one.

The feed thread hands each new document to `publish` through the event loop
(`loop.call_soon_threadsafe`); server-sent-event handlers wait with
`wait_newer`. A client that falls behind gets only the latest document, never
a backlog. Everything here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio


class Hub:
    """Holds the newest document (JSON bytes) and its number; wakes the waiting clients."""

    def __init__(self) -> None:
        self._seq = 0
        self._latest: bytes | None = None
        self._next = asyncio.Event()
        self.closed = False

    @property
    def latest(self) -> tuple[int, bytes] | None:
        """The newest document and its number, None before the first."""
        return None if self._latest is None else (self._seq, self._latest)

    def publish(self, document: bytes) -> None:
        """Make `document` the newest and wake every waiting client (event loop thread)."""
        self._seq += 1
        self._latest = document
        self._wake()

    def close(self) -> None:
        """Wake every waiting client for good: the server is stopping."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        woken, self._next = self._next, asyncio.Event()
        woken.set()

    async def wait_newer(self, seq: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest document once its number is above `seq`; None after `timeout` s or close."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.closed and (self._latest is None or self._seq <= seq):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._next.wait(), remaining)
            except TimeoutError:
                return None
        if self.closed or self._latest is None:
            return None
        return self._seq, self._latest
