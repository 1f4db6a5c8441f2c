"""Crash, restart and recovery of the actor layer, with real actors and supervisors.

Each test runs a whole in-process `Node` (risk supervisor, gateway, position
actors under their OTP supervisors) on the in-memory journal and the simulated
exchange, injects failures, and checks that the books come out exactly as if
nothing had failed. Synchronisation is `Node.settle()` (and events the tests
control), never sleeping.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from node_inputs import ACCOUNT, BTC, CONFIG, ETH, LIMITS, intent, quote

from posbus.actors.control import InjectedCrash
from posbus.actors.delivery import decode_record
from posbus.actors.model.exchange_reports import ExecutionReport, NewOrder, OrderFilled, OrderView
from posbus.actors.model.position import Position
from posbus.actors.model.side import Side
from posbus.actors.node import Node, NodeConfig
from posbus.actors.position_actor import position_stream
from posbus.actors.supervision.backoff import Backoff
from posbus.actors.supervision.errors import RestartIntensityExceeded
from posbus.actors.supervision.policy import SupervisorPolicy
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.simulated_exchange import SimConfig, SimulatedExchange
from posbus.bus.messages import Liquidity, OrderFill, RiskEvent

T0 = 1_700_000_000_000_000_000
WAIT_S = 10.0

# Quick restarts keep the suite fast; the timer path of the backoff is still used.


def restarts(node: Node, name: str) -> int:
    """How often the supervisors restarted the child called `name`."""
    (child,) = [c for c in node.actors() if c["name"] == name]
    count: int = child["restarts"]
    return count


def orders_without_execution(state: dict[str, Any]) -> dict[str, Any]:
    """The orders of an inspected position, without the volatile execution statistics."""
    return {
        oid: {k: v for k, v in order.items() if k != "execution"}
        for oid, order in state["orders"].items()
    }


# -- 1. exactly once under a position crash -----------------------------------------


class ParkingClock(ManualClock):
    """A ManualClock that can hold one actor thread inside `now_ns` until released.

    A position actor reads the clock first thing for every message it handles,
    so parking that read holds the actor on one message while the test fills its
    mailbox behind it. Only the next read from a thread whose name starts with
    the given prefix (pykka names threads after the actor class) is parked.
    """

    def __init__(self, start_ns: int) -> None:
        super().__init__(start_ns)
        self._park_lock = threading.Lock()
        self._prefix: str | None = None
        self.parked = threading.Event()
        self._release = threading.Event()

    def park_next(self, thread_prefix: str) -> None:
        """Park the next `now_ns` call made from a thread named `thread_prefix...`."""
        with self._park_lock:
            self._prefix = thread_prefix

    def release(self) -> None:
        """Let the parked thread go on."""
        self._release.set()

    def now_ns(self) -> int:
        with self._park_lock:
            prefix = self._prefix
            park = prefix is not None and threading.current_thread().name.startswith(prefix)
            if park:
                self._prefix = None
        if park:
            self.parked.set()
            if not self._release.wait(WAIT_S):
                raise TimeoutError("the test never released the parked actor")
        return super().now_ns()


def external_fill(i: int) -> OrderFill:
    """Fill number i (0-999): buys when i % 5 < 3, sells otherwise; 0.01 at 50000 + i % 10."""
    return OrderFill(
        order_id="external",
        client_order_id="external",
        trade_id=f"T{i:04d}",
        account=ACCOUNT,
        symbol=BTC,
        side=Side.BUY if i % 5 < 3 else Side.SELL,
        qty=Decimal("0.01"),
        price=Decimal(50_000 + i % 10),
        fee=Decimal("0.05"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
        ts_ns=T0 + i,
    )


FILLS = [external_fill(i) for i in range(1000)]


def recomputed(fills: list[OrderFill]) -> Position:
    """The position those fills make when applied from scratch, once each, in order."""
    position = Position(ACCOUNT, BTC)
    for fill in fills:
        position.apply_fill(fill.to_fill())
    return position


def crash_with_fills_queued(node: Node, clock: ParkingClock) -> str:
    """Hold BTC's position actor on a Crash, queue the 1,000 fills behind it, let it crash."""
    stream = position_stream(ACCOUNT, BTC)
    handle = node.position(ACCOUNT, BTC)
    clock.park_next("PositionActor")
    node.crash(stream)
    assert clock.parked.wait(WAIT_S), "the position actor never took the Crash"
    for fill in FILLS:
        # As the gateway does: journaled on the stream, then the doorbell.
        node.outbox.deliver(stream, fill, handle)
    clock.release()
    return stream


def assert_fills_applied_once(state: dict[str, Any]) -> None:
    """The inspected position holds every one of FILLS exactly once, and nothing else."""
    reference = recomputed(FILLS)
    # 600 buys and 400 sells of 0.01: 6.00 - 4.00
    assert Decimal(state["qty"]) == Decimal("2.00")
    # 1000 fills x 0.05
    assert Decimal(state["fees"]) == Decimal("50.00")
    assert len(state["trade_ids"]) == 1000
    assert state["trade_ids"] == sorted(f.trade_id for f in FILLS)
    assert Decimal(state["realized_pnl"]) == reference.realized_pnl
    assert Decimal(state["avg_entry_price"]) == reference.avg_entry_price
    assert reference.qty == Decimal("2.00")


def test_crashed_position_with_1000_fills_queued_applies_all_exactly_once(
    start_node: Any,
) -> None:
    clock = ParkingClock(T0)
    node = start_node(
        CONFIG,
        journal=MemoryJournal(),
        exchange=SimulatedExchange(SimConfig(seed=1), account=ACCOUNT),
        clock=clock,
    )
    stream = crash_with_fills_queued(node, clock)
    node.settle()

    state = node.inspect(stream)
    assert_fills_applied_once(state)
    # The crash dropped the mailbox: all 1,000 came back from the journal.
    assert state["replayed"] == 1000
    assert state["journal_seq"] == 1000
    assert restarts(node, stream) == 1


def test_fills_delivered_twice_around_a_crash_are_applied_once(start_node: Any) -> None:
    clock = ParkingClock(T0)
    node = start_node(
        CONFIG,
        journal=MemoryJournal(),
        exchange=SimulatedExchange(SimConfig(seed=1), account=ACCOUNT),
        clock=clock,
    )
    stream = crash_with_fills_queued(node, clock)
    handle = node.position(ACCOUNT, BTC)
    # The same fills again (a redelivering gateway), racing the restart on purpose:
    # each copy reaches the dying actor, the handle's buffer or the new incarnation.
    for fill in FILLS:
        node.outbox.deliver(stream, fill, handle)
    node.settle()

    state = node.inspect(stream)
    assert_fills_applied_once(state)
    assert node.journal.last_seq(stream) == 2000
    assert state["journal_seq"] == 2000
    assert restarts(node, stream) == 1


# -- 2. gateway crash between a fill and its delivery -------------------------------


class DiesBeforeDelivering:
    """The simulated exchange behind a gateway that can die right after a fill happened.

    Armed, the next `on_market` that fills an order raises once the exchange has
    booked the fills: the venue traded, the gateway delivered nothing.
    """

    def __init__(self, exchange: SimulatedExchange) -> None:
        self.exchange = exchange
        self._armed = threading.Event()

    def crash_after_next_fill(self) -> None:
        """Arm: the next market update that fills something kills the gateway."""
        self._armed.set()

    def on_market(self, symbol: Any, bid: Any, ask: Any, ts_ns: int) -> list[ExecutionReport]:
        """The exchange's answer, unless armed and it filled: then the gateway dies."""
        reports = self.exchange.on_market(symbol, bid, ask, ts_ns)
        if self._armed.is_set() and any(isinstance(r, OrderFilled) for r in reports):
            self._armed.clear()
            raise InjectedCrash("gateway died before delivering its fills")
        return reports

    def submit(self, order: NewOrder) -> list[ExecutionReport]:
        return self.exchange.submit(order)

    def cancel(self, client_order_id: str, ts_ns: int) -> list[ExecutionReport]:
        return self.exchange.cancel(client_order_id, ts_ns)

    def fills(self, since_index: int = 0) -> list[Any]:
        return self.exchange.fills(since_index)

    def fetch_order(self, client_order_id: str) -> OrderView | None:
        return self.exchange.fetch_order(client_order_id)


def test_fills_the_gateway_never_delivered_reach_the_position_once_after_its_restart(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    # Every fill is split in 2-3 parts: several fills wait for redelivery.
    exchange = SimulatedExchange(SimConfig(seed=3, partial_fill_rate=1.0), account=ACCOUNT)
    link = DiesBeforeDelivering(exchange)
    journal = MemoryJournal()
    node = start_node(CONFIG, journal=journal, exchange=link, clock=clock)
    stream = position_stream(ACCOUNT, BTC)

    node.market(quote(clock, BTC, "49990", "50010"))
    node.signal(intent(clock, BTC, Side.BUY, "0.1", limit="49900"))
    node.settle()
    (order_id,) = node.inspect(stream)["orders"]
    assert node.inspect(stream)["orders"][order_id]["status"] == "Accepted"

    link.crash_after_next_fill()
    # The ask drops to 49890 <= 49900: the resting buy fills as maker at its limit.
    node.market(quote(clock, BTC, "49850", "49890"))
    node.settle()

    fills = exchange.fills()
    assert len(fills) >= 2
    state = node.inspect(stream)
    assert Decimal(state["qty"]) == Decimal("0.1")
    assert Decimal(state["avg_entry_price"]) == Decimal("49900")
    # maker fee 0.1 x 49900 x 0.0002 = 0.998, exact whatever the split (<= 7 decimals a part)
    assert Decimal(state["realized_pnl"]) == Decimal("-0.998")
    assert Decimal(state["fees"]) == Decimal("0.998")
    assert state["trade_ids"] == sorted(f.trade_id for f in fills)
    assert state["orders"][order_id]["status"] == "Filled"
    assert restarts(node, "gateway.A") == 1
    assert node.inspect("gateway.A")["delivered_fills"] == len(fills)

    # A second restart finds its watermark past every fill: nothing is delivered again.
    node.crash("gateway.A")
    node.settle()
    assert restarts(node, "gateway.A") == 2
    again = node.inspect(stream)
    assert again["trade_ids"] == state["trade_ids"]
    assert again["qty"] == state["qty"]
    journaled_fills = [
        m
        for m in (decode_record(r).message for r in journal.read(stream))
        if isinstance(m, OrderFill)
    ]
    assert len(journaled_fills) == len(fills)


# -- 3. the risk supervisor's durable state survives its crash ----------------------


def test_risk_restart_keeps_cooldown_and_halt_and_positions_resend_exposure(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    journal = MemoryJournal()
    exchange = SimulatedExchange(SimConfig(seed=5), account=ACCOUNT)
    node = start_node(CONFIG, journal=journal, exchange=exchange, clock=clock)

    node.market(quote(clock, BTC, "49990", "50010"))
    node.signal(intent(clock, BTC, Side.BUY, "1"))
    node.settle()
    # The mid falls to 49000: unrealized 1 x (49000 - 50010) = -1010, taker fee
    # 1 x 50010 x 0.001 = 50.01, so equity 100000 - 50.01 - 1010 = 98939.99:
    # a daily loss of 1060.01 >= 1000 forces CoolDown for 60 s from T0.
    node.market(quote(clock, BTC, "48990", "49010"))
    node.settle()
    before = node.inspect("risk")
    assert before["state"] == "CoolDown"
    assert before["cooldown_until_ns"] == T0 + 60 * 10**9
    assert before["metrics"]["equity"] == "98939.99"

    # 30 s later the loss is still there; a restart must not start a new cool-down.
    clock.advance(30 * 10**9)
    node.crash("risk")
    node.settle()
    after = node.inspect("risk")
    assert restarts(node, "risk") == 1
    assert after["state"] == "CoolDown"
    assert after["cooldown_until_ns"] == T0 + 60 * 10**9
    assert after["restored_from_seq"] > 0
    # Exposures are volatile: only the positions' re-sent exposures bring these back.
    assert after["metrics"]["equity"] == "98939.99"
    assert after["metrics"]["open_positions"] == "1"

    assert node.halt("operator") == "Halted"
    node.crash("risk")
    node.settle()
    halted = node.inspect("risk")
    assert restarts(node, "risk") == 2
    assert halted["state"] == "Halted"
    assert halted["halt_reason"] == "operator"
    # The cool-down timer still runs under the halt: resuming lands in CoolDown.
    assert node.resume() == "CoolDown"

    changes = [
        (e.previous_state, e.state)
        for e in node.events.events()
        if isinstance(e, RiskEvent) and e.event == "state_change"
    ]
    assert changes == [("Normal", "CoolDown"), ("CoolDown", "Halted"), ("Halted", "CoolDown")]


# -- 6. restart intensity --------------------------------------------------------------


def test_crashing_a_permanent_child_beyond_restart_intensity_escalates(start_node: Any) -> None:
    escalations: list[RestartIntensityExceeded] = []
    escalated = threading.Event()

    def on_escalate(error: RestartIntensityExceeded) -> None:
        escalations.append(error)
        escalated.set()

    clock = ManualClock(T0)
    policy = SupervisorPolicy(max_restarts=2, period_s=60.0, backoff=Backoff(0.0, 0.0))
    node = start_node(
        NodeConfig(ACCOUNT, LIMITS, Decimal(100_000), policy=policy),
        journal=MemoryJournal(),
        exchange=SimulatedExchange(SimConfig(seed=1), account=ACCOUNT),
        clock=clock,
        on_escalate=on_escalate,
    )

    for _ in range(2):
        node.crash("risk")
        node.settle()
    assert restarts(node, "risk") == 2
    assert not node.escalated.is_set()

    # The third crash within 60 s is one more than max_restarts = 2.
    node.crash("risk")
    assert node.escalated.wait(WAIT_S)
    assert escalated.wait(WAIT_S)
    (error,) = escalations
    assert error.child == "risk"
    assert error.max_restarts == 2


# -- 7. recovery of a whole node from its journal ------------------------------------


def test_a_new_node_on_the_same_journal_recovers_identical_positions_and_orders(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    journal = MemoryJournal()
    # The exchange is the outside world: it outlives the process.
    exchange = SimulatedExchange(SimConfig(seed=11, partial_fill_rate=0.5), account=ACCOUNT)
    first = start_node(CONFIG, journal=journal, exchange=exchange, clock=clock)

    first.market(quote(clock, BTC, "49990", "50010"))
    first.market(quote(clock, ETH, "2999", "3001"))
    first.signal(intent(clock, BTC, Side.BUY, "0.3"))
    first.signal(intent(clock, ETH, Side.SELL, "2"))
    first.settle()
    first.market(quote(clock, BTC, "50490", "50510"))
    first.signal(intent(clock, BTC, Side.SELL, "0.1", reduce_only=True))
    first.signal(intent(clock, ETH, Side.BUY, "2", reduce_only=True))  # closes ETH
    first.signal(intent(clock, BTC, Side.BUY, "0.1", limit="49000"))  # rests
    first.signal(intent(clock, BTC, Side.BUY, "5"))  # 5 x 50500 > 60000: refused by risk
    first.settle()
    assert first.halt("end of day") == "Halted"
    first.settle()

    names = [position_stream(ACCOUNT, BTC), position_stream(ACCOUNT, ETH)]
    before = {name: first.inspect(name) for name in names}
    assert before[names[1]]["status"] == "Closed"
    # The halt cancelled the resting buy, which added risk.
    assert sorted(o["status"] for o in before[names[0]]["orders"].values()) == [
        "Cancelled",
        "Filled",
        "Filled",
        "Rejected",
    ]
    first.stop()

    second = start_node(CONFIG, journal=journal, exchange=exchange, clock=clock)
    second.settle()
    assert second.position_names() == names
    for name in names:
        after = second.inspect(name)
        for key in ("status", "qty", "avg_entry_price", "realized_pnl", "fees", "trade_ids"):
            assert after[key] == before[name][key], (name, key)
        assert orders_without_execution(after) == orders_without_execution(before[name])
        assert after["journal_seq"] == before[name]["journal_seq"]
    assert second.inspect("risk")["state"] == "Halted"
    # The recovered node submitted nothing again: the exchange holds no resting order.
    assert exchange.open_orders() == []


def test_fills_made_while_the_process_was_down_reach_the_positions_of_the_new_node(
    start_node: Any,
) -> None:
    clock = ManualClock(T0)
    journal = MemoryJournal()
    exchange = SimulatedExchange(SimConfig(seed=13), account=ACCOUNT)
    first = start_node(CONFIG, journal=journal, exchange=exchange, clock=clock)
    first.market(quote(clock, BTC, "49990", "50010"))
    first.signal(intent(clock, BTC, Side.BUY, "0.1", limit="49900"))
    first.settle()
    stream = position_stream(ACCOUNT, BTC)
    (order_id,) = first.inspect(stream)["orders"]
    first.stop()

    # While no process runs, the venue trades the resting order.
    exchange.on_market(BTC, Decimal("49850"), Decimal("49890"), clock.now_ns())
    (fill,) = exchange.fills()

    second = start_node(CONFIG, journal=journal, exchange=exchange, clock=clock)
    second.settle()
    state = second.inspect(stream)
    assert state["trade_ids"] == [fill.trade_id]
    assert Decimal(state["qty"]) == Decimal("0.1")
    # maker fee 0.1 x 49900 x 0.0002 = 0.998
    assert Decimal(state["realized_pnl"]) == Decimal("-0.998")
    assert state["orders"][order_id]["status"] == "Filled"
    assert restarts(second, "gateway.A") == 0
