"""An alert: what the operator is told about one risk event (or a burst of them).

Pure values. `Alert` is built by the rules (`rules.py`) and read by the
formats; `Severity` orders alerts so a sink can ask for the serious ones only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from posbus.bus.messages import RiskEvent


class Severity(StrEnum):
    """How urgently an operator must act, least to most urgent (compare with `rank`)."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 3 for critical."""
        return _RANKS[self]


_RANKS = {severity: rank for rank, severity in enumerate(Severity)}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, ready to format.

    `kind` names the rule that fired ("risk_state", "journal_corrupt",
    "order_refusals", "reconciliation", "breaker_open", "worker_down", and
    "resolved" for a return to normal); `key` is its identity for
    deduplication; `summary` one line for a human; `event` the risk event
    behind it (the latest one for `order_refusals`, whose `count` says how
    many refusals the window held). `clears`: the key of the opposite
    condition's alert, or a prefix of such keys ending in "|" (a resolved
    notice clears its problem's, and back), which deduplication then
    forgets: a change of condition is news however soon it comes.
    """

    kind: str
    severity: Severity
    key: str
    summary: str
    event: RiskEvent
    count: int = 1
    clears: str = ""

    @property
    def resolved(self) -> bool:
        """True for a notice that an earlier alert's condition has ended."""
        return self.kind == "resolved"
