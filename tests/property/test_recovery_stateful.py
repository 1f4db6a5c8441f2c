"""Property: recovery (latest snapshot + replay) rebuilds exactly the state a crash dropped.

A hypothesis state machine drives one position through random journaled
events (intents, submits, acks, fills including redelivered ones, cancel
requests, cancels, rejects), takes snapshots at random points, and crashes at
random points: the live state is dropped and a new one is recovered from the
journal and the snapshots through the same path an actor start uses
(`PositionActor._recover`). Invariant after every crash: the recovered state
equals the state before the crash, field for field, including every order and
its execution statistics, and the stream position.

It runs on the in-memory journal (the backends are held to one contract by
tests/integration/test_journal_backends.py) and without actor threads: the
position is an unstarted PositionActor, as in offline recovery.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from posbus.actors.delivery import Outbox
from posbus.actors.model.order import Order, OrderStatus
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.messages import (
    CancelRequest,
    Liquidity,
    Message,
    OrderAck,
    OrderCancelled,
    OrderFill,
    OrderIntent,
    OrderRejected,
    OrderSubmit,
)

ACCOUNT = "A"
SYMBOL = "BTC/USDT"
STREAM = position_stream(ACCOUNT, SYMBOL)
T0 = 1_700_000_000_000_000_000
WORKING = (OrderStatus.AWAITING_FILL, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
QTYS = st.sampled_from(["0.01", "0.1", "0.25", "1"]).map(Decimal)
PRICES = st.sampled_from(["49000", "50000", "50000.5", "51000"]).map(Decimal)
FEES = st.sampled_from(["0", "0.5", "1.25", "-0.1"]).map(Decimal)


class _Silent:
    def publish(self, message: object) -> None:
        raise AssertionError("an offline position publishes nothing")


def recovered(outbox: Outbox, journal: MemoryJournal) -> PositionActor:
    """A position rebuilt from `journal` the way an actor start does it (caller's thread)."""
    actor = PositionActor(
        None,
        account=ACCOUNT,
        symbol=SYMBOL,
        outbox=outbox,
        risk=None,
        gateway=None,
        events=_Silent(),
        clock=outbox.clock,
        snapshots=journal,
    )
    actor._recover()
    return actor


def comparable(actor: PositionActor) -> dict[str, Any]:
    """Everything recovery must restore: the journaled state and the inspected view of it."""
    view = actor.inspect()
    for volatile in ("replayed", "recovery", "last_message_ns"):
        del view[volatile]
    return {"state": actor.snapshot_state(), "view": view}


class RecoveryMachine(RuleBasedStateMachine):
    """Random events, snapshots and crashes on one position stream."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(T0)
        self.journal = MemoryJournal(keep_snapshots=2)
        self.outbox = Outbox(self.journal, "test", self.clock)
        self.live = recovered(self.outbox, self.journal)
        self.trade_ids = itertools.count(1)
        self.fills: list[OrderFill] = []
        self.crashes = 0

    def _record(self, message: Message) -> None:
        self.clock.advance(1_000_000)
        self.live.cursor.offer(self.outbox.append(STREAM, message))

    def _orders(self, *statuses: OrderStatus) -> list[Order]:
        return [o for o in self.live.orders.values() if o.status in statuses]

    # -- events ----------------------------------------------------------------------

    @rule(side=st.sampled_from(Side), qty=QTYS, limit=st.none() | PRICES)
    def intent(self, side: Side, qty: Decimal, limit: Decimal | None) -> None:
        self._record(
            OrderIntent(
                account=ACCOUNT,
                symbol=SYMBOL,
                side=side,
                qty=qty,
                limit_price=limit,
                intent_id=f"i{self.clock.now_ns()}",
                reduce_only=False,
                reason="property",
                ts_ns=self.clock.now_ns(),
            )
        )

    @precondition(lambda self: self._orders(OrderStatus.PENDING))
    @rule(pick=st.integers(0, 99), approved=st.booleans())
    def decide(self, pick: int, approved: bool) -> None:
        candidates = self._orders(OrderStatus.PENDING)
        order = candidates[pick % len(candidates)]
        now = self.clock.now_ns()
        if approved:
            self._record(
                OrderSubmit(
                    order_id=order.order_id,
                    client_order_id=order.client_order_id,
                    account=ACCOUNT,
                    symbol=SYMBOL,
                    side=order.side,
                    qty=order.qty,
                    limit_price=order.limit_price,
                    ts_ns=now,
                )
            )
        else:
            self._record(OrderRejected(order_id=order.order_id, reason="risk: no", ts_ns=now))

    @precondition(lambda self: self._orders(*WORKING))
    @rule(pick=st.integers(0, 99))
    def ack(self, pick: int) -> None:
        candidates = self._orders(*WORKING)
        order = candidates[pick % len(candidates)]
        self._record(
            OrderAck(
                order.order_id, order.client_order_id, f"x-{order.order_id}", self.clock.now_ns()
            )
        )

    @precondition(lambda self: self._orders(*WORKING, OrderStatus.CANCEL_REQUESTED))
    @rule(pick=st.integers(0, 99), qty=QTYS, price=PRICES, fee=FEES)
    def fill(self, pick: int, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        candidates = self._orders(*WORKING, OrderStatus.CANCEL_REQUESTED)
        order = candidates[pick % len(candidates)]
        fill = OrderFill(
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            trade_id=f"t{next(self.trade_ids)}",
            account=ACCOUNT,
            symbol=SYMBOL,
            side=order.side,
            # An exchange may fill more than the order says: a fact all the same.
            qty=qty,
            price=price,
            fee=fee,
            fee_currency="USDT",
            liquidity=Liquidity.TAKER,
            ts_ns=self.clock.now_ns(),
        )
        self.fills.append(fill)
        self._record(fill)

    @precondition(lambda self: self.fills)
    @rule(pick=st.integers(0, 99))
    def redeliver_fill(self, pick: int) -> None:
        # A gateway redelivering after its own crash: the trade id is known, nothing moves.
        self._record(self.fills[pick % len(self.fills)])

    @precondition(lambda self: self._orders(*WORKING))
    @rule(pick=st.integers(0, 99))
    def request_cancel(self, pick: int) -> None:
        candidates = self._orders(*WORKING)
        order = candidates[pick % len(candidates)]
        self._record(CancelRequest(order_id=order.order_id, ts_ns=self.clock.now_ns()))

    @precondition(lambda self: self._orders(*WORKING, OrderStatus.CANCEL_REQUESTED))
    @rule(pick=st.integers(0, 99), cancelled=st.booleans())
    def order_ends(self, pick: int, cancelled: bool) -> None:
        candidates = self._orders(*WORKING, OrderStatus.CANCEL_REQUESTED)
        order = candidates[pick % len(candidates)]
        now = self.clock.now_ns()
        if cancelled:
            self._record(OrderCancelled(order.order_id, "cancelled", now))
        else:
            self._record(OrderRejected(order.order_id, "exchange: rejected", now))

    # -- snapshots and crashes ------------------------------------------------------

    @rule()
    def snapshot(self) -> None:
        self.live.take_snapshot()

    @rule()
    def crash_and_recover(self) -> None:
        before = comparable(self.live)
        self.live = recovered(self.outbox, self.journal)  # the old state is dropped
        self.crashes += 1
        assert comparable(self.live) == before
        assert self.live.cursor.position == self.journal.last_seq(STREAM)

    @invariant()
    def the_live_position_is_at_the_end_of_its_stream(self) -> None:
        assert self.live.cursor.position == self.journal.last_seq(STREAM)


RecoveryMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_recovery_after_a_crash_equals_the_state_before_it = RecoveryMachine.TestCase
