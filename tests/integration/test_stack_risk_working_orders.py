"""A real stack from the CLI: resting orders count against the total exposure cap, and a
halt cancels the risk-adding ones while a reduce-only exit still passes.

`[risk] max_total_exposure = 60000` (the group cap out of the way). Each
resting order is a buy of 1 BTC at 10,000, far below the demo's BTC market
(about 60,000, never reached): 10,000 of notional, within every per-order
limit, and it never fills. The demo opens no position of its own.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stack_harness import Stack, wait_for, where

RISK = """
[risk]
max_total_exposure = "60000"
max_group_exposure = "1000000"
"""
MAX_RESTING = 10


@pytest.fixture
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        s = Stack(Path(name), steps_per_s=20, extra=RISK)
        s.up()
        try:
            yield s
        finally:
            s.close()


def _orders(stack: Stack) -> dict[str, dict[str, Any]]:
    return {o["order_id"]: o for o in stack.json("orders")["orders"]}


def test_resting_orders_fill_the_total_cap_and_a_halt_cancels_them_but_not_the_exit(
    stack: Stack,
) -> None:
    # An open position to exit later: 1 ETH (about 3,000 x correlation 0.85 of exposure).
    opened = stack.json("order", "buy", "ETH/USDT", "1")
    wait_for(
        "ETH/USDT filled",
        lambda: where(stack.positions().get("ETH/USDT"), lambda p: p["qty"] == "1"),
    )
    assert opened["status"] in ("Accepted", "Filled")

    resting: list[str] = []
    refused = None
    for _ in range(MAX_RESTING):
        done = stack.cli("order", "buy", "BTC/USDT", "1", "--limit", "10000", check=False)
        if done.returncode != 0:
            refused = done
            break
        resting.append(done.stdout.split()[1].rstrip(":"))
    # Five fit (50,000 + the ETH position); the sixth would take the book past 60,000.
    assert refused is not None, "no resting order was refused"
    assert refused.returncode == 1, refused.stderr
    assert "Rejected" in refused.stdout and "total exposure" in refused.stdout, refused.stdout
    assert len(resting) == 5
    orders = _orders(stack)
    assert [orders[o]["status"] for o in resting] == ["Accepted"] * 5

    assert stack.json("halt", "--reason", "x")["state"] == "Halted"

    def all_cancelled() -> dict[str, dict[str, Any]] | None:
        found = _orders(stack)
        return found if all(found[o]["status"] == "Cancelled" for o in resting) else None

    wait_for("the resting buys cancelled", all_cancelled)
    # The exit reduces risk: it passes the halt and flattens the position.
    closed = stack.cli("close", "ETH/USDT", "--json")
    assert json.loads(closed.stdout)["status"] in ("Accepted", "Filled")
    wait_for(
        "ETH/USDT closed",
        lambda: where(stack.positions().get("ETH/USDT"), lambda p: p["qty"] == "0"),
    )
    assert stack.json("risk")["state"] == "Halted"
