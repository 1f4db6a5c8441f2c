"""The ccxt gateway over real HTTP: real `ccxt.binance` against the local Binance emulator.

A posbus node (risk, gateway, positions, in-memory journal) sends orders
through `CcxtGateway`; the emulator injects the faults. Nothing in ccxt is
patched: it reaches the emulator through its `urls` configuration. Each test
waits with `rig.settle()` (the gateway's I/O loop idle and the node quiet,
bounded), never with a sleep.

Prices: the emulator quotes BTC/USDT 60000.00 / 60000.10 and charges a
0.1% fee in USDT, so a market buy of 0.1 fills at 60000.10 with a fee of
0.1 * 60000.10 * 0.001 = 6.00001 USDT.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from ccxt_rig import BTC, CcxtRig, RigFactory

from posbus.actors.model.side import Side
from posbus.adapters.exchange.retry import RetryPolicy
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.binance_emulator import BinanceEmulator
from posbus.bus.messages import MarketUpdate

ORDER = "POST /api/v3/order"
MAINTENANCE = {"code": 1, "msg": "System is under maintenance."}


def only_order(rig: CcxtRig) -> dict[str, object]:
    orders = list(rig.position()["orders"].values())
    assert len(orders) == 1
    return orders[0]


def test_market_order_fills_reach_the_position_once(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal())
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    position = rig.position()
    assert Decimal(position["qty"]) == Decimal("0.1")
    assert Decimal(position["avg_entry_price"]) == Decimal("60000.10")
    # fee = 0.1 * 60000.10 * 0.001 = 6.00001
    assert Decimal(position["fees"]) == Decimal("6.00001")
    assert position["trade_ids"] == ["5001"]
    assert only_order(rig)["status"] == "Filled"
    assert len(emulator.requests(ORDER)) == 1
    assert len(emulator.orders()) == 1


def test_transient_errors_are_retried_within_the_bounds_and_succeed(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal(), retry=RetryPolicy(tries=3, min_s=0.01, max_s=0.05))
    emulator.fail(ORDER, 503, times=2, **MAINTENANCE)
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    # Two refusals, then the third try (the last one allowed) goes through.
    assert [r.status for r in emulator.requests(ORDER)] == [503, 503, 200]
    assert len(emulator.orders()) == 1
    assert Decimal(rig.position()["qty"]) == Decimal("0.1")
    assert rig.gateway()["network"]["exchange"]["counts"]["retries"] == 2


def test_transient_errors_beyond_the_bound_reject_the_order_after_exactly_tries_attempts(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal(), retry=RetryPolicy(tries=3, min_s=0.01, max_s=0.05))
    emulator.fail(ORDER, 503, times=5, **MAINTENANCE)
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    # Maintenance means the exchange refused before the book: the order is
    # proven not placed, so it is rejected (not left in doubt).
    assert len(emulator.requests(ORDER)) == 3
    order = only_order(rig)
    assert order["status"] == "Rejected"
    assert "System is under maintenance." in str(order["reason"])
    assert Decimal(rig.position()["qty"]) == 0


@pytest.mark.parametrize(
    ("usdt", "qty", "message", "error"),
    [
        # 0.1 BTC costs 0.1 * 60000.10 = 6000.01 USDT; the account holds 1000.
        (
            "1000",
            "0.1",
            "Account has insufficient balance for requested action.",
            "InsufficientBalance",
        ),
        # 10 BTC is above the LOT_SIZE filter's maxQty of 5.
        ("1000000", "10", "Filter failure: LOT_SIZE", "ExchangeRejected"),
    ],
)
def test_permanent_errors_fail_on_the_first_try_with_the_exchanges_message(
    emulator: BinanceEmulator, rigs: RigFactory, usdt: str, qty: str, message: str, error: str
) -> None:
    rig = rigs(emulator, MemoryJournal())
    emulator.set_balance("USDT", Decimal(usdt))
    rig.quote()
    rig.order(Side.BUY, qty)
    rig.settle()

    assert len(emulator.requests(ORDER)) == 1
    order = only_order(rig)
    assert order["status"] == "Rejected"
    assert str(order["reason"]) == f"{error}: {message}"
    assert emulator.orders() == []


def test_order_accepted_but_response_lost_exists_once_and_fills_reach_the_position_once(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal())
    emulator.drop_response(ORDER)
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    # The connection dropped after the order was placed: the gateway looked
    # it up by client order id instead of sending it again.
    assert len(emulator.requests(ORDER)) == 1
    assert len(emulator.orders()) == 1
    assert [t.trade_id for t in emulator.trades()] == [5001]
    position = rig.position()
    assert Decimal(position["qty"]) == Decimal("0.1")
    assert position["trade_ids"] == ["5001"]
    assert only_order(rig)["status"] == "Filled"
    counts = rig.gateway()["network"]["exchange"]["counts"]
    assert counts["orders_found_by_lookup"] == 1


def test_answer_after_the_timeout_is_looked_up_not_resent(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal(), timeout_ms=300)
    emulator.hang(ORDER, 0.6, after=True)  # executed at once, answered after the timeout
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    assert len(emulator.requests(ORDER)) == 1
    assert len(emulator.orders()) == 1
    assert Decimal(rig.position()["qty"]) == Decimal("0.1")


def test_request_executed_late_is_found_by_the_lookup_after_its_window(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    # The order reaches the book 0.5 s after it was sent, after the client
    # gave up (0.3 s) but inside its recvWindow (0.6 s): a lookup right after
    # the timeout sees nothing, yet the order is placed. The gateway only
    # trusts a lookup made after the window, which finds it: no resend.
    rig = rigs(emulator, MemoryJournal(), timeout_ms=300, recv_window_ms=600)
    emulator.hang(ORDER, 0.5)
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    assert len(emulator.requests(ORDER)) == 1
    assert len(emulator.orders()) == 1
    assert Decimal(rig.position()["qty"]) == Decimal("0.1")


def test_request_held_past_its_window_is_proven_absent_and_sent_once_more(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    # Held 1.2 s: past its 0.6 s recvWindow the exchange refuses it when it
    # finally gets to it. The lookup after the window proves it absent, so
    # the gateway sends it again, and exactly one order exists.
    rig = rigs(emulator, MemoryJournal(), timeout_ms=300, recv_window_ms=600)
    emulator.hang(ORDER, 1.2)
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    statuses = sorted(r.status for r in emulator.wait_for_requests(ORDER, 2))
    assert statuses == [200, 400]  # the resend, and the stale original refused (-1021)
    assert len(emulator.orders()) == 1
    assert Decimal(rig.position()["qty"]) == Decimal("0.1")
    assert rig.gateway()["network"]["exchange"]["counts"]["orders_proven_absent"] == 1


def test_rate_limit_retry_after_is_honoured(emulator: BinanceEmulator, rigs: RigFactory) -> None:
    rig = rigs(emulator, MemoryJournal())
    emulator.rate_limit(ORDER, retry_after_s=1)
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    first, second = emulator.requests(ORDER)
    assert (first.status, second.status) == (429, 200)
    # The retry waited the second the exchange asked for (the emulator answers
    # 418, an IP ban, to anything sooner), not the policy's 10-50 ms.
    assert second.at - first.at >= 1.0
    assert len(emulator.orders()) == 1


def test_partial_and_repeated_fills_of_a_resting_order_are_applied_once(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal())
    emulator.set_partial_fills(2)
    emulator.set_duplicate_trades(True)
    rig.quote()
    rig.order(Side.BUY, "0.2", limit="59000.00")
    rig.settle()
    assert only_order(rig)["status"] == "Accepted"

    emulator.set_touch(BTC, Decimal("58990.00"), Decimal("58999.00"))  # crosses the bid of 59000
    rig.client.poll_now()
    rig.settle()

    # Two maker fills of 0.1 at 59000.00, each listed twice by the exchange.
    position = rig.position()
    assert position["trade_ids"] == ["5001", "5002"]
    assert Decimal(position["qty"]) == Decimal("0.2")
    # fees: 2 * 0.1 * 59000 * 0.001 = 11.8
    assert Decimal(position["fees"]) == Decimal("11.8")
    assert only_order(rig)["status"] == "Filled"


def test_cancel_is_idempotent(emulator: BinanceEmulator, rigs: RigFactory) -> None:
    rig = rigs(emulator, MemoryJournal())
    rig.quote()
    rig.order(Side.BUY, "0.2", limit="59000.00")
    rig.settle()
    order_id = next(iter(rig.position()["orders"]))
    rig.node.cancel("A", BTC, order_id)
    rig.settle()
    assert only_order(rig)["status"] == "Cancelled"
    assert emulator.orders()[0]["status"] == "CANCELED"

    # A second cancel of the same order (a retry, a restart) changes nothing.
    client_order_id = only_order(rig)["client_order_id"]
    rig.client.cancel(str(client_order_id), BTC, rig.clock.now_ns())
    rig.settle()
    assert only_order(rig)["status"] == "Cancelled"
    assert len(emulator.requests("DELETE /api/v3/order")) == 2
    assert len(emulator.orders()) == 1


def test_orders_wait_for_the_start_up_reconciliation(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    emulator.set_maintenance(True)
    # A breaker that never opens here: the failed start-up reads are retried
    # until maintenance ends (an open breaker would wait for the ManualClock).
    rig = rigs(emulator, MemoryJournal(), settle=False, breaker_threshold=10_000)
    rig.wait_for_event(lambda e: e.event == "reconciliation" and e.state == "incomplete")
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.node.settle()
    # The account's state is unknown: the order is journaled and held, not sent.
    assert rig.gateway()["network"]["held"] == 1
    assert emulator.requests(ORDER) == []

    emulator.set_maintenance(False)
    rig.wait_for_event(lambda e: e.event == "reconciliation" and e.state == "clean")
    rig.settle()
    assert len(emulator.requests(ORDER)) == 1
    assert Decimal(rig.position()["qty"]) == Decimal("0.1")


def test_gateway_crash_while_an_order_is_in_flight_loses_no_answer(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal())
    emulator.hang(ORDER, 0.2, after=True)  # the answer comes back while the gateway restarts
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.node.settle()
    rig.node.crash("gateway.A")
    rig.settle()

    assert len(emulator.orders()) == 1
    position = rig.position()
    assert position["trade_ids"] == ["5001"]
    assert Decimal(position["qty"]) == Decimal("0.1")
    assert only_order(rig)["status"] == "Filled"


def test_market_updates_are_polled_from_the_exchange(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal())
    emulator.set_touch(BTC, Decimal("61000.00"), Decimal("61000.50"))
    received: list[MarketUpdate] = []
    arrived = threading.Event()

    def sink(update: MarketUpdate) -> None:
        received.append(update)
        arrived.set()

    rig.client.subscribe_market([BTC], sink)
    assert arrived.wait(timeout=5)
    update = received[0]
    assert (update.symbol, update.bid, update.ask) == (
        BTC,
        Decimal("61000.00"),
        Decimal("61000.50"),
    )
    assert update.ts_ns == rig.clock.now_ns()


def test_latency_below_the_timeout_is_not_a_failure(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal(), timeout_ms=400)
    emulator.set_latency(0.15)
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()

    assert len(emulator.requests(ORDER)) == 1
    assert Decimal(rig.position()["qty"]) == Decimal("0.1")
    assert "retries" not in rig.gateway()["network"]["exchange"]["counts"]
