"""Fills of resting orders from the venue's user-data stream, with REST polling as the fallback.

A posbus node trades through the real ccxt gateway against the Binance
emulator; the gateway's ccxt.pro client reads the emulator's user-data
stream through `urls` alone (`ccxt_urls(websocket=True)`). Waits are bounded
waits on conditions (`rig.settle()`, `wait_until`), never sleeps.

Prices: a resting buy of 0.1 at 59000.00 that the touch crosses fills as
maker at 59000.00, with a fee of 0.1 * 59000 * 0.001 = 5.9 USDT (in BNB at the
BNB/USDT mid of 600.00: 5.9 / 600 = 0.00983333 BNB).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from ccxt_rig import BTC, STREAM, CcxtRig, RigFactory

from posbus.actors.delivery import decode_record
from posbus.actors.model.side import Side
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.binance_emulator import (
    BinanceEmulator,
    SymbolSpec,
    default_symbols,
)
from posbus.bus.messages import OrderFill

CROSSING = (Decimal("58990.00"), Decimal("58999.00"))  # crosses a buy at 59000
# The REST reads that find fills: polling, lookups, trades.
FILL_READS = ("GET /api/v3/openOrders", "GET /api/v3/order", "GET /api/v3/myTrades")


def streaming_rig(rigs: RigFactory, emulator: BinanceEmulator, **overrides: Any) -> CcxtRig:
    """A rig whose gateway reads the emulator's user-data stream, once it is trusted."""
    overrides = {"urls": emulator.ccxt_urls(websocket=True), **overrides}
    rig = rigs(emulator, MemoryJournal(), **overrides)
    wait_until(lambda: stream(rig)["trusted"])
    return rig


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Block until `condition()` holds (bounded), checking every 10 ms."""
    deadline = time.monotonic() + timeout_s
    idle = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        idle.wait(0.01)


def stream(rig: CcxtRig) -> dict[str, Any]:
    return rig.client.inspect()["user_stream"]


def counts(rig: CcxtRig) -> dict[str, int]:
    return dict(rig.client.inspect()["counts"])


def fill_reads(emulator: BinanceEmulator) -> int:
    return sum(len(emulator.requests(endpoint)) for endpoint in FILL_READS)


def journaled_fills(rig: CcxtRig) -> list[OrderFill]:
    messages = [decode_record(r).message for r in rig.journal.read(STREAM)]
    return [m for m in messages if isinstance(m, OrderFill)]


def only_order(rig: CcxtRig) -> dict[str, Any]:
    (order,) = rig.position()["orders"].values()
    return dict(order)


def resting_buy(rig: CcxtRig) -> None:
    rig.quote()
    rig.order(Side.BUY, "0.1", limit="59000.00")
    rig.settle()
    assert only_order(rig)["status"] == "Accepted"


def filled(rig: CcxtRig) -> bool:
    return Decimal(rig.position()["qty"]) == Decimal("0.1")


def test_a_resting_orders_fill_arrives_through_the_stream_with_polling_paused(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = streaming_rig(rigs, emulator)
    resting_buy(rig)
    reads = fill_reads(emulator)
    # Ten ticks of the 50 ms timer pass with the order working and no polling round.
    paused = counts(rig).get("polls_paused", 0)
    wait_until(lambda: counts(rig).get("polls_paused", 0) >= paused + 10)
    assert fill_reads(emulator) == reads

    emulator.set_touch(BTC, *CROSSING)
    wait_until(lambda: filled(rig))
    rig.settle()

    # Nothing read the fill but the stream.
    assert fill_reads(emulator) == reads
    position = rig.position()
    assert position["trade_ids"] == ["5001"]
    assert Decimal(position["fees"]) == Decimal("5.9")
    assert only_order(rig)["status"] == "Filled"
    assert [(f.trade_id, f.qty, f.price) for f in journaled_fills(rig)] == [
        ("5001", Decimal("0.1"), Decimal("59000.00"))
    ]
    seen = counts(rig)
    assert seen["fills_from_stream"] == 1
    assert "fills_from_poll" not in seen
    assert stream(rig) == {
        "mode": "stream",
        "connected": True,
        "trusted": True,
        "last_error": "",
    }


def test_partial_fills_through_the_stream_are_each_journaled_once(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    emulator.set_partial_fills(2)
    rig = streaming_rig(rigs, emulator)
    rig.quote()
    rig.order(Side.BUY, "0.2", limit="59000.00")
    rig.settle()

    emulator.set_touch(BTC, *CROSSING)
    wait_until(lambda: only_order(rig)["status"] == "Filled")
    rig.settle()

    assert [f.trade_id for f in journaled_fills(rig)] == ["5001", "5002"]
    assert Decimal(rig.position()["qty"]) == Decimal("0.2")
    assert counts(rig)["fills_from_stream"] == 2


@pytest.mark.parametrize("fault", ["duplicate", "reorder"])
def test_repeated_or_reordered_stream_events_change_nothing(
    emulator: BinanceEmulator, rigs: RigFactory, fault: str
) -> None:
    emulator.set_partial_fills(2)
    rig = streaming_rig(rigs, emulator)
    rig.quote()
    rig.order(Side.BUY, "0.2", limit="59000.00")
    rig.settle()
    if fault == "duplicate":
        emulator.duplicate_user_stream_events(4)  # both trades' reports and the balances, twice
    else:
        emulator.reorder_user_stream_events(1)  # the FILLED report before the partial one

    emulator.set_touch(BTC, *CROSSING)
    wait_until(lambda: only_order(rig)["status"] == "Filled" and Decimal(
        rig.position()["qty"]) == Decimal("0.2"))  # fmt: skip
    rig.settle()

    # 0.2 at 59000.00 in two trades of 0.1, each journaled once, whatever the stream did.
    assert sorted(f.trade_id for f in journaled_fills(rig)) == ["5001", "5002"]
    position = rig.position()
    assert Decimal(position["qty"]) == Decimal("0.2")
    assert Decimal(position["fees"]) == Decimal("11.8")  # 2 x 0.1 x 59000 x 0.001
    assert only_order(rig)["status"] == "Filled"


def test_a_dropped_stream_resumes_polling_which_finds_the_fill_and_the_reconnect_repeats_none(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    # The bound caps the reconnect backoff too: refused sessions retry within 2 s.
    rig = streaming_rig(rigs, emulator, user_stream_liveness_s=2)
    resting_buy(rig)

    emulator.refuse_user_streams(times=1_000_000)  # it stays down until the test says
    assert emulator.drop_user_streams() == 1
    wait_until(lambda: not stream(rig)["connected"])
    emulator.set_touch(BTC, *CROSSING)  # the fill happens while the stream is down
    wait_until(lambda: filled(rig))
    rig.settle()
    assert counts(rig)["fills_from_poll"] == 1

    emulator.clear_faults()
    wait_until(lambda: stream(rig)["trusted"])
    rig.settle()

    assert counts(rig)["user_stream.reconnects"] == 1
    assert [f.trade_id for f in journaled_fills(rig)] == ["5001"]
    assert rig.position()["trade_ids"] == ["5001"]
    assert only_order(rig)["status"] == "Filled"
    assert "fills_from_stream" not in counts(rig)

    # The stream carries the next fill again.
    rig.order(Side.SELL, "0.1", limit="59500.00")
    rig.settle()
    emulator.set_touch(BTC, Decimal("59500.00"), Decimal("59500.10"))
    wait_until(lambda: Decimal(rig.position()["qty"]) == 0)
    rig.settle()
    assert counts(rig)["fills_from_stream"] == 1
    assert counts(rig)["fills_from_poll"] == 1


def test_a_stream_silent_past_the_liveness_bound_counts_as_down(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = streaming_rig(rigs, emulator, user_stream_liveness_s=0.6)
    resting_buy(rig)

    emulator.refuse_user_streams(times=1_000_000)
    assert emulator.stall_user_streams() == 1
    wait_until(lambda: not stream(rig)["trusted"])
    emulator.set_touch(BTC, *CROSSING)  # pushed to nobody: the stream is silent
    wait_until(lambda: filled(rig))
    rig.settle()

    assert "RequestTimeout" in stream(rig)["last_error"]
    assert counts(rig)["user_stream.failures"] >= 1
    assert counts(rig)["fills_from_poll"] == 1
    assert [f.trade_id for f in journaled_fills(rig)] == ["5001"]


def test_user_stream_off_polls_as_before(emulator: BinanceEmulator, rigs: RigFactory) -> None:
    rig = rigs(
        emulator, MemoryJournal(), urls=emulator.ccxt_urls(websocket=True), user_stream="off"
    )
    resting_buy(rig)
    emulator.set_touch(BTC, *CROSSING)
    rig.client.poll_now()
    rig.settle()

    assert filled(rig)
    assert rig.position()["trade_ids"] == ["5001"]
    assert stream(rig)["mode"] == "off"
    assert emulator.user_stream_connections() == 0
    assert counts(rig)["fills_from_poll"] == 1


def test_rest_urls_without_websocket_ones_keep_auto_polling(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal())  # ccxt_urls(): the REST endpoints only
    assert stream(rig)["mode"].startswith("polling")
    assert emulator.user_stream_connections() == 0


def test_a_cancel_the_stream_reports_first_is_reported_once(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = streaming_rig(rigs, emulator)
    resting_buy(rig)
    order_id = next(iter(rig.position()["orders"]))

    rig.node.cancel("A", BTC, order_id)
    wait_until(lambda: only_order(rig)["status"] == "Cancelled")
    rig.settle()

    messages = [decode_record(r).message for r in rig.journal.read(STREAM)]
    assert [type(m).__name__ for m in messages].count("OrderCancelled") == 1
    assert emulator.orders()[0]["status"] == "CANCELED"


@pytest.fixture
def bnb_emulator() -> Iterator[BinanceEmulator]:
    """The emulator charging its fees in BNB, at the BNB/USDT mid of 600.00."""
    symbols = {
        **default_symbols(),
        "BNB/USDT": SymbolSpec("BNB", "USDT", Decimal("599.90"), Decimal("600.10")),
    }
    balances = {"USDT": Decimal(1_000_000), "BTC": Decimal(10), "BNB": Decimal(10)}
    with BinanceEmulator(symbols=symbols, balances=balances, fee_asset="BNB") as emu:
        yield emu


def test_bnb_fees_of_stream_fills_carry_their_conversion_mark(
    bnb_emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = streaming_rig(rigs, bnb_emulator)
    resting_buy(rig)
    bnb_emulator.set_touch(BTC, *CROSSING)
    wait_until(lambda: filled(rig))
    rig.settle()

    (fill,) = journaled_fills(rig)
    assert (fill.fee, fill.fee_currency, fill.fee_mark) == (
        Decimal("0.00983333"),
        "BNB",
        Decimal("600.00"),
    )
    assert counts(rig)["fills_from_stream"] == 1


def test_a_fill_the_stream_shows_before_the_placement_is_answered_is_polled_once_it_works(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = streaming_rig(rigs, emulator)
    # The order rests at once, but its answer (open, nothing filled) is held back
    # while the touch fills it: the stream reports the fill of an order in flight.
    emulator.hang("POST /api/v3/order", 0.3, after=True)
    rig.quote()
    rig.order(Side.BUY, "0.1", limit="59000.00")
    wait_until(lambda: len(emulator.orders()) == 1)
    emulator.set_touch(BTC, *CROSSING)
    wait_until(lambda: filled(rig))
    rig.settle()

    assert only_order(rig)["status"] == "Filled"
    assert [f.trade_id for f in journaled_fills(rig)] == ["5001"]
    seen = counts(rig)
    assert seen["fills_from_poll"] == 1
    assert "fills_from_stream" not in seen


def test_an_order_the_venue_expires_ends_through_the_stream(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = streaming_rig(rigs, emulator)
    resting_buy(rig)
    reads = fill_reads(emulator)

    emulator.expire_order(str(only_order(rig)["client_order_id"]))
    wait_until(lambda: only_order(rig)["status"] == "Expired")
    rig.settle()

    assert fill_reads(emulator) == reads
    assert Decimal(rig.position()["qty"]) == 0


def test_an_order_the_venue_rejects_after_accepting_it_ends_cancelled_through_the_stream(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = streaming_rig(rigs, emulator)
    resting_buy(rig)
    reads = fill_reads(emulator)

    emulator.reject_order(str(only_order(rig)["client_order_id"]))
    # Refused by the venue: off the book, nothing of it will fill (docs/venues.md).
    wait_until(lambda: only_order(rig)["status"] == "Cancelled")
    rig.settle()

    assert fill_reads(emulator) == reads
    assert Decimal(rig.position()["qty"]) == 0
