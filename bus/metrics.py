"""BusMetrics: message counts and rates per kind, error counters and a latency sample.

One writer thread (the I/O thread that owns the sockets) calls the counting
methods; `snapshot()` may run on any thread (the admin socket's): it reads
plain ints under the GIL, so a snapshot is approximate by at most the
messages counted while it was taken. The snapshot is a valid Reply.result
(no floats: rates and percentiles are decimal strings).
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import defaultdict
from decimal import Decimal
from typing import Any

_QUANT = Decimal("0.1")


class BusMetrics:
    """Counters of one process's bus traffic (see the module docstring for threading)."""

    def __init__(self, *, latency_sample: int = 4096) -> None:
        self._in: defaultdict[str, int] = defaultdict(int)
        self._out: defaultdict[str, int] = defaultdict(int)
        self._counters: defaultdict[str, int] = defaultdict(int)
        self._sample_size = latency_sample
        # Allocated whole at once (8 bytes a value): a worker's memory does not
        # creep up for minutes while the ring fills (a list of ints grew ~40
        # bytes a value: 4 MB for the risk worker's 100,000).
        self._latency = array("q", bytes(8 * latency_sample))
        self._latency_filled = 0
        self._latency_pos = 0
        self._latency_count = 0
        self._started = time.monotonic()
        self._snap_lock = threading.Lock()
        self._last_snap_at = self._started
        self._last_in: dict[str, int] = {}
        self._last_out: dict[str, int] = {}

    def count_in(self, kind: str, n: int = 1) -> None:
        """`n` messages of `kind` received."""
        self._in[kind] += n

    def count_out(self, kind: str, n: int = 1) -> None:
        """`n` messages of `kind` sent."""
        self._out[kind] += n

    def count(self, counter: str, n: int = 1) -> None:
        """Add `n` to a named counter (decode_errors, gaps, conflated, malformed ...)."""
        self._counters[counter] += n

    def counter(self, name: str) -> int:
        """The current value of a named counter (0 if never counted)."""
        return self._counters.get(name, 0)

    def received(self, kind: str) -> int:
        """Messages of `kind` received so far."""
        return self._in.get(kind, 0)

    def sent(self, kind: str) -> int:
        """Messages of `kind` sent so far."""
        return self._out.get(kind, 0)

    def observe_latency_ns(self, ns: int) -> None:
        """Record one latency; keeps a ring of the last `latency_sample` values."""
        self._latency_count += 1
        self._latency[self._latency_pos] = ns
        self._latency_pos = (self._latency_pos + 1) % self._sample_size
        if self._latency_filled < self._sample_size:
            self._latency_filled += 1

    def latency_percentiles_ns(self) -> dict[str, int]:
        """p50/p99/p999 of the latency sample in ns (empty dict when nothing was observed)."""
        sample = sorted(self._latency[: self._latency_filled])
        if not sample:
            return {}
        last = len(sample) - 1
        return {
            "p50": sample[(last * 50) // 100],
            "p99": sample[(last * 99) // 100],
            "p999": sample[(last * 999) // 1000],
        }

    def snapshot(self) -> dict[str, Any]:
        """Counts, per-second rates since the previous snapshot, counters, latency (any thread)."""
        with self._snap_lock:
            now = time.monotonic()
            elapsed = max(now - self._last_snap_at, 1e-9)
            cur_in, cur_out = dict(self._in), dict(self._out)
            result: dict[str, Any] = {
                "uptime_s": str(Decimal(now - self._started).quantize(_QUANT)),
                "in": _rates(cur_in, self._last_in, elapsed),
                "out": _rates(cur_out, self._last_out, elapsed),
                "counters": dict(self._counters),
            }
            self._last_snap_at, self._last_in, self._last_out = now, cur_in, cur_out
        latency: dict[str, Any] = {"count": self._latency_count}
        for name, ns in self.latency_percentiles_ns().items():
            latency[name] = str((Decimal(ns) / 1000).quantize(_QUANT))
        result["latency_us"] = latency
        return result


def _rates(current: dict[str, int], previous: dict[str, int], elapsed: float) -> dict[str, Any]:
    return {
        kind: {
            "count": count,
            "rate": str(Decimal((count - previous.get(kind, 0)) / elapsed).quantize(_QUANT)),
        }
        for kind, count in current.items()
    }
