"""A position actor's journal replay and snapshots with fees outside the quote currency.

Fills are journaled as the gateway journals them and replayed by a read-only
shell of the actor (no pykka thread); snapshots go through `snapshot_state`
and `restore_state`, the path recovery takes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from posbus.actors.delivery import Outbox
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.messages import Liquidity, OrderFill

D = Decimal
ACCOUNT, SYMBOL = "acc", "BTC/USDT"
STREAM = position_stream(ACCOUNT, SYMBOL)


def replayed(*fills: tuple[str, str, str, str, str]) -> PositionActor:
    outbox = Outbox(MemoryJournal(), "test", ManualClock(10))
    shell = PositionActor.shell(outbox, ACCOUNT, SYMBOL)
    for n, (side, qty, price, fee, currency) in enumerate(fills, start=1):
        record = OrderFill(
            order_id=f"o{n}",
            client_order_id=f"c{n}",
            trade_id=f"t{n}",
            account=ACCOUNT,
            symbol=SYMBOL,
            side=Side(side),
            qty=D(qty),
            price=D(price),
            fee=D(fee),
            fee_currency=currency,
            liquidity=Liquidity.TAKER,
            ts_ns=n,
        )
        shell.cursor.offer(outbox.append(STREAM, record))
    return shell


def fresh() -> PositionActor:
    return PositionActor.shell(Outbox(MemoryJournal(), "test", ManualClock(10)), ACCOUNT, SYMBOL)


def test_replayed_fills_with_base_and_unconverted_fees_show_in_the_inspected_view() -> None:
    actor = replayed(("buy", "1", "100", "0.001", "BTC"), ("buy", "1", "100", "0.0002", "BNB"))

    view = actor.inspect()

    # 1 - 0.001 + 1; the BNB fee came without a conversion mark
    assert view["qty"] == "1.999"
    assert view["realized_pnl"] == "-0.100"
    assert view["fees_by_currency"] == {"BNB": "0.0002", "BTC": "0.001"}
    assert view["unconverted_fees"] == 1
    assert view["unconverted_fees_by_currency"] == {"BNB": "0.0002"}


def test_a_snapshot_restores_the_fee_breakdown_exactly() -> None:
    actor = replayed(("buy", "1", "100", "0.001", "BTC"), ("sell", "0.5", "110", "0.01", "BNB"))
    state = actor.snapshot_state()

    restored = fresh()
    restored.restore_state(state)

    assert restored.snapshot_state()["position"] == state["position"]
    assert restored.position.qty == D("0.999") - D("0.5")
    assert dict(restored.position.unconverted_fees_by_currency) == {"BNB": D("0.01")}


def test_a_snapshot_written_before_fee_breakdowns_restores_as_quote_fees() -> None:
    state: dict[str, Any] = replayed(("buy", "1", "100", "0.1", "USDT")).snapshot_state()
    old_position = {
        key: value
        for key, value in state["position"].items()
        if key not in ("fees_by_currency", "unconverted_fees", "unconverted_fees_by_currency")
    }

    restored = fresh()
    restored.restore_state({**state, "position": old_position})

    assert restored.position.fees == D("0.1")
    assert dict(restored.position.fees_by_currency) == {"USDT": D("0.1")}
    assert restored.position.unconverted_fees == 0
