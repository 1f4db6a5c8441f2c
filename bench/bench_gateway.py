"""Order round trip through the ccxt gateway against the Binance emulator, against ccxt alone.

posbus: an intent handed to a Node (journal, risk check, journaled submit,
gateway actor, ccxt on the gateway's I/O loop, HTTP to the emulator, the
answer back as messages, ack and fill journaled on the position's stream and
told to the position). Timed from `node.signal()` until the fill record is
journaled on the position's stream: the write-ahead point after which the
position applies it, next in its mailbox. (Asking the position for its state
after every fill would add the cost of its `inspect`, which grows with its
order history, and measure that instead.)

baseline: the same market order sent by `ccxt.binance` (async) straight to
the same emulator in the same process, timed until `create_order` returns
(its answer carries the fill).

Both use real HTTP on 127.0.0.1, no rate limiter, one order at a time,
alternating buy and sell 0.01 BTC. Each round times N orders of each kind;
the script prints every round and the medians over rounds of p50 and p99 and
of the overhead ratio (posbus / baseline).

    python bench/bench_gateway.py [--orders 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

import ccxt.async_support as ccxt_async  # noqa: E402
from ccxt_rig import BTC, STREAM, CcxtRig, gateway_config  # noqa: E402

from posbus.actors.control import Inspect  # noqa: E402
from posbus.actors.delivery import decode_record  # noqa: E402
from posbus.actors.journal import JournalRecord  # noqa: E402
from posbus.actors.model.side import Side  # noqa: E402
from posbus.adapters.journal.memory import MemoryJournal  # noqa: E402
from posbus.adapters.simulation.binance_emulator import BinanceEmulator  # noqa: E402
from posbus.bus.messages import OrderFill  # noqa: E402

QTY = "0.01"


class WatchedJournal(MemoryJournal):
    """A memory journal that wakes a waiter on every append (the benchmark's barrier)."""

    def __init__(self) -> None:
        super().__init__()
        self.appended = threading.Condition()

    def append(self, stream: str, payload: bytes) -> JournalRecord:
        record = super().append(stream, payload)
        with self.appended:
            self.appended.notify_all()
        return record

    def wait_for_fill(self, after_seq: int, timeout_s: float = 10.0) -> int:
        """Block until an OrderFill is journaled on the position stream after `after_seq`."""
        deadline = time.monotonic() + timeout_s
        seen = after_seq
        with self.appended:
            while True:
                for record in self.read(STREAM, seen):
                    seen = record.seq
                    if isinstance(decode_record(record).message, OrderFill):
                        return record.seq
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no fill journaled")
                self.appended.wait(left)


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def sides() -> Iterator[Side]:
    return itertools.cycle((Side.SELL, Side.BUY))


def posbus_order(rig: CcxtRig, journal: WatchedJournal, side: Side) -> float:
    """Milliseconds from intent to fill journaled on the position's stream."""
    # The node's ManualClock moves 2 ms per order: the risk supervisor's order
    # rate limit counts orders per second of that clock.
    rig.clock.advance(2_000_000)
    rig.quote()
    seq = journal.last_seq(STREAM)
    start = time.perf_counter()
    rig.order(side, QTY)
    journal.wait_for_fill(seq)
    return (time.perf_counter() - start) * 1000


class Baseline:
    """ccxt.binance (async) straight to the emulator, on an event loop of the calling thread."""

    def __init__(self, emulator: BinanceEmulator) -> None:
        self.loop = asyncio.new_event_loop()
        self.ids = itertools.count(1)
        self.exchange = self.loop.run_until_complete(self._open(emulator))

    async def _open(self, emulator: BinanceEmulator) -> Any:
        exchange = ccxt_async.binance(
            {
                "apiKey": emulator.api_key,
                "secret": emulator.secret,
                "enableRateLimit": False,
                "timeout": 10_000,
                "options": {
                    "fetchCurrencies": False,
                    "adjustForTimeDifference": False,
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchMargins": False,
                    "recvWindow": 5000,
                },
            }
        )
        exchange.urls["api"] = {**exchange.urls["api"], **emulator.ccxt_urls()}
        exchange.number = str
        await exchange.load_markets()
        return exchange

    def order(self, side: Side) -> float:
        """Milliseconds of one create_order (its answer carries the fill)."""
        start = time.perf_counter()
        self.loop.run_until_complete(
            self.exchange.create_order(
                BTC, "market", side.value, QTY, None, {"clientOrderId": f"base{next(self.ids)}"}
            )
        )
        return (time.perf_counter() - start) * 1000

    def close(self) -> None:
        self.loop.run_until_complete(self.exchange.close())
        self.loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200, help="orders per round and kind")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rows = []
    with BinanceEmulator(balances={"USDT": Decimal(10**9), "BTC": Decimal(10**4)}) as emulator:
        journal = WatchedJournal()
        rig = CcxtRig(emulator, journal, gateway_config(emulator, timeout_ms=10_000))
        rig.start()
        baseline = Baseline(emulator)
        try:
            rig.quote()
            seq = journal.last_seq(STREAM)
            rig.order(Side.BUY, "0.02")  # then sell/buy 0.01 in turn: never flat
            journal.wait_for_fill(seq)
            side = sides()
            for _ in range(20):  # warm-up: connections, code paths
                turn = next(side)
                baseline.order(turn)
                posbus_order(rig, journal, turn)
            for number in range(1, args.rounds + 1):
                base, ours = [], []
                # Paired, one of each in turn: both see the same noise of a shared host.
                for _ in range(args.orders):
                    turn = next(side)
                    base.append(baseline.order(turn))
                    ours.append(posbus_order(rig, journal, turn))
                row = (
                    percentile(base, 0.5),
                    percentile(base, 0.99),
                    percentile(ours, 0.5),
                    percentile(ours, 0.99),
                )
                rows.append(row)
                print(
                    f"round {number}: ccxt p50 {row[0]:.2f} ms p99 {row[1]:.2f} ms | "
                    f"posbus p50 {row[2]:.2f} ms p99 {row[3]:.2f} ms | "
                    f"overhead x{row[2] / row[0]:.2f} (p50), +{row[2] - row[0]:.2f} ms"
                )
            # The position applied every fill: it holds 0.01 or 0.02 BTC (never
            # flat, so its actor stayed up and no order restarted it).
            state = rig.node.position("A", BTC).ask(Inspect(), timeout=10)
            assert Decimal(state["qty"]) in (Decimal("0.01"), Decimal("0.02")), state["qty"]
        finally:
            baseline.close()
            rig.stop()

    def med(i: int) -> float:
        return statistics.median(r[i] for r in rows)

    print(
        f"median of {len(rows)} rounds x {args.orders} orders: "
        f"ccxt direct p50 {med(0):.2f} ms p99 {med(1):.2f} ms; "
        f"through posbus p50 {med(2):.2f} ms p99 {med(3):.2f} ms; "
        f"overhead ratio p50 x{statistics.median(r[2] / r[0] for r in rows):.2f}, "
        f"p99 x{statistics.median(r[3] / r[1] for r in rows):.2f}"
    )


if __name__ == "__main__":
    main()
