"""The risk state machine's states and the event recording a change of state.

Normal -> Warning -> CoolDown, plus Halted for the manual kill switch. The risk
engine (`risk_engine.py`) decides the transitions; this module only names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class RiskState(StrEnum):
    """The state of the risk engine, as it appears in risk events and snapshots.

    - NORMAL: every pre-trade check applies with the full leverage cap.
    - WARNING: a metric reached its warning fraction; the leverage cap shrinks.
    - COOLDOWN: a loss limit was reached; closeout only until the timer expires.
    - HALTED: manual kill switch; closeout only until an operator resumes.
    """

    NORMAL = "Normal"
    WARNING = "Warning"
    COOLDOWN = "CoolDown"
    HALTED = "Halted"


@dataclass(frozen=True, slots=True)
class RiskTransition:
    """One change of risk state (or a new breach while already restricted).

    `values` holds the numbers behind the change as decimal strings (equity,
    drawdown, leverage...), so the event explains itself in logs and on the bus.
    `previous == state` only when a new loss limit was breached while trading was
    already restricted (CoolDown or Halted): the breach is still reported.
    """

    previous: RiskState
    state: RiskState
    reason: str
    ts_ns: int
    values: dict[str, str] = field(default_factory=dict)
