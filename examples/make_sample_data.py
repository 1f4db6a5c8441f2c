"""Write the sample market data of examples/data/ (seeded: the same files every time).

    python examples/make_sample_data.py            # writes examples/data/*.csv
    python examples/make_sample_data.py --seed 3 --out /tmp/data

Files (all UTC, starting 2024-01-01):

- btc_quotes.csv: BTC/USDT quote ticks every 5 minutes for 30 days
  (timestamp as ISO 8601, bid, ask, sizes).
- eth_bars_1h.csv: ETH/USDT hourly OHLCV bars for 90 days (epoch ms timestamps).
- sol_trades.csv: SOL/USDT trade ticks every minute for 2 days (epoch ns timestamps).

The walk is a geometric random walk whose drift switches between trending
and mean-reverting regimes every few days, so both example strategies find
something to do. Prices are rounded to the cent; nothing but `random.Random`
with the given seed decides them.
"""

from __future__ import annotations

import argparse
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2024, 1, 1, tzinfo=UTC)


def walk(
    rng: random.Random, start: float, steps: int, vol: float, regime_steps: int
) -> list[float]:
    """A mid-price path: log-returns with regime-switching drift and pull to an anchor."""
    prices = []
    log_price = math.log(start)
    anchor = log_price
    drift = 0.0
    pull = 0.0
    for step in range(steps):
        if step % regime_steps == 0:
            trending = rng.random() < 0.5
            drift = rng.choice((-1.0, 1.0)) * vol * 0.15 if trending else 0.0
            pull = 0.0 if trending else 0.02
            anchor = log_price
        log_price += drift + pull * (anchor - log_price) + rng.gauss(0.0, vol)
        prices.append(math.exp(log_price))
    return prices


def quotes(rng: random.Random, out: Path) -> None:
    step = timedelta(minutes=5)
    mids = walk(rng, 42_000.0, 30 * 288, 0.0016, 3 * 288)
    with open(out / "btc_quotes.csv", "w", encoding="utf-8", newline="\n") as fh:
        fh.write("timestamp,symbol,bid,ask,bid_size,ask_size\n")
        for i, mid in enumerate(mids):
            ts = START + step * i
            half = max(0.01, round(mid * 0.00005, 2))
            bid, ask = round(mid - half, 2), round(mid + half, 2)
            sizes = (round(rng.uniform(0.1, 3.0), 3), round(rng.uniform(0.1, 3.0), 3))
            fh.write(
                f"{ts:%Y-%m-%dT%H:%M:%S}Z,BTC/USDT,{bid:.2f},{ask:.2f},{sizes[0]},{sizes[1]}\n"
            )


def bars(rng: random.Random, out: Path) -> None:
    closes = walk(rng, 2_300.0, 90 * 24, 0.008, 5 * 24)
    with open(out / "eth_bars_1h.csv", "w", encoding="utf-8", newline="\n") as fh:
        fh.write("timestamp,symbol,open,high,low,close,volume\n")
        previous = 2_300.0
        for i, close in enumerate(closes):
            ts_ms = int((START + timedelta(hours=i)).timestamp()) * 1000
            wick = abs(rng.gauss(0.0, 0.003))
            high = max(previous, close) * (1 + wick)
            low = min(previous, close) * (1 - abs(rng.gauss(0.0, 0.003)))
            volume = round(rng.uniform(100, 2_000), 2)
            fh.write(f"{ts_ms},ETH/USDT,{previous:.2f},{high:.2f},{low:.2f},{close:.2f},{volume}\n")
            previous = close


def trades(rng: random.Random, out: Path) -> None:
    prices = walk(rng, 100.0, 2 * 1440, 0.0015, 360)
    with open(out / "sol_trades.csv", "w", encoding="utf-8", newline="\n") as fh:
        fh.write("timestamp,symbol,price,qty\n")
        for i, price in enumerate(prices):
            ts_ns = int((START + timedelta(minutes=i)).timestamp()) * 1_000_000_000
            fh.write(f"{ts_ns},SOL/USDT,{price:.2f},{round(rng.uniform(1, 50), 2)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)  # noqa: S311 -- sample data, not cryptography
    quotes(rng, args.out)
    bars(rng, args.out)
    trades(rng, args.out)


if __name__ == "__main__":
    main()
