"""The risk supervisor actor: the newest state of each position, and what survives a restart.

Over the bus a position's exposures (events) and its checks (requests) take
different sockets, so a check can overtake the exposure told just before it,
and an older exposure can arrive after a newer one. The check carries the
position's exposure, and the supervisor never goes back to an older one.

A restarted supervisor restores its durable state from the `risk` stream:
the peak equity (journaled when it rose a step) and the trading day.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from posbus.actors.control import CheckOrder, ExposureChanged, Inspect, Tick
from posbus.actors.delivery import Outbox
from posbus.actors.events import EventLog
from posbus.actors.model.risk import OrderRequest, PositionExposure, RiskLimits
from posbus.actors.model.side import Side
from posbus.actors.risk_supervisor import RiskSupervisor
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal

T0 = 1_700_000_000_000_000_000
LIMITS = RiskLimits(
    daily_loss_limit=Decimal(1000),
    max_drawdown=Decimal("0.2"),
    max_leverage=Decimal(5),
    warning_fraction=Decimal("0.8"),
    warning_leverage_factor=Decimal("0.5"),
    max_group_exposure=Decimal(200_000),
    max_total_exposure=Decimal(100_000),
    max_order_notional=Decimal(60_000),
    max_orders_per_second=50,
    cooldown_s=60,
    stale_after_s=300,
)


def exposure(qty: str, ts_ns: int, unrealized: str = "0") -> ExposureChanged:
    """BTC/USDT of account A, marked at 50,000 (notional = qty x 50,000)."""
    return ExposureChanged(
        PositionExposure(
            account="A",
            symbol="BTC/USDT",
            qty=Decimal(qty),
            mark=Decimal(50_000),
            mark_ts_ns=T0,
            realized_pnl=Decimal(0),
            unrealized_pnl=Decimal(unrealized),
            group="majors",
            correlation=Decimal(1),
        ),
        ts_ns,
    )


def buy(qty: str) -> OrderRequest:
    return OrderRequest("A", "BTC/USDT", Side.BUY, Decimal(qty), None, "A:BTC/USDT:1", T0)


def start(journal: MemoryJournal, clock: ManualClock) -> Any:
    return RiskSupervisor.start(
        None,
        limits=LIMITS,
        starting_equity=Decimal(100_000),
        outbox=Outbox(journal, "test", clock),
        events=EventLog(),
        clock=clock,
    )


@pytest.fixture
def risk() -> Iterator[Any]:
    ref = start(MemoryJournal(), ManualClock(T0))
    try:
        yield ref
    finally:
        ref.stop()


def test_a_check_is_judged_on_the_exposure_it_carries(risk: Any) -> None:
    # Told nothing yet: risk knows no mark for BTC and refuses (missing data).
    refused = risk.ask(CheckOrder(buy("0.1")))
    assert not refused.approved and refused.check == "missing_data"
    # The same order with the position's state (flat, marked): approved.
    approved = risk.ask(CheckOrder(buy("0.1"), exposure("0", T0 + 1)))
    assert approved.approved, approved.reason


def test_a_check_sees_the_fill_its_position_had_before_the_exposure_event_arrived(
    risk: Any,
) -> None:
    risk.tell(exposure("0", T0 + 1))
    # Long 1.5 BTC (75,000) since a fill: +0.6 BTC (30,000) takes total
    # exposure to 105,000 > 100,000. The bus event saying 1.5 is still on its way.
    decision = risk.ask(CheckOrder(buy("0.6"), exposure("1.5", T0 + 2)))
    assert not decision.approved
    assert decision.check == "total_exposure"


def test_an_older_exposure_arriving_late_is_ignored(risk: Any) -> None:
    risk.tell(exposure("1.5", T0 + 2))
    risk.tell(exposure("0", T0 + 1))  # published earlier, delivered later
    # Still judged long 1.5: +0.6 passes the total exposure limit.
    decision = risk.ask(CheckOrder(buy("0.6")))
    assert decision.check == "total_exposure"
    assert risk.ask(Inspect())["decisions_since_start"]["stale_exposures"] == 1


def test_a_restart_keeps_the_peak_equity_of_a_rise_without_any_state_change() -> None:
    journal, clock = MemoryJournal(), ManualClock(T0)
    risk = start(journal, clock)
    # +5,000 unrealized: equity and peak 105,000; no state change, so no event.
    risk.tell(exposure("1", T0 + 1, unrealized="5000"))
    assert risk.ask(Inspect())["metrics"]["peak_equity"] == "105000"
    risk.stop()
    again = start(journal, clock)
    try:
        # Restored from the durable record the rise journaled (it passed the
        # step: 1 % of the 20 % drawdown limit of the 100,000 peak = 200).
        assert again.ask(Inspect())["metrics"]["peak_equity"] == "105000"
    finally:
        again.stop()


def test_a_rise_below_the_step_is_not_journaled_again() -> None:
    journal, clock = MemoryJournal(), ManualClock(T0)
    risk = start(journal, clock)
    try:
        risk.tell(exposure("1", T0 + 1, unrealized="5000"))  # journaled: peak 105,000
        risk.ask(Inspect())
        records = journal.last_seq("risk")
        # The next step is 1 % of 20 % of 105,000 = 210: +150 is below it.
        risk.tell(exposure("1", T0 + 2, unrealized="5150"))
        assert risk.ask(Inspect())["metrics"]["peak_equity"] == "105150"
        assert journal.last_seq("risk") == records
        risk.tell(exposure("1", T0 + 3, unrealized="5210"))  # 105,210: a step
        risk.ask(Inspect())
        assert journal.last_seq("risk") == records + 1
    finally:
        risk.stop()


def test_a_restart_keeps_the_trading_day_a_tick_began() -> None:
    journal, clock = MemoryJournal(), ManualClock(T0)
    risk = start(journal, clock)
    risk.tell(exposure("1", T0 + 1, unrealized="5000"))  # equity 105,000
    # The next trading day starts at 105,000: the daily loss counts from there.
    risk.tell(Tick(T0 + 86_400 * 10**9))
    assert risk.ask(Inspect())["metrics"]["day_start_equity"] == "105000"
    risk.stop()
    again = start(journal, clock)
    try:
        assert again.ask(Inspect())["metrics"]["day_start_equity"] == "105000"
    finally:
        again.stop()
