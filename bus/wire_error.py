"""WireError: the one error of the wire format.

Raised when bytes do not decode to a valid envelope, when a message cannot be
encoded, and when a message is built with a field the wire schema forbids (so
an invalid message never exists in memory, on either side of the bus). It must
never be raised for anything else: callers catch it to drop a bad frame.
"""

from __future__ import annotations

from typing import Any

from posbus.actors.model.errors import PosbusError


class WireError(PosbusError, ValueError):
    """A frame or a message field that breaks the wire schema; permanent.

    `field` names the offending field as a dotted path
    (``market_update.bid``, ``envelope.seq``, ``execution_signal.fill.qty``)
    or is None when the frame is unreadable as a whole (not msgpack, too big).
    It is also a ValueError, the convention `Fill` and the standard library
    follow for a bad value.
    """

    def __init__(self, message: str, *, field: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.field = field

    def context(self) -> dict[str, Any]:
        ctx = super().context()
        if self.field is not None:
            ctx["field"] = self.field
        return ctx


class FrameTooLarge(WireError):
    """An encoded frame longer than the size limit: `size` and `limit` in bytes."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"envelope: frame of {size} bytes exceeds max_size {limit}")
        self.size = size
        self.limit = limit
