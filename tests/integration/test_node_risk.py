"""Pre-trade risk through the actors: refusals, the kill switch and a cool-down from marks.

A real `Node` on the in-memory journal and the seeded simulated exchange, with
a ManualClock so that cool-down timers move only when a test says so. Every
expected number is worked out by hand in a comment.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from node_inputs import ACCOUNT, BTC, CONFIG, LIMITS, intent, quote

from posbus.actors.delivery import decode_record
from posbus.actors.model.side import Side
from posbus.actors.node import Node
from posbus.actors.position_actor import position_stream
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimConfig, SimulatedExchange
from posbus.bus.messages import CancelRequest, OrderIntent, RiskEvent

STREAM = position_stream(ACCOUNT, BTC)
T0 = 1_700_000_000_000_000_000
COOLDOWN_S = LIMITS.cooldown_s


def trade(node: Node, order: OrderIntent) -> dict[str, Any]:
    """Send one intent, wait for the node to settle, return the order it became."""
    seq = node.signal(order).seq
    node.settle()
    found: dict[str, Any] = node.inspect(STREAM)["orders"][f"{ACCOUNT}:{BTC}:{seq}"]
    return found


def risk_events(node: Node, event: str) -> list[RiskEvent]:
    """The risk events of one kind the node published, oldest first."""
    return [e for e in node.events.events() if isinstance(e, RiskEvent) and e.event == event]


def new_node(start_node: Any, clock: ManualClock) -> tuple[Node, SimulatedExchange]:
    """A started node and its exchange, with BTC quoted 49990 / 50010 (mid 50000)."""
    exchange = SimulatedExchange(SimConfig(seed=4), account=ACCOUNT)
    node = start_node(CONFIG, journal=MemoryJournal(), exchange=exchange, clock=clock)
    node.market(quote(clock, BTC, "49990", "50010"))
    return node, exchange


def test_order_beyond_max_notional_is_rejected_by_risk_and_never_reaches_the_exchange(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    node, exchange = new_node(start_node, clock)

    # A market order is priced at the mark, the mid 50000: 2 x 50000 = 100000 > 60000.
    order = trade(node, intent(clock, BTC, Side.BUY, "2"))

    assert order["status"] == "Rejected"
    assert order["reason"].startswith("risk:")
    assert order["reason"] == "risk: order notional 100000 beyond 60000"
    (event,) = risk_events(node, "order_rejected")
    assert event.state == "Normal"
    assert event.symbol == BTC
    assert event.account == ACCOUNT
    assert event.reason.startswith("order_notional:")
    assert order["order_id"] in event.reason
    assert event.values == {"notional": "100000", "limit": "60000"}
    assert exchange.open_orders() == []
    assert exchange.fills() == []
    assert "submits" not in node.inspect("gateway.A")["counts"]
    assert Decimal(node.inspect(STREAM)["qty"]) == 0


def test_halt_refuses_new_risk_but_lets_reduce_only_through_until_resume(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    node, _ = new_node(start_node, clock)
    assert trade(node, intent(clock, BTC, Side.BUY, "0.2"))["status"] == "Filled"

    assert node.halt("operator kill switch") == "Halted"
    refused = trade(node, intent(clock, BTC, Side.BUY, "0.1"))
    assert refused["status"] == "Rejected"
    assert refused["reason"] == (
        "risk: trading halted (operator kill switch): risk-reducing orders only"
    )
    (rejection,) = risk_events(node, "order_rejected")
    assert rejection.state == "Halted"
    assert rejection.reason.startswith("halted:")

    reducing = trade(node, intent(clock, BTC, Side.SELL, "0.1", reduce_only=True))
    assert reducing["status"] == "Filled"
    assert reducing["side"] == Side.SELL.value
    # 0.2 bought, 0.1 sold
    assert Decimal(node.inspect(STREAM)["qty"]) == Decimal("0.1")

    assert node.resume() == "Normal"
    assert trade(node, intent(clock, BTC, Side.BUY, "0.1"))["status"] == "Filled"
    # 0.1 + 0.1
    assert Decimal(node.inspect(STREAM)["qty"]) == Decimal("0.2")

    changes = [(e.previous_state, e.state) for e in risk_events(node, "state_change")]
    assert changes == [("Normal", "Halted"), ("Halted", "Normal")]
    assert len(risk_events(node, "order_rejected")) == 1


def test_daily_loss_from_marks_forces_cooldown_that_refuses_new_exposure(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    node, _ = new_node(start_node, clock)
    assert trade(node, intent(clock, BTC, Side.BUY, "1"))["status"] == "Filled"
    assert node.inspect("risk")["state"] == "Normal"

    # Mid 49000: unrealized 1 x (49000 - 50010) = -1010; taker fee 1 x 50010 x
    # 0.001 = 50.01; equity 100000 - 50.01 - 1010 = 98939.99, a daily loss of
    # 1060.01 >= 1000.
    node.market(quote(clock, BTC, "48990", "49010"))
    node.settle()

    (change,) = risk_events(node, "state_change")
    assert (change.previous_state, change.state) == ("Normal", "CoolDown")
    assert "daily loss limit reached" in change.reason
    assert change.values["equity"] == "98939.99"
    assert change.values["daily_pnl"] == "-1060.01"
    until = T0 + COOLDOWN_S * 10**9
    assert change.values["cooldown_until_ns"] == str(until)
    assert node.inspect("risk")["state"] == "CoolDown"

    refused = trade(node, intent(clock, BTC, Side.BUY, "0.1"))
    assert refused["status"] == "Rejected"
    # T0 (1,700,000,000 s: 2023-11-14 22:13:20 UTC) + the 60 s cool-down.
    assert refused["reason"] == (
        "risk: cooldown until 2023-11-14T22:14:20.000Z: risk-reducing orders only"
    )
    # Closing out is what a cool-down is for.
    closing = trade(node, intent(clock, BTC, Side.SELL, "0.5", reduce_only=True))
    assert closing["status"] == "Filled"
    assert Decimal(node.inspect(STREAM)["qty"]) == Decimal("0.5")

    # The timer ends the cool-down, but the loss is still beyond the limit: sold
    # 0.5 at 48990 (gross 0.5 x (48990 - 50010) = -510, fee 24.495), 0.5 left at
    # mid 49000 (-505): loss 50.01 + 510 + 24.495 + 505 = 1089.505.
    clock.advance(COOLDOWN_S * 10**9)
    node.tick()
    node.settle()
    assert node.inspect("risk")["state"] == "Warning"
    still_refused = trade(node, intent(clock, BTC, Side.BUY, "0.1"))
    assert still_refused["reason"] == "risk: daily loss 1089.505 at or beyond limit 1000"


def test_risk_reading_marks_from_the_market_forces_the_same_cooldown(start_node: Any) -> None:
    """`risk_reads_market`: the node tells the risk supervisor every market update, the
    positions tell it only fills and orders; the loss from a mark is judged all the same."""
    clock = ManualClock(T0)
    exchange = SimulatedExchange(SimConfig(seed=4), account=ACCOUNT)
    config = replace(CONFIG, risk_reads_market=True)
    node = start_node(config, journal=MemoryJournal(), exchange=exchange, clock=clock)
    node.market(quote(clock, BTC, "49990", "50010"))
    assert trade(node, intent(clock, BTC, Side.BUY, "1"))["status"] == "Filled"

    # A small move first (inside its band: recorded, not judged), then the loss:
    # the same numbers as when the position tells the mark (see the test above).
    node.market(quote(clock, BTC, "49890", "49910"))
    node.market(quote(clock, BTC, "48990", "49010"))
    node.settle()

    (change,) = risk_events(node, "state_change")
    assert (change.previous_state, change.state) == ("Normal", "CoolDown")
    assert change.values["equity"] == "98939.99"
    assert change.values["daily_pnl"] == "-1060.01"
    assert node.inspect("risk")["metrics"]["gross"] == "49000"  # priced at the newest mark


# -- working orders --------------------------------------------------------------------
# Total exposure capped at 150,000 (the group cap, 200,000, and leverage, 5 x
# 100,000, stay out of the way). Resting limit buys of 1 BTC at 40,000 never
# cross the 49,990 / 50,010 book: each is 40,000 of notional, below the 60,000
# per-order cap, and counts filled at 40,000.
TOTAL_CAP = replace(CONFIG, limits=replace(LIMITS, max_total_exposure=Decimal(150_000)))


def resting_buy(node: Node, clock: ManualClock) -> dict[str, Any]:
    return trade(node, intent(clock, BTC, Side.BUY, "1", limit="40000"))


def worst_total(node: Node) -> str:
    metrics: dict[str, str] = node.inspect("risk")["metrics"]
    return metrics["worst_case_total_exposure"]


def test_resting_orders_count_until_the_total_cap_and_a_cancel_frees_the_room(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    exchange = SimulatedExchange(SimConfig(seed=4), account=ACCOUNT)
    node = start_node(TOTAL_CAP, journal=MemoryJournal(), exchange=exchange, clock=clock)
    node.market(quote(clock, BTC, "49990", "50010"))

    held = trade(node, intent(clock, BTC, Side.BUY, "0.5"))  # 0.5 x mark 50,000 = 25,000
    assert held["status"] == "Filled"
    first, second, third = (resting_buy(node, clock) for _ in range(3))
    assert [o["status"] for o in (first, second, third)] == ["Accepted"] * 3
    assert worst_total(node) == "145000"  # 25,000 + 3 x 40,000

    # 145,000 + 40,000 = 185,000 > 150,000: refused, though alone it is within every cap.
    fourth = resting_buy(node, clock)
    assert fourth["status"] == "Rejected"
    assert "total exposure 185000 beyond 150000" in fourth["reason"]

    node.cancel(ACCOUNT, BTC, first["order_id"])
    node.settle()
    assert worst_total(node) == "105000"
    assert resting_buy(node, clock)["status"] == "Accepted"  # 145,000 again


def test_a_halt_cancels_the_risk_adding_orders_and_keeps_the_reducing_ones(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    exchange = SimulatedExchange(SimConfig(seed=4), account=ACCOUNT)
    journal = MemoryJournal()
    node = start_node(TOTAL_CAP, journal=journal, exchange=exchange, clock=clock)
    node.market(quote(clock, BTC, "49990", "50010"))
    assert trade(node, intent(clock, BTC, Side.BUY, "0.5"))["status"] == "Filled"
    buys = [resting_buy(node, clock) for _ in range(2)]
    # A reduce-only take-profit resting above the market: it only shrinks the position.
    exit_order = trade(node, intent(clock, BTC, Side.SELL, "0.2", limit="60000", reduce_only=True))
    assert exit_order["status"] == "Accepted"

    assert node.halt("x") == "Halted"
    node.settle()

    orders = node.inspect(STREAM)["orders"]
    assert [orders[o["order_id"]]["status"] for o in buys] == ["Cancelled", "Cancelled"]
    assert orders[exit_order["order_id"]]["status"] == "Accepted"
    # Cancelled through the journal: a cancel request on the stream for each, none other.
    requests = [
        record.message.order_id
        for record in map(decode_record, journal.read(STREAM))
        if isinstance(record.message, CancelRequest)
    ]
    assert requests == [o["order_id"] for o in buys]
    assert worst_total(node) == "25000"  # the held 0.5 BTC; the resting sell only lowers it
    # A reduce-only exit still passes the halt.
    closed = trade(node, intent(clock, BTC, Side.SELL, "0.3", reduce_only=True))
    assert closed["status"] == "Filled"


def test_without_cancel_risk_adding_orders_a_halt_leaves_the_orders_working(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    exchange = SimulatedExchange(SimConfig(seed=4), account=ACCOUNT)
    config = replace(TOTAL_CAP, cancel_risk_adding_orders=False)
    node = start_node(config, journal=MemoryJournal(), exchange=exchange, clock=clock)
    node.market(quote(clock, BTC, "49990", "50010"))
    buy = resting_buy(node, clock)

    node.halt("x")
    node.settle()

    assert node.inspect(STREAM)["orders"][buy["order_id"]]["status"] == "Accepted"


def test_another_accounts_cooldown_leaves_the_orders_working_and_the_firms_cancels_them(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    exchange = SimulatedExchange(SimConfig(seed=4), account=ACCOUNT)
    node = start_node(TOTAL_CAP, journal=MemoryJournal(), exchange=exchange, clock=clock)
    node.market(quote(clock, BTC, "49990", "50010"))
    buy = resting_buy(node, clock)

    def state_change(account: str | None) -> RiskEvent:
        # As the risk worker of a stack with several accounts announces them.
        return RiskEvent(
            "state_change", "CoolDown", "Normal", "daily loss", account, None, {}, clock.now_ns()
        )

    node.events.publish(state_change("other-account"))
    node.settle()
    assert node.inspect(STREAM)["orders"][buy["order_id"]]["status"] == "Accepted"

    node.events.publish(state_change(None))  # firm-wide: every account's positions
    node.settle()
    assert node.inspect(STREAM)["orders"][buy["order_id"]]["status"] == "Cancelled"
