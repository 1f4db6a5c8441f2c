"""The fee of a ccxt trade is read exactly: its currency and amount as the venue charged them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from posbus.adapters.exchange.ccxt_convert import UnreadableField, trade_fee, trade_view

D = Decimal


def trade(**fields: Any) -> dict[str, Any]:
    return {
        "id": "1",
        "order": "9",
        "symbol": "BTC/USDT",
        "side": "buy",
        "price": "60000",
        "amount": "1",
        "timestamp": 1_700_000_000_000,
        **fields,
    }


def test_a_binance_buy_paying_in_base_keeps_the_base_currency_and_amount() -> None:
    raw = trade(fee={"currency": "BTC", "cost": "0.001", "rate": "0.001"})

    view = trade_view(raw, "c1", None, 0)

    assert (view.fee, view.fee_currency) == (D("0.001"), "BTC")


def test_the_fee_rate_is_never_taken_for_a_conversion_or_an_amount() -> None:
    raw = trade(fee={"currency": "BNB", "cost": "0.00012", "rate": "0.00075"})

    assert trade_fee(raw, "BTC/USDT") == (D("0.00012"), "BNB")


def test_fees_listed_per_rate_in_one_currency_are_summed_exactly() -> None:
    raw = trade(
        fee={"currency": None, "cost": None},
        fees=[
            {"currency": "BNB", "cost": "0.0001", "rate": "0.00075"},
            {"currency": "BNB", "cost": "0.00002", "rate": "0.0001"},
        ],
    )

    assert trade_fee(raw, "BTC/USDT") == (D("0.00012"), "BNB")


def test_fees_in_two_currencies_are_refused_rather_than_one_dropped() -> None:
    raw = trade(fees=[{"currency": "BNB", "cost": "0.0001"}, {"currency": "USDT", "cost": "0.5"}])

    with pytest.raises(UnreadableField, match=r"unreadable fees \(several currencies\)"):
        trade_fee(raw, "BTC/USDT")


def test_a_fee_cost_that_is_not_a_number_is_refused_not_read_as_zero() -> None:
    with pytest.raises(UnreadableField, match="unreadable fee cost: 'n/a'"):
        trade_fee(trade(fee={"currency": "USDT", "cost": "n/a"}), "BTC/USDT")


@pytest.mark.parametrize(
    ("symbol", "currency"),
    [("BTC/USDT", "USDT"), ("BTC/USD:BTC", "BTC"), ("ETH/USDC:USDC", "USDC")],
)
def test_no_fee_or_no_currency_is_in_the_settlement_currency(symbol: str, currency: str) -> None:
    assert trade_fee(trade(), symbol) == (D(0), currency)
    assert trade_fee(trade(fee={"cost": "0.1"}), symbol) == (D("0.1"), currency)


def test_a_float_cost_keeps_the_decimal_the_exchange_sent() -> None:
    assert trade_fee(trade(fee={"currency": "USDT", "cost": 0.1}), "BTC/USDT") == (D("0.1"), "USDT")
