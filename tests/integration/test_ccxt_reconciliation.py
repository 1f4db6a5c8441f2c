"""Reconciliation of the ccxt gateway with the exchange, over real HTTP against the emulator.

The gateway reconciles at start-up, when its breaker closes, after a
reconnect and on its timer; the tests also ask for one directly
(`rig.reconcile()`, a `ReconcileDue` told to the gateway). Each
reconciliation is announced as a risk_event "reconciliation"; what it cannot
resolve halts the account through the risk supervisor.

Prices: a 0.1 BTC market buy fills at the ask 60000.10 (fee 6.00001 USDT);
resting bids at 59000.00 fill as maker when the ask drops to 58999.00
(fee 0.1 * 59000 * 0.001 = 5.9 USDT per 0.1).
"""

from __future__ import annotations

from decimal import Decimal

from ccxt_rig import ACCOUNT, BTC, STREAM, CcxtRig, RigFactory

from posbus.actors.delivery import Outbox
from posbus.actors.model.side import Side
from posbus.actors.position_actor import client_order_id
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.adapters.simulation.binance_emulator import BinanceEmulator
from posbus.bus.messages import OrderIntent, OrderSubmit, RiskEvent

SECOND = 1_000_000_000
ORDER = "POST /api/v3/order"


def reconciliations(rig: CcxtRig) -> list[RiskEvent]:
    return rig.risk_events("reconciliation")


def halted(rig: CcxtRig) -> bool:
    return any(e.event == "state_change" and e.state == "Halted" for e in rig.events.events())


def test_start_up_reconciliation_of_a_fresh_account_sets_the_baselines(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal())
    [event] = reconciliations(rig)
    assert (event.state, event.reason) == ("clean", "start-up: books agree")
    ledger = rig.gateway()["network"]["ledger"]
    # The emulator's account: 1,000,000 USDT, 10 BTC, 100 ETH, none of it posbus's.
    assert ledger["baseline"] == {"BTC": "10", "ETH": "100", "USDT": "1000000"}
    assert ledger["cursors"][BTC]["trade_id"] == ""


def test_fills_missed_while_the_gateway_was_down_are_applied_exactly_once_after_restart(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    # Trades stamped 5 s in the past: the balances are compared at restart too
    # (a fill that may race the balance read is not).
    emulator.set_clock_offset(-5000)
    journal = MemoryJournal()
    first = rigs(emulator, journal)
    first.quote()
    first.order(Side.BUY, "0.1")  # filled now: trade 5001
    first.order(Side.BUY, "0.2", limit="59000.00")  # rests
    first.settle()
    assert first.position()["trade_ids"] == ["5001"]
    first.stop()

    # While posbus is down the resting bid fills, in two trades.
    emulator.set_partial_fills(2)
    emulator.set_touch(BTC, Decimal("58990.00"), Decimal("58999.00"))
    assert [t.trade_id for t in emulator.trades()] == [5001, 5002, 5003]

    second = rigs(emulator, journal)
    position = second.position()
    assert position["trade_ids"] == ["5001", "5002", "5003"]
    # 0.1 + 0.1 + 0.1 = 0.3 BTC; fees 6.00001 + 5.9 + 5.9 = 17.80001 USDT
    assert Decimal(position["qty"]) == Decimal("0.3")
    assert Decimal(position["fees"]) == Decimal("17.80001")
    assert [o["status"] for o in position["orders"].values()] == ["Filled", "Filled"]
    start_up = reconciliations(second)[-1]
    assert start_up.state == "repaired", start_up.reason
    assert start_up.values["fills_applied"] == "2"
    assert "unknown" not in start_up.reason  # balances compared, and they agree

    # Reconciling again finds nothing new and applies nothing twice.
    second.reconcile()
    again = reconciliations(second)[-1]
    assert again.values["fills_applied"] == "0"
    assert second.position()["trade_ids"] == ["5001", "5002", "5003"]


def test_order_journaled_but_never_sent_is_proven_absent_and_sent_once_after_restart(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    # A crash between journaling the submit and sending it: the journal says
    # AwaitingFill, the exchange never heard of the order.
    journal = MemoryJournal()
    clock = ManualClock(1_800_000_000 * SECOND)
    outbox = Outbox(journal, "before-crash", clock)
    outbox.append(
        STREAM,
        OrderIntent(
            ACCOUNT, BTC, Side.BUY, Decimal("0.1"), None, "i-1", False, "test", clock.now_ns()
        ),
    )
    cid = client_order_id(STREAM, 1)
    outbox.append(
        STREAM,
        OrderSubmit(
            f"{ACCOUNT}:{BTC}:1", cid, ACCOUNT, BTC, Side.BUY, Decimal("0.1"), None, clock.now_ns()
        ),
    )

    rig = rigs(emulator, journal)
    rig.settle()

    # Looked up (absent, also after its recvWindow), then sent exactly once.
    orders = emulator.orders()
    assert [o["clientOrderId"] for o in orders] == [cid]
    assert len(emulator.requests(ORDER)) == 1
    position = rig.position()
    assert Decimal(position["qty"]) == Decimal("0.1")
    assert position["trade_ids"] == ["5001"]


def test_unknown_exchange_order_is_flagged_and_halts_the_account(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal(), unknown_orders="flag")
    emulator.place_order(BTC, "buy", Decimal("0.5"), Decimal("50000.00"), "manual-1")
    rig.reconcile()

    event = reconciliations(rig)[-1]
    assert event.state == "halted"
    assert (
        "unknown exchange orders: manual-1 (BTC/USDT buy 0.50000000 @ 50000.00000000)"
        in event.reason
    )
    assert event.values["unknown_orders"] == "1"
    halt = rig.wait_for_event(lambda e: e.event == "state_change" and e.state == "Halted")
    assert "unknown exchange orders" in halt.reason


def test_unknown_exchange_order_is_adopted_and_its_fills_reach_the_position(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal(), unknown_orders="adopt")
    emulator.place_order(BTC, "buy", Decimal("0.1"), Decimal("59000.00"), "manual-1")
    rig.reconcile()

    event = reconciliations(rig)[-1]
    assert event.state == "adopted"
    assert event.values["adopted"] == "1"
    assert rig.gateway()["network"]["ledger"]["adopted_orders"] == 1

    emulator.set_touch(BTC, Decimal("58990.00"), Decimal("58999.00"))
    rig.client.poll_now()
    rig.settle()
    position = rig.position()
    assert position["trade_ids"] == ["5001"]
    assert Decimal(position["qty"]) == Decimal("0.1")
    assert not halted(rig)


def test_balance_mismatch_halts_the_account_with_a_risk_event(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal(), balance_mismatch="halt")
    emulator.set_balance("USDT", Decimal(999_900))  # 100 USDT left behind posbus's back
    rig.reconcile()

    event = reconciliations(rig)[-1]
    assert event.state == "halted"
    assert "balance mismatch: USDT: expected 1000000, exchange has 999900" in event.reason
    assert (event.values["expected.USDT"], event.values["actual.USDT"]) == ("1000000", "999900")
    rig.wait_for_event(lambda e: e.event == "state_change" and e.state == "Halted")


def test_balance_mismatch_only_warns_when_configured_to(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal(), balance_mismatch="warn")
    emulator.set_balance("BTC", Decimal(11))
    rig.reconcile()

    event = reconciliations(rig)[-1]
    assert event.state == "mismatch"
    assert (event.values["expected.BTC"], event.values["actual.BTC"]) == ("10", "11")
    assert not halted(rig)


def test_balances_explained_by_posbus_fills_reconcile_clean(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    # The exchange stamps trades 5 s in the past, so the fill is clearly
    # before the balance read (a fill racing the read is not compared).
    emulator.set_clock_offset(-5000)
    rig = rigs(emulator, MemoryJournal())
    rig.quote()
    rig.order(Side.BUY, "0.1")
    rig.settle()
    rig.reconcile()

    # BTC 10 + 0.1; USDT 1,000,000 - 6000.01 - 6.00001 = 993993.98999
    assert emulator.balances()["USDT"] == Decimal("993993.98999")
    event = reconciliations(rig)[-1]
    assert (event.state, event.values["fills_applied"]) == ("clean", "0")


def test_periodic_reconciliation_follows_the_clock(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal(), reconcile_interval_s=60)
    rig.clock.advance(60 * SECOND)
    event = rig.wait_for_event(
        lambda e: e.event == "reconciliation" and e.reason.startswith("periodic")
    )
    assert event.state == "clean"


def test_reconnect_after_a_network_failure_triggers_a_reconciliation(
    emulator: BinanceEmulator, rigs: RigFactory
) -> None:
    rig = rigs(emulator, MemoryJournal())
    emulator.fail("GET /api/v3/ticker/24hr", 502, html=True)
    rig.client.subscribe_market([BTC], lambda update: None)
    event = rig.wait_for_event(
        lambda e: e.event == "reconciliation" and e.reason.startswith("reconnect")
    )
    assert event.state == "clean"
