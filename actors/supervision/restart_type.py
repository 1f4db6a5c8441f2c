"""When a child that exited is restarted (OTP's permanent / transient / temporary)."""

from __future__ import annotations

from enum import StrEnum


class RestartType(StrEnum):
    """A child's restart policy, decided on each exit of the child.

    - PERMANENT: always restarted, whether it crashed or stopped normally.
    - TRANSIENT: restarted only after an abnormal exit (a failure); a normal
      stop leaves it down for good.
    - TEMPORARY: never restarted; also left down when the supervisor stops it
      as a sibling under ONE_FOR_ALL / REST_FOR_ONE (OTP drops such children).
    """

    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"

    def should_restart(self, *, abnormal: bool) -> bool:
        """True when a child with this restart type is restarted after such an exit."""
        if self is RestartType.PERMANENT:
            return True
        if self is RestartType.TRANSIENT:
            return abnormal
        return False
