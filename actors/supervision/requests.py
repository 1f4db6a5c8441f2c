"""Requests a supervisor answers through `ActorRef.ask` (or a `ChildHandle.ask`).

Plain messages rather than proxy calls, so a supervisor can be asked through
the stable handle its own parent keeps for it. Each is answered in the
supervisor's thread, after every message queued before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from posbus.actors.supervision.child_spec import ChildSpec


@dataclass(frozen=True, slots=True)
class Children:
    """Reply: `Supervisor.children()`, one dict per child, for the admin socket."""


@dataclass(frozen=True, slots=True)
class WhichChildren:
    """Reply: `Supervisor.which_children()`, OTP's counts."""


@dataclass(frozen=True, slots=True)
class GetHandle:
    """Reply: the `ChildHandle` of child `name` (KeyError if there is none)."""

    name: str


@dataclass(frozen=True, slots=True)
class StartChild:
    """Add a child at the end of the start order and start it (OTP start_child).

    Reply: its `ChildHandle` (spec.handle). A name already used by a child
    that is down for good (terminated or stopped) is replaced by the new spec;
    any other reuse raises `DuplicateChild`. A dynamic child does not survive
    its supervisor: when the supervisor stops or fails, its handle is
    terminated (static children's handles wait for the next incarnation).
    """

    spec: ChildSpec


@dataclass(frozen=True, slots=True)
class TerminateChild:
    """Stop child `name` for good, whatever its restart type (OTP terminate_child).

    Reply: None. The handle is terminated; `StartChild` may reuse the name.
    """

    name: str
