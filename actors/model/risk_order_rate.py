"""The order-rate check: no second holds more than `max_orders_per_second` approvals.

The last pre-trade check, so that only orders every other check approved
count. Orders may arrive out of stamp order (two position actors' intents),
so an order stamped `ts` is approved only if every one-second window
(e - 1 s, e] that contains `ts` still has room for it: the window ending at
`ts` and those ending at later approvals less than 1 s after it. An approval
exactly 1 s old has left a window. Refused orders do not count.

Approvals are kept for `LATE_HORIZON_NS` + 1 s behind the newest one; an
order stamped earlier than the horizon is judged as if stamped at the
horizon (conservative: it can only be refused more, never approved into an
overfull second).

Pure: no clock, no thread, no I/O; run by the risk engine's owner only.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable

from posbus.actors.model.risk_arithmetic import NS_PER_S
from posbus.actors.model.risk_request import OrderRequest, RiskDecision

LATE_HORIZON_NS = 10 * NS_PER_S
"""How far behind the newest approval an order's stamp is still judged exactly."""


class OrderRateWindow:
    """The approvals of the last `LATE_HORIZON_NS` + 1 s, sorted by stamp."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._approved: list[int] = []

    def admit(self, req: OrderRequest, values: dict[str, str], *, reducing: bool) -> RiskDecision:
        """Approve `req` (recording it, with `values`) unless a second around it is full."""
        approved = self._approved
        ts = req.ts_ns
        if approved:
            ts = max(ts, approved[-1] - LATE_HORIZON_NS)
        busiest = self._busiest_window(ts)
        limit = self._limit
        if busiest >= limit:
            return RiskDecision(
                approved=False,
                reason=f"{busiest} orders approved in the last second, limit {limit}",
                check="order_rate",
                values={"approved_in_window": str(busiest), "limit": str(limit)},
                risk_reducing=reducing,
            )
        insort(approved, ts)
        cutoff = approved[-1] - LATE_HORIZON_NS - NS_PER_S
        if approved[0] <= cutoff:
            del approved[: bisect_right(approved, cutoff)]
        return RiskDecision(
            approved=True, reason="", check="", values=values, risk_reducing=reducing
        )

    def _busiest_window(self, ts: int) -> int:
        """The most approvals in one window (e - 1 s, e] with e in [ts, ts + 1 s)."""
        approved = self._approved
        # Window ends worth trying: ts itself and each later approval less than 1 s after it.
        first = bisect_left(approved, ts)
        last = bisect_left(approved, ts + NS_PER_S)
        busiest = 0
        for end in (ts, *approved[first:last]):
            inside = bisect_right(approved, end) - bisect_right(approved, end - NS_PER_S)
            busiest = max(busiest, inside)
        return busiest

    def to_list(self) -> list[int]:
        """The approvals kept, for the engine's snapshot."""
        return list(self._approved)

    def restore(self, approved_ts_ns: Iterable[int]) -> None:
        """Take back the approvals `to_list` gave (an older snapshot's last second included)."""
        self._approved = sorted(approved_ts_ns)
