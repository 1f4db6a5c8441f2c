"""The backtest engine: latency, fills, conflation, strategies and metrics on small scripted data.

Every expected number is worked out by hand in a comment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from posbus.actors.model.side import Side
from posbus.actors.strategy import StrategyContext, market_intent
from posbus.adapters.backtest import Backtest, BacktestError
from posbus.adapters.backtest_strategy import StrategyError, build_strategy, parse_params
from posbus.adapters.backtest_summary import summarize
from posbus.adapters.config import Config, ConfigError, config_from_dict
from posbus.adapters.market.replay import MarketReplay
from posbus.bus.messages import MarketUpdate, OrderFill, OrderIntent

D = Decimal
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
MS = 1_000_000
S = 1_000_000_000
BTC = "BTC/USDT"
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "btc_quotes.csv"


def quote(ts: int, bid: str, ask: str, symbol: str = BTC) -> MarketUpdate:
    return MarketUpdate(symbol, D(bid), D(ask), None, None, None, ts)


class Scripted:
    """Sends the given (side, qty, reduce_only) market intents on the n-th market update."""

    def __init__(self, plan: dict[int, list[tuple[Side, str, bool]]]) -> None:
        self.plan = plan
        self.count = 0
        self.fills: list[OrderFill] = []
        self.context: StrategyContext | None = None

    def on_start(self, context: StrategyContext) -> None:
        self.context = context

    def on_market(self, update: MarketUpdate) -> Sequence[OrderIntent]:
        assert self.context is not None
        steps = self.plan.get(self.count, [])
        self.count += 1
        return [
            market_intent(
                self.context, update.symbol, side, D(qty), reason="script", reduce_only=ro
            )
            for side, qty, ro in steps
        ]

    def on_fill(self, fill: OrderFill) -> Sequence[OrderIntent]:
        self.fills.append(fill)
        return ()


def config(**exchange: object) -> Config:
    """Frictionless defaults (no rejects, no partial fills, no slippage) with generous limits."""
    base = Config()
    risk = replace(
        base.risk,
        daily_loss_limit=D(10**9),
        max_drawdown=D("0.99"),
        max_order_notional=D(10**9),
        max_leverage=D(1000),
        max_group_exposure=D(10**12),
        max_total_exposure=D(10**12),
        stale_after_s=3600,
    )
    sim = replace(
        base.exchange,
        reject_rate=0.0,
        partial_fill_rate=0.0,
        slippage_bps=D(0),
        latency_ns=0,
        taker_fee_rate=D("0.001"),
    )
    return replace(base, risk=risk, exchange=replace(sim, **exchange))  # type: ignore[arg-type]


def test_an_order_fills_against_the_quote_in_effect_when_it_reaches_the_exchange() -> None:
    strategy = Scripted({0: [(Side.BUY, "1", False)]})
    backtest = Backtest(config(latency_ns=5 * MS), strategy)
    result = backtest.run(
        [
            quote(T0, "100", "101"),  # the buy is decided here...
            quote(T0 + 3 * MS, "200", "201"),  # ...and reaches the exchange at +5 ms, after this
            quote(T0 + 10 * MS, "300", "301"),
        ]
    )
    (fill,) = strategy.fills
    # a market buy takes the ask in effect at +5 ms: 201, stamped with the arrival time
    assert (fill.price, fill.ts_ns) == (D(201), T0 + 5 * MS)
    # fee 1 x 201 x 0.001 = 0.201
    assert fill.fee == D("0.201")
    assert result.positions[BTC]["avg_entry_price"] == "201"


def test_an_order_arriving_exactly_with_a_quote_matches_the_quote_before_it() -> None:
    strategy = Scripted({0: [(Side.BUY, "1", False)]})
    backtest = Backtest(config(latency_ns=3 * MS), strategy)
    backtest.run([quote(T0, "100", "101"), quote(T0 + 3 * MS, "200", "201")])
    (fill,) = strategy.fills
    assert (fill.price, fill.ts_ns) == (D(101), T0 + 3 * MS)


def test_with_zero_latency_an_order_fills_on_the_quote_it_was_decided_on() -> None:
    strategy = Scripted({0: [(Side.BUY, "1", False)]})
    Backtest(config(), strategy).run([quote(T0, "100", "101"), quote(T0 + MS, "200", "201")])
    (fill,) = strategy.fills
    assert (fill.price, fill.ts_ns) == (D(101), T0)


def test_an_order_sent_on_the_last_update_still_reaches_the_exchange() -> None:
    strategy = Scripted({1: [(Side.SELL, "2", False)]})
    backtest = Backtest(config(latency_ns=7 * MS), strategy)
    result = backtest.run([quote(T0, "100", "101"), quote(T0 + MS, "110", "111")])
    (fill,) = strategy.fills
    # sold at the bid 110 at +1 ms + 7 ms; the run ends at the arrival
    assert (fill.price, fill.ts_ns) == (D(110), T0 + 8 * MS)
    assert result.end_ns == T0 + 8 * MS
    assert result.positions[BTC]["qty"] == "-2"


def test_a_round_trip_shows_in_trades_pnl_fees_and_the_equity_curve() -> None:
    strategy = Scripted({0: [(Side.BUY, "2", False)], 2: [(Side.SELL, "2", True)]})
    cfg = config()
    cfg = replace(
        cfg, backtest=msgspec.structs.replace(cfg.backtest, equity_interval_s=1, period_s=1)
    )
    result = Backtest(cfg, strategy).run(
        [
            quote(T0, "99", "100"),
            quote(T0 + S + 1, "104", "106"),  # mid 105
            quote(T0 + 2 * S + 1, "110", "112"),
        ]
    )
    (trip,) = result.trips
    # bought 2 at the ask 100 (fee 0.2), sold 2 at the bid 110 (fee 0.22):
    # 2 x (110 - 100) - 0.42 = 19.58
    assert trip.side is Side.BUY
    assert (trip.entry_price, trip.exit_price, trip.qty) == (D(100), D(110), D(2))
    assert (trip.pnl, trip.fees) == (D("19.58"), D("0.42"))
    assert result.fees == D("0.42")
    assert result.equity == [
        (T0, D(100_000)),
        # at +1 s: after the buy, marked at mid 99.5: -0.2 + 2 x (99.5 - 100) = -1.2
        (T0 + S, D("99998.8")),
        # at +2 s: marked at mid 105: -0.2 + 2 x 5 = 9.8
        (T0 + 2 * S, D("100009.8")),
        # the end: flat, realized 19.58
        (T0 + 2 * S + 1, D("100019.58")),
    ]
    summary = summarize(
        result, cfg.backtest, strategy="script", params={}, data=[], skipped={}, seed=7
    )
    assert summary["trades"] == 1
    assert summary["win_rate"] == 1.0
    assert summary["fees"] == "0.42"
    assert summary["final_equity"] == "100019.58"
    # 100019.58 / 100000 - 1 = 0.0001958
    assert summary["total_return"] == 0.000196
    # from the peak 100000 down to 99998.8: -1.2 / 100000
    assert summary["max_drawdown"] == -0.000012
    # open from the buy at T0 to the sale at T0 + 2 s + 1 ns: the whole run
    assert summary["exposure_time"] == 1.0


def test_conflation_sends_fewer_exposures_but_changes_no_fill() -> None:
    updates = [quote(T0 + i * 10 * MS, str(100 + i % 7), str(101 + i % 7)) for i in range(3_000)]

    def run(
        interval_ms: int, marks: str = "exposures"
    ) -> tuple[list[tuple[str, Decimal, Decimal]], int]:
        cfg = config(latency_ns=2 * MS)
        positions = msgspec.structs.replace(
            cfg.positions, risk_marks=marks, exposure_interval_ms=interval_ms
        )
        cfg = replace(cfg, positions=positions)
        strategy = build_strategy("flip", {"every": "100", "qty": "1"})
        backtest = Backtest(cfg, strategy)
        result = backtest.run(updates)
        fills = [(t.side.value, t.entry_price, t.pnl) for t in result.trips]
        return fills, backtest.node.scheduler.delivered

    exact_fills, exact_messages = run(0)
    conflated_fills, conflated_messages = run(1_000)
    market_fills, _ = run(0, "market")
    assert len(exact_fills) == 29  # 30 flips: 29 closed round trips
    assert conflated_fills == exact_fills
    assert market_fills == exact_fills
    # 3000 updates x (gateway + position + risk) vs about one exposure per second
    assert conflated_messages < exact_messages - 2_500


def test_a_conflated_mark_is_told_to_risk_before_the_positions_own_order_is_checked() -> None:
    cfg = config()
    cfg = replace(
        cfg,
        risk=replace(cfg.risk, max_order_notional=D(150)),
        positions=msgspec.structs.replace(
            cfg.positions, risk_marks="exposures", exposure_interval_ms=500
        ),
    )
    # Opened at mid 100 (told to risk); 100 ms later the mid is 200, not told yet
    # (conflated); then an order of 1: priced at 200 it is beyond the 150 cap.
    strategy = Scripted({0: [(Side.BUY, "1", False)], 2: [(Side.BUY, "1", False)]})
    result = Backtest(cfg, strategy).run(
        [
            quote(T0, "99.5", "100.5"),
            quote(T0 + 100 * MS, "199.5", "200.5"),
            quote(T0 + 200 * MS, "199.5", "200.5"),
        ]
    )
    assert result.risk_decisions == {"approved": 1, "rejected.order_notional": 1}
    (refusal,) = [e for e in result.risk_events if e.event == "order_rejected"]
    assert refusal.values["notional"] == "200"


def test_risk_limits_refuse_orders_and_their_events_are_in_the_result() -> None:
    cfg = config()
    cfg = replace(cfg, risk=replace(cfg.risk, daily_loss_limit=D(5), cooldown_s=60))
    # buy 1 at 101, then the market drops 10: daily loss >= 5 -> CoolDown; the
    # next opening buy is refused, the reduce-only close still passes.
    strategy = Scripted(
        {0: [(Side.BUY, "1", False)], 2: [(Side.BUY, "1", False)], 3: [(Side.SELL, "1", True)]}
    )
    result = Backtest(cfg, strategy).run(
        [
            quote(T0, "100", "101"),
            quote(T0 + S, "90", "91"),
            quote(T0 + 2 * S, "90", "91"),
            quote(T0 + 3 * S, "90", "91"),
        ]
    )
    kinds = [(e.event, e.state) for e in result.risk_events]
    assert ("state_change", "CoolDown") in kinds
    assert ("order_rejected", "CoolDown") in kinds
    assert result.risk_decisions["rejected.cooldown"] == 1
    assert result.positions[BTC]["qty"] == "0"


def test_the_example_strategies_trade_the_sample_data() -> None:
    for name, params in (("ma_crossover", {}), ("mean_reversion", {"window": "50"})):
        strategy = build_strategy(name, params)
        result = Backtest(config(), strategy).run(MarketReplay([SAMPLE]))
        assert len(result.trips) > 10, name
        assert result.orders.get("Filled", 0) > 10, name


def test_no_data_is_an_error() -> None:
    with pytest.raises(BacktestError, match="no market data"):
        Backtest(config(), Scripted({})).run([])


def test_strategy_params_are_typed_and_unknown_ones_are_refused() -> None:
    strategy = build_strategy("ma_crossover", parse_params(["fast=5", "slow=9", "qty=0.5"]))
    assert (strategy.fast, strategy.slow, strategy.qty) == (5, 9, D("0.5"))  # type: ignore[attr-defined]
    with pytest.raises(StrategyError, match=r"unknown parameter\(s\) \['speed'\]"):
        build_strategy("ma_crossover", {"speed": "1"})
    with pytest.raises(StrategyError, match="expected an integer"):
        build_strategy("ma_crossover", {"fast": "x"})
    with pytest.raises(StrategyError, match="need 1 <= fast < slow"):
        build_strategy("ma_crossover", {"fast": "9", "slow": "5"})
    with pytest.raises(StrategyError, match="unknown strategy"):
        build_strategy("nope", {})
    loaded = build_strategy("posbus.actors.strategies.flip:Flip", {"every": "3"})
    assert loaded.every == 3  # type: ignore[attr-defined]


def test_backtest_and_conflation_settings_load_from_toml_and_are_checked() -> None:
    loaded = config_from_dict(
        {
            "positions": {
                "risk_marks": "exposures",
                "exposure_interval_ms": 250,
                "exposure_pnl_step": "5",
            },
            "backtest": {"period_s": 3600, "periods_per_year": 8760, "equity_interval_s": 60},
        }
    )
    node = loaded.node_config()
    assert (node.exposure_interval_ns, node.exposure_pnl_step) == (250_000_000, D(5))
    assert not node.risk_reads_market
    assert config_from_dict({}).node_config().risk_reads_market  # the default: "market"
    with pytest.raises(ConfigError, match="risk_marks: must be one of market, exposures"):
        config_from_dict({"positions": {"risk_marks": "quotes"}})
    # conflation of position-told marks means nothing while risk reads the market
    with pytest.raises(ConfigError, match='set risk_marks = "exposures"'):
        config_from_dict({"positions": {"exposure_interval_ms": 250}})
    assert (loaded.backtest.period_s, loaded.backtest.periods_per_year) == (3600, 8760.0)
    # a conflation interval at or beyond the staleness limit (10 s) would make marks look stale
    with pytest.raises(ConfigError, match="must be below"):
        config_from_dict({"positions": {"risk_marks": "exposures", "exposure_interval_ms": 10_000}})
    with pytest.raises(ConfigError, match="multiple of equity_interval_s"):
        config_from_dict({"backtest": {"period_s": 100, "equity_interval_s": 60}})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"backtest": {"period": 1}})


def test_risk_reading_the_market_decides_as_positions_telling_every_mark() -> None:
    """The same backtest with marks told per position and read from the market: tight
    limits (Warning, CoolDown, daily-loss and drawdown refusals), identical results."""
    base = Config()
    risk = replace(
        base.risk,
        daily_loss_limit=D(60),
        max_drawdown=D("0.002"),
        cooldown_s=600,
        max_leverage=D(2),
    )

    def run(marks: str) -> dict[str, object]:
        cfg = replace(
            base,
            risk=risk,
            positions=msgspec.structs.replace(base.positions, risk_marks=marks),
            exchange=replace(base.exchange, seed=5, latency_ns=MS),
        )
        strategy = build_strategy("mean_reversion", {"window": "20"})
        result = Backtest(cfg, strategy).run(MarketReplay([SAMPLE]))
        return summarize(
            result, cfg.backtest, strategy="mr", params={}, data=[], skipped={}, seed=5
        )

    told, read = run("exposures"), run("market")
    states = {e["state"] for e in told["risk_events"]}  # type: ignore[union-attr]
    assert {"Warning", "CoolDown"} <= states
    assert read == told  # events, decisions, trades, metrics and the journal's digest
