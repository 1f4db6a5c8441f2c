"""The chaos run: a real stack under seeded load and faults audits clean, on three seeds.

Each seed brings up the whole stack (launcher, broker, risk, a gateway
trading through ccxt with the Binance emulator that this process runs and
moves, two positions shards, 50 symbols; SQLite journals), trades for
CHAOS_S seconds while injecting overlapping faults (kill -9 of a positions
shard, risk, the broker or the gateway; a worker's journal locked for a few
seconds; exchange timeouts, 5xx, lost responses, duplicate trades, 429s,
maintenance), settles and audits: live positions == cold journal replay ==
the gateway's published fills == the emulator's own trade ledger, no client
order id sent twice, no order filled beyond the risk limit.
The audit's own detection is pinned first, on journals written by hand: a
clean chaos run proves nothing unless the audit can fail.
"""

from __future__ import annotations

import os
import signal
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from msgspec.structs import replace
from stack_harness import wait_for, where

from posbus.actors.model.side import Side
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.adapters.simulation.chaos import ChaosSettings, ChaosStack, chaos_config, run_chaos
from posbus.adapters.simulation.chaos_audit import (
    VenueLedger,
    VenueOrder,
    VenueTrade,
    audit,
    reducing_orders,
)
from posbus.bus.codec import encode
from posbus.bus.messages import Liquidity, Message, OrderAck, OrderFill, OrderSubmit

CHAOS_S = 25.0
SEEDS = (11, 22, 33)


def _fill(trade_id: str, client_order_id: str = "c-1", qty: str = "1") -> OrderFill:
    return OrderFill(
        order_id="default:SYM00/USDT:1",
        client_order_id=client_order_id,
        trade_id=trade_id,
        account="default",
        symbol="SYM00/USDT",
        side=Side.BUY,
        qty=Decimal(qty),
        price=Decimal(100),
        fee=Decimal("0.1"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
        ts_ns=1,
    )


def _write_gateway(path: Path, messages: list[Message]) -> None:
    journal = SqliteJournal(path)
    try:
        for message in messages:
            payload = encode(message, seq=0, sender="position/default/SYM00/USDT", ts_ns=1)
            journal.append("published/gateway.default.1.1", payload)
    finally:
        journal.close()


def _empty_shard(path: Path) -> Path:
    SqliteJournal(path).close()
    return path


def test_audit_reports_a_published_fill_no_position_applied(tmp_path: Path) -> None:
    _write_gateway(tmp_path / "gw.sqlite", [_fill("t-1")])
    result = audit({}, [_empty_shard(tmp_path / "p0.sqlite")], tmp_path / "gw.sqlite")
    found = {(d.where, d.what) for d in result.discrepancies}
    assert ("trade t-1 of SYM00/USDT", "published by the gateway, applied by no position") in found
    assert ("position/default/SYM00/USDT", "1 published fills but no live position") in found
    assert result.fills == 1
    # cash flow of the lost fill: -(1 * 100) - 0.1 = -100.1
    assert result.cash == Decimal("-100.1")


def test_audit_reports_one_trade_id_published_with_two_contents(tmp_path: Path) -> None:
    _write_gateway(tmp_path / "gw.sqlite", [_fill("t-1"), _fill("t-1", qty="2")])
    result = audit({}, [_empty_shard(tmp_path / "p0.sqlite")], tmp_path / "gw.sqlite")
    assert ("trade t-1 of SYM00/USDT", "published twice with different content") in {
        (d.where, d.what) for d in result.discrepancies
    }


def test_audit_reports_an_order_acknowledged_under_two_exchange_ids(tmp_path: Path) -> None:
    acks: list[Message] = [
        OrderAck("default:SYM00/USDT:1", "c-1", "x-1", 1),
        OrderAck("default:SYM00/USDT:1", "c-1", "x-2", 2),
    ]
    _write_gateway(tmp_path / "gw.sqlite", acks)
    result = audit({}, [_empty_shard(tmp_path / "p0.sqlite")], tmp_path / "gw.sqlite")
    assert ("order c-1", "sent twice: exchange ids ['x-1', 'x-2']") in {
        (d.where, d.what) for d in result.discrepancies
    }


def test_audit_of_a_redelivered_identical_fill_counts_it_once(tmp_path: Path) -> None:
    _write_gateway(tmp_path / "gw.sqlite", [_fill("t-1"), _fill("t-1")])
    result = audit({}, [_empty_shard(tmp_path / "p0.sqlite")], tmp_path / "gw.sqlite")
    assert result.fills == 1
    assert all("different content" not in d.what for d in result.discrepancies)


def test_audit_reports_an_order_filled_beyond_the_notional_limit(tmp_path: Path) -> None:
    # 4 x 100 = 400 is at the limit; 5 x 100 = 500 is beyond it (and its 2 % slack).
    fills: list[Message] = [_fill("t-1", "c-1", qty="4"), _fill("t-2", "c-2", qty="5")]
    _write_gateway(tmp_path / "gw.sqlite", fills)
    result = audit(
        {},
        [_empty_shard(tmp_path / "p0.sqlite")],
        tmp_path / "gw.sqlite",
        max_order_notional=Decimal(400),
    )
    beyond = [(d.where, d.what) for d in result.discrepancies if "notional" in d.what]
    assert beyond == [("order c-2", "filled notional 500 beyond the limit 400")]
    assert result.largest_order_notional == Decimal(500)


def test_audit_exempts_orders_that_reduced_their_position_from_the_notional_limit(
    tmp_path: Path,
) -> None:
    # Long 3 after c-0 (its fill journaled twice, as a restarted shard does:
    # counted once). c-1 sells 5: past flat, the limit applies. c-2 sells 3:
    # reduces, exempt whatever its size. c-3 sells 1 once flat: the limit applies.
    def submit(cid: str, side: Side, qty: str) -> OrderSubmit:
        return OrderSubmit(
            "default:SYM00/USDT:1", cid, "default", "SYM00/USDT", side, Decimal(qty), None, 1
        )

    journal = SqliteJournal(tmp_path / "p0.sqlite")
    stream = "position/default/SYM00/USDT"
    records: list[Message] = [
        submit("c-0", Side.BUY, "3"),
        _fill("t-0", "c-0", qty="3"),
        _fill("t-0", "c-0", qty="3"),
        submit("c-1", Side.SELL, "5"),
        submit("c-2", Side.SELL, "3"),
        replace(_fill("t-2", "c-2", qty="3"), side=Side.SELL),
        submit("c-3", Side.SELL, "1"),
    ]
    try:
        for message in records:
            journal.append(stream, encode(message, seq=0, sender="test", ts_ns=1))
        assert reducing_orders(journal, stream) == {"c-2"}
    finally:
        journal.close()


def _venue_trade(trade_id: str, client_order_id: str = "c-1") -> VenueTrade:
    return VenueTrade(
        trade_id=trade_id,
        client_order_id=client_order_id,
        account="default",
        symbol="SYM00/USDT",
        side="buy",
        qty=Decimal(1),
        price=Decimal(100),
        fee=Decimal("0.1"),
    )


def _venue_order(client_order_id: str, exchange_order_id: str) -> VenueOrder:
    return VenueOrder(
        client_order_id=client_order_id,
        exchange_order_id=exchange_order_id,
        symbol="SYM00/USDT",
        qty=Decimal(1),
        executed=Decimal(1),
        status="FILLED",
    )


def test_audit_reports_an_exchange_trade_no_position_applied(tmp_path: Path) -> None:
    _write_gateway(tmp_path / "gw.sqlite", [])
    venue = VenueLedger(orders=(_venue_order("c-1", "1001"),), trades=(_venue_trade("5001"),))
    result = audit({}, [_empty_shard(tmp_path / "p0.sqlite")], tmp_path / "gw.sqlite", venue=venue)
    found = {(d.where, d.what) for d in result.discrepancies}
    assert (
        "trade 5001 of SYM00/USDT",
        "executed at the exchange (order c-1), applied by no position",
    ) in found
    assert ("position/default/SYM00/USDT", "1 exchange trades but no live position") in found
    assert ("order c-1", "at the exchange, unknown to every position") in found
    assert (result.venue_orders, result.venue_trades) == (1, 1)


def test_audit_reports_a_client_order_id_sent_twice_to_the_exchange(tmp_path: Path) -> None:
    _write_gateway(tmp_path / "gw.sqlite", [])
    venue = VenueLedger(orders=(_venue_order("c-1", "1001"), _venue_order("c-1", "1002")))
    result = audit({}, [_empty_shard(tmp_path / "p0.sqlite")], tmp_path / "gw.sqlite", venue=venue)
    assert ("order c-1", "sent twice: 2 exchange orders ['1001', '1002']") in {
        (d.where, d.what) for d in result.discrepancies
    }


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_chaos_run_loses_and_doubles_nothing(seed: int) -> None:
    # Overlapping faults: a fault may land while an earlier one's worker is
    # still down or recovering (a shard restarting while the broker is dead).
    settings = ChaosSettings(seed=seed, duration_s=CHAOS_S, mean_fault_interval_s=2.5)
    with tempfile.TemporaryDirectory(prefix="pbc-", dir="/tmp") as name:
        report = run_chaos(settings, Path(name))
    doc = report.to_json()
    assert doc["discrepancies"] == 0, doc["discrepancy_details"]
    assert doc["workers_alive"] is True
    assert doc["exchange"] == "emulator"
    # The run did what it claims: faults landed and every one was recovered
    # from, orders went in and were filled over many symbols.
    assert doc["faults_injected"] >= 3, doc["faults"]
    assert doc["recoveries"] == doc["faults_injected"]
    kills = sum(
        n for target, n in doc["faults"].items() if not target.startswith(("exchange.", "journal."))
    )
    assert doc["restarts"] >= kills
    assert doc["orders"] >= 50
    assert doc["fills"] >= 50
    assert doc["fills_applied"] == doc["fills"]
    # The exchange's own ledger: every trade it made is one of the fills.
    assert doc["venue_trades"] == doc["fills"]
    assert doc["venue_orders"] >= 50
    assert doc["positions"] >= 30
    # Risk was in the way at times, and never passed.
    assert doc["risk_refusals"] >= 1
    assert Decimal(doc["largest_order_notional"]) <= Decimal(400) * Decimal("1.02")


def test_a_positions_shard_restarted_while_the_broker_is_down_recovers_from_the_gateway() -> None:
    """Found by the chaos run: the start-up fetch met "unknown service" and gave up for good.

    Right after a broker restart the gateway has not registered with the new
    broker yet; the restarted shard must keep asking (within its repair
    timeout) instead of serving without the gateway's records.
    """
    settings = ChaosSettings(seed=5, symbols=5, exchange="simulated")
    with tempfile.TemporaryDirectory(prefix="pbc-", dir="/tmp") as name:
        stack = ChaosStack(Path(name), lambda run_dir: chaos_config(settings, run_dir))
        stack.up()
        try:
            old = stack.worker_pid("positions.0")
            broker = stack.worker_pid("broker")
            assert old is not None and broker is not None
            os.kill(old, signal.SIGKILL)
            # The broker dies while the shard restarts: once the launcher has started
            # the new shard process, before that process can have fetched anything.
            wait_for(
                "the launcher started a new positions.0",
                lambda: stack.worker_pid("positions.0") not in (None, old),
                timeout=30,
                every=0.01,
            )
            os.kill(broker, signal.SIGKILL)
            status = wait_for(
                "positions.0 restarted and its start-up fetch ended",
                lambda: where(
                    stack.serving("positions.0"),
                    lambda st: (
                        st is not None
                        and st["pid"] != old
                        and st["recovered"]["state"] in ("done", "failed")
                    ),
                ),
                timeout=60,
            )
            assert status["recovered"]["state"] == "done", status["recovered"]
        finally:
            stack.close()
