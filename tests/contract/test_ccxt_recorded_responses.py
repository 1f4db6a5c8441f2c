"""posbus's ccxt conversion on recorded answers of real venues, against a reading of the raw answer.

tests/data/ccxt_responses/VENUE.json holds ccxt's own recordings (README.md
there): each entry has the venue's raw `httpResponse` and the unified
`parsedResponse` ccxt made of it. posbus converts the `parsedResponse`; the
expected values below were written by hand from the raw `httpResponse` (the
comments say how), never by asking ccxt or posbus. Where ccxt leaves out a
field posbus needs, the expectation is the strict rule: the field is
unreadable, never guessed.

`test_installed_ccxt_still_parses_the_raw_answers_as_recorded` runs the
installed ccxt's parser on each raw order and trade, so a ccxt upgrade that
reads a venue differently shows up here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import ccxt
import pytest

from posbus.actors.model.exchange_reports import ExchangeOrderStatus as Status
from posbus.actors.model.side import Side
from posbus.adapters.exchange.ccxt_convert import (
    UnreadableField,
    balances_of,
    decimal_of,
    order_view,
    trade_view,
    trades_in_order,
)
from posbus.adapters.exchange.ccxt_derivatives import funding_payment, position_view

DATA = Path(__file__).parents[1] / "data" / "ccxt_responses"
NOW_NS = 1
BUY, SELL = Side.BUY, Side.SELL
D = Decimal


@cache
def recording(venue: str) -> Mapping[str, Any]:
    return json.loads((DATA / f"{venue}.json").read_text())  # type: ignore[no-any-return]


def parsed(venue: str, method: str, index: int) -> list[dict[str, Any]]:
    """The entry's parsedResponse as a list (one structure, or the listed ones)."""
    answer = recording(venue)["methods"][method][index]["parsedResponse"]
    return answer if isinstance(answer, list) else [answer]


@dataclass(frozen=True)
class Order:
    """What the raw answer says of one order."""

    order_id: str
    status: Status
    side: Side
    qty: Decimal
    filled: Decimal
    limit: Decimal | None


# (venue, method, entry index): the orders of the entry, in order. A string: the
# field posbus must find unreadable, because the raw answer does not say it.
ORDERS: dict[tuple[str, str, int], list[Order] | str] = {
    # status NEW, side BUY, origQty 0.05, executedQty 0, LIMIT at 241.
    ("binance", "createOrder", 0): [Order("9780331417", Status.OPEN, BUY, D("0.05"), D(0), D(241))],
    # FILLED, SELL, origQty = executedQty = 0.1, MARKET.
    ("binance", "fetchOrder", 0): [
        Order("3397148653", Status.FILLED, SELL, D("0.1"), D("0.1"), None)
    ],
    # NEW, BUY 0.2, LIMIT_MAKER (a post-only limit) at 50.
    ("binance", "fetchOpenOrders", 0): [
        Order("3811057334", Status.OPEN, BUY, D("0.2"), D(0), D(50))
    ],
    # NEW, BUY 0.410, LIMIT at 50.
    ("binance", "fetchOpenOrders", 1): [
        Order("29067571132", Status.OPEN, BUY, D("0.41"), D(0), D(50))
    ],
    # FILLED, BUY 0.010, executed 0.010, MARKET.
    ("binance", "fetchOrders", 0): [
        Order("262065925771", Status.FILLED, BUY, D("0.01"), D("0.01"), None)
    ],
    # CANCELED, BUY 0.1 LIMIT at 50, nothing executed.
    ("binance", "fetchOrders", 1): [
        Order("3854801792", Status.CANCELLED, BUY, D("0.1"), D(0), D(50))
    ],
    # Kraken answers an order with its txid and a description only: no state.
    ("kraken", "createOrder", 0): "status",
    # status open, buy, vol 0.1, vol_exec 0, limit 50.
    ("kraken", "fetchOrder", 0): [
        Order("OR6EGN-KQSEG-AMI6CL", Status.OPEN, BUY, D("0.1"), D(0), D(50))
    ],
    # status closed, buy, vol = vol_exec = 0.1, market.
    ("kraken", "fetchOrder", 1): [
        Order("OGMZCL-KC6MC-ZRBGM6", Status.FILLED, BUY, D("0.1"), D("0.1"), None)
    ],
    # open take-profit sell of 0.1 (a market order once triggered): no resting limit.
    ("kraken", "fetchOpenOrders", 0): [
        Order("OXCZ7B-EMVZQ-MTJTQJ", Status.OPEN, SELL, D("0.1"), D(0), None)
    ],
    # open stop-loss-limit sell of 0.1: stop 55, limit (price2) 54.
    ("kraken", "fetchOpenOrders", 1): [
        Order("OIIQBL-6PV3A-7M2AJJ", Status.OPEN, SELL, D("0.1"), D(0), D(54))
    ],
    # open trailing-stop buy of 10 XRP: no limit price.
    ("kraken", "fetchOpenOrders", 2): [
        Order("OF7S76-H2IMS-N2ML4U", Status.OPEN, BUY, D(10), D(0), None)
    ],
    # FILLED market SELL, base_size 10, filled_size 10.
    ("coinbase", "fetchClosedOrders", 0): [
        Order("01b6e467-b659-432f-9490-c7cefe949564", Status.FILLED, SELL, D(10), D(10), None)
    ],
    # isActive true, limit buy of 0.1 at 55, dealSize 0.
    ("kucoin", "fetchOpenOrders", 0): [
        Order("6556088034d111000738f7b8", Status.OPEN, BUY, D("0.1"), D(0), D(55))
    ],
    # isActive false, market buy, size = dealSize = 0.1.
    ("kucoin", "fetchClosedOrders", 0): [
        Order("65ba3fc497c9e300079f2003", Status.FILLED, BUY, D("0.1"), D("0.1"), None)
    ],
    # isActive false, market buy, size = dealSize = 0.01.
    ("kucoin", "fetchOrder", 0): [
        Order("65e371dd0ddaa40007cb437b", Status.FILLED, BUY, D("0.01"), D("0.01"), None)
    ],
    # Filled market Sell of orderQty 10000 on XBT_USDT: BitMEX counts spot XBT in
    # satoshis, so 0.0001 XBT (and 0.0001 x avgPx 30557 = the 3.0557 USDT paid).
    ("bitmex", "fetchClosedOrders", 0): [
        Order(
            "8f19a935-40ed-4a61-a34a-62b8e15e1db1",
            Status.FILLED,
            SELL,
            D("0.0001"),
            D("0.0001"),
            None,
        )
    ],
    # New LimitIfTouched Buy of 10000 satoshis, stop 36944: a limit only once touched.
    ("bitmex", "fetchOpenOrders", 0): [
        Order("6ad4a74e-f200-4ec6-a79d-627c7033e89c", Status.OPEN, BUY, D("0.0001"), D(0), None)
    ],
    # Filled market Buy of 1000 XBTUSDT contracts, cumQty 1000.
    ("bitmex", "fetchOrder", 0): [
        Order("eaf968c6-906b-4aaa-a32a-ab65d6e06ed7", Status.FILLED, BUY, D(1000), D(1000), None)
    ],
    # sCode 0, "Order placed", an ordId: taken, but nothing of its state.
    ("okx", "createOrder", 0): "status",
    ("okx", "createOrder", 1): "status",
}


@pytest.mark.parametrize(("venue", "method", "index"), sorted(ORDERS))
def test_orders_read_as_the_raw_answer_says(venue: str, method: str, index: int) -> None:
    expected = ORDERS[venue, method, index]
    structures = parsed(venue, method, index)
    if isinstance(expected, str):
        for structure in structures:
            with pytest.raises(UnreadableField) as caught:
                order_view(structure, "A")
            assert caught.value.field == expected
        return
    got = [order_view(structure, "A") for structure in structures]
    assert [
        Order(v.exchange_order_id, v.status, v.side, v.qty, v.filled_qty, v.limit_price)
        for v in got
    ] == expected


def test_an_order_carrying_only_trade_references_gives_no_fills_of_its_own() -> None:
    # Kraken's closed order lists the id of its trade, without price or amount.
    [closed] = parsed("kraken", "fetchOrder", 1)
    assert trades_in_order(closed, order_view(closed, "A"), "taker", NOW_NS) == []


@dataclass(frozen=True)
class Trade:
    """What the raw answer says of one fill."""

    trade_id: str
    order_id: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: str


TRADES: dict[tuple[str, str, int], list[Trade]] = {
    # isBuyer false: a sell; qty 0.2 at 69.63; commission 0.013926 USDT; isMaker false.
    ("binance", "fetchMyTrades", 0): [
        Trade("309520010", "3784695242", SELL, D("0.2"), D("69.63"), D("0.013926"), "USDT", "taker")
    ],
    # side BUY, qty 0.010 at 36567.10, commission 0.14626840 USDT, maker false.
    ("binance", "fetchMyTrades", 1): [
        Trade(
            "272536245", "3524852987", BUY, D("0.01"), D("36567.1"), D("0.1462684"), "USDT", "taker"
        )
    ],
    # isBuyer false, qty 0.173 at 69.39, commission 0.01200447 USDT, isMaker false.
    ("binance", "fetchMyTrades", 2): [
        Trade(
            "320530367",
            "3949667670",
            SELL,
            D("0.173"),
            D("69.39"),
            D("0.01200447"),
            "USDT",
            "taker",
        )
    ],
    # SELL 10 ADA-USDT at 0.392, commission 0.03136 (Coinbase charges in the quote), TAKER.
    ("coinbase", "fetchMyTrades", 0): [
        Trade(
            "19fc7eee-f4b4-40a7-8104-033da1db5311",
            "01b6e467-b659-432f-9490-c7cefe949564",
            SELL,
            D(10),
            D("0.392"),
            D("0.03136"),
            "USDT",
            "taker",
        )
    ],
    # BUY 20 ADA-PERP-INTX (settled in USDC) at 0.6091, commission 0.0036 USDC, TAKER.
    ("coinbase", "fetchMyTrades", 1): [
        Trade(
            "f8e23d3d-29a4-44f9-804d-1c74e4908055",
            "efed4cba-7395-4b02-b927-0c1dce00e0d8",
            BUY,
            D(20),
            D("0.6091"),
            D("0.0036"),
            "USDC",
            "taker",
        )
    ],
    # buy 0.010055 at 72.8, fee 0.000732004 USDT, liquidity taker.
    ("kucoin", "fetchMyTrades", 0): [
        Trade(
            "3607194733924353",
            "65560a018b40f60007d5fe93",
            BUY,
            D("0.010055"),
            D("72.8"),
            D("0.000732004"),
            "USDT",
            "taker",
        )
    ],
}


@pytest.mark.parametrize(("venue", "method", "index"), sorted(TRADES))
def test_trades_read_as_the_raw_answer_says(venue: str, method: str, index: int) -> None:
    got = [trade_view(t, None, None, NOW_NS) for t in parsed(venue, method, index)]
    assert [
        Trade(
            t.trade_id,
            t.exchange_order_id,
            t.side,
            t.qty,
            t.price,
            t.fee,
            t.fee_currency,
            t.liquidity,
        )
        for t in got
    ] == TRADES[venue, method, index]


BALANCES: dict[tuple[str, int], dict[str, Decimal] | str] = {
    # free + locked of each asset.
    ("binance", 0): {"BTC": D(0), "LTC": D("0.919741"), "ETH": D("0.02229833")},
    # The USDT-M wallet balance.
    ("binance", 1): {"USDT": D("31.022612")},
    # Portfolio margin: each asset's totalWalletBalance.
    ("binance", 2): {
        "ETH": D("0.00057786"),
        "USDT": D("136.03451668"),
        "LTC": D("0.000636"),
        "USDC": D(0),
        "ADA": D("10.0325"),
    },
    # Two ADA accounts, 5.047160 staked and 22.314018: 27.361178 ADA.
    ("coinbase", 0): {"MASK": D(0), "ADA": D("27.361178")},
    ("kucoin", 0): {"USDT": D("40.12618754"), "LTC": D("0.171021"), "BTC": D(0), "TRX": D(0)},
    ("kucoin", 1): {"USDT": D(5)},
    # Isolated margin balances per symbol: ccxt gives no account-wide totals.
    ("kucoin", 2): "total",
    ("okx", 0): {"TUSD": D(100)},
    ("okx", 1): {},
}


@pytest.mark.parametrize(("venue", "index"), sorted(BALANCES))
def test_balances_read_as_the_raw_answer_says(venue: str, index: int) -> None:
    [structure] = parsed(venue, "fetchBalance", index)
    expected = BALANCES[venue, index]
    if isinstance(expected, str):
        with pytest.raises(UnreadableField) as caught:
            balances_of(structure)
        assert caught.value.field == expected
        return
    assert balances_of(structure) == expected


POSITIONS: dict[tuple[str, int], list[tuple[str, Decimal, Decimal | None]]] = {
    # positionAmt 0.009 BTCUSDT (USDT-M: contracts of 1 BTC).
    ("binance", 0): [("BTC/USDT:USDT", D("0.009"), D(1))],
    # positionAmt -3 BTCUSD_PERP (COIN-M: contracts of 100 USD); BCHUSD_241227 is flat.
    ("binance", 1): [("BTC/USD:BTC", D(-3), D(100))],
    # A margin sell of vol 10, none closed: short 10 ADA; Kraken states no contract size.
    ("kraken", 0): [("ADA/USDT", D(-10), None)],
    # POSITION_SIDE_LONG, net_size 20 ADA-PERP-INTX.
    ("coinbase", 0): [("ADA/USDC:USDC", D(20), D(1))],
}


@pytest.mark.parametrize(("venue", "index"), sorted(POSITIONS))
def test_positions_read_as_the_raw_answer_says(venue: str, index: int) -> None:
    got = [position_view(p) for p in parsed(venue, "fetchPositions", index)]
    assert [(p.symbol, p.contracts, p.contract_size) for p in got] == POSITIONS[venue, index]


def test_funding_payments_read_as_the_raw_answer_says() -> None:
    # FUNDING_FEE income -0.04618913 USDT on BTCUSDT at 1707465600000, tranId 8082457372019390060.
    [paid] = [funding_payment(f) for f in parsed("binance", "fetchFundingHistory", 0)]
    assert (paid.symbol, paid.currency, paid.amount) == ("BTC/USDT:USDT", "USDT", D("-0.04618913"))
    assert (paid.funding_id, paid.ts_ns) == ("8082457372019390060", 1707465600000 * 1_000_000)


def test_every_recorded_entry_posbus_reads_is_checked() -> None:
    covered = {
        "order": {(v, m, i) for v, m, i in ORDERS},
        "trade": {(v, m, i) for v, m, i in TRADES},
        "balance": {(v, "fetchBalance", i) for v, i in BALANCES},
        "position": {(v, "fetchPositions", i) for v, i in POSITIONS},
        "funding": {("binance", "fetchFundingHistory", 0)},
    }
    recorded: set[tuple[str, str, int]] = set()
    for path in DATA.glob("*.json"):
        for method, entries in recording(path.stem)["methods"].items():
            recorded |= {(path.stem, method, i) for i in range(len(entries))}
    assert recorded == set().union(*covered.values())


# -- the installed ccxt against the recordings ----------------------------------------------


def raw_structures(venue: str, answer: Any) -> list[dict[str, Any]]:
    """The raw orders or trades inside a venue's answer, as its ccxt parser takes them."""
    if venue == "kucoin":
        data = answer["data"]
        return data.get("items", [data])  # type: ignore[no-any-return]
    if venue == "coinbase":
        return answer.get("orders") or answer["fills"]  # type: ignore[no-any-return]
    if venue == "kraken":
        result = answer["result"]
        if "txid" in result:
            return [result]
        return [{"id": k, **v} for k, v in result.get("open", result).items()]
    if venue == "okx":
        return answer["data"]  # type: ignore[no-any-return]
    return answer if isinstance(answer, list) else [answer]


ORDER_FIELDS = ("id", "status", "side", "amount", "filled", "type")
TRADE_FIELDS = ("id", "order", "side", "price", "amount", "takerOrMaker")


def reparse_cases() -> list[tuple[str, str, int]]:
    cases = [(v, m, i) for v, m, i in sorted(set(ORDERS) | set(TRADES))]
    # Entries ccxt's own tests switch off (`disabled`) are not held against it.
    return [(v, m, i) for v, m, i in cases if not recording(v)["methods"][m][i].get("disabled")]


@pytest.mark.parametrize(("venue", "method", "index"), reparse_cases())
def test_installed_ccxt_still_parses_the_raw_answers_as_recorded(
    venue: str, method: str, index: int
) -> None:
    if not hasattr(ccxt, venue):
        pytest.skip(f"the installed ccxt {ccxt.__version__} has no {venue}")
    exchange = getattr(ccxt, venue)()
    entry = recording(venue)["methods"][method][index]
    is_trade = method == "fetchMyTrades"
    fields = TRADE_FIELDS if is_trade else ORDER_FIELDS
    for raw, recorded in zip(
        raw_structures(venue, entry["httpResponse"]), parsed(venue, method, index), strict=True
    ):
        again = exchange.parse_trade(raw) if is_trade else exchange.parse_order(raw)
        if method == "createOrder":
            # ccxt completes a placement answer from the request itself.
            again = {"type": entry["input"][1], "side": entry["input"][2], **_given(again)}
        for field in fields:
            assert _same(again.get(field), recorded.get(field)), (field, again.get(field))
        if not is_trade and recorded.get("type") == "limit":
            assert _same(again.get("price"), recorded.get("price"))
        if is_trade:
            assert _same(again["fee"]["cost"], recorded["fee"]["cost"])
            # Without loaded markets ccxt may not know a fee's currency (the quote).
            if again["fee"]["currency"] is not None:
                assert again["fee"]["currency"] == recorded["fee"]["currency"]


def _given(structure: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in structure.items() if v is not None}


def _same(left: Any, right: Any) -> bool:
    """Equal, numbers compared as decimals (a recording holds floats)."""
    if isinstance(left, int | float | str) and isinstance(right, int | float):
        return decimal_of(left) == decimal_of(right)
    return bool(left == right)
