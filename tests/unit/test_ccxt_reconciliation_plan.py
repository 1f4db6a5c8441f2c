"""The pure reconciliation plan: posbus's ledger against an exchange snapshot, no I/O.

Fixed numbers throughout: orders of 0.1 BTC at 60000.00, fees 6 USDT, an
account holding 1000 USDT and 1 BTC outside posbus.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from posbus.actors.model.exchange_events import ReconcileSnapshot, TradeCursor, TradeView
from posbus.actors.model.exchange_reports import ExchangeOrderStatus, OrderView
from posbus.actors.model.side import Side
from posbus.actors.reconciliation import Ledger, fill_effect, plan
from posbus.bus.messages import Liquidity, OrderAck, OrderCancelled, OrderFill, OrderSubmit

BTC = "BTC/USDT"
STREAM = "position/A/BTC/USDT"
NOW = 1_800_000_000_000_000_000  # ns
READ = (NOW - 1_000, NOW)  # when the balances were read


def ledger_with(*cids: str, acked: bool = True) -> Ledger:
    ledger = Ledger(lambda symbol: f"position/A/{symbol}")
    for n, cid in enumerate(cids, start=1):
        ledger.observe(
            STREAM,
            OrderSubmit(f"A:{BTC}:{n}", cid, "A", BTC, Side.BUY, Decimal("0.1"), None, NOW),
            possibly_sent=True,
        )
        if acked:
            ledger.observe(STREAM, OrderAck(f"A:{BTC}:{n}", cid, f"ex-{cid}", NOW))
    ledger.cursors[BTC] = TradeCursor("100", 0)
    return ledger


def trade(trade_id: str, cid: str | None, *, ts_ns: int = NOW - 10 * 10**9) -> TradeView:
    return TradeView(
        trade_id=trade_id,
        exchange_order_id=f"ex-{cid}",
        client_order_id=cid,
        symbol=BTC,
        side=Side.BUY,
        qty=Decimal("0.1"),
        price=Decimal("60000.00"),
        fee=Decimal(6),
        fee_currency="USDT",
        ts_ns=ts_ns,
        liquidity="taker",
    )


def view(cid: str, status: ExchangeOrderStatus, filled: str = "0") -> OrderView:
    return OrderView(
        cid, f"ex-{cid}", "A", BTC, Side.BUY, Decimal("0.1"), None, status, Decimal(filled)
    )


def snapshot(
    *,
    open_orders: tuple[OrderView, ...] | None = (),
    trades: dict[str, tuple[TradeView, ...]] | None = None,
    lookups: dict[str, OrderView | None] | None = None,
    balances: dict[str, Decimal] | None = None,
    errors: tuple[str, ...] = (),
) -> ReconcileSnapshot:
    return ReconcileSnapshot(
        reason="test",
        ts_ns=NOW,
        open_orders=open_orders,
        trades={BTC: ()} if trades is None else trades,
        lookups={} if lookups is None else lookups,
        balances=balances,
        errors=errors,
        balances_read_ns=READ,
        trades_read_ms=NOW // 1_000_000,
    )


def apply(ledger: Ledger, t: TradeView) -> None:
    ledger.observe(
        STREAM,
        OrderFill(
            f"A:{BTC}:1",
            t.client_order_id or "",
            t.trade_id,
            "A",
            BTC,
            t.side,
            t.qty,
            t.price,
            t.fee,
            t.fee_currency,
            Liquidity.TAKER,
            t.ts_ns,
        ),
    )


def test_a_missing_fill_of_a_known_order_is_planned_once_even_when_listed_twice() -> None:
    ledger = ledger_with("c1")
    found = plan(
        ledger,
        snapshot(trades={BTC: (trade("101", "c1"), trade("101", "c1"))}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert [t.trade_id for t in found.fills] == ["101"]
    assert found.cursors == {BTC: TradeCursor("101", (NOW - 10 * 10**9) // 1_000_000)}


def test_a_fill_already_journaled_is_not_planned_again() -> None:
    ledger = ledger_with("c1")
    apply(ledger, trade("101", "c1"))
    found = plan(
        ledger,
        snapshot(trades={BTC: (trade("101", "c1"),)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert found.fills == ()
    assert not found.repaired


def test_the_order_of_a_trade_is_found_by_its_exchange_id() -> None:
    # myTrades names only the exchange's order id; the ack journaled it for c1.
    nameless = replace(trade("101", None), exchange_order_id="ex-c1")
    found = plan(
        ledger_with("c1"),
        snapshot(trades={BTC: (nameless,)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert [t.trade_id for t in found.fills] == ["101"]


def test_trades_of_unknown_orders_are_history_the_first_time_and_foreign_after() -> None:
    first = Ledger(lambda symbol: f"position/A/{symbol}")  # no cursor: first reconciliation
    found = plan(
        first,
        snapshot(trades={BTC: (trade("7", "other"),)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert (found.history, found.foreign_trades) == (1, ())
    assert found.cursors[BTC].trade_id == "7"

    later = ledger_with("c1")
    found = plan(
        later,
        snapshot(trades={BTC: (trade("101", "other"),)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert [t.trade_id for t in found.foreign_trades] == ["101"]
    assert found.fills == ()


def test_trades_of_unknown_orders_are_adopted_and_applied_when_configured() -> None:
    found = plan(
        ledger_with("c1"),
        snapshot(trades={BTC: (trade("101", "other"),)}),
        adopt_unknown=True,
        balance_tolerance=Decimal(0),
    )
    assert [t.trade_id for t in found.fills] == ["101"]
    assert len(found.adopt) == 1
    assert found.foreign_trades == ()


def test_an_unknown_open_order_is_flagged_or_adopted() -> None:
    unknown = view("manual-1", ExchangeOrderStatus.OPEN)
    flagged = plan(
        ledger_with("c1"),
        snapshot(open_orders=(unknown,)),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert flagged.unknown_orders == (unknown,)
    adopted = plan(
        ledger_with("c1"),
        snapshot(open_orders=(unknown,)),
        adopt_unknown=True,
        balance_tolerance=Decimal(0),
    )
    assert adopted.adopt == (unknown,)
    assert adopted.track == (("manual-1", BTC, "ex-manual-1"),)


def test_absence_from_the_open_orders_proves_nothing() -> None:
    found = plan(
        ledger_with("c1"),
        snapshot(open_orders=()),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert (found.resend, found.lost, found.ends) == ((), (), ())


def test_an_order_never_acknowledged_and_proven_absent_is_resent() -> None:
    found = plan(
        ledger_with("c1", acked=False),
        snapshot(lookups={"c1": None}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert found.resend == ("c1",)
    assert found.lost == ()


def test_an_acknowledged_order_the_exchange_no_longer_knows_is_lost() -> None:
    found = plan(
        ledger_with("c1"),
        snapshot(lookups={"c1": None}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert found.lost == ("c1",)
    assert found.resend == ()


def test_an_order_found_by_lookup_is_acknowledged_and_its_end_reported() -> None:
    found = plan(
        ledger_with("c1", acked=False),
        snapshot(lookups={"c1": view("c1", ExchangeOrderStatus.CANCELLED)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert found.acks == (("c1", "ex-c1"),)
    assert found.ends == (("c1", ExchangeOrderStatus.CANCELLED),)


def test_an_end_already_journaled_is_not_reported_again() -> None:
    ledger = ledger_with("c1")
    ledger.observe(STREAM, OrderCancelled(f"A:{BTC}:1", "cancelled", NOW))
    found = plan(
        ledger,
        snapshot(lookups={"c1": view("c1", ExchangeOrderStatus.CANCELLED)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert found.ends == ()


def test_the_first_balance_read_sets_the_baseline_net_of_posbus_fills() -> None:
    ledger = Ledger(lambda symbol: f"position/A/{symbol}")
    apply(ledger, trade("101", "c1"))  # +0.1 BTC, -6000 USDT, -6 USDT fee
    found = plan(
        ledger,
        snapshot(balances={"BTC": Decimal("1.1"), "USDT": Decimal(994)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    # BTC 1.1 - 0.1 = 1; USDT 994 - (-6006) = 7000
    assert found.baseline == {"BTC": Decimal("1.0"), "USDT": Decimal(7000)}


def test_balances_explained_by_fills_match_and_a_difference_is_a_mismatch() -> None:
    ledger = ledger_with("c1")
    ledger.baseline = {"BTC": Decimal(1), "USDT": Decimal(7000)}
    apply(ledger, trade("101", "c1"))
    agree = plan(
        ledger,
        snapshot(balances={"BTC": Decimal("1.1"), "USDT": Decimal(994)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert agree.mismatches == ()
    differ = plan(
        ledger,
        snapshot(balances={"BTC": Decimal("1.1"), "USDT": Decimal(990)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    [check] = differ.mismatches
    # expected 7000 + (-6006) = 994; the exchange has 990
    assert (check.currency, check.expected, check.actual, check.difference) == (
        "USDT",
        Decimal(994),
        Decimal(990),
        Decimal(-4),
    )


def test_a_difference_within_the_tolerance_is_not_a_mismatch() -> None:
    ledger = ledger_with("c1")
    ledger.baseline = {"USDT": Decimal(1000)}
    found = plan(
        ledger,
        snapshot(balances={"USDT": Decimal("1000.00000001")}),
        adopt_unknown=False,
        balance_tolerance=Decimal("0.00000001"),
    )
    assert found.mismatches == ()


def test_balances_are_not_compared_when_a_fill_races_the_read_or_trades_are_unknown() -> None:
    ledger = ledger_with("c1")
    ledger.baseline = {"USDT": Decimal(1000)}
    racing = plan(
        ledger,
        snapshot(trades={BTC: (trade("101", "c1", ts_ns=NOW),)}, balances={"USDT": Decimal(1)}),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert racing.mismatches == ()
    assert "balances (a fill raced the balance read)" in racing.unknown
    unread = plan(
        ledger,
        snapshot(trades={}, balances={"USDT": Decimal(1)}, errors=("trades of BTC/USDT: timeout",)),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert unread.mismatches == ()


def test_a_missing_report_is_unknown_never_empty() -> None:
    found = plan(
        ledger_with("c1"),
        snapshot(open_orders=None, balances=None),
        adopt_unknown=False,
        balance_tolerance=Decimal(0),
    )
    assert "open orders" in found.unknown
    assert "balances" in found.unknown
    assert found.unknown_orders == ()


def test_fill_effect_moves_base_quote_and_fee_currency() -> None:
    effect = fill_effect(
        BTC, Side.SELL, Decimal("0.1"), Decimal(60000), fee=Decimal(6), fee_currency="USDT"
    )
    # a sell: -0.1 BTC, +6000 USDT, -6 USDT fee
    assert effect == {"BTC": Decimal("-0.1"), "USDT": Decimal(5994)}
    assert (
        fill_effect(
            "BTC/USDT:USDT", Side.BUY, Decimal(1), Decimal(1), fee=Decimal(0), fee_currency="USDT"
        )
        == {}
    )
