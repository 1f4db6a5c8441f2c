"""The dashboard document: positions at precision with exact values kept, exact totals per
currency, and "not read" kept apart from "none"."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from posbus.adapters.display_precision import Precision
from posbus.adapters.portfolio_view import currency_of
from posbus.adapters.web.bus_view import BusView
from posbus.adapters.web.dashboard import Venue, build
from posbus.adapters.web.stack_reads import StackReading

VENUE = Venue("simulated", Precision(2, 4))


def _position(symbol: str, qty: str, realized: str, unrealized: str, fees: str) -> dict[str, Any]:
    return {
        "account": "default",
        "symbol": symbol,
        "status": "Open",
        "qty": qty,
        "avg_entry_price": "100",
        "mark": "101",
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "fees": fees,
        "fills": 1,
        "orders": 1,
    }


def _status(*names: str) -> dict[str, Any]:
    workers = [
        {
            "name": name,
            "role": name.partition(".")[0],
            "shard": None,
            "pid": 10 + i,
            "alive": True,
            "serving": True,
            "uptime_s": 1.0,
            "restarts": 0,
        }
        for i, name in enumerate(names)
    ]
    return {"run_dir": "var", "launcher": {"pid": 1}, "workers": workers}


def test_the_pnl_currency_is_the_settlement_or_quote_currency() -> None:
    assert currency_of("BTC/USDT") == "USDT"
    assert currency_of("BTC/USDT:USDC") == "USDC"
    assert currency_of("BTCUSDT") == "?"


def test_totals_are_exact_sums_per_currency_shown_at_precision() -> None:
    reading = StackReading(
        ts_ns=1,
        run_dir="var",
        status=_status("gateway.default", "broker"),
        positions=[
            _position("BTC/USDT", "0.1", "-6.05079900", "130.480", "6.05079900"),
            _position("SOL/USDT", "-3", "-0.58662", "4.95", "0.58662"),
            _position("ETH/BTC", "1", "0.00001", "0.000004", "0.000001"),
        ],
        orders=[],
    )
    document = build(reading, BusView(), VENUE, 1.0)
    usdt, btc = document["totals"][1], document["totals"][0]
    assert (btc["currency"], usdt["currency"]) == ("BTC", "USDT")
    assert usdt["exact"]["realized_pnl"] == "-6.63741900"
    assert usdt["exact"]["total_pnl"] == "128.79258100"
    assert usdt["realized_pnl"] == "-6.64" and usdt["total_pnl"] == "128.79"
    assert (usdt["positions"], usdt["open"]) == (2, 2)
    assert Decimal(btc["exact"]["total_pnl"]) == Decimal("0.000014")
    row = document["positions"][0]
    assert (row["symbol"], row["qty"], row["exact"]["qty"]) == ("BTC/USDT", "0.1000", "0.1")
    assert document["accounts"][0]["gateway"]["state"] == "up"


def test_positions_not_read_are_none_not_an_empty_list() -> None:
    reading = StackReading(
        ts_ns=1, run_dir="var", status=_status("gateway.default"), errors=["broker: down"]
    )
    document = build(reading, BusView(), VENUE, 1.0)
    assert document["positions"] is None
    assert document["totals"] is None
    assert document["orders"] is None
    assert document["accounts"] == [
        {
            "account": "default",
            "gateway": {"name": "gateway.default", "state": "up", "breaker": None},
            "pnl": None,
        }
    ]
    assert document["errors"] == ["broker: down"]


def test_without_the_status_workers_and_accounts_are_not_read() -> None:
    reading = StackReading(ts_ns=1, run_dir="/srv/var", errors=["status: no stack is running"])
    document = build(reading, BusView(), VENUE, 1.0)
    assert document["run_dir"] == "/srv/var"
    assert document["workers"] is None
    assert document["accounts"] is None
    assert document["positions"] is None
