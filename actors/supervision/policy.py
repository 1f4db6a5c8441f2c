"""The knobs of one supervisor: strategy, restart intensity and backoff."""

from __future__ import annotations

from dataclasses import dataclass, field

from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.strategy import Strategy


@dataclass(frozen=True, slots=True)
class SupervisorPolicy:
    """How a supervisor reacts to exits of its children.

    At most `max_restarts` restarts within `period_s` seconds (sliding
    window); one more and the supervisor stops all its children and
    escalates. `backoff` spaces restarts out; its attempt number is the count
    of restarts already in the window.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    period_s: float = 5.0
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            msg = f"max_restarts must be >= 0, got {self.max_restarts}"
            raise ValueError(msg)
        if self.period_s <= 0:
            msg = f"period_s must be > 0, got {self.period_s}"
            raise ValueError(msg)
