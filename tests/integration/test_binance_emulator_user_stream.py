"""The Binance emulator's user-data stream, read by real clients over real websockets.

A real `ccxt.pro.binance` reaches it through its `urls` only (nothing in
ccxt is patched): its spot user-data stream is the WebSocket API
subscription at `urls['api']['ws']['ws-api']['spot']`. The listenKey stream
is read with a plain aiohttp client, as Binance documents it. Waits are
bounded waits on conditions, never sleeps.

Prices: the emulator quotes BTC/USDT 60000.00 / 60000.10 and charges 0.1% in
USDT, so a resting buy of 0.1 at 59000.00 that a touch crosses fills as maker
at 59000.00 with a fee of 0.1 * 59000 * 0.001 = 5.9 USDT.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import ccxt.pro
import pytest

from posbus.adapters.simulation.binance_emulator import API_KEY, BinanceEmulator

BTC = "BTC/USDT"
CROSSING = (Decimal("58990.00"), Decimal("58999.00"))  # crosses a buy at 59000


def pro_client(emulator: BinanceEmulator, **config: Any) -> Any:
    """A ccxt.pro binance aimed at the emulator through its `urls` alone."""
    exchange = ccxt.pro.binance(
        {
            "apiKey": emulator.api_key,
            "secret": emulator.secret,
            "enableRateLimit": False,
            # Markets from exchangeInfo alone: the emulator serves no margin endpoints.
            "options": {
                "fetchCurrencies": False,
                "fetchMargins": False,
                "fetchMarkets": {"types": ["spot"]},
            },
            **config,
        }
    )
    api = exchange.urls["api"]
    rest = {k: v for k, v in emulator.ccxt_urls().items() if "." not in k}
    ws = {**api["ws"], "spot": f"{emulator.ws_url}/ws"}
    ws["ws-api"] = {**api["ws"]["ws-api"], "spot": f"{emulator.ws_url}/ws-api/v3"}
    exchange.urls["api"] = {**api, **rest, "ws": ws}
    return exchange


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait (bounded) until `condition()` holds, checking between loop turns."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def states(orders: list[Any]) -> list[tuple[Any, ...]]:
    """(client order id, status, filled, id) of each order, as they are now."""
    return [(o["clientOrderId"], o["status"], o["filled"], o["id"]) for o in orders]


def test_ccxt_pro_sees_a_resting_orders_fill_on_the_user_data_stream(
    emulator: BinanceEmulator,
) -> None:
    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        # ccxt updates the orders it returned in place: each answer is read as it comes.
        exchange = pro_client(emulator)
        try:
            await exchange.load_markets()
            orders = asyncio.ensure_future(exchange.watch_orders(BTC))
            trades = asyncio.ensure_future(exchange.watch_my_trades(BTC))
            await until(lambda: emulator.user_stream_connections() == 1)
            await exchange.create_order(BTC, "limit", "buy", 0.1, 59000, {"clientOrderId": "c1"})
            placed = states(await asyncio.wait_for(orders, 5))
            # Watched before the fill is pushed: ccxt resolves only the watches
            # waiting when an event arrives.
            orders = asyncio.ensure_future(exchange.watch_orders(BTC))
            emulator.set_touch(BTC, *CROSSING)
            filled_trades = await asyncio.wait_for(trades, 5)
            filled_orders = states(await asyncio.wait_for(orders, 5))
            return placed, filled_trades, filled_orders
        finally:
            await exchange.close()

    placed, trades, orders = asyncio.run(scenario())

    ((cid, status, filled, order_id),) = placed
    assert (cid, status, filled) == ("c1", "open", 0)
    (trade,) = trades
    assert trade["id"] == "5001"
    assert trade["order"] == order_id
    assert (trade["side"], trade["takerOrMaker"]) == ("buy", "maker")
    assert (trade["amount"], trade["price"]) == (0.1, 59000.0)
    assert trade["fee"] == {"cost": 5.9, "currency": "USDT"}
    assert orders == [("c1", "closed", 0.1, order_id)]


def test_ccxt_pro_subscription_is_refused_when_the_venue_refuses_user_streams(
    emulator: BinanceEmulator,
) -> None:
    emulator.refuse_user_streams()

    async def scenario() -> None:
        exchange = pro_client(emulator)
        try:
            await exchange.load_markets()
            await asyncio.wait_for(exchange.watch_orders(BTC), 5)
        finally:
            await exchange.close()

    # ccxt 4.5.90 surfaces the refusal through its own bookkeeping as a KeyError.
    with pytest.raises((ccxt.BaseError, KeyError)):
        asyncio.run(scenario())


@pytest.mark.parametrize("fault", ["drop", "stall"])
def test_a_dropped_or_stalled_stream_fails_ccxt_pros_watch(
    emulator: BinanceEmulator, fault: str
) -> None:
    # A stalled connection answers no ping: ccxt's keepalive (a ping every
    # 100 ms, two misses allowed) gives up on it.
    async def scenario() -> None:
        exchange = pro_client(emulator, streaming={"keepAlive": 100, "maxPingPongMisses": 2})
        try:
            await exchange.load_markets()
            orders = asyncio.ensure_future(exchange.watch_orders(BTC))
            await until(lambda: emulator.user_stream_connections() == 1)
            if fault == "drop":
                assert emulator.drop_user_streams() == 1
            else:
                assert emulator.stall_user_streams() == 1
                emulator.place_order(BTC, "buy", Decimal("0.1"), Decimal(59000), "unseen")
            await asyncio.wait_for(orders, 5)
        finally:
            await exchange.close()

    with pytest.raises(ccxt.NetworkError):
        asyncio.run(scenario())


def test_listen_key_stream_pushes_execution_reports_and_balances(
    emulator: BinanceEmulator,
) -> None:
    headers = {"X-MBX-APIKEY": API_KEY}
    endpoint = f"{emulator.url}/api/v3/userDataStream"

    async def scenario() -> tuple[list[dict[str, Any]], int, int]:
        async with aiohttp.ClientSession() as session:
            async with session.post(endpoint, headers=headers) as answer:
                key = (await answer.json())["listenKey"]
            async with session.ws_connect(f"{emulator.ws_url}/ws/{key}") as ws:
                await until(lambda: emulator.user_stream_connections() == 1)
                emulator.place_order(BTC, "buy", Decimal("0.2"), Decimal(59000), "c1")
                emulator.set_touch(BTC, *CROSSING)
                events = [await ws.receive_json(timeout=5) for _ in range(4)]
                async with session.put(endpoint, headers=headers, data={"listenKey": key}) as kept:
                    kept_status = kept.status
                async with session.delete(endpoint, headers=headers, data={"listenKey": key}):
                    pass
                closed = await ws.receive(timeout=5)
        return events, kept_status, closed.type

    emulator.set_partial_fills(2)
    events, kept_status, closed = asyncio.run(scenario())

    new, first, second, balances = events
    assert (new["e"], new["x"], new["X"], new["c"], new["t"]) == (
        "executionReport",
        "NEW",
        "NEW",
        "c1",
        -1,
    )
    assert (first["x"], first["X"], first["t"], first["l"], first["z"], first["L"]) == (
        "TRADE",
        "PARTIALLY_FILLED",
        5001,
        "0.10000000",
        "0.10000000",
        "59000.00000000",
    )
    assert (first["n"], first["N"], first["m"]) == ("5.90000000", "USDT", True)
    assert (second["X"], second["t"], second["z"]) == ("FILLED", 5002, "0.20000000")
    assert first["i"] == second["i"] == new["i"]
    assert balances["e"] == "outboundAccountPosition"
    # 1,000,000 - 0.2 * 59000 - 2 * 5.9 fees = 988188.2
    assert {b["a"]: b["f"] for b in balances["B"]} == {
        "BTC": "10.20000000",
        "USDT": "988188.20000000",
    }
    assert kept_status == 200
    assert closed == aiohttp.WSMsgType.CLOSE


def test_listen_key_stream_repeats_and_reorders_events_on_demand(
    emulator: BinanceEmulator,
) -> None:
    headers = {"X-MBX-APIKEY": API_KEY}

    async def scenario() -> list[tuple[str, str]]:
        async with aiohttp.ClientSession() as session:
            endpoint = f"{emulator.url}/api/v3/userDataStream"
            async with session.post(endpoint, headers=headers) as answer:
                key = (await answer.json())["listenKey"]
            async with session.ws_connect(f"{emulator.ws_url}/ws/{key}") as ws:
                await until(lambda: emulator.user_stream_connections() == 1)
                emulator.duplicate_user_stream_events(1)
                emulator.place_order(BTC, "buy", Decimal("0.2"), Decimal(59000), "c1")
                emulator.reorder_user_stream_events(1)
                emulator.set_touch(BTC, *CROSSING)
                events = [await ws.receive_json(timeout=5) for _ in range(5)]
        return [(e["e"], e.get("X", "")) for e in events]

    emulator.set_partial_fills(2)
    # NEW twice; then the two trades swapped (FILLED first); then the balances.
    assert asyncio.run(scenario()) == [
        ("executionReport", "NEW"),
        ("executionReport", "NEW"),
        ("executionReport", "FILLED"),
        ("executionReport", "PARTIALLY_FILLED"),
        ("outboundAccountPosition", ""),
    ]


def test_listen_keys_need_the_api_key_and_can_be_refused(emulator: BinanceEmulator) -> None:
    endpoint = f"{emulator.url}/api/v3/userDataStream"

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(endpoint):
                pass
            emulator.refuse_user_streams()
            async with session.post(endpoint, headers={"X-MBX-APIKEY": API_KEY}):
                pass
            async with session.ws_connect(f"{emulator.ws_url}/ws/unknown"):
                pass

    with pytest.raises(aiohttp.WSServerHandshakeError):
        asyncio.run(scenario())
    assert [r.status for r in emulator.requests("POST /api/v3/userDataStream")] == [401, 503]
