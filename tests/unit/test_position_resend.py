"""Which submits of a position may be given up as never sent: only an order's first.

A position sends an order's submit once when it is journaled, and again
(`resend`) after a restart and on a resync while the order's outcome is
unknown. A re-sent submit failing proves nothing: an earlier one, maybe of an
earlier incarnation, may have reached the gateway and traded. The actor is
driven in the caller's thread (no pykka thread).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from posbus.actors.control import CheckOrder, ExposureChanged, Resync, SubmitOrder
from posbus.actors.delivery import Outbox
from posbus.actors.model.risk_request import RiskDecision
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.messages import OrderIntent

ACCOUNT, SYMBOL = "acc", "BTC/USDT"
STREAM = position_stream(ACCOUNT, SYMBOL)
ORDER_ID = f"{ACCOUNT}:{SYMBOL}:1"


class _Risk:
    """Approves every check."""

    def ask(self, message: Any, timeout: float) -> RiskDecision:
        assert isinstance(message, CheckOrder)
        return RiskDecision(True, "", "")

    def tell(self, message: Any) -> None:
        assert isinstance(message, ExposureChanged)


class _Gateway:
    """Records the submits a position sends."""

    def __init__(self) -> None:
        self.submits: list[SubmitOrder] = []

    def tell(self, message: Any) -> None:
        assert isinstance(message, SubmitOrder)
        self.submits.append(message)


class _Silent:
    def publish(self, message: object) -> None:
        pass


def _actor(journal: MemoryJournal) -> tuple[PositionActor, _Gateway]:
    clock = ManualClock(10)
    gateway = _Gateway()
    actor = PositionActor(
        None,
        account=ACCOUNT,
        symbol=SYMBOL,
        outbox=Outbox(journal, "test", clock),
        risk=_Risk(),
        gateway=gateway,
        events=_Silent(),
        clock=clock,
    )
    return actor, gateway


def _intent() -> OrderIntent:
    return OrderIntent(ACCOUNT, SYMBOL, Side.BUY, Decimal(1), None, "i1", False, "test", 1)


def test_the_submit_sent_when_an_order_is_approved_is_a_first_send() -> None:
    journal = MemoryJournal()
    actor, gateway = _actor(journal)
    actor.on_start()
    actor.cursor.offer(actor.outbox.append(STREAM, _intent()))
    actor._drain()
    assert [(s.order_id, s.resend) for s in gateway.submits] == [(ORDER_ID, False)]


def test_a_submit_sent_again_after_a_restart_or_on_a_resync_is_a_resend() -> None:
    journal = MemoryJournal()
    Outbox(journal, "test", ManualClock(1)).append(STREAM, _intent())
    first, sent_first = _actor(journal)
    first.on_start()  # the intent replays, then is approved: submit journaled and sent
    assert [(s.order_id, s.resend) for s in sent_first.submits] == [(ORDER_ID, False)]
    # A new incarnation on the same journal: the submit's outcome is unknown.
    actor, gateway = _actor(journal)
    actor.on_start()
    assert actor.orders[ORDER_ID].status.value == "AwaitingFill"
    assert [(s.order_id, s.resend) for s in gateway.submits] == [(ORDER_ID, True)]
    actor.on_receive(Resync())
    assert [s.resend for s in gateway.submits] == [True, True]
