"""Crash recovery with real processes: `kill -9` the positions worker 20 times while it trades.

The stack runs for real (launcher, broker, risk, gateway, positions, market
feed; SQLite journals). The test places market orders and resting limit
orders (the latter fill later, also while the positions worker is dead), and
at 20 seeded random moments kills the positions worker with SIGKILL. After
every restart:

- each recovered position and its orders equal the state recomputed from
  the worker's journal from scratch, up to the same sequence number (a cold,
  read-only replay in this process, no snapshot);

and at the end, with no order left working:

- the fills in the positions equal the fills the gateway published (its
  journal is the exchange's record as the stack saw it): none lost, none
  applied twice, each quantity is the signed sum of its fills and each
  realized P&L is the fills' cash flow less fees plus qty x entry price.
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from stack_harness import Stack, wait_for, where

from posbus.actors.delivery import decode_record
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.adapters.launcher_client import StackClient
from posbus.adapters.simulation.chaos_audit import cold_replay
from posbus.bus.errors import BusError
from posbus.bus.messages import OrderFill

KILLS = 20
SEED = 20261126
SYMBOLS = {"BTC/USDT": Decimal("0.01"), "ETH/USDT": Decimal("0.2"), "SOL/USDT": Decimal(4)}
WORKING = {"PendingOrder", "AwaitingFill", "Accepted", "PartiallyFilled", "CancelRequested"}
COMPARED = ("status", "qty", "avg_entry_price", "realized_pnl", "fees", "trade_ids")


@pytest.fixture
def stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="pb-", dir="/tmp") as name:
        # The demo feed moves the market (so resting limit orders fill over
        # time); its own signal source stays silent: the test places the orders.
        s = Stack(Path(name), steps_per_s=50, max_restarts=KILLS + 5)
        s.up()
        try:
            yield s
        finally:
            s.close()


def _journal(stack: Stack, worker: str) -> SqliteJournal:
    return SqliteJournal(stack.run_dir / "journal" / f"{worker}.sqlite", writer=False)


def _signed(fill: OrderFill) -> Decimal:
    return fill.qty if fill.side == "buy" else -fill.qty


def _orders(state: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Each order's journaled facts (execution statistics depend on market data, not compared)."""
    return {
        oid: (o["status"], o["filled_qty"], tuple(o["trade_ids"]), o["client_order_id"])
        for oid, o in state["orders"].items()
    }


def _place_orders(client: StackClient, rng: random.Random, marks: dict[str, Decimal]) -> int:
    """One market order and one resting limit order near the mark; returns how many went in."""
    placed = 0
    for limit in (False, True):
        symbol = rng.choice(sorted(SYMBOLS))
        side = rng.choice(("buy", "sell"))
        args: dict[str, Any] = {"symbol": symbol, "side": side, "qty": str(SYMBOLS[symbol])}
        mark = marks.get(symbol)
        if limit and mark is not None:
            # 2 bps inside the mark: rests, then fills when the walk crosses it.
            offset = Decimal("0.9998") if side == "buy" else Decimal("1.0002")
            args["limit_price"] = str((mark * offset).quantize(Decimal("0.01")))
        try:
            client.call(client.shard_service("default", symbol), "positions.order", args)
            placed += 1
        except BusError:
            pass  # the worker is restarting: an order refused (or of unknown outcome) is fine
    return placed


def _positions(client: StackClient) -> dict[str, dict[str, Any]]:
    result = client.call("positions.0", "positions.list")
    return {p["symbol"]: p for p in result["positions"]}


def _inspect(client: StackClient, stream: str) -> dict[str, Any]:
    state: dict[str, Any] = client.call("positions.0", "positions.inspect", {"actor": stream})
    return state


def _recovered(stack: Stack, old_pid: int) -> None:
    wait_for(
        "positions.0 restarted",
        lambda: where(stack.worker("positions.0"), lambda w: w["pid"] != old_pid and w["serving"]),
        timeout=60,
    )
    wait_for(
        "positions.0 recovered",
        lambda: where(
            stack.admin("positions.0", "status"), lambda st: st["recovered"]["state"] == "done"
        ),
        timeout=60,
    )


def test_twenty_kill_9_of_the_positions_worker_lose_and_double_no_fill(stack: Stack) -> None:
    rng = random.Random(SEED)
    client = StackClient(str(stack.config), None)
    placed = 0
    for kill in range(KILLS):
        marks = {
            sym: Decimal(str(p["mark"])) for sym, p in _positions(client).items() if p.get("mark")
        }
        placed += _place_orders(client, rng, marks)
        # The kill lands at a seeded random moment while fills come in: this
        # wait chooses *when* to crash, it synchronises nothing.
        time.sleep(rng.uniform(0.05, 0.6))
        old_pid = stack.worker("positions.0")["pid"]
        os.kill(old_pid, signal.SIGKILL)
        _recovered(stack, old_pid)

        journal = _journal(stack, "positions.0")
        try:
            for stream in sorted(journal.streams()):
                if not stream.startswith("position/"):
                    continue
                live = _inspect(client, stream)
                cold = cold_replay(journal, stream, live["journal_seq"])
                for key in COMPARED:
                    assert live[key] == cold[key], (kill, stream, key)
                assert _orders(live) == _orders(cold), (kill, stream, "orders")
        finally:
            journal.close()
    assert placed >= KILLS, "most orders must have gone in"

    # Settle: cancel what still rests, wait until no order is working.
    def settled() -> bool:
        working = [
            o
            for o in client.call("positions.0", "positions.orders", {"status": sorted(WORKING)})[
                "orders"
            ]
        ]
        for order in working:
            if order["status"] != "CancelRequested":
                client.call("positions.0", "positions.cancel", {"order_id": order["order_id"]})
        return not working

    wait_for("no order working", settled, timeout=60)

    gateway = _journal(stack, "gateway.default")
    positions = _journal(stack, "positions.0")
    try:
        published: dict[str, OrderFill] = {}
        for stream in gateway.streams():
            if stream.startswith("published/"):
                for record in gateway.read(stream):
                    message = decode_record(record).message
                    if isinstance(message, OrderFill):
                        published.setdefault(message.trade_id, message)
        assert published, "the workload produced fills"
        applied: dict[str, str] = {}
        for stream in positions.streams():
            if not stream.startswith("position/"):
                continue
            state = cold_replay(positions, stream, positions.last_seq(stream))
            for trade_id in state["trade_ids"]:
                assert trade_id not in applied, f"{trade_id} in {stream} and {applied[trade_id]}"
                applied[trade_id] = stream
            fills = [f for f in published.values() if f.symbol == state["symbol"]]
            qty = Decimal(state["qty"])
            assert qty == sum((_signed(f) for f in fills), Decimal(0)), stream
            # Cash: the exchange's cash flows less fees, plus the open quantity at
            # its entry price, is exactly the realized P&L (the cash-flow identity).
            # Exact arithmetic: the average entry carries 38 significant digits.
            with localcontext(prec=120):
                cash = sum((-_signed(f) * f.price - f.fee for f in fills), Decimal(0))
                avg = Decimal(state["avg_entry_price"])
                assert Decimal(state["realized_pnl"]) == cash + qty * avg, stream
        assert set(applied) == set(published), "fills lost or invented"
    finally:
        gateway.close()
        positions.close()
