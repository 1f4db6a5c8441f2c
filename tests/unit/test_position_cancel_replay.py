"""A journaled cancel naming no order of its position is replayed as the no-op it is.

Such records exist in journals written before the positions shard checked
cancels against the position's orders; they must never fail the position's
recovery (it would fail on every restart, and the shard with it).
"""

from __future__ import annotations

from decimal import Decimal

from posbus.actors.delivery import Outbox
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.messages import CancelRequest, OrderIntent

ACCOUNT, SYMBOL = "acc", "BTC/USDT"
STREAM = position_stream(ACCOUNT, SYMBOL)


def test_a_cancel_of_an_unknown_order_replays_without_changing_the_known_one() -> None:
    journal = MemoryJournal()
    outbox = Outbox(journal, "test", ManualClock(10))
    intent = OrderIntent(
        account=ACCOUNT,
        symbol=SYMBOL,
        side=Side.BUY,
        qty=Decimal(1),
        limit_price=Decimal(1),
        intent_id="i1",
        reduce_only=False,
        reason="test",
        ts_ns=1,
    )
    outbox.append(STREAM, intent)
    outbox.append(STREAM, CancelRequest(order_id=f"{ACCOUNT}:{SYMBOL}:99", ts_ns=2))

    state = PositionActor.recovered_state(outbox, ACCOUNT, SYMBOL)

    assert list(state["orders"]) == [f"{ACCOUNT}:{SYMBOL}:1"]
    assert state["orders"][f"{ACCOUNT}:{SYMBOL}:1"]["status"] == "PendingOrder"
    assert state["journal_seq"] == 2
