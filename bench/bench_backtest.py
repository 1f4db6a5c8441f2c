"""Backtest throughput: posbus against NautilusTrader's BacktestEngine on the same quote ticks.

    python bench/bench_backtest.py                      # 1,000,000 ticks, 3 rounds
    python bench/bench_backtest.py --ticks 200000 --rounds 1
    python bench/bench_backtest.py --nautilus-python /tmp/venv-nautilus/bin/python

Both engines replay the same seeded ticks of one instrument with the same
strategy (a position flip every 1,000 ticks) and the same friction. posbus
runs three times: exact risk (the default), exposure conflation, and
streaming from the CSV. Reported per engine, the median and the best round
of: run (ticks per second, data already in memory), load (seconds to read
the CSV), end-to-end (ticks / (load + run)) and peak RSS (MiB). The
workload and the method: docs/architecture.md, "Backtest benchmark".

NautilusTrader runs only when its separate venv exists (`--nautilus-python`);
it must never become a posbus dependency:

    python3 -m venv /tmp/venv-nautilus
    /tmp/venv-nautilus/bin/pip install nautilus_trader==1.221.0
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SYMBOL = "BTC/USDT"
T0 = 1_704_067_200_000_000_000
STEP_NS = 10_000_000
QTY = "0.1"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- data ----------------------------------------------------------------------------------


def write_ticks(path: Path, n: int, seed: int) -> None:
    """n BTC/USDT quotes: a seeded random walk, 1 USDT spread, every 10 ms."""
    rng = random.Random(seed)
    mid = 60_000.0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("timestamp,symbol,bid,ask,bid_size,ask_size\n")
        for i in range(n):
            mid *= 1 + rng.gauss(0.0, 0.0001)
            fh.write(f"{T0 + i * STEP_NS},{SYMBOL},{mid - 0.5:.2f},{mid + 0.5:.2f},1,1\n")


# -- posbus worker ----------------------------------------------------------------------------


def posbus_worker(path: Path, every: int, mode: str) -> dict[str, Any]:
    import logging
    from dataclasses import replace
    from decimal import Decimal

    import msgspec

    from posbus.actors.strategies.flip import Flip
    from posbus.adapters.backtest import Backtest
    from posbus.adapters.config import Config
    from posbus.adapters.market.replay import MarketReplay

    logging.disable(logging.WARNING)
    base = Config()
    risk = replace(
        base.risk,
        daily_loss_limit=Decimal(10**9),
        max_drawdown=Decimal("0.99"),
        max_order_notional=Decimal(10**9),
        max_leverage=Decimal(1000),
        max_group_exposure=Decimal(10**12),
        max_total_exposure=Decimal(10**12),
    )
    exchange = replace(
        base.exchange,
        reject_rate=0.0,
        partial_fill_rate=0.0,
        slippage_bps=Decimal(0),
        latency_ns=0,
        taker_fee_rate=Decimal("0.001"),
    )
    if mode == "posbus-conflated":
        positions = msgspec.structs.replace(
            base.positions, risk_marks="exposures", exposure_interval_ms=1_000
        )
    else:
        positions = base.positions
    config = replace(base, risk=risk, exchange=exchange, positions=positions)
    backtest = Backtest(config, Flip(every=every, qty=Decimal(QTY), symbol=SYMBOL))

    started = time.perf_counter()
    if mode == "posbus-stream":
        load_s = 0.0
        result = backtest.run(MarketReplay([path]))
        run_s = time.perf_counter() - started
    else:
        updates = list(MarketReplay([path]))
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        result = backtest.run(updates)
        run_s = time.perf_counter() - started
    return {
        "ticks": result.updates,
        "load_s": load_s,
        "run_s": run_s,
        "fills": result.fills,
        "final_qty": result.positions[SYMBOL]["qty"],
        "rss_mib": peak_rss_mib(),
    }


# -- NautilusTrader worker (runs in the nautilus venv: imports no posbus) -----------------------


def nautilus_worker(path: Path, every: int) -> dict[str, Any]:
    from decimal import Decimal

    from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
    from nautilus_trader.config import LoggingConfig, StrategyConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import QuoteTick
    from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId, TraderId, Venue
    from nautilus_trader.model.objects import Money, Price
    from nautilus_trader.test_kit.providers import TestInstrumentProvider
    from nautilus_trader.trading.strategy import Strategy

    class FlipConfig(StrategyConfig, frozen=True):
        instrument_id: InstrumentId
        every: int
        qty: str

    class Flip(Strategy):
        def __init__(self, config: FlipConfig) -> None:
            super().__init__(config)
            self.count = 0
            self.sign = 1

        def on_start(self) -> None:
            self.instrument = self.cache.instrument(self.config.instrument_id)
            self.subscribe_quote_ticks(self.config.instrument_id)

        def on_quote_tick(self, tick: QuoteTick) -> None:
            count = self.count
            self.count = count + 1
            if count % self.config.every:
                return
            qty = Decimal(self.config.qty) * (1 if count == 0 else 2)
            side = OrderSide.BUY if self.sign > 0 else OrderSide.SELL
            self.sign = -self.sign
            order = self.order_factory.market(
                self.config.instrument_id, side, self.instrument.make_qty(qty)
            )
            self.submit_order(order)

    instrument = TestInstrumentProvider.btcusdt_binance()
    started = time.perf_counter()
    ticks = []
    size = instrument.make_qty(1)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for ts, _, bid, ask, _, _ in reader:
            stamp = int(ts)
            ticks.append(
                QuoteTick(
                    instrument.id,
                    Price.from_str(bid),
                    Price.from_str(ask),
                    size,
                    size,
                    stamp,
                    stamp,
                )
            )
    engine = BacktestEngine(
        config=BacktestEngineConfig(
            trader_id=TraderId("BENCH-001"), logging=LoggingConfig(bypass_logging=True)
        )
    )
    venue = Venue("BINANCE")
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(1_000_000, USDT)],
        base_currency=USDT,
    )
    engine.add_instrument(instrument)
    engine.add_data(ticks)
    engine.add_strategy(Flip(FlipConfig(instrument_id=instrument.id, every=every, qty=QTY)))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    engine.run()
    run_s = time.perf_counter() - started
    fills = len(engine.trader.generate_order_fills_report())
    position = engine.cache.positions_open()
    final = str(position[0].signed_qty) if position else "0"
    return {
        "ticks": len(ticks),
        "load_s": load_s,
        "run_s": run_s,
        "fills": fills,
        "final_qty": final,
        "rss_mib": peak_rss_mib(),
    }


# -- driver ------------------------------------------------------------------------------------

MODES = ("posbus-exact", "posbus-conflated", "posbus-stream", "nautilus")


def run_worker(python: str, mode: str, path: Path, every: int) -> dict[str, Any]:
    command = [python, __file__, "--worker", mode, "--csv", str(path), "--every", str(every)]
    env = dict(os.environ)
    if mode == "nautilus":
        env.pop("PYTHONPATH", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nautilus-python", default="/tmp/venv-nautilus/bin/python")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.worker == "nautilus":
            out = nautilus_worker(args.csv, args.every)
        else:
            out = posbus_worker(args.csv, args.every, args.worker)
        print(json.dumps(out))
        return

    has_nautilus = Path(args.nautilus_python).exists()
    modes = [m for m in MODES if m != "nautilus" or has_nautilus]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ticks.csv"
        print(f"writing {args.ticks:,} ticks ...", flush=True)
        write_ticks(path, args.ticks, args.seed)
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for round_no in range(1, args.rounds + 1):
            # Rotate the order each round: no engine always runs right after another.
            shift = (round_no - 1) % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                python = args.nautilus_python if mode == "nautilus" else sys.executable
                out = run_worker(python, mode, path, args.every)
                results[mode].append(out)
                rate = float(out["ticks"]) / float(out["run_s"])
                print(
                    f"round {round_no} {mode:<17} run {rate:>10,.0f} ticks/s  "
                    f"load {float(out['load_s']):6.2f} s  fills {out['fills']}  "
                    f"final qty {out['final_qty']}  rss {float(out['rss_mib']):6.0f} MiB",
                    flush=True,
                )

    def median(mode: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[mode])

    def run_rate(mode: str) -> float:
        return statistics.median(float(r["ticks"]) / float(r["run_s"]) for r in results[mode])

    def best_rate(mode: str) -> float:
        return max(float(r["ticks"]) / float(r["run_s"]) for r in results[mode])

    def e2e_rate(mode: str) -> float:
        return statistics.median(
            float(r["ticks"]) / (float(r["load_s"]) + float(r["run_s"])) for r in results[mode]
        )

    print()
    print(
        f"{args.ticks:,} quote ticks, flip every {args.every:,}; medians of {args.rounds} round(s)"
    )
    print(
        f"{'engine':<18} {'run ticks/s':>12} {'(best)':>10} {'load s':>8} "
        f"{'end-to-end ticks/s':>19} {'RSS MiB':>8}"
    )
    for mode in modes:
        print(
            f"{mode:<18} {run_rate(mode):>12,.0f} {best_rate(mode):>10,.0f} "
            f"{median(mode, 'load_s'):>8.2f} {e2e_rate(mode):>19,.0f} "
            f"{median(mode, 'rss_mib'):>8.0f}"
        )
    if has_nautilus:
        base = run_rate("nautilus")
        print()
        for mode in modes:
            if mode != "nautilus":
                print(
                    f"{mode} / nautilus: run {run_rate(mode) / base:.2f}x "
                    f"(best {best_rate(mode) / best_rate('nautilus'):.2f}x), "
                    f"end-to-end {e2e_rate(mode) / e2e_rate('nautilus'):.2f}x"
                )
    else:
        print(f"\n(NautilusTrader not run: no {args.nautilus_python}; see the docstring)")


if __name__ == "__main__":
    main()
