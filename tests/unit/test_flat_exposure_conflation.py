"""Exposure conflation of flat positions: a mark-only change of a qty-0 position is told at most
once per `flat_exposure_interval_ns` of market time; an open position still tells every mark.

The actor is driven in the caller's thread (no pykka thread): `on_receive` is what its
thread would run for each message.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from posbus.actors.control import ExposureChanged
from posbus.actors.delivery import Outbox
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.actors.quote_slot import QuoteSlot
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.messages import (
    Liquidity,
    MarketUpdate,
    Message,
    OrderFill,
    OrderIntent,
    OrderSubmit,
)

ACCOUNT, SYMBOL = "acc", "BTC/USDT"
STREAM = position_stream(ACCOUNT, SYMBOL)
MS = 1_000_000
SECOND = 1_000 * MS


class _Risk:
    """Records what the position tells the risk supervisor."""

    def __init__(self) -> None:
        self.told: list[ExposureChanged] = []

    def tell(self, message: Any) -> None:
        assert isinstance(message, ExposureChanged)
        self.told.append(message)


class _Silent:
    def publish(self, message: object) -> None:
        pass


def position(
    flat_interval_ns: int, *, risk_reads_market: bool = False
) -> tuple[PositionActor, _Risk, Outbox]:
    clock = ManualClock(1)
    outbox = Outbox(MemoryJournal(), "test", clock)
    risk = _Risk()
    actor = PositionActor(
        None,
        account=ACCOUNT,
        symbol=SYMBOL,
        outbox=outbox,
        risk=risk,
        gateway=None,
        events=_Silent(),
        clock=clock,
        flat_exposure_interval_ns=flat_interval_ns,
        risk_reads_market=risk_reads_market,
    )
    return actor, risk, outbox


def quote(bid: int, ts_ns: int) -> MarketUpdate:
    return MarketUpdate(SYMBOL, Decimal(bid), Decimal(bid + 2), None, None, None, ts_ns)


def marks(risk: _Risk) -> list[Decimal | None]:
    return [change.exposure.mark for change in risk.told]


def open_one(actor: PositionActor, outbox: Outbox) -> None:
    """Buy 1 at 100 through journaled records, as a replay applies them (no risk, no gateway)."""

    def record(message: Message) -> None:
        actor.cursor.offer(outbox.append(STREAM, message))

    record(OrderIntent(ACCOUNT, SYMBOL, Side.BUY, Decimal(1), None, "i1", False, "test", 1))
    order_id = f"{ACCOUNT}:{SYMBOL}:1"
    client_id = actor.orders[order_id].client_order_id
    record(OrderSubmit(order_id, client_id, ACCOUNT, SYMBOL, Side.BUY, Decimal(1), None, 2))
    record(
        OrderFill(
            order_id, client_id, "t1", ACCOUNT, SYMBOL, Side.BUY, Decimal(1), Decimal(100),
            Decimal(0), "USDT", Liquidity.TAKER, 3,
        )
    )  # fmt: skip


def test_flat_position_tells_a_new_mark_at_most_once_per_interval() -> None:
    actor, risk, _ = position(flat_interval_ns=SECOND)
    for bid, ts in ((100, 0), (102, 400 * MS), (104, 999 * MS), (106, SECOND), (108, 1500 * MS)):
        actor.on_receive(quote(bid, ts))
    # Told at t=0 (first mark: mid (100+102)/2 = 101) and t=1 s (1 s after it: mid 107);
    # 0.4 s, 0.999 s and 1.5 s are within an interval of the last mark told.
    assert marks(risk) == [Decimal(101), Decimal(107)]
    assert actor.mark == Decimal(109)  # the position itself always has the newest mark


def test_flat_position_without_the_setting_tells_every_mark() -> None:
    actor, risk, _ = position(flat_interval_ns=0)
    for bid, ts in ((100, 0), (102, 400 * MS), (104, 999 * MS)):
        actor.on_receive(quote(bid, ts))
    assert marks(risk) == [Decimal(101), Decimal(103), Decimal(105)]


def test_open_position_tells_every_mark_whatever_the_flat_interval() -> None:
    actor, risk, outbox = position(flat_interval_ns=SECOND)
    open_one(actor, outbox)
    assert actor.position.qty == Decimal(1)
    for bid, ts in ((100, 0), (102, 1 * MS), (104, 2 * MS)):
        actor.on_receive(quote(bid, ts))
    assert marks(risk) == [Decimal(101), Decimal(103), Decimal(105)]
    # Bought 1 at 100; the last mark 105: unrealized P&L (105 - 100) * 1 = 5.
    assert risk.told[-1].exposure.unrealized_pnl == Decimal(5)


def test_quote_slot_message_applies_only_the_newest_quote() -> None:
    actor, risk, _ = position(flat_interval_ns=0)
    slot = QuoteSlot()
    assert slot.put(quote(100, 0)) is True  # empty: the actor must be told
    assert slot.put(quote(110, 1)) is False  # already told: the newer one replaces it
    actor.on_receive(slot)
    actor.on_receive(slot)  # a second delivery finds the slot empty: nothing happens
    assert marks(risk) == [Decimal(111)]  # mid (110 + 112) / 2
    assert slot.superseded == 1


def test_while_risk_reads_the_market_only_the_first_mark_is_told() -> None:
    actor, risk, outbox = position(flat_interval_ns=0, risk_reads_market=True)
    for bid, ts in ((100, 0), (102, 1 * MS)):
        actor.on_receive(quote(bid, ts))
    open_one(actor, outbox)
    for bid, ts in ((104, 2 * MS), (106, 3 * MS)):
        actor.on_receive(quote(bid, ts))
    # The first mark (mid 101) registers the symbol and the P&L at a mark; the
    # later ones, flat or open, reach risk from the market itself.
    assert marks(risk) == [Decimal(101)]
    assert actor.mark == Decimal(107)
    # Bought 1 at 100: at 107 the position's own view is 7, told with its next fill or order.
    assert actor.exposure().unrealized_pnl == Decimal(7)
