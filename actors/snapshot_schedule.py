"""SnapshotSchedule: when and how a host has its actors snapshot themselves.

The Node and every worker process use it alike: on a timer (told, so the
caller's loop never waits for an fsync), on demand (asked all at once so the
store group-commits them, waiting until each is durable) and on a clean stop.
Each actor saves its own state at its own stream position (`TakeSnapshot`);
an actor with nothing new since its last snapshot saves none.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import pykka

from posbus.actors.recovery import TakeSnapshot
from posbus.actors.supervision.handle import ChildHandle


class SnapshotSchedule:
    """Snapshots of `targets()` every `interval_s` (clock time) and on demand. Thread-safe.

    Args:
        targets: the actors that snapshot (their handles), asked each time.
        now_ns: the host's clock.
        interval_s: time between two periodic snapshots; None: only on demand.
    """

    def __init__(
        self,
        targets: Callable[[], Sequence[ChildHandle]],
        now_ns: Callable[[], int],
        interval_s: float | None,
    ) -> None:
        self._targets = targets
        self._now_ns = now_ns
        self.interval_s = interval_s
        self._last_ns = now_ns()

    def tick(self) -> bool:
        """Tell every target to snapshot when the interval has passed; True if it did."""
        now = self._now_ns()
        if self.interval_s is None or now - self._last_ns < self.interval_s * 1e9:
            return False
        self._last_ns = now
        for handle in self._targets():
            handle.tell(TakeSnapshot())
        return True

    def take(self, timeout_s: float) -> dict[str, int]:
        """Snapshot every target now; {actor name: snapshot seq} of those that saved one.

        Blocks until each is durable (or `timeout_s` has passed for the slow
        ones). A target that died meanwhile is skipped: its restart recovers
        from the journal.
        """
        self._last_ns = self._now_ns()
        futures: list[tuple[str, Any]] = []
        for handle in self._targets():
            ref = handle.ref
            if ref is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    futures.append((handle.name, ref.ask(TakeSnapshot(), block=False)))
        deadline = time.monotonic() + timeout_s
        saved: dict[str, int] = {}
        for name, future in futures:
            try:
                seq = future.get(timeout=max(0.1, deadline - time.monotonic()))
            except pykka.ActorDeadError:
                continue
            if isinstance(seq, int):
                saved[name] = seq
        return saved
