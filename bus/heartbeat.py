"""Heartbeat bookkeeping of the ZeroMQ guide's Paranoid Pirate pattern.

Each side sends a HEARTBEAT when it has sent nothing for `interval_s`, and
declares the peer dead after `liveness * interval_s` without hearing
anything from it. The worker reconnects after a delay that doubles up to a
cap. Pure: the clock (monotonic seconds) is passed in; no sockets.
"""

from __future__ import annotations

from dataclasses import dataclass

from posbus.bus.errors import BusConfigError


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    """Heartbeat interval, liveness (missed intervals before death) and reconnect delays."""

    interval_s: float = 1.0
    liveness: int = 3
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 32.0

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.liveness < 1:
            raise BusConfigError("heartbeat interval must be > 0 and liveness >= 1")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise BusConfigError("need 0 < reconnect_initial_s <= reconnect_max_s")

    @property
    def expiry_s(self) -> float:
        """Silence after which the peer is dead."""
        return self.interval_s * self.liveness


class Liveness:
    """When one peer was last heard and when we last sent to it."""

    __slots__ = ("_config", "last_heard", "last_sent")

    def __init__(self, config: HeartbeatConfig, now: float) -> None:
        self._config = config
        self.last_heard = now
        self.last_sent = now

    def heard(self, now: float) -> None:
        """Anything arrived from the peer: it is alive."""
        self.last_heard = now

    def sent(self, now: float) -> None:
        """We sent the peer something (which counts as our heartbeat)."""
        self.last_sent = now

    def heartbeat_due(self, now: float) -> bool:
        """True when we have been silent towards the peer for an interval."""
        return now - self.last_sent >= self._config.interval_s

    def expired(self, now: float) -> bool:
        """True when the peer has been silent for liveness * interval."""
        return now - self.last_heard >= self._config.expiry_s

    def next_due(self, now: float) -> float:
        """Seconds until a heartbeat is due or the peer expires, whichever is first (>= 0)."""
        due = min(
            self.last_sent + self._config.interval_s,
            self.last_heard + self._config.expiry_s,
        )
        return max(0.0, due - now)


class ReconnectDelay:
    """The worker's reconnect delay: doubles after each failure up to a cap; reset on success."""

    __slots__ = ("_config", "current")

    def __init__(self, config: HeartbeatConfig) -> None:
        self._config = config
        self.current = config.reconnect_initial_s

    def next(self) -> float:
        """The delay to wait now; the following one is twice as long (up to the cap)."""
        delay = self.current
        self.current = min(self.current * 2, self._config.reconnect_max_s)
        return delay

    def reset(self) -> None:
        """The broker answered: start from the initial delay next time."""
        self.current = self._config.reconnect_initial_s
