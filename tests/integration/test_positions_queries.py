"""`positions.orders` and `positions.list` stay answerable however big a shard grows.

Found by a 10-minute chaos run: the shard answered every order it ever had,
the reply outgrew the 1 MiB frame limit and the client only saw a timeout.
`positions.orders` now filters (states, symbol) and answers the newest
`limit`, saying how many matched; `positions.list` answers page by page.
Real workers, broker and sockets in one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import zmq
from inprocess_workers import hear_quotes, in_process_bus, order
from stack_harness import wait_for

from posbus.actors.positions_commands import ORDERS_LIMIT_MAX
from posbus.bus.client import CommandClient
from posbus.bus.errors import CommandFailed
from posbus.bus.publisher import Publisher


@pytest.fixture
def client() -> Iterator[CommandClient]:
    """A stack with three filled market buys and one limit buy resting far below."""
    with in_process_bus() as bus:
        gateway = bus.gateway()
        positions = bus.positions()
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        market = Publisher(context, bus.endpoints.events_in, sender="test-market")
        commands = CommandClient(context, bus.endpoints.commands, sender="test")
        try:
            bus.start(bus.risk(), gateway, positions)
            hear_quotes(positions, market)
            for qty in ("0.1", "0.2", "0.3"):
                order(commands, qty)
            order(commands, "0.4", limit_price="1000")

            def settled() -> bool:
                statuses = [o["status"] for o in _orders(commands)["orders"]]
                return sorted(statuses) == ["Accepted", "Filled", "Filled", "Filled"]

            wait_for("three fills and a resting order", settled)
            yield commands
        finally:
            commands.close()
            market.close()


def _orders(client: CommandClient, **args: Any) -> dict[str, Any]:
    result: dict[str, Any] = client.call("positions.0", "positions.orders", args, timeout=10)
    return result


def test_the_newest_orders_within_the_limit_and_how_many_matched(client: CommandClient) -> None:
    result = _orders(client, limit=2)
    assert (result["total"], result["truncated"]) == (4, True)
    # The newest two, oldest first: the third market buy, then the limit buy.
    assert [Decimal(o["qty"]) for o in result["orders"]] == [Decimal("0.3"), Decimal("0.4")]
    everything = _orders(client)
    assert (everything["total"], everything["truncated"], len(everything["orders"])) == (
        4,
        False,
        4,
    )


def test_orders_filtered_by_state_and_symbol(client: CommandClient) -> None:
    resting = _orders(client, status=["Accepted", "PartiallyFilled"])
    assert [o["limit_price"] for o in resting["orders"]] == ["1000"]
    assert _orders(client, status=["Filled"])["total"] == 3
    assert _orders(client, symbol="ETH/USDT")["total"] == 0
    assert _orders(client, symbol="BTC/USDT")["total"] == 4


@pytest.mark.parametrize(
    "args",
    [{"limit": 0}, {"limit": ORDERS_LIMIT_MAX + 1}, {"status": "Filled"}, {"symbol": 3}],
    ids=["limit-0", "limit-too-big", "status-not-a-list", "symbol-not-a-string"],
)
def test_bad_arguments_are_refused_with_the_reason(
    client: CommandClient, args: dict[str, Any]
) -> None:
    with pytest.raises(CommandFailed, match="argument"):
        _orders(client, **args)


def test_positions_come_page_by_page(client: CommandClient) -> None:
    for symbol in ("ETH/USDT", "SOL/USDT"):  # no quotes: risk refuses, the position exists
        order(client, "1", symbol=symbol)
    pages, args = [], {"limit": 2}
    while True:
        result = client.call("positions.0", "positions.list", args, timeout=10)
        pages.append([p["symbol"] for p in result["positions"]])
        if result["next"] is None:
            break
        args = {"limit": 2, "after": result["next"]}
    assert pages == [["BTC/USDT", "ETH/USDT"], ["SOL/USDT"]]
    with pytest.raises(CommandFailed, match="argument 'limit'"):
        client.call("positions.0", "positions.list", {"limit": 0}, timeout=10)
