"""Mark ages: which open position has the stalest mark, found in O(log n).

The stale-mark check must not look at every position, so the exposure book
keeps a heap of (mark time, update seq) per open position. A mark that only
moves forward pushes nothing (the old entry still sorts no later than the
position does); `oldest_open` corrects such an entry when it reaches the top.
Ties on mark time go to the position updated least recently (its seq), so the
check names the same position however the heap was built.

Pure: no clock, no thread, no I/O; run by the risk engine's owner only.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from posbus.actors.model.risk_exposure import PositionExposure

# Sorts before every real timestamp: an open position without a mark is the stalest of all.
NO_MARK_TS = -(2**63)

# (mark_ts_ns or NO_MARK_TS, seq, account, symbol)
MarkAge = tuple[int, int, str, str]


class MarkAges:
    """The mark time and update seq of each open position, and the stalest of them.

    `positions` is the book's own map of exposures (read, never written here);
    `touch` gives a position the next update seq, `record` also records its mark time.
    """

    def __init__(self, positions: Mapping[tuple[str, str], PositionExposure]) -> None:
        self._positions = positions
        self._seq = 0
        self._position_seq: dict[tuple[str, str], int] = {}
        self._heap: list[MarkAge] = []
        # The heap entry that stands for each open position: its key (mark time,
        # seq) is at most the position's own.
        self._live: dict[tuple[str, str], MarkAge] = {}

    def touch(self, key: tuple[str, str]) -> None:
        """Count one update of `key` (a position told anything, or repriced)."""
        self._seq += 1
        self._position_seq[key] = self._seq

    def record(self, key: tuple[str, str], exp: PositionExposure, open_count: int) -> None:
        """`touch` key, and record the mark time of exp, just stored (a flat one leaves).

        `open_count` is the number of open positions, which bounds the heap.
        """
        self._seq += 1
        self._position_seq[key] = self._seq
        if not exp.qty:
            self._live.pop(key, None)
            return
        mark_ts = exp.mark_ts_ns
        if mark_ts is None:
            mark_ts = NO_MARK_TS
        live = self._live.get(key)
        if live is not None and live[0] <= mark_ts:
            return  # that entry still sorts no later than the position does
        entry = (mark_ts, self._seq, exp.account, exp.symbol)
        heapq.heappush(self._heap, entry)
        self._live[key] = entry
        # Superseded entries are dropped lazily at the top; rebuilding when
        # they outnumber live ones keeps the heap O(open positions), amortised O(1).
        if len(self._heap) > 2 * open_count + 32:
            self._rebuild()

    def oldest_open(self) -> MarkAge | None:
        """The open position with the stalest (or no) mark: the least (mark time, seq).

        Drops superseded entries, and re-enters an open position's entry that
        lags it (a mark moved forward since) under its current key: the entry
        sorted no later than the position, so once the top is current it is the least.
        """
        heap = self._heap
        live = self._live
        while heap:
            top = heap[0]
            key = (top[2], top[3])
            if live.get(key) is not top:
                heapq.heappop(heap)
                continue
            seq = self._position_seq[key]
            if top[1] == seq:
                return top
            mark_ts = self._positions[key].mark_ts_ns
            entry = (mark_ts if mark_ts is not None else NO_MARK_TS, seq, top[2], top[3])
            heapq.heapreplace(heap, entry)
            live[key] = entry
        return None

    def _rebuild(self) -> None:
        self._live = {
            key: (
                exp.mark_ts_ns if exp.mark_ts_ns is not None else NO_MARK_TS,
                self._position_seq[key],
                exp.account,
                exp.symbol,
            )
            for key, exp in self._positions.items()
            if exp.qty
        }
        self._heap = list(self._live.values())
        heapq.heapify(self._heap)
