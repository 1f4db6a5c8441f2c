"""QuoteSlot: at most one market message per actor mailbox, and the newest quote never stranded."""

from __future__ import annotations

import queue
import threading
from decimal import Decimal

from posbus.actors.quote_slot import QuoteSlot
from posbus.bus.messages import MarketUpdate


def quote(i: int) -> MarketUpdate:
    return MarketUpdate("X/USDT", Decimal(100 + i), Decimal(101 + i), None, None, None, i)


def test_put_into_an_empty_slot_asks_for_a_tell_and_a_full_one_does_not() -> None:
    slot = QuoteSlot()
    assert slot.put(quote(1)) is True
    assert slot.put(quote(2)) is False
    assert slot.take() == quote(2)
    assert slot.take() is None
    assert slot.put(quote(3)) is True  # emptied by take: the next quote needs a tell again
    assert slot.superseded == 1


def test_newest_quote_always_reaches_the_actor_under_concurrent_put_and_take() -> None:
    """Producer and actor race on one slot: a tell finds at most one quote; the last one lands."""
    slot = QuoteSlot()
    mailbox: queue.SimpleQueue[QuoteSlot | None] = queue.SimpleQueue()
    taken: list[MarketUpdate] = []

    def actor() -> None:
        while (message := mailbox.get()) is not None:
            quote_now = message.take()
            if quote_now is not None:
                taken.append(quote_now)

    thread = threading.Thread(target=actor)
    thread.start()
    tells = 0
    for i in range(20_000):
        if slot.put(quote(i)):
            tells += 1
            mailbox.put(slot)
    mailbox.put(None)
    thread.join(30)
    assert taken[-1] == quote(19_999)
    # Quotes arrive in order, each one at most once, and every put is either taken or superseded.
    assert [q.ts_ns for q in taken] == sorted({q.ts_ns for q in taken})
    assert len(taken) + slot.superseded == 20_000
    assert tells >= len(taken)
