"""Micro-benchmark: a market_update through the posbus codec vs plain msgpack of a dict.

The baseline packs and unpacks an equivalent dict (the same envelope and quote
fields, decimals as strings) with msgpack.packb/unpackb: no validation, no
Decimal, no typed objects. The codec does all of that, so the ratios are the
price of a validated, typed, exact frame: encode+decode against packb+unpackb,
and decode alone (msgspec, every field checked, five Decimals built) against
unpackb into a dict. All cases run in the same process, interleaved, and each
figure is the median of 5 runs.

    python bench/bench_codec.py [iterations]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal

import msgpack

from posbus.bus.codec import Codec
from posbus.bus.messages import MarketUpdate

RUNS = 5
TS = 1_700_000_000_000_000_000


def _rate(work: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        work()
    return iterations / (time.perf_counter() - start)


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    update = MarketUpdate(
        symbol="BTC/USDT",
        bid=Decimal("50000.1"),
        ask=Decimal("50000.2"),
        last=Decimal("50000.15"),
        bid_size=Decimal("1.5"),
        ask_size=Decimal("2.25"),
        ts_ns=TS,
    )
    as_dict = {
        "kind": "market_update",
        "version": 1,
        "seq": 12345,
        "ts_ns": TS,
        "sender": "md-binance",
        "symbol": "BTC/USDT",
        "bid": "50000.1",
        "ask": "50000.2",
        "last": "50000.15",
        "bid_size": "1.5",
        "ask_size": "2.25",
        "event_ts_ns": TS,
    }
    codec = Codec()
    frame = codec.encode(update, seq=12345, sender="md-binance")
    assert codec.decode(frame).message == update

    def codec_round_trip() -> object:
        return codec.decode(codec.encode(update, seq=12345, sender="md-binance"))

    def baseline_round_trip() -> object:
        return msgpack.unpackb(msgpack.packb(as_dict))

    packed_dict = msgpack.packb(as_dict)

    def baseline_unpack() -> object:
        return msgpack.unpackb(packed_dict)

    def codec_encode() -> object:
        return codec.encode(update, seq=12345, sender="md-binance")

    def codec_decode() -> object:
        return codec.decode(frame)

    cases = {
        "posbus codec encode+decode": codec_round_trip,
        "baseline packb+unpackb dict": baseline_round_trip,
        "posbus codec encode only": codec_encode,
        "posbus codec decode only": codec_decode,
        "baseline unpackb dict": baseline_unpack,
    }
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for work in cases.values():
        _rate(work, iterations // 10)  # warm-up
    for _ in range(RUNS):
        for name, work in cases.items():
            rates[name].append(_rate(work, iterations))

    medians = {name: statistics.median(values) for name, values in rates.items()}
    baseline_size = len(msgpack.packb(as_dict))
    print(f"market_update: codec frame {len(frame)} bytes, baseline dict {baseline_size} bytes")
    for name, rate in medians.items():
        print(f"{name:30s} {rate:>12,.0f} /s  ({1e6 / rate:6.2f} us)")
    ratio = medians["posbus codec encode+decode"] / medians["baseline packb+unpackb dict"]
    print(f"ratio codec/baseline (encode+decode): {ratio:.2f}x  (median of {RUNS} runs)")
    ratio = medians["posbus codec decode only"] / medians["baseline unpackb dict"]
    print(f"ratio validated decode/unpackb dict:  {ratio:.2f}x  (median of {RUNS} runs)")


if __name__ == "__main__":
    main()
