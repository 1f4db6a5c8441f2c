"""OTP-style supervision for pykka actors.

Public surface: `Supervisor` (the actor), `ChildSpec` and `RestartType` (what
to supervise), `SupervisorPolicy`, `Strategy` and `Backoff` (how),
`SupervisedActor` (base class of children, reports exits through its
`SupervisorLink`), `ChildHandle` (stable address across restarts), the
requests a supervisor answers (`Children`, `StartChild`...), the `Scheduler`
used for delayed restarts and the typed errors. The module
docstring of `supervisor` explains the semantics.
"""

from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.child_spec import ChildSpec
from posbus.actors.supervision.errors import (
    ChildBufferFull,
    ChildIgnored,
    ChildStartFailed,
    ChildTerminated,
    ChildUnavailable,
    DuplicateChild,
    RestartIntensityExceeded,
    SupervisionError,
)
from posbus.actors.supervision.handle import ChildHandle, HandleState
from posbus.actors.supervision.intensity import RestartIntensity
from posbus.actors.supervision.link import ChildExited, SupervisorLink
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.actors.supervision.requests import (
    Children,
    GetHandle,
    StartChild,
    TerminateChild,
    WhichChildren,
)
from posbus.actors.supervision.restart_type import RestartType
from posbus.actors.supervision.scheduler import Cancellable, Scheduler, timer_scheduler
from posbus.actors.supervision.strategy import Strategy
from posbus.actors.supervision.supervised_actor import SupervisedActor
from posbus.actors.supervision.supervisor import ChildStatus, Supervisor

__all__ = [
    "Backoff",
    "Cancellable",
    "ChildBufferFull",
    "ChildExited",
    "ChildHandle",
    "ChildIgnored",
    "ChildSpec",
    "ChildStartFailed",
    "ChildStatus",
    "ChildTerminated",
    "ChildUnavailable",
    "Children",
    "DuplicateChild",
    "GetHandle",
    "HandleState",
    "RestartIntensity",
    "RestartIntensityExceeded",
    "RestartType",
    "Scheduler",
    "StartChild",
    "Strategy",
    "SupervisedActor",
    "SupervisionError",
    "Supervisor",
    "SupervisorLink",
    "SupervisorPolicy",
    "TerminateChild",
    "WhichChildren",
    "timer_scheduler",
]
