"""Paranoid Pirate bookkeeping: when a heartbeat is due, when a peer is dead, reconnect delays."""

from __future__ import annotations

import pytest

from posbus.bus.errors import BusConfigError
from posbus.bus.heartbeat import HeartbeatConfig, Liveness, ReconnectDelay

CONFIG = HeartbeatConfig(interval_s=1.0, liveness=3, reconnect_initial_s=1.0, reconnect_max_s=8.0)


def test_peer_is_dead_after_liveness_times_interval_of_silence() -> None:
    live = Liveness(CONFIG, now=100.0)
    assert not live.expired(102.9)  # 2.9 s < 3 x 1 s
    assert live.expired(103.0)
    live.heard(102.0)
    assert not live.expired(104.9)  # 2.9 s since heard at 102


def test_heartbeat_is_due_after_an_interval_without_sending() -> None:
    live = Liveness(CONFIG, now=0.0)
    assert not live.heartbeat_due(0.5)
    assert live.heartbeat_due(1.0)
    live.sent(1.0)
    assert not live.heartbeat_due(1.5)
    # Next event: heartbeat due at 2.0 (sent 1.0 + 1), expiry at 3.0: 0.5 s from 1.5.
    assert live.next_due(1.5) == 0.5


def test_reconnect_delay_doubles_up_to_the_cap_and_resets() -> None:
    delay = ReconnectDelay(CONFIG)
    assert [delay.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    delay.reset()
    assert delay.next() == 1.0


def test_nonsense_configs_are_refused() -> None:
    with pytest.raises(BusConfigError):
        HeartbeatConfig(interval_s=0)
    with pytest.raises(BusConfigError):
        HeartbeatConfig(reconnect_initial_s=10, reconnect_max_s=1)
