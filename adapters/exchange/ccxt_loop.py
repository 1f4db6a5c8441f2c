"""The ccxt gateway's I/O loop: an asyncio event loop on its own daemon thread, and its bridge.

Callers on any thread (the gateway actor, a supervisor, tests) hand work over
with `spawn` or `call_soon`: both only schedule it with `call_soon_threadsafe`
and return at once. Everything else runs on the loop's thread: the hooks
given at construction, the spawned coroutines and `spawn_local`. Every spawned
coroutine runs under a boundary that logs and counts a failure and keeps the
loop serving.

This module must never block a caller on the network (only `wait_idle` and
`close` wait, and they are for tests, benchmarks and shutdown), and never let
one failed task stop the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class GatewayLoop:
    """The event loop of one ccxt gateway and its thread (started on first use).

    Args:
        name: the thread's name.
        account: the account named in the loop's log records.
        counts: the gateway's counters (`task_errors`).
        on_start: runs on the loop before any work (builds the ccxt client);
            if it raises, the loop does not start.
        on_stop: awaited on the loop after every task is cancelled (closes clients).
        on_task_failed: told (on the loop) of the exception that ended a task.
        after_task: runs on the loop after every spawned task (publishes status).
    """

    def __init__(
        self,
        name: str,
        *,
        account: str,
        counts: Counter[str],
        on_start: Callable[[], None],
        on_stop: Callable[[], Awaitable[None]],
        on_task_failed: Callable[[Exception], None],
        after_task: Callable[[], None],
    ) -> None:
        self._name = name
        self._account = account
        self._counts = counts
        self._on_start = on_start
        self._on_stop = on_stop
        self._on_task_failed = on_task_failed
        self._after_task = after_task
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing: asyncio.Event | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()

    # -- any thread ------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop's thread unless it runs; returns once the loop serves."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the ccxt gateway is closed")
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the ccxt I/O loop did not start")

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run `coro` on the loop (starting it); dropped, with a warning, once closed."""
        if self._closed:
            coro.close()
            logger.warning("ccxt gateway closed; request dropped", extra={"account": self._account})
            return
        self.start()
        self._loop.call_soon_threadsafe(self.spawn_local, coro)

    def call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        """Run `callback(*args)` on the loop (starting it); returns at once."""
        self.start()
        self._loop.call_soon_threadsafe(callback, *args)

    def wait_idle(self, timeout_s: float) -> None:
        """Block until no spawned task is running (never from the loop or an actor)."""
        if self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._idle(), self._loop)
        future.result(timeout=timeout_s)

    def close(self, timeout_s: float) -> None:
        """Cancel every task, run `on_stop` and end the thread (waits up to `timeout_s`)."""
        self._closed = True
        if self._thread is None:
            return
        closing = self._closing
        if closing is not None:
            self._loop.call_soon_threadsafe(closing.set)
        self._thread.join(timeout=timeout_s)
        self._thread = None

    # -- the loop's thread -------------------------------------------------------------

    def spawn_local(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run `coro` as a task under the loop's boundary (on the loop only)."""
        task = self._loop.create_task(self._guard_task(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def keep_in_background(self, *tasks: asyncio.Task[None]) -> None:
        """Cancel these long-lived tasks at close; `wait_idle` does not wait for them."""
        self._background.update(tasks)

    def call_later(self, delay_s: float, callback: Callable[..., None], *args: Any) -> None:
        """Run `callback(*args)` on the loop after `delay_s` (on the loop only)."""
        self._loop.call_later(delay_s, callback, *args)

    def time(self) -> float:
        """The loop's monotonic time in seconds."""
        return self._loop.time()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._closing = asyncio.Event()
        self._on_start()
        self._ready.set()
        try:
            await self._closing.wait()
        finally:
            for task in [*self._tasks, *self._background]:
                task.cancel()
            await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
            await self._on_stop()

    async def _guard_task(self, coro: Awaitable[object]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the I/O loop's boundary: log, count, keep serving
            self._counts["task_errors"] += 1
            self._on_task_failed(exc)
            logger.exception("ccxt gateway task failed", extra={"account": self._account})
        finally:
            self._after_task()

    async def _idle(self) -> None:
        current = asyncio.current_task()
        while True:
            others = [t for t in self._tasks if t is not current and not t.done()]
            if not others:
                return
            await asyncio.wait(others)
