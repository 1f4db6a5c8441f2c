"""Fill latency of a resting order: the venue's user-data stream against REST polling.

A posbus node trades through the real ccxt gateway against the Binance
emulator (real HTTP and websockets on 127.0.0.1). Each sample rests a buy of
0.01 BTC at 59,000.00 below the touch, then moves the touch across it (the
emulator fills it as maker) and times from that move until the fill record
is journaled on the position's stream: the write-ahead point after which
the position applies it, next in its mailbox.

Two gateways take turns on the same emulator, one sample each in turn so
that both see the same noise of a shared host:
  stream: `user_stream = "auto"`, ccxt.pro's `watch_orders` / `watch_my_trades`
          on the emulator's user-data stream (polling paused while it is trusted);
  poll:   `user_stream = "off"`, REST polling of the working orders every
          `poll_interval_s` = 1 s (the production default).
A poll finds a fill at its next round: each sample starts right after the
gateway went idle, i.e. just after a round, so polling shows close to its
worst case (the interval); over random arrival times it averages half of it.
The script prints p50 and p99 of both, and their ratio, per round and the
medians over rounds (target: stream p99 under 50 ms).

    python bench/bench_fill_latency.py [--samples 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests" / "support"))
sys.path.insert(0, str(ROOT))

from bench_gateway import WatchedJournal, percentile  # noqa: E402
from ccxt_rig import BTC, STREAM, CcxtRig, gateway_config  # noqa: E402

from posbus.actors.model.side import Side  # noqa: E402
from posbus.adapters.simulation.binance_emulator import BinanceEmulator  # noqa: E402

QTY = "0.01"
REST_AT = "59000.00"
TOUCH = (Decimal("60000.00"), Decimal("60000.10"))
CROSSING = (Decimal("58990.00"), Decimal("58999.00"))  # crosses the buy at 59000


def make_rig(emulator: BinanceEmulator, user_stream: str) -> tuple[CcxtRig, WatchedJournal]:
    """A started rig with its own journal; the stream one returns once its session is trusted."""
    journal = WatchedJournal()
    config = gateway_config(
        emulator,
        urls=emulator.ccxt_urls(websocket=user_stream == "auto"),
        user_stream=user_stream,
        poll_interval_s=1.0,
        timeout_ms=10_000,
    )
    rig = CcxtRig(emulator, journal, config).start()
    idle = threading.Event()
    deadline = time.monotonic() + 30
    while user_stream == "auto" and not rig.client.inspect()["user_stream"]["trusted"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the user-data stream was never trusted")
        idle.wait(0.01)
    return rig, journal


def sample(rig: CcxtRig, journal: WatchedJournal, emulator: BinanceEmulator) -> float:
    """Milliseconds from the touch crossing a resting buy to its fill journaled."""
    emulator.set_touch(BTC, *TOUCH)
    rig.clock.advance(2_000_000)  # the risk supervisor's order rate counts this clock
    rig.quote()
    rig.order(Side.BUY, QTY, limit=REST_AT)
    rig.settle()  # the order rests at the venue, acknowledged
    seq = journal.last_seq(STREAM)
    start = time.perf_counter()
    emulator.set_touch(BTC, *CROSSING)
    journal.wait_for_fill(seq)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30, help="fills per round and mode")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rows = []
    balances = {"USDT": Decimal(10**9), "BTC": Decimal(10**4)}
    with BinanceEmulator(balances=balances) as emulator:
        streaming, stream_journal = make_rig(emulator, "auto")
        polling, poll_journal = make_rig(emulator, "off")
        try:
            for _ in range(3):  # warm-up: connections, code paths
                sample(streaming, stream_journal, emulator)
                sample(polling, poll_journal, emulator)
            for number in range(1, args.rounds + 1):
                stream_ms, poll_ms = [], []
                for _ in range(args.samples):
                    stream_ms.append(sample(streaming, stream_journal, emulator))
                    poll_ms.append(sample(polling, poll_journal, emulator))
                row = (
                    percentile(stream_ms, 0.5),
                    percentile(stream_ms, 0.99),
                    percentile(poll_ms, 0.5),
                    percentile(poll_ms, 0.99),
                )
                rows.append(row)
                print(
                    f"round {number}: stream p50 {row[0]:.1f} ms p99 {row[1]:.1f} ms | "
                    f"poll p50 {row[2]:.1f} ms p99 {row[3]:.1f} ms | "
                    f"poll / stream x{row[2] / row[0]:.0f} (p50), x{row[3] / row[1]:.0f} (p99)"
                )
            counts = streaming.client.inspect()["counts"]
            # Every fill of the streaming gateway came through the stream.
            assert counts.get("fills_from_poll", 0) == 0, counts
        finally:
            streaming.stop()
            polling.stop()

    def med(i: int) -> float:
        return statistics.median(row[i] for row in rows)

    verdict = "ok" if med(1) < 50 else "ABOVE TARGET"
    print(
        f"median of {len(rows)} rounds: stream p50 {med(0):.1f} ms p99 {med(1):.1f} ms "
        f"(target p99 < 50 ms: {verdict}) | poll p50 {med(2):.1f} ms p99 {med(3):.1f} ms | "
        f"poll / stream x{med(2) / med(0):.0f} (p50), x{med(3) / med(1):.0f} (p99)"
    )


if __name__ == "__main__":
    main()
