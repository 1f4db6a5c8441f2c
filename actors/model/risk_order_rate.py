"""The order-rate check: at most `max_orders_per_second` approvals in a sliding second.

The last pre-trade check, so that only orders every other check approved
count. An order stamped `ts` is refused when the window (ts - 1 s, ts]
already holds the limit's worth of approvals; an approval exactly 1 s old
has left it. Refused orders do not count.

Pure: no clock, no thread, no I/O; run by the risk engine's owner only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from posbus.actors.model.risk_arithmetic import NS_PER_S
from posbus.actors.model.risk_request import OrderRequest, RiskDecision


class OrderRateWindow:
    """The approvals of the last second, oldest first."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._approved: deque[int] = deque()

    def admit(self, req: OrderRequest, values: dict[str, str], *, reducing: bool) -> RiskDecision:
        """Approve `req` (recording it, with `values`) unless its second is full."""
        window = self._approved
        cutoff = req.ts_ns - NS_PER_S
        while window and window[0] <= cutoff:
            window.popleft()
        limit = self._limit
        if len(window) >= limit:
            return RiskDecision(
                approved=False,
                reason=f"{len(window)} orders approved in the last second, limit {limit}",
                check="order_rate",
                values={"approved_in_window": str(len(window)), "limit": str(limit)},
                risk_reducing=reducing,
            )
        window.append(req.ts_ns)
        return RiskDecision(
            approved=True, reason="", check="", values=values, risk_reducing=reducing
        )

    def to_list(self) -> list[int]:
        """The approvals kept, for the engine's snapshot."""
        return list(self._approved)

    def restore(self, approved_ts_ns: Iterable[int]) -> None:
        """Take back the approvals `to_list` gave."""
        self._approved = deque(approved_ts_ns)
