"""What a supervisor needs to know to start, restart and stop one child."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pykka import ActorRef

from posbus.actors.supervision.handle import DEFAULT_BUFFER_CAPACITY, ChildHandle
from posbus.actors.supervision.link import SupervisorLink
from posbus.actors.supervision.restart_type import RestartType


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """Specification of one supervised child (OTP child spec).

    - `name`: unique among the children of one supervisor; used in logs,
      exit reports and introspection.
    - `start`: called with a fresh `SupervisorLink` on every start and restart
      (in the supervisor's thread); must return the ref of a started pykka
      actor, normally a `SupervisedActor` given the link, e.g.
      `lambda link: PositionActor.start(link, journal=journal)`.
    - `restart`: PERMANENT, TRANSIENT or TEMPORARY.
    - `shutdown_s`: how long the supervisor waits for the child to stop
      (None: forever, the right value for a child that is itself a supervisor).
    - `start_timeout_s`: how long the child's `on_start` may take (journal
      replay included) before the start counts as failed.
    - `buffer_capacity`: messages its handle holds while the child is down.

    The spec owns the child's `handle`, created with the spec: keep the spec
    (or the handle) and the address stays valid across restarts, including
    restarts of the supervisor itself by its parent. A spec belongs to one
    supervisor at a time.
    """

    name: str
    start: Callable[[SupervisorLink], ActorRef[Any]]
    restart: RestartType = RestartType.PERMANENT
    shutdown_s: float | None = 5.0
    start_timeout_s: float = 30.0
    buffer_capacity: int = DEFAULT_BUFFER_CAPACITY
    handle: ChildHandle = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            msg = "a child needs a non-empty name"
            raise ValueError(msg)
        if self.shutdown_s is not None and self.shutdown_s < 0:
            msg = f"shutdown_s must be >= 0 or None, got {self.shutdown_s}"
            raise ValueError(msg)
        if self.start_timeout_s <= 0:
            msg = f"start_timeout_s must be > 0, got {self.start_timeout_s}"
            raise ValueError(msg)
        # Frozen: the handle is set once, here, and never replaced.
        object.__setattr__(self, "handle", ChildHandle(self.name, self.buffer_capacity))
