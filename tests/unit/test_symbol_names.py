"""The spelling an operator meant, for an order naming a symbol the stack does not trade."""

from __future__ import annotations

import pytest

from posbus.actors.model.symbol_names import (
    nearest_symbol,
    unknown_account_message,
    unknown_symbol_message,
)

KNOWN = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "ETH/BTC")


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("BTCUSDT", "BTC/USDT"),
        ("btc/usdt", "BTC/USDT"),
        ("BTC-USDT", "BTC/USDT"),
        ("eth_btc", "ETH/BTC"),
        ("BTC/USTD", "BTC/USDT"),
        ("SOLUSD", "SOL/USDT"),
    ],
)
def test_a_spelling_differing_in_case_separators_or_a_typo_names_its_symbol(
    typed: str, meant: str
) -> None:
    assert nearest_symbol(typed, KNOWN) == meant


@pytest.mark.parametrize("typed", ["DOGE/USDT", "XRP", "ETH"])
def test_a_symbol_near_none_of_the_known_suggests_nothing(typed: str) -> None:
    assert nearest_symbol(typed, KNOWN) is None


def test_the_message_names_the_symbol_meant_and_every_known_one() -> None:
    assert unknown_symbol_message("BTCUSDT", KNOWN) == (
        "unknown symbol 'BTCUSDT'; did you mean 'BTC/USDT'? "
        "(trades: BTC/USDT, ETH/BTC, ETH/USDT, SOL/USDT)"
    )
    assert unknown_symbol_message("DOGE/USDT", ["BTC/USDT"]) == (
        "unknown symbol 'DOGE/USDT' (trades: BTC/USDT)"
    )


def test_an_unknown_account_is_refused_naming_the_account_meant() -> None:
    assert unknown_account_message("Hedge", ["main", "hedge"]) == (
        "unknown account 'Hedge'; did you mean 'hedge'? (accounts: main, hedge)"
    )
    assert unknown_account_message("zzz", ["main"]) == "unknown account 'zzz' (accounts: main)"
