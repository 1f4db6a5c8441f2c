"""Risk counts in one currency: a symbol quoted in another is converted at QUOTE/REPORTING.

A risk supervisor counting in USDT trades ETH/BTC and BTC/USDT. Every
expected figure is worked out by hand: 10 ETH at 0.05 BTC with BTC at
50,000 USDT is 10 x 0.05 x 50,000 = 25,000 USDT of exposure (not 0.5).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from posbus.actors.control import CheckOrder, ExposureChanged, Inspect
from posbus.actors.delivery import Outbox
from posbus.actors.events import EventLog
from posbus.actors.model.currency_conversion import CurrencyConversion, missing_rates
from posbus.actors.model.risk import OrderRequest, PositionExposure, RiskLimits
from posbus.actors.model.side import Side
from posbus.actors.risk_supervisor import RiskSupervisor
from posbus.adapters.clock import ManualClock
from posbus.adapters.config import ConfigError, config_from_dict
from posbus.adapters.journal.memory import MemoryJournal
from posbus.bus.messages import MarketUpdate

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
ETH_BTC, BTC_USDT = "ETH/BTC", "BTC/USDT"
LIMITS = RiskLimits(
    daily_loss_limit=Decimal(5_000),
    max_drawdown=Decimal("0.5"),
    max_leverage=Decimal(10),
    warning_fraction=Decimal("0.8"),
    warning_leverage_factor=Decimal("0.5"),
    max_group_exposure=Decimal(1_000_000),
    max_total_exposure=Decimal(30_000),
    max_order_notional=Decimal(1_000_000),
    max_orders_per_second=1_000,
    cooldown_s=60,
    stale_after_s=30,
)


def eth(qty: str, mark: str, ts_ns: int, *, realized: str = "0", unrealized: str = "0") -> Any:
    return PositionExposure(
        "A", ETH_BTC, Decimal(qty), Decimal(mark), ts_ns, Decimal(realized),
        Decimal(unrealized), "alts", Decimal(1),
    )  # fmt: skip


def quote(symbol: str, mid: str, ts_ns: int) -> MarketUpdate:
    price = Decimal(mid)
    return MarketUpdate(symbol, price, price, None, None, None, ts_ns)


def buy_eth(qty: str, price: str | None = None, ts_ns: int = T0 + 2 * S) -> OrderRequest:
    limit = None if price is None else Decimal(price)
    return OrderRequest("A", ETH_BTC, Side.BUY, Decimal(qty), limit, "A:ETH/BTC:1", ts_ns)


@pytest.fixture
def risk() -> Iterator[Any]:
    ref = RiskSupervisor.start(
        None,
        limits=LIMITS,
        starting_equity=Decimal(100_000),
        outbox=Outbox(MemoryJournal(), "test", ManualClock(T0)),
        events=EventLog(),
        clock=ManualClock(T0),
        reporting_currency="USDT",
        symbols=(ETH_BTC, BTC_USDT),
    )
    try:
        yield ref
    finally:
        ref.stop()


def metrics(risk: Any) -> dict[str, str]:
    found: dict[str, str] = risk.ask(Inspect())["metrics"]
    return found


def test_a_foreign_position_counts_in_the_reporting_currency_and_moves_with_the_rate(
    risk: Any,
) -> None:
    risk.tell(quote(BTC_USDT, "50000", T0))
    risk.tell(ExposureChanged(eth("10", "0.05", T0, realized="-0.01"), T0))
    m = metrics(risk)
    assert m["gross"] == "25000"  # 10 x 0.05 x 50,000
    assert m["equity"] == "99500"  # 100,000 - 0.01 BTC x 50,000
    # 1 ETH more is 2,500: 27,500 <= 30,000. 3 more is 7,500: 32,500 > 30,000.
    assert risk.ask(CheckOrder(buy_eth("1"))).approved
    refused = risk.ask(CheckOrder(buy_eth("3")))
    assert (refused.approved, refused.check) == (False, "total_exposure")
    # A limit price is converted too: 2 ETH at 0.04 BTC is 2 x 0.04 x 50,000 = 4,000.
    assert risk.ask(CheckOrder(buy_eth("2", "0.04"))).approved  # 29,000
    assert not risk.ask(CheckOrder(buy_eth("2", "0.06"))).approved  # 25,000 + 6,000

    # BTC doubles: the same 10 ETH are 50,000 USDT and the 0.01 BTC lost is 1,000.
    risk.tell(quote(BTC_USDT, "100000", T0 + S))
    m = metrics(risk)
    assert (m["gross"], m["equity"]) == ("50000", "99000")
    assert not risk.ask(CheckOrder(buy_eth("0.1"))).approved
    # ETH/BTC moves: 10 x 0.06 x 100,000 = 60,000.
    risk.tell(quote(ETH_BTC, "0.06", T0 + 2 * S))
    assert metrics(risk)["gross"] == "60000"


def test_without_a_rate_a_foreign_position_is_the_worst_case(risk: Any) -> None:
    risk.tell(ExposureChanged(eth("1", "0.05", T0), T0))
    refused = risk.ask(CheckOrder(buy_eth("0.1", "0.05")))
    assert (refused.approved, refused.check) == (False, "missing_data")
    # Selling what is held only reduces it: it passes without a rate.
    sell = OrderRequest("A", ETH_BTC, Side.SELL, Decimal("0.5"), None, "A:ETH/BTC:2", T0)
    assert risk.ask(CheckOrder(sell)).risk_reducing
    risk.tell(quote(BTC_USDT, "50000", T0 + S))
    assert risk.ask(CheckOrder(buy_eth("0.1", "0.05"))).approved


def test_a_stale_rate_makes_the_converted_mark_stale(risk: Any) -> None:
    risk.tell(quote(BTC_USDT, "50000", T0))
    risk.tell(ExposureChanged(eth("1", "0.05", T0 + 40 * S), T0 + 40 * S))
    # At T0 + 41 s the ETH/BTC mark is 1 s old but the rate 41 s (stale after 30 s):
    # the converted mark is as old as the rate, so nothing new passes.
    refused = risk.ask(CheckOrder(buy_eth("0.1", ts_ns=T0 + 41 * S)))
    assert (refused.approved, refused.check) == (False, "stale_mark")


def test_the_conversion_is_exact_and_needs_the_direct_rate_symbol() -> None:
    conversion = CurrencyConversion("USDT", (ETH_BTC, BTC_USDT, "SOL/USDT"))
    assert conversion.foreign == {ETH_BTC: "BTC"}
    assert conversion.set_rate("SOL/USDT", Decimal(150), T0) is None
    assert conversion.set_rate(BTC_USDT, Decimal("60123.45"), T0) == "BTC"
    assert conversion.mark(ETH_BTC, Decimal("0.051234"), T0 + S) == (
        Decimal("3080.3648373"),  # 0.051234 x 60,123.45 = 3,006.1725 + 74.1923373
        T0,
    )
    assert missing_rates("USDT", (ETH_BTC, "SOL/EUR", "BTC/USDT")) == ["EUR/USDT"]
    with pytest.raises(ValueError, match="add BTC/USDT"):
        CurrencyConversion("USDT", (ETH_BTC,))


def test_the_config_names_the_rate_symbol_to_add_and_the_currency_to_set() -> None:
    symbols = {
        ETH_BTC: {"price": 0.05, "order_qty": 1},
        "SOL/USDT": {"price": 150, "order_qty": 1},
    }
    with pytest.raises(ConfigError, match="add BTC/USDT"):
        config_from_dict({"symbols": symbols, "firm": {"reporting_currency": "USDT"}})
    with pytest.raises(ConfigError, match="quote in BTC, USDT; set the currency"):
        config_from_dict({"symbols": symbols})
    both = {**symbols, BTC_USDT: {"price": 50000, "order_qty": 0.01}}
    config = config_from_dict({"symbols": both, "firm": {"reporting_currency": "USDT"}})
    assert config.node_config().reporting_currency == "USDT"
    assert config_from_dict({}).firm.reporting_currency == "USDT"  # the one quote currency
    with pytest.raises(ConfigError, match='need "market"'):
        config_from_dict(
            {
                "symbols": both,
                "firm": {"reporting_currency": "USDT"},
                "positions": {"risk_marks": "exposures"},
            }
        )
