"""What became of an order the CLI sent: wait, bounded, for the risk decision and the venue.

After `positions.order` answers (the intent is journaled), the order's state
is read from its position actor (`positions.inspect` of its stream) until
it settles: accepted by the venue (Accepted, PartiallyFilled, Filled), or
refused (Rejected by risk or the venue, Error, Cancelled, Expired). A cancel
settles when the order is Cancelled (or ends another way). Nothing is ever
re-sent: a timeout only means the outcome is not known yet.

Runs on the CLI's main thread; reads only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

ACCEPTED = frozenset({"Accepted", "PartiallyFilled", "Filled"})
"""The venue took the order."""
REFUSED = frozenset({"Rejected", "Error", "Cancelled", "Expired"})
"""Risk or the venue refused it, or it ended without trading."""
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Outcome:
    """The order's state when the wait ended; `settled` False when the wait timed out."""

    status: str | None
    reason: str
    settled: bool
    order: dict[str, Any]


def wait_for_order(
    client: Any,
    service: str,
    stream: str,
    order_id: str,
    timeout_s: float,
    *,
    ended: frozenset[str],
) -> Outcome:
    """Poll the position of `stream` until order `order_id` is in a status of `ended`."""
    deadline = time.monotonic() + timeout_s
    order: dict[str, Any] = {}
    while True:
        state = client.call(service, "positions.inspect", {"actor": stream}, timeout=timeout_s)
        order = dict(state.get("orders", {}).get(order_id) or {})
        status = order.get("status")
        if status in ended:
            return Outcome(status, str(order.get("reason") or ""), True, order)
        if time.monotonic() >= deadline:
            return Outcome(status, str(order.get("reason") or ""), False, order)
        time.sleep(POLL_S)
