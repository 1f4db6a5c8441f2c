"""Journal benchmarks: durable append throughput and recovery time, against baselines.

1. Append throughput with durability on. `THREADS` actor-like threads each
   append wire-encoded fills (about 220 bytes) and wait until each is durable:
   SQLite (WAL, synchronous=FULL, group commit) and, when
   POSBUS_TEST_MONGODB_URI is set, MongoDB (j: true). Baseline, in the same
   run: one thread writing the same bytes to a plain file with one fsync per
   batch, batches as large as the ones the journal formed (its mean records
   per commit), so the ratio is the price of the journal over bare fsyncs.
2. Recovery time of one position stream of 100,000 and 1,000,000 events
   (SQLite): a full replay through the actor's recovery path (read, verify,
   decode, apply), then latest snapshot + replay of the last 1,000 events;
   baseline: reading and checksumming the records only.
3. A worker holding 10,000 positions (10 events each): recovering every one,
   from snapshots and without.

Every figure is the median of several runs. Run:

    python bench/bench_journal.py            # everything (a few minutes)
    python bench/bench_journal.py --quick    # smaller sizes
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from posbus.actors.delivery import Outbox, decode_record
from posbus.actors.model.side import Side
from posbus.actors.position_actor import PositionActor, position_stream
from posbus.adapters.clock import ManualClock
from posbus.adapters.journal.group_commit import GroupCommitConfig, GroupCommitStore
from posbus.adapters.journal.sqlite import SqliteJournal
from posbus.bus.codec import encode
from posbus.bus.messages import Liquidity, OrderAck, OrderFill, OrderIntent, OrderSubmit

T0 = 1_700_000_000_000_000_000
ACCOUNT = "A"
THREADS = 32


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def fill_payload(symbol: str, n: int, order: int = 1) -> bytes:
    fill = OrderFill(
        order_id=f"{ACCOUNT}:{symbol}:{order}",
        client_order_id=f"pb0000{order:x}",
        trade_id=f"T{n}",
        account=ACCOUNT,
        symbol=symbol,
        side=Side.BUY,
        qty=Decimal("0.001"),
        price=Decimal("50000.12"),
        fee=Decimal("0.05000012"),
        fee_currency="USDT",
        liquidity=Liquidity.TAKER,
        ts_ns=T0 + n,
    )
    return encode(fill, seq=0, sender="bench", ts_ns=T0 + n)


# -- 1. append throughput -------------------------------------------------------------


def append_rate(journal: GroupCommitStore, per_thread: int) -> tuple[float, float]:
    """(records/s, mean records per commit) of THREADS threads appending durably."""
    payloads = [fill_payload("BTC/USDT", n) for n in range(per_thread)]
    before = journal.stats()

    def work(t: int) -> None:
        stream = f"position/{ACCOUNT}/S{t}"
        for payload in payloads:
            journal.append(stream, payload)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    after = journal.stats()
    records = after.records - before.records
    return records / elapsed, records / max(1, after.commits - before.commits)


def file_rate(path: Path, records: int, batch: int) -> float:
    """Records/s appending the same bytes to a plain file, one fsync per `batch` records."""
    payload = fill_payload("BTC/USDT", 1)
    start = time.perf_counter()
    with open(path, "ab") as fh:
        for done in range(0, records, batch):
            fh.write(payload * min(batch, records - done))
            fh.flush()
            os.fsync(fh.fileno())
    return records / (time.perf_counter() - start)


def bench_appends(workdir: Path, per_thread: int, runs: int) -> None:
    print(f"\n== durable appends: {THREADS} threads x {per_thread} records of ~220 bytes")
    backends: list[tuple[str, Callable[[Path], GroupCommitStore], int]] = [
        ("sqlite", lambda d: SqliteJournal(d / "append.sqlite"), per_thread)
    ]
    uri = os.environ.get("POSBUS_TEST_MONGODB_URI")
    if uri:
        from posbus.adapters.journal.mongodb import MongoJournal

        def mongo(d: Path) -> GroupCommitStore:
            return MongoJournal(uri, database=f"bench_{d.name}", w=1)

        backends.append(("mongodb", mongo, max(10, per_thread // 10)))
    else:
        print("(mongodb: set POSBUS_TEST_MONGODB_URI to include it)")
    for name, opener, count in backends:
        rates, batches, baselines = [], [], []
        for run in range(runs):
            d = workdir / f"{name}-{run}"
            d.mkdir()
            journal = opener(d)
            try:
                rate, batch = append_rate(journal, count)
            finally:
                journal.close()
                if name == "mongodb":
                    from pymongo import MongoClient

                    with MongoClient(uri) as client:
                        client.drop_database(f"bench_{d.name}")
            rates.append(rate)
            batches.append(batch)
            baselines.append(file_rate(d / "baseline.bin", THREADS * count, max(1, round(batch))))
        rate, batch, base = (statistics.median(x) for x in (rates, batches, baselines))
        print(
            f"{name:8} {rate:10,.0f} records/s durable, {batch:6.1f} records per commit | "
            f"plain file + fsync per {round(batch)} records: {base:10,.0f} records/s | "
            f"ratio {rate / base:5.2f}"
        )


# -- 2. recovery time of one stream -------------------------------------------------------


def load_stream(journal: SqliteJournal, symbol: str, events: int) -> None:
    """One order of a large quantity, then `events - 3` small fills of it."""
    stream = position_stream(ACCOUNT, symbol)
    head = [
        OrderIntent(ACCOUNT, symbol, Side.BUY, Decimal(10**6), None, "i1", False, "bench", T0),
        OrderSubmit(
            f"{ACCOUNT}:{symbol}:1", "pb1", ACCOUNT, symbol, Side.BUY, Decimal(10**6), None, T0
        ),
        OrderAck(f"{ACCOUNT}:{symbol}:1", "pb1", "x1", T0),
    ]
    journal.append_many(stream, [encode(m, seq=0, sender="bench", ts_ns=T0) for m in head])
    chunk = 20_000
    for start in range(0, events - len(head), chunk):
        size = min(chunk, events - len(head) - start)
        payloads = [fill_payload(symbol, start + n) for n in range(size)]
        journal.append_many(stream, payloads)
    assert journal.last_seq(stream) == events


def recover_seconds(journal: SqliteJournal, symbol: str, with_snapshots: bool) -> float:
    outbox = Outbox(journal, "bench", ManualClock(T0))
    start = time.perf_counter()
    PositionActor.recovered_state(outbox, ACCOUNT, symbol, journal if with_snapshots else None)
    return time.perf_counter() - start


def read_seconds(journal: SqliteJournal, stream: str) -> float:
    start = time.perf_counter()
    for record in journal.read(stream):
        assert record.verify()
    return time.perf_counter() - start


def snapshot_near_the_end(journal: SqliteJournal, symbol: str, tail: int) -> None:
    """Replay all but the last `tail` events and snapshot there (as the 30 s timer would)."""
    stream = position_stream(ACCOUNT, symbol)
    last = journal.last_seq(stream)
    outbox = Outbox(journal, "bench", ManualClock(T0))
    shell = PositionActor.shell(outbox, ACCOUNT, symbol, snapshots=journal)
    for record in journal.read(stream):
        if record.seq > last - tail:
            break
        shell.cursor.offer(decode_record(record))
    shell.take_snapshot()


def bench_recovery(workdir: Path, sizes: list[int], runs: int) -> None:
    print("\n== recovery of one position stream (SQLite)")
    for events in sizes:
        bench_stream(workdir, events, runs)


def bench_stream(workdir: Path, events: int, runs: int) -> None:
    journal = SqliteJournal(
        workdir / f"recovery-{events}.sqlite", commit=GroupCommitConfig(batch_max=50_000)
    )
    symbol = f"R{events}/USDT"
    stream = position_stream(ACCOUNT, symbol)
    try:
        t0 = time.perf_counter()
        load_stream(journal, symbol, events)
        load_s = time.perf_counter() - t0
        read = median_of(runs, lambda: read_seconds(journal, stream))
        full = median_of(runs, lambda: recover_seconds(journal, symbol, False))
        snapshot_near_the_end(journal, symbol, tail=1_000)
        snap = median_of(runs, lambda: recover_seconds(journal, symbol, True))
        snapshot_mb = len(journal.snapshots(stream)[0].payload) / 1e6
    finally:
        journal.close()
    print(
        f"{events:>9,} events (loaded in {load_s:5.1f} s): read+verify {read:7.3f} s | "
        f"full replay {full:7.3f} s ({events / full:9,.0f} events/s, "
        f"{full / read:4.1f}x the read) | snapshot ({snapshot_mb:.1f} MB) "
        f"+ 1,000 events {snap:6.3f} s ({full / snap:6.1f}x faster)"
    )


# -- 3. a worker holding 10,000 positions ----------------------------------------------------


def bench_worker(workdir: Path, positions: int, runs: int) -> None:
    print(f"\n== a worker holding {positions:,} positions (10 events each, SQLite)")
    journal = SqliteJournal(workdir / "worker.sqlite", commit=GroupCommitConfig(batch_max=50_000))
    symbols = [f"P{n}/USDT" for n in range(positions)]
    try:
        for symbol in symbols:
            load_stream(journal, symbol, 10)
        outbox = Outbox(journal, "bench", ManualClock(T0))

        def recover_all(with_snapshots: bool) -> float:
            start = time.perf_counter()
            for symbol in symbols:
                PositionActor.recovered_state(
                    outbox, ACCOUNT, symbol, journal if with_snapshots else None
                )
            return time.perf_counter() - start

        full = median_of(runs, lambda: recover_all(False))
        for symbol in symbols:
            snapshot_near_the_end(journal, symbol, tail=0)
        snap = median_of(runs, lambda: recover_all(True))
    finally:
        journal.close()
    print(
        f"replay every stream {full:6.2f} s ({full / positions * 1e3:.3f} ms per position) | "
        f"from snapshots {snap:6.2f} s ({snap / positions * 1e3:.3f} ms per position) | "
        f"ratio {full / snap:4.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    workdir = Path(tempfile.mkdtemp(prefix="posbus-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        bench_appends(workdir, per_thread=50 if args.quick else 200, runs=runs)
        bench_recovery(workdir, [10_000, 100_000] if args.quick else [100_000, 1_000_000], runs=3)
        bench_worker(workdir, positions=1_000 if args.quick else 10_000, runs=3)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
