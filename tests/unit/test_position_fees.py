"""Fees in the base currency and in a third currency, against hand-computed baselines.

Each life is the same shape (open, add, partial close, flip, close) on BTC/USDT,
with the numbers worked out in the comments and in docs/accounting.md, "Fees
in any currency".
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from posbus.actors.model.errors import OrderValidationError
from posbus.actors.model.fill import Fill
from posbus.actors.model.position import Position, PositionStatus
from posbus.actors.model.side import Side

D = Decimal
SYMBOL = "BTC/USDT"
_ids = itertools.count(1)


def fill(
    side: str,
    qty: str,
    price: str,
    fee: str,
    fee_currency: str,
    fee_mark: str | None = None,
    *,
    symbol: str = SYMBOL,
) -> Fill:
    n = next(_ids)
    return Fill(
        trade_id=f"t{n}",
        account="acc",
        symbol=symbol,
        side=Side(side),
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_currency=fee_currency,
        ts_ns=n,
        order_id=f"o{n}",
        fee_mark=None if fee_mark is None else D(fee_mark),
    )


def applied(position: Position, *fills: Fill) -> Position:
    for f in fills:
        assert position.apply_fill(f)
    return position


# -- a fee in the base currency (spot) -------------------------------------------------

BASE_LIFE = (
    fill("buy", "1", "100", "0.001", "BTC"),
    fill("buy", "1", "110", "0.001", "BTC"),
    fill("sell", "0.5", "120", "0.0005", "BTC"),
    fill("sell", "2.5", "90", "0.0025", "BTC"),
    fill("buy", "1.006", "80", "0.001", "BTC"),
)


def base_life(steps: int) -> Position:
    return applied(Position("acc", SYMBOL), *BASE_LIFE[:steps])


def test_a_buy_paying_its_fee_in_base_holds_the_balance_net_of_the_fee() -> None:
    position = base_life(1)

    # buy 1 BTC, 0.001 BTC goes to the venue: the account holds 0.999
    assert position.qty == D("0.999")
    assert position.avg_entry_price == D("100")
    # the fee's value at the fill price: 0.001 * 100 = 0.1
    assert position.realized_pnl == D("-0.1")
    assert position.fees == D("0.1")
    assert dict(position.fees_by_currency) == {"BTC": D("0.001")}
    assert position.unconverted_fees == 0


def test_adding_with_a_base_fee_weights_the_average_by_the_net_quantity() -> None:
    position = base_life(2)

    # 0.999 @ 100 + 0.999 @ 110: cost 99.9 + 109.89 = 209.79, qty 1.998, avg 105
    assert position.qty == D("1.998")
    assert position.avg_entry_price == D("105")
    # -0.1 - 0.001 * 110
    assert position.realized_pnl == D("-0.21")
    assert dict(position.fees_by_currency) == {"BTC": D("0.002")}


def test_a_sell_paying_its_fee_in_base_gives_up_quantity_and_fee() -> None:
    position = base_life(3)

    # sell 0.5 with 0.0005 BTC fee: the balance falls by 0.5005
    assert position.qty == D("1.4975")
    assert position.avg_entry_price == D("105")
    # 0.5005 closed at 120 against 105: +7.5075; fee 0.0005 * 120 = 0.06
    # -0.21 + 7.5075 - 0.06 = 7.2375
    assert position.realized_pnl == D("7.2375")
    assert position.fees == D("0.27")


def test_a_flip_with_a_base_fee_splits_the_fee_value_over_the_quantity_moved() -> None:
    position = base_life(4)

    # sell 2.5 + fee 0.0025: the position moves by 2.5025; 1.4975 closes, 1.005 opens short
    assert position.qty == D("-1.005")
    assert position.avg_entry_price == D("90")
    assert position.entry_ts_ns == BASE_LIFE[3].ts_ns
    # 1.4975 * (90 - 105) = -22.4625; fee 0.0025 * 90 = 0.225
    # 7.2375 - 22.4625 - 0.225 = -15.45
    assert position.realized_pnl == D("-15.45")
    # closing share 0.225 * 1.4975 / 2.5025 = 0.1346403596... -> 0.13464036
    assert position.fees_closing == D("0.06") + D("0.13464036")
    assert position.fees_opening == D("0.21") + D("0.225") - D("0.13464036")


def test_closing_with_a_base_fee_buys_the_short_and_the_fee() -> None:
    position = base_life(5)

    # buy 1.006 paying 0.001 BTC: +1.005 covers the short exactly
    assert position.qty == D("0")
    assert position.avg_entry_price == D("0")
    assert position.status is PositionStatus.CLOSED
    # 1.005 * (90 - 80) = 10.05; fee 0.001 * 80 = 0.08; -15.45 + 10.05 - 0.08 = -5.48
    assert position.realized_pnl == D("-5.48")
    # 0.1 + 0.11 + 0.06 + 0.225 + 0.08
    assert position.fees == D("0.575")
    assert dict(position.fees_by_currency) == {"BTC": D("0.006")}
    # the quote cash of the life: -100 - 110 + 60 + 225 - 1.006 * 80 = -5.48, all realized
    assert position.realized_pnl == D("-100") - D("110") + D("60") + D("225") - D("80.48")


# -- a fee in a third currency (BNB) ---------------------------------------------------

BNB_LIFE = (
    fill("buy", "1", "100", "0.0002", "BNB", "500"),
    fill("buy", "1", "110", "0.0002", "BNB", "550"),
    fill("sell", "0.5", "120", "0.0001", "BNB"),  # no conversion mark
    fill("sell", "2.5", "90", "0.0005", "BNB", "600"),
    fill("buy", "1", "80", "0.0002", "BNB", "400"),
)


def bnb_life(steps: int) -> Position:
    return applied(Position("acc", SYMBOL), *BNB_LIFE[:steps])


def test_a_bnb_fee_is_valued_at_its_conversion_mark_and_leaves_quantity_alone() -> None:
    position = bnb_life(1)

    assert position.qty == D("1")
    assert position.avg_entry_price == D("100")
    # 0.0002 BNB * 500 USDT = 0.1
    assert position.realized_pnl == D("-0.1")
    assert position.fees == D("0.1")
    assert dict(position.fees_by_currency) == {"BNB": D("0.0002")}


def test_adding_with_a_bnb_fee_values_each_fee_at_its_own_mark() -> None:
    position = bnb_life(2)

    assert position.qty == D("2")
    assert position.avg_entry_price == D("105")
    # -0.1 - 0.0002 * 550
    assert position.realized_pnl == D("-0.21")


def test_a_bnb_fee_without_conversion_mark_is_counted_never_valued_at_zero_silently() -> None:
    position = bnb_life(3)

    assert position.qty == D("1.5")
    # 0.5 * (120 - 105) = 7.5; the 0.0001 BNB fee is not in realized
    assert position.realized_pnl == D("7.29")
    assert position.fees == D("0.21")
    assert position.unconverted_fees == 1
    assert dict(position.unconverted_fees_by_currency) == {"BNB": D("0.0001")}
    assert dict(position.fees_by_currency) == {"BNB": D("0.0005")}


def test_a_flip_with_a_bnb_fee_splits_its_value_pro_rata() -> None:
    position = bnb_life(4)

    assert position.qty == D("-1")
    assert position.avg_entry_price == D("90")
    # 1.5 * (90 - 105) = -22.5; fee 0.0005 * 600 = 0.3 (0.18 closing, 0.12 opening)
    # 7.29 - 22.5 - 0.3 = -15.51
    assert position.realized_pnl == D("-15.51")
    assert position.fees_closing == D("0.18")
    assert position.fees_opening == D("0.21") + D("0.12")


def test_closing_with_a_bnb_fee_keeps_the_unconverted_count() -> None:
    position = bnb_life(5)

    assert position.qty == D("0")
    # 1 * (90 - 80) = 10; fee 0.0002 * 400 = 0.08; -15.51 + 10 - 0.08 = -5.59
    assert position.realized_pnl == D("-5.59")
    assert position.fees == D("0.59")
    assert dict(position.fees_by_currency) == {"BNB": D("0.0012")}
    assert position.unconverted_fees == 1
    assert dict(position.unconverted_fees_by_currency) == {"BNB": D("0.0001")}


# -- which currency is which -----------------------------------------------------------


@pytest.mark.parametrize("currency", ["USDT", "usdt", ""])
def test_a_quote_fee_is_subtracted_as_it_is_and_ignores_any_mark(currency: str) -> None:
    position = applied(Position("acc", SYMBOL), fill("buy", "1", "100", "0.1", currency, "7"))

    assert position.qty == D("1")
    assert position.realized_pnl == D("-0.1")
    assert dict(position.fees_by_currency) == {"USDT": D("0.1")}


def test_a_derivative_settles_fees_in_its_settlement_currency_and_values_its_base() -> None:
    perp = "BTC/USDT:USDT"
    position = applied(
        Position("acc", perp),
        fill("buy", "2", "100", "0.2", "USDT", symbol=perp),
        # contracts, not a balance: a BTC fee does not change the quantity
        fill("buy", "1", "100", "0.001", "BTC", "100", symbol=perp),
    )

    assert position.qty == D("3")
    # 0.2 + 0.001 * 100
    assert position.realized_pnl == D("-0.3")


def test_a_symbol_without_a_pair_takes_every_fee_as_quote() -> None:
    position = applied(
        Position("acc", "BTCUSDT"), fill("buy", "1", "100", "0.5", "BNB", symbol="BTCUSDT")
    )

    assert position.realized_pnl == D("-0.5")
    assert position.unconverted_fees == 0


def test_a_fill_refuses_a_conversion_mark_that_is_not_a_positive_price() -> None:
    with pytest.raises(ValueError, match="fee_mark must be a positive finite number"):
        fill("buy", "1", "100", "0.1", "BNB", "0")


# -- snapshots ---------------------------------------------------------------------------


def test_a_snapshot_keeps_fees_by_currency_and_the_unconverted_ones() -> None:
    position = bnb_life(3)

    data = position.to_dict()

    assert data["fees_by_currency"] == {"BNB": "0.0005"}
    assert data["unconverted_fees"] == 1
    assert data["unconverted_fees_by_currency"] == {"BNB": "0.0001"}
    restored = Position.from_dict(data)
    assert restored.to_dict() == data
    assert restored.unconverted_fees == 1


def test_a_snapshot_with_only_quote_fees_has_no_fee_breakdown_and_restores_it() -> None:
    position = applied(Position("acc", SYMBOL), fill("buy", "1", "100", "0.1", "USDT"))

    data = position.to_dict()

    assert "fees_by_currency" not in data
    assert "unconverted_fees" not in data
    assert dict(Position.from_dict(data).fees_by_currency) == {"USDT": D("0.1")}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unconverted_fees", 2.0),
        ("unconverted_fees", -1),
        ("unconverted_fees", 0),  # amounts without a count
        ("unconverted_fees_by_currency", {"ETH": "0.0001"}),  # not among the fees paid
        ("fees_by_currency", {"BNB": 5}),
    ],
)
def test_a_malformed_fee_breakdown_is_rejected(field: str, value: object) -> None:
    data = bnb_life(3).to_dict()
    data[field] = value

    with pytest.raises(OrderValidationError, match="malformed position snapshot"):
        Position.from_dict(data)
