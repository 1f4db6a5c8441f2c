"""The ccxt gateway's circuit breaker over real HTTP, with the node's ManualClock as its clock.

Threshold 3 and 3 tries per call: one order that meets an exchange in
maintenance three times opens the breaker. While it is open new orders are
rejected without a request leaving, and positions keep their state. After
the 30 s cool-off (the test moves the clock) the gateway sends one probe;
when it succeeds the breaker closes and the gateway reconciles.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from ccxt_rig import CcxtRig, RigFactory

from posbus.actors.model.side import Side
from posbus.adapters.exchange.retry import RetryPolicy
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.binance_emulator import BinanceEmulator

ORDER = "POST /api/v3/order"
SECOND = 1_000_000_000


@pytest.fixture
def rig(emulator: BinanceEmulator) -> Iterator[CcxtRig]:
    factory = RigFactory()
    try:
        yield factory(
            emulator,
            MemoryJournal(),
            breaker_threshold=3,
            breaker_cooloff_s=30,
            retry=RetryPolicy(tries=3, min_s=0.01, max_s=0.02),
        )
    finally:
        factory.close()


def statuses(rig: CcxtRig) -> list[str]:
    return [str(o["status"]) for o in rig.position()["orders"].values()]


def breaker_states(rig: CcxtRig) -> list[tuple[str | None, str]]:
    return [(e.previous_state, e.state) for e in rig.risk_events("breaker_state")]


def test_breaker_opens_rejects_fast_half_opens_after_the_cool_off_and_closes_on_success(
    emulator: BinanceEmulator, rig: CcxtRig
) -> None:
    rig.quote()
    rig.order(Side.BUY, "0.1")  # a position to keep: 0.1 BTC
    rig.settle()
    assert Decimal(rig.position()["qty"]) == Decimal("0.1")

    # The exchange goes into maintenance: three failures in a row open the breaker.
    emulator.set_maintenance(True)
    rig.order(Side.BUY, "0.1")
    rig.settle()
    assert breaker_states(rig) == [("closed", "open")]
    opened = rig.risk_events("breaker_state")[0]
    assert opened.values == {"failures": "3"}
    assert rig.gateway()["network"]["exchange"]["breaker"]["state"] == "open"
    sent_so_far = len(emulator.requests())

    # While open: rejected at once, nothing sent, the position untouched.
    rig.order(Side.BUY, "0.1")
    rig.settle()
    assert len(emulator.requests()) == sent_so_far
    assert statuses(rig) == ["Filled", "Rejected", "Rejected"]
    last_reason = str(list(rig.position()["orders"].values())[-1]["reason"])
    assert "circuit breaker open" in last_reason
    assert Decimal(rig.position()["qty"]) == Decimal("0.1")

    # Still open one nanosecond before the cool-off ends.
    rig.clock.advance(30 * SECOND - 1)
    rig.order(Side.BUY, "0.1")
    rig.settle()
    assert len(emulator.requests()) == sent_so_far
    assert statuses(rig)[-1] == "Rejected"

    # The exchange is back; the cool-off ends: half-open, one probe, closed.
    emulator.set_maintenance(False)
    rig.clock.advance(1)
    rig.wait_for_event(lambda e: e.event == "breaker_state" and e.state == "closed")
    assert breaker_states(rig) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    # Closing triggers a reconciliation of the books.
    rig.wait_for_event(
        lambda e: e.event == "reconciliation" and e.reason.startswith("breaker closed")
    )

    rig.order(Side.BUY, "0.1")
    rig.settle()
    assert statuses(rig)[-1] == "Filled"
    assert Decimal(rig.position()["qty"]) == Decimal("0.2")


def test_failed_probe_reopens_the_breaker(emulator: BinanceEmulator, rig: CcxtRig) -> None:
    emulator.set_maintenance(True)
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()
    assert breaker_states(rig) == [("closed", "open")]

    rig.clock.advance(30 * SECOND)  # still in maintenance: the probe fails
    rig.wait_for_event(lambda e: e.event == "breaker_state" and e.previous_state == "half_open")
    assert breaker_states(rig) == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
    ]
    rig.order(Side.BUY, "0.1")
    rig.settle()
    assert statuses(rig) == ["Rejected", "Rejected"]
