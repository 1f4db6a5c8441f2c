"""Fees paid in BNB through the real ccxt gateway: each fill carries its conversion mark.

The Binance emulator charges its 0.1% fee in BNB (`fee_asset="BNB"`), at the
mid of its BNB/USDT touch, 599.90 / 600.10, so 600.00. The gateway reads the
BNB fee of each trade and stamps the fill with the mid of the BNB/USDT ticker
it fetches from the emulator, 600.00, before the fill is journaled.

    buy 0.1 @ 60000.10    fee 0.1 * 60000.10 * 0.001 / 600.00 = 0.0100001666.. -> 0.01000002 BNB
                          valued 0.01000002 * 600.00 = 6.000012
    sell 0.1 @ 61000.00   fee 0.1 * 61000.00 * 0.001 / 600.00 = 0.0101666666.. -> 0.01016667 BNB
                          valued 0.01016667 * 600.00 = 6.100002
    realized 0.1 * (61000.00 - 60000.10) - 6.000012 - 6.100002 = 99.99 - 12.100014 = 87.889986

The rig's clock does not move, so both fills fall within one cached mark.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

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

TICKER = "GET /api/v3/ticker/24hr"


@pytest.fixture
def emulator() -> Iterator[BinanceEmulator]:
    symbols = {
        **default_symbols(),
        "BNB/USDT": SymbolSpec("BNB", "USDT", Decimal("599.90"), Decimal("600.10")),
    }
    balances = {"USDT": Decimal(1_000_000), "BTC": Decimal(10), "BNB": Decimal(10)}
    with BinanceEmulator(symbols=symbols, balances=balances, fee_asset="BNB") as emu:
        yield emu


def journaled_fills(rig: CcxtRig) -> list[OrderFill]:
    messages = [decode_record(r).message for r in rig.journal.read(STREAM)]
    return [m for m in messages if isinstance(m, OrderFill)]


def test_bnb_fees_are_valued_at_the_bnb_usdt_mid_the_gateway_stamped_on_each_fill(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal())
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()
    emulator.set_touch(BTC, Decimal("61000.00"), Decimal("61000.10"))
    rig.quote("61000.00", "61000.10")
    rig.order(Side.SELL, "0.1")
    rig.settle()

    fills = journaled_fills(rig)
    assert [(f.fee, f.fee_currency, f.fee_mark) for f in fills] == [
        (Decimal("0.01000002"), "BNB", Decimal("600.00")),
        (Decimal("0.01016667"), "BNB", Decimal("600.00")),
    ]
    position = rig.position()
    assert Decimal(position["qty"]) == 0
    assert Decimal(position["fees"]) == Decimal("12.100014")
    assert Decimal(position["realized_pnl"]) == Decimal("87.889986")
    assert position.get("unconverted_fees", 0) == 0
    # One ticker request served both fills (the mark is cached; the rig's clock stands still).
    assert [r.params.get("symbol") for r in emulator.requests(TICKER)] == ["BNBUSDT"]
    assert rig.gateway()["network"]["exchange"]["counts"]["fee_marks.fetched"] == 2


def test_a_failing_ticker_leaves_the_fill_unconverted_and_still_applied(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    # The rig retries 3 times: every try fails.
    emulator.fail(TICKER, 500, times=3)
    rig = rigs(emulator, MemoryJournal())
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    (fill,) = journaled_fills(rig)
    assert (fill.fee, fill.fee_currency, fill.fee_mark) == (Decimal("0.01000002"), "BNB", None)
    position = rig.position()
    assert Decimal(position["qty"]) == Decimal("0.1")
    assert Decimal(position["realized_pnl"]) == 0  # the BNB fee is left out, and said so
    assert position["unconverted_fees"] == 1
    assert position["unconverted_fees_by_currency"] == {"BNB": "0.01000002"}
    assert [r.status for r in emulator.requests(TICKER)] == [500, 500, 500]
    assert rig.gateway()["network"]["exchange"]["counts"]["fee_marks.missing"] == 1
