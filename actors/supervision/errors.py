"""Typed errors of the supervision tree.

They extend `PosbusError` so callers handle them like every other posbus
error: `transient` says whether retrying later can help (a child that is
restarting will be back; a child that was terminated will not).
"""

from __future__ import annotations

from typing import Any

from posbus.actors.model.errors import PosbusError


class SupervisionError(PosbusError):
    """Root of the supervision errors; `child` names the child concerned."""

    def __init__(self, message: str, *, child: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.child = child

    def context(self) -> dict[str, Any]:
        return {**super().context(), "child": self.child}


class ChildUnavailable(SupervisionError):
    """The child is down and a restart is pending: an ask cannot be served now."""

    transient = True


class ChildTerminated(SupervisionError):
    """The child is down for good (temporary, or transient after a normal exit)."""


class ChildBufferFull(SupervisionError):
    """The child is down and its handle already holds `capacity` undelivered messages."""

    transient = True

    def __init__(self, child: str, capacity: int, **context: Any) -> None:
        super().__init__(
            f"handle buffer full: {capacity} messages held for {child}", child=child, **context
        )
        self.capacity = capacity


class DuplicateChild(SupervisionError):
    """`StartChild` with the name of a child that is still running or restarting."""


class ChildStartFailed(SupervisionError):
    """A child's start callable raised, or the new actor died or hung in `on_start`.

    The supervisor treats it as an abnormal exit of that child.
    """


class ChildIgnored(SupervisionError):
    """Raised by a child's start callable to decline the start (OTP's `ignore` from init).

    The supervisor marks the child terminated without counting a restart: the
    child stays down until someone starts it again (a position whose journal
    stream is corrupt, for instance).
    """


class RestartIntensityExceeded(SupervisionError):
    """More than `max_restarts` restarts within `period_s`: the supervisor gives up.

    Raised inside a nested supervisor so that it fails and its parent handles
    it; passed (as its message) to `on_escalate` by a root supervisor.
    """

    def __init__(self, supervisor: str, child: str, max_restarts: int, period_s: float) -> None:
        super().__init__(
            f"restart intensity exceeded in {supervisor}: more than {max_restarts} restarts "
            f"in {period_s} s (last exit: {child})",
            child=child,
        )
        self.supervisor = supervisor
        self.max_restarts = max_restarts
        self.period_s = period_s

    def context(self) -> dict[str, Any]:
        return {
            **super().context(),
            "supervisor": self.supervisor,
            "max_restarts": self.max_restarts,
            "period_s": self.period_s,
        }
